"""Frozen result types of the frequentist engine, each with a JSON-able ``to_dict()``.

Names follow ARCHITECTURE.md: ``k, estimate, se, zval, pval, ci_low, ci_high, tau2, tau2_se, tau,
i2`` (percent), ``h2, q, q_df, q_p, pi_low, pi_high, method, test, level``. Estimates are on the
analysis scale (log scale for ratio measures). ``to_dict()`` returns plain ``float``/``int``/``str``
values; quantities that do not exist for a model (e.g. tau² for a fixed-effect model, a p-value with
zero degrees of freedom) are ``None`` (never NaN, which JSON cannot hold). Under ``test="knha"`` (or
``"t"``) ``zval`` holds the t statistic, as in metafor, and ``df`` its degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BetweenTest",
    "Coefficient",
    "FunnelData",
    "Leave1OutResult",
    "Leave1OutRow",
    "MHResult",
    "MetaRegressionResult",
    "RMAResult",
    "RegtestResult",
    "SubgroupResult",
    "SubgroupRow",
    "TrimfillResult",
    "format_z_p",
    "num",
]


def num(x: Any) -> float | int | None:
    """A JSON-able number: Python ``float``/``int``, ``None`` for missing or non-finite values."""
    if x is None:
        return None
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    value = float(x)
    return value if math.isfinite(value) else None


def _nums(values: Iterable[Any]) -> list[float | int | None]:
    return [num(v) for v in values]


def format_z_p(zval: float, pval: float) -> str:
    """A test statistic and its p-value in words: ``"z = 2.21, p = 0.027"`` (``p < 0.001`` below)."""
    return f"z = {zval:.2f}, " + ("p < 0.001" if pval < 0.001 else f"p = {pval:.3f}")


@dataclass(frozen=True)
class RMAResult:
    """An intercept-only (random- or fixed-effect) model, as metafor's ``rma.uni``.

    Attributes
    ----------
    k
        Number of studies.
    estimate, se, zval, pval, ci_low, ci_high
        Pooled effect, its standard error, the z (or t) statistic, p-value and confidence interval.
    tau2, tau2_se, tau
        Between-study variance, its standard error (metafor's formula for each estimator) and
        square root; tau² and tau are 0 and ``tau2_se`` is ``None`` for FE/EE.
    tau2_ci_low, tau2_ci_high, i2_ci_low, i2_ci_high, h2_ci_low, h2_ci_high
        Q-profile confidence intervals (metafor's ``confint``); ``None`` for FE/EE or k = 1.
    i2, h2
        I² (percent) and H²: for random-effects models from tau² and metafor's typical
        within-study variance ``vt = (k - 1) / tr(P)``; for FE/EE from Q.
    q, q_df, q_p
        Cochran's Q (inverse-variance weights), its degrees of freedom and p-value.
    pi_low, pi_high
        Prediction interval ``estimate ± crit sqrt(se² + tau²)`` with the test's critical value
        (t with k - 1 df under knha); ``None`` for FE/EE.
    weights
        Per-study weights in percent, ``1/(vi + tau²)`` normalised.
    df
        Degrees of freedom of the t tests (``None`` for z tests).
    vt
        Typical within-study variance used for I².
    yi, vi
        The analysed data (not in ``to_dict``).
    """

    k: int
    method: str
    test: str
    level: float
    estimate: float
    se: float
    zval: float
    pval: float | None
    ci_low: float | None
    ci_high: float | None
    tau2: float
    tau2_se: float | None
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    pi_low: float | None
    pi_high: float | None
    tau2_ci_low: float | None
    tau2_ci_high: float | None
    i2_ci_low: float | None
    i2_ci_high: float | None
    h2_ci_low: float | None
    h2_ci_high: float | None
    weights: tuple[float, ...]
    df: int | None
    vt: float
    iterations: int = 0
    yi: tuple[float, ...] = field(default=(), repr=False)
    vi: tuple[float, ...] = field(default=(), repr=False)

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with the architecture's names (plus CIs of tau², I², H² and weights)."""
        keys = ("k", "estimate", "se", "zval", "pval", "ci_low", "ci_high", "tau2", "tau2_se", "tau",
                "i2", "h2", "q", "q_df", "q_p", "pi_low", "pi_high", "tau2_ci_low", "tau2_ci_high",
                "i2_ci_low", "i2_ci_high", "h2_ci_low", "h2_ci_high", "df")
        out: dict[str, Any] = {key: num(getattr(self, key)) for key in keys}
        out.update(method=self.method, test=self.test, level=num(self.level),
                   weights=_nums(self.weights))
        return out


@dataclass(frozen=True)
class Coefficient:
    """One row of a meta-regression coefficient table."""

    name: str
    beta: float
    se: float
    zval: float
    pval: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "beta": num(self.beta), "se": num(self.se), "zval": num(self.zval),
                "pval": num(self.pval), "ci_low": num(self.ci_low), "ci_high": num(self.ci_high)}


@dataclass(frozen=True)
class MetaRegressionResult:
    """A mixed-effects meta-regression, as metafor's ``rma.uni`` with ``mods``.

    Attributes
    ----------
    coefficients
        The coefficient table (intercept first when the model has one).
    vcov
        Variance–covariance matrix of the coefficients (row-major tuples).
    tau2, tau2_se, tau2_ci_low, tau2_ci_high
        Residual between-study variance, its SE and Q-profile CI.
    i2, h2
        Residual I² (percent) and H².
    q, q_df, q_p
        Test of residual heterogeneity (metafor's QE).
    qm, qm_df, qm_df2, qm_p
        Omnibus test of the moderators (all coefficients but the intercept): chi² with ``qm_df``
        df under z, F with (``qm_df``, ``qm_df2``) df under knha/t.
    r2
        Percent of tau² accounted for, ``max(0, 100 (tau²_RE - tau²) / tau²_RE)`` with
        tau²_RE from the intercept-only model (metafor's pseudo-R²); ``None`` without intercept.
    weights
        Per-study weights in percent.
    """

    k: int
    p: int
    method: str
    test: str
    level: float
    coefficients: tuple[Coefficient, ...]
    vcov: tuple[tuple[float, ...], ...]
    tau2: float
    tau2_se: float | None
    tau2_ci_low: float | None
    tau2_ci_high: float | None
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    qm: float
    qm_df: int
    qm_df2: int | None
    qm_p: float | None
    r2: float | None
    weights: tuple[float, ...]
    df: int | None
    vt: float
    intercept: bool
    iterations: int = 0

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.coefficients)

    def coefficient(self, name: str) -> Coefficient:
        """The coefficient called ``name``."""
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(f"no coefficient '{name}' (have {', '.join(self.names)})")

    def to_dict(self) -> dict[str, Any]:
        keys = ("k", "p", "tau2", "tau2_se", "tau", "tau2_ci_low", "tau2_ci_high", "i2", "h2", "q", "q_df",
                "q_p", "qm", "qm_df", "qm_df2", "qm_p", "r2", "df")
        out: dict[str, Any] = {key: num(getattr(self, key)) for key in keys}
        out.update(method=self.method, test=self.test, level=num(self.level),
                   coefficients=[c.to_dict() for c in self.coefficients], weights=_nums(self.weights))
        return out


@dataclass(frozen=True)
class MHResult:
    """A Mantel–Haenszel fixed-effect model, as metafor's ``rma.mh``.

    ``q`` etc. are the heterogeneity test on the study-level ``yi``/``vi`` computed with the
    continuity correction (``add``/``to``/``drop00``) over the ``k_yi`` studies with finite
    ``yi``; the pooled estimate uses the uncorrected counts of all ``k`` tables. For ``OR`` also
    the Cochran–Mantel–Haenszel test (``cmh``, with the continuity correction when
    ``correct=True``) and the Breslow–Day (``bd``) and Tarone (``ta``) tests.
    """

    k: int
    k_yi: int
    measure: str
    level: float
    estimate: float | None
    se: float | None
    zval: float | None
    pval: float | None
    ci_low: float | None
    ci_high: float | None
    q: float
    q_df: int
    q_p: float
    i2: float
    h2: float
    weights: tuple[float, ...]
    yi: tuple[float | None, ...]
    vi: tuple[float | None, ...]
    cmh: float | None = None
    cmh_p: float | None = None
    bd: float | None = None
    bd_p: float | None = None
    ta: float | None = None
    ta_p: float | None = None
    k_pos: int | None = None

    def to_dict(self) -> dict[str, Any]:
        keys = ("k", "k_yi", "estimate", "se", "zval", "pval", "ci_low", "ci_high", "q", "q_df", "q_p",
                "i2", "h2", "cmh", "cmh_p", "bd", "bd_p", "ta", "ta_p", "k_pos")
        out: dict[str, Any] = {key: num(getattr(self, key)) for key in keys}
        out.update(method="MH", measure=self.measure, test="z", level=num(self.level), tau2=0.0, tau=0.0,
                   tau2_se=None, pi_low=None, pi_high=None, weights=_nums(self.weights))
        return out


@dataclass(frozen=True)
class SubgroupRow:
    """One subgroup: its own model (``tau2`` separate) or its coefficient in the common-tau² model."""

    level: str
    k: int
    weight_pct: float
    estimate: float
    se: float
    ci_low: float | None
    ci_high: float | None
    tau2: float
    i2: float
    pval: float | None = None
    q: float | None = None
    q_df: int | None = None
    q_p: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "k": self.k, "weight_pct": num(self.weight_pct),
                "estimate": num(self.estimate), "se": num(self.se), "ci_low": num(self.ci_low),
                "ci_high": num(self.ci_high), "pval": num(self.pval), "tau2": num(self.tau2),
                "i2": num(self.i2), "q": num(self.q), "q_df": num(self.q_df), "q_p": num(self.q_p)}


@dataclass(frozen=True)
class BetweenTest:
    """Test for subgroup differences.

    ``kind="revman"``: Q across the subgroup estimates (chi² with ``df`` = J - 1) and
    ``i2 = max(0, (Q - df)/Q)`` in percent. ``kind="qm"``: the omnibus moderator test of the
    common-tau² model ``yi ~ factor(group)``, chi² under z (with the same I² formula) or F with
    (``df``, ``df2``) under knha (``i2`` ``None``: I² is not defined for an F statistic).
    """

    q: float
    df: int
    p: float | None
    i2: float | None
    df2: int | None = None
    kind: str = "revman"

    def to_dict(self) -> dict[str, Any]:
        return {"q": num(self.q), "df": self.df, "df2": self.df2, "p": num(self.p), "i2": num(self.i2),
                "kind": self.kind}


@dataclass(frozen=True)
class SubgroupResult:
    """Subgroup analysis: per-subgroup rows, the between-subgroup test and the overall model."""

    subgroups: tuple[SubgroupRow, ...]
    between: BetweenTest
    overall: RMAResult
    tau2_mode: str
    method: str
    test: str
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {"subgroups": [row.to_dict() for row in self.subgroups], "between": self.between.to_dict(),
                "overall": self.overall.to_dict(), "tau2": self.tau2_mode, "method": self.method,
                "test": self.test, "level": num(self.level)}


@dataclass(frozen=True)
class Leave1OutRow:
    """The model refitted without one study."""

    omitted: int
    estimate: float
    se: float
    zval: float
    pval: float | None
    ci_low: float | None
    ci_high: float | None
    q: float
    q_p: float
    tau2: float
    i2: float
    h2: float

    def to_dict(self) -> dict[str, Any]:
        return {key: num(getattr(self, key)) for key in
                ("omitted", "estimate", "se", "zval", "pval", "ci_low", "ci_high", "q", "q_p", "tau2", "i2", "h2")}


@dataclass(frozen=True)
class Leave1OutResult:
    """Leave-one-out diagnostics (metafor ``leave1out``); ``omitted`` is the 0-based study index."""

    rows: tuple[Leave1OutRow, ...]
    method: str
    test: str
    labels: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for i, row in enumerate(self.rows):
            d = row.to_dict()
            if self.labels is not None:
                d["label"] = self.labels[i]
            rows.append(d)
        return {"method": self.method, "test": self.test, "rows": rows}


@dataclass(frozen=True)
class RegtestResult:
    """Egger-type regression test for funnel-plot asymmetry (metafor ``regtest``).

    ``zval``/``pval`` test the predictor's coefficient (t with ``df`` under ``model="lm"`` or
    knha); ``limit_estimate`` (with CI) is the intercept, the effect as the predictor goes to 0,
    for predictors ``sei``/``vi``/``ninv``/``sqrtninv``.
    """

    model: str
    predictor: str
    method: str | None
    zval: float
    pval: float
    df: int | None
    limit_estimate: float | None
    limit_ci_low: float | None
    limit_ci_high: float | None
    slope: float
    slope_se: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "predictor": self.predictor, "method": self.method, "zval": num(self.zval),
                "pval": num(self.pval), "df": self.df, "limit_estimate": num(self.limit_estimate),
                "limit_ci_low": num(self.limit_ci_low), "limit_ci_high": num(self.limit_ci_high),
                "slope": num(self.slope), "slope_se": num(self.slope_se)}


@dataclass(frozen=True)
class TrimfillResult:
    """Trim-and-fill (metafor ``trimfill``): estimated missing studies and the refitted model."""

    estimator: str
    side: str
    k0: int
    k0_se: float
    k0_p: float | None
    filled_yi: tuple[float, ...]
    filled_vi: tuple[float, ...]
    model: RMAResult

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "side": self.side, "k0": self.k0, "k0_se": num(self.k0_se),
                "k0_p": num(self.k0_p), "filled_yi": _nums(self.filled_yi), "filled_vi": _nums(self.filled_vi),
                "model": self.model.to_dict()}


@dataclass(frozen=True)
class FunnelData:
    """Coordinates of a funnel plot (standard error on the y axis, as metafor's default).

    ``sei_grid`` runs from the bottom of the plot (``1.1 max(sei)``) to 0; ``ci_low``/``ci_high``
    are the pseudo-confidence limits ``refline ± z sqrt(sei² + tau²)`` at ``level``; ``contours``
    maps each significance level (percent) to the limits ``± z_(level) sei`` around 0 of a
    contour-enhanced funnel plot.
    """

    yi: tuple[float, ...]
    sei: tuple[float, ...]
    refline: float
    level: float
    sei_grid: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    contours: dict[float, tuple[tuple[float, ...], tuple[float, ...]]]
    tau2: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"yi": _nums(self.yi), "sei": _nums(self.sei), "refline": num(self.refline),
                "level": num(self.level), "tau2": num(self.tau2), "sei_grid": _nums(self.sei_grid),
                "ci_low": _nums(self.ci_low), "ci_high": _nums(self.ci_high),
                "contours": {f"{lev:g}": {"low": _nums(lo), "high": _nums(hi)}
                             for lev, (lo, hi) in self.contours.items()}}


def as_tuple(values: Sequence[Any] | Iterable[Any]) -> tuple[float, ...]:
    """Plain-float tuple of an array-like."""
    return tuple(float(v) for v in values)
