"""Subgroup analyses: a model per subgroup and a test for subgroup differences.

``tau2="separate"`` (RevMan 5, the default): each subgroup gets its own random-effects model
(its own tau²); subgroup differences are tested with RevMan's Q across the subgroup estimates,
``Q = Σ_j (est_j - est_FE)² / se_j²`` with ``est_FE`` their inverse-variance mean, chi² with
J - 1 df, and ``I² = max(0, (Q - df)/Q)``. ``tau2="common"``: one tau² shared by all subgroups,
as metafor's ``rma(yi, vi, mods = ~ factor(g))``; the test is that model's omnibus QM (F under
Knapp–Hartung), the per-subgroup rows are the coefficients of ``~ factor(g) - 1``.

Subgroup weights are RevMan's: each subgroup's share (percent) of the weights
``1/(vi + tau²_overall)`` of the overall random-effects model.

A subgroup with a single study is fitted as metafor fits ``k = 1``: tau² = 0 and a z test
(its estimate is the study's ``yi`` with standard error ``sqrt(vi)``); a
:class:`~bayesmeta.errors.DataWarning` names such subgroups.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from bayesmeta.errors import DataWarning, InputError, SpecError
from bayesmeta.frequentist.metareg import factor_levels
from bayesmeta.frequentist.results import BetweenTest, MetaRegressionResult, RMAResult, SubgroupResult, SubgroupRow
from bayesmeta.frequentist.rma import check_effects, rma
from bayesmeta.frequentist.tau2 import Tau2Control

__all__ = ["TAU2_MODES", "revman_between", "subgroup_analysis"]

TAU2_MODES = ("separate", "common")


def revman_between(estimates: ArrayLike, ses: ArrayLike) -> BetweenTest:
    """RevMan's test for subgroup differences from subgroup estimates and standard errors."""
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(ses, dtype=float)
    df = est.size - 1
    if df < 1:
        return BetweenTest(q=0.0, df=0, p=None, i2=0.0)
    w = 1.0 / se**2
    pooled = float(np.sum(w * est) / np.sum(w))
    q = float(np.sum(w * (est - pooled) ** 2))
    i2 = max(0.0, 100.0 * (q - df) / q) if q > 0 else 0.0
    return BetweenTest(q=q, df=df, p=float(stats.chi2.sf(q, df)), i2=i2)


def _fit(yi: np.ndarray, vi: np.ndarray, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        # k = 1 subgroups switch to z (announced once by subgroup_analysis)
        warnings.filterwarnings("ignore", message="only one study", category=DataWarning)
        return rma(yi, vi, **kwargs)


def subgroup_analysis(
    yi: ArrayLike,
    vi: ArrayLike,
    groups: ArrayLike,
    *,
    method: str = "DL",
    test: str = "z",
    tau2: str = "separate",
    level: float = 95.0,
    control: Tau2Control | None = None,
) -> SubgroupResult:
    """Random-effects model per subgroup and a test for subgroup differences.

    Parameters
    ----------
    yi, vi
        Effect sizes and sampling variances.
    groups
        Subgroup label of each study. Levels are ordered as R's ``factor()`` orders them (a
        pandas Categorical's own order, otherwise sorted).
    method, test, level, control
        As for :func:`bayesmeta.frequentist.rma`.
    tau2
        ``"separate"`` (own tau² per subgroup, RevMan's between test) or ``"common"``.

    Returns
    -------
    SubgroupResult
        ``to_dict()`` gives ``{"subgroups": [...], "between": {...}, "overall": {...}}``.
    """
    if tau2 not in TAU2_MODES:
        raise SpecError(f"unknown subgroup tau2 mode '{tau2}' (choose separate or common)", key="subgroup_tau2")
    y, v = check_effects(yi, vi)
    labels = np.asarray(groups, dtype=object)
    if labels.shape != y.shape:
        raise InputError(f"groups has {labels.size} labels for {y.size} studies")
    if any(g is None or (isinstance(g, float) and np.isnan(g)) for g in labels.tolist()):
        raise InputError("groups has missing labels")
    levels = factor_levels(groups)
    overall = rma(y, v, method=method, test=test, level=level, control=control)
    assert isinstance(overall, RMAResult)
    weights = np.asarray(overall.weights)
    members = [labels == lev for lev in levels]
    singles = [str(lev) for lev, m in zip(levels, members, strict=True) if m.sum() == 1]
    if singles:
        warnings.warn(f"subgroup(s) {', '.join(singles)} have one study: fitted with tau2 = 0 and a z test "
                      "(as metafor does for k = 1)", DataWarning, stacklevel=2)
    if tau2 == "separate":
        rows = []
        for lev, m in zip(levels, members, strict=True):
            fit = _fit(y[m], v[m], method=method, test=test, level=level, control=control)
            rows.append(SubgroupRow(level=str(lev), k=fit.k, weight_pct=float(weights[m].sum()), estimate=fit.estimate,
                                    se=fit.se, ci_low=fit.ci_low, ci_high=fit.ci_high, tau2=fit.tau2, i2=fit.i2,
                                    pval=fit.pval, q=fit.q, q_df=fit.q_df, q_p=fit.q_p))
        between = revman_between([r.estimate for r in rows], [r.se for r in rows])
    else:
        rows, between = _common(y, v, levels, members, weights, method=method, test=test, level=level,
                                control=control)
    return SubgroupResult(subgroups=tuple(rows), between=between, overall=overall, tau2_mode=tau2, method=method,
                          test=test, level=float(level))


def _common(y: np.ndarray, v: np.ndarray, levels: list[Any], members: list[np.ndarray], weights: np.ndarray, *,
            method: str, test: str, level: float, control: Tau2Control | None) -> tuple[list[SubgroupRow], BetweenTest]:
    """Common-tau² subgroups: cell means of ``~ factor(g) - 1`` and the QM test of ``~ factor(g)``."""
    dummies = np.column_stack([m.astype(float) for m in members])
    cells = _fit(y, v, mods=dummies, intercept=False, method=method, test=test, level=level, control=control)
    assert isinstance(cells, MetaRegressionResult)
    rows = [SubgroupRow(level=str(lev), k=int(m.sum()), weight_pct=float(weights[m].sum()), estimate=c.beta, se=c.se,
                        ci_low=c.ci_low, ci_high=c.ci_high, tau2=cells.tau2, i2=cells.i2, pval=c.pval)
            for lev, m, c in zip(levels, members, cells.coefficients, strict=True)]
    if len(levels) < 2:
        return rows, BetweenTest(q=0.0, df=0, p=None, i2=0.0, kind="qm")
    full = _fit(y, v, mods=dummies[:, 1:], method=method, test=test, level=level, control=control)
    assert isinstance(full, MetaRegressionResult)
    if full.qm_df2 is None:
        i2 = max(0.0, 100.0 * (full.qm - full.qm_df) / full.qm) if full.qm > 0 else 0.0
    else:
        i2 = None
    return rows, BetweenTest(q=full.qm, df=full.qm_df, df2=full.qm_df2, p=full.qm_p, i2=i2, kind="qm")
