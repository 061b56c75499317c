"""Fitting: the exact engine or MCMC. The only module that calls a sampler.

Layers
------
:func:`fit` (a :class:`~bayesmeta.spec.Spec`) → :func:`fit_data` (a frame + settings) →
either the exact normal–normal engine (:class:`~bayesmeta.exact.ExactNormalNormal`) or
:func:`compile_fit` → :meth:`CompiledFit.sample`.

Engines
-------
``engine="auto"`` takes the exact engine whenever the model allows it (normal family, no
moderators, no subgroup, no bias model, normal or flat prior on ``mu``), else MCMC.
``"exact"`` insists (SpecError when impossible), ``"mcmc"`` always samples.

Samplers (registry :data:`SAMPLERS`)
------------------------------------
``nutpie`` (default; compiles the model through numba once), ``pymc`` (PyMC's NUTS) and
``numpyro`` (JAX, through ``pm.sample(nuts_sampler="numpyro")``). A given seed gives identical
draws on one machine.

Refitting without recompiling
-----------------------------
Builders store every prior parameter in a ``pm.Data`` container (``tau_prior_scale``,
``mu_prior_m``...). :func:`compile_fit` builds and compiles once; :meth:`CompiledFit.sample`
takes new priors of the same families (see :meth:`CompiledFit.accepts`) and only swaps those
values: with nutpie nothing is recompiled (``CompiledModel.with_data``); with ``pymc`` and
``numpyro`` the sampler functions are rebuilt by PyMC on every call (PyTensor's on-disk cache
makes that cheaper, not free), so prior sweeps should use nutpie.

:func:`fit_data` and :func:`fit` keep what they compile in a per-process cache
(:mod:`bayesmeta.compiled_models`): a second fit of the same model on the same data, with priors
of the same families, samples the already compiled model (same draws bit for bit).
``reuse_compiled=False`` or :func:`clear_compiled_models` opts out.

Output (:class:`FitResult`)
---------------------------
``tree`` is an :class:`xarray.DataTree` with groups ``posterior`` (``mu``, ``tau``, ``tau2``,
``i2``, ``theta`` [study], ``theta_new``, ``z``, ``z_new``, ``beta`` [coef] with moderators,
family extras such as ``eta``/``p_t``/``p_c``), ``sample_stats`` (MCMC), ``log_likelihood``
(``y`` [study]: the per-study pointwise log-likelihood for PSIS-LOO, from the family's
``log_likelihood`` function: marginal over ``theta_i`` for the normal family, over ``theta_i``
and ``p_max_i`` for the binomial one),
``observed_data``, ``constant_data`` (``vi`` and the ``*_prior_*`` values) and
``posterior_predictive`` (``y`` for the normal family; ``y_t``, ``y_c`` for the binomial one),
and ``tree.attrs["engine"]`` (``"exact"`` or ``"mcmc"``).

Progress is reported to an optional callable receiving :class:`ProgressEvent`; nothing is
printed. nutpie calls it from a background thread.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmeta._json import jsonable
from bayesmeta.builders import FamilyEntry, build_model, get_family
from bayesmeta.builders._priors import prior_parameter_values, prior_structure
from bayesmeta.compiled_models import CompiledModelCache, model_key
from bayesmeta.errors import SpecError
from bayesmeta.priors import Prior, parse_prior
from bayesmeta.rundir import package_versions

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

    from bayesmeta.diagnostics import Diagnostics
    from bayesmeta.spec import Spec

__all__ = [
    "SAMPLERS",
    "CompiledFit",
    "FitResult",
    "ProgressEvent",
    "SamplerBackend",
    "SamplingSettings",
    "clear_compiled_models",
    "compile_fit",
    "compiled_model",
    "exact_allowed",
    "fit",
    "fit_data",
    "resolve_engine",
    "summarise_draws",
]

STATS = ("median", "mean", "sd", "q025", "q975")
SUMMARY_VARS = ("mu", "tau", "tau2", "i2", "theta_new", "beta", "omega", "pet", "peese")
EXACT_MU_FAMILIES = ("normal", "flat")


# ---------------------------------------------------------------------------------------------
# Settings and progress
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler settings (the ``[sampling]`` section without ``engine``)."""

    sampler: str = "nutpie"
    chains: int = 4
    draws: int = 2000
    tune: int = 1000
    target_accept: float = 0.9
    seed: int = 2018

    @classmethod
    def from_spec(cls, sampling: Any) -> SamplingSettings:
        """From a :class:`~bayesmeta.spec.SamplingSpec` (or anything with these attributes)."""
        return cls(sampler=sampling.sampler, chains=int(sampling.chains),
                   draws=int(sampling.draws), tune=int(sampling.tune),
                   target_accept=float(sampling.target_accept), seed=int(sampling.seed))

    def to_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "chains": self.chains, "draws": self.draws,
                "tune": self.tune, "target_accept": self.target_accept, "seed": self.seed}


@dataclass(frozen=True)
class ProgressEvent:
    """A progress report: ``stage`` is build | compile | sample | postprocess | done.

    ``done``/``total`` count draws (tuning included) summed over chains during ``sample`` when
    the sampler reports them (nutpie, pymc); otherwise 0/1 at the start and 1/1 at the end.
    """

    stage: str
    done: int = 0
    total: int = 1
    message: str = ""


Progress = Callable[[ProgressEvent], None]


def _report(progress: Progress | None, stage: str, done: int = 0, total: int = 1,
            message: str = "") -> None:
    if progress is not None:
        progress(ProgressEvent(stage, done, total, message))


@contextlib.contextmanager
def _quiet_pymc() -> Iterator[None]:
    """PyMC logs to its own handler at INFO; keep the library silent while sampling."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerBackend:
    """A sampler: ``compile(model)`` once, then ``sample(handle, model, settings, priors,
    progress)`` any number of times (``priors`` = ``pm.Data`` values of the prior parameters)."""

    name: str
    compile: Callable[[Any], Any]
    sample: Callable[[Any, Any, SamplingSettings, Mapping[str, float], Progress | None],
                     xr.DataTree]
    description: str = ""


def _nutpie_compile(model: pm.Model) -> Any:
    import nutpie

    return nutpie.compile_pymc_model(model, backend="numba")


def _nutpie_sample(handle: Any, model: pm.Model, s: SamplingSettings,
                   prior_values: Mapping[str, float], progress: Progress | None) -> xr.DataTree:
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    compiled = handle.with_data(**prior_values) if prior_values else handle

    def callback(chains: list[Any]) -> None:
        _report(progress, "sample", sum(c.finished_draws for c in chains),
                sum(c.total_draws for c in chains))

    start = time.perf_counter()
    tree = nutpie.sample(compiled, draws=s.draws, tune=max(s.tune, 1), chains=s.chains,
                         seed=s.seed, target_accept=s.target_accept, save_warmup=False,
                         progress_bar=False,
                         progress_callback=callback if progress is not None else None)
    patch_nutpie_idata(tree, model, sampling_time=time.perf_counter() - start)
    return tree


def _pymc_sample(handle: Any, model: pm.Model, s: SamplingSettings,
                 prior_values: Mapping[str, float], progress: Progress | None) -> xr.DataTree:
    import pymc as pm

    total = (s.draws + s.tune) * s.chains
    count = [0]

    def callback(trace: Any, draw: Any) -> None:
        count[0] += 1
        if count[0] % 100 == 0 or count[0] == total:
            _report(progress, "sample", count[0], total)

    with _quiet_pymc():
        return pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, random_seed=s.seed,
                         nuts_sampler="pymc", nuts={"target_accept": s.target_accept},
                         progressbar=False, compute_convergence_checks=False, model=model,
                         callback=callback if progress is not None else None)


def _numpyro_sample(handle: Any, model: pm.Model, s: SamplingSettings,
                    prior_values: Mapping[str, float], progress: Progress | None) -> xr.DataTree:
    import pymc as pm

    with _quiet_pymc():
        return pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, random_seed=s.seed,
                         nuts_sampler="numpyro",
                         nuts={"target_accept": s.target_accept, "chain_method": "sequential"},
                         progressbar=False, compute_convergence_checks=False, model=model)


SAMPLERS: dict[str, SamplerBackend] = {
    "nutpie": SamplerBackend("nutpie", _nutpie_compile, _nutpie_sample,
                             "nutpie (Rust NUTS, model compiled through numba once)"),
    "pymc": SamplerBackend("pymc", lambda model: None, _pymc_sample, "PyMC's NUTS"),
    "numpyro": SamplerBackend("numpyro", lambda model: None, _numpyro_sample,
                              "NumPyro NUTS (JAX)"),
}


def _backend(name: str) -> SamplerBackend:
    if name not in SAMPLERS:
        raise SpecError(f"unknown sampler '{name}'; use one of {', '.join(SAMPLERS)}",
                        key="sampling.sampler")
    return SAMPLERS[name]


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """A fitted model.

    Attributes
    ----------
    tree
        Draws and data (groups listed in the module docstring); ``tree.attrs["engine"]``.
    engine
        ``"exact"`` or ``"mcmc"``.
    sampler
        ``"nutpie"``, ``"pymc"``, ``"numpyro"``, or None for exact fits.
    family
        Model family (``"normal"``, ``"binomial"``...).
    measure
        Effect measure code (``"RR"``...) or None; estimates are on its analysis scale.
    summary
        ``{"mu", "tau", "tau2", "i2", "theta_new"}`` → ``{median, mean, sd, q025, q975}``,
        ``"p_mu_positive"``, ``"theta"`` → ``{label: stats}``, ``"beta"`` → ``{coef: stats}``
        with moderators. Vector quantities (``mu`` etc. with subgroups) map level → stats and
        ``p_mu_positive`` level → probability. Exact fits take these from the exact posterior.
    settings
        Resolved settings: priors as canonical strings, sampler settings, model options,
        package versions.
    diagnostics
        :class:`bayesmeta.diagnostics.Diagnostics` (None when not computed).
    timings
        Seconds: ``build``, ``compile``, ``sample``, ``postprocess`` (``exact`` for exact fits).
    """

    tree: xr.DataTree
    engine: str
    sampler: str | None
    family: str
    measure: str | None
    summary: dict[str, Any]
    settings: dict[str, Any]
    diagnostics: Diagnostics | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result (without the draws)."""
        return {
            "engine": self.engine,
            "sampler": self.sampler,
            "family": self.family,
            "measure": self.measure,
            "summary": jsonable(self.summary),
            "settings": jsonable(self.settings),
            "diagnostics": None if self.diagnostics is None else self.diagnostics.to_dict(),
            "timings": {k: float(v) for k, v in self.timings.items()},
        }


# ---------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------


def _stats(values: np.ndarray) -> dict[str, float]:
    q = np.quantile(values, [0.5, 0.025, 0.975])
    return {"median": float(q[0]), "mean": float(np.mean(values)),
            "sd": float(np.std(values, ddof=1)), "q025": float(q[1]), "q975": float(q[2])}


def summarise_draws(posterior: xr.Dataset | xr.DataTree,
                    names: Sequence[str] = SUMMARY_VARS) -> dict[str, Any]:
    """Posterior summaries from draws (``chain``, ``draw`` pooled).

    Scalars map to ``{median, mean, sd, q025, q975}``; variables with one extra dimension map
    coordinate → stats. Adds ``theta`` (per study) and ``p_mu_positive``.
    """
    out: dict[str, Any] = {}
    for name in (*names, "theta"):
        if name not in posterior.data_vars:
            continue
        da = posterior[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        flat = da.stack(sample=("chain", "draw")).transpose(*extra, "sample").values
        if not extra:
            out[name] = _stats(flat)
        else:
            coords = [str(c) for c in da[extra[0]].values]
            out[name] = {c: _stats(flat[i]) for i, c in enumerate(coords)}
    mu = posterior["mu"].stack(sample=("chain", "draw"))
    if mu.ndim == 1:
        out["p_mu_positive"] = float(np.mean(mu.values > 0))
    else:
        dim = mu.dims[0]
        out["p_mu_positive"] = {str(c): float(np.mean(mu.sel({dim: c}).values > 0))
                                for c in mu[dim].values}
    return out


# ---------------------------------------------------------------------------------------------
# Engine choice
# ---------------------------------------------------------------------------------------------


def exact_allowed(*, family: str, moderators: Sequence[str], subgroup: str | None, bias: str,
                  mu_prior: Prior) -> str | None:
    """None when the exact engine can fit the model, else the reason it cannot."""
    if family != "normal":
        return f"family '{family}' (the exact engine fits the normal–normal model only)"
    if moderators:
        return "moderators (meta-regression)"
    if subgroup:
        return f"subgroup '{subgroup}'"
    if bias not in ("", "none"):
        return f"bias model '{bias}'"
    if mu_prior.family not in EXACT_MU_FAMILIES:
        return f"mu prior '{mu_prior.text}' (the exact engine needs normal or flat)"
    return None


def resolve_engine(engine: str, **model: Any) -> str:
    """``"exact"`` or ``"mcmc"`` for ``engine`` in auto | exact | mcmc (see :func:`exact_allowed`)."""
    if engine not in ("auto", "exact", "mcmc"):
        raise SpecError(f"engine must be auto, exact or mcmc, got '{engine}'",
                        key="sampling.engine")
    reason = exact_allowed(**model)
    if engine == "exact" and reason is not None:
        raise SpecError(f"the exact engine cannot fit this model: {reason}",
                        key="sampling.engine")
    if engine == "auto":
        return "exact" if reason is None else "mcmc"
    return engine


_PRIOR_TARGETS = {"mu": "location", "tau": "scale", "beta": "location"}


def _parse_priors(priors: Mapping[str, Prior | str]) -> dict[str, Any]:
    """Parse ``mu``, ``tau``, ``beta`` strings; other entries (``omega``) pass through as given
    for their family's builder."""
    return {k: parse_prior(v, target=_PRIOR_TARGETS[k])
            if isinstance(v, str) and k in _PRIOR_TARGETS else v
            for k, v in priors.items()}


def _needed_priors(entry: FamilyEntry, priors: Mapping[str, Any],
                   moderators: Sequence[str]) -> dict[str, Any]:
    """The family's priors (and ``beta`` with moderators) must be given; other given priors
    (e.g. ``omega``, ``pet``) pass through to the builder; ``beta`` without moderators is
    dropped."""
    names = list(entry.priors) + (["beta"] if moderators else [])
    missing = [n for n in names if n not in priors]
    if missing:
        raise SpecError(f"no prior given for {', '.join(missing)}", key=f"priors.{missing[0]}")
    return {n: p for n, p in priors.items() if n in names or n != "beta"}


# ---------------------------------------------------------------------------------------------
# MCMC: compile once, sample many times
# ---------------------------------------------------------------------------------------------


class CompiledFit:
    """A built and compiled model that can be sampled repeatedly with new prior parameters.

    Create with :func:`compile_fit`. ``sample(settings, priors=...)`` accepts priors with the
    same structure (families, and finiteness of ``uniform`` bounds) as the compiled ones; check
    with :meth:`accepts`. Not thread-safe: one ``sample`` at a time per object.
    """

    def __init__(self, *, data: pd.DataFrame, model: pm.Model, entry: FamilyEntry,
                 priors: dict[str, Prior], backend: SamplerBackend, handle: Any,
                 options: dict[str, Any], measure: str | None,
                 timings: dict[str, float]) -> None:
        self.data = data
        self.model = model
        self.entry = entry
        self.priors = priors
        self.backend = backend
        self.handle = handle
        self.options = options
        self.measure = measure
        self.timings = timings
        self._samples = 0

    @property
    def sampler(self) -> str:
        return self.backend.name

    def accepts(self, priors: Mapping[str, Prior | str]) -> bool:
        """Whether ``priors`` can be used without rebuilding (same families and bounds).

        Entries for variables the model does not have (e.g. ``beta`` without moderators) are
        ignored."""
        new = {**self.priors,
               **{k: v for k, v in _parse_priors(priors).items() if k in self.priors}}
        return prior_structure(new) == prior_structure(self.priors)

    def sample(self, sampling: SamplingSettings | None = None, *,
               priors: Mapping[str, Prior | str] | None = None,
               progress: Progress | None = None, diagnostics: bool = True,
               posterior_predictive: bool = True) -> FitResult:
        """Draw from the posterior (with ``priors`` replacing the compiled priors' parameters).

        Raises
        ------
        SpecError
            When ``priors`` differ in structure (family) from the compiled ones, or the sampler
            differs from the compiled one.
        """
        sampling = sampling or SamplingSettings(sampler=self.backend.name)
        if sampling.sampler != self.backend.name:
            raise SpecError(f"this model was compiled for sampler '{self.backend.name}', "
                            f"not '{sampling.sampler}'", key="sampling.sampler")
        use = dict(self.priors)
        if priors:
            if not self.accepts(priors):
                raise SpecError("new priors change a prior family or bound: build a new "
                                "compiled fit with compile_fit()", key="priors")
            use.update({k: v for k, v in _parse_priors(priors).items() if k in use})
        values = {k: v for k, v in prior_parameter_values(use).items()
                  if k in self.model.named_vars}
        for name, value in values.items():
            self.model[name].set_value(np.asarray(value, dtype=self.model[name].dtype))
        total = (sampling.draws + sampling.tune) * sampling.chains
        _report(progress, "sample", 0, total)
        t0 = time.perf_counter()
        tree = self.backend.sample(self.handle, self.model, sampling, values, progress)
        t_sample = time.perf_counter() - t0
        _report(progress, "sample", total, total)
        _report(progress, "postprocess")
        t0 = time.perf_counter()
        tree = _complete_tree(tree, self.model, self.entry, sampling.seed,
                              posterior_predictive=posterior_predictive)
        summary = summarise_draws(tree["posterior"].to_dataset())
        settings = {
            "engine": "mcmc",
            "family": self.entry.name,
            "measure": self.measure,
            "priors": {k: getattr(p, "text", str(p)) for k, p in use.items()},
            **self.options,
            **sampling.to_dict(),
            "versions": package_versions("bayesmeta", "pymc", "pytensor", self.backend.name),
        }
        diag = _diagnose(tree) if diagnostics else None
        t_post = time.perf_counter() - t0
        _report(progress, "done", 1, 1)
        # build/compile seconds belong to the first fit only; later ones spent nothing on them
        spent = self.timings if self._samples == 0 else dict.fromkeys(self.timings, 0.0)
        self._samples += 1
        timings = {**spent, "sample": t_sample, "postprocess": t_post}
        return FitResult(tree=tree, engine="mcmc", sampler=self.backend.name,
                         family=self.entry.name, measure=self.measure, summary=summary,
                         settings=settings, diagnostics=diag, timings=timings)


def compile_fit(
    data: pd.DataFrame,
    *,
    family: str = "normal",
    priors: Mapping[str, Prior | str],
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
    bias: str = "none",
    sampler: str = "nutpie",
    measure: str | None = None,
    progress: Progress | None = None,
) -> CompiledFit:
    """Build the model and compile it for ``sampler`` (see :class:`CompiledFit`).

    ``bias`` other than ``"none"`` selects the ``selection`` family (registered by
    ``bayesmeta.builders.selection``) and is passed to it as an option.
    """
    backend = _backend(sampler)
    bias = bias or "none"
    if bias != "none" and family != "normal":
        raise SpecError(f"bias models work on the normal family (yi/vi), not '{family}'",
                        key="model.bias")
    entry = get_family(family if bias == "none" else "selection")
    parsed = _needed_priors(entry, _parse_priors(priors), moderators)
    options: dict[str, Any] = {} if bias == "none" else {"bias": bias}
    _report(progress, "build")
    t0 = time.perf_counter()
    model = build_model(data, family=entry.name, priors=parsed, moderators=moderators,
                        subgroup=subgroup, subgroup_tau=subgroup_tau, **options)
    t_build = time.perf_counter() - t0
    _report(progress, "compile")
    t0 = time.perf_counter()
    handle = backend.compile(model)
    t_compile = time.perf_counter() - t0
    return CompiledFit(
        data=data, model=model, entry=entry, priors=parsed, backend=backend, handle=handle,
        options={"moderators": list(moderators), "subgroup": subgroup or None,
                 "subgroup_tau": subgroup_tau, "bias": bias},
        measure=measure, timings={"build": t_build, "compile": t_compile},
    )


#: The compiled models of this process (see :mod:`bayesmeta.compiled_models`).
COMPILED_MODELS = CompiledModelCache(maxsize=16)


def clear_compiled_models() -> None:
    """Forget the compiled models this process keeps for reuse."""
    COMPILED_MODELS.clear()


@contextlib.contextmanager
def compiled_model(data: pd.DataFrame, *, priors: Mapping[str, Prior | str],
                   progress: Progress | None = None, **model: Any) -> Iterator[CompiledFit]:
    """Lend this process's compiled model of ``data``, compiled on first use and kept in
    :data:`COMPILED_MODELS`; sample it with ``priors`` of the same families as those it was
    compiled with. ``model`` names every field of :func:`~bayesmeta.compiled_models.model_key`
    (family, moderators, subgroup, subgroup_tau, bias, sampler, measure), as :func:`compile_fit`
    takes them."""
    def build() -> CompiledFit:
        return compile_fit(data, priors=priors, progress=progress, **model)

    with COMPILED_MODELS.borrow(model_key(data, **model), priors, build) as compiled:
        yield compiled


def _complete_tree(tree: xr.DataTree, model: pm.Model, entry: FamilyEntry, seed: int, *,
                   posterior_predictive: bool) -> xr.DataTree:
    """Add ``log_likelihood`` (``y`` per study), ``posterior_predictive`` and attrs."""
    if entry.log_likelihood is not None:
        loglik = xr.Dataset(entry.log_likelihood(tree))
    else:
        import pymc as pm

        with _quiet_pymc():
            loglik = pm.compute_log_likelihood(tree, var_names=list(entry.observed), model=model,
                                               extend_inferencedata=False, progressbar=False)
    if "y" not in loglik.data_vars:
        loglik["y"] = sum(loglik[name] for name in entry.observed)
    tree["log_likelihood"] = xr.DataTree(loglik)
    if posterior_predictive and entry.posterior_predictive is not None:
        rng = np.random.default_rng([seed, 1])
        tree["posterior_predictive"] = xr.DataTree(
            xr.Dataset(entry.posterior_predictive(tree, rng)))
    tree.attrs["engine"] = "mcmc"
    return tree


def _diagnose(tree: xr.DataTree) -> Diagnostics:
    from bayesmeta.diagnostics import check

    return check(tree)


# ---------------------------------------------------------------------------------------------
# Exact engine
# ---------------------------------------------------------------------------------------------


def _fit_exact(data: pd.DataFrame, priors: dict[str, Prior], sampling: SamplingSettings,
               measure: str | None, progress: Progress | None, diagnostics: bool) -> FitResult:
    from bayesmeta.builders.normal import effect_arrays
    from bayesmeta.builders.regression import study_labels
    from bayesmeta.exact import ExactNormalNormal

    yi, vi = effect_arrays(data)
    labels = study_labels(data)
    _report(progress, "sample", message="exact engine")
    t0 = time.perf_counter()
    post = ExactNormalNormal(yi, vi, tau_prior=priors["tau"], mu_prior=priors["mu"],
                             labels=labels).fit()
    exact_summary = post.summary()
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    tree = post.to_datatree(draws=sampling.draws, chains=sampling.chains, seed=sampling.seed)
    tree = _complete_exact_tree(tree, vi, sampling.seed)
    summary = {k: exact_summary[k] for k in ("mu", "tau", "tau2", "i2", "theta_new",
                                             "p_mu_positive")}
    summary["theta"] = {lab: {s: row[s] for s in STATS}
                        for lab, row in exact_summary["theta"].items()}
    settings = {
        "engine": "exact", "family": "normal", "measure": measure,
        "priors": {"mu": priors["mu"].text, "tau": priors["tau"].text},
        "moderators": [], "subgroup": None, "subgroup_tau": "separate", "bias": "none",
        "draws": sampling.draws, "chains": sampling.chains, "seed": sampling.seed,
        "versions": package_versions("bayesmeta", "scipy"),
    }
    diag = _diagnose(tree) if diagnostics else None
    _report(progress, "done", 1, 1)
    return FitResult(tree=tree, engine="exact", sampler=None, family="normal", measure=measure,
                     summary=summary, settings=settings, diagnostics=diag,
                     timings={"exact": t_exact, "postprocess": time.perf_counter() - t0})


def _complete_exact_tree(tree: xr.DataTree, vi: np.ndarray, seed: int) -> xr.DataTree:
    """Add the ``posterior_predictive`` group (``y ~ N(theta, vi)``) to an exact-engine tree,
    which already has ``posterior``, ``log_likelihood``, ``observed_data``, ``constant_data``."""
    if "posterior_predictive" not in tree.children:
        rng = np.random.default_rng([seed, 1])
        th = tree["posterior"]["theta"].transpose(..., "study")
        y_rep = th.copy(data=th.values + np.sqrt(vi) * rng.standard_normal(th.shape))
        tree["posterior_predictive"] = xr.DataTree(xr.Dataset({"y": y_rep}))
    tree.attrs["engine"] = "exact"
    return tree


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def fit_data(
    data: pd.DataFrame,
    *,
    measure: str | None = None,
    family: str = "normal",
    priors: Mapping[str, Prior | str],
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
    bias: str = "none",
    sampling: SamplingSettings | None = None,
    engine: str = "auto",
    progress: Progress | None = None,
    diagnostics: bool = True,
    reuse_compiled: bool = True,
) -> FitResult:
    """Fit a model to an analysis frame.

    Parameters
    ----------
    data
        Analysis frame (``yi``/``vi`` for the normal family, counts for the binomial one,
        ``label`` or ``study``, moderator columns).
    measure
        Effect measure code, recorded in the result.
    family, moderators, subgroup, subgroup_tau, bias
        The model (see :func:`bayesmeta.builders.build_model`).
    priors
        Priors by variable, as :class:`Prior` objects or strings.
    sampling
        Sampler settings (default :class:`SamplingSettings`); ``draws``/``chains``/``seed``
        also size the exact engine's independent draws.
    engine
        ``"auto"``, ``"exact"`` or ``"mcmc"``.
    progress
        Optional callable receiving :class:`ProgressEvent`.
    diagnostics
        Run :func:`bayesmeta.diagnostics.check` on the tree.
    reuse_compiled
        Sample an already compiled model of this process when the model, the data and the
        prior families are the same (:data:`COMPILED_MODELS`); ``False`` compiles afresh and
        keeps nothing.
    """
    sampling = sampling or SamplingSettings()
    if family == "binomial" and measure not in (None, "RR"):
        raise SpecError(f"the binomial family models the log risk ratio; effect.measure is "
                        f"'{measure}' (use measure = \"RR\" or family = \"normal\")",
                        key="model.family")
    parsed = _parse_priors(priors)
    if "mu" not in parsed:
        raise SpecError("no prior given for mu", key="priors.mu")
    chosen = resolve_engine(engine, family=family, moderators=tuple(moderators),
                            subgroup=subgroup or None, bias=bias or "none", mu_prior=parsed["mu"])
    if chosen == "exact":
        if "tau" not in parsed:
            raise SpecError("no prior given for tau", key="priors.tau")
        return _fit_exact(data, parsed, sampling, measure, progress, diagnostics)
    model = {"family": family, "priors": parsed, "moderators": moderators, "subgroup": subgroup,
             "subgroup_tau": subgroup_tau, "bias": bias, "sampler": sampling.sampler,
             "measure": measure, "progress": progress}
    if not reuse_compiled:
        return compile_fit(data, **model).sample(sampling, progress=progress, diagnostics=diagnostics)
    with compiled_model(data, **model) as compiled:
        return compiled.sample(sampling, priors=parsed, progress=progress, diagnostics=diagnostics)


def fit(
    spec: Spec,
    *,
    engine: str | None = None,
    sampler: str | None = None,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int | None = None,
    target_accept: float | None = None,
    progress: Progress | None = None,
    diagnostics: bool = True,
    data: pd.DataFrame | None = None,
    reuse_compiled: bool = True,
) -> FitResult:
    """Fit the Bayesian model of a spec; keyword arguments override ``[sampling]``.

    Reads the data with :func:`bayesmeta.spec.load_data` (``yi``/``vi`` computed as the
    ``[effect]`` section says) unless ``data``, the already loaded analysis frame of the same
    spec, is given, and calls :func:`fit_data` (``reuse_compiled`` is passed on).
    """
    from bayesmeta.spec import load_data

    overrides = {"sampling.engine": engine, "sampling.sampler": sampler,
                 "sampling.chains": chains, "sampling.draws": draws, "sampling.tune": tune,
                 "sampling.seed": seed, "sampling.target_accept": target_accept}
    if any(v is not None for v in overrides.values()):
        spec = spec.with_overrides(overrides)
    if data is None:
        data = load_data(spec)
    m, p = spec.model, spec.priors
    priors: dict[str, str] = {"mu": p.mu, "tau": p.tau, "beta": p.beta}
    if m.bias not in ("", "none"):
        priors["omega"] = p.omega
    return fit_data(data, measure=spec.effect.measure, family=m.family, priors=priors,
                    moderators=m.moderators, subgroup=m.subgroup or None,
                    subgroup_tau=m.subgroup_tau, bias=m.bias,
                    sampling=SamplingSettings.from_spec(spec.sampling),
                    engine=spec.sampling.engine, progress=progress, diagnostics=diagnostics,
                    reuse_compiled=reuse_compiled)
