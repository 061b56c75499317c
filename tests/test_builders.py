"""Builders: joint log-densities against independent SciPy code, no sampling.

Each model is built, its joint log-density compiled (``jacobian=False``, so the density is that
of the sampled quantities themselves; points are given on the value-variable scale) and
compared on grids of parameter values with the same density written out with scipy.stats.
I² and the moderator design are compared with metafor (pinned by
``tests/reference/make_builders.R``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from bayesmeta.builders import FAMILIES, build_model, get_family
from bayesmeta.builders._priors import prior_parameter_values, prior_structure
from bayesmeta.builders.binomial import count_log_likelihood, log_rr_variance
from bayesmeta.builders.binomial_likelihood import log_study_likelihood, marginal_log_likelihood
from bayesmeta.builders.regression import make_design, typical_variance
from bayesmeta.errors import InputError, SpecError
from bayesmeta.priors import parse_prior

# Same formulas evaluated in float64 by PyTensor and SciPy: only rounding differs.
RTOL_LOGP = 1e-10
ATOL_LOGP = 1e-9
# metafor's I² is a closed form of its tau² and the same s² formula.
RTOL_METAFOR = 1e-9
# quad over the logit of the baseline risk: absolute error well below 1e-7.
RTOL_QUAD = 1e-6

REFERENCE = json.loads((Path(__file__).parent / "reference" / "builders.json").read_text())

EIGHT = pd.DataFrame(
    {
        "study": list("ABCDEFGH"),
        "yi": [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],
        "vi": np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]) ** 2,
    },
    index=range(2, 10),
)

# ---------------------------------------------------------------------------------------------
# Reference densities written independently with scipy.stats (value scale: what is sampled)
# ---------------------------------------------------------------------------------------------

# family -> (value variable name, tau -> value, reference log density of the sampled value)
SCALE_CASES = {
    "halfnormal(0.5)": ("tau_log__", np.log, lambda t: stats.halfnorm.logpdf(t, scale=0.5)),
    "halfnormal(7)": ("tau_log__", np.log, lambda t: stats.halfnorm.logpdf(t, scale=7)),
    "halfcauchy(1)": ("tau_log__", np.log, lambda t: stats.halfcauchy.logpdf(t, scale=1)),
    "halft(3, 0.5)": ("tau_log__", np.log,
                      lambda t: math.log(2) + stats.t.logpdf(t, 3, scale=0.5)),
    "uniform(0, 20)": ("tau_interval__", lambda t: np.log(t / (20 - t)),
                       lambda t: stats.uniform.logpdf(t, 0, 20)),
    "uniform(1, 20)": ("tau_interval__", lambda t: np.log((t - 1) / (20 - t)),
                       lambda t: stats.uniform.logpdf(t, 1, 19)),
    "uniform(0, inf)": ("tau_excess_log__", np.log, lambda t: 0.0),
    "uniform(0.5, inf)": ("tau_excess_log__", lambda t: np.log(t - 0.5), lambda t: 0.0),
    "exponential(2)": ("tau_log__", np.log, lambda t: stats.expon.logpdf(t, scale=0.5)),
    "lognormal(-1, 1.5)": ("tau_log__", np.log,
                           lambda t: stats.lognorm.logpdf(t, 1.5, scale=math.exp(-1))),
    "lognormal_tau2(-2.56, 1.74)": ("log_tau2", lambda t: 2 * np.log(t),
                                    lambda t: stats.norm.logpdf(2 * np.log(t), -2.56, 1.74)),
    "logt_tau2(-3.44, 2.59, 5)": ("log_tau2", lambda t: 2 * np.log(t),
                                  lambda t: stats.t.logpdf(2 * np.log(t), 5, -3.44, 2.59)),
}

LOCATION_CASES = {
    "normal(0, 10)": lambda x: stats.norm.logpdf(x, 0, 10),
    "normal(1, 0.5)": lambda x: stats.norm.logpdf(x, 1, 0.5),
    "student_t(3, 0, 2.5)": lambda x: stats.t.logpdf(x, 3, 0, 2.5),
    "flat": lambda x: np.zeros_like(np.asarray(x, dtype=float)),
}

TAUS = [0.05, 0.7, 3.0, 11.0]
MUS = [-4.0, 0.3, 9.0]


def _logp_fn(model, jacobian: bool = False):
    return model.compile_logp(jacobian=jacobian)


def _eval(model, names, point):
    """Deterministics ``names`` at ``point`` (value-variable scale; missing values from the
    model's initial point)."""
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    full = {**model.initial_point(), **{k: np.asarray(v, dtype=float) for k, v in point.items()}}
    values = fn(full)
    return values if len(names) > 1 else values[0]


def _normal_reference(yi, vi, mu, tau, z, z_new, lp_mu, lp_tau):
    theta = mu + tau * z
    return (lp_mu + lp_tau + stats.norm.logpdf(z).sum() + stats.norm.logpdf(z_new)
            + stats.norm.logpdf(yi, theta, np.sqrt(vi)).sum())


def _priors(tau="halfnormal(0.5)", mu="normal(0, 10)", beta="normal(0, 1)"):
    return {"mu": parse_prior(mu), "tau": parse_prior(tau), "beta": parse_prior(beta)}


# ---------------------------------------------------------------------------------------------
# Normal model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau_prior", list(SCALE_CASES))
def test_normal_logp_matches_scipy_for_every_tau_prior(tau_prior: str) -> None:
    value_name, to_value, ref_tau = SCALE_CASES[tau_prior]
    model = build_model(EIGHT, priors=_priors(tau=tau_prior))
    assert {v.name for v in model.value_vars} == {"mu", value_name, "z", "z_new"}
    logp = _logp_fn(model)
    rng = np.random.default_rng(1)
    yi, vi = EIGHT["yi"].to_numpy(), EIGHT["vi"].to_numpy()
    taus = [t for t in TAUS if t < 20 and t > float(parse_prior(tau_prior).support[0])]
    for mu in MUS:
        for tau in taus:
            z, z_new = rng.normal(size=8), float(rng.normal())
            point = {"mu": mu, value_name: to_value(tau), "z": z, "z_new": z_new}
            expected = _normal_reference(yi, vi, mu, tau, z, z_new,
                                         stats.norm.logpdf(mu, 0, 10), ref_tau(tau))
            assert logp(point) == pytest.approx(expected, rel=RTOL_LOGP, abs=ATOL_LOGP)


@pytest.mark.parametrize("mu_prior", list(LOCATION_CASES))
def test_normal_logp_matches_scipy_for_every_mu_prior(mu_prior: str) -> None:
    model = build_model(EIGHT, priors=_priors(mu=mu_prior, tau="halfcauchy(5)"))
    logp = _logp_fn(model)
    rng = np.random.default_rng(2)
    yi, vi = EIGHT["yi"].to_numpy(), EIGHT["vi"].to_numpy()
    for mu in MUS:
        for tau in TAUS:
            z, z_new = rng.normal(size=8), float(rng.normal())
            point = {"mu": mu, "tau_log__": math.log(tau), "z": z, "z_new": z_new}
            expected = _normal_reference(yi, vi, mu, tau, z, z_new, LOCATION_CASES[mu_prior](mu),
                                         stats.halfcauchy.logpdf(tau, scale=5))
            assert logp(point) == pytest.approx(expected, rel=RTOL_LOGP, abs=ATOL_LOGP)


def test_jacobian_of_the_log_transform_is_log_tau() -> None:
    model = build_model(EIGHT, priors=_priors(tau="halfnormal(5)"))
    with_jac, without = _logp_fn(model, True), _logp_fn(model, False)
    for tau in TAUS:
        point = {"mu": 1.0, "tau_log__": math.log(tau), "z": np.zeros(8), "z_new": 0.0}
        assert with_jac(point) - without(point) == pytest.approx(math.log(tau), abs=1e-12)


def test_deterministics_theta_tau2_i2_theta_new() -> None:
    model = build_model(EIGHT, priors=_priors(tau="halfnormal(5)"))
    w = 1 / EIGHT["vi"].to_numpy()
    s2 = (8 - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())  # Higgins & Thompson 2002, eq. 9
    z = np.linspace(-1.5, 2.0, 8)
    theta, tau2, i2, theta_new = _eval(model, ("theta", "tau2", "i2", "theta_new"),
                                       {"mu": 2.0, "tau_log__": math.log(3.0), "z": z,
                                        "z_new": -0.7})
    np.testing.assert_allclose(theta, 2.0 + 3.0 * z, rtol=1e-14)
    assert tau2 == pytest.approx(9.0, rel=1e-14)
    assert i2 == pytest.approx(100 * 9 / (9 + s2), rel=1e-13)
    assert theta_new == pytest.approx(2.0 - 0.7 * 3.0, rel=1e-14)
    assert model.coords["study"] == tuple("ABCDEFGH")
    assert set(FAMILIES["normal"].observed) == {"y"}
    assert [v.name for v in model.observed_RVs] == ["y"]


def test_prior_parameters_are_data_and_can_change_without_rebuilding() -> None:
    priors = {k: v for k, v in _priors(tau="halfnormal(0.5)").items() if k != "beta"}
    model = build_model(EIGHT, priors=priors)
    logp = _logp_fn(model)
    point = {"mu": 1.0, "tau_log__": math.log(2.0), "z": np.zeros(8), "z_new": 0.0}
    before = logp(point)
    new = {"mu": parse_prior("normal(2, 4)"), "tau": parse_prior("halfnormal(3)")}
    assert prior_structure(new) == prior_structure(priors)
    for name, value in prior_parameter_values(new).items():
        model[name].set_value(np.asarray(value))
    after = logp(point)
    delta_expected = (stats.halfnorm.logpdf(2.0, scale=3) - stats.halfnorm.logpdf(2.0, scale=0.5)
                      + stats.norm.logpdf(1.0, 2, 4) - stats.norm.logpdf(1.0, 0, 10))
    assert after - before == pytest.approx(delta_expected, rel=1e-12)
    assert prior_structure({**priors, "tau": parse_prior("halfcauchy(1)")}) != prior_structure(
        priors)
    assert prior_structure(_priors(tau="uniform(0, inf)")) != prior_structure(
        _priors(tau="uniform(0, 5)"))


def test_jeffreys_and_wrong_targets_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="exact engine"):
        build_model(EIGHT, priors=_priors(tau="jeffreys"))
    with pytest.raises(SpecError, match="scale prior"):
        build_model(EIGHT, priors={"mu": parse_prior("normal(0, 1)"),
                                   "tau": parse_prior("normal(0, 1)")})
    with pytest.raises(SpecError, match="unknown model family"):
        get_family("poisson")


def test_bad_input_names_row_and_column() -> None:
    bad = EIGHT.copy()
    bad.loc[5, "vi"] = -1.0
    with pytest.raises(InputError) as err:
        build_model(bad, priors=_priors())
    assert (err.value.row, err.value.column) == (5, "vi")
    dup = EIGHT.copy()
    dup.loc[7, "study"] = "A"
    with pytest.raises(InputError, match="duplicate") as err:
        build_model(dup, priors=_priors())
    assert err.value.row == 7


# ---------------------------------------------------------------------------------------------
# Moderators and subgroups (design and I² against metafor)
# ---------------------------------------------------------------------------------------------


def _bcg() -> pd.DataFrame:
    d = REFERENCE["data"]
    return pd.DataFrame({"label": d["label"], "yi": d["yi"], "vi": d["vi"],
                         "ablat": d["ablat"], "alloc": d["alloc"]}, index=range(2, 15))


def _case(case_id: str) -> dict:
    return next(c for c in REFERENCE["cases"] if c["id"] == case_id)


@pytest.mark.parametrize(("case_id", "moderators", "names"), [
    ("intercept", [], []),
    ("ablat", ["ablat"], ["ablat"]),
    ("alloc", ["alloc"], ["alloc[random]", "alloc[systematic]"]),
    ("alloc_ablat", ["alloc", "ablat"], ["alloc[random]", "alloc[systematic]", "ablat"]),
])
def test_design_and_i2_match_metafor(case_id: str, moderators: list[str], names: list[str]) -> None:
    case, data = _case(case_id), _bcg()
    design = make_design(data, moderators)
    np.testing.assert_array_equal(design.X, np.column_stack(case["X"][1:]) if names
                                  else np.zeros((13, 0)))
    assert design.coef == names
    model = build_model(data, priors=_priors(tau="halfnormal(1)"), moderators=moderators)
    if names:
        assert model.coords["coef"] == tuple(names)
    i2 = _eval(model, ["i2"], {"tau_log__": 0.5 * math.log(case["tau2"])})
    assert i2 == pytest.approx(case["I2"], rel=RTOL_METAFOR)


def test_regression_logp_matches_scipy() -> None:
    data = _bcg()
    model = build_model(data, priors=_priors(tau="halft(3, 0.5)", beta="normal(0, 2)"),
                        moderators=["alloc", "ablat"])
    logp = _logp_fn(model)
    X = np.column_stack([(data["alloc"] == "random").astype(float),
                         (data["alloc"] == "systematic").astype(float), data["ablat"]])
    rng = np.random.default_rng(3)
    for mu, tau in [(-0.7, 0.1), (0.2, 0.6), (1.0, 2.0)]:
        beta, z, z_new = rng.normal(size=3) * 0.3, rng.normal(size=13), float(rng.normal())
        point = {"mu": mu, "tau_log__": math.log(tau), "beta": beta, "z": z, "z_new": z_new}
        theta = mu + X @ beta + tau * z
        expected = (stats.norm.logpdf(mu, 0, 10) + math.log(2) + stats.t.logpdf(tau, 3, scale=0.5)
                    + stats.norm.logpdf(beta, 0, 2).sum() + stats.norm.logpdf(z).sum()
                    + stats.norm.logpdf(z_new)
                    + stats.norm.logpdf(data["yi"], theta, np.sqrt(data["vi"])).sum())
        assert logp(point) == pytest.approx(expected, rel=RTOL_LOGP, abs=ATOL_LOGP)


def test_subgroups_separate_tau_logp_and_i2() -> None:
    data = _bcg()
    model = build_model(data, priors=_priors(tau="halfnormal(1)"), subgroup="alloc")
    levels = ["alternate", "random", "systematic"]
    assert model.coords["subgroup"] == tuple(levels)
    g = np.array([levels.index(a) for a in data["alloc"]])
    mu, tau = np.array([-0.3, -0.9, -0.5]), np.array([0.2, 0.6, 0.4])
    rng = np.random.default_rng(4)
    z, z_new = rng.normal(size=13), rng.normal(size=3)
    point = {"mu": mu, "tau_log__": np.log(tau), "z": z, "z_new": z_new}
    expected = (stats.norm.logpdf(mu, 0, 10).sum() + stats.halfnorm.logpdf(tau, scale=1).sum()
                + stats.norm.logpdf(z).sum() + stats.norm.logpdf(z_new).sum()
                + stats.norm.logpdf(data["yi"], mu[g] + tau[g] * z, np.sqrt(data["vi"])).sum())
    assert _logp_fn(model)(point) == pytest.approx(expected, rel=RTOL_LOGP)
    tau_ref = np.array([math.sqrt(_case(f"subset_{lev}")["tau2"]) for lev in levels])
    i2, theta_new = _eval(model, ["i2", "theta_new"],
                          {"tau_log__": np.log(tau_ref), "mu": mu, "z_new": z_new})
    np.testing.assert_allclose(i2, [_case(f"subset_{lev}")["I2"] for lev in levels],
                               rtol=RTOL_METAFOR)
    np.testing.assert_allclose(theta_new, mu + tau_ref * z_new, rtol=1e-14)


def test_subgroups_shared_tau_i2_equals_metafor_with_factor_moderator() -> None:
    data = _bcg()
    model = build_model(data, priors=_priors(tau="halfnormal(1)"), subgroup="alloc",
                        subgroup_tau="shared")
    assert model["tau"].ndim == 0 and model["mu"].ndim == 1
    case = _case("alloc")  # same column space as one intercept per level
    i2 = _eval(model, ["i2"], {"tau_log__": 0.5 * math.log(case["tau2"])})
    assert i2 == pytest.approx(case["I2"], rel=RTOL_METAFOR)


def test_typical_variance_single_study_and_missing_moderator() -> None:
    assert typical_variance(np.array([0.3])) == 0.3
    assert math.isnan(typical_variance(np.array([np.nan])))
    data = _bcg().astype({"ablat": float})
    data.loc[6, "ablat"] = np.nan
    with pytest.raises(InputError) as err:
        make_design(data, ["ablat"])
    assert (err.value.row, err.value.column) == (6, "ablat")
    with pytest.raises(SpecError, match="not a column"):
        make_design(data, ["latitude"])


# ---------------------------------------------------------------------------------------------
# Binomial model (log risk ratio, exact likelihood)
# ---------------------------------------------------------------------------------------------

COUNTS = pd.DataFrame(
    {
        "study": ["big", "zero_t", "zero_c", "double_zero", "all_events", "small"],
        "ai": [40, 0, 7, 0, 12, 1],
        "n1i": [200, 15, 20, 10, 12, 5],
        "ci": [25, 6, 0, 0, 9, 3],
        "n2i": [190, 15, 18, 12, 12, 6],
    },
    index=range(2, 8),
)


def _risks(theta: np.ndarray, p_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Treatment and control risks: the larger arm risk is p_max, their ratio exp(theta)."""
    p_t = np.where(theta >= 0, p_max, p_max * np.exp(theta))
    p_c = np.where(theta >= 0, p_max / np.exp(theta), p_max)
    return p_t, p_c


@pytest.mark.parametrize("tau_prior", ["halfnormal(0.5)", "lognormal_tau2(-2.56, 1.74)"])
def test_binomial_logp_matches_scipy_including_zero_cells(tau_prior: str) -> None:
    value_name, to_value, ref_tau = SCALE_CASES[tau_prior]
    model = build_model(COUNTS, family="binomial", priors=_priors(tau=tau_prior))
    assert {v.name for v in model.observed_RVs} == {"y_t", "y_c"}
    logp = _logp_fn(model)
    rng = np.random.default_rng(5)
    ai, n1, ci, n2 = (COUNTS[c].to_numpy() for c in ("ai", "n1i", "ci", "n2i"))
    for mu, tau in [(-1.2, 0.05), (0.0, 0.4), (0.8, 1.5)]:
        z, z_new = rng.normal(size=6), float(rng.normal())
        logit_p = rng.normal(size=6) * 2
        p_max = special.expit(logit_p)
        theta = mu + tau * z
        p_t, p_c = _risks(theta, p_max)
        expected = (stats.norm.logpdf(mu, 0, 10) + ref_tau(tau) + stats.norm.logpdf(z).sum()
                    + stats.norm.logpdf(z_new) + stats.beta.logpdf(p_max, 1, 1).sum()
                    + stats.binom.logpmf(ai, n1, p_t).sum() + stats.binom.logpmf(ci, n2, p_c).sum())
        point = {"mu": mu, value_name: to_value(tau), "z": z, "z_new": z_new,
                 "p_max_logodds__": logit_p}
        assert logp(point) == pytest.approx(expected, rel=RTOL_LOGP, abs=ATOL_LOGP)
        p_t_model, p_c_model = _eval(model, ["p_t", "p_c"], point)
        np.testing.assert_allclose(p_t_model / p_c_model, np.exp(theta), rtol=1e-12)
        assert np.all((p_t_model <= p_max + 1e-15) & (p_c_model <= p_max + 1e-15))


def _integrated_likelihood(counts: pd.DataFrame, thetas: list[float]) -> list[float]:
    """∫ p(y_t, y_c | theta, p_max) Beta(1,1)(p_max) dp_max from the model's own log-density,
    integrating over the sampler's value variable logit(p_max) (``jacobian=True``)."""
    model = build_model(counts, family="binomial", priors=_priors(tau="halfnormal(1)"))
    logp = model.compile_logp(jacobian=True)
    out = []
    for theta in thetas:
        # mu = theta and z = 0 make theta_1 = theta; tau_log__ = 0 (its Jacobian log tau = 0)
        rest = (stats.norm.logpdf(theta, 0, 10) + stats.halfnorm.logpdf(1.0, scale=1)
                + 2 * stats.norm.logpdf(0))
        base = {"mu": theta, "tau_log__": 0.0, "z": np.zeros(1), "z_new": 0.0}

        def integrand(u: float, base=base, rest=rest) -> float:
            return math.exp(float(logp({**base, "p_max_logodds__": np.array([u])})) - rest)

        out.append(integrate.quad(integrand, -40, 40, limit=200, epsabs=1e-13)[0])
    return out


def test_double_zero_study_is_weak_bounded_and_symmetric_information() -> None:
    n1, n2 = 10, 12
    dz = pd.DataFrame({"study": ["dz"], "ai": [0], "n1i": [n1], "ci": [0], "n2i": [n2]})
    grid = (-30.0, -1.0, 0.0, 1.0, 30.0)
    at = dict(zip(grid, _integrated_likelihood(dz, list(grid)), strict=True))
    # closed forms under a uniform larger-arm risk: ∫(1-m)^(n1+n2) dm and ∫(1-m)^n dm
    assert at[0.0] == pytest.approx(1 / (n1 + n2 + 1), rel=RTOL_QUAD)
    assert at[30.0] == pytest.approx(1 / (n1 + 1), rel=RTOL_QUAD)
    assert at[-30.0] == pytest.approx(1 / (n2 + 1), rel=RTOL_QUAD)
    assert at[0.0] < at[1.0] < at[30.0] and at[0.0] < at[-1.0] < at[-30.0]
    balanced = pd.DataFrame({"study": ["dz"], "ai": [0], "n1i": [n1], "ci": [0], "n2i": [n1]})
    plus, minus = _integrated_likelihood(balanced, [0.8, -0.8])
    assert plus == pytest.approx(minus, rel=RTOL_QUAD)


def test_zero_treatment_cell_needs_no_correction() -> None:
    # 0/15 vs 6/15: the likelihood rises as the risk ratio falls and tends to the control-arm
    # marginal likelihood ∫ C(15,6) m^6 (1-m)^9 dm = 1/16, with no continuity correction.
    one = pd.DataFrame({"study": ["z"], "ai": [0], "n1i": [15], "ci": [6], "n2i": [15]})
    values = _integrated_likelihood(one, [2.0, 0.0, -2.0, -30.0])
    assert values == sorted(values)
    assert values[-1] == pytest.approx(1 / 16, rel=RTOL_QUAD)


#: Nested adaptive quadrature (theta outside, p_max inside) of the marginal likelihood is good
#: to about 1e-10 relative; the tabulated-and-interpolated integrator is specified to 1e-8.
RTOL_MARGINAL = 1e-8


def _scipy_log_g(theta: float, ai: int, n1: int, ci: int, n2: int) -> float:
    """log ∫ Bin(ai | n1, p_t) Bin(ci | n2, p_c) dp_max under a uniform p_max, with scipy."""
    shift_c, shift_t = math.exp(-max(theta, 0.0)), math.exp(min(theta, 0.0))
    grid = np.linspace(0.0, 1.0, 2001)
    values = (stats.binom.logpmf(ai, n1, grid * shift_t)
              + stats.binom.logpmf(ci, n2, grid * shift_c))
    top, mode = float(np.max(values)), float(grid[np.argmax(values)])
    log_choose = (math.lgamma(n1 + 1) - math.lgamma(ai + 1) - math.lgamma(n1 - ai + 1)
                  + math.lgamma(n2 + 1) - math.lgamma(ci + 1) - math.lgamma(n2 - ci + 1))

    def f(p: float) -> float:  # the same binomial pmfs, scalar and fast, scaled by e^-top
        p_t, p_c = p * shift_t, p * shift_c
        log = log_choose - top
        for k, n, q in ((ai, n1, p_t), (ci, n2, p_c)):
            log += (k * math.log(q) if k else 0.0) + ((n - k) * math.log1p(-q) if n > k else 0.0)
        return math.exp(log)

    inner = [mode] if 0 < mode < 1 else None
    area = integrate.quad(f, 0, 1, points=inner, limit=500, epsabs=0, epsrel=1e-12)[0]
    return top + math.log(area)


def test_study_likelihood_equals_the_models_own_integrated_density() -> None:
    """log g(theta) (p_max integrated out by Gauss–Jacobi) against quadrature of the PyMC
    model's log-density over logit(p_max), for zero cells, a double zero and an all-events arm."""
    thetas = [-0.4, 0.0, 0.02, 0.6]
    # tails (values down to e^-120): the model-density reference has an absolute tolerance of
    # 1e-13, so these are checked against the scaled scipy quadrature instead
    tails = [-3.0, -1.2, 1.5, 4.0]
    for _, row in COUNTS.iterrows():
        one = row.to_frame().T.astype({c: int for c in ("ai", "n1i", "ci", "n2i")})
        counts = tuple(int(row[c]) for c in ("ai", "n1i", "ci", "n2i"))
        expected = np.log(_integrated_likelihood(one, thetas))
        np.testing.assert_allclose(log_study_likelihood(np.array(thetas), counts), expected,
                                   rtol=RTOL_QUAD, err_msg=row["study"])
        expected = [_scipy_log_g(t, *counts) for t in tails]
        np.testing.assert_allclose(log_study_likelihood(np.array(tails), counts), expected,
                                   rtol=RTOL_MARGINAL, err_msg=row["study"])


@pytest.mark.parametrize("baseline", [(1.0, 1.0), (0.5, 2.0), (0.05, 1.0)])
def test_study_likelihood_of_a_double_zero_under_any_baseline(baseline) -> None:
    """Closed forms for 0/n1 vs 0/n2 under p_max ~ Beta(a, b): at theta = 0 both arms share p,
    ∫ (1 − p)^(n1 + n2) Beta(p | a, b) dp = B(a, b + n1 + n2) / B(a, b); for theta → ±∞ only the
    arm at p_max counts: B(a, b + n) / B(a, b). Arms of 400 and 500 use the windowed rule, and
    a = 0.05 puts its lower edge below the smallest double."""
    a, b = baseline
    n1, n2 = 400, 500
    ours = log_study_likelihood(np.array([0.0, 60.0, -60.0]), (0, n1, 0, n2), baseline)
    expected = [special.betaln(a, b + n1 + n2) - special.betaln(a, b),
                special.betaln(a, b + n1) - special.betaln(a, b),
                special.betaln(a, b + n2) - special.betaln(a, b)]
    np.testing.assert_allclose(ours, expected, rtol=RTOL_MARGINAL)


@pytest.mark.parametrize("counts", [(40, 200, 25, 190), (0, 15, 6, 15), (0, 10, 0, 12),
                                    (12, 12, 9, 12), (41, 41, 33, 35),
                                    # arms beyond the exact Gauss–Jacobi rule (windowed rule)
                                    (803, 2000, 577, 2000), (5, 2000, 3, 2000),
                                    (4000, 20000, 3000, 20000),
                                    # every animal affected in one arm, the other arm large
                                    (50, 50, 10, 400), (10, 400, 50, 50), (400, 400, 399, 400)])
def test_marginal_log_likelihood_equals_nested_quadrature(counts) -> None:
    """log ∫ g(theta) N(theta | eta, tau²) dtheta against scipy's nested quad, from a narrow
    normal far from the likelihood's mode to a wide one, and tau = 0 (log g(eta) itself)."""
    cases = [(0.3, 0.5), (1.0, 0.05), (-0.5, 2.0), (2.5, 0.01), (0.2, 0.0)]
    eta = np.array([[e] for e, _ in cases])
    tau = np.array([[t] for _, t in cases])
    ours = marginal_log_likelihood(*(np.array([c]) for c in counts), eta, tau)[:, 0]
    for (e, t), value in zip(cases, ours, strict=True):
        if t == 0:
            expected = _scipy_log_g(e, *counts)
        else:
            top = max(_scipy_log_g(e + t * z, *counts) - z * z / 2 for z in np.linspace(-8, 8, 17))

            def f(theta: float, e=e, t=t, top=top) -> float:
                return math.exp(_scipy_log_g(theta, *counts) - top) * stats.norm.pdf(theta, e, t)

            lo, hi = e - 12 * t, e + 12 * t
            kink = [0.0] if lo < 0 < hi else None
            expected = top + math.log(integrate.quad(f, lo, hi, points=kink, limit=500,
                                                     epsabs=0, epsrel=1e-10)[0])
        assert value == pytest.approx(expected, rel=RTOL_MARGINAL), (counts, e, t)


def test_binomial_loo_log_likelihood_integrates_out_the_study_parameters() -> None:
    """The family's ``y`` is the marginal over (theta_i, p_max_i), per draw, with the draw's
    mu, tau and (separate subgroup taus) tau_i; not the conditional y_t + y_c."""
    data = COUNTS.assign(grp=["a", "b", "a", "b", "a", "b"])
    model = build_model(data, family="binomial", priors=_priors(tau="halfnormal(1)"),
                        subgroup="grp", subgroup_tau="separate")
    tree = _prior_tree(model, seed=11)
    ours = get_family("binomial").log_likelihood(tree)
    assert set(ours) == {"y"}
    y = ours["y"].transpose("chain", "draw", "study").values[0, :4]
    post = tree["posterior"]
    mu, tau = post["mu"].values[0, :4], post["tau"].values[0, :4]
    codes = (data["grp"] == "b").to_numpy().astype(int)
    counts = data[["ai", "n1i", "ci", "n2i"]].to_numpy()
    expected = marginal_log_likelihood(*counts.T, mu[:, codes], tau[:, codes])
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    conditional = count_log_likelihood(tree)
    total = (conditional["y_t"] + conditional["y_c"]).transpose("chain", "draw", "study")
    assert not np.allclose(y, total.values[0, :4])


def test_binomial_counts_from_bi_di_and_errors() -> None:
    abcd = pd.DataFrame({"study": ["a", "b"], "ai": [3, 0], "bi": [7, 10], "ci": [1, 0],
                         "di": [9, 12]}, index=[2, 3])
    model = build_model(abcd, family="binomial", priors=_priors())
    np.testing.assert_array_equal(model["n1i"].get_value(), [10, 10])
    np.testing.assert_array_equal(model["n2i"].get_value(), [10, 12])
    bad = abcd.assign(ai=[3, 11], bi=[7, -1])
    with pytest.raises(InputError) as err:
        build_model(bad, family="binomial", priors=_priors())
    assert (err.value.row, err.value.column) == (3, "bi")
    v = log_rr_variance(np.array([3, 0, 0]), np.array([10, 10, 10]), np.array([1, 2, 0]),
                        np.array([10, 10, 12]))
    assert v[0] == pytest.approx(1 / 3 - 1 / 10 + 1 - 1 / 10)
    assert v[1] == pytest.approx(1 / 0.5 - 1 / 11 + 1 / 2.5 - 1 / 11)
    assert math.isnan(v[2])


# ---------------------------------------------------------------------------------------------
# NumPy log-likelihoods and replicates used by the inference layer
# ---------------------------------------------------------------------------------------------


def _prior_tree(model, seed: int):
    """A tree whose ``posterior`` holds prior draws (chain, draw), with the model's data."""
    import pymc as pm
    import xarray as xr

    prior = pm.sample_prior_predictive(draws=40, model=model, random_seed=seed)
    tree = xr.DataTree()
    tree["posterior"] = xr.DataTree(prior["prior"].to_dataset())
    tree["observed_data"] = xr.DataTree(prior["observed_data"].to_dataset())
    tree["constant_data"] = xr.DataTree(prior["constant_data"].to_dataset())
    return tree


@pytest.mark.parametrize("subgroup", [None, "separate", "shared"])
def test_normal_log_likelihood_is_marginal_over_theta(subgroup: str | None) -> None:
    """log N(y_i | mu_i, v_i + tau_i²) with scipy, per draw, for pooled and subgroup models."""
    from scipy import stats

    data = EIGHT.assign(grp=["a", "a", "b", "b", "a", "b", "a", "b"])
    kwargs = {} if subgroup is None else {"subgroup": "grp", "subgroup_tau": subgroup}
    model = build_model(data, family="normal", priors=_priors(tau="halfnormal(1)"), **kwargs)
    tree = _prior_tree(model, seed=4)
    ours = get_family("normal").log_likelihood(tree)["y"].transpose("chain", "draw", "study").values
    post = tree["posterior"]
    mu = post["mu"].values
    tau = post["tau"].values
    codes = (data["grp"] == "b").to_numpy().astype(int)
    mu_i = mu[..., codes] if subgroup else mu[..., None]
    tau_i = tau[..., codes] if subgroup == "separate" else tau[..., None]
    expected = stats.norm.logpdf(data["yi"].to_numpy(), mu_i, np.sqrt(data["vi"].to_numpy() + tau_i**2))
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


@pytest.mark.parametrize("family", ["binomial"])
def test_numpy_log_likelihood_equals_pymc(family: str) -> None:
    """The conditional per-arm log-likelihoods (given theta_i, p_max_i) equal PyMC's."""
    import pymc as pm

    data = EIGHT if family == "normal" else COUNTS
    model = build_model(data, family=family, priors=_priors(tau="halfnormal(1)"))
    tree = _prior_tree(model, seed=9)
    entry = get_family(family)
    ours = count_log_likelihood(tree)
    theirs = pm.compute_log_likelihood(tree, model=model, extend_inferencedata=False,
                                       progressbar=False)
    assert set(ours) == set(entry.observed) == set(theirs.data_vars)
    for name in entry.observed:
        np.testing.assert_allclose(ours[name].transpose("chain", "draw", "study").values,
                                   theirs[name].transpose("chain", "draw", "study").values,
                                   rtol=1e-10, atol=1e-10)
    reps = entry.posterior_predictive(tree, np.random.default_rng(0))
    assert set(reps) == set(entry.observed)
    if family == "binomial":
        n1 = COUNTS["n1i"].to_numpy()
        assert np.all((reps["y_t"].values >= 0) & (reps["y_t"].values <= n1))
