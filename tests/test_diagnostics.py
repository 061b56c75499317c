"""Diagnostics: thresholds fire on constructed bad chains, stay quiet on good ones, values are right.

Independent sources of truth used here:

* ESS of an AR(1) chain with coefficient phi is n (1 - phi) / (1 + phi) (Geyer 1992, Stat Sci 7:473).
* E-BFMI is sum((E_t - E_{t-1})^2) / sum((E_t - mean E)^2) per chain (Betancourt 2016, eq. 18).
* For a common-mean model with flat prior, the exact leave-one-out predictive of y_i is
  N(ybar_{-i}, vi + 1/sum_{j != i} w_j) (normal conjugacy), so elpd_loo is known in closed form.
* With a fixed mu, tau, the study posterior theta_i | y_i is normal in closed form and so are the
  conditional and mixed predictive p-values; with tau = 0, Q(y_rep) ~ chi^2_{k-1} exactly.
"""

from __future__ import annotations

import json
import warnings

import arviz_base as azb
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from bayesmeta.diagnostics import (
    DEFAULT_THRESHOLDS,
    STRICT_EXIT_CODE,
    Thresholds,
    add_log_prior,
    add_log_prior_from_densities,
    check,
    posterior_predictive_checks,
    strict_exit_code,
    warn_problems,
)
from bayesmeta.errors import SamplerWarning

CHAINS, DRAWS = 4, 1000
N = CHAINS * DRAWS
# Relative Monte Carlo tolerance for ESS estimates of a known autocorrelation (ESS estimators have
# a sampling sd of roughly 10-20% at n = 4000 for strongly autocorrelated chains).
ESS_RTOL = 0.35
# Monte Carlo standard errors of a proportion from N draws: 4 sd covers it with prob > 0.9999.
MC_SIGMAS = 4.0
# PyMC's HalfNormal log density uses a rounded normalising constant: 1.9e-9 away from scipy's.
ATOL_PYMC_LOGPDF = 1e-8


def _tree(
    posterior: dict[str, np.ndarray],
    *,
    sample_stats: dict[str, np.ndarray] | None = None,
    log_likelihood: dict[str, np.ndarray] | None = None,
    observed: dict[str, np.ndarray] | None = None,
    constant: dict[str, np.ndarray] | None = None,
    labels: list[str] | None = None,
    engine: str | None = None,
) -> xr.DataTree:
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior}
    for name, group in (("sample_stats", sample_stats), ("log_likelihood", log_likelihood),
                        ("observed_data", observed), ("constant_data", constant)):
        if group is not None:
            groups[name] = group
    dims = {name: ["study"] for name in ("theta", "y", "vi")}
    coords = {"study": labels} if labels is not None else None
    tree = azb.from_dict(groups, dims=dims, coords=coords)
    if engine is not None:
        tree.attrs["engine"] = engine
    return tree


def _good_stats(rng: np.random.Generator, chains: int = CHAINS, draws: int = DRAWS) -> dict:
    return {"diverging": np.zeros((chains, draws), bool), "energy": rng.normal(size=(chains, draws))}


def _ar1(rng: np.random.Generator, phi: float, chains: int = CHAINS, draws: int = DRAWS) -> np.ndarray:
    e = rng.normal(size=(chains, draws)) * np.sqrt(1 - phi**2)
    x = np.empty_like(e)
    x[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


# ------------------------------------------------------------------------------------------------
# convergence checks on constructed chains


def test_iid_chains_pass_every_check_and_ess_is_close_to_n() -> None:
    rng = np.random.default_rng(20180101)
    tree = _tree({"mu": rng.normal(size=(CHAINS, DRAWS)), "tau": rng.gamma(2.0, size=(CHAINS, DRAWS))},
                 sample_stats=_good_stats(rng))
    diag = check(tree)
    assert diag.ok, diag.problems
    assert diag.engine == "mcmc"
    assert (diag.n_chains, diag.n_draws) == (CHAINS, DRAWS)
    assert diag.divergences == 0
    for name in ("mu", "tau"):
        assert abs(diag.rhat[name] - 1.0) < 0.01
        # iid draws: ESS = N within estimator noise
        assert diag.ess_bulk[name] == pytest.approx(N, rel=0.15)
        assert diag.ess_tail[name] == pytest.approx(N, rel=0.25)
    # MCSE of the mean of iid N(0,1) draws is 1/sqrt(N)
    assert diag.mcse_mean["mu"] == pytest.approx(1 / np.sqrt(N), rel=0.15)
    assert strict_exit_code(diag) == 0


def test_stuck_chain_raises_rhat_problem_for_that_variable_only() -> None:
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(CHAINS, DRAWS))
    mu[2] = 1.5  # chain 2 stuck at one value
    tree = _tree({"mu": mu, "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))}, sample_stats=_good_stats(rng))
    diag = check(tree)
    kinds = {(p.kind, p.variable) for p in diag.problems}
    assert ("rhat", "mu") in kinds
    assert not any(p.variable == "tau" for p in diag.problems)
    rhat_problem = next(p for p in diag.problems if p.kind == "rhat")
    assert rhat_problem.value > DEFAULT_THRESHOLDS.rhat_max
    assert rhat_problem.threshold == DEFAULT_THRESHOLDS.rhat_max
    assert not diag.ok and strict_exit_code(diag) == STRICT_EXIT_CODE


def test_chain_in_another_mode_fails_rhat() -> None:
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(CHAINS, DRAWS))
    mu[0] += 3.0
    tree = _tree({"mu": mu, "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))}, sample_stats=_good_stats(rng))
    diag = check(tree)
    assert diag.rhat["mu"] > 1.1
    # between-chain disagreement also deflates ESS; tau is untouched
    assert {(p.kind, p.variable) for p in diag.problems} == {("rhat", "mu"), ("ess_bulk", "mu"), ("ess_tail", "mu")}


def test_all_chains_constant_reports_rhat_not_computable() -> None:
    rng = np.random.default_rng(3)
    tree = _tree({"mu": np.full((CHAINS, DRAWS), 0.2), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats=_good_stats(rng))
    diag = check(tree)
    assert diag.rhat["mu"] is None
    problem = next(p for p in diag.problems if p.kind == "rhat")
    assert problem.variable == "mu" and problem.value is None
    assert "could not be computed" in problem.message


def test_autocorrelated_chains_fail_ess_with_theoretical_value() -> None:
    phi = 0.95
    rng = np.random.default_rng(4)
    tree = _tree({"mu": _ar1(rng, phi), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats=_good_stats(rng))
    diag = check(tree)
    expected = N * (1 - phi) / (1 + phi)  # about 103
    assert diag.ess_bulk["mu"] == pytest.approx(expected, rel=ESS_RTOL)
    kinds = {p.kind for p in diag.problems if p.variable == "mu"}
    assert {"ess_bulk", "ess_tail"} <= kinds
    assert "ess_bulk" not in {p.kind for p in diag.problems if p.variable == "tau"}


def test_ess_threshold_is_data() -> None:
    phi = 0.95
    rng = np.random.default_rng(4)
    tree = _tree({"mu": _ar1(rng, phi), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats=_good_stats(rng))
    lenient = Thresholds(rhat_max=1.05, ess_bulk_min=20, ess_tail_min=20)
    diag = check(tree, thresholds=lenient)
    assert diag.ok, diag.problems
    assert diag.to_dict()["thresholds"]["ess_bulk_min"] == 20


def test_divergences_counted_and_compared_with_threshold() -> None:
    rng = np.random.default_rng(5)
    stats_ = _good_stats(rng)
    stats_["diverging"][1, [10, 20, 30]] = True
    tree = _tree({"mu": rng.normal(size=(CHAINS, DRAWS)), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats=stats_)
    diag = check(tree)
    assert diag.divergences == 3
    (problem,) = diag.problems
    assert (problem.kind, problem.value, problem.threshold) == ("divergences", 3.0, 0.0)
    assert check(tree, thresholds=Thresholds(divergences_max=3)).ok


def test_low_bfmi_matches_closed_form_and_names_the_chain() -> None:
    rng = np.random.default_rng(6)
    energy = rng.normal(size=(CHAINS, DRAWS))
    energy[3] = np.cumsum(rng.normal(size=DRAWS)) * 0.1  # random-walk energy: poor exploration
    tree = _tree({"mu": rng.normal(size=(CHAINS, DRAWS)), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats={"diverging": np.zeros((CHAINS, DRAWS), bool), "energy": energy})
    diag = check(tree)
    expected = np.square(np.diff(energy, axis=1)).sum(axis=1) / np.square(
        energy - energy.mean(axis=1, keepdims=True)).sum(axis=1)
    np.testing.assert_allclose(diag.bfmi, expected, rtol=1e-6)
    assert [(p.kind, p.variable) for p in diag.problems] == [("bfmi", "chain 3")]


def test_vector_variable_checked_per_study_with_labels() -> None:
    rng = np.random.default_rng(7)
    theta = rng.normal(size=(CHAINS, DRAWS, 3))
    theta[0, :, 1] += 2.0  # only "B 2001" disagrees between chains
    tree = _tree({"mu": rng.normal(size=(CHAINS, DRAWS)), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS))),
                  "theta": theta}, sample_stats=_good_stats(rng), labels=["A 2000", "B 2001", "C 2002"])
    diag = check(tree, var_names=("mu", "tau", "theta"))
    assert set(diag.rhat) == {"mu", "tau", "theta[A 2000]", "theta[B 2001]", "theta[C 2002]"}
    assert {p.variable for p in diag.problems} == {"theta[B 2001]"}
    assert "rhat" in {p.kind for p in diag.problems}
    assert list(diag.table().index) == list(diag.rhat)


def test_unknown_variable_is_an_error() -> None:
    rng = np.random.default_rng(8)
    tree = _tree({"mu": rng.normal(size=(CHAINS, DRAWS))})
    with pytest.raises(ValueError, match="tau"):
        check(tree)


def test_single_mcmc_chain_cannot_show_convergence() -> None:
    rng = np.random.default_rng(9)
    tree = _tree({"mu": rng.normal(size=(1, 4000)), "tau": np.abs(rng.normal(size=(1, 4000)))},
                 sample_stats=_good_stats(rng, 1, 4000))
    diag = check(tree)
    assert {(p.kind, p.variable) for p in diag.problems} == {("rhat", "mu"), ("rhat", "tau")}


# ------------------------------------------------------------------------------------------------
# exact engine


def test_exact_engine_reports_rhat_ess_and_skips_sampler_checks() -> None:
    rng = np.random.default_rng(10)
    stats_ = _good_stats(rng)
    stats_["diverging"][:] = True  # would fail loudly if it were read
    tree = _tree({"mu": rng.normal(size=(CHAINS, DRAWS)), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats=stats_, engine="exact")
    diag = check(tree)
    assert diag.ok, diag.problems
    assert diag.engine == "exact"
    assert diag.divergences is None and diag.bfmi is None and diag.treedepth_hits is None
    assert any("engine=exact" in n for n in diag.notes)
    assert diag.ess_bulk["mu"] == pytest.approx(N, rel=0.15)
    assert diag.to_dict()["engine"] == "exact"


def test_exact_engine_single_chain_is_fine() -> None:
    rng = np.random.default_rng(11)
    tree = _tree({"mu": rng.normal(size=(1, 4000)), "tau": np.abs(rng.normal(size=(1, 4000)))}, engine="exact")
    diag = check(tree)
    assert diag.ok
    assert diag.rhat["mu"] is None
    assert any("independent exact draws" in n for n in diag.notes)


# ------------------------------------------------------------------------------------------------
# PSIS-LOO


def _common_mean_tree(y: np.ndarray, vi: np.ndarray, seed: int) -> xr.DataTree:
    """Exact posterior draws of mu (flat prior) and the pointwise log likelihood."""
    rng = np.random.default_rng(seed)
    w = 1 / vi
    mu = rng.normal(np.sum(w * y) / w.sum(), np.sqrt(1 / w.sum()), size=(CHAINS, DRAWS))
    loglik = stats.norm.logpdf(y, mu[..., None], np.sqrt(vi))
    labels = [f"S{i}" for i in range(len(y))]
    return _tree({"mu": mu, "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))},
                 sample_stats=_good_stats(rng), log_likelihood={"y": loglik},
                 observed={"y": y}, constant={"vi": vi}, labels=labels)


def _exact_elpd_loo(y: np.ndarray, vi: np.ndarray) -> float:
    w = 1 / vi
    total = 0.0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        m = np.sum(w[keep] * y[keep]) / w[keep].sum()
        total += stats.norm.logpdf(y[i], m, np.sqrt(vi[i] + 1 / w[keep].sum()))
    return float(total)


def test_loo_matches_closed_form_common_mean_model() -> None:
    y = np.array([0.10, 0.35, -0.05, 0.22, 0.15, 0.30, 0.02, 0.18])
    vi = np.array([0.04, 0.06, 0.05, 0.03, 0.08, 0.05, 0.07, 0.04])
    diag = check(_common_mean_tree(y, vi, seed=12))
    assert diag.loo is not None
    # PSIS with small k and 4000 draws: error well below 0.05 on the elpd scale
    assert diag.loo.elpd == pytest.approx(_exact_elpd_loo(y, vi), abs=0.05)
    assert set(diag.loo.pareto_k) == {f"S{i}" for i in range(8)}
    assert max(diag.loo.pareto_k.values()) < 0.5
    assert diag.loo.high_k == ()
    assert diag.loo.k_threshold == 0.7
    assert diag.ok, diag.problems


def test_influential_study_gets_high_pareto_k_problem() -> None:
    y = np.array([0.10, 0.12, 0.08, 0.11, 3.0])
    vi = np.array([0.05, 0.05, 0.05, 0.05, 0.0005])  # S4 is far away and dominates the posterior
    diag = check(_common_mean_tree(y, vi, seed=13))
    assert diag.loo.high_k == ("S4",)
    problems = [p for p in diag.problems if p.kind == "pareto_k"]
    assert [p.variable for p in problems] == ["y[S4]"]
    assert problems[0].value > 0.7
    assert not any("arviz" in m for m in (p.message for p in problems))


def test_pareto_threshold_depends_on_sample_size() -> None:
    t = Thresholds()
    assert t.pareto_k_for(4000) == 0.7
    assert t.pareto_k_for(100) == pytest.approx(0.5)  # 1 - 1/log10(100)


# ------------------------------------------------------------------------------------------------
# reporting


def test_warn_problems_emits_one_sampler_warning_each() -> None:
    rng = np.random.default_rng(5)
    stats_ = _good_stats(rng)
    stats_["diverging"][0, :5] = True
    mu = rng.normal(size=(CHAINS, DRAWS))
    mu[1] += 2
    tree = _tree({"mu": mu, "tau": np.abs(rng.normal(size=(CHAINS, DRAWS)))}, sample_stats=stats_)
    diag = check(tree)
    assert {"rhat", "divergences"} <= {p.kind for p in diag.problems}
    with pytest.warns(SamplerWarning) as record:
        warn_problems(diag)
    assert len(record) == len(diag.problems)
    assert any("5 divergent transitions" in str(w.message) for w in record)


def test_no_warning_when_ok_and_to_dict_is_json() -> None:
    y = np.array([0.10, 0.35, -0.05, 0.22])
    vi = np.array([0.04, 0.06, 0.05, 0.03])
    diag = check(_common_mean_tree(y, vi, seed=14))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_problems(diag)
    payload = json.loads(json.dumps(diag.to_dict(), allow_nan=False))
    assert payload["ok"] is True
    assert payload["loo"]["pareto_k"].keys() == {"S0", "S1", "S2", "S3"}
    assert isinstance(payload["rhat"]["mu"], float)


# ------------------------------------------------------------------------------------------------
# posterior predictive checks


def _fixed_hyper_tree(y: np.ndarray, vi: np.ndarray, mu0: float, tau0: float, seed: int) -> xr.DataTree:
    """mu and tau fixed; theta_i drawn from its exact conditional posterior."""
    rng = np.random.default_rng(seed)
    prec = 1 / vi + 1 / tau0**2
    mean = (y / vi + mu0 / tau0**2) / prec
    theta = rng.normal(mean, np.sqrt(1 / prec), size=(CHAINS, DRAWS, len(y)))
    labels = [f"S{i}" for i in range(len(y))]
    return _tree({"mu": np.full((CHAINS, DRAWS), mu0), "tau": np.full((CHAINS, DRAWS), tau0), "theta": theta},
                 observed={"y": y}, constant={"vi": vi}, labels=labels)


def test_ppc_p_values_match_closed_form_and_flag_outlier() -> None:
    y = np.array([0.05, -0.10, 0.12, 0.90])
    vi = np.array([0.02, 0.03, 0.02, 0.02])
    mu0, tau0 = 0.0, 0.15
    ppc = posterior_predictive_checks(_fixed_hyper_tree(y, vi, mu0, tau0, seed=15))
    prec = 1 / vi + 1 / tau0**2
    post_mean, post_var = (y / vi + mu0 / tau0**2) / prec, 1 / prec
    p_cond = stats.norm.sf(y, post_mean, np.sqrt(post_var + vi))
    p_mixed = stats.norm.sf(y, mu0, np.sqrt(tau0**2 + vi))
    frame = ppc.to_frame()
    np.testing.assert_allclose(frame["p_mixed"], p_mixed, rtol=1e-12)  # mu, tau constant: exact
    np.testing.assert_allclose(frame["p_conditional"], p_cond, atol=0.01)  # MC over theta draws
    assert ppc.extreme == ("S3",)
    # the conditional check reuses the data: it is closer to 0.5 than the mixed one
    assert frame.loc["S3", "p_conditional"] > frame.loc["S3", "p_mixed"]


def test_ppc_q_p_value_is_chi_square_when_tau_is_zero() -> None:
    rng = np.random.default_rng(16)
    k = 6
    vi = rng.uniform(0.02, 0.08, size=k)
    y = rng.normal(0.2, np.sqrt(vi))
    y[0] += 0.5  # some excess heterogeneity so that p is not trivially ~0.5
    w = 1 / vi
    mu = rng.normal(np.sum(w * y) / w.sum(), np.sqrt(1 / w.sum()), size=(CHAINS, DRAWS))
    theta = np.repeat(mu[..., None], k, axis=-1)
    tree = _tree({"mu": mu, "tau": np.zeros((CHAINS, DRAWS)), "theta": theta},
                 observed={"y": y}, constant={"vi": vi}, labels=[f"S{i}" for i in range(k)])
    ppc = posterior_predictive_checks(tree, seed=3)
    q_obs = np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2)
    assert ppc.q_obs == pytest.approx(q_obs, rel=1e-12)
    p_exact = stats.chi2.sf(q_obs, k - 1)
    mc_sd = np.sqrt(p_exact * (1 - p_exact) / N)
    assert abs(ppc.p_q_conditional - p_exact) < MC_SIGMAS * mc_sd
    assert abs(ppc.p_q_mixed - p_exact) < MC_SIGMAS * mc_sd
    again = posterior_predictive_checks(tree, seed=3)
    assert again.to_dict() == ppc.to_dict()  # seeded: bit-for-bit


def test_ppc_without_vi_needs_it_explicitly() -> None:
    rng = np.random.default_rng(17)
    tree = _tree({"mu": rng.normal(size=(2, 50)), "tau": np.abs(rng.normal(size=(2, 50))),
                  "theta": rng.normal(size=(2, 50, 3))}, observed={"y": np.zeros(3)}, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="vi="):
        posterior_predictive_checks(tree)
    ppc = posterior_predictive_checks(tree, vi=[0.1, 0.1, 0.1])
    assert [s.label for s in ppc.studies] == ["a", "b", "c"]


def test_ppc_mixed_skipped_for_meta_regression() -> None:
    rng = np.random.default_rng(18)
    tree = _tree({"mu": rng.normal(size=(2, 50)), "tau": np.abs(rng.normal(size=(2, 50))),
                  "beta": rng.normal(size=(2, 50)), "theta": rng.normal(size=(2, 50, 3))},
                 observed={"y": np.zeros(3)}, constant={"vi": np.full(3, 0.1)}, labels=["a", "b", "c"])
    ppc = posterior_predictive_checks(tree)
    assert ppc.p_q_mixed is None and all(s.p_mixed is None for s in ppc.studies)


# ------------------------------------------------------------------------------------------------
# log prior and power-scaling sensitivity


def _conjugate_tree(prior_sd: float, seed: int) -> tuple[xr.DataTree, float]:
    """Common-mean model, mu ~ N(0, prior_sd^2): exact posterior draws (iid)."""
    y = np.array([0.8, 1.1, 0.9, 1.2, 1.0])
    vi = np.full(5, 0.05)
    prec = 1 / prior_sd**2 + np.sum(1 / vi)
    mean = np.sum(y / vi) / prec
    rng = np.random.default_rng(seed)
    mu = rng.normal(mean, np.sqrt(1 / prec), size=(CHAINS, DRAWS))
    tree = _tree({"mu": mu}, log_likelihood={"y": stats.norm.logpdf(y, mu[..., None], np.sqrt(vi))},
                 observed={"y": y}, labels=[f"S{i}" for i in range(5)], engine="exact")
    return tree, prior_sd


@pytest.mark.parametrize("prior_sd", [0.05, 100.0])
def test_psense_sees_informative_prior_through_log_prior_group(prior_sd: float) -> None:
    import arviz_stats as azs

    tree, sd = _conjugate_tree(prior_sd, seed=19)
    with_prior = add_log_prior_from_densities(tree, {"mu": lambda x: stats.norm.logpdf(x, 0.0, sd)})
    assert "log_prior" not in tree.children  # input left untouched
    mu = with_prior["posterior"]["mu"].values
    np.testing.assert_allclose(with_prior["log_prior"]["mu"].values, stats.norm.logpdf(mu, 0, sd), rtol=1e-14)
    sens = azs.psense(with_prior, var_names=["mu"], group="prior")
    # Kallioinen et al. (2024), Sec. 4: 0.05 separates sensitive from insensitive
    if prior_sd < 1:
        assert float(sens["mu"]) > 0.05
    else:
        assert float(sens["mu"]) < 0.05


@pytest.fixture(scope="session")
def pymc_fit() -> tuple[xr.DataTree, object]:
    """A tiny non-centred random-effects model sampled once with nutpie."""
    import pymc as pm

    y = np.array([0.28, 0.08, -0.03, 0.07, -0.02, 0.28, 0.18, 0.12])
    sei = np.array([0.15, 0.10, 0.16, 0.11, 0.09, 0.11, 0.10, 0.18])
    labels = [f"S{i}" for i in range(len(y))]
    with pm.Model(coords={"study": labels}) as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        tau = pm.HalfNormal("tau", 0.5)
        z = pm.Normal("z", 0.0, 1.0, dims="study")
        theta = pm.Deterministic("theta", mu + tau * z, dims="study")
        pm.Normal("y", theta, sigma=sei, observed=y, dims="study")
        tree = pm.sample(draws=500, tune=500, chains=4, cores=1, random_seed=2018,
                         progressbar=False, target_accept=0.95)
        tree = pm.compute_log_likelihood(tree, progressbar=False)
    return tree, model


@pytest.mark.slow
def test_check_reads_a_real_nutpie_tree(pymc_fit) -> None:
    tree, _ = pymc_fit
    diag = check(tree)
    n_div = int(tree["sample_stats"]["diverging"].values.sum())
    assert diag.divergences == n_div
    assert diag.treedepth_hits is not None  # nutpie's 'maxdepth_reached'
    assert diag.bfmi is not None and len(diag.bfmi) == 4
    assert diag.loo is not None and len(diag.loo.pareto_k) == 8
    assert diag.rhat["mu"] < 1.01


@pytest.mark.slow
def test_add_log_prior_matches_scipy_and_feeds_psense(pymc_fit) -> None:
    import arviz_stats as azs

    tree, model = pymc_fit
    out = add_log_prior(tree, model, var_names=("mu", "tau"))
    assert "log_prior" not in tree.children
    post = out["posterior"]
    np.testing.assert_allclose(out["log_prior"]["mu"].values, stats.norm.logpdf(post["mu"].values, 0, 1),
                               rtol=0, atol=ATOL_PYMC_LOGPDF)
    np.testing.assert_allclose(out["log_prior"]["tau"].values,
                               stats.halfnorm.logpdf(post["tau"].values, scale=0.5),
                               rtol=0, atol=ATOL_PYMC_LOGPDF)
    table = azs.psense_summary(out, var_names=["mu", "tau"])
    assert list(table.index) == ["mu", "tau"]
    assert {"prior", "likelihood", "diagnosis"} <= set(table.columns)
