"""Random- and fixed-effect models and meta-regression, as metafor's ``rma.uni``.

:func:`rma` estimates tau² (:mod:`.tau2`), then the coefficients by weighted least squares with
weights ``1/(vi + tau²)``, with Wald-type z tests or t tests whose variance is scaled by
Knapp and Hartung's factor ``s² = Σ w (y - Xb)² / (k - p)`` (metafor's ``test="knha"``: the
factor is *not* truncated at 1; ``"adhoc"`` truncates it). Heterogeneity statistics, the
Q-profile confidence interval of tau² (Viechtbauer 2007; metafor's ``confint``) and the
prediction interval (metafor's ``predict``) follow metafor 3.8 exactly.

One metafor 3.8 behaviour is reproduced on purpose and worth knowing: tau² and the residual
heterogeneity statistic QE are computed from the *centred* outcomes ``yi - mean(yi)``. With an
intercept (or any design whose columns span the constant, e.g. one dummy per subgroup) this
changes nothing; for a model without intercept whose columns do not span the constant (e.g.
``mods=x, intercept=False``) QE is not the weighted residual sum of squares of the fit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg, stats

from bayesmeta.errors import DataWarning, InputError, SpecError
from bayesmeta.frequentist.metareg import as_design
from bayesmeta.frequentist.results import Coefficient, MetaRegressionResult, RMAResult, as_tuple
from bayesmeta.frequentist.tau2 import (
    FIXED_METHODS,
    TAU2_ESTIMATORS,
    Tau2Control,
    estimate_tau2,
    generalised_q,
    hat_projection,
    uniroot,
    weighted_inverse,
)

__all__ = ["TESTS", "TestRule", "alpha_of", "check_effects", "rma", "tau2_confint"]


@dataclass(frozen=True)
class TestRule:
    """How a test scales the coefficients' variance and which reference distribution it uses."""

    t_dist: bool
    knha: bool = False
    floor_at_one: bool = False


#: Tests on the coefficients, by metafor's ``test`` code.
TESTS: dict[str, TestRule] = {
    "z": TestRule(t_dist=False),
    "t": TestRule(t_dist=True),
    "knha": TestRule(t_dist=True, knha=True),
    "adhoc": TestRule(t_dist=True, knha=True, floor_at_one=True),
}


def alpha_of(level: float) -> float:
    """metafor's ``.level``: 95 → 0.05, 0.95 → 0.05, 0.05 → 0.05."""
    if level == 0:
        return 1.0
    if level >= 1:
        return (100.0 - level) / 100.0
    if level > 0.5:
        return 1.0 - level
    return float(level)


def check_effects(yi: ArrayLike, vi: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate ``yi``/``vi``: 1-D, same length, finite, ``vi > 0``."""
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.ndim != 1 or v.ndim != 1 or y.size != v.size:
        raise InputError(f"yi and vi must be vectors of the same length (got {y.shape} and {v.shape})")
    if y.size == 0:
        raise InputError("no studies to analyse (k = 0)")
    bad = np.flatnonzero(~np.isfinite(y) | ~np.isfinite(v))
    if bad.size:
        raise InputError(f"yi/vi missing or not finite for study index {bad.tolist()} (0-based)")
    bad = np.flatnonzero(v <= 0)
    if bad.size:
        raise InputError(f"sampling variances must be positive; vi <= 0 for study index {bad.tolist()} (0-based)")
    return y, v


def _check_options(method: str, test: str) -> TestRule:
    if method not in TAU2_ESTIMATORS:
        raise SpecError(f"unknown method '{method}' (choose from {', '.join(TAU2_ESTIMATORS)})", key="method")
    if test not in TESTS:
        raise SpecError(f"unknown test '{test}' (choose from {', '.join(TESTS)})", key="test")
    return TESTS[test]


def _two_sided(stat: float, df: int | None) -> float | None:
    if df is None:
        return float(2.0 * stats.norm.sf(abs(stat)))
    return float(2.0 * stats.t.sf(abs(stat), df)) if df > 0 else None


def _critical(alpha: float, df: int | None) -> float | None:
    if df is None:
        return float(stats.norm.isf(alpha / 2.0))
    return float(stats.t.isf(alpha / 2.0, df)) if df > 0 else None


def tau2_confint(yi: NDArray[np.float64], vi: NDArray[np.float64], X: NDArray[np.float64], tau2: float,
                 level: float) -> tuple[float, float]:
    """Q-profile confidence interval of tau² (metafor's ``confint(type="QP")``).

    The bounds solve ``Q(tau²) = chi²_{k-p}`` quantiles on ``[0, max(100, 10 tau²)]`` with
    R's ``uniroot`` (``tol = eps^0.25``, ``maxiter = 1000``); a bound that falls below 0 is 0,
    one above the search interval is its upper end.
    """
    k, p = X.shape
    alpha = alpha_of(level)
    crit_u = float(stats.chi2.isf(alpha / 2.0, k - p))
    crit_l = float(stats.chi2.ppf(alpha / 2.0, k - p))
    lo_end, hi_end = min(0.0, tau2), max(100.0, 10.0 * tau2, 0.0)

    def q_at(t: float) -> float:
        return generalised_q(t, yi, vi, X)

    q_hi, q_lo = q_at(hi_end), q_at(lo_end)
    ci_low = ci_high = math.nan
    if q_lo < crit_l:
        ci_low = ci_high = lo_end
    elif q_hi > crit_l:
        ci_high = hi_end
    else:
        ci_high = uniroot(lambda t: q_at(t) - crit_l, lo_end, hi_end, maxiter=1000)[0]
    if q_hi > crit_u:
        ci_low = ci_high = hi_end
    elif q_lo < crit_u:
        ci_low = lo_end
    else:
        ci_low = uniroot(lambda t: q_at(t) - crit_u, lo_end, hi_end, maxiter=1000)[0]
    return ci_low, ci_high


@dataclass(frozen=True)
class _Fit:
    """Everything :func:`fit_model` computes; results are built from it."""

    k: int
    p: int
    method: str
    test: str
    level: float
    names: tuple[str, ...]
    beta: NDArray[np.float64]
    vb: NDArray[np.float64]
    se: NDArray[np.float64]
    zval: NDArray[np.float64]
    pval: list[float | None]
    ci_low: list[float | None]
    ci_high: list[float | None]
    df: int | None
    crit: float | None
    tau2: float
    tau2_se: float | None
    tau2_ci: tuple[float | None, float | None]
    qe: float
    qe_p: float
    vt: float
    i2: float
    h2: float
    qm: float
    qm_df: int
    qm_df2: int | None
    qm_p: float | None
    weights: NDArray[np.float64]
    iterations: int


def fit_model(yi: NDArray[np.float64], vi: NDArray[np.float64], X: NDArray[np.float64], names: Sequence[str], *,
              intercept: bool, method: str, test: str, level: float, control: Tau2Control | None = None,
              confint: bool = True) -> _Fit:
    """Fit ``yi ~ X`` with weights ``1/(vi + tau²)`` (inputs already validated)."""
    rule = _check_options(method, test)
    k, p = X.shape
    fixed = method in FIXED_METHODS
    if p > k or (not fixed and p + 1 > k and not (p == 1 and k == 1)):
        raise InputError(f"{p} coefficients{'' if fixed else ' and tau²'} cannot be estimated from {k} studies")
    if np.linalg.matrix_rank(X) < p:
        raise InputError(f"the design matrix ({', '.join(names)}) is not of full rank; drop a redundant moderator")
    if k == 1 and test != "z":
        warnings.warn("only one study: using test='z', as metafor does", DataWarning, stacklevel=3)
        test, rule = "z", TESTS["z"]
    if fixed and rule.knha:
        warnings.warn(f"the Knapp-Hartung method is not meant for {method} models", DataWarning, stacklevel=3)
    alpha = alpha_of(level)
    t2 = estimate_tau2(yi, vi, X, method, control)
    tau2 = t2.tau2
    w = 1.0 / (vi + tau2)
    vb = weighted_inverse(X, w)
    beta = vb @ (X.T @ (w * yi))
    s2w = 1.0
    if rule.knha:
        rss = float(np.sum(w * (yi - X @ beta) ** 2))
        s2w = 0.0 if rss <= np.finfo(float).eps or k == p else rss / (k - p)
        if rule.floor_at_one:
            s2w = max(1.0, s2w)
    vb = s2w * vb
    df = k - p if rule.t_dist else None
    se = np.sqrt(np.diag(vb))
    zval = beta / se
    pval = [_two_sided(z, df) for z in zval]
    crit = _critical(alpha, df)
    ci_low = [None if crit is None else float(b - crit * s) for b, s in zip(beta, se, strict=True)]
    ci_high = [None if crit is None else float(b + crit * s) for b, s in zip(beta, se, strict=True)]
    btt = list(range(1, p)) if (intercept and p > 1) else list(range(p))
    bsub = beta[btt]
    qm = float(bsub @ linalg.cho_solve(linalg.cho_factor(vb[np.ix_(btt, btt)]), bsub))
    m = len(btt)
    if rule.t_dist:
        qm /= m
        qm_df2: int | None = k - p
        qm_p = float(stats.f.sf(qm, m, k - p)) if k - p > 0 else None
    else:
        qm_df2 = None
        qm_p = float(stats.chi2.sf(qm, m))
    if k > p:
        P = hat_projection(X, 1.0 / vi)
        ymc = yi - yi.mean()
        qe = max(0.0, float(ymc @ P @ ymc))
        qe_p = float(stats.chi2.sf(qe, k - p))
        vt = (k - p) / float(np.trace(P))
        if fixed:
            i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
            h2 = qe / (k - p)
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
    else:
        qe, qe_p, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0
    tau2_ci: tuple[float | None, float | None] = (None, None)
    if confint and not fixed and k > p:
        tau2_ci = tau2_confint(yi, vi, X, tau2, level)
    return _Fit(k=k, p=p, method=method, test=test, level=float(level), names=tuple(names), beta=beta, vb=vb,
                se=se, zval=zval, pval=pval, ci_low=ci_low, ci_high=ci_high, df=df, crit=crit, tau2=tau2,
                tau2_se=t2.se, tau2_ci=tau2_ci, qe=qe, qe_p=qe_p, vt=vt, i2=i2, h2=h2, qm=qm, qm_df=m,
                qm_df2=qm_df2, qm_p=qm_p, weights=100.0 * w / w.sum(), iterations=t2.iterations)


def _i2_of(tau2: float | None, vt: float) -> float | None:
    return None if tau2 is None else 100.0 * tau2 / (vt + tau2)


def _h2_of(tau2: float | None, vt: float) -> float | None:
    return None if tau2 is None else tau2 / vt + 1.0


def _intercept_only_result(fit: _Fit, yi: NDArray[np.float64], vi: NDArray[np.float64]) -> RMAResult:
    fixed = fit.method in FIXED_METHODS
    estimate, se = float(fit.beta[0]), float(fit.se[0])
    if fixed or fit.crit is None:
        pi_low = pi_high = None
    else:
        half = fit.crit * math.sqrt(float(fit.vb[0, 0]) + fit.tau2)
        pi_low, pi_high = estimate - half, estimate + half
    lo, hi = fit.tau2_ci
    return RMAResult(
        k=fit.k, method=fit.method, test=fit.test, level=fit.level, estimate=estimate, se=se,
        zval=float(fit.zval[0]), pval=fit.pval[0], ci_low=fit.ci_low[0], ci_high=fit.ci_high[0], tau2=fit.tau2,
        tau2_se=fit.tau2_se, i2=fit.i2, h2=fit.h2, q=fit.qe, q_df=fit.k - fit.p, q_p=fit.qe_p, pi_low=pi_low,
        pi_high=pi_high, tau2_ci_low=lo, tau2_ci_high=hi, i2_ci_low=_i2_of(lo, fit.vt),
        i2_ci_high=_i2_of(hi, fit.vt), h2_ci_low=_h2_of(lo, fit.vt), h2_ci_high=_h2_of(hi, fit.vt),
        weights=as_tuple(fit.weights), df=fit.df, vt=fit.vt, iterations=fit.iterations, yi=as_tuple(yi),
        vi=as_tuple(vi))


def _r2(fit: _Fit, yi: NDArray[np.float64], vi: NDArray[np.float64], X: NDArray[np.float64],
        control: Tau2Control | None) -> float | None:
    """metafor's pseudo-R² (percent); for FE/EE the adjusted R² of the weighted regression."""
    if fit.method in FIXED_METHODS:
        if np.var(yi) == 0:
            return 0.0
        w = 1.0 / vi
        resid = yi - X @ fit.beta
        ybar = float(np.sum(w * yi) / np.sum(w))
        r2 = 1.0 - float(np.sum(w * resid**2)) / float(np.sum(w * (yi - ybar) ** 2))
        adj = 1.0 - (1.0 - r2) * (fit.k - 1) / (fit.k - fit.p)
        return max(0.0, 100.0 * adj)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            null = fit_model(yi, vi, np.ones((fit.k, 1)), ["intrcpt"], intercept=True, method=fit.method,
                             test=fit.test, level=fit.level, control=control, confint=False)
    except (InputError, ArithmeticError, RuntimeError):
        return None
    if null.tau2 == 0:
        return 0.0
    return max(0.0, 100.0 * (null.tau2 - fit.tau2) / null.tau2)


def rma(
    yi: ArrayLike,
    vi: ArrayLike,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    mods: Any = None,
    intercept: bool = True,
    moderators: Sequence[str] | None = None,
    control: Tau2Control | None = None,
) -> RMAResult | MetaRegressionResult:
    """Fit a random-effects (or fixed-effect) model or a meta-regression, as ``metafor::rma``.

    Parameters
    ----------
    yi, vi
        Effect sizes and sampling variances (analysis scale).
    method
        tau² estimator: one of :data:`bayesmeta.frequentist.TAU2_ESTIMATORS` (``DL REML ML PM SJ
        HE EB``, or ``FE``/``EE`` for a common-effect model).
    test
        ``"z"`` (Wald), ``"knha"`` (Knapp–Hartung, metafor's untruncated variant), ``"t"`` or
        ``"adhoc"`` (Knapp–Hartung truncated at 1).
    level
        Confidence level in percent.
    mods
        Moderators: a design matrix (array ``(k,)`` or ``(k, m)``, without intercept column) or a
        data frame whose ``moderators`` columns (default all) are turned into a design matrix
        (categorical → dummies, first level as reference; see :mod:`.metareg`).
    intercept
        Add an intercept column to ``mods``.
    moderators
        Column names when ``mods`` is a data frame.
    control
        Iteration settings (defaults are metafor's).

    Returns
    -------
    RMAResult
        Without ``mods``.
    MetaRegressionResult
        With ``mods``.
    """
    y, v = check_effects(yi, vi)
    k = y.size
    if mods is None:
        fit = fit_model(y, v, np.ones((k, 1)), ["intrcpt"], intercept=True, method=method, test=test,
                        level=level, control=control)
        return _intercept_only_result(fit, y, v)
    M, names = as_design(mods, moderators, k, intercept)
    if intercept:
        X, names = np.column_stack([np.ones(k), M]), ["intrcpt", *names]
    else:
        X = M
    if X.shape[1] == 0:
        raise InputError("the model has no coefficients (no intercept and no moderators)")
    fit = fit_model(y, v, X, names, intercept=intercept, method=method, test=test, level=level, control=control)
    coefs = tuple(
        Coefficient(name=n, beta=float(b), se=float(s), zval=float(z), pval=pv, ci_low=lo, ci_high=hi)
        for n, b, s, z, pv, lo, hi in zip(fit.names, fit.beta, fit.se, fit.zval, fit.pval, fit.ci_low,
                                          fit.ci_high, strict=True))
    lo, hi = fit.tau2_ci
    r2 = _r2(fit, y, v, X, control) if intercept and X.shape[1] > 1 else None
    return MetaRegressionResult(
        k=fit.k, p=fit.p, method=fit.method, test=fit.test, level=fit.level, coefficients=coefs,
        vcov=tuple(tuple(float(x) for x in row) for row in fit.vb), tau2=fit.tau2, tau2_se=fit.tau2_se,
        tau2_ci_low=lo, tau2_ci_high=hi, i2=fit.i2, h2=fit.h2, q=fit.qe, q_df=fit.k - fit.p, q_p=fit.qe_p,
        qm=fit.qm, qm_df=fit.qm_df, qm_df2=fit.qm_df2, qm_p=fit.qm_p, r2=r2, weights=as_tuple(fit.weights),
        df=fit.df, vt=fit.vt, intercept=intercept, iterations=fit.iterations)
