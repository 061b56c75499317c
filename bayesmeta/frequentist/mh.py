"""Mantel–Haenszel fixed-effect meta-analysis of 2x2 tables, as metafor's ``rma.mh``.

The pooled estimate uses the uncorrected counts of every table: for the odds ratio the
Mantel–Haenszel estimator with the Robins–Breslow–Greenland variance (Robins et al. 1986), for
the risk ratio the MH estimator with the Greenland–Robins (1985) variance, for the risk
difference the MH estimator with the Greenland–Robins/Sato variance. The heterogeneity test
(Q, I², H²) uses the study-level ``yi``/``vi`` computed as metafor does by default: 1/2 added
to every cell of tables with a zero cell (``add=0.5, to="only0"``), and tables with no events
(or only events) in both arms left out (``drop00=True``). For the odds ratio the
Cochran–Mantel–Haenszel test and the Breslow–Day and Tarone tests are also returned.

References
----------
Greenland S, Robins JM (1985). Estimation of a common effect parameter from sparse follow-up
data. Biometrics 41:55-68.
Robins J, Breslow N, Greenland S (1986). Estimators of the Mantel-Haenszel variance consistent
in both sparse data and large-strata limiting models. Biometrics 42:311-323.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from bayesmeta.errors import InputError, SpecError
from bayesmeta.frequentist.results import MHResult, as_tuple
from bayesmeta.frequentist.rma import alpha_of

__all__ = ["MH_MEASURES", "rma_mh", "study_effects"]

Array = NDArray[np.float64]


def _counts(ai: ArrayLike, bi: ArrayLike, ci: ArrayLike, di: ArrayLike) -> tuple[Array, Array, Array, Array]:
    arrays = [np.asarray(x, dtype=float) for x in (ai, bi, ci, di)]
    if any(a.ndim != 1 for a in arrays) or len({a.size for a in arrays}) != 1:
        raise InputError("ai, bi, ci, di must be vectors of the same length")
    if arrays[0].size == 0:
        raise InputError("no tables to analyse (k = 0)")
    for name, a in zip(("ai", "bi", "ci", "di"), arrays, strict=True):
        bad = np.flatnonzero(~np.isfinite(a) | (a < 0))
        if bad.size:
            raise InputError(f"counts must be finite and non-negative; check study index {bad.tolist()} (0-based)",
                             column=name)
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _log_or(a: Array, b: Array, c: Array, d: Array) -> tuple[Array, Array]:
    p1, p2 = a / (a + b), c / (c + d)
    return np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2)), 1 / a + 1 / b + 1 / c + 1 / d


def _log_rr(a: Array, b: Array, c: Array, d: Array) -> tuple[Array, Array]:
    n1, n2 = a + b, c + d
    return np.log(a / n1) - np.log(c / n2), 1 / a - 1 / n1 + 1 / c - 1 / n2


def _rd(a: Array, b: Array, c: Array, d: Array) -> tuple[Array, Array]:
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


_STUDY_EFFECTS: dict[str, Callable[[Array, Array, Array, Array], tuple[Array, Array]]] = {
    "OR": _log_or,
    "RR": _log_rr,
    "RD": _rd,
}


def study_effects(ai: ArrayLike, bi: ArrayLike, ci: ArrayLike, di: ArrayLike, measure: str, *,
                  add: float = 0.5, to: str = "only0", drop00: bool = True) -> tuple[Array, Array]:
    """Study-level ``yi``/``vi`` with metafor's ``escalc`` continuity-correction rules.

    ``to`` is ``"only0"`` (tables with a zero cell), ``"all"``, ``"if0all"`` (all tables when
    any has a zero cell) or ``"none"``. With ``drop00`` tables with zero events (or zero
    non-events) in both arms get ``NaN``. Non-finite results (a zero cell left uncorrected) are
    also ``NaN``.
    """
    if measure not in _STUDY_EFFECTS:
        raise SpecError(f"Mantel-Haenszel needs measure OR, RR or RD, not '{measure}'", key="measure")
    a, b, c, d = (x.copy() for x in _counts(ai, bi, ci, di))
    dropped = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0)) if drop00 else np.zeros(a.size, dtype=bool)
    zero = ((a == 0) | (b == 0) | (c == 0) | (d == 0)) & ~dropped
    corrections = {"only0": zero, "all": np.ones(a.size, dtype=bool),
                   "if0all": np.full(a.size, bool(zero.any())), "none": np.zeros(a.size, dtype=bool)}
    if to not in corrections:
        raise SpecError(f"unknown continuity-correction target to='{to}'", key="to")
    hit = corrections[to]
    for x in (a, b, c, d):
        x[hit] += add
    with np.errstate(divide="ignore", invalid="ignore"):
        yi, vi = _STUDY_EFFECTS[measure](a, b, c, d)
    bad = dropped | ~np.isfinite(yi) | ~np.isfinite(vi)
    yi[bad] = np.nan
    vi[bad] = np.nan
    return yi, vi


def _mh_or(a: Array, b: Array, c: Array, d: Array) -> tuple[float, float] | None:
    n = a + b + c + d
    P, Q = a / n + d / n, b / n + c / n
    R_i, S_i = (a / n) * d, (b / n) * c
    R, S = float(R_i.sum()), float(S_i.sum())
    if R == 0 or S == 0:
        return None
    var = 0.5 * (float(np.sum(P * R_i)) / R**2 + float(np.sum(P * S_i + Q * R_i)) / (R * S)
                 + float(np.sum(Q * S_i)) / S**2)
    return math.log(R / S), math.sqrt(var)


def _mh_rr(a: Array, b: Array, c: Array, d: Array) -> tuple[float, float] | None:
    n1, n2 = a + b, c + d
    n = n1 + n2
    if a.sum() == 0 or c.sum() == 0:
        return None
    R, S = float(np.sum(a * (n2 / n))), float(np.sum(c * (n1 / n)))
    var = float(np.sum((n1 / n) * (n2 / n) * (a + c) - (a / n) * c)) / (R * S)
    return math.log(R / S), math.sqrt(var)


def _mh_rd(a: Array, b: Array, c: Array, d: Array) -> tuple[float, float] | None:
    n1, n2 = a + b, c + d
    n = n1 + n2
    denom = float(np.sum(n1 * (n2 / n)))
    beta = float(np.sum(a * (n2 / n) - c * (n1 / n))) / denom
    num = (beta * float(np.sum(c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2))
           + float(np.sum(a * (n2 - c) / n + c * (n1 - a) / n)) / 2)
    return beta, math.sqrt(num / denom**2)


def _mh_weights_or(a: Array, b: Array, c: Array, d: Array) -> Array:
    return (b / (a + b + c + d)) * c


def _mh_weights_rr(a: Array, b: Array, c: Array, d: Array) -> Array:
    return (c / (a + b + c + d)) * (a + b)


def _mh_weights_rd(a: Array, b: Array, c: Array, d: Array) -> Array:
    return ((a + b) / (a + b + c + d)) * (c + d)


#: Mantel-Haenszel estimator (log scale for OR/RR) with its SE, and the MH weights, per measure.
MH_MEASURES: dict[str, tuple[Callable[..., tuple[float, float] | None], Callable[..., Array]]] = {
    "OR": (_mh_or, _mh_weights_or),
    "RR": (_mh_rr, _mh_weights_rr),
    "RD": (_mh_rd, _mh_weights_rd),
}


def _or_tests(a: Array, b: Array, c: Array, d: Array, estimate: float | None,
              correct: bool) -> dict[str, float | int | None]:
    """Cochran-Mantel-Haenszel, Breslow-Day and Tarone tests (metafor's MH, BD, TA)."""
    n1, n2 = a + b, c + d
    n = n1 + n2
    xt, yt = a + c, b + d
    out: dict[str, float | int | None] = {"cmh": None, "cmh_p": None, "bd": None, "bd_p": None, "ta": None,
                                          "ta_p": None, "k_pos": 0}
    if xt.sum() != 0 and yt.sum() != 0:
        cmh = ((abs(float(np.sum(a - (n1 / n) * xt))) - (0.5 if correct else 0.0)) ** 2
               / float(np.sum((n1 / n) * (n2 / n) * (xt * (yt / (n - 1))))))
        out["cmh"], out["cmh_p"] = cmh, float(stats.chi2.sf(cmh, 1))
    if estimate is None:
        return out
    psi = math.exp(estimate)
    if psi == 1:
        n11 = (n1 / n) * xt
    else:
        A = psi * (n1 + xt) + (n2 - xt)
        B = np.sqrt(A**2 - 4 * n1 * xt * psi * (psi - 1))
        n11 = (A - B) / (2 * (psi - 1))
    pos = (n11 > 0) & (xt > 0) & (yt > 0)
    k_pos = int(pos.sum())
    n11 = n11[pos]
    n12 = n1[pos] - n11
    n21 = xt[pos] - n11
    n22 = n11 - n1[pos] - xt[pos] + n[pos]
    inv_var = 1 / n11 + 1 / n12 + 1 / n21 + 1 / n22
    dev = a[pos] - n11
    bd = max(0.0, float(np.sum(dev**2 / inv_var**-1)))
    ta = max(0.0, bd - float(np.sum(dev)) ** 2 / float(np.sum(inv_var**-1)))
    out.update(bd=bd, ta=ta, k_pos=k_pos)
    if k_pos > 1:
        out["bd_p"] = float(stats.chi2.sf(bd, k_pos - 1))
        out["ta_p"] = float(stats.chi2.sf(ta, k_pos - 1))
    return out


def rma_mh(
    ai: ArrayLike,
    bi: ArrayLike,
    ci: ArrayLike,
    di: ArrayLike,
    *,
    measure: str = "OR",
    level: float = 95.0,
    correct: bool = True,
    add: float = 0.5,
    to: str = "only0",
    drop00: bool = True,
) -> MHResult:
    """Mantel–Haenszel fixed-effect model for 2x2 tables (``metafor::rma.mh``).

    Parameters
    ----------
    ai, bi, ci, di
        Events and non-events in arm 1 (treatment) and arm 2 (control).
    measure
        ``"OR"``, ``"RR"`` or ``"RD"``; OR and RR are pooled on the log scale.
    level
        Confidence level in percent.
    correct
        Continuity correction in the Cochran–Mantel–Haenszel test (OR only).
    add, to, drop00
        Continuity correction of the study-level ``yi``/``vi`` used for the heterogeneity test
        (metafor's defaults); the pooled estimate always uses the raw counts.
    """
    if measure not in MH_MEASURES:
        raise SpecError(f"Mantel-Haenszel needs measure OR, RR or RD, not '{measure}'", key="measure")
    a, b, c, d = _counts(ai, bi, ci, di)
    if np.any((a + b) == 0) or np.any((c + d) == 0):
        raise InputError("every arm needs at least one participant (ai + bi > 0 and ci + di > 0)")
    yi, vi = study_effects(a, b, c, d, measure, add=add, to=to, drop00=drop00)
    estimator, weigher = MH_MEASURES[measure]
    fit = estimator(a, b, c, d)
    alpha = alpha_of(level)
    if fit is None:
        estimate = se = zval = pval = ci_low = ci_high = None
    else:
        estimate, se = fit
        zval = estimate / se
        pval = float(2 * stats.norm.sf(abs(zval)))
        crit = float(stats.norm.isf(alpha / 2))
        ci_low, ci_high = estimate - crit * se, estimate + crit * se
    ok = np.isfinite(yi) & np.isfinite(vi)
    k_yi = int(ok.sum())
    if k_yi > 1 and estimate is not None:
        w = 1 / vi[ok]
        q = max(0.0, float(np.sum(w * (yi[ok] - estimate) ** 2)))
        q_p = float(stats.chi2.sf(q, k_yi - 1))
        i2 = max(0.0, 100 * (q - (k_yi - 1)) / q) if q > 0 else 0.0
        h2 = q / (k_yi - 1)
    elif k_yi > 1:
        q = q_p = i2 = h2 = math.nan
    else:
        q, q_p, i2, h2 = 0.0, 1.0, 0.0, 1.0
    w_mh = weigher(a, b, c, d)
    tests = _or_tests(a, b, c, d, estimate, correct) if measure == "OR" else {}
    return MHResult(
        k=int(a.size), k_yi=k_yi, measure=measure, level=float(level), estimate=estimate, se=se, zval=zval,
        pval=pval, ci_low=ci_low, ci_high=ci_high, q=q, q_df=max(k_yi - 1, 0), q_p=q_p, i2=i2, h2=h2,
        weights=as_tuple(100 * w_mh / w_mh.sum() if w_mh.sum() > 0 else np.full(a.size, math.nan)),
        yi=tuple(None if not math.isfinite(y) else float(y) for y in yi),
        vi=tuple(None if not math.isfinite(v) else float(v) for v in vi), **tests)
