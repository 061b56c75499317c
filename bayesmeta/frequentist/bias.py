"""Small-study effects: Egger's regression test, trim-and-fill and funnel-plot coordinates.

* :func:`regtest` is metafor's ``regtest``: by default (``model="rma"``, ``predictor="sei"``) the
  meta-regression ``yi ~ sei`` with the model's tau² estimator and test; ``model="lm"`` is the
  classical Egger test, a weighted least-squares regression with weights ``1/vi`` and a t test
  with k - 2 df (Egger et al. 1997).
* :func:`trimfill` is metafor's ``trimfill`` (Duval & Tweedie 2000): estimators L0, R0 (and Q0),
  the side chosen by metafor's rule (the sign of the slope of ``yi ~ sqrt(vi)``), ranks with
  ties broken by order, ``k0`` rounded half-to-even as R's ``round``.
* :func:`funnel` gives the coordinates of metafor's default funnel plot (SE on the y axis).

References
----------
Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis detected by a simple,
graphical test. BMJ 315:629-634.
Duval S, Tweedie R (2000). Trim and fill. Biometrics 56:455-463.
Peters JL et al. (2008). Contour-enhanced meta-analysis funnel plots. J Clin Epidemiol 61:991-996.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from bayesmeta.errors import DataWarning, InputError, SpecError
from bayesmeta.frequentist.results import FunnelData, MetaRegressionResult, RegtestResult, RMAResult, TrimfillResult
from bayesmeta.frequentist.rma import alpha_of, check_effects, rma
from bayesmeta.frequentist.tau2 import ConvergenceError, Tau2Control, weighted_inverse

__all__ = ["PREDICTORS", "TRIMFILL_ESTIMATORS", "funnel", "regtest", "trimfill"]

Array = NDArray[np.float64]

#: Regression predictors of :func:`regtest` (``ni`` = total sample size per study).
PREDICTORS: dict[str, Callable[[Array, Array | None], Array]] = {
    "sei": lambda vi, ni: np.sqrt(vi),
    "vi": lambda vi, ni: vi,
    "ni": lambda vi, ni: _need(ni),
    "ninv": lambda vi, ni: 1.0 / _need(ni),
    "sqrtni": lambda vi, ni: np.sqrt(_need(ni)),
    "sqrtninv": lambda vi, ni: 1.0 / np.sqrt(_need(ni)),
}
_LIMIT_PREDICTORS = frozenset({"sei", "vi", "ninv", "sqrtninv"})


def _need(ni: Array | None) -> Array:
    if ni is None:
        raise InputError("this predictor needs the sample sizes 'ni'")
    return ni


def regtest(
    yi: ArrayLike,
    vi: ArrayLike,
    *,
    model: str = "rma",
    predictor: str = "sei",
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    ni: ArrayLike | None = None,
    control: Tau2Control | None = None,
) -> RegtestResult:
    """Regression test for funnel-plot asymmetry (``metafor::regtest``).

    Parameters
    ----------
    yi, vi
        Effect sizes and sampling variances.
    model
        ``"rma"`` (meta-regression with the ``method``/``test`` of the model, metafor's default)
        or ``"lm"`` (classical Egger: weighted least squares, t test with k - 2 df).
    predictor
        One of :data:`PREDICTORS`.
    method, test, level, control
        As for :func:`bayesmeta.frequentist.rma` (``model="rma"`` only, ``level`` for both).
    ni
        Sample sizes, for the ``ni``-based predictors.
    """
    y, v = check_effects(yi, vi)
    if predictor not in PREDICTORS:
        raise SpecError(f"unknown regtest predictor '{predictor}' (choose from {', '.join(PREDICTORS)})")
    n = None if ni is None else np.asarray(ni, dtype=float)
    x = PREDICTORS[predictor](v, n)
    has_limit = predictor in _LIMIT_PREDICTORS
    if model == "rma":
        fit = rma(y, v, mods=x, method=method, test=test, level=level, control=control)
        assert isinstance(fit, MetaRegressionResult)
        slope, intercept = fit.coefficients[1], fit.coefficients[0]
        return RegtestResult(model="rma", predictor=predictor, method=method, zval=slope.zval,
                             pval=slope.pval if slope.pval is not None else math.nan, df=fit.df,
                             limit_estimate=intercept.beta if has_limit else None,
                             limit_ci_low=intercept.ci_low if has_limit else None,
                             limit_ci_high=intercept.ci_high if has_limit else None, slope=slope.beta,
                             slope_se=slope.se)
    if model != "lm":
        raise SpecError(f"unknown regtest model '{model}' (choose rma or lm)")
    k = y.size
    if k < 3:
        raise InputError("the Egger regression needs at least three studies")
    X = np.column_stack([np.ones(k), x])
    w = 1.0 / v
    inv = weighted_inverse(X, w)
    beta = inv @ (X.T @ (w * y))
    df = k - 2
    sigma2 = float(np.sum(w * (y - X @ beta) ** 2)) / df
    se = np.sqrt(sigma2 * np.diag(inv))
    t = float(beta[1] / se[1])
    crit = float(stats.t.isf(alpha_of(level) / 2, df))
    return RegtestResult(model="lm", predictor=predictor, method=None, zval=t, pval=float(2 * stats.t.sf(abs(t), df)),
                         df=df, limit_estimate=float(beta[0]) if has_limit else None,
                         limit_ci_low=float(beta[0] - crit * se[0]) if has_limit else None,
                         limit_ci_high=float(beta[0] + crit * se[0]) if has_limit else None, slope=float(beta[1]),
                         slope_se=float(se[1]))


# ----------------------------------------------------------------------------------------
# Trim and fill
# ----------------------------------------------------------------------------------------


def _var_sr(k: int, k0: float) -> float:
    return (k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0 - 18 * k * k0**2 - 18 * k * k0
            + 6 * k**2 * k0) / 24


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan  # R: sqrt of a negative number is NaN


def _l0(signed: Array, k: int) -> tuple[float, float]:
    sr = float(signed[signed > 0].sum())
    k0 = (4 * sr - k * (k + 1)) / (2 * k - 1)
    return k0, 4 * _sqrt(_var_sr(k, k0)) / (2 * k - 1)


def _r0(signed: Array, k: int) -> tuple[float, float]:
    negative = -signed[signed < 0]
    if negative.size == 0:
        raise ConvergenceError("trim-and-fill R0: no study lies below the estimate; use estimator='L0'")
    k0 = (k - float(negative.max())) - 1
    return k0, math.sqrt(2 * max(0.0, k0) + 2)


def _q0(signed: Array, k: int) -> tuple[float, float]:
    sr = float(signed[signed > 0].sum())
    k0 = k - 0.5 - _sqrt(2 * k**2 - 4 * sr + 0.25)
    return k0, 2 * _sqrt(_var_sr(k, k0)) / _sqrt((k - 0.5) ** 2 - k0 * (2 * k - k0 - 1))


#: Estimators of the number of missing studies: (k0, its standard error) from signed ranks.
TRIMFILL_ESTIMATORS: dict[str, Callable[[Array, int], tuple[float, float]]] = {"L0": _l0, "R0": _r0, "Q0": _q0}


def _estimate(y: Array, v: Array, method: str, control: Tau2Control | None) -> float:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DataWarning)
        fit = rma(y, v, method=method, control=control)
    assert isinstance(fit, RMAResult)
    return fit.estimate


def trimfill(
    yi: ArrayLike,
    vi: ArrayLike,
    *,
    estimator: str = "L0",
    side: str | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    maxiter: int = 100,
    control: Tau2Control | None = None,
) -> TrimfillResult:
    """Trim-and-fill (``metafor::trimfill`` applied to ``rma(yi, vi, method=method)``).

    Parameters
    ----------
    yi, vi
        Effect sizes and sampling variances.
    estimator
        ``"L0"`` (default), ``"R0"`` or ``"Q0"``.
    side
        Side of the funnel where studies are missing (``"left"``/``"right"``); ``None`` chooses
        as metafor: ``"right"`` when the slope of ``yi ~ sqrt(vi)`` (fitted with ``method``) is
        negative, else ``"left"``.
    method, control
        tau² estimator of the iterations and of the final model.
    test, level
        Test and level of the final model fitted to observed + filled studies. metafor 3.8
        always refits that model with ``test="z"`` and 95%; the defaults here agree with it.
    maxiter
        Maximum number of trim-and-fill iterations.
    """
    if estimator not in TRIMFILL_ESTIMATORS:
        raise SpecError(f"unknown trim-and-fill estimator '{estimator}' (choose L0, R0 or Q0)")
    y0, v0 = check_effects(yi, vi)
    k = y0.size
    if k < 2:
        raise InputError("trim-and-fill needs at least two studies")
    if side is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DataWarning)
            fit = rma(y0, v0, mods=np.sqrt(v0), method=method, control=control)
        assert isinstance(fit, MetaRegressionResult)
        side = "right" if fit.coefficients[1].beta < 0 else "left"
    elif side not in ("left", "right"):
        raise SpecError(f"side must be 'left' or 'right', not '{side}'")
    sign = -1.0 if side == "right" else 1.0
    order = np.argsort(sign * y0, kind="stable")
    y, v = (sign * y0)[order], v0[order]
    k0, k0_prev, iterations = 0, -1, 0
    beta = math.nan
    centred = y
    k0_se = math.nan
    while k0 != k0_prev:
        k0_prev = k0
        iterations += 1
        if iterations > maxiter:
            raise ConvergenceError("trim-and-fill did not converge")
        beta = _estimate(y[: k - k0], v[: k - k0], method, control)
        centred = y - beta
        ranks = stats.rankdata(np.abs(centred), method="ordinal")
        signed = np.sign(centred) * ranks
        raw_k0, k0_se = TRIMFILL_ESTIMATORS[estimator](signed, k)
        k0 = max(0, round(raw_k0))
        k0_se = k0_se if math.isnan(k0_se) else max(0.0, k0_se)
    if k0 > 0:
        mirrored = -(centred - beta) if side == "right" else centred - beta
        filled_y = -mirrored[k - k0:]
        filled_v = v[k - k0:]
        model = rma(np.concatenate([y0, filled_y]), np.concatenate([v0, filled_v]), method=method, test=test,
                    level=level, control=control)
    else:
        filled_y = filled_v = np.empty(0)
        model = rma(y0, v0, method=method, test=test, level=level, control=control)
    assert isinstance(model, RMAResult)
    # metafor's p-value of k0 under R0: 1 - sum_{m=-1}^{k0-1} choose(m+1, m+1) 0.5^(m+2)
    k0_p = 1.0 - sum(0.5 ** (m + 2) for m in range(-1, k0)) if estimator == "R0" else None
    return TrimfillResult(estimator=estimator, side=side, k0=int(k0), k0_se=k0_se, k0_p=k0_p,
                          filled_yi=tuple(float(x) for x in filled_y), filled_vi=tuple(float(x) for x in filled_v),
                          model=model)


# ----------------------------------------------------------------------------------------
# Funnel plot
# ----------------------------------------------------------------------------------------


def funnel(
    yi: ArrayLike,
    vi: ArrayLike,
    *,
    refline: float | None = None,
    method: str = "REML",
    level: float = 95.0,
    contours: Sequence[float] = (90.0, 95.0, 99.0),
    addtau2: bool = False,
    n_grid: int = 100,
) -> FunnelData:
    """Funnel-plot coordinates as metafor's ``funnel`` draws them (y axis = standard error).

    Parameters
    ----------
    yi, vi
        Effect sizes and sampling variances.
    refline
        Centre of the pseudo-confidence region; ``None`` = the pooled estimate of
        ``rma(yi, vi, method=method)``.
    level
        Level (percent) of the pseudo-confidence region.
    contours
        Significance contours (percent levels) of a contour-enhanced funnel plot, centred at 0.
    addtau2
        Widen the pseudo-confidence region by tau² (metafor's ``addtau2``).
    n_grid
        Number of points on the standard-error grid.
    """
    y, v = check_effects(yi, vi)
    sei = np.sqrt(v)
    tau2 = 0.0
    if refline is None or addtau2:
        fit = rma(y, v, method=method)
        assert isinstance(fit, RMAResult)
        refline = fit.estimate if refline is None else refline
        tau2 = fit.tau2 if addtau2 else 0.0
    top = float(sei.max())
    bottom = top + 0.1 * top  # metafor extends the axis by 10% of its range (max(sei) - 0)
    grid = np.linspace(bottom, 0.0, n_grid)
    z = float(stats.norm.isf(alpha_of(level) / 2))
    half = z * np.sqrt(grid**2 + tau2)
    lines = {}
    for lev in contours:
        zc = float(stats.norm.isf(alpha_of(lev) / 2))
        lines[float(lev)] = (tuple(float(-zc * g) for g in grid), tuple(float(zc * g) for g in grid))
    return FunnelData(yi=tuple(float(x) for x in y), sei=tuple(float(s) for s in sei), refline=float(refline),
                      level=float(level), sei_grid=tuple(float(g) for g in grid),
                      ci_low=tuple(float(refline - h) for h in half), ci_high=tuple(float(refline + h) for h in half),
                      contours=lines, tau2=tau2)
