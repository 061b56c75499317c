"""Prior registry: priors are data, written as short strings.

``parse_prior("halfnormal(0.5)")`` returns a frozen :class:`Prior` that knows its family,
its parameters, a canonical text that parses back to an equal prior, whether it is a prior
for a heterogeneity *scale* (tau) or a *location* (mu, beta), whether it is proper, where
it comes from, and its density.

Scale priors are always expressed **on the tau scale**: ``Prior.logpdf(tau)`` includes the
Jacobian for families defined on tau² (``lognormal_tau2``, ``logt_tau2`` and the empirical
``turner2015``/``rhodes2015`` priors).

The parser is a small tokenizer for ``name(arg, arg, key=value)``; nothing is ever evaluated.
Unknown names, wrong arity and invalid values raise :class:`bayesmeta.errors.SpecError`.

The empirical tables live in ``bayesmeta/priors_data/turner2015.csv`` (Turner et al. 2015,
Table IV, 16 outcome types x 5 comparison types, plus the general healthcare setting) and
``rhodes2015.csv`` (Rhodes et al. 2015, Table 3 and Appendix Tables A.3.1/A.3.2, 8 outcome types
x 3 comparison types x 3 medical areas, plus the general setting); each row names its table and
a ``note`` column records the two cells where transcriptions disagree or look inconsistent.

Families (on tau unless stated)
-------------------------------
========================  ===========================================================
``halfnormal(scale)``     tau ~ |N(0, scale²)|
``halfcauchy(scale)``     tau ~ |Cauchy(0, scale)|
``halft(nu, scale)``      tau ~ |t_nu(0, scale)|
``uniform(lower, upper)`` tau ~ U(lower, upper); ``upper = inf`` gives the improper flat prior
``exponential(rate)``     tau ~ Exp(rate)
``lognormal(m, s)``       log tau ~ N(m, s²)
``lognormal_tau2(m, s)``  log tau² ~ N(m, s²)
``logt_tau2(m, s, nu)``   log tau² ~ t_nu(m, s)
``turner2015(o, c)``      Turner et al. (2015) predictive log-normal for tau² of log-OR
``rhodes2015(o, c, a)``   Rhodes et al. (2015) predictive log-t(5) for tau² of SMD
``jeffreys``              Jeffreys prior for tau, depends on the within-study variances
``normal(m, s)``          location ~ N(m, s²)
``student_t(nu, m, s)``   location ~ t_nu(m, s)
``flat``                  improper uniform location prior
========================  ===========================================================
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
from scipy import stats

from bayesmeta.errors import SpecError

__all__ = [
    "Prior",
    "PriorEntry",
    "ParamSpec",
    "parse_prior",
    "list_priors",
    "jeffreys_logpdf",
    "turner2015_table",
    "rhodes2015_table",
]

SCALE = "scale"
LOCATION = "location"

TURNER_SOURCE = (
    "Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT (2015). Predictive distributions for "
    "between-study heterogeneity and simple methods for their application in Bayesian meta-analysis. "
    "Statistics in Medicine 34(6):984-998, Table IV"
)
RHODES_SOURCE = (
    "Rhodes KM, Turner RM, Higgins JPT (2015). Predictive distributions were developed for the extent "
    "of heterogeneity in meta-analyses of continuous outcome data. Journal of Clinical Epidemiology "
    "68(1):52-60, Table 3 (areas: Appendix Tables A.3.1 respiratory, A.3.2 cancer)"
)
JEFFREYS_SOURCE = (
    "Jeffreys prior for tau in the normal-normal model: Tibshirani R (1989) Biometrika 76:604-608; "
    "Bodnar O, Link A, Arendacka B, Possolo A, Elster C (2017) Stat Med 36:1858-1875; "
    "Roever C (2020) J Stat Softw 93(6), Sec. 2.4"
)


# ---------------------------------------------------------------------------------------------
# Families: densities on the tau scale (scale priors) or on the real line (location priors)
# ---------------------------------------------------------------------------------------------


def _halft_logpdf(x: np.ndarray, nu: float, scale: float) -> np.ndarray:
    return math.log(2.0) + stats.t.logpdf(x / scale, nu) - math.log(scale)


def _lognormal_tau2_logpdf(x: np.ndarray, m: float, s: float) -> np.ndarray:
    # tau2 = tau^2 with log tau2 ~ N(m, s^2); p(tau) = p(tau2) * 2 tau
    with np.errstate(divide="ignore", invalid="ignore"):
        logx = np.log(x)
        return (
            math.log(2.0) + logx + stats.norm.logpdf(2.0 * logx, m, s) - 2.0 * logx
        )


def _logt_tau2_logpdf(x: np.ndarray, m: float, s: float, nu: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logx = np.log(x)
        return math.log(2.0) - logx + stats.t.logpdf((2.0 * logx - m) / s, nu) - math.log(s)


@dataclass(frozen=True)
class _Family:
    """Density, CDF and quantile function of one family (``cdf``/``ppf`` None when improper)."""

    target: str
    logpdf: Callable[..., np.ndarray]
    cdf: Callable[..., np.ndarray] | None
    ppf: Callable[..., np.ndarray] | None
    support: Callable[..., tuple[float, float]]


def _pos(*_: float) -> tuple[float, float]:
    return (0.0, math.inf)


def _real(*_: float) -> tuple[float, float]:
    return (-math.inf, math.inf)


_FAMILIES: dict[str, _Family] = {
    "halfnormal": _Family(
        SCALE,
        lambda x, s: stats.halfnorm.logpdf(x, scale=s),
        lambda x, s: stats.halfnorm.cdf(x, scale=s),
        lambda p, s: stats.halfnorm.ppf(p, scale=s),
        _pos,
    ),
    "halfcauchy": _Family(
        SCALE,
        lambda x, s: stats.halfcauchy.logpdf(x, scale=s),
        lambda x, s: stats.halfcauchy.cdf(x, scale=s),
        lambda p, s: stats.halfcauchy.ppf(p, scale=s),
        _pos,
    ),
    "halft": _Family(
        SCALE,
        _halft_logpdf,
        lambda x, nu, s: np.clip(2.0 * stats.t.cdf(x / s, nu) - 1.0, 0.0, 1.0),
        lambda p, nu, s: s * stats.t.ppf(0.5 + 0.5 * np.asarray(p, dtype=float), nu),
        _pos,
    ),
    "uniform": _Family(
        SCALE,
        lambda x, lo, hi: (
            np.zeros_like(x) if math.isinf(hi) else np.full_like(x, -math.log(hi - lo))
        ),
        lambda x, lo, hi: np.clip((x - lo) / (hi - lo), 0.0, 1.0),
        lambda p, lo, hi: lo + np.asarray(p, dtype=float) * (hi - lo),
        lambda lo, hi: (lo, hi),
    ),
    "exponential": _Family(
        SCALE,
        lambda x, rate: stats.expon.logpdf(x, scale=1.0 / rate),
        lambda x, rate: stats.expon.cdf(x, scale=1.0 / rate),
        lambda p, rate: stats.expon.ppf(p, scale=1.0 / rate),
        _pos,
    ),
    "lognormal": _Family(
        SCALE,
        lambda x, m, s: stats.lognorm.logpdf(x, s, scale=math.exp(m)),
        lambda x, m, s: stats.lognorm.cdf(x, s, scale=math.exp(m)),
        lambda p, m, s: stats.lognorm.ppf(p, s, scale=math.exp(m)),
        _pos,
    ),
    "lognormal_tau2": _Family(
        SCALE,
        _lognormal_tau2_logpdf,
        lambda x, m, s: stats.norm.cdf(2.0 * np.log(np.maximum(x, 1e-300)), m, s) * (x > 0),
        lambda p, m, s: np.exp(0.5 * stats.norm.ppf(p, m, s)),
        _pos,
    ),
    "logt_tau2": _Family(
        SCALE,
        _logt_tau2_logpdf,
        lambda x, m, s, nu: stats.t.cdf((2.0 * np.log(np.maximum(x, 1e-300)) - m) / s, nu) * (x > 0),
        lambda p, m, s, nu: np.exp(0.5 * (m + s * stats.t.ppf(p, nu))),
        _pos,
    ),
    "jeffreys": _Family(SCALE, lambda x: np.full_like(x, np.nan), None, None, _pos),
    "normal": _Family(
        LOCATION,
        lambda x, m, s: stats.norm.logpdf(x, m, s),
        lambda x, m, s: stats.norm.cdf(x, m, s),
        lambda p, m, s: stats.norm.ppf(p, m, s),
        _real,
    ),
    "student_t": _Family(
        LOCATION,
        lambda x, nu, m, s: stats.t.logpdf(x, nu, m, s),
        lambda x, nu, m, s: stats.t.cdf(x, nu, m, s),
        lambda p, nu, m, s: stats.t.ppf(p, nu, m, s),
        _real,
    ),
    "flat": _Family(LOCATION, lambda x: np.zeros_like(x), None, None, _real),
}


def jeffreys_logpdf(tau: Any, vi: Any) -> np.ndarray:
    """Unnormalised log Jeffreys prior for tau given within-study variances ``vi``.

    ``p(tau) ∝ sqrt(sum_i (tau / (v_i + tau²))²)`` (Röver 2020, J Stat Softw 93(6), Sec. 2.4;
    Bodnar et al. 2017). It behaves like ``1/tau`` for large tau, so it is improper.
    """
    tau = np.asarray(tau, dtype=float)
    vi = np.asarray(vi, dtype=float)
    t = tau[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sum((t / (vi + t * t)) ** 2, axis=-1)
        out = 0.5 * np.log(s)
    return np.where(tau >= 0, out, -np.inf)


# ---------------------------------------------------------------------------------------------
# The Prior object
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prior:
    """A parsed prior.

    Attributes
    ----------
    name
        Registry name the text used (``"halfnormal"``, ``"turner2015"``...).
    family
        Density family (``"turner2015"`` resolves to ``"lognormal_tau2"``, ``"rhodes2015"`` to
        ``"logt_tau2"``, others are their own family).
    params
        Family parameters in the order of the family's canonical string (for ``turner2015``
        these are the resolved ``(m, s)`` of ``lognormal_tau2``).
    text
        Canonical string; ``parse_prior(p.text) == p``.
    target
        ``"scale"`` (tau priors) or ``"location"`` (mu, beta priors).
    proper
        Whether the prior integrates to one.
    source
        Citation for the prior.
    description
        One-line human description.
    """

    name: str
    family: str
    params: tuple[float, ...]
    text: str
    target: str
    proper: bool
    source: str = ""
    description: str = ""

    @property
    def data_dependent(self) -> bool:
        """True for priors that need the within-study variances (``jeffreys``)."""
        return self.family == "jeffreys"

    @property
    def support(self) -> tuple[float, float]:
        """Interval (lower, upper) on which the density is positive."""
        return _FAMILIES[self.family].support(*self.params)

    def logpdf(self, x: Any, *, vi: Any = None) -> np.ndarray:
        """Log density at ``x`` (tau scale for scale priors); ``-inf`` outside the support.

        Improper priors return their unnormalised log density (0 for ``flat`` and
        ``uniform(0, inf)``). ``jeffreys`` needs ``vi``.
        """
        x = np.asarray(x, dtype=float)
        if self.family == "jeffreys":
            if vi is None:
                raise SpecError(
                    "the jeffreys prior depends on the within-study variances: pass vi= "
                    "(it is supported by the exact engine only)"
                )
            return jeffreys_logpdf(x, vi)
        lo, hi = self.support
        inside = (x >= lo) & (x <= hi) if math.isfinite(hi) else (x >= lo)
        xs = np.where(inside, x, lo if math.isfinite(lo) else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            val = np.asarray(_FAMILIES[self.family].logpdf(xs, *self.params), dtype=float)
        out = np.where(inside, val, -np.inf)
        return out if out.ndim else out[()]

    def pdf(self, x: Any, *, vi: Any = None) -> np.ndarray:
        """Density at ``x`` (``exp(logpdf)``)."""
        return np.exp(self.logpdf(x, vi=vi))

    def cdf(self, x: Any) -> np.ndarray:
        """Cumulative distribution function; raises SpecError for improper priors."""
        fam = _FAMILIES[self.family]
        if not self.proper or fam.cdf is None:
            raise SpecError(f"prior '{self.text}' is improper: it has no CDF")
        x = np.asarray(x, dtype=float)
        lo, hi = self.support
        xs = np.clip(x, lo, hi)
        out = np.asarray(fam.cdf(xs, *self.params), dtype=float)
        out = np.where(x < lo, 0.0, np.where(x >= hi, 1.0, out))
        return out if out.ndim else out[()]

    def ppf(self, p: Any) -> np.ndarray:
        """Quantile function; raises SpecError for improper priors."""
        fam = _FAMILIES[self.family]
        if not self.proper or fam.ppf is None:
            raise SpecError(f"prior '{self.text}' is improper: it has no quantile function")
        with np.errstate(over="ignore", under="ignore"):  # extreme p: 0 or inf is the answer
            out = np.asarray(fam.ppf(np.asarray(p, dtype=float), *self.params), dtype=float)
        return out if out.ndim else out[()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "name": self.name,
            "family": self.family,
            "params": [float(v) for v in self.params],
            "text": self.text,
            "target": self.target,
            "proper": bool(self.proper),
            "source": self.source,
            "description": self.description,
        }


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One argument of a registry entry.

    ``kind`` is ``"float"`` or ``"str"``; optional arguments (``required=False``) take
    ``default``; ``check`` returns an error message or None.
    """

    name: str
    kind: str = "float"
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    doc: str = ""
    required: bool = True


def _positive(x: float) -> str | None:
    return None if (math.isfinite(x) and x > 0) else "must be a finite number > 0"


def _finite(x: float) -> str | None:
    return None if math.isfinite(x) else "must be a finite number"


@dataclass(frozen=True)
class PriorEntry:
    """A registry entry: how to turn arguments into a :class:`Prior`."""

    name: str
    target: str
    params: tuple[ParamSpec, ...]
    build: Callable[[dict[str, Any]], Prior] = field(repr=False)
    source: str
    doc: str
    example: str
    settings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description for the CLI and the report."""
        return {
            "name": self.name,
            "target": self.target,
            "params": [p.name for p in self.params],
            "source": self.source,
            "doc": self.doc,
            "example": self.example,
            "settings": list(self.settings),
        }


def _fmt(x: float) -> str:
    """Shortest text that parses back to exactly ``x``."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _simple(
    name: str,
    target: str,
    params: tuple[ParamSpec, ...],
    source: str,
    doc: str,
    example: str,
    *,
    proper: Callable[[dict[str, Any]], bool] | bool = True,
    extra_check: Callable[[dict[str, Any]], str | None] | None = None,
    describe: Callable[[dict[str, Any]], str] | None = None,
) -> PriorEntry:
    def build(args: dict[str, Any]) -> Prior:
        if extra_check is not None:
            msg = extra_check(args)
            if msg:
                raise SpecError(f"{name}: {msg}")
        values = tuple(float(args[p.name]) for p in params)
        text = name if not params else f"{name}({', '.join(_fmt(v) for v in values)})"
        is_proper = proper(args) if callable(proper) else proper
        return Prior(
            name=name,
            family=name,
            params=values,
            text=text,
            target=target,
            proper=is_proper,
            source=source,
            description=describe(args) if describe else doc,
        )

    return PriorEntry(name, target, params, build, source, doc, example)


def _uniform_check(a: dict[str, Any]) -> str | None:
    lo, hi = a["lower"], a["upper"]
    if not (math.isfinite(lo) and lo >= 0):
        return "lower must be a finite number >= 0 (tau cannot be negative)"
    if not hi > lo:
        return "upper must be greater than lower"
    return None


_STD = "standard distribution"

_ENTRIES: list[PriorEntry] = [
    _simple(
        "halfnormal", SCALE, (ParamSpec("scale", check=_positive, doc="scale of |N(0, scale²)|"),),
        _STD, "tau ~ half-normal(scale)", "halfnormal(0.5)",
        describe=lambda a: f"tau ~ half-normal with scale {_fmt(a['scale'])}",
    ),
    _simple(
        "halfcauchy", SCALE, (ParamSpec("scale", check=_positive),),
        _STD, "tau ~ half-Cauchy(scale)", "halfcauchy(1)",
        describe=lambda a: f"tau ~ half-Cauchy with scale {_fmt(a['scale'])}",
    ),
    _simple(
        "halft", SCALE, (ParamSpec("nu", check=_positive), ParamSpec("scale", check=_positive)),
        _STD, "tau ~ half-Student-t(nu, scale)", "halft(3, 0.5)",
        describe=lambda a: f"tau ~ half-t with {_fmt(a['nu'])} df and scale {_fmt(a['scale'])}",
    ),
    _simple(
        "uniform", SCALE, (ParamSpec("lower"), ParamSpec("upper")),
        _STD, "tau ~ uniform(lower, upper); upper = inf is the improper flat prior on tau",
        "uniform(0, 5)",
        proper=lambda a: math.isfinite(a["upper"]),
        extra_check=_uniform_check,
        describe=lambda a: f"tau ~ uniform on [{_fmt(a['lower'])}, {_fmt(a['upper'])}]",
    ),
    _simple(
        "exponential", SCALE, (ParamSpec("rate", check=_positive),),
        _STD, "tau ~ exponential(rate)", "exponential(2)",
        describe=lambda a: f"tau ~ exponential with rate {_fmt(a['rate'])}",
    ),
    _simple(
        "lognormal", SCALE, (ParamSpec("m", check=_finite), ParamSpec("s", check=_positive)),
        _STD, "log tau ~ N(m, s²)", "lognormal(-1, 1)",
        describe=lambda a: f"log tau ~ N({_fmt(a['m'])}, {_fmt(a['s'])}²)",
    ),
    _simple(
        "lognormal_tau2", SCALE, (ParamSpec("m", check=_finite), ParamSpec("s", check=_positive)),
        _STD, "log tau² ~ N(m, s²)", "lognormal_tau2(-2.56, 1.74)",
        describe=lambda a: f"log tau² ~ N({_fmt(a['m'])}, {_fmt(a['s'])}²)",
    ),
    _simple(
        "logt_tau2", SCALE,
        (ParamSpec("m", check=_finite), ParamSpec("s", check=_positive),
         ParamSpec("nu", check=_positive)),
        _STD, "log tau² ~ Student-t(nu, location m, scale s)", "logt_tau2(-3.44, 2.59, 5)",
        describe=lambda a: f"log tau² ~ t_{_fmt(a['nu'])}({_fmt(a['m'])}, {_fmt(a['s'])})",
    ),
    _simple(
        "jeffreys", SCALE, (), JEFFREYS_SOURCE,
        "Jeffreys prior for tau, p(tau) ∝ sqrt(Σ (tau/(v_i+tau²))²); depends on the data "
        "(exact engine only); improper",
        "jeffreys", proper=False,
    ),
    _simple(
        "normal", LOCATION, (ParamSpec("m", check=_finite), ParamSpec("s", check=_positive)),
        _STD, "normal(mean, sd)", "normal(0, 10)",
        describe=lambda a: f"N({_fmt(a['m'])}, {_fmt(a['s'])}²)",
    ),
    _simple(
        "student_t", LOCATION,
        (ParamSpec("nu", check=_positive), ParamSpec("m", check=_finite),
         ParamSpec("s", check=_positive)),
        _STD, "Student-t(nu, location m, scale s)", "student_t(3, 0, 2.5)",
        describe=lambda a: f"t_{_fmt(a['nu'])}({_fmt(a['m'])}, {_fmt(a['s'])})",
    ),
    _simple("flat", LOCATION, (), _STD, "improper uniform prior on the real line", "flat",
            proper=False),
]


# ---------------------------------------------------------------------------------------------
# Empirical priors: Turner et al. (2015) and Rhodes et al. (2015)
# ---------------------------------------------------------------------------------------------


def _norm_key(s: str) -> str:
    s = s.strip().lower().replace(".", " ")
    s = re.sub(r"\s*/\s*", "/", s)
    s = re.sub(r"\s*-\s*", "-", s)
    return re.sub(r"\s+", " ", s).strip()


@cache
def turner2015_table() -> dict[tuple[str, str], tuple[float, float]]:
    """``(outcome, comparison) -> (m, s)`` of log tau² ~ N(m, s²) (Turner et al. 2015, Table IV)."""
    text = files("bayesmeta.priors_data").joinpath("turner2015.csv").read_text(encoding="utf-8")
    return {
        (r["outcome"], r["comparison"]): (float(r["mu"]), float(r["sigma"]))
        for r in csv.DictReader(text.splitlines())
    }


@cache
def rhodes2015_table() -> dict[tuple[str, str, str], tuple[float, float, float]]:
    """``(outcome, comparison, area) -> (m, s, nu)`` of log tau² ~ t_nu(m, s) (Rhodes et al. 2015)."""
    text = files("bayesmeta.priors_data").joinpath("rhodes2015.csv").read_text(encoding="utf-8")
    return {
        (r["outcome"], r["comparison"], r["area"]): (
            float(r["location"]), float(r["scale"]), float(r["df"])
        )
        for r in csv.DictReader(text.splitlines())
    }


_TURNER_OUTCOME_ALIASES = {
    "mortality": "all-cause mortality",
    "obstetric": "obstetric outcomes",
    "cause-specific mortality": "cause-specific mortality/major morbidity event/composite (mortality or morbidity)",
    "morbidity": "cause-specific mortality/major morbidity event/composite (mortality or morbidity)",
    "resource use": "resource use/hospital stay/process",
    "surgical": "surgical/device related success/failure",
    "withdrawals": "withdrawals/drop-outs",
    "internal": "internal/structure-related outcomes",
    "physical health": "general physical health indicators",
    "adverse events": "adverse events",
    "infection": "infection/onset of new disease",
    "signs/symptoms": "signs/symptoms reflecting continuation/end of condition",
    "pain": "pain",
    "quality of life": "quality of life/functioning (dichotomized)",
    "mental health": "mental health indicators",
    "biological markers": "biological markers (dichotomized)",
    "subjective": "subjective outcomes (various)",
}
_TURNER_COMPARISON_ALIASES = {
    "pharm-placebo": "pharmacological vs placebo/control",
    "pharm-pharm": "pharmacological vs pharmacological",
    "nonpharm-placebo": "non-pharmacological vs placebo/control",
    "nonpharm-pharm": "non-pharmacological vs pharmacological",
    "nonpharm-nonpharm": "non-pharmacological vs non-pharmacological",
}
_RHODES_OUTCOME_ALIASES = {
    "obstetric": "obstetric outcome",
    "resource use": "resource use and hospital stay/process",
    "structure-related": "internal and external structure-related outcome",
    "physical health": "general physical health and adverse event and pain and quality of life/functioning",
    "signs/symptoms": "signs/symptoms reflecting continuation/end of condition and infection/onset of new acute/chronic disease",
    "mental health": "mental health outcome",
    "biological marker": "biological marker",
    "subjective": "various subjectively measured outcomes",
}
_RHODES_COMPARISON_ALIASES = {
    "pharm-placebo": "pharmacological vs placebo/control",
    "pharm-pharm": "pharmacological vs pharmacological",
    "nonpharm": "non-pharmacological (any)",
}


def _resolve(value: str, canon: list[str], aliases: Mapping[str, str], what: str, prior: str) -> str:
    key = _norm_key(value)
    lookup = {_norm_key(c): c for c in canon}
    lookup.update({_norm_key(a): c for a, c in aliases.items()})
    if key in lookup:
        return lookup[key]
    valid = "; ".join(f'"{c}"' for c in canon)
    short = ", ".join(f'"{a}"' for a in aliases)
    raise SpecError(f'{prior}: unknown {what} "{value}". Valid: {valid}. Short aliases: {short}')


def _quote(s: str) -> str:
    return '"' + s + '"'


def _build_turner(args: dict[str, Any]) -> Prior:
    table = turner2015_table()
    if _norm_key(args["outcome"]) in ("general", "any"):
        if args.get("comparison") not in (None, "any"):
            raise SpecError('turner2015("general") takes no comparison type')
        m, s = table[("general", "any")]
        text = 'turner2015("general")'
        what = "general healthcare setting"
    else:
        keys = [k for k in table if k[0] != "general"]
        o = _resolve(args["outcome"], list(dict.fromkeys(k[0] for k in keys)),
                     _TURNER_OUTCOME_ALIASES, "outcome type", "turner2015")
        if args.get("comparison") is None:
            raise SpecError("turner2015: give an outcome type and a comparison type "
                            '(or turner2015("general"))')
        c = _resolve(args["comparison"], list(dict.fromkeys(k[1] for k in keys)),
                     _TURNER_COMPARISON_ALIASES, "comparison type", "turner2015")
        m, s = table[(o, c)]
        text = f"turner2015({_quote(o)}, {_quote(c)})"
        what = f"{o}, {c}"
    return Prior(
        name="turner2015",
        family="lognormal_tau2",
        params=(m, s),
        text=text,
        target=SCALE,
        proper=True,
        source=TURNER_SOURCE,
        description=(f"Turner et al. (2015) predictive distribution for tau² of log odds ratios, "
                     f"{what}: log tau² ~ N({_fmt(m)}, {_fmt(s)}²)"),
    )


def _build_rhodes(args: dict[str, Any]) -> Prior:
    table = rhodes2015_table()
    if _norm_key(args["outcome"]) in ("general", "any"):
        if args.get("comparison") not in (None, "any") or args.get("area") not in (None, "other", "any"):
            raise SpecError('rhodes2015("general") takes no comparison or area')
        m, s, nu = table[("general", "any", "any")]
        text = 'rhodes2015("general")'
        what = "general setting"
    else:
        keys = [k for k in table if k[0] != "general"]
        o = _resolve(args["outcome"], list(dict.fromkeys(k[0] for k in keys)),
                     _RHODES_OUTCOME_ALIASES, "outcome type", "rhodes2015")
        if args.get("comparison") is None:
            raise SpecError("rhodes2015: give an outcome type and a comparison type "
                            '(or rhodes2015("general"))')
        c = _resolve(args["comparison"], list(dict.fromkeys(k[1] for k in keys)),
                     _RHODES_COMPARISON_ALIASES, "comparison type", "rhodes2015")
        a = _resolve(args.get("area") or "other", ["other", "respiratory", "cancer"], {},
                     "medical area", "rhodes2015")
        m, s, nu = table[(o, c, a)]
        text = f"rhodes2015({_quote(o)}, {_quote(c)}, {_quote(a)})"
        what = f"{o}, {c}, area {a}"
    return Prior(
        name="rhodes2015",
        family="logt_tau2",
        params=(m, s, nu),
        text=text,
        target=SCALE,
        proper=True,
        source=RHODES_SOURCE,
        description=(f"Rhodes et al. (2015) predictive distribution for tau² of standardised mean "
                     f"differences, {what}: log tau² ~ t_{_fmt(nu)}({_fmt(m)}, {_fmt(s)})"),
    )


def _turner_settings() -> tuple[str, ...]:
    return tuple(
        'turner2015("general")' if o == "general" else f"turner2015({_quote(o)}, {_quote(c)})"
        for o, c in turner2015_table()
    )


def _rhodes_settings() -> tuple[str, ...]:
    return tuple(
        'rhodes2015("general")' if o == "general" else f"rhodes2015({_quote(o)}, {_quote(c)}, {_quote(a)})"
        for o, c, a in rhodes2015_table()
    )


_ENTRIES += [
    PriorEntry(
        "turner2015", SCALE,
        (ParamSpec("outcome", "str"), ParamSpec("comparison", "str", required=False)),
        _build_turner, TURNER_SOURCE,
        "Empirical predictive log-normal prior for tau² of log odds ratios by outcome type and "
        'intervention-comparison type (Table IV), or turner2015("general"); resolves to '
        "lognormal_tau2. Short aliases: "
        + ", ".join(list(_TURNER_OUTCOME_ALIASES) + list(_TURNER_COMPARISON_ALIASES)),
        'turner2015("all-cause mortality", "pharmacological vs placebo/control")',
    ),
    PriorEntry(
        "rhodes2015", SCALE,
        (ParamSpec("outcome", "str"), ParamSpec("comparison", "str", required=False),
         ParamSpec("area", "str", default="other", required=False)),
        _build_rhodes, RHODES_SOURCE,
        "Empirical predictive log-t(5) prior for tau² of standardised mean differences by outcome "
        "type, comparison type and medical area (other/respiratory/cancer), or "
        'rhodes2015("general"); resolves to logt_tau2. Short aliases: '
        + ", ".join(list(_RHODES_OUTCOME_ALIASES) + list(_RHODES_COMPARISON_ALIASES)),
        'rhodes2015("mental health", "pharm-placebo")',
    ),
]

REGISTRY: dict[str, PriorEntry] = {e.name: e for e in _ENTRIES}


def list_priors() -> dict[str, PriorEntry]:
    """The prior registry (name → entry) with docs, sources and, for empirical priors, settings."""
    out = dict(REGISTRY)
    out["turner2015"] = _with_settings(out["turner2015"], _turner_settings())
    out["rhodes2015"] = _with_settings(out["rhodes2015"], _rhodes_settings())
    return out


def _with_settings(entry: PriorEntry, settings: tuple[str, ...]) -> PriorEntry:
    return PriorEntry(entry.name, entry.target, entry.params, entry.build, entry.source,
                      entry.doc, entry.example, settings)


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)
_KW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", re.S)


def _split_args(body: str, text: str) -> list[str]:
    """Split on top-level commas, respecting quotes and parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    depth = 0
    for ch in body:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if quote:
        raise SpecError(f"prior '{text}': unterminated quote")
    last = "".join(cur).strip()
    if parts or last:
        parts.append(last)
    if any(p == "" for p in parts):
        raise SpecError(f"prior '{text}': empty argument")
    return parts


def _unquote(raw: str) -> tuple[str, bool]:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1], True
    return raw, False


def _convert(spec: ParamSpec, raw: str, name: str) -> Any:
    value, quoted = _unquote(raw)
    if spec.kind == "str":
        return value
    try:
        if quoted:
            raise ValueError
        x = float(value)
    except ValueError:
        raise SpecError(f"{name}: argument '{spec.name}' must be a number, got {raw!r}") from None
    if math.isnan(x):
        raise SpecError(f"{name}: argument '{spec.name}' must be a number, got nan")
    if spec.check is not None:
        msg = spec.check(x)
        if msg:
            raise SpecError(f"{name}: argument '{spec.name}' {msg}, got {raw}")
    return x


def _signature(entry: PriorEntry) -> str:
    if not entry.params:
        return entry.name
    return f"{entry.name}({', '.join(p.name for p in entry.params)})"


def parse_prior(text: str, *, target: str | None = None) -> Prior:
    """Parse a prior string such as ``"halfnormal(0.5)"`` or ``"halfnormal(scale=0.5)"``.

    Parameters
    ----------
    text
        ``name`` or ``name(arg, ..., key=value)``; string arguments may be quoted.
    target
        If given (``"scale"`` or ``"location"``), the prior must be of that kind.

    Returns
    -------
    Prior

    Raises
    ------
    SpecError
        Unknown name (the message lists valid names), wrong number or names of arguments,
        invalid values, or a prior for the wrong target.
    """
    if not isinstance(text, str):
        raise SpecError(f"a prior must be a string such as 'halfnormal(0.5)', got {text!r}")
    m = _CALL.match(text)
    valid = ", ".join(_signature(e) for e in REGISTRY.values())
    if m is None:
        raise SpecError(f"cannot parse prior '{text}': expected name(arguments). Valid priors: {valid}")
    name, body = m.group(1), m.group(2)
    entry = REGISTRY.get(name.lower())
    if entry is None:
        raise SpecError(f"unknown prior '{name}'. Valid priors: {valid}")
    raw_args = _split_args(body, text) if body is not None else []
    specs = {p.name: p for p in entry.params}
    values: dict[str, Any] = {}
    positional_done = False
    for i, raw in enumerate(raw_args):
        kw = _KW.match(raw)
        if kw and not _unquote(raw)[1]:
            key, raw_val = kw.group(1), kw.group(2).strip()
            if key not in specs:
                raise SpecError(f"{entry.name}: unknown argument '{key}'; usage: {_signature(entry)}")
            if key in values:
                raise SpecError(f"{entry.name}: argument '{key}' given twice")
            positional_done = True
            values[key] = _convert(specs[key], raw_val, entry.name)
        else:
            if positional_done:
                raise SpecError(f"{entry.name}: positional argument after keyword argument")
            if i >= len(entry.params):
                raise SpecError(
                    f"{entry.name} takes {len(entry.params)} argument(s), got {len(raw_args)}; "
                    f"usage: {_signature(entry)}"
                )
            values[entry.params[i].name] = _convert(entry.params[i], raw, entry.name)
    for p in entry.params:
        if p.name not in values:
            if p.required:
                raise SpecError(f"{entry.name}: missing argument '{p.name}'; usage: {_signature(entry)}")
            values[p.name] = p.default
    prior = entry.build(values)
    if target is not None and prior.target != target:
        raise SpecError(
            f"prior '{prior.text}' is a {prior.target} prior, but a {target} prior is needed here"
        )
    return prior
