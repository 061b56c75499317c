"""Exact binomial-likelihood random-effects model on the log risk-ratio scale.

Counts: ``ai`` events of ``n1i`` (arm 1, treatment) and ``ci`` of ``n2i`` (arm 2, control),
or ``ai, bi, ci, di``. No continuity correction: zero cells and double-zero studies enter the
likelihood as they are.

Model
-----
``theta_i = log(p_ti / p_ci)`` with ``theta_i = mu (+ x_i' beta) + tau * z_i`` exactly as in
the normal model (:func:`~bayesmeta.builders.regression.add_random_effects`).

The risks must stay in (0, 1) for every ``theta_i``: ``p_ti = p_ci exp(theta_i) ≤ 1``. We
parameterise each study by its *larger* arm risk ``p_max_i = max(p_ti, p_ci)``::

    p_max_i ~ Beta(a, b)                    (default a = b = 1, uniform)
    log p_ci = log p_max_i − max(0, theta_i)
    log p_ti = log p_max_i + min(0, theta_i)

so ``p_ti / p_ci = exp(theta_i)`` holds exactly, both risks lie in (0, p_max_i], and every
(``p_max``, ``theta``) is admissible: no truncation, no rejection, and the prior of ``theta_i``
is exactly ``N(mu + x_i' beta, tau²)``. With the default uniform ``p_max`` this is the same model
as a control risk uniform on its admissible range ``(0, min(1, e^{−theta_i}))`` (renormalised),
and it is symmetric in the arms: swapping treatment and control mirrors the posterior of ``mu``.
The log-density has a kink (continuous, not differentiable) at ``theta_i = 0``, which NUTS handles.

A double-zero study (``ai = ci = 0``) has an integrated likelihood in ``theta`` that is bounded
between ``1/(n1i + n2i + 1)`` (at ``theta = 0``) and ``1/(min(n1i, n2i) + 1)`` (``|theta| → ∞``)
under the uniform baseline: it carries little information, as it should, but not none.

Deterministics ``p_t``, ``p_c`` (dim ``study``); observed ``y_t``, ``y_c`` (dim ``study``).
``i2`` uses the within-study variances of the log-RR: the frame's ``vi`` when present (non-finite
values left out), else ``1/a − 1/n1 + 1/c − 1/n2`` with 0.5 added to the cells of studies with a
zero cell and double-zero studies left out (metafor's defaults).

The per-study log-likelihood for PSIS-LOO integrates ``theta_i`` and ``p_max_i`` out
(:mod:`bayesmeta.builders.binomial_likelihood`); :func:`count_log_likelihood` gives the
per-arm log-likelihoods conditional on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy import stats
import xarray as xr

from bayesmeta.builders.binomial_likelihood import DEFAULT_BASELINE
from bayesmeta.builders.regression import _row, add_random_effects, study_labels
from bayesmeta.errors import InputError
from bayesmeta.priors import Prior

__all__ = [
    "build_binomial",
    "count_arrays",
    "count_log_likelihood",
    "log_rr_variance",
    "replicate_counts",
]


def count_arrays(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ai, n1i, ci, n2i)`` as integer arrays, from ``ai, n1i, ci, n2i`` or ``ai, bi, ci, di``.

    Raises
    ------
    InputError
        Missing columns, non-integer or negative counts, events above the arm size, empty arms.
    """
    cols = set(data.columns)
    if {"ai", "n1i", "ci", "n2i"} <= cols:
        names = ("ai", "n1i", "ci", "n2i")
        raw = {c: data[c].to_numpy(dtype=float) for c in names}
    elif {"ai", "bi", "ci", "di"} <= cols:
        names = ("ai", "bi", "ci", "di")
        raw = {c: data[c].to_numpy(dtype=float) for c in names}
    else:
        raise InputError("the binomial model needs counts: columns ai, n1i, ci, n2i "
                         "(or ai, bi, ci, di)", column="ai")
    for col, values in raw.items():
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{col} must be a whole number ≥ 0, got {values[i]!r}",
                             row=_row(data.index[i]), column=col)
    if names[1] == "bi":
        ai, ci = raw["ai"], raw["ci"]
        n1, n2 = ai + raw["bi"], ci + raw["di"]
    else:
        ai, n1, ci, n2 = (raw[c] for c in names)
    for ev, n, ecol, ncol in ((ai, n1, "ai", names[1]), (ci, n2, "ci", names[3])):
        bad = (ev > n) | (n <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{ecol} = {ev[i]:g} events in an arm of {n[i]:g}",
                             row=_row(data.index[i]), column=ncol)
    return tuple(x.astype(np.int64) for x in (ai, n1, ci, n2))  # type: ignore[return-value]


def log_rr_variance(ai: np.ndarray, n1: np.ndarray, ci: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Large-sample variance of the log-RR; 0.5 added to all cells of studies with a zero cell,
    NaN for double-zero studies (metafor's ``escalc`` defaults)."""
    a, c = ai.astype(float), ci.astype(float)
    b, d = n1 - a, n2 - c
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    add = np.where(zero, 0.5, 0.0)
    with np.errstate(divide="ignore"):
        v = 1 / (a + add) - 1 / (n1 + 2 * add) + 1 / (c + add) - 1 / (n2 + 2 * add)
    return np.where((a == 0) & (c == 0), np.nan, v)


def build_binomial(
    data: pd.DataFrame,
    *,
    priors: Mapping[str, Prior],
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
    baseline: tuple[float, float] = DEFAULT_BASELINE,
) -> pm.Model:
    """Build the exact binomial log-RR model (see the module docstring).

    Parameters
    ----------
    data
        Frame with counts, ``label`` (or ``study``) and any moderator columns.
    priors
        Prior objects for ``"mu"``, ``"tau"`` and (with moderators) ``"beta"``.
    moderators, subgroup, subgroup_tau
        See :func:`bayesmeta.builders.regression.add_random_effects`.
    baseline
        ``(a, b)`` of the Beta prior on each study's larger arm risk (``pm.Data``
        ``p_max_prior_a``/``p_max_prior_b``).
    """
    ai, n1, ci, n2 = count_arrays(data)
    if "vi" in data.columns:
        vi = data["vi"].to_numpy(dtype=float)
    else:
        vi = log_rr_variance(ai, n1, ci, n2)
    with pm.Model(coords={"study": study_labels(data)}) as model:
        n1_data = pm.Data("n1i", n1, dims="study")
        n2_data = pm.Data("n2i", n2, dims="study")
        theta = add_random_effects(data, vi, priors, moderators=moderators, subgroup=subgroup,
                                   subgroup_tau=subgroup_tau)
        a = pm.Data("p_max_prior_a", float(baseline[0]))
        b = pm.Data("p_max_prior_b", float(baseline[1]))
        p_max = pm.Beta("p_max", alpha=a, beta=b, dims="study")
        log_p_max = pt.log(p_max)
        p_c = pm.Deterministic("p_c", pt.exp(log_p_max - pt.maximum(theta, 0.0)), dims="study")
        p_t = pm.Deterministic("p_t", pt.exp(log_p_max + pt.minimum(theta, 0.0)), dims="study")
        pm.Binomial("y_t", n=n1_data, p=p_t, observed=ai, dims="study")
        pm.Binomial("y_c", n=n2_data, p=p_c, observed=ci, dims="study")
    return model


def replicate_counts(tree: xr.DataTree, rng: np.random.Generator) -> dict[str, xr.DataArray]:
    """Posterior predictive ``y_t ~ Bin(n1i, p_t)``, ``y_c ~ Bin(n2i, p_c)``, one per draw."""
    post, const = tree["posterior"], tree["constant_data"]
    out = {}
    for name, n, p in (("y_t", "n1i", "p_t"), ("y_c", "n2i", "p_c")):
        prob = post[p].transpose("chain", "draw", "study")
        size = np.broadcast_to(const[n].values, prob.shape)
        out[name] = prob.copy(data=rng.binomial(size, np.clip(prob.values, 0.0, 1.0)))
    return out


def count_log_likelihood(tree: xr.DataTree) -> dict[str, xr.DataArray]:
    """Pointwise ``log Bin(y_t | n1i, p_t)`` and ``log Bin(y_c | n2i, p_c)`` per draw."""
    post, obs, const = tree["posterior"], tree["observed_data"], tree["constant_data"]
    out = {}
    for name, n, p in (("y_t", "n1i", "p_t"), ("y_c", "n2i", "p_c")):
        prob = post[p].transpose("chain", "draw", "study")
        out[name] = prob.copy(data=stats.binom.logpmf(obs[name].values, const[n].values,
                                                      prob.values))
    return out
