"""Tests of the prior registry against independent scipy expressions and published tables."""

from __future__ import annotations

import math
import numpy as np
import pytest
from scipy import integrate, stats

from bayesmeta.errors import SpecError
from bayesmeta.priors import (
    Prior,
    jeffreys_logpdf,
    list_priors,
    parse_prior,
    rhodes2015_table,
    turner2015_table,
)

RTOL_DENSITY = 1e-10  # same closed form evaluated two ways in double precision
ATOL_INTEGRAL = 1e-7  # scipy.integrate.quad on a smooth density with an infinite range
TAU = np.concatenate([np.linspace(1e-4, 0.2, 41), np.linspace(0.25, 5.0, 60)])
X = np.linspace(-20.0, 20.0, 81)


# --- every family's density against an independent scipy expression ---------------------

SCALE_CASES = [
    ("halfnormal(0.5)", lambda t: stats.halfnorm.pdf(t, scale=0.5)),
    ("halfnormal(scale=2)", lambda t: 2 * stats.norm.pdf(t, 0, 2)),
    ("halfcauchy(1)", lambda t: 2 / (math.pi * (1 + t**2))),
    ("halfcauchy(0.3)", lambda t: stats.halfcauchy.pdf(t, scale=0.3)),
    ("halft(3, 0.5)", lambda t: 2 * stats.t.pdf(t, 3, scale=0.5)),
    ("halft(1, 0.7)", lambda t: stats.halfcauchy.pdf(t, scale=0.7)),
    ("uniform(0, 5)", lambda t: np.where(t <= 5, 0.2, 0.0)),
    ("uniform(0.5, 2)", lambda t: np.where((t >= 0.5) & (t <= 2), 1 / 1.5, 0.0)),
    ("exponential(2)", lambda t: 2 * np.exp(-2 * t)),
    ("lognormal(-1, 0.8)", lambda t: stats.norm.pdf(np.log(t), -1, 0.8) / t),
    # log tau2 ~ N(m, s^2): change of variables u = log tau^2 = 2 log tau, du/dtau = 2/tau
    ("lognormal_tau2(-2.56, 1.74)", lambda t: stats.norm.pdf(2 * np.log(t), -2.56, 1.74) * 2 / t),
    ("logt_tau2(-3.44, 2.59, 5)", lambda t: stats.t.pdf(2 * np.log(t), 5, -3.44, 2.59) * 2 / t),
    ("turner2015(mortality, pharm-placebo)",
     lambda t: stats.lognorm.pdf(t**2, 1.34, scale=math.exp(-3.95)) * 2 * t),
    ("rhodes2015(general)", lambda t: stats.t.pdf(2 * np.log(t), 5, -3.44, 2.59) * 2 / t),
]


@pytest.mark.parametrize(("text", "ref"), SCALE_CASES)
def test_scale_logpdf_matches_scipy(text, ref):
    prior = parse_prior(text)
    assert prior.target == "scale"
    np.testing.assert_allclose(np.exp(prior.logpdf(TAU)), ref(TAU), rtol=RTOL_DENSITY, atol=1e-300)
    assert prior.logpdf(-0.1) == -np.inf


@pytest.mark.parametrize(("text", "ref"), SCALE_CASES)
def test_scale_priors_integrate_to_one_and_cdf_ppf_agree(text, ref):
    prior = parse_prior(text)
    lo, hi = prior.support
    pts = [p for p in (0.5, 2.0, 5.0) if lo < p < hi]
    # Pieces split geometrically towards 0, where log-t priors on tau² have an integrable
    # singularity on the tau scale (~ 1 / (t |log t|^(df+1))): one piece [0, 1] gives quad a
    # roundoff warning since scipy 1.18.
    cuts = [lo, 1e-6, 1e-4, 1e-2, 1.0, np.inf]
    total = integrate.quad(lambda t: float(prior.pdf(t)), lo, hi, points=pts if math.isfinite(hi) else None,
                           limit=400)[0] if math.isfinite(hi) else sum(
        integrate.quad(lambda t: float(prior.pdf(t)), a, b, limit=400)[0]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True))
    assert total == pytest.approx(1.0, abs=ATOL_INTEGRAL)
    # cdf against integrated density, and ppf inverts cdf
    for x in (0.1, 0.7, 1.9):
        if lo < x < hi:
            edges = [lo, *[c for c in cuts[1:-2] if c < x], x]
            num = sum(integrate.quad(lambda t: float(prior.pdf(t)), a, b, limit=400)[0]
                      for a, b in zip(edges[:-1], edges[1:], strict=True))
            assert float(prior.cdf(x)) == pytest.approx(num, abs=ATOL_INTEGRAL)
    p = np.array([0.025, 0.5, 0.975])
    np.testing.assert_allclose(prior.cdf(prior.ppf(p)), p, rtol=1e-10)


LOCATION_CASES = [
    ("normal(0, 10)", lambda x: stats.norm.pdf(x, 0, 10)),
    ("normal(-1.5, 0.8)", lambda x: np.exp(-0.5 * ((x + 1.5) / 0.8) ** 2) / (0.8 * math.sqrt(2 * math.pi))),
    ("student_t(3, 0, 2.5)", lambda x: stats.t.pdf(x / 2.5, 3) / 2.5),
]


@pytest.mark.parametrize(("text", "ref"), LOCATION_CASES)
def test_location_logpdf_matches_scipy(text, ref):
    prior = parse_prior(text)
    assert prior.target == "location" and prior.proper
    np.testing.assert_allclose(prior.pdf(X), ref(X), rtol=RTOL_DENSITY)
    assert integrate.quad(lambda x: float(prior.pdf(x)), -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-7)


def test_improper_priors():
    flat = parse_prior("flat")
    assert not flat.proper and flat.target == "location"
    np.testing.assert_array_equal(flat.logpdf(X), 0.0)
    unif = parse_prior("uniform(0, inf)")
    assert not unif.proper and unif.logpdf(3.0) == 0.0 and unif.logpdf(-1.0) == -np.inf
    for p in (flat, unif, parse_prior("jeffreys")):
        with pytest.raises(SpecError, match="improper"):
            p.cdf(1.0)


def test_jeffreys_density_form():
    vi = np.array([0.1, 0.5, 2.0])
    tau = np.array([0.01, 0.3, 1.0, 4.0])
    expected = np.sqrt([np.sum((t / (vi + t**2)) ** 2) for t in tau])
    np.testing.assert_allclose(np.exp(jeffreys_logpdf(tau, vi)), expected, rtol=1e-12)
    prior = parse_prior("jeffreys")
    assert prior.data_dependent and not prior.proper
    np.testing.assert_allclose(prior.pdf(tau, vi=vi), expected, rtol=1e-12)
    with pytest.raises(SpecError, match="vi"):
        prior.logpdf(tau)


# --- canonical text ---------------------------------------------------------------------------

ROUND_TRIP = [
    "halfnormal(0.5)", "halfnormal(scale=0.5)", "halfcauchy(1)", "halft(3, 0.5)", "uniform(0, 5)",
    "uniform(0, inf)", "exponential(2)", "lognormal(-1, 1)", "lognormal_tau2(-2.56, 1.74)",
    "logt_tau2(-3.44, 2.59, 5)", "jeffreys", "normal(0, 10)", "flat", "student_t(3, 0, 2.5)",
    "HalfNormal( 0.1 )", "normal(m=1e-3, s=1.0000000000000002)",
    'turner2015("all-cause mortality", "pharmacological vs. placebo / control")',
    "turner2015(pain, nonpharm-nonpharm)", "turner2015(general)",
    "rhodes2015(general)", 'rhodes2015("mental health", pharm-pharm, area="respiratory")',
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text):
    prior = parse_prior(text)
    again = parse_prior(prior.text)
    assert again == prior
    assert again.text == prior.text
    assert isinstance(prior, Prior)
    assert prior.to_dict()["text"] == prior.text


def test_canonical_forms():
    assert parse_prior("halfnormal(scale=0.50)").text == "halfnormal(0.5)"
    assert parse_prior("normal(m=1e-3, s=1.0000000000000002)").params == (1e-3, 1.0000000000000002)
    t = parse_prior("turner2015(mortality, pharm-placebo)")
    assert t.text == 'turner2015("all-cause mortality", "pharmacological vs placebo/control")'
    assert t.family == "lognormal_tau2" and t.name == "turner2015"
    r = parse_prior("rhodes2015('mental health', 'pharm-placebo')")
    assert r.text == ('rhodes2015("mental health outcome", "pharmacological vs placebo/control", '
                      '"other")')
    assert r.family == "logt_tau2"


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("foo(1)", r"unknown prior 'foo'. Valid priors: halfnormal\(scale\)"),
        ("halfnormal()", "missing argument 'scale'"),
        ("halfnormal", "missing argument 'scale'"),
        ("halfnormal(-1)", "'scale' must be a finite number > 0"),
        ("halfnormal(1, 2)", "takes 1 argument"),
        ("halfnormal(x=1)", "unknown argument 'x'"),
        ("halfnormal(scale=1, scale=2)", "given twice"),
        ("halfnormal(abc)", "must be a number"),
        ("halfnormal(nan)", "must be a number"),
        ("halfnormal(1,)", "empty argument"),
        ("halfnormal(1", "cannot parse"),
        ("uniform(2, 1)", "upper must be greater"),
        ("uniform(-1, 1)", "lower must be"),
        ("turner2015(mortality)", "give an outcome type and a comparison type"),
        ("turner2015(general, pharm-placebo)", "takes no comparison"),
        ("turner2015(bla, pharm-placebo)", 'unknown outcome type "bla". Valid: "all-cause mortality"'),
        ("turner2015(mortality, bla)", "unknown comparison type"),
        ("rhodes2015('mental health')", "comparison type"),
        ("rhodes2015('mental health', pharm-placebo, mars)", "unknown medical area"),
        ('__import__("os").system("true")', "cannot parse|unknown prior"),
        ("halfnormal('0.5)", "unterminated quote"),
        (3.0, "must be a string"),
    ],
)
def test_errors(text, match):
    with pytest.raises(SpecError, match=match):
        parse_prior(text)


def test_target_check():
    assert parse_prior("halfnormal(1)", target="scale").target == "scale"
    with pytest.raises(SpecError, match="is a scale prior, but a location prior is needed"):
        parse_prior("halfnormal(1)", target="location")


# --- published tables -------------------------------------------------------------------------

def test_turner_table_shape_and_spot_values():
    table = turner2015_table()
    assert len(table) == 16 * 5 + 1  # Table IV: 16 outcome types x 5 comparison types; general
    assert table[("general", "any")] == (-2.56, 1.74)
    # Turner et al. 2015, Table IV (log tau^2 ~ N(mu, sigma^2))
    assert table[("all-cause mortality", "pharmacological vs placebo/control")] == (-3.95, 1.34)
    assert table[("subjective outcomes (various)", "non-pharmacological vs non-pharmacological")] == (-2.26, 1.45)


def test_rhodes_table_shape_and_spot_values():
    table = rhodes2015_table()
    assert len(table) == 8 * 3 * 3 + 1
    assert table[("general", "any", "any")] == (-3.44, 2.59, 5.0)
    assert table[("obstetric outcome", "pharmacological vs placebo/control", "other")] == (-4.13, 2.34, 5.0)


def test_list_priors_registry():
    reg = list_priors()
    assert {"halfnormal", "halfcauchy", "halft", "uniform", "exponential", "lognormal", "lognormal_tau2",
            "logt_tau2", "turner2015", "rhodes2015", "jeffreys", "normal", "flat", "student_t"} <= set(reg)
    assert len(reg["turner2015"].settings) == 81
    for setting in reg["turner2015"].settings + reg["rhodes2015"].settings:
        assert parse_prior(setting).text == setting
    for entry in reg.values():
        d = entry.to_dict()
        assert d["source"] and d["doc"]
        assert parse_prior(entry.example).name == entry.name


def _additive_residuals(means: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """Residuals of a two-way additive fit (row + column effects) by medians (robust to a typo)."""
    rows = sorted({r for r, _ in means})
    cols = sorted({c for _, c in means})
    m = np.array([[means[(r, c)] for c in cols] for r in rows])
    col_eff = np.median(m - m[:, [0]], axis=0)
    row_eff = np.median(m - col_eff, axis=1)
    res = m - row_eff[:, None] - col_eff[None, :]
    return {(r, c): float(res[i, j]) for i, r in enumerate(rows) for j, c in enumerate(cols)}


def test_turner_table_is_additive_as_published():
    # Turner et al. fitted outcome-type and comparison-type effects additively on log tau^2, so
    # the printed means (2 decimals) are additive up to rounding: a transcription check.
    table = {k: v[0] for k, v in turner2015_table().items() if k[0] != "general"}
    res = _additive_residuals(table)
    assert max(abs(v) for v in res.values()) <= 0.015


def test_rhodes_table_additivity_and_flagged_cells():
    # Same check for Rhodes et al. (additive outcome, comparison and area effects): every cell fits
    # within rounding except the cells whose printed value is flagged in the CSV's note column.
    table = rhodes2015_table()
    flagged = set()
    for area in ("other", "respiratory", "cancer"):
        means = {(o, c): v[0] for (o, c, a), v in table.items() if a == area}
        res = _additive_residuals(means)
        flagged |= {(o, c, area) for (o, c), v in res.items() if abs(v) > 0.015}
    assert flagged == {
        ("mental health outcome", "non-pharmacological (any)", "other"),
        ("internal and external structure-related outcome", "pharmacological vs placebo/control", "cancer"),
    }
