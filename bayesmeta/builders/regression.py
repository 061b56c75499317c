"""Random-effects structure shared by every family: pooled mean, moderators, subgroups, tau.

:func:`add_random_effects` creates, in the current model context,

- ``mu``: the pooled mean (scalar), or one per subgroup level (dim ``subgroup``);
- ``beta`` (dim ``coef``): meta-regression coefficients, when moderators are given;
  categorical moderators are dummy coded with the first level as reference (R's factor
  order: categories of a pandas Categorical, otherwise sorted levels), continuous moderators
  enter as they are (not centred, as in metafor's ``rma(mods=)``), so ``mu`` is the effect at
  the reference levels with continuous moderators at 0;
- ``tau``: heterogeneity SD (scalar, or dim ``subgroup`` when ``subgroup_tau="separate"``);
- ``z`` (dim ``study``) and ``theta = mu + X beta + tau * z`` (non-centred);
- ``tau2``, ``i2`` (percent; Higgins–Thompson typical within-study variance, generalised
  to moderators as ``s² = (k − p) / tr(P)``, ``P = W − W X (X'WX)⁻¹ X'W``, as metafor does;
  with separate subgroup taus, ``s²`` is computed within each level);
- ``z_new`` and ``theta_new = mu + tau * z_new``: the effect of a new study (per subgroup level;
  at the reference levels / zero continuous moderators for meta-regression).

Builders of other families (e.g. selection models) should call it too, then add their
likelihood on ``theta``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayesmeta.builders._priors import add_location_prior, add_scale_prior
from bayesmeta.errors import InputError, SpecError
from bayesmeta.priors import Prior

__all__ = [
    "Design",
    "add_random_effects",
    "make_design",
    "study_labels",
    "typical_variance",
]

RESERVED = frozenset({"yi", "vi", "sei", "ai", "bi", "ci", "di", "n1i", "n2i", "label", "study"})


def _row(index_value: object) -> int | None:
    return int(index_value) if isinstance(index_value, (int, np.integer)) else None


def study_labels(data: pd.DataFrame) -> list[str]:
    """Coordinate values of dim ``study``: the ``label`` column (else ``study``, else the row)."""
    for col in ("label", "study"):
        if col in data.columns:
            labels = [str(v) for v in data[col]]
            seen: set[str] = set()
            for idx, lab in zip(data.index, labels, strict=True):
                if lab in seen:
                    raise InputError(f"duplicate study label '{lab}'", row=_row(idx), column=col)
                seen.add(lab)
            return labels
    return [f"row {i}" for i in data.index]


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna())
        return [c for c in series.cat.categories if c in present]
    return sorted(series.dropna().unique(), key=lambda v: (str(type(v)), v))


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _column(data: pd.DataFrame, col: str, what: str) -> pd.Series:
    if col not in data.columns:
        raise SpecError(f"{what} '{col}' is not a column of the data; columns: "
                        f"{', '.join(map(str, data.columns))}", key=f"model.{what}")
    series = data[col]
    missing = series.isna().to_numpy()
    if missing.any():
        idx = data.index[np.argmax(missing)]
        raise InputError(f"{what} '{col}' is missing", row=_row(idx), column=col)
    return series


@dataclass(frozen=True)
class Design:
    """Moderator design of a model (no intercept column) and the subgroup coding.

    Attributes
    ----------
    X
        ``(k, p)`` moderator matrix (dummies and continuous columns).
    coef
        Names of the columns of ``X`` (``"timing[late]"``, ``"dose_ratio"``).
    groups
        ``(k,)`` level index of each study, or None without subgroups.
    levels
        Subgroup level names (coordinate ``subgroup``).
    """

    X: np.ndarray
    coef: list[str]
    groups: np.ndarray | None
    levels: list[str]


def make_design(data: pd.DataFrame, moderators: Sequence[str] = (),
                subgroup: str | None = None) -> Design:
    """Build the moderator matrix and subgroup codes; errors name the row and column."""
    k = len(data)
    columns: list[np.ndarray] = []
    names: list[str] = []
    for col in moderators:
        if col in RESERVED:
            raise SpecError(f"'{col}' is a data column of the effect, not a moderator",
                            key="model.moderators")
        series = _column(data, col, "moderator")
        if _is_categorical(series):
            levels = _levels(series)
            if len(levels) < 2:
                raise InputError(f"moderator '{col}' has a single level ({levels[0]!r})",
                                 column=col)
            for lev in levels[1:]:
                columns.append((series == lev).to_numpy(dtype=float))
                names.append(f"{col}[{lev}]")
        else:
            columns.append(series.to_numpy(dtype=float))
            names.append(str(col))
    X = np.column_stack(columns) if columns else np.zeros((k, 0))
    groups = None
    levels: list[str] = []
    if subgroup:
        series = _column(data, subgroup, "subgroup")
        raw_levels = _levels(series)
        lookup = {lev: i for i, lev in enumerate(raw_levels)}
        groups = np.array([lookup[v] for v in series], dtype=int)
        levels = [str(v) for v in raw_levels]
    full = np.column_stack([_intercepts(groups, len(levels), k), X])
    if np.linalg.matrix_rank(full) < full.shape[1]:
        raise InputError("the moderators are collinear (or a moderator level is confounded "
                         f"with a subgroup): {', '.join(names)}")
    return Design(X=X, coef=names, groups=groups, levels=levels)


def _intercepts(groups: np.ndarray | None, n_levels: int, k: int) -> np.ndarray:
    if groups is None:
        return np.ones((k, 1))
    return (groups[:, None] == np.arange(n_levels)[None, :]).astype(float)


def typical_variance(vi: np.ndarray, X: np.ndarray | None = None) -> float:
    """Typical within-study variance ``s² = (k − p) / tr(P)`` with ``P = W − WX(X'WX)⁻¹X'W``.

    With ``X`` a column of ones this is Higgins & Thompson's
    ``(k − 1) Σw / ((Σw)² − Σw²)`` (Higgins & Thompson 2002, Stat Med 21:1539, eq. 9);
    the generalisation is the one metafor uses for I² with moderators. Studies with a
    non-finite ``vi`` are left out; with no residual degrees of freedom (``k ≤ p``) the mean
    of ``vi`` is returned.
    """
    vi = np.asarray(vi, dtype=float)
    X = np.ones((vi.size, 1)) if X is None else np.asarray(X, dtype=float)
    keep = np.isfinite(vi) & (vi > 0)
    vi, X = vi[keep], X[keep]
    X = X[:, np.linalg.norm(X, axis=0) > 0]
    k, p = X.shape
    if k == 0:
        return float("nan")
    if k <= p:
        return float(np.mean(vi))
    w = 1.0 / vi
    WX = X * w[:, None]
    trace_p = w.sum() - np.trace(np.linalg.solve(X.T @ WX, WX.T @ WX))
    return float((k - p) / trace_p)


def _s2(vi: np.ndarray, design: Design, separate: bool) -> np.ndarray:
    k = vi.size
    if design.groups is None:
        return np.array(typical_variance(vi, np.column_stack([np.ones(k), design.X])))
    if separate:
        return np.array([typical_variance(vi[design.groups == g])
                         for g in range(len(design.levels))])
    full = np.column_stack([_intercepts(design.groups, len(design.levels), k), design.X])
    return np.array(typical_variance(vi, full))


def add_random_effects(
    data: pd.DataFrame,
    vi: np.ndarray,
    priors: Mapping[str, Prior],
    *,
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
) -> pt.TensorVariable:
    """Create ``mu``, ``beta``, ``tau``, ``z``, ``theta``, ``tau2``, ``i2``, ``theta_new``.

    Must be called inside a ``pm.Model`` that has the coordinate ``study``.

    Parameters
    ----------
    data
        The analysis frame (moderator and subgroup columns are read from it).
    vi
        Within-study variances used for I² (non-finite values are left out of ``s²``).
    priors
        ``"mu"``, ``"tau"`` and, with moderators, ``"beta"``.
    moderators, subgroup, subgroup_tau
        See the module docstring. ``subgroup_tau`` is ``"separate"`` or ``"shared"``.

    Returns
    -------
    The ``theta`` tensor (dim ``study``).
    """
    if subgroup_tau not in ("separate", "shared"):
        raise SpecError(f"subgroup_tau must be 'separate' or 'shared', got {subgroup_tau!r}",
                        key="model.subgroup_tau")
    model = pm.modelcontext(None)
    design = make_design(data, moderators, subgroup)
    separate = design.groups is not None and subgroup_tau == "separate"
    group_dims = "subgroup" if design.groups is not None else None
    if group_dims:
        model.add_coord("subgroup", design.levels)
    mu = add_location_prior("mu", priors["mu"], dims=group_dims)
    tau = add_scale_prior("tau", priors["tau"], dims="subgroup" if separate else None)
    loc = mu if design.groups is None else mu[design.groups]
    tau_i = tau[design.groups] if separate else tau
    if design.coef:
        if "beta" not in priors:
            raise SpecError("moderators need a prior for beta", key="priors.beta")
        model.add_coord("coef", design.coef)
        X = pm.Data("X", design.X, dims=("study", "coef"))
        beta = add_location_prior("beta", priors["beta"], dims="coef")
        loc = loc + pt.dot(X, beta)
    z = pm.Normal("z", 0.0, 1.0, dims="study")
    theta = pm.Deterministic("theta", loc + tau_i * z, dims="study")
    # The study's expected effect and its heterogeneity SD, for the marginal log-likelihood
    # log N(y_i | eta_i, v_i + tau_i^2) that PSIS-LOO uses (theta_i integrated out).
    k = len(data)
    pm.Deterministic("eta", pt.broadcast_to(loc, (k,)), dims="study")
    if separate:
        pm.Deterministic("tau_study", tau_i, dims="study")
    tau_dims = "subgroup" if separate else None
    tau2 = pm.Deterministic("tau2", tau**2, dims=tau_dims)
    s2 = _s2(np.asarray(vi, dtype=float), design, separate)
    pm.Deterministic("i2", 100.0 * tau2 / (tau2 + s2), dims=tau_dims)
    z_new = pm.Normal("z_new", 0.0, 1.0, dims=group_dims)
    pm.Deterministic("theta_new", mu + tau * z_new, dims=group_dims)
    return theta
