"""Prior sensitivity sweeps: grids, conclusions, exact engine and Dask distributed execution.

Oracles: individual fits of the exact engine (the sweep must reproduce them bit for bit, on
Dask workers as in the calling process), the unit-information SD formula of Röver et al. (2021,
Res Synth Methods 12:448-474, Eq. 6) computed by hand, the Turner et al. (2015, Table IV) and
Rhodes et al. (2015, Table 3) cells printed in the papers, and hand-made intervals for the
conclusion rules.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bayesmeta.errors import SpecError
from bayesmeta.exact import ExactNormalNormal
from bayesmeta.priors import parse_prior
from bayesmeta.sensitivity import (
    SERIAL,
    SensitivityResult,
    conclusion,
    conclusion_changes,
    default_mu_priors,
    default_tau_priors,
    parse_prior_list,
    plan_sweep,
    reference_scale,
    run_sensitivity,
)
from bayesmeta.sensitivity.tasks import combination_seed
from bayesmeta.spec import load_data, spec_from_dict

QUANTITIES = ("mu", "tau", "i2", "theta_new")
STATS = ("median", "mean", "sd", "q025", "q975")

# constructed data: a near-common-effect prior excludes 0, wider tau priors do not
Y_SPLIT = [0.9, 0.1, 0.7, -0.3, 0.8]
V_SPLIT = [0.04] * 5


def _gen_spec(tmp_path, yi, vi, *, tau="halfnormal(0.5)", mu="normal(0, 10)", extra=None, **spec):
    frame = pd.DataFrame({"study": [f"S{i + 1}" for i in range(len(yi))], "yi": yi, "vi": vi,
                          **(extra or {})})
    path = tmp_path / "effects.csv"
    frame.to_csv(path, index=False)
    tree = {"data": {"path": str(path)}, "effect": {"measure": spec.pop("measure", "GEN")},
            "priors": {"tau": tau, "mu": mu}, **spec}
    return spec_from_dict(tree)


@pytest.fixture(scope="module")
def bcg_spec():
    return spec_from_dict({"data": {"dataset": "bcg"}, "effect": {"measure": "RR"},
                           "priors": {"tau": "halfnormal(0.5)", "mu": "normal(0, 10)"}})


# --------------------------------------------------------------------------------------------
# list parsing and default grids


def test_parse_prior_list_splits_on_semicolons_and_canonicalises():
    got = parse_prior_list(' halfnormal(0.50); halfcauchy(scale=1);;turner2015("general") ;'
                           "halfnormal(0.5)", target="scale")
    assert got == ("halfnormal(0.5)", "halfcauchy(1)", 'turner2015("general")')
    assert parse_prior_list(["normal(0, 10)", "flat; student_t(3, 0, 2.5)"], target="location") == (
        "normal(0, 10)", "flat", "student_t(3, 0, 2.5)")
    assert parse_prior_list(None, target="scale") is None


def test_parse_prior_list_errors_name_the_item():
    with pytest.raises(SpecError, match=r"item 2 .*'halfnormal\(-1\)'"):
        parse_prior_list("halfcauchy(1);halfnormal(-1)", target="scale")
    with pytest.raises(SpecError, match="item 1 .*location prior"):
        parse_prior_list("halfnormal(1)", target="location")
    with pytest.raises(SpecError, match="empty prior list"):
        parse_prior_list(" ; ", target="scale")


@pytest.mark.parametrize(("measure", "empirical"), [("RR", "turner2015"), ("OR", "turner2015"),
                                                    ("SMD", "rhodes2015"), ("MD", None)])
def test_default_tau_grid_covers_the_families(measure, empirical):
    for exact in (True, False):
        grid = default_tau_priors(measure, 1.0, exact=exact)
        priors = [parse_prior(t) for t in grid]
        names = {p.name for p in priors}
        assert len(grid) >= 20 and len(set(grid)) == len(grid)
        assert {"halfnormal", "halfcauchy", "halft", "uniform", "exponential", "lognormal"} <= names
        assert all(p.target == "scale" for p in priors)
        assert ("jeffreys" in names) is exact
        assert any(p.text == "uniform(0, inf)" for p in priors) is exact
        emp = [p for p in priors if p.name in ("turner2015", "rhodes2015")]
        if empirical is None:
            assert emp == []
        else:
            assert [p.name for p in emp] == [empirical] * 3


def test_default_empirical_settings_are_the_published_cells():
    turner = [parse_prior(t) for t in default_tau_priors("OR", 1.0, exact=False) if "turner" in t]
    # Turner et al. 2015, Table IV: general setting and pharmacological vs placebo/control extremes
    assert [p.params for p in turner] == [(-2.56, 1.74), (-3.95, 1.34), (-1.77, 1.52)]
    rhodes = [parse_prior(t) for t in default_tau_priors("SMD", 1.0, exact=False) if "rhodes" in t]
    # Rhodes et al. 2015: general setting; Table 3 (pharm vs placebo/control, area "other")
    # smallest location (obstetric outcome) and largest location of that column
    assert rhodes[0].params == (-3.44, 2.59, 5.0)
    assert rhodes[1].params == (-4.13, 2.34, 5.0)
    assert rhodes[2].params[0] == max(v[0] for k, v in _rhodes_pharm_placebo().items())


def _rhodes_pharm_placebo():
    from bayesmeta.priors import rhodes2015_table

    return {k: v for k, v in rhodes2015_table().items()
            if k[1] == "pharmacological vs placebo/control" and k[2] == "other"}


def test_default_tau_grid_scales_with_the_reference_scale():
    one = default_tau_priors("MD", 1.0, exact=False)
    four = default_tau_priors("MD", 4.0, exact=False)
    assert one[:4] == ("halfnormal(0.25)", "halfnormal(0.5)", "halfnormal(1)", "halfnormal(2)")
    assert four[:4] == ("halfnormal(1)", "halfnormal(2)", "halfnormal(4)", "halfnormal(8)")
    med1 = [float(parse_prior(t).ppf(0.5)) for t in one]
    med4 = [float(parse_prior(t).ppf(0.5)) for t in four]
    # every prior median moves with the scale (3 significant digits in the strings)
    np.testing.assert_allclose(med4, 4 * np.asarray(med1), rtol=5e-3)


def test_reference_scale_unit_information_sd():
    n1 = np.array([20, 30, 25, 20, 15])
    n2 = np.array([22, 28, 25, 18, 15])
    vi = np.array([0.04, 0.05, 0.03, 0.06, 0.05])
    data = pd.DataFrame({"yi": np.zeros(5), "vi": vi, "n1i": n1, "n2i": n2})
    # Röver et al. (2021) Eq. 6: sigma_U = sqrt(sum n_i / sum se_i^-2), by hand:
    uisd = math.sqrt((42 + 58 + 50 + 38 + 30) / (25 + 20 + 100 / 3 + 100 / 6 + 20))
    ref = reference_scale("MD", data, "halfnormal(1)")
    assert ref.value == pytest.approx(uisd, rel=5e-3)  # 3 significant digits
    assert reference_scale("OR", data, "halfnormal(1)").value == 1.0
    no_n = data[["yi", "vi"]]
    # fallback: half-normal scale with the median of the spec's prior (halfcauchy(1): median 1)
    assert reference_scale("GEN", no_n, "halfcauchy(1)").value == pytest.approx(1 / 0.6744897501960817,
                                                                                rel=5e-3)
    with pytest.raises(SpecError, match="list the tau priors"):
        reference_scale("GEN", no_n, "uniform(0, inf)")


def test_default_mu_priors():
    assert default_mu_priors("normal(0, 10)", exact=True) == ("normal(0, 10)", "flat")
    assert default_mu_priors("normal(0.5, 2)", exact=False) == ("normal(0.5, 2)", "normal(0.5, 20)")
    assert default_mu_priors("student_t(3, 0, 2.5)", exact=False) == ("student_t(3, 0, 2.5)",
                                                                      "student_t(3, 0, 25)")
    assert default_mu_priors("flat", exact=True) == ("flat",)


# --------------------------------------------------------------------------------------------
# conclusions


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (0.1, 0.9, "positive"), (-0.9, -0.1, "negative"), (-0.1, 0.9, "includes null"),
    (0.0, 0.9, "includes null"), (-0.9, 0.0, "includes null"), (math.nan, 0.3, "failed"),
    (-math.inf, -0.2, "negative"),
])
def test_conclusion_of_an_interval(lo, hi, expected):
    assert conclusion(lo, hi, 0.0) == expected


def test_conclusion_relative_to_a_nonzero_null_and_order():
    assert conclusion(0.2, 0.5, null=0.25) == "includes null"
    assert conclusion(0.3, 0.5, null=0.25) == "positive"
    with pytest.raises(ValueError, match="wrong order"):
        conclusion(0.5, 0.2)


@pytest.mark.parametrize(("current", "base", "changes"), [
    ("positive", "positive", False), ("includes null", "positive", True),
    ("positive", "includes null", True), ("negative", "positive", True),
    ("failed", "positive", False), ("positive", "failed", False),
])
def test_conclusion_changes(current, base, changes):
    assert conclusion_changes(current, base) is changes


def test_conclusion_changes_rejects_unknown_labels():
    with pytest.raises(ValueError, match="unknown conclusion"):
        conclusion_changes("significant", "positive")


def _interval_excludes_zero(tau, mu):
    post = ExactNormalNormal(Y_SPLIT, V_SPLIT, tau_prior=tau, mu_prior=mu).fit()
    lo, hi = post.mu.ppf(0.025), post.mu.ppf(0.975)
    return bool(lo > 0 or hi < 0)


@pytest.mark.parametrize("base_tau", ["halfnormal(0.05)", "halfnormal(0.5)"])
def test_conclusion_changes_in_a_constructed_sweep(tmp_path, base_tau):
    spec = _gen_spec(tmp_path, Y_SPLIT, V_SPLIT, tau=base_tau)
    taus = ["halfnormal(0.05)", "halfnormal(0.5)", "uniform(0, 5)"]
    res = run_sensitivity(spec, tau_priors=taus, mu_priors=["normal(0, 10)", "flat"],
                          scheduler=SERIAL)
    frame = res.to_frame()
    base_excludes = _interval_excludes_zero(base_tau, "normal(0, 10)")
    assert base_excludes is (base_tau == "halfnormal(0.05)")  # the construction works
    for row in frame.itertuples():
        excludes = _interval_excludes_zero(row.tau_prior, row.mu_prior)
        assert row.conclusion == ("positive" if excludes else "includes null")
        assert row.conclusion_changes is (excludes != base_excludes)
    # the rows on the other side: 2 taus x 2 mus, or the 2 mus of halfnormal(0.05)
    n_changes = 4 if base_excludes else 2
    assert frame["conclusion_changes"].sum() == n_changes
    assert res.to_dict()["n_changes"] == n_changes
    assert frame.loc[frame.primary, ["tau_prior", "mu_prior"]].values.tolist() == [[base_tau,
                                                                                      "normal(0, 10)"]]


# --------------------------------------------------------------------------------------------
# exact engine sweeps


def _assert_row_equals_fit(row, post, null=0.0):
    for q in QUANTITIES:
        summary = getattr(post, q).summary()
        for s in STATS:
            assert row[f"{q}_{s}"] == summary[s], (q, s)  # bit for bit
    assert row["p_effect"] == 1.0 - post.mu.cdf(null)


def test_exact_sweep_equals_individual_exact_fits(bcg_spec):
    taus = ["halfnormal(0.5)", "halfcauchy(1)", 'turner2015("general")', "jeffreys"]
    mus = ["normal(0, 10)", "flat"]
    res = run_sensitivity(bcg_spec, tau_priors=";".join(taus), mu_priors=mus, scheduler=SERIAL)
    frame = res.to_frame()
    assert len(frame) == 8 and set(frame.engine) == {"exact"}
    data = load_data(bcg_spec)
    for row in frame.to_dict(orient="records"):
        post = ExactNormalNormal(data.yi, data.vi, tau_prior=row["tau_prior"],
                                 mu_prior=row["mu_prior"]).fit()
        _assert_row_equals_fit(row, post)
        full = post.summary()
        assert row["p_effect"] == full["p_mu_positive"]
        assert row["mu_median"] == full["mu"]["median"]
        assert row["mu_natural_q975"] == math.exp(full["mu"]["q975"])
        assert row["error"] == "" and row["seed"] == -1


def test_base_pair_is_added_and_marked_primary(bcg_spec):
    plan = plan_sweep(bcg_spec, load_data(bcg_spec), "halfcauchy(1)", "flat")
    assert plan.combos == (("halfnormal(0.5)", "normal(0, 10)"), ("halfcauchy(1)", "flat"))
    assert plan.base_index == 0 and plan.engines == ("exact", "exact")


def test_default_exact_grid_of_the_bcg_example(bcg_spec):
    plan = plan_sweep(bcg_spec, load_data(bcg_spec))
    taus = {t for t, _ in plan.combos}
    mus = {m for _, m in plan.combos}
    assert len(taus) >= 20 and mus == {"normal(0, 10)", "flat"}
    assert len(plan.combos) == len(taus) * len(mus)
    assert set(plan.engines) == {"exact"}


def test_failed_combination_is_reported_not_raised(tmp_path):
    # k = 2 with flat priors on mu and tau: the posterior of tau is improper
    spec = _gen_spec(tmp_path, [0.1, 0.5], [0.04, 0.05], mu="flat")
    res = run_sensitivity(spec, tau_priors="halfnormal(0.5);uniform(0, inf)", mu_priors="flat",
                          scheduler=SERIAL)
    frame = res.to_frame().set_index("tau_prior")
    assert "improper" in frame.loc["uniform(0, inf)", "error"]
    assert math.isnan(frame.loc["uniform(0, inf)", "mu_median"])
    assert frame.loc["uniform(0, inf)", "conclusion"] == "failed"
    assert not frame.loc["uniform(0, inf)", "conclusion_changes"]
    assert frame.loc["halfnormal(0.5)", "error"] == ""
    assert res.to_dict()["n_failed"] == 1


def test_result_files_and_dict(bcg_spec, tmp_path):
    res = run_sensitivity(bcg_spec, tau_priors="halfnormal(0.5);halfcauchy(0.5)",
                          mu_priors="normal(0, 10)", scheduler=SERIAL)
    back = SensitivityResult.from_netcdf(res.to_netcdf(tmp_path / "sensitivity.nc"))
    pd.testing.assert_frame_equal(back.to_frame(), res.to_frame())
    ds = back.dataset
    assert ds["mu_median"].dims == ("prior",)
    assert list(ds["tau_prior"].values) == ["halfnormal(0.5)", "halfcauchy(0.5)"]
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["base"]["tau_prior"] == "halfnormal(0.5)" and d["base"]["primary"]
    first = d["priors"][0]
    assert set(first) >= {"tau_prior", "mu_prior", "engine", "mu", "mu_natural", "tau", "i2",
                          "p_effect", "conclusion_changes"}
    assert set(first["mu"]) == set(STATS)
    assert first["mu_natural"]["median"] == pytest.approx(math.exp(first["mu"]["median"]), rel=1e-15)
    for entry in d["priors"]:  # the strings parse back through the registry
        assert parse_prior(entry["tau_prior"]).text == entry["tau_prior"]
        assert parse_prior(entry["mu_prior"]).text == entry["mu_prior"]
    csv1 = res.to_csv(tmp_path / "a.csv").read_bytes()
    again = run_sensitivity(bcg_spec, tau_priors="halfnormal(0.5);halfcauchy(0.5)",
                            mu_priors="normal(0, 10)", scheduler=SERIAL)
    assert again.to_csv(tmp_path / "b.csv").read_bytes() == csv1  # no wall times in the CSV
    assert "seconds" in pd.read_csv(res.to_csv(tmp_path / "c.csv", timings=True)).columns
    frame = res.to_frame()
    assert list(frame.columns[:9]) == ["tau_prior", "mu_prior", "engine", "subgroup", "mu_median",
                                      "mu_mean", "mu_sd", "mu_q025", "mu_q975"]
    assert (frame.subgroup == "").all() and "subgroup" not in d["priors"][0]
    assert frame.shape[0] == 2


def test_exact_psense_flags_a_conflicting_prior_and_not_a_flat_one(bcg_spec):
    # BCG: tau is about 0.55 on the log-RR scale, far in the tail of half-normal(0.05)
    strong = run_sensitivity(bcg_spec.with_overrides({"priors.tau": "halfnormal(0.05)"}),
                             tau_priors=["halfnormal(0.05)"], mu_priors=["normal(0, 10)"],
                             scheduler=SERIAL).psense
    assert strong["engine"] == "exact" and strong["prior_var_names"] == ["mu", "tau"]
    assert strong["variables"]["tau"]["prior"] > strong["threshold"]
    assert strong["variables"]["tau"]["diagnosis"] == "potential prior-data conflict"
    flat = run_sensitivity(bcg_spec.with_overrides({"priors.tau": "uniform(0, inf)",
                                                    "priors.mu": "flat"}),
                           tau_priors=["uniform(0, inf)"], mu_priors=["flat"],
                           scheduler=SERIAL).psense
    assert flat["constant_priors"] == ["mu", "tau"] and flat["prior_var_names"] == []
    for v in ("mu", "tau"):
        assert flat["variables"][v]["prior"] == 0.0  # power-scaling a constant changes nothing
        assert flat["variables"][v]["likelihood"] > strong["threshold"]  # the data dominate
        assert flat["variables"][v]["diagnosis"] == "✓"
    off = run_sensitivity(bcg_spec, tau_priors=["halfnormal(0.5)"], mu_priors=["normal(0, 10)"],
                          scheduler=SERIAL, psense=False)
    assert off.psense is None and off.to_dict()["psense"] is None


def test_combination_seeds_are_deterministic_and_distinct():
    a = combination_seed(2018, "halfnormal(0.5)", "normal(0, 10)")
    assert a == combination_seed(2018, "halfnormal(0.5)", "normal(0, 10)")
    assert a != combination_seed(2019, "halfnormal(0.5)", "normal(0, 10)")
    assert a != combination_seed(2018, "normal(0, 10)", "halfnormal(0.5)")
    assert 0 <= a < 2**32


# --------------------------------------------------------------------------------------------
# Dask distributed


@pytest.fixture(scope="module")
def dask_client():
    """A real LocalCluster: 2 worker processes, 1 thread each (shared by this module's tests)."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def test_dask_exact_sweep_equals_serial_bit_for_bit(bcg_spec, dask_client):
    taus = ["halfnormal(0.25)", "halfnormal(0.5)", "halfcauchy(0.5)", "exponential(2)",
            'turner2015("general")', "jeffreys"]
    mus = ["normal(0, 10)", "flat"]
    seen = []
    dask = run_sensitivity(bcg_spec, tau_priors=taus, mu_priors=mus, scheduler=dask_client,
                           progress=lambda done, total: seen.append((done, total)))
    serial = run_sensitivity(bcg_spec, tau_priors=taus, mu_priors=mus, scheduler=SERIAL)
    a = dask.to_frame().drop(columns="seconds")
    b = serial.to_frame().drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # several coarse tasks ran, on both workers' share of batches; progress ends at the total
    assert seen[0] == (0, 12) and seen[-1] == (12, 12) and len(seen) > 2
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_dask_scheduler_address_is_accepted(bcg_spec, dask_client):
    address = dask_client.scheduler.address
    res = run_sensitivity(bcg_spec, tau_priors="halfcauchy(1)", mu_priors="flat", scheduler=address)
    post = ExactNormalNormal(load_data(bcg_spec).yi, load_data(bcg_spec).vi,
                             tau_prior="halfcauchy(1)", mu_prior="flat").fit()
    row = res.to_frame().set_index(["tau_prior", "mu_prior"]).loc[("halfcauchy(1)", "flat")]
    assert row["mu_median"] == post.mu.summary()["median"]


# --------------------------------------------------------------------------------------------
# MCMC sweeps

MCMC_SAMPLING = {"engine": "mcmc", "sampler": "nutpie", "chains": 2, "draws": 400, "tune": 400,
                 "seed": 2018}
MCMC_TAUS = ("halfnormal(0.5)", "halfnormal(1)")


@pytest.fixture(scope="module")
def mcmc_spec():
    return spec_from_dict({"data": {"dataset": "bcg"}, "effect": {"measure": "RR"},
                           "priors": {"tau": "halfnormal(0.5)", "mu": "normal(0, 10)"},
                           "sampling": MCMC_SAMPLING})


@pytest.mark.parametrize("model", [
    {}, {"moderators": ["ablat"]}, {"family": "binomial"}, {"bias": "pet"},
])
@pytest.mark.parametrize("mu", ["normal(0, 10)", "flat", "student_t(3, 0, 2.5)"])
@pytest.mark.parametrize("engine", ["auto", "mcmc"])
def test_engine_choice_agrees_with_inference(model, mu, engine):
    from bayesmeta.inference import resolve_engine
    from bayesmeta.sensitivity.runner import engine_for

    spec = spec_from_dict({"data": {"dataset": "bcg"}, "effect": {"measure": "RR"},
                           "model": model, "priors": {"mu": mu}, "sampling": {"engine": engine}})
    m = spec.model
    expected = resolve_engine(engine, family=m.family, moderators=tuple(m.moderators),
                              subgroup=m.subgroup or None, bias=m.bias,
                              mu_prior=parse_prior(mu, target="location"))
    assert engine_for(spec, mu) == expected


@pytest.mark.slow
def test_dask_mcmc_sweep_equals_serial_single_fits(mcmc_spec, dask_client):
    """The sweep on 2 Dask workers reproduces, draw for draw, fits run one by one in this process.

    Compiling a nutpie model takes most of this test's time: one prior family is used, so each
    process compiles at most once.
    """
    from bayesmeta.builders import build_model
    from bayesmeta.inference import fit
    from bayesmeta.sensitivity.psense import mcmc_psense

    dask = run_sensitivity(mcmc_spec, scheduler=dask_client, tau_priors=MCMC_TAUS,
                           mu_priors="normal(0, 10)")
    frame = dask.to_frame()
    assert set(frame.engine) == {"mcmc"} and (frame.error == "").all()
    rows = frame.set_index("tau_prior")
    # identical seeds give identical draws: the base row is `fit(spec)` with the spec's seed,
    # the other row a fresh fit with its derived seed (each compiles its own model)
    other_seed = combination_seed(2018, "halfnormal(1)", "normal(0, 10)")
    assert rows.loc["halfnormal(0.5)", "seed"] == 2018
    assert rows.loc["halfnormal(1)", "seed"] == other_seed
    fits = {
        "halfnormal(0.5)": fit(mcmc_spec, diagnostics=False),
        "halfnormal(1)": fit(mcmc_spec.with_overrides({"priors.tau": "halfnormal(1)"}),
                             seed=other_seed, diagnostics=False),
    }
    for tau, result in fits.items():
        for q in QUANTITIES:
            for s in STATS:
                assert rows.loc[tau, f"{q}_{s}"] == result.summary[q][s], (tau, q, s)
        mu = result.tree["posterior"]["mu"].values
        assert rows.loc[tau, "p_effect"] == np.mean(mu > 0)
        assert rows.loc[tau, "mu_natural_q025"] == math.exp(result.summary["mu"]["q025"])
    # MCMC agrees with the exact engine within Monte Carlo error
    data = load_data(mcmc_spec)
    for tau in MCMC_TAUS:
        exact = ExactNormalNormal(data.yi, data.vi, tau_prior=tau, mu_prior="normal(0, 10)").fit()
        mcse = rows.loc[tau, "mu_sd"] / math.sqrt(rows.loc[tau, "ess_bulk_min"])
        Z_MC = 4.0  # 4 Monte Carlo standard errors: fails by chance with probability ~6e-5
        assert abs(rows.loc[tau, "mu_mean"] - exact.mu.mean) < Z_MC * mcse
        assert rows.loc[tau, "rhat_max"] < 1.05 and rows.loc[tau, "divergences"] == 0
    # power-scaling diagnostics of the base fit (mu and tau only) equal those of the single fit
    model = build_model(data, family="normal", priors={"mu": parse_prior("normal(0, 10)"),
                                                       "tau": parse_prior("halfnormal(0.5)")})
    ps = dask.psense
    assert ps["engine"] == "mcmc"
    assert ps == json.loads(json.dumps(mcmc_psense(fits["halfnormal(0.5)"].tree, model)))
    assert ps["prior_var_names"] == ["mu", "tau"] and ps["likelihood_var_names"] == ["y"]
    assert set(ps["variables"]) == {"mu", "tau"}
    for v in ps["variables"].values():
        assert 0 <= v["prior"] < 1 and 0 <= v["likelihood"] < 1
    d = dask.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["base"]["diagnostics"]["divergences"] == 0


@pytest.mark.slow
def test_subgroup_model_sweep_has_one_row_per_level():
    """BCG by allocation (3 levels, separate taus): rows per (combination, level), each equal to
    the single fit's per-level summaries; conclusions compared level by level."""
    from bayesmeta.inference import fit

    spec = spec_from_dict({"data": {"dataset": "bcg"}, "effect": {"measure": "RR"},
                           "model": {"subgroup": "alloc"},
                           "priors": {"tau": "halfnormal(0.5)", "mu": "normal(0, 10)"},
                           "sampling": {**MCMC_SAMPLING, "engine": "auto"}})
    res = run_sensitivity(spec, tau_priors=MCMC_TAUS, mu_priors="normal(0, 10)", scheduler=SERIAL)
    frame = res.to_frame()
    levels = ["alternate", "random", "systematic"]
    assert sorted(set(frame.subgroup)) == levels and len(frame) == 2 * 3
    assert set(frame.engine) == {"mcmc"} and (frame.error == "").all()
    base = fit(spec, diagnostics=False)
    assert base.engine == "mcmc"
    primary = frame[frame.primary].set_index("subgroup")
    assert sorted(primary.index) == levels
    for level in levels:
        for q in QUANTITIES:  # tau and I² are per level with separate taus
            for s in STATS:
                assert primary.loc[level, f"{q}_{s}"] == base.summary[q][level][s], (level, q, s)
        assert primary.loc[level, "p_effect"] == base.summary["p_mu_positive"][level]
    for row in frame.itertuples():
        base_conclusion = primary.loc[row.subgroup, "conclusion"]
        assert row.conclusion_changes is (row.conclusion != base_conclusion)
    d = res.to_dict()
    assert set(d["base_by_subgroup"]) == set(levels)
    assert {p["subgroup"] for p in d["priors"]} == set(levels)
    assert {f"mu[{lv}]" for lv in levels} <= set(d["psense"]["variables"])
    assert {f"tau[{lv}]" for lv in levels} <= set(d["psense"]["variables"])
    json.dumps(d, allow_nan=False)
