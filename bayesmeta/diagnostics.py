"""Sampler and model diagnostics with explicit thresholds (ArviZ 1.x, ``arviz_stats``).

:func:`check` computes, for a fitted :class:`xarray.DataTree`:

* rank-normalised split R-hat, bulk-ESS, tail-ESS and MCSE (mean and sd) per variable
  (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, *Bayesian Analysis* 16(2) 667-718,
  doi:10.1214/20-BA1221): ``arviz_stats.rhat(method="rank")``, ``arviz_stats.ess(method="bulk")``,
  ``arviz_stats.ess(method="tail", prob=(0.05, 0.95))``, ``arviz_stats.mcse(method="mean"|"sd")``;
* divergent transitions and max-tree-depth hits counted from ``sample_stats``;
* E-BFMI per chain (Betancourt 2016, arXiv:1604.00695): ``arviz_stats.bfmi``;
* PSIS-LOO with Pareto k per study (Vehtari, Gelman & Gabry 2017, *Stat Comput* 27:1413;
  Vehtari, Simpson, Gelman, Yao & Gabry 2024, *JMLR* 25(72)): ``arviz_stats.loo(pointwise=True)``.

Every check compares a value with a threshold held in :class:`Thresholds` (data, not code) and
yields a :class:`Problem`. Nothing is printed or warned here: :func:`warn_problems` emits one
:class:`~bayesmeta.errors.SamplerWarning` per problem and :func:`strict_exit_code` gives the CLI its
``--strict`` exit code. :func:`posterior_predictive_checks` gives per-study predictive p-values
and a global Cochran-Q check; power-scaling prior sensitivity (``arviz_stats.psense``) needs a
``log_prior`` group, which :func:`add_log_prior` (PyMC model) or
:func:`add_log_prior_from_densities` (exact engine) adds.

Exact-engine trees (``attrs["engine"] == "exact"``) hold independent draws: R-hat and ESS are
reported (they are trivially fine) but divergences, tree depth and E-BFMI do not exist and are
skipped with a note.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from bayesmeta._json import jsonable
from bayesmeta.errors import SamplerWarning

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pymc as pm

__all__ = [
    "DEFAULT_THRESHOLDS",
    "STRICT_EXIT_CODE",
    "TAIL_ESS_PROBS",
    "Diagnostics",
    "LooSummary",
    "PPCSummary",
    "Problem",
    "StudyPPC",
    "Thresholds",
    "add_log_prior",
    "add_log_prior_from_densities",
    "check",
    "engine_of",
    "posterior_predictive_checks",
    "strict_exit_code",
    "warn_problems",
]

#: Quantiles whose ESS defines tail-ESS (Vehtari et al. 2021: min of the 5% and 95% quantile
#: ESS). ArviZ's default for ``method="tail"`` follows ``rcParams["stats.ci_prob"]``
#: (0.89) instead, so we pass the probabilities explicitly.
TAIL_ESS_PROBS: tuple[float, float] = (0.05, 0.95)

#: Exit code of ``bayesmeta ... --strict`` when a diagnostic fails (1 = other error, 2 = bad input).
STRICT_EXIT_CODE = 3

ProblemKind = Literal["rhat", "ess_bulk", "ess_tail", "divergences", "bfmi", "pareto_k"]


@dataclass(frozen=True)
class Thresholds:
    """Limits a fit must respect; defaults are the published recommendations.

    Attributes
    ----------
    rhat_max
        Largest acceptable rank-normalised split R-hat. Vehtari et al. (2021), recommendations:
        use the draws only if R-hat < 1.01 (four or more chains); ArviZ ``diagnose(rhat_max=1.01)``.
    ess_bulk_min, ess_tail_min
        Smallest acceptable bulk- and tail-ESS. Vehtari et al. (2021), recommendations: at least
        100 per chain, i.e. 400 for the default four chains (also the Stan ``ess_bulk`` docs).
    divergences_max
        Largest acceptable number of divergent transitions after warm-up (Betancourt 2017,
        arXiv:1701.02434: any divergence signals that the sampler missed part of the posterior).
    bfmi_min
        Smallest acceptable E-BFMI per chain (Betancourt 2016; ArviZ ``bfmi`` docstring and
        ``diagnose(bfmi_threshold=0.3)``).
    pareto_k_max
        Largest acceptable PSIS Pareto k (Vehtari et al. 2024, JMLR 25(72)). The
        threshold actually applied is ``min(pareto_k_max, 1 - 1/log10(S))`` for ``S`` draws, the
        sample-size-dependent bound used by ``arviz_stats.loo``.
    """

    rhat_max: float = 1.01
    ess_bulk_min: float = 400.0
    ess_tail_min: float = 400.0
    divergences_max: int = 0
    bfmi_min: float = 0.3
    pareto_k_max: float = 0.7

    def to_dict(self) -> dict[str, float | int]:
        """Plain JSON-able mapping of the limits."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def pareto_k_for(self, n_samples: int) -> float:
        """The Pareto k threshold applied for ``n_samples`` draws."""
        if n_samples <= 10:
            return self.pareto_k_max
        return float(min(self.pareto_k_max, 1.0 - 1.0 / math.log10(n_samples)))


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Problem:
    """One failed check.

    Attributes
    ----------
    kind
        ``"rhat" | "ess_bulk" | "ess_tail" | "divergences" | "bfmi" | "pareto_k"``.
    variable
        What failed: ``"mu"``, ``"theta[Smith 2001]"``, ``"chain 2"``, ``"y[Smith 2001]"`` or
        ``"sampler"``.
    value, threshold
        The offending value (``None`` when it could not be computed) and the limit.
    message
        One sentence a statistician can act on.
    """

    kind: ProblemKind
    variable: str
    value: float | None
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping."""
        return jsonable(
            {"kind": self.kind, "variable": self.variable, "value": self.value,
             "threshold": self.threshold, "message": self.message}
        )


@dataclass(frozen=True)
class LooSummary:
    """PSIS-LOO summary: ``elpd``, its ``se``, ``p_loo``, Pareto k per study and the threshold used."""

    elpd: float
    se: float
    p_loo: float
    n_samples: int
    n_data_points: int
    pareto_k: dict[str, float]
    k_threshold: float
    high_k: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping."""
        return jsonable(
            {"elpd": self.elpd, "se": self.se, "p_loo": self.p_loo, "n_samples": self.n_samples,
             "n_data_points": self.n_data_points, "pareto_k": self.pareto_k,
             "k_threshold": self.k_threshold, "high_k": list(self.high_k)}
        )


@dataclass(frozen=True)
class Diagnostics:
    """Result of :func:`check`. Per-variable mappings are keyed ``"mu"`` or ``"theta[label]"``.

    ``divergences``, ``treedepth_hits`` and ``bfmi`` are ``None`` when the engine has no such
    quantity (exact engine) or the tree lacks ``sample_stats``; ``loo`` is ``None`` without a
    ``log_likelihood`` group. ``notes`` lists what was skipped and why.
    """

    engine: str
    thresholds: Thresholds
    n_chains: int
    n_draws: int
    rhat: dict[str, float | None]
    ess_bulk: dict[str, float | None]
    ess_tail: dict[str, float | None]
    mcse_mean: dict[str, float | None]
    mcse_sd: dict[str, float | None]
    divergences: int | None
    treedepth_hits: int | None
    bfmi: tuple[float, ...] | None
    loo: LooSummary | None
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems

    def table(self) -> pd.DataFrame:
        """One row per checked scalar: ``rhat, ess_bulk, ess_tail, mcse_mean, mcse_sd``."""
        cols = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")
        frame = pd.DataFrame({c: pd.Series(getattr(self, c), dtype=float) for c in cols})
        frame.index.name = "variable"
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping (NaN becomes ``null``)."""
        return jsonable(
            {
                "ok": self.ok,
                "engine": self.engine,
                "thresholds": self.thresholds.to_dict(),
                "n_chains": self.n_chains,
                "n_draws": self.n_draws,
                "rhat": self.rhat,
                "ess_bulk": self.ess_bulk,
                "ess_tail": self.ess_tail,
                "mcse_mean": self.mcse_mean,
                "mcse_sd": self.mcse_sd,
                "divergences": self.divergences,
                "treedepth_hits": self.treedepth_hits,
                "bfmi": None if self.bfmi is None else list(self.bfmi),
                "loo": None if self.loo is None else self.loo.to_dict(),
                "problems": [p.to_dict() for p in self.problems],
                "notes": list(self.notes),
            }
        )


# --------------------------------------------------------------------------------------------
# helpers

_SAMPLE_DIMS = ("chain", "draw")
#: sample_stats names of "hit the maximum tree depth" (PyMC NUTS, nutpie, NumPyro via ArviZ).
_TREEDEPTH_NAMES = ("reached_max_treedepth", "maxdepth_reached")


def engine_of(tree: xr.DataTree) -> str:
    """The engine recorded in the tree (root or posterior ``attrs["engine"]``); ``"mcmc"`` if none."""
    for attrs in (tree.attrs, tree["posterior"].attrs):
        if "engine" in attrs:
            return str(attrs["engine"])
    return "mcmc"


def _with_chain(da: xr.DataArray) -> xr.DataArray:
    return da if "chain" in da.dims else da.expand_dims(chain=1)


def _element_label(name: str, da: xr.DataArray, index: tuple[int, ...]) -> str:
    if not index:
        return name
    parts = [str(da[dim].values[i]) if dim in da.coords else str(i) for dim, i in zip(da.dims, index)]
    return f"{name}[{','.join(parts)}]"


def _flatten(name: str, da: xr.DataArray) -> dict[str, float | None]:
    """``{"mu": 1.0}`` or ``{"theta[A]": 1.0, "theta[B]": ...}`` with NaN kept as ``None``."""
    values = np.asarray(da.values, dtype=float)
    out: dict[str, float | None] = {}
    for index in np.ndindex(values.shape):
        v = float(values[index])
        out[_element_label(name, da, index)] = v if math.isfinite(v) else None
    return out


def _quiet(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with NumPy's invalid-value RuntimeWarnings silenced (constant chains give NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn()


# Per-variable statistics: name -> function of a (chain, draw, ...) DataArray.
_PER_VARIABLE: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "rhat": lambda da: azs.rhat(da, method="rank"),
    "ess_bulk": lambda da: azs.ess(da, method="bulk"),
    "ess_tail": lambda da: azs.ess(da, method="tail", prob=TAIL_ESS_PROBS),
    "mcse_mean": lambda da: azs.mcse(da, method="mean"),
    "mcse_sd": lambda da: azs.mcse(da, method="sd"),
}


def _per_variable(posterior: xr.Dataset, var_names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    missing = [v for v in var_names if v not in posterior.data_vars]
    if missing:
        raise ValueError(
            f"variables {missing} are not in the posterior (it holds {sorted(posterior.data_vars)})"
        )
    stats: dict[str, dict[str, float | None]] = {key: {} for key in _PER_VARIABLE}
    for name in var_names:
        da = _with_chain(posterior[name])
        for key, fn in _PER_VARIABLE.items():
            stats[key].update(_flatten(name, _quiet(lambda fn=fn, da=da: fn(da))))
    return stats


def _count(sample_stats: xr.Dataset | None, names: Iterable[str]) -> int | None:
    if sample_stats is None:
        return None
    for name in names:
        if name in sample_stats.data_vars:
            return int(np.asarray(sample_stats[name].values, dtype=bool).sum())
    return None


def _bfmi(sample_stats: xr.Dataset | None) -> tuple[float, ...] | None:
    if sample_stats is None or "energy" not in sample_stats.data_vars:
        return None
    energy = _with_chain(sample_stats["energy"])
    values = _quiet(lambda: azs.bfmi(energy))
    return tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=float)))


def _loo(tree: xr.DataTree, var_name: str, thresholds: Thresholds) -> tuple[LooSummary, list[str]]:
    """PSIS-LOO; ArviZ's own warnings are captured and returned as notes (we report k ourselves)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _quiet(lambda: azs.loo(tree, pointwise=True, var_name=var_name))
    notes = [f"arviz_stats.loo: {w.message}" for w in caught if not issubclass(w.category, RuntimeWarning)]
    k_da = result.pareto_k
    pareto_k = {key.removeprefix(f"{var_name}[").removesuffix("]") if k_da.ndim else key: val
                for key, val in _flatten(var_name, k_da).items()}
    k_threshold = thresholds.pareto_k_for(int(result.n_samples))
    high = tuple(label for label, k in pareto_k.items() if k is None or k > k_threshold)
    summary = LooSummary(
        elpd=float(result.elpd),
        se=float(result.se),
        p_loo=float(result.p),
        n_samples=int(result.n_samples),
        n_data_points=int(result.n_data_points),
        pareto_k=pareto_k,
        k_threshold=k_threshold,
        high_k=high,
    )
    return summary, notes


# --------------------------------------------------------------------------------------------
# rules: which values are compared with which threshold, and what to tell the user


@dataclass(frozen=True)
class _Rule:
    kind: ProblemKind
    threshold: Callable[[Thresholds, "_Values"], float]
    values: Callable[["_Values"], Iterable[tuple[str, float | None]]]
    failed: Callable[[float, float], bool]
    message: str  # formatted with variable, value, threshold


@dataclass(frozen=True)
class _Values:
    per_variable: dict[str, dict[str, float | None]]
    divergences: int | None
    bfmi: tuple[float, ...] | None
    loo: LooSummary | None


def _above(value: float, limit: float) -> bool:
    return value > limit


def _below(value: float, limit: float) -> bool:
    return value < limit


_RULES: tuple[_Rule, ...] = (
    _Rule("rhat", lambda t, v: t.rhat_max, lambda v: v.per_variable["rhat"].items(), _above,
          "R-hat of {variable} is {value:.3f} > {threshold:g}: the chains disagree; "
          "run longer chains or reparameterise."),
    _Rule("ess_bulk", lambda t, v: t.ess_bulk_min, lambda v: v.per_variable["ess_bulk"].items(),
          _below, "bulk-ESS of {variable} is {value:.0f} < {threshold:g}: posterior medians and "
          "means are imprecise; draw more."),
    _Rule("ess_tail", lambda t, v: t.ess_tail_min, lambda v: v.per_variable["ess_tail"].items(),
          _below, "tail-ESS of {variable} is {value:.0f} < {threshold:g}: the 95% interval limits "
          "are imprecise; draw more."),
    _Rule("divergences", lambda t, v: t.divergences_max,
          lambda v: [] if v.divergences is None else [("sampler", v.divergences)], _above,
          "{value:.0f} divergent transitions (at most {threshold:g} allowed): the sampler missed "
          "part of the posterior; raise target_accept or use a non-centred model."),
    _Rule("bfmi", lambda t, v: t.bfmi_min,
          lambda v: [] if v.bfmi is None else [(f"chain {i}", b) for i, b in enumerate(v.bfmi)],
          _below, "E-BFMI of {variable} is {value:.2f} < {threshold:g}: the sampler explores the "
          "energy distribution poorly; reparameterise."),
    _Rule("pareto_k", lambda t, v: v.loo.k_threshold if v.loo else t.pareto_k_max,
          lambda v: [] if v.loo is None else [(f"y[{s}]", k) for s, k in v.loo.pareto_k.items()],
          _above, "Pareto k of {variable} is {value:.2f} > {threshold:.2f}: PSIS-LOO is unreliable "
          "for this study (it is influential or outlying)."),
)


def _apply_rules(values: _Values, thresholds: Thresholds, engine: str) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    notes: list[str] = []
    for rule in _RULES:
        limit = float(rule.threshold(thresholds, values))
        for variable, value in rule.values(values):
            if value is None:
                text = (f"{rule.kind} of {variable} could not be computed (a single chain, or "
                        "constant draws: a stuck chain?)")
                if engine == "exact" and rule.kind in ("rhat", "ess_bulk", "ess_tail"):
                    notes.append(text + "; independent exact draws need no convergence check.")
                else:
                    problems.append(Problem(rule.kind, variable, None, limit, text + "."))
            elif rule.failed(float(value), limit):
                message = rule.message.format(variable=variable, value=float(value), threshold=limit)
                problems.append(Problem(rule.kind, variable, float(value), limit, message))
    return problems, notes


# --------------------------------------------------------------------------------------------
# public API


def check(
    tree: xr.DataTree,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    var_names: Sequence[str] = ("mu", "tau"),
    loo_var: str = "y",
) -> Diagnostics:
    """Run every diagnostic on a fitted tree and compare it with ``thresholds``.

    Parameters
    ----------
    tree
        DataTree with a ``posterior`` group (dims ``chain``, ``draw``); ``sample_stats``
        (``diverging``, ``energy``) and ``log_likelihood`` (``loo_var``, dim ``study``) are used
        when present.
    thresholds
        Limits; see :class:`Thresholds`.
    var_names
        Posterior variables whose R-hat, ESS and MCSE are checked (vector variables are checked
        element by element).
    loo_var
        Variable of the ``log_likelihood`` group used for PSIS-LOO.

    Returns
    -------
    Diagnostics
        Values, problems (empty when every check passes) and notes on what was skipped.

    Raises
    ------
    ValueError
        When a name in ``var_names`` is not in the posterior.
    """
    engine = engine_of(tree)
    posterior = tree["posterior"].to_dataset()
    notes: list[str] = []
    per_variable = _per_variable(posterior, var_names)

    sample_stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    if engine == "exact":
        divergences = treedepth = None
        bfmi = None
        notes.append("engine=exact: independent draws, no divergence, tree-depth or E-BFMI checks.")
    else:
        if sample_stats is None:
            notes.append("no sample_stats group: divergence, tree-depth and E-BFMI checks skipped.")
        divergences = _count(sample_stats, ("diverging",))
        treedepth = _count(sample_stats, _TREEDEPTH_NAMES)
        bfmi = _bfmi(sample_stats)
        if sample_stats is not None and divergences is None:
            notes.append("sample_stats has no 'diverging' variable: divergences not checked.")
        if sample_stats is not None and bfmi is None:
            notes.append("sample_stats has no 'energy' variable: E-BFMI not checked.")
        if treedepth:
            notes.append(f"{treedepth} transitions hit the maximum tree depth (efficiency, not bias).")

    loo = None
    if "log_likelihood" in tree.children and loo_var in tree["log_likelihood"].data_vars:
        loo, loo_notes = _loo(tree, loo_var, thresholds)
        notes.extend(loo_notes)
    else:
        notes.append(f"no log_likelihood['{loo_var}']: PSIS-LOO not computed.")

    values = _Values(per_variable, divergences, bfmi, loo)
    problems, rule_notes = _apply_rules(values, thresholds, engine)
    sizes = posterior.sizes
    return Diagnostics(
        engine=engine,
        thresholds=thresholds,
        n_chains=int(sizes.get("chain", 1)),
        n_draws=int(sizes["draw"]),
        rhat=per_variable["rhat"],
        ess_bulk=per_variable["ess_bulk"],
        ess_tail=per_variable["ess_tail"],
        mcse_mean=per_variable["mcse_mean"],
        mcse_sd=per_variable["mcse_sd"],
        divergences=divergences,
        treedepth_hits=treedepth,
        bfmi=bfmi,
        loo=loo,
        problems=tuple(problems),
        notes=tuple(notes + rule_notes),
    )


def warn_problems(diag: Diagnostics) -> None:
    """Emit one :class:`~bayesmeta.errors.SamplerWarning` per problem (never hidden)."""
    for problem in diag.problems:
        warnings.warn(problem.message, SamplerWarning, stacklevel=2)


def strict_exit_code(diag: Diagnostics) -> int:
    """Exit code for ``--strict``: 0 when every check passed, :data:`STRICT_EXIT_CODE` otherwise."""
    return 0 if diag.ok else STRICT_EXIT_CODE


# --------------------------------------------------------------------------------------------
# posterior predictive checks


@dataclass(frozen=True)
class StudyPPC:
    """Posterior predictive p-values of one study's observed ``y`` (upper tail, ``P(y_rep >= y)``).

    ``p_conditional`` replicates ``y`` from the study's own ``theta_i``: it reuses the study's
    data twice and is conservative (values near 0.5). ``p_mixed`` replicates a new study effect
    ``theta ~ N(mu, tau^2)`` first (mixed predictive check, Marshall & Spiegelhalter 2003,
    *Stat Med* 22:1649), which detects outlying studies; ``None`` when the model has no single
    scalar ``mu`` (meta-regression, subgroups).
    """

    label: str
    y: float
    vi: float
    p_conditional: float
    p_mixed: float | None

    def two_sided(self) -> float:
        """``2 min(p, 1 - p)`` of the mixed p-value (the conditional one when mixed is missing)."""
        p = self.p_conditional if self.p_mixed is None else self.p_mixed
        return float(2.0 * min(p, 1.0 - p))


@dataclass(frozen=True)
class PPCSummary:
    """Per-study predictive p-values and the global Cochran-Q discrepancy check.

    ``q_obs`` is Cochran's Q of the observed effects; ``p_q_conditional`` / ``p_q_mixed`` are the
    posterior predictive probabilities ``P(Q(y_rep) >= Q(y))`` with ``y_rep`` simulated as for the
    per-study p-values (Gelman, Meng & Stern 1996, *Statistica Sinica* 6:733). Studies whose
    two-sided p-value falls below ``alpha`` are listed in :attr:`extreme`.
    """

    studies: tuple[StudyPPC, ...]
    q_obs: float
    p_q_conditional: float
    p_q_mixed: float | None
    alpha: float
    n_draws: int
    seed: int

    @property
    def extreme(self) -> tuple[str, ...]:
        """Labels of studies with two-sided predictive p-value below ``alpha``."""
        return tuple(s.label for s in self.studies if s.two_sided() < self.alpha)

    def to_frame(self) -> pd.DataFrame:
        """One row per study: ``y, vi, p_conditional, p_mixed, p_two_sided``."""
        rows = [
            {"label": s.label, "y": s.y, "vi": s.vi, "p_conditional": s.p_conditional,
             "p_mixed": s.p_mixed, "p_two_sided": s.two_sided()}
            for s in self.studies
        ]
        return pd.DataFrame(rows).set_index("label")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping."""
        return jsonable(
            {
                "studies": [
                    {"label": s.label, "y": s.y, "vi": s.vi, "p_conditional": s.p_conditional,
                     "p_mixed": s.p_mixed, "p_two_sided": s.two_sided()}
                    for s in self.studies
                ],
                "q_obs": self.q_obs,
                "p_q_conditional": self.p_q_conditional,
                "p_q_mixed": self.p_q_mixed,
                "alpha": self.alpha,
                "extreme": list(self.extreme),
                "n_draws": self.n_draws,
                "seed": self.seed,
            }
        )


def _cochran_q(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cochran's Q along the last axis with weights ``w`` (= 1/vi)."""
    mean = (y * w).sum(axis=-1, keepdims=True) / w.sum()
    return ((y - mean) ** 2 * w).sum(axis=-1)


def _tree_array(tree: xr.DataTree, group: str, name: str) -> xr.DataArray | None:
    if group in tree.children and name in tree[group].data_vars:
        return tree[group][name]
    return None


def posterior_predictive_checks(
    tree: xr.DataTree,
    *,
    y: Sequence[float] | None = None,
    vi: Sequence[float] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> PPCSummary:
    """Posterior predictive p-values per study and for Cochran's Q.

    Per-study p-values are Rao-Blackwellised (normal tail probabilities averaged over the draws),
    so they carry no simulation noise; the Q check simulates one replicate per draw with
    ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    tree
        Fitted normal-normal tree: ``posterior`` with ``theta`` (dim ``study``) and, for the mixed
        check, scalar ``mu`` and ``tau``.
    y, vi
        Observed effects and within-study variances in the order of the ``study`` coordinate.
        Default: ``observed_data["y"]`` and ``constant_data["vi"]`` (or ``constant_data["sei"]``
        squared).
    alpha
        Two-sided level below which a study is listed as extreme.
    seed
        Seed of the Q-replicate simulation.

    Raises
    ------
    ValueError
        When ``theta``, ``y`` or ``vi`` cannot be found or their lengths disagree.
    """
    posterior = tree["posterior"]
    if "theta" not in posterior.data_vars:
        raise ValueError("posterior predictive checks need 'theta' (dim 'study') in the posterior")
    theta = _with_chain(posterior["theta"]).transpose("chain", "draw", "study")
    labels = [str(s) for s in theta["study"].values]
    y_arr = _observed(tree, y, "observed_data", ("y",), labels, "y")
    vi_arr = _observed(tree, vi, "constant_data", ("vi",), labels, "vi")
    th = np.asarray(theta.values, dtype=float).reshape(-1, len(labels))
    n_draws = th.shape[0]

    sd_within = np.sqrt(vi_arr)
    p_cond = special.ndtr((th - y_arr) / sd_within).mean(axis=0)

    mixed = _mixed_parameters(posterior)
    rng = np.random.default_rng(seed)
    weights = 1.0 / vi_arr
    q_obs = float(_cochran_q(y_arr, weights))
    y_rep = th + sd_within * rng.standard_normal(th.shape)
    p_q_cond = float(np.mean(_cochran_q(y_rep, weights) >= q_obs))
    if mixed is None:
        p_mix: np.ndarray | None = None
        p_q_mix = None
    else:
        mu, tau = mixed
        sd_total = np.sqrt(tau[:, None] ** 2 + vi_arr)
        p_mix = special.ndtr((mu[:, None] - y_arr) / sd_total).mean(axis=0)
        y_new = mu[:, None] + sd_total * rng.standard_normal(th.shape)
        p_q_mix = float(np.mean(_cochran_q(y_new, weights) >= q_obs))

    studies = tuple(
        StudyPPC(label, float(y_arr[i]), float(vi_arr[i]), float(p_cond[i]),
                 None if p_mix is None else float(p_mix[i]))
        for i, label in enumerate(labels)
    )
    return PPCSummary(studies, q_obs, p_q_cond, p_q_mix, float(alpha), int(n_draws), int(seed))


def _observed(
    tree: xr.DataTree,
    given: Sequence[float] | None,
    group: str,
    names: tuple[str, ...],
    labels: list[str],
    what: str,
) -> np.ndarray:
    if given is not None:
        arr = np.asarray(given, dtype=float)
    else:
        da = _tree_array(tree, group, names[0])
        if da is None and what == "vi":
            se = _tree_array(tree, group, "sei")
            da = None if se is None else se**2
        if da is None:
            raise ValueError(f"no {group}['{names[0]}'] in the tree: pass {what}= explicitly")
        if "study" in da.dims and "study" in da.coords:
            da = da.sel(study=labels)
        arr = np.asarray(da.values, dtype=float)
    if arr.shape != (len(labels),):
        raise ValueError(f"{what} has shape {arr.shape}, expected ({len(labels)},) to match 'theta'")
    return arr


def _mixed_parameters(posterior: xr.DataTree) -> tuple[np.ndarray, np.ndarray] | None:
    """Flattened ``mu`` and ``tau`` draws when both are scalars and there is no regression."""
    if "beta" in posterior.data_vars or not {"mu", "tau"} <= set(posterior.data_vars):
        return None
    mu, tau = posterior["mu"], posterior["tau"]
    if set(mu.dims) - set(_SAMPLE_DIMS) or set(tau.dims) - set(_SAMPLE_DIMS):
        return None
    return (np.asarray(_with_chain(mu).values, dtype=float).ravel(),
            np.asarray(_with_chain(tau).values, dtype=float).ravel())


# --------------------------------------------------------------------------------------------
# log prior for power-scaling sensitivity (Kallioinen, Paananen, Bürkner & Vehtari 2024,
# Stat Comput 34:57): arviz_stats.psense / psense_summary read the ``log_prior`` group.


def add_log_prior(
    tree: xr.DataTree,
    model: pm.Model,
    *,
    var_names: Sequence[str] | None = None,
) -> xr.DataTree:
    """Copy of ``tree`` with a ``log_prior`` group computed by PyMC.

    Uses ``pymc.stats.compute_log_prior(tree, model=model, var_names=..., extend_inferencedata=False)``
    (elementwise log densities of the free variables at each posterior draw, on the constrained
    scale). For hierarchical models, power-scale only the top-level priors:
    ``var_names=("mu", "tau")`` here, or ``prior_var_names=["mu", "tau"]`` in
    ``arviz_stats.psense_summary``.

    Parameters
    ----------
    tree
        Fitted tree whose posterior holds every free variable of ``model``.
    model
        The PyMC model that produced ``tree``.
    var_names
        Free variables whose log prior is stored (default: all).
    """
    import pymc as pm  # the heavy import stays local: check() and PPC need no PyMC

    log_prior = pm.stats.compute_log_prior(
        tree,
        model=model,
        var_names=None if var_names is None else list(var_names),
        extend_inferencedata=False,
        progressbar=False,
    )
    out = tree.copy()
    out["log_prior"] = xr.DataTree(log_prior)
    return out


def add_log_prior_from_densities(
    tree: xr.DataTree,
    densities: Mapping[str, Callable[[np.ndarray], np.ndarray]],
) -> xr.DataTree:
    """Copy of ``tree`` with a ``log_prior`` group from explicit log densities.

    For exact-engine trees (no PyMC model): ``densities`` maps a posterior variable to a
    vectorised log density, e.g. ``{"mu": mu_prior.logpdf, "tau": tau_prior.logpdf}`` from
    :func:`bayesmeta.priors.parse_prior`.
    """
    posterior = tree["posterior"]
    data = {}
    for name, logpdf in densities.items():
        if name not in posterior.data_vars:
            raise ValueError(f"'{name}' is not in the posterior (it holds {sorted(posterior.data_vars)})")
        da = posterior[name]
        data[name] = da.copy(data=np.asarray(logpdf(np.asarray(da.values, dtype=float)), dtype=float))
    out = tree.copy()
    out["log_prior"] = xr.DataTree(xr.Dataset(data, attrs={"sample_dims": list(_SAMPLE_DIMS)}))
    return out
