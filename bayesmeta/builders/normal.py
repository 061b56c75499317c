"""Normal–normal random-effects model on ready effect sizes (``yi``, ``vi``).

``y_i ~ N(theta_i, v_i)`` with ``theta_i = mu (+ x_i' beta) + tau * z_i``, ``z_i ~ N(0, 1)``
(non-centred), for any measure on its analysis scale (log-RR, log-OR, SMD, MD, GEN...).
Observed variable ``y`` (dim ``study``); ``vi`` is kept as ``pm.Data("vi")`` so it appears in
``constant_data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayesmeta.builders.regression import _row, add_random_effects, study_labels
from bayesmeta.errors import InputError
from bayesmeta.priors import Prior

__all__ = ["build_normal", "effect_arrays", "effect_log_likelihood", "replicate_effects"]


def effect_arrays(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(yi, vi)`` as float arrays (``vi`` from ``sei²`` when only ``sei`` is given).

    Raises
    ------
    InputError
        A missing column, or a missing/non-finite value or a variance ≤ 0 (names the row).
    """
    if "yi" not in data.columns:
        raise InputError("the normal model needs a column 'yi' (effect sizes)", column="yi")
    if "vi" in data.columns:
        vcol = "vi"
        vi = data["vi"].to_numpy(dtype=float)
    elif "sei" in data.columns:
        vcol = "sei"
        vi = data["sei"].to_numpy(dtype=float) ** 2
    else:
        raise InputError("the normal model needs a column 'vi' or 'sei'", column="vi")
    yi = data["yi"].to_numpy(dtype=float)
    for col, values, ok in (("yi", yi, np.isfinite(yi)), (vcol, vi, np.isfinite(vi) & (vi > 0))):
        if not ok.all():
            i = int(np.argmin(ok))
            raise InputError(f"{col} must be a finite number{' > 0' if col != 'yi' else ''}, "
                             f"got {values[i]!r}", row=_row(data.index[i]), column=col)
    return yi, vi


def build_normal(
    data: pd.DataFrame,
    *,
    priors: Mapping[str, Prior],
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
) -> pm.Model:
    """Build the normal–normal model (see the module docstring).

    Parameters
    ----------
    data
        Frame with ``yi`` and ``vi`` (or ``sei``), ``label`` (or ``study``) and any moderator
        columns.
    priors
        Prior objects for ``"mu"``, ``"tau"`` and (with moderators) ``"beta"``.
    moderators, subgroup, subgroup_tau
        See :func:`bayesmeta.builders.regression.add_random_effects`.
    """
    yi, vi = effect_arrays(data)
    with pm.Model(coords={"study": study_labels(data)}) as model:
        vi_data = pm.Data("vi", vi, dims="study")
        theta = add_random_effects(data, vi, priors, moderators=moderators, subgroup=subgroup,
                                   subgroup_tau=subgroup_tau)
        pm.Normal("y", mu=theta, sigma=pm.math.sqrt(vi_data), observed=yi, dims="study")
    return model


def replicate_effects(tree: xr.DataTree, rng: np.random.Generator) -> dict[str, xr.DataArray]:
    """Posterior predictive ``y ~ N(theta, vi)``, one replicate per draw."""
    theta = tree["posterior"]["theta"].transpose("chain", "draw", "study")
    sd = np.sqrt(tree["constant_data"]["vi"].values)
    return {"y": theta.copy(data=theta.values + sd * rng.standard_normal(theta.shape))}


def effect_log_likelihood(tree: xr.DataTree) -> dict[str, xr.DataArray]:
    """Pointwise marginal ``log N(y_i | eta_i, v_i + tau_i²)`` per draw, ``theta_i`` integrated out.

    Marginal over the study effect so that PSIS-LOO estimates the predictive density of a left-out
    study (conditional on ``theta_i`` almost every study has Pareto k > 0.7, because ``theta_i`` is
    informed mainly by ``y_i``; Vehtari, Gelman & Gabry 2017, Sect. 4). ``eta_i`` is ``mu``,
    ``mu[level]`` or ``mu + x_i' beta``; ``tau_i`` is ``tau`` or ``tau[level]``.
    """
    post = tree["posterior"]
    eta = post["eta"].transpose("chain", "draw", "study")
    tau = post["tau_study"].transpose("chain", "draw", "study").values if "tau_study" in post \
        else post["tau"].transpose("chain", "draw").values[..., None]
    y = tree["observed_data"]["y"].values
    total = tree["constant_data"]["vi"].values + tau**2
    return {"y": eta.copy(data=-0.5 * (np.log(2 * np.pi * total) + (y - eta.values) ** 2 / total))}
