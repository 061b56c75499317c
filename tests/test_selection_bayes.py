"""Bayesian publication-bias builders (step-function selection, PET, PEESE).

Proof without sampling: each model's log-density equals an independent SciPy implementation on
grids of parameter values; the selection likelihood itself is pinned to metafor through
``selection_loglik`` (tests/test_selection_ml.py) and, here, directly to metafor's maximised
log-likelihood. With sampling (slow): NUTS on the 3PSM agrees with a 3-D quadrature of the same
posterior within Monte Carlo error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import special, stats

from bayesmeta.builders import build_model, get_family
from bayesmeta.builders.selection import _stepfun_random, omega_alpha, replicate_selection
from bayesmeta.errors import SpecError
from bayesmeta.frequentist.selection import WeightFunction, parse_weight_function, selection_loglik
from bayesmeta.priors import parse_prior

PINS = json.loads((Path(__file__).parent / "reference" / "selmodel.json").read_text())["cases"]
# Same formula in float64 evaluated by PyTensor and by NumPy/SciPy: rounding only.
RTOL_LOGP = 1e-10

PRIORS = {"mu": parse_prior("normal(0, 1)"), "tau": parse_prior("halfnormal(0.5)")}


def _frame(case: str) -> pd.DataFrame:
    c = PINS[case]
    return pd.DataFrame({"yi": c["yi"], "vi": c["vi"], "label": [f"study {i + 1}" for i in range(len(c["yi"]))]})


def _point(model: pm.Model, natural: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map natural values of the free variables to the model's (transformed) value variables."""
    out = {}
    for rv in model.free_RVs:
        value = np.asarray(natural[rv.name], dtype=float)
        tr = model.rvs_to_transforms.get(rv)
        vv = model.rvs_to_values[rv]
        out[vv.name] = value if tr is None else tr.forward(value, *rv.owner.inputs).eval()
    return out


def _scipy_prior_terms(nat: dict[str, np.ndarray], alpha: np.ndarray | None) -> float:
    total = stats.norm.logpdf(nat["mu"], 0, 1) + stats.halfnorm.logpdf(nat["tau"], scale=0.5)
    total += stats.norm.logpdf(nat["z"]).sum() + stats.norm.logpdf(nat["z_new"])
    if alpha is not None:
        total += stats.dirichlet.logpdf(nat["omega_eta"], alpha)
    return float(total)


GRID = [(mu, tau) for mu in (-0.4, 0.05, 0.6) for tau in (0.02, 0.25, 0.9)]
ETAS = {2: [np.array(e) for e in ([0.6, 0.4], [0.05, 0.95], [0.97, 0.03])],
        3: [np.array(e) for e in ([0.5, 0.3, 0.2], [0.05, 0.15, 0.8], [0.9, 0.05, 0.05])]}
# metafor's `alternative` as (side, direction) of a WeightFunction
ALTERNATIVES = {"greater": ("one-sided", "positive"), "less": ("one-sided", "negative"),
                "two.sided": ("two-sided", "positive")}


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.mark.parametrize("case", ["hackshaw_025_05__tight", "bangertdrowns_twosided_05__tight",
                                  "bcg_less_025__tight"])
def test_stepfun_logp_equals_scipy_on_grid(case: str, rng: np.random.Generator) -> None:
    """Full joint log-density (no Jacobians) = SciPy priors + ``selection_loglik`` on a grid of
    (mu, tau, weights); the pointwise log-likelihood of ``y`` is the per-study selection
    likelihood; at metafor's MLE the likelihood is metafor's maximised log-likelihood."""
    c = PINS[case]
    side, direction = ALTERNATIVES[c["alternative"]]
    wf = WeightFunction(side, tuple(c["steps"][:-1]), direction)
    data = _frame(case)
    model = build_model(data, family="selection", priors=PRIORS, bias=wf.name)
    alpha = np.ones(wf.n_omega)
    logp = model.compile_logp(jacobian=False)
    pointwise = model.compile_fn(model.logp(vars=[model["y"]], sum=False)[0], inputs=model.value_vars,
                                 on_unused_input="ignore")
    yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    for (mu, tau), eta in zip(GRID * 3, ETAS[wf.n_omega] * 9):
        nat = {"mu": mu, "tau": tau, "omega_eta": eta, "z": rng.normal(size=len(data)), "z_new": rng.normal()}
        omega = np.cumsum(eta[::-1])[::-1]  # reverse cumulative sums; omega[0] = sum(eta) = 1
        expected = _scipy_prior_terms(nat, alpha) + selection_loglik(yi, vi, mu, tau**2, omega, wf)
        point = _point(model, nat)
        assert logp(point) == pytest.approx(expected, rel=RTOL_LOGP)
        np.testing.assert_allclose(pointwise(point), selection_loglik(yi, vi, mu, tau**2, omega, wf, pointwise=True),
                                   rtol=RTOL_LOGP)
    # metafor's optimum (its weights decrease here, so they are inside the prior's support)
    w = np.asarray(c["weights"])
    eta = np.append(-np.diff(w), w[-1]) / w[0]  # invert the reverse cumulative sum
    assert np.all(eta > 0)
    nat = {"mu": c["estimate"], "tau": math.sqrt(c["tau2"]), "omega_eta": eta, "z": np.zeros(len(yi)), "z_new": 0.0}
    assert float(pointwise(_point(model, nat)).sum()) == pytest.approx(c["ll"], rel=1e-9)


@pytest.mark.parametrize(("bias", "slope_prior", "x_of_vi"), [
    ("pet", stats.halfcauchy(scale=1.0), np.sqrt),
    ("peese", stats.halfcauchy(scale=5.0), lambda v: v),
])
def test_pet_peese_logp_equals_scipy_on_grid(bias, slope_prior, x_of_vi, rng: np.random.Generator) -> None:
    data = _frame("hackshaw_025_05__tight")
    model = build_model(data, family="selection", priors=PRIORS, bias=bias)
    logp = model.compile_logp(jacobian=False)
    yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    for (mu, tau), slope in zip(GRID, (0.0, 0.3, 1.7, 0.01, 4.0, 0.5, 2.0, 0.1, 9.0)):
        nat = {"mu": mu, "tau": tau, bias: slope, "z": rng.normal(size=len(data)), "z_new": rng.normal()}
        expected = (_scipy_prior_terms(nat, None) + slope_prior.logpdf(slope)
                    + stats.norm.logpdf(yi, mu + slope * x_of_vi(vi), np.sqrt(vi + tau**2)).sum())
        assert logp(_point(model, nat)) == pytest.approx(expected, rel=RTOL_LOGP)


def test_theta_is_the_conditional_normal_normal_draw() -> None:
    data = _frame("hackshaw_025_05__tight")
    yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    for bias, shift in (("stepfun(0.025)", lambda s: 0.0), ("pet", lambda s: s * np.sqrt(vi))):
        model = build_model(data, family="selection", priors=PRIORS, bias=bias)
        theta_graph = model.replace_rvs_by_values([model["theta"]])[0]
        theta = model.compile_fn(theta_graph, inputs=model.value_vars, on_unused_input="ignore")
        mu, tau, slope = 0.1, 0.3, 0.4
        z = np.linspace(-2, 2, len(data))
        nat = {"mu": mu, "tau": tau, "z": z, "z_new": 0.0, "pet": slope, "omega_eta": np.array([0.4, 0.6])}
        nat = {rv.name: nat[rv.name] for rv in model.free_RVs}
        # textbook normal-normal posterior of theta_i given y_i - bias_i
        post_var = 1.0 / (1.0 / tau**2 + 1.0 / vi)
        post_mean = post_var * (mu / tau**2 + (yi - shift(slope)) / vi)
        np.testing.assert_allclose(theta(_point(model, nat)), post_mean + np.sqrt(post_var) * z, rtol=1e-12)


def test_omega_prior_is_robmas_cumulative_dirichlet() -> None:
    """Marginals of omega_j are Beta(sum_{i>=j} alpha_i, sum_{i<j} alpha_i) (BayesTools
    weightfunctions: 'marginals of reversed cumulative sums of Dirichlet variables are beta')."""
    data = _frame("bangertdrowns_025_05_5__tight")
    alpha = np.array([1.0, 2.0, 0.5, 1.5])
    model = build_model(data, family="selection", priors={**PRIORS, "omega": "dirichlet(1, 2, 0.5, 1.5)"},
                        bias="stepfun(0.025, 0.05, 0.5)")
    draws = pm.draw(model["omega"], draws=20_000, random_seed=3)
    assert np.all(draws[:, 0] == 1.0)
    assert np.all(np.diff(draws, axis=1) <= 1e-15)
    for j in range(1, 4):
        beta = stats.beta(alpha[j:].sum(), alpha[:j].sum())
        assert stats.kstest(draws[:, j], beta.cdf).pvalue > 1e-3


def _weighted_normal_cdf(mean: float, sd: float, w_int: np.ndarray, edges: np.ndarray):
    """CDF of N(mean, sd) weighted by w_int on the intervals between decreasing ``edges``."""
    mass = np.array([stats.norm.cdf(edges[j], mean, sd) - stats.norm.cdf(edges[j + 1], mean, sd)
                     for j in range(len(w_int))]) * w_int

    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.atleast_1d(x)
        out = np.zeros_like(x)
        for j in range(len(w_int)):
            lo, hi = edges[j + 1], edges[j]
            out += w_int[j] * (stats.norm.cdf(np.clip(x, lo, hi), mean, sd) - stats.norm.cdf(lo, mean, sd))
        return out / mass.sum()

    return cdf


def test_weighted_normal_draws(rng: np.random.Generator) -> None:
    """Draws of the weighted normal follow its exact CDF (KS), two-sided and negative one-sided."""
    for wf in (WeightFunction("two-sided", (0.05, 0.10)), WeightFunction("one-sided", (0.025, 0.5), "negative")):
        vi = np.array([0.04])
        thr = wf.thresholds(vi)[0]
        omega = np.array([1.0, 0.5, 0.1])
        w_int = omega[list(wf.interval_omega)]
        mean, sd = -0.05, math.sqrt(0.04 + 0.01)
        draws = _stepfun_random(wf.sign)(mean, sd, w_int, thr, rng=rng, size=(40_000,))
        edges = np.concatenate([[np.inf], thr, [-np.inf]])
        cdf = _weighted_normal_cdf(wf.sign * mean, sd, w_int, edges)
        assert stats.kstest(wf.sign * draws, cdf).pvalue > 1e-3


def test_posterior_predictive_replicates(rng: np.random.Generator) -> None:
    """replicate_selection reads a fitted tree: y given theta is N(theta, v) weighted by omega."""
    wf = WeightFunction("one-sided", (0.025, 0.5))
    vi = np.array([0.04, 0.09])
    n = 20_000
    omega = np.array([1.0, 0.4, 0.1])
    theta = np.array([0.1, -0.2])
    post = xr.Dataset({
        "theta": (("chain", "draw", "study"), np.broadcast_to(theta, (1, n, 2)).copy()),
        "omega": (("chain", "draw", "p_interval"), np.broadcast_to(omega, (1, n, 3)).copy()),
    })
    const = xr.Dataset({
        "vi": ("study", vi), "omega_interval": ("one_sided_interval", np.array(wf.interval_omega)),
        "y_thresholds": (("study", "cutpoint"), wf.thresholds(vi)), "selection_sign": ((), 1.0),
    })
    tree = xr.DataTree.from_dict({"posterior": post, "constant_data": const})
    y = replicate_selection(tree, rng)["y"]
    assert y.dims == ("chain", "draw", "study") and y.shape == (1, n, 2)
    for i in range(2):
        edges = np.concatenate([[np.inf], wf.thresholds(vi)[i], [-np.inf]])
        cdf = _weighted_normal_cdf(theta[i], math.sqrt(vi[i]), omega[list(wf.interval_omega)], edges)
        assert stats.kstest(y.values[0, :, i], cdf).pvalue > 1e-3
    # PET: theta + slope * se + N(0, v)
    post_pet = xr.Dataset({"theta": post["theta"], "pet": (("chain", "draw"), np.full((1, n), 0.5))})
    tree = xr.DataTree.from_dict({"posterior": post_pet,
                                  "constant_data": xr.Dataset({"vi": ("study", vi), "pet_x": ("study", np.sqrt(vi))})})
    y = replicate_selection(tree, rng)["y"].values[0]
    for i in range(2):
        assert stats.kstest(y[:, i], stats.norm(theta[i] + 0.5 * math.sqrt(vi[i]), math.sqrt(vi[i])).cdf).pvalue > 1e-3


def test_registry_and_errors() -> None:
    entry = get_family("selection")
    assert entry.observed == ("y",)
    data = _frame("hackshaw_025_05__tight")
    model = build_model(data, family="selection", priors=PRIORS, bias="two-sided(0.05)")
    assert list(model.coords["p_interval"]) == ["two-sided p [0, 0.05]", "two-sided p (0.05, 1]"]
    for name in ("mu", "tau", "tau2", "i2", "theta", "theta_new", "omega"):
        assert name in model.named_vars
    assert "peese" in build_model(data, family="selection", priors=PRIORS, bias="PEESE").named_vars
    with pytest.raises(SpecError, match="weight function"):
        build_model(data, family="selection", priors=PRIORS, bias="beta(1, 1)")
    with pytest.raises(SpecError, match="positive"):
        omega_alpha("dirichlet(1, 0)", 2)
    with pytest.raises(SpecError):
        omega_alpha("normal(0, 1)", 2)
    np.testing.assert_array_equal(omega_alpha(None, 3), np.ones(3))


# --------------------------------------------------------------------------- sampling


def _grid_posterior_3psm(yi: np.ndarray, vi: np.ndarray) -> dict[str, tuple[float, float]]:
    """Posterior means and SDs of (mu, tau, omega_2) for the 3PSM (one-sided 0.025) with priors
    N(0, 1), half-normal(0.5), omega_2 ~ U(0, 1) (= cumulative Dirichlet(1, 1)) by quadrature on a
    fine 3-D grid; written from the formulas, independently of the package."""
    mu = np.linspace(-1.0, 1.0, 201)
    tau = np.linspace(1e-6, 1.2, 161)
    w = np.linspace(1e-6, 1.0, 121)
    M, T, W = np.meshgrid(mu, tau, w, indexing="ij")
    logpost = stats.norm.logpdf(M, 0, 1) + stats.halfnorm.logpdf(T, scale=0.5)
    crit = np.sqrt(vi) * stats.norm.isf(0.025)
    for y, v, c in zip(yi, vi, crit):
        s = np.sqrt(v + T**2)
        below = special.ndtr((c - M) / s)  # P(not significant)
        logpost += stats.norm.logpdf(y, M, s) - np.log1p(-(1.0 - W) * below)
        if y < c:
            logpost += np.log(W)
    post = np.exp(logpost - logpost.max())
    post /= post.sum()
    out = {}
    for name, grid in (("mu", M), ("tau", T), ("omega", W)):
        m = float((post * grid).sum())
        out[name] = (m, float(np.sqrt((post * (grid - m) ** 2).sum())))
    for name, axis, grid in (("mu", (1, 2), mu), ("tau", (0, 2), tau), ("omega", (0, 1), w)):
        marg = post.sum(axis=axis)
        assert marg[0] < 1e-4 * marg.max() or name != "mu", "grid too narrow"
        assert marg[-1] < 1e-4 * marg.max() or name == "omega", "grid too narrow"
    return out


@pytest.mark.slow
def test_nuts_equals_quadrature_3psm() -> None:
    """End to end through bayesmeta.inference.fit_data (nutpie): the 3PSM posterior of mu, tau
    and the weight equals the quadrature within Monte Carlo error; LOO and replicates exist."""
    import arviz_stats

    from bayesmeta.inference import SamplingSettings, fit_data

    data = _frame("baskerville_3psm__tight")
    yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    exact = _grid_posterior_3psm(yi, vi)
    res = fit_data(data, priors={"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}, bias="stepfun(0.025)",
                   sampling=SamplingSettings(chains=2, draws=2000, tune=1000, seed=11), diagnostics=False)
    tree = res.tree
    post = tree["posterior"]
    for name, values in (("mu", post["mu"]), ("tau", post["tau"]), ("omega", post["omega"].isel(p_interval=1))):
        mean = float(values.mean())
        mcse = float(arviz_stats.mcse(values.to_dataset(name="x"))["x"])
        sd = float(values.std())
        assert abs(mean - exact[name][0]) < 4.0 * mcse, (name, mean, exact[name], mcse)
        # SD: relative MC error of an SD estimate from ~ESS draws is ~1/sqrt(2 ESS); 10% is > 4 of those
        assert sd == pytest.approx(exact[name][1], rel=0.1), (name, sd, exact[name])
    assert tree["log_likelihood"]["y"].shape[-1] == len(data)
    assert np.isfinite(tree["posterior_predictive"]["y"].values).all()
