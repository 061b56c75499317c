"""Publication-bias models: Bayesian step-function selection models, PET and PEESE (as RoBMA).

Family ``"selection"`` (registered here, imported on first use by
:func:`bayesmeta.builders.get_family`); the option ``bias`` picks the model:

* a weight function (``"stepfun(0.025, 0.05)"``, ``"one-sided(0.05, 0.5)"``,
  ``"two-sided(0.05)"``, see :func:`bayesmeta.frequentist.selection.parse_weight_function`):
  each study's *marginal* likelihood is ``N(y_i; mu_i, v_i + tau^2) * omega[g_i] / A_i`` with
  ``A_i = sum_j omega_j P(p_i in interval j | mu_i, tau, v_i)`` from normal CDFs, exactly the
  likelihood of metafor's ``selmodel`` and RoBMA's weighted-normal models (Vevea & Hedges
  1995). The weights have RoBMA's cumulative Dirichlet prior: ``eta ~ Dirichlet(alpha)`` over
  the ``J`` p-value intervals ordered from the most significant, ``omega_j = sum_{i >= j}
  eta_i``, so ``omega[0] = 1`` and the weights never increase with the p-value (Bartos et al.
  2023, Res Synth Methods 14:99-116, Sec. 2; RoBMA/BayesTools ``prior_weightfunction``).
  Default ``alpha = 1`` (RoBMA-PSMA).
* ``"pet"``: ``y_i ~ N(mu_i + pet * se_i, v_i + tau^2)``; ``"peese"``: ``... + peese * v_i``,
  with RoBMA's priors ``pet ~ Cauchy(0, 1)`` and ``peese ~ Cauchy(0, 5)`` truncated to
  ``[0, inf)`` (= ``halfcauchy(1)`` / ``halfcauchy(5)``; Bartos et al. 2023, Sec. 2.2).

Every model has ``mu`` (and ``beta``/subgroups as the other families), ``tau``, ``tau2``,
``i2`` (percent), ``theta`` (dim ``study``) and ``theta_new``. Because selection acts on the
observed estimates, the true effects given an estimate are those of the normal-normal model:
``theta_i | y_i, mu_i, tau ~ N(mu_i + B_i (y_i - b_i - mu_i), B_i v_i)`` with
``B_i = tau^2 / (tau^2 + v_i)`` and ``b_i`` the PET/PEESE bias term (0 for selection models);
``theta`` is drawn from it with an auxiliary ``z ~ N(0, 1)`` that does not enter the
likelihood. Selection models add ``omega`` (and ``omega_eta``) with dim ``p_interval``;
PET/PEESE add the scalar slope ``pet`` / ``peese``. Observed: ``y`` (dim ``study``); its
pointwise log-likelihood includes the selection terms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special, stats

from bayesmeta.builders import register_family
from bayesmeta.builders._priors import add_location_prior, add_scale_prior
from bayesmeta.builders.normal import effect_arrays
from bayesmeta.builders.regression import make_design, study_labels, typical_variance
from bayesmeta.errors import SpecError
from bayesmeta.frequentist.selection import WeightFunction, parse_weight_function
from bayesmeta.priors import Prior, parse_prior

__all__ = [
    "BIAS_MODELS",
    "DEFAULT_SLOPE_PRIORS",
    "build_pet",
    "build_peese",
    "build_selection",
    "build_stepfun",
    "omega_alpha",
    "replicate_selection",
    "stepfun_logp",
]

#: RoBMA's default priors of the PET and PEESE slopes (Cauchy(0, 1) and Cauchy(0, 5) on [0, inf)).
DEFAULT_SLOPE_PRIORS: dict[str, str] = {"pet": "halfcauchy(1)", "peese": "halfcauchy(5)"}


# ---------------------------------------------------------------------------------------------
# shared random-effects structure on the marginal scale


def _marginal_effects(
    data: pd.DataFrame,
    vi: np.ndarray,
    priors: Mapping[str, Prior],
    moderators: Sequence[str],
    subgroup: str | None,
    subgroup_tau: str,
) -> tuple[Any, Any]:
    """Create ``mu``, ``beta``, ``tau``, ``tau2``, ``i2``, ``theta_new``; return (mean_i, tau_i).

    Same priors, coding and names as :func:`bayesmeta.builders.regression.add_random_effects`,
    but without ``theta`` in the likelihood: these models are written on the marginal scale.
    """
    if subgroup_tau not in ("separate", "shared"):
        raise SpecError(f"subgroup_tau must be 'separate' or 'shared', got {subgroup_tau!r}",
                        key="model.subgroup_tau")
    model = pm.modelcontext(None)
    design = make_design(data, moderators, subgroup)
    grouped = design.groups is not None
    separate = grouped and subgroup_tau == "separate"
    if grouped:
        model.add_coord("subgroup", design.levels)
    group_dims = "subgroup" if grouped else None
    tau_dims = "subgroup" if separate else None
    mu = add_location_prior("mu", priors["mu"], dims=group_dims)
    tau = add_scale_prior("tau", priors["tau"], dims=tau_dims)
    mean = mu[design.groups] if grouped else mu * pt.ones(len(vi))
    tau_i = tau[design.groups] if separate else tau
    if design.coef:
        if "beta" not in priors:
            raise SpecError("moderators need a prior for beta", key="priors.beta")
        model.add_coord("coef", design.coef)
        X = pm.Data("X", design.X, dims=("study", "coef"))
        mean = mean + pt.dot(X, add_location_prior("beta", priors["beta"], dims="coef"))
    tau2 = pm.Deterministic("tau2", tau**2, dims=tau_dims)
    full = np.column_stack([np.ones(len(vi)) if not grouped else
                            (design.groups[:, None] == np.arange(len(design.levels))).astype(float),
                            design.X])
    if separate:
        s2 = np.array([typical_variance(vi[design.groups == g]) for g in range(len(design.levels))])
    else:
        s2 = np.array(typical_variance(vi, full))
    pm.Deterministic("i2", 100.0 * tau2 / (tau2 + s2), dims=tau_dims)
    z_new = pm.Normal("z_new", 0.0, 1.0, dims=group_dims)
    pm.Deterministic("theta_new", mu + tau * z_new, dims=group_dims)
    return mean, tau_i


def _add_theta(yi: Any, vi: Any, mean: Any, tau_i: Any) -> None:
    """``theta`` from its conditional given ``y``: the normal-normal posterior of each study."""
    t2 = tau_i**2
    shrink = t2 / (t2 + vi)
    z = pm.Normal("z", 0.0, 1.0, dims="study")
    pm.Deterministic("theta", mean + shrink * (yi - mean) + pt.sqrt(shrink * vi) * z, dims="study")


# ---------------------------------------------------------------------------------------------
# the weighted-normal likelihood


def _phi_cdf(x: Any) -> Any:
    return 0.5 * pt.erfc(-x / math.sqrt(2.0))


def stepfun_logp(value: Any, mean: Any, sd: Any, w_int: Any, thr: Any, sign: float = 1.0) -> Any:
    """Log density of the step-function selection model for one study (batched, PyTensor).

    Parameters
    ----------
    value
        Observed estimates ``y_i``.
    mean, sd
        Marginal mean and SD ``sqrt(v_i + tau^2)`` of ``y_i`` before selection.
    w_int
        Weight of each one-sided p-value interval, ``(..., J)``, most significant first.
    thr
        Estimates at the one-sided cutpoints (decreasing), ``(..., J - 1)``
        (:meth:`WeightFunction.thresholds`).
    sign
        -1 when a one-sided function favours negative effects.
    """
    y = sign * value
    m = sign * mean
    s = _phi_cdf((m[..., None] - thr) / sd[..., None])  # P(Y >= threshold_j)
    zeros = pt.zeros_like(s[..., :1])
    cum = pt.concatenate([zeros, s, zeros + 1.0], axis=-1)
    probs = cum[..., 1:] - cum[..., :-1]
    norm_const = pt.sum(probs * w_int, axis=-1)
    interval = pt.sum(pt.gt(thr, y[..., None]), axis=-1)  # p in (c_{j-1}, c_j]  <=>  j thresholds above y
    onehot = pt.eq(interval[..., None], pt.arange(w_int.shape[-1]))
    w_obs = pt.sum(pt.switch(onehot, w_int, 0.0), axis=-1)
    log_normal = -0.5 * pt.log(2.0 * np.pi) - pt.log(sd) - 0.5 * ((value - mean) / sd) ** 2
    return log_normal + pt.log(w_obs) - pt.log(norm_const)


def _stepfun_random(sign: float) -> Callable[..., np.ndarray]:
    """Exact draws from the weighted normal: pick an interval, then a truncated normal in it."""

    def random(mean, sd, w_int, thr, rng=None, size=None):
        if size is None:
            shape = np.broadcast_shapes(np.shape(mean), np.shape(sd), np.shape(thr)[:-1], np.shape(w_int)[:-1])
        else:
            shape = tuple(int(n) for n in np.atleast_1d(size))
        mean = np.broadcast_to(sign * np.asarray(mean), shape)
        sd = np.broadcast_to(np.asarray(sd), shape)
        thr = np.broadcast_to(thr, (*shape, np.shape(thr)[-1]))
        w_int = np.broadcast_to(w_int, (*shape, np.shape(w_int)[-1]))
        upper_tail = special.ndtr((mean[..., None] - thr) / sd[..., None])
        cum = np.concatenate([np.zeros((*shape, 1)), upper_tail, np.ones((*shape, 1))], axis=-1)
        mass = np.diff(cum, axis=-1) * w_int
        pick = (mass.cumsum(-1) / mass.sum(-1, keepdims=True) < rng.random((*shape, 1))).sum(-1)
        pick = np.minimum(pick, mass.shape[-1] - 1)
        edges = np.concatenate([np.full((*shape, 1), np.inf), thr, np.full((*shape, 1), -np.inf)], axis=-1)
        hi = np.take_along_axis(edges, pick[..., None], -1)[..., 0]
        lo = np.take_along_axis(edges, pick[..., None] + 1, -1)[..., 0]
        a, b = (lo - mean) / sd, (hi - mean) / sd
        draws = stats.truncnorm.rvs(a, b, loc=mean, scale=sd, size=shape, random_state=rng)
        return sign * np.asarray(draws).reshape(shape)

    return random


# ---------------------------------------------------------------------------------------------
# priors of the weights

_DIRICHLET = re.compile(r"^\s*(?:cum)?dirichlet\s*\((?P<args>[^()]*)\)\s*$")


def omega_alpha(prior: Prior | str | None, n_omega: int) -> np.ndarray:
    """Concentration parameters of the cumulative Dirichlet prior on the weights.

    ``None`` gives RoBMA's default ``alpha = 1`` for every interval. ``"dirichlet(a)"`` sets every
    ``alpha`` to ``a``; ``"dirichlet(a1, ..., aJ)"`` gives one per interval (most significant
    first). A :class:`~bayesmeta.priors.Prior` of family ``dirichlet`` is read the same way.
    """
    if prior is None:
        return np.ones(n_omega)
    if isinstance(prior, Prior):
        if prior.family != "dirichlet":
            raise SpecError(f"the weights need a dirichlet(...) prior, got '{prior.text}'", key="priors.omega")
        values = [float(v) for v in prior.params]
    else:
        m = _DIRICHLET.match(str(prior).lower())
        if m is None:
            raise SpecError(f"the weights need a prior written dirichlet(alpha), got {prior!r}", key="priors.omega")
        try:
            values = [float(a) for a in m["args"].split(",") if a.strip()]
        except ValueError:
            raise SpecError(f"dirichlet(...) needs numbers, got {prior!r}", key="priors.omega") from None
    if len(values) == 1:
        values = values * n_omega
    if len(values) != n_omega or any(not (a > 0 and math.isfinite(a)) for a in values):
        raise SpecError(f"dirichlet prior of the weights needs 1 or {n_omega} positive values, got {values}",
                        key="priors.omega")
    return np.asarray(values)


# ---------------------------------------------------------------------------------------------
# builders


def build_stepfun(
    data: pd.DataFrame,
    *,
    priors: Mapping[str, Prior],
    weight_function: WeightFunction | str,
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
) -> pm.Model:
    """Bayesian step-function selection model (see the module docstring).

    Parameters
    ----------
    data
        Frame with ``yi``/``vi`` (or ``sei``), ``label`` and any moderators.
    priors
        ``mu``, ``tau`` (``beta`` with moderators); ``omega`` optional
        (``"dirichlet(1)"`` by default, a string or a ``Prior`` of family ``dirichlet``).
    weight_function
        A :class:`WeightFunction` or its text (``"stepfun(0.025, 0.05)"``, ``"two-sided(0.05)"``).
    """
    wf = _weight_function(weight_function)
    yi, vi = effect_arrays(data)
    alpha = omega_alpha(priors.get("omega"), wf.n_omega)
    thr = wf.thresholds(vi)
    edges = (0.0, *wf.cutpoints, 1.0)
    coords = {"study": study_labels(data), "p_interval": list(wf.labels), "cutpoint": list(wf.cutpoints),
              "one_sided_interval": [f"p ({edges[j]:.10g}, {edges[j + 1]:.10g}]" for j in range(len(edges) - 1)]}
    with pm.Model(coords=coords) as model:
        yi_data = pm.Data("yi", yi, dims="study")
        vi_data = pm.Data("vi", vi, dims="study")
        mean, tau_i = _marginal_effects(data, vi, priors, moderators, subgroup, subgroup_tau)
        alpha_data = pm.Data("omega_prior_alpha", alpha, dims="p_interval")
        eta = pm.Dirichlet("omega_eta", a=alpha_data, dims="p_interval")
        reverse_cumsum = pt.cumsum(eta[::-1])[::-1]
        omega = pm.Deterministic("omega", pt.concatenate([pt.ones(1), reverse_cumsum[1:]]),
                                 dims="p_interval")
        index = pm.Data("omega_interval", np.asarray(wf.interval_omega), dims="one_sided_interval")
        pm.Data("selection_sign", wf.sign)
        w_int = omega[index]
        sd = pt.sqrt(vi_data + tau_i**2)
        pm.CustomDist(
            "y", mean, sd, w_int, pm.Data("y_thresholds", thr, dims=("study", "cutpoint")),
            logp=lambda value, m, s, w, t: stepfun_logp(value, m, s, w, t, wf.sign),
            random=_stepfun_random(wf.sign),
            signature="(),(),(j),(c)->()",
            observed=yi_data,
            dims="study",
        )
        _add_theta(yi_data, vi_data, mean, tau_i)
    return model


def _build_slope(kind: str, bias_term: Callable[[np.ndarray], np.ndarray]) -> Callable[..., pm.Model]:
    def build(
        data: pd.DataFrame,
        *,
        priors: Mapping[str, Prior],
        moderators: Sequence[str] = (),
        subgroup: str | None = None,
        subgroup_tau: str = "separate",
    ) -> pm.Model:
        yi, vi = effect_arrays(data)
        slope_prior = priors.get(kind) or DEFAULT_SLOPE_PRIORS[kind]
        if isinstance(slope_prior, str):
            slope_prior = parse_prior(slope_prior, target="scale")
        with pm.Model(coords={"study": study_labels(data)}) as model:
            yi_data = pm.Data("yi", yi, dims="study")
            vi_data = pm.Data("vi", vi, dims="study")
            mean, tau_i = _marginal_effects(data, vi, priors, moderators, subgroup, subgroup_tau)
            slope = add_scale_prior(kind, slope_prior)
            bias = slope * pm.Data(f"{kind}_x", bias_term(vi), dims="study")
            pm.Normal("y", mu=mean + bias, sigma=pt.sqrt(vi_data + tau_i**2), observed=yi_data, dims="study")
            _add_theta(yi_data - bias, vi_data, mean, tau_i)
        return model

    build.__name__ = f"build_{kind}"
    build.__doc__ = (
        f"{kind.upper()} model: ``y_i ~ N(mu_i + {kind} * {'se_i' if kind == 'pet' else 'v_i'}, v_i + tau^2)``; "
        f"prior ``priors['{kind}']`` (default ``{DEFAULT_SLOPE_PRIORS[kind]}``, as RoBMA)."
    )
    return build


build_pet = _build_slope("pet", np.sqrt)
build_peese = _build_slope("peese", lambda vi: vi)

#: Named bias models; any other ``bias`` text is read as a weight function.
BIAS_MODELS: dict[str, Callable[..., pm.Model]] = {"pet": build_pet, "peese": build_peese}


def _weight_function(bias: WeightFunction | str) -> WeightFunction:
    if isinstance(bias, WeightFunction):
        return bias
    try:
        return parse_weight_function(bias)
    except ValueError as err:
        raise SpecError(str(err), key="model.bias") from None


def replicate_selection(tree: xr.DataTree, rng: np.random.Generator) -> dict[str, xr.DataArray]:
    """Posterior-predictive ``y`` of a study given its ``theta``, one replicate per draw.

    Selection models: ``y ~ N(theta_i, v_i)`` weighted by ``omega`` (drawn exactly: interval,
    then truncated normal). PET/PEESE: ``y ~ N(theta_i + slope * x_i, v_i)``.
    """
    post, const = tree["posterior"], tree["constant_data"]
    theta = post["theta"].transpose("chain", "draw", "study")
    sd = np.sqrt(const["vi"].values)
    if "omega" in post:
        omega = post["omega"].transpose("chain", "draw", "p_interval").values
        w_int = omega[..., const["omega_interval"].values][:, :, None, :]
        draws = _stepfun_random(float(const["selection_sign"].values))(
            theta.values, sd, w_int, const["y_thresholds"].values, rng=rng, size=theta.shape)
    else:
        kind = next(k for k in BIAS_MODELS if k in post)
        bias = post[kind].transpose("chain", "draw").values[..., None] * const[f"{kind}_x"].values
        draws = theta.values + bias + sd * rng.standard_normal(theta.shape)
    return {"y": theta.copy(data=draws)}


@register_family("selection", observed=("y",), priors=("mu", "tau"),
                 description="publication-bias models: step-function selection (RoBMA weights), PET, PEESE",
                 posterior_predictive=replicate_selection)
def build_selection(
    data: pd.DataFrame,
    *,
    priors: Mapping[str, Prior],
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
    bias: str | WeightFunction,
) -> pm.Model:
    """Publication-bias model chosen by ``bias``: ``"pet"``, ``"peese"`` or a weight function.

    Parameters
    ----------
    data, priors, moderators, subgroup, subgroup_tau
        As for every family (:func:`bayesmeta.builders.build_model`).
    bias
        ``"pet"``, ``"peese"``, ``"stepfun(0.025, 0.05)"``, a RoBMA name such as
        ``"two-sided(0.05)"``, or a :class:`WeightFunction`.
    """
    common = dict(priors=priors, moderators=moderators, subgroup=subgroup, subgroup_tau=subgroup_tau)
    key = bias.strip().lower() if isinstance(bias, str) else None
    if key in BIAS_MODELS:
        return BIAS_MODELS[key](data, **common)
    return build_stepfun(data, weight_function=_weight_function(bias), **common)
