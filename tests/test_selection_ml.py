"""Maximum-likelihood step-function selection models against metafor's selmodel().

Pins: tests/reference/selmodel.json, made by tests/reference/make_selmodel.R (records every
R call, metafor/metadat/numDeriv versions). Each case is pinned twice: with metafor's optim
tightened ("tight") and with its defaults ("default").
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from bayesmeta.errors import DataWarning, InputError
from bayesmeta.frequentist.selection import (
    ROBMA_WEIGHT_FUNCTIONS,
    WeightFunction,
    parse_weight_function,
    selection_loglik,
    selmodel,
)

PINS = json.loads((Path(__file__).parent / "reference" / "selmodel.json").read_text())
CASES = PINS["cases"]

# metafor maximises with optim(BFGS) on finite-difference gradients and stops on the relative
# change of the log-likelihood. Tightened (reltol 1e-15, ndeps 1e-6) it stops within ~2e-7
# (relative) of the stationary point, which we find with the analytic gradient + Newton steps.
RTOL_METAFOR = 1e-6
# With metafor's defaults (reltol 1e-8, ndeps 1e-3) the optimum is only good to ~3e-5.
RTOL_METAFOR_DEFAULT = 1e-4
# Log-likelihoods and the LRT are flat at the optimum: second order in the optimiser's error.
RTOL_LOGLIK = 1e-8


# metafor's `alternative` as (side, direction) of a WeightFunction
ALTERNATIVES = {"greater": ("one-sided", "positive"), "less": ("one-sided", "negative"),
                "two.sided": ("two-sided", "positive")}


def _rtol(case: dict) -> float:
    return RTOL_METAFOR if case["control"] == "tight" else RTOL_METAFOR_DEFAULT


def _fit(case: dict):
    return selmodel(case["yi"], case["vi"], steps=case["steps"], alternative=case["alternative"],
                    method=case["method"])


def test_pins_record_versions_and_calls() -> None:
    assert PINS["metafor_version"] and PINS["numDeriv_version"]
    assert len({c["dataset"] for c in CASES.values()}) >= 3
    assert all(c["call"].startswith("selmodel(rma(") for c in CASES.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimates_equal_metafor(name: str) -> None:
    case = CASES[name]
    res = _fit(case)
    rtol = _rtol(case)
    assert res.k == len(case["yi"])
    assert res.estimate == pytest.approx(case["estimate"], rel=rtol)
    assert res.se == pytest.approx(case["se"], rel=rtol)
    if case["method"] == "EE":
        assert res.tau2 == 0.0 and case["tau2"] == 0.0 and res.se_tau2 is None
    else:
        assert res.tau2 == pytest.approx(case["tau2"], rel=rtol)
        assert res.se_tau2 == pytest.approx(case["se_tau2"], rel=rtol)
    assert res.weights[0] == 1.0 and case["weights"][0] == 1.0
    np.testing.assert_allclose(res.weights, case["weights"], rtol=rtol)
    assert res.se_weights[0] is None and case["se_weights"][0] is None
    np.testing.assert_allclose(res.se_weights[1:], case["se_weights"][1:], rtol=rtol)
    assert list(res.n_in_interval) == [int(n) for n in case["n_in_interval"]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_likelihood_ratio_test_equals_metafor(name: str) -> None:
    case = CASES[name]
    res = _fit(case)
    assert res.ll == pytest.approx(case["ll"], rel=RTOL_LOGLIK)
    assert res.ll0 == pytest.approx(case["ll0"], rel=RTOL_LOGLIK)
    assert res.lrt_df == case["lrt_df"]
    assert res.lrt == pytest.approx(case["lrt"], rel=_rtol(case), abs=1e-9)
    assert res.lrt_p == pytest.approx(case["lrt_p"], rel=_rtol(case), abs=1e-9)


@pytest.mark.parametrize("name", sorted(n for n in CASES if n.endswith("__tight")))
def test_our_optimum_is_at_least_metafors(name: str) -> None:
    """Our log-likelihood at metafor's estimates is metafor's ll, and our optimum is not lower."""
    case = CASES[name]
    res = _fit(case)
    side, direction = ALTERNATIVES[case["alternative"]]
    wf = WeightFunction(side, tuple(case["steps"][:-1]), direction)
    ll_at_metafor = selection_loglik(case["yi"], case["vi"], case["estimate"], case["tau2"], case["weights"], wf)
    assert ll_at_metafor == pytest.approx(case["ll"], rel=1e-12)
    assert res.ll >= ll_at_metafor - 1e-12 * abs(ll_at_metafor)


# ----------------------------------------------------------------- likelihood, independently


def _loglik_by_integration(y, v, mu, tau2, omega, wf: WeightFunction) -> float:
    """Normalising constants by numerical integration of w(p(y)) N(y; mu, v + tau2) over y."""
    from scipy import integrate

    total = 0.0
    for yi, vi in zip(y, v):
        sd = math.sqrt(vi + tau2)

        def weight(x: float, vi: float = vi) -> float:
            return float(np.asarray(omega)[wf.groups([x], [vi])[0]])

        edges = sorted(wf.sign * math.sqrt(vi) * stats.norm.isf(c) for c in wf.cutpoints)
        pts = [-np.inf, *edges, np.inf]
        const = sum(
            integrate.quad(lambda x, vi=vi: weight(x) * stats.norm.pdf(x, mu, sd), a, b, epsabs=0, epsrel=1e-12)[0]
            for a, b in zip(pts[:-1], pts[1:])
        )
        total += math.log(weight(yi)) + stats.norm.logpdf(yi, mu, sd) - math.log(const)
    return total


@pytest.mark.parametrize("wf", [
    WeightFunction("one-sided", (0.025, 0.5)),
    WeightFunction("two-sided", (0.05, 0.10)),
    WeightFunction("one-sided", (0.05,), "negative"),
])
def test_loglik_equals_numerical_integration(wf: WeightFunction) -> None:
    rng = np.random.default_rng(11)
    y = rng.normal(0.2, 0.4, size=6)
    v = rng.uniform(0.02, 0.2, size=6)
    omega = np.linspace(1.0, 0.2, wf.n_omega)
    for mu, tau2 in [(0.0, 0.0), (0.3, 0.05), (-0.4, 0.3)]:
        assert selection_loglik(y, v, mu, tau2, omega, wf) == pytest.approx(
            _loglik_by_integration(y, v, mu, tau2, omega, wf), rel=1e-9)


def test_no_selection_is_the_random_effects_likelihood() -> None:
    y = np.array([0.1, 0.5, -0.2, 0.9])
    v = np.array([0.04, 0.1, 0.02, 0.3])
    wf = parse_weight_function("one-sided(0.025, 0.05, 0.5)")
    expected = stats.norm.logpdf(y, 0.2, np.sqrt(v + 0.07)).sum()
    assert selection_loglik(y, v, 0.2, 0.07, np.ones(4), wf) == pytest.approx(expected, rel=1e-14)


def test_two_sided_is_the_symmetric_one_sided_function() -> None:
    y = np.array([0.1, 0.5, -0.6, 0.9, -0.05])
    v = np.array([0.04, 0.1, 0.02, 0.3, 0.01])
    two = WeightFunction("two-sided", (0.05,))
    one = WeightFunction("one-sided", (0.025, 0.975))
    assert two.cutpoints == pytest.approx(one.cutpoints)
    assert selection_loglik(y, v, 0.1, 0.02, [1.0, 0.3], two) == pytest.approx(
        selection_loglik(y, v, 0.1, 0.02, [1.0, 0.3, 1.0], one), rel=1e-13)


# ----------------------------------------------------------------- weight functions


def test_robma_weight_functions() -> None:
    """The six of RoBMA-PSMA (Bartos et al. 2023, Res Synth Methods 14:99, Table 1)."""
    assert set(ROBMA_WEIGHT_FUNCTIONS) == {
        "two-sided(0.05)", "two-sided(0.05, 0.1)", "one-sided(0.05)",
        "one-sided(0.025, 0.05)", "one-sided(0.05, 0.5)", "one-sided(0.025, 0.05, 0.5)",
    }
    for name, wf in ROBMA_WEIGHT_FUNCTIONS.items():
        assert parse_weight_function(name) == wf
    assert ROBMA_WEIGHT_FUNCTIONS["two-sided(0.05, 0.1)"].cutpoints == pytest.approx((0.025, 0.05, 0.95, 0.975))
    assert ROBMA_WEIGHT_FUNCTIONS["two-sided(0.05, 0.1)"].interval_omega == (0, 1, 2, 1, 0)


def test_parse_forms() -> None:
    assert parse_weight_function("stepfun(0.025, 0.05)") == WeightFunction("one-sided", (0.025, 0.05))
    assert parse_weight_function(" StepFun(.05, .025, 1) ") == WeightFunction("one-sided", (0.025, 0.05))
    assert parse_weight_function("one-sided(0.05) negative").direction == "negative"
    assert parse_weight_function("two-sided(.05)").labels == ("two-sided p [0, 0.05]", "two-sided p (0.05, 1]")
    for bad in ("stepfun", "stepfun()", "stepfun(0.5, x)", "stepfun(1.5)", "beta(1, 1)", "two-sided(0.05) negative"):
        with pytest.raises(ValueError):
            parse_weight_function(bad)


def test_groups_follow_metafor_rule() -> None:
    """metafor puts p in interval j when alpha_{j-1} < p <= alpha_j."""
    wf = WeightFunction("one-sided", (0.025, 0.5))
    v = np.ones(3)
    y = stats.norm.isf([0.025, 0.5, 0.7])  # p exactly at the cutpoints, then inside the last
    assert list(wf.groups(y, v)) == [0, 1, 2]


# ----------------------------------------------------------------- input errors and output


def test_empty_interval_is_an_input_error() -> None:
    y = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    v = np.full(5, 0.01)  # every p < 0.025
    with pytest.raises(InputError, match=r"no study has a p-value in p \(0.025, 1\]"):
        selmodel(y, v, steps=0.025)


def test_bad_variances_and_too_few_studies() -> None:
    with pytest.raises(InputError, match="vi > 0"):
        selmodel([0.1, 0.2, 0.3], [0.1, 0.0, 0.1])
    with pytest.raises(InputError, match="too few"):
        selmodel([2.0, 0.0], [0.1, 0.1], steps=0.025)


def test_weight_at_bound_warns() -> None:
    """Non-significant studies far more common than significant ones: the weight runs to
    metafor's upper bound 100 and the fit says so (as metafor does)."""
    v = np.full(40, 0.04)
    y = np.concatenate([np.linspace(1.18, 1.22, 36), [0.1, 0.2, 0.15, 0.3]])
    with pytest.warns(DataWarning, match="at its bound"):
        res = selmodel(y, v, steps=0.025)
    assert res.weights[1] == pytest.approx(100.0, rel=1e-6)
    # the opposite: a weight running to 0 (and then no usable Hessian)
    y = np.concatenate([np.full(10, 0.40), np.linspace(-1.1, -0.9, 30)])
    with pytest.warns(DataWarning) as record:
        res = selmodel(y, v, steps=0.025)
    messages = [str(w.message) for w in record]
    assert any("at its bound" in m for m in messages)
    assert res.weights[1] < 1e-6


def test_to_dict_is_json() -> None:
    case = CASES["hackshaw_025_05__tight"]
    d = _fit(case).to_dict()
    json.dumps(d, allow_nan=False)
    for key in ("estimate", "se", "tau2", "weights", "lrt", "lrt_p"):
        assert key in d
    assert d["weights"][0] == 1.0 and d["se_weights"][0] is None
    assert d["weight_function"] == "one-sided(0.025, 0.5)"


def test_string_and_object_forms_agree() -> None:
    case = CASES["bangertdrowns_twosided_05__tight"]
    a = selmodel(case["yi"], case["vi"], steps="two-sided(0.05)")
    b = selmodel(case["yi"], case["vi"], steps=[0.05], alternative="two.sided")
    assert a == b


# ----------------------------------------------------------------- simulation


def _published(rng: np.random.Generator, k: int, mu: float, tau: float, p_nonsig: float):
    """Studies with n per arm in [20, 200) for an SMD-like scale (v = 4/n); a study significant at
    one-sided 0.025 is always published, another with probability ``p_nonsig``."""
    ys, vs = [], []
    while len(ys) < k:
        v = 4.0 / rng.integers(20, 200)
        y = rng.normal(rng.normal(mu, tau), math.sqrt(v))
        if special.ndtr(-y / math.sqrt(v)) <= 0.025 or rng.random() < p_nonsig:
            ys.append(y)
            vs.append(v)
    return np.array(ys), np.array(vs)


@pytest.mark.slow
def test_coverage_under_selection() -> None:
    """Data made under a one-sided 0.025 step selection (non-significant studies published with
    probability 0.25): the 3PSM's 95% Wald interval for mu covers the truth about 95% of the time;
    the unadjusted ML random-effects interval does not. 300 data sets of k = 60 (~20 s)."""
    rng = np.random.default_rng(20240601)
    mu, tau, n_sim = 0.2, 0.1, 300
    cover_sel = cover_re = 0
    for _ in range(n_sim):
        y, v = _published(rng, 60, mu, tau, 0.25)
        sel = selmodel(y, v, steps=0.025)
        cover_sel += sel.ci_low <= mu <= sel.ci_high
        # unadjusted: ML random-effects model, Wald interval
        w = 1.0 / (v + _tau2_ml(y, v))
        m = np.sum(w * y) / np.sum(w)
        cover_re += abs(m - mu) <= 1.959964 * math.sqrt(1.0 / np.sum(w))
    mc_sd = math.sqrt(0.95 * 0.05 / n_sim)  # Monte Carlo SD of a coverage of 0.95
    assert abs(cover_sel / n_sim - 0.95) < 3.5 * mc_sd, cover_sel / n_sim
    assert cover_re / n_sim < 0.5, cover_re / n_sim


def _tau2_ml(y: np.ndarray, v: np.ndarray) -> float:
    from scipy import optimize

    def nll(t2: float) -> float:
        w = 1.0 / (v + t2)
        m = np.sum(w * y) / np.sum(w)
        return 0.5 * np.sum(np.log(v + t2) + w * (y - m) ** 2)

    res = optimize.minimize_scalar(nll, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-10})
    return float(res.x) if nll(0.0) > res.fun else 0.0
