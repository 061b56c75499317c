"""The exact normal–normal engine against published bayesmeta results and brute-force 2-D quadrature."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from bayesmeta._json import dumps
from bayesmeta.errors import InputError, SpecError
from bayesmeta.exact import ExactNormalNormal, typical_within_variance
from bayesmeta.priors import jeffreys_logpdf, parse_prior

# Eight schools (Rubin 1981), as printed in the bayesmeta vignette and in BDA3 Table 5.2.
SCHOOLS = list("ABCDEFGH")
Y8 = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])
SE8 = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6])

# ------------------------------------------------------------------------------------------------
# (a) Published results: vignette "bayesmeta" of the R package bayesmeta (C. Röver), versions 2.3
# (2018-10-11) to 3.x, sections "A simple example" and "More detailed analysis", printed R output:
#   schools.example.1: mu ~ N(0, 50²), tau ~ half-Cauchy(25)
#   schools.example.2: default priors (uniform on tau, improper; flat on mu)
# "95% lower/upper" are shortest intervals (the vignette says so).
# ------------------------------------------------------------------------------------------------

# bayesmeta computes tau's marginal by direct numerical integration and prints 7 significant
# digits: agreement to half a unit in the 7th digit is expected.
RTOL_PRINTED_TAU = 5e-7
# bayesmeta represents p(mu|y), the predictive and the shrinkage estimates by its DIRECT normal
# mixture (KL bound delta = 0.01 between neighbouring components; Röver 2020, Sec. 3.3), an
# approximation; our values agree with brute-force quadrature to 1e-9 (tests below), and differ
# from the printed DIRECT values by < 0.1% of the posterior sd for mu and < 0.5% for
# theta_new / shrinkage (measured maxima: 5.7e-4 sd for mu, 4.8e-3 sd for the mode of theta_A).
SD_FRACTION_DIRECT_MU = 1e-3
SD_FRACTION_DIRECT_THETA = 5e-3

VIGNETTE = {
    ("halfcauchy(25)", "normal(0, 50)"): {
        "tau": {"mode": 0.0, "median": 4.758539, "mean": 5.884511, "sd": 4.869904,
                "shortest": (0.0, 15.165894), "central": (0.2199559, 18.0531718), "q95": 15.16589},
        "mu": {"mode": 7.929503, "median": 7.962961, "mean": 7.985729, "sd": 4.995762,
               "shortest": (-1.823353, 17.824562), "q95": 16.11009, "p_positive": 0.9487521},
        "theta_new": {"mode": 7.865547, "median": 7.926819, "mean": 7.985729, "sd": 9.126767,
                      "shortest": (-10.623526, 26.827377)},
        "theta": {
            "A": {"mode": 8.845856, "median": 10.093581, "mean": 11.095255, "sd": 7.901084,
                  "shortest": (-3.209562, 28.169723)},
            "G": {"mode": 8.933348, "median": 9.786985, "mean": 10.336032, "sd": 6.631039,
                  "shortest": (-2.138807, 24.230908)},
            "H": {"mode": 8.023126, "median": 8.266594, "mean": 8.474644, "sd": 7.456906,
                  "shortest": (-6.528854, 24.110315)},
        },
    },
    ("uniform(0, inf)", "flat"): {
        "tau": {"mode": 0.0, "median": 5.227732, "mean": 6.585992, "sd": 5.685974,
                "shortest": (0.0, 17.265797)},
        "mu": {"mode": 8.007138, "median": 8.055861, "mean": 8.092138, "sd": 5.246683,
               "shortest": (-2.176157, 18.406330)},
        "theta_new": {"mode": 7.927789, "median": 8.008111, "mean": 8.092138, "sd": 10.148132,
                      "shortest": (-12.511817, 29.014749)},
    },
}


@pytest.fixture(scope="module")
def schools_posteriors():
    return {
        key: ExactNormalNormal(Y8, SE8**2, tau_prior=key[0], mu_prior=key[1], labels=SCHOOLS).fit()
        for key in VIGNETTE
    }


@pytest.mark.parametrize("key", list(VIGNETTE), ids=["halfcauchy25-normal50", "uniform-flat"])
def test_tau_matches_bayesmeta_vignette(schools_posteriors, key):
    post, ref = schools_posteriors[key], VIGNETTE[key]["tau"]
    tau = post.tau
    assert tau.mode() == ref["mode"]
    for stat in ("median", "mean", "sd"):
        assert getattr(tau, stat) == pytest.approx(ref[stat], rel=RTOL_PRINTED_TAU), stat
    lo, hi = tau.interval(0.95, "shortest")
    assert lo == 0.0
    assert hi == pytest.approx(ref["shortest"][1], rel=RTOL_PRINTED_TAU)
    if "central" in ref:
        np.testing.assert_allclose(tau.interval(0.95, "central"), ref["central"], rtol=RTOL_PRINTED_TAU)
        assert float(tau.ppf(0.95)) == pytest.approx(ref["q95"], rel=RTOL_PRINTED_TAU)


def _close_in_sd(value, printed, sd, fraction, what):
    assert abs(value - printed) <= fraction * sd, f"{what}: {value} vs printed {printed}"


@pytest.mark.parametrize("key", list(VIGNETTE), ids=["halfcauchy25-normal50", "uniform-flat"])
def test_mu_and_prediction_match_bayesmeta_vignette(schools_posteriors, key):
    post = schools_posteriors[key]
    for name, frac in (("mu", SD_FRACTION_DIRECT_MU), ("theta_new", SD_FRACTION_DIRECT_THETA)):
        dist, ref = getattr(post, name), VIGNETTE[key][name]
        sd = dist.sd
        for stat in ("median", "mean", "sd"):
            _close_in_sd(getattr(dist, stat), ref[stat], sd, frac, f"{name}.{stat}")
        _close_in_sd(dist.mode(), ref["mode"], sd, frac, f"{name}.mode")
        for got, printed in zip(dist.interval(0.95, "shortest"), ref["shortest"], strict=True):
            _close_in_sd(got, printed, sd, frac, f"{name}.shortest")
    ref = VIGNETTE[key]["mu"]
    if "p_positive" in ref:
        assert post.p_mu_positive == pytest.approx(ref["p_positive"], abs=1e-4)
        _close_in_sd(float(post.mu.ppf(0.95)), ref["q95"], post.mu.sd, SD_FRACTION_DIRECT_MU, "mu.q95")


def test_shrinkage_matches_bayesmeta_vignette(schools_posteriors):
    key = ("halfcauchy(25)", "normal(0, 50)")
    post = schools_posteriors[key]
    for label, ref in VIGNETTE[key]["theta"].items():
        th = post.theta(label)
        for stat in ("median", "mean", "sd"):
            _close_in_sd(getattr(th, stat), ref[stat], th.sd, SD_FRACTION_DIRECT_THETA, f"{label}.{stat}")
        _close_in_sd(th.mode(), ref["mode"], th.sd, SD_FRACTION_DIRECT_THETA, f"{label}.mode")
        for got, printed in zip(th.interval(0.95, "shortest"), ref["shortest"], strict=True):
            _close_in_sd(got, printed, th.sd, SD_FRACTION_DIRECT_THETA, f"{label}.shortest")


# ------------------------------------------------------------------------------------------------
# (b) Brute force: the joint posterior p(mu, tau | y) ∝ Π N(y_i | mu, v_i + tau²) p(mu) p(tau)
# coded directly with scipy.stats on a tensor Gauss–Legendre grid (no analytic integration of mu),
# marginals by summation, CDFs by composite Gauss–Legendre, quantiles by brentq.
# ------------------------------------------------------------------------------------------------

# Both sides are quadratures accurate to ~1e-10; 1e-5 (the brief's target) leaves ample room.
TOL_BRUTE = 1e-5


def _gl_composite(a: float, b: float, panels: int, order: int = 16) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, panels + 1)
    h = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    return (mid[:, None] + h[:, None] * x).ravel(), (h[:, None] * w).ravel()


class _Cumulative:
    """CDF of a density on [a, b] by composite Gauss–Legendre (exact pdf at every node)."""

    def __init__(self, pdf, a: float, b: float, panels: int, order: int = 12):
        self.pdf, self.order = pdf, order
        self.edges = np.linspace(a, b, panels + 1)
        x, w = _gl_composite(a, b, panels, order)
        self.cum = np.concatenate([[0.0], np.cumsum((pdf(x) * w).reshape(panels, order).sum(1))])

    def __call__(self, q: float) -> float:
        i = int(np.clip(np.searchsorted(self.edges, q) - 1, 0, len(self.edges) - 2))
        x, w = _gl_composite(self.edges[i], q, 1, self.order)
        return float(self.cum[i] + self.pdf(x) @ w)


class BruteForce:
    """Independent 2-D quadrature of the normal–normal posterior.

    The joint density ``Π N(y_i | mu, v_i + tau²) p(mu) p(tau)`` is coded directly and evaluated
    on a tensor grid (``mu``: composite Gauss–Legendre in ``x`` with
    ``mu = centre + sd tan(pi (x - 1/2))``; ``tau``: Gauss–Legendre in ``t = tau/(c + tau)``). Marginal densities integrate the joint numerically
    over the other parameter; CDFs integrate those densities. For variables whose conditional
    law given (mu, tau) is a near point mass at small tau (theta_new, theta_i), the conditional
    mean and sd of mu given tau are computed numerically on the grid and the CDF is
    ``E_tau[Φ((q - m(tau)) / s(tau))]`` (normality of mu | tau, y holds in this conjugate model).
    """

    def __init__(self, y, v, tau_prior: str, mu_prior: str, *, tau_scale: float, mu_center: float,
                 mu_sd: float, tau_upper: float | None = None):
        self.y, self.v = np.asarray(y, float), np.asarray(v, float)
        self.tp, self.mp = parse_prior(tau_prior), parse_prior(mu_prior)
        t, wt = _gl_composite(0.0, 1.0, 40, 12)
        if tau_upper is None:  # tau = c t / (1 - t)
            self.tau = tau_scale * t / (1.0 - t)
            self.wtau = wt * tau_scale / (1.0 - t) ** 2
        else:
            self.tau, self.wtau = tau_upper * t, wt * tau_upper
        self.mu_a = mu_center - 30.0 * mu_sd  # lower limit of CDF integrals
        x, wx = _gl_composite(0.0, 1.0, 64, 10)  # mu = centre + sd tan(pi (x - 1/2)): whole line
        self.mu = mu_center + mu_sd * np.tan(np.pi * (x - 0.5))
        self.wmu = wx * mu_sd * np.pi / np.cos(np.pi * (x - 0.5)) ** 2
        self.log_c = 0.0
        lj = self.log_joint(self.mu[:, None], self.tau[None, :])
        self.log_c = float(lj.max())
        self.J = np.exp(lj - self.log_c)  # joint on the grid, scaled
        self.Z = float(self.wmu @ self.J @ self.wtau)
        pt = self.wmu @ self.J  # p(tau) up to a constant, at the tau nodes
        self.tau_w = pt * self.wtau / self.Z  # quadrature weights of p(tau | y)
        safe = np.where(pt > 0, pt, 1.0)  # p(tau) underflows far out in the tail (weight 0)
        self.m_tau = (self.wmu * self.mu) @ self.J / safe  # E[mu | tau, y], numerically
        self.s_tau = np.sqrt(np.maximum((self.wmu * self.mu**2) @ self.J / safe - self.m_tau**2, 1e-300))

    def log_joint(self, mu, tau):
        mu, tau = np.broadcast_arrays(mu, tau)
        var = self.v + tau[..., None] ** 2  # y_i | mu, tau ~ N(mu, v_i + tau²)
        ll = -0.5 * (np.log(2 * np.pi * var) + (self.y - mu[..., None]) ** 2 / var).sum(-1)
        lpt = jeffreys_logpdf(tau, self.v) if self.tp.data_dependent else self.tp.logpdf(tau)
        lpm = np.zeros_like(mu) if self.mp.family == "flat" else stats.norm.logpdf(mu, *self.mp.params)
        return ll + lpt + lpm - self.log_c

    @property
    def log_evidence(self) -> float:
        return self.log_c + math.log(self.Z)

    def pdf_mu(self, m):
        return np.exp(self.log_joint(np.asarray(m)[:, None], self.tau[None, :])) @ self.wtau / self.Z

    def pdf_tau(self, t):
        return self.wmu @ np.exp(self.log_joint(self.mu[:, None], np.asarray(t)[None, :])) / self.Z

    def expect(self, g):  # E[g(mu, tau)] over the grid
        return float(self.wmu @ (self.J * g(self.mu[:, None], self.tau[None, :])) @ self.wtau / self.Z)

    def cdf_mu(self, upper: float):
        return _Cumulative(self.pdf_mu, self.mu_a, upper, 60)

    def cdf_tau(self, upper: float):
        return _Cumulative(self.pdf_tau, 0.0, upper, 50)

    def cdf_conditional_normal(self, m_of_tau, s_of_tau):
        """``q -> E_tau[Φ((q - m(tau)) / s(tau))]`` with m, s from the grid's conditional moments."""
        m, s = m_of_tau(self.m_tau, self.s_tau, self.tau), s_of_tau(self.m_tau, self.s_tau, self.tau)
        return lambda q: float(special.ndtr((q - m) / s) @ self.tau_w)

    @staticmethod
    def quantile(cdf, p, lo, hi):
        return optimize.brentq(lambda x: cdf(x) - p, lo, hi, xtol=1e-12)


CASES = [
    # (tau prior, mu prior, brute-force tau scale, tau upper bound or None)
    ("halfcauchy(25)", "normal(0, 50)", 8.0, None),
    ("uniform(0, inf)", "flat", 8.0, None),
    ("halfnormal(5)", "flat", 5.0, None),
    ("lognormal_tau2(3, 1)", "normal(5, 10)", 5.0, None),
    ("jeffreys", "flat", 8.0, None),
    ("uniform(0, 5)", "normal(0, 100)", None, 5.0),
    ("exponential(0.2)", "flat", 8.0, None),
]


@pytest.fixture(scope="module", params=CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def pair(request):
    tp, mp, scale, upper = request.param
    post = ExactNormalNormal(Y8, SE8**2, tau_prior=tp, mu_prior=mp, labels=SCHOOLS).fit()
    bf = BruteForce(Y8, SE8**2, tp, mp, tau_scale=scale or 1.0, mu_center=post.mu.median,
                    mu_sd=post.mu.sd, tau_upper=upper)
    return post, bf


def test_brute_force_tau(pair):
    post, bf = pair
    assert post.tau.mean == pytest.approx(bf.expect(lambda m, t: t), abs=TOL_BRUTE)
    assert post.tau.sd**2 + post.tau.mean**2 == pytest.approx(bf.expect(lambda m, t: t * t), rel=TOL_BRUTE)
    hi = float(post.tau.ppf(0.99))
    cdf = bf.cdf_tau(hi)
    for p in (0.025, 0.5, 0.975):
        q = bf.quantile(cdf, p, 1e-9, hi)
        assert float(post.tau.ppf(p)) == pytest.approx(q, abs=TOL_BRUTE), p
    t = np.array([0.5, 3.0, 10.0])
    t = t[t < post.tau.upper]
    np.testing.assert_allclose(post.tau.pdf(t), bf.pdf_tau(t), rtol=TOL_BRUTE)


def test_brute_force_mu(pair):
    post, bf = pair
    assert post.mu.mean == pytest.approx(bf.expect(lambda m, t: m), abs=TOL_BRUTE)
    assert post.mu.sd == pytest.approx(math.sqrt(bf.expect(lambda m, t: (m - post.mu.mean) ** 2)),
                                       abs=TOL_BRUTE)
    lo, hi = float(post.mu.ppf(1e-4)), float(post.mu.ppf(0.99))
    cdf = bf.cdf_mu(hi)
    for p in (0.025, 0.5, 0.975):
        assert float(post.mu.ppf(p)) == pytest.approx(bf.quantile(cdf, p, lo, hi), abs=TOL_BRUTE)
    if lo < 0.0 < hi:
        assert post.p_mu_positive == pytest.approx(1.0 - cdf(0.0), abs=TOL_BRUTE)
    x = np.array([-5.0, 8.0, 20.0])
    np.testing.assert_allclose(post.mu.pdf(x), bf.pdf_mu(x), rtol=TOL_BRUTE)


def test_brute_force_prediction_and_shrinkage(pair):
    post, bf = pair
    v_a, y_a = SE8[0] ** 2, Y8[0]
    # Means and sds from the joint grid alone (smooth integrands):
    #   theta_new | mu, tau ~ N(mu, tau²);  theta_A | mu, tau, y_A ~ N(b mu + (1-b) y_A, (1-b) v_A)
    def b(t):
        return v_a / (v_a + t**2)

    mean_new, second_new = bf.expect(lambda m, t: m + 0 * t), bf.expect(lambda m, t: m**2 + t**2)
    mean_a = bf.expect(lambda m, t: b(t) * m + (1 - b(t)) * y_a)
    second_a = bf.expect(lambda m, t: (b(t) * m + (1 - b(t)) * y_a) ** 2 + (1 - b(t)) * v_a)
    # Quantiles from the numerically computed conditional moments of mu given tau:
    cdf_new = bf.cdf_conditional_normal(lambda m, s, t: m, lambda m, s, t: np.sqrt(s**2 + t**2))
    cdf_a = bf.cdf_conditional_normal(lambda m, s, t: b(t) * m + (1 - b(t)) * y_a,
                                      lambda m, s, t: np.sqrt((1 - b(t)) * v_a + b(t) ** 2 * s**2))
    for dist, mean, second, cdf in ((post.theta_new, mean_new, second_new, cdf_new),
                                    (post.theta("A"), mean_a, second_a, cdf_a)):
        assert dist.mean == pytest.approx(mean, abs=TOL_BRUTE)
        assert dist.sd == pytest.approx(math.sqrt(second - mean**2), abs=TOL_BRUTE)
        lo, hi = dist.mean - 30 * dist.sd, dist.mean + 30 * dist.sd
        for p in (0.025, 0.5, 0.975):
            assert float(dist.ppf(p)) == pytest.approx(bf.quantile(cdf, p, lo, hi), abs=TOL_BRUTE), p


def test_brute_force_evidence(pair):
    post, bf = pair
    assert post.log_evidence == pytest.approx(bf.log_evidence, abs=TOL_BRUTE)
    proper = post.model.tau_prior.proper and post.model.mu_prior.proper
    assert (post.log_marginal_likelihood is not None) == proper


# ------------------------------------------------------------------------------------------------
# Internal consistency, transforms, edge cases
# ------------------------------------------------------------------------------------------------

def test_distribution_functions_are_consistent(schools_posteriors):
    post = schools_posteriors[("halfcauchy(25)", "normal(0, 50)")]
    p = np.array([0.01, 0.3, 0.5, 0.9, 0.999])
    for dist in (post.tau, post.tau2, post.i2, post.mu, post.theta_new, post.theta(3)):
        np.testing.assert_allclose(dist.cdf(dist.ppf(p)), p, atol=1e-10)
        positive = dist.lower == 0.0
        for (pa, pb), panels in (((0.001, 0.999), 100), ((0.2, 0.7), 25)):
            a, b = (float(v) for v in dist.ppf(np.array([pa, pb])))
            if positive:  # integrate p(x) x d(log x): tau² and I² densities blow up at 0
                u, w = _gl_composite(math.log(a), math.log(b), panels)
                mass = float((dist.pdf(np.exp(u)) * np.exp(u)) @ w)
            else:
                x, w = _gl_composite(a, b, panels)
                mass = float(dist.pdf(x) @ w)
            assert mass == pytest.approx(pb - pa, abs=1e-9)
    # tau2 and I² are monotone transforms of tau
    s2 = typical_within_variance(SE8**2)
    q_tau = post.tau.ppf(p)
    np.testing.assert_allclose(post.tau2.ppf(p), q_tau**2, rtol=1e-12)
    np.testing.assert_allclose(post.i2.ppf(p), 100 * q_tau**2 / (q_tau**2 + s2), rtol=1e-12)
    assert post.tau2.mean == pytest.approx(post.tau.sd**2 + post.tau.mean**2, rel=1e-12)


def test_typical_within_variance_formula():
    v = np.array([0.1, 0.4, 0.25])
    w = 1 / v
    assert typical_within_variance(v) == pytest.approx(2 * w.sum() / (w.sum() ** 2 - (w**2).sum()))
    assert typical_within_variance(np.full(5, 0.3)) == pytest.approx(0.3)
    assert typical_within_variance(np.array([0.7])) == 0.7


def test_heavy_tails_and_improper_posteriors():
    y, v = np.array([0.1, 0.5, -0.2]), np.array([0.04, 0.09, 0.05])
    # k = 3, flat mu, uniform tau: p(tau|y) ~ tau^-2 in the tail: proper, infinite mean
    post = ExactNormalNormal(y, v, tau_prior="uniform(0, inf)", mu_prior="flat").fit()
    assert math.isinf(post.tau.mean) and math.isinf(post.tau.sd) and math.isinf(post.mu.sd)
    assert math.isfinite(post.tau.median) and math.isfinite(post.mu.median)
    # the tail ~ tau^-2 gives P(tau > x) ~ C/x: check x P(tau > x) converges
    x = np.array([1e3, 1e4])
    tail = x * (1 - post.tau.cdf(x))
    assert tail[1] == pytest.approx(tail[0], rel=2e-3)
    # k = 2: improper
    with pytest.raises(SpecError, match="improper"):
        ExactNormalNormal(y[:2], v[:2], tau_prior="uniform(0, inf)", mu_prior="flat").fit()
    # a proper tau prior makes k = 1 fine
    one = ExactNormalNormal([0.3], [0.05], tau_prior="halfnormal(0.5)", mu_prior="normal(0, 1)").fit()
    assert one.mu.mean == pytest.approx(
        BruteForce([0.3], [0.05], "halfnormal(0.5)", "normal(0, 1)", tau_scale=0.5, mu_center=0.2,
                   mu_sd=0.3).expect(lambda m, t: m), abs=TOL_BRUTE)


def test_singular_and_narrow_tau_priors():
    # logt_tau2 has a density that diverges (integrably) at tau = 0; lognormal_tau2 with s = 0.01
    # is very narrow: the engine must resolve both.
    post = ExactNormalNormal(Y8, SE8**2, tau_prior="rhodes2015(general)", mu_prior="normal(0, 10)").fit()
    assert post.tau.mode() == 0.0
    assert float(post.tau.cdf(post.tau.ppf(0.3))) == pytest.approx(0.3, abs=1e-10)
    narrow = ExactNormalNormal(Y8, SE8**2, tau_prior="lognormal_tau2(4, 0.01)", mu_prior="flat").fit()
    # tau ≈ exp(2) with log tau sd 0.005: the posterior hardly moves from the prior
    assert narrow.tau.median == pytest.approx(math.exp(2.0), rel=2e-3)
    assert narrow.tau.sd == pytest.approx(0.005 * math.exp(2.0), rel=0.02)


def test_summary_keys_and_json(schools_posteriors):
    post = schools_posteriors[("halfcauchy(25)", "normal(0, 50)")]
    s = post.summary()
    assert set(s) == {"mu", "tau", "tau2", "i2", "theta_new", "p_mu_positive", "theta"}
    for key in ("mu", "tau", "tau2", "i2", "theta_new"):
        assert set(s[key]) == {"median", "mean", "sd", "q025", "q975"}
        assert all(isinstance(v, float) for v in s[key].values())
    assert list(s["theta"]) == SCHOOLS
    assert s["theta"]["A"]["y"] == 28.39 and s["theta"]["A"]["sei"] == pytest.approx(14.9)
    d = json.loads(dumps(post.to_dict()))
    assert d["engine"] == "exact" and d["tau_prior"] == "halfcauchy(25)" and d["k"] == 8
    assert len(d["shrinkage"]) == 8 and d["shrinkage"][0]["study"] == "A"


def test_input_errors():
    with pytest.raises(InputError, match="differ in length"):
        ExactNormalNormal([1, 2], [1], tau_prior="halfnormal(1)", mu_prior="flat")
    with pytest.raises(InputError, match=r"vi\[1\] must be a finite number > 0"):
        ExactNormalNormal([1, 2], [1, 0], tau_prior="halfnormal(1)", mu_prior="flat")
    with pytest.raises(SpecError, match="normal or flat prior for mu"):
        ExactNormalNormal([1, 2], [1, 1], tau_prior="halfnormal(1)", mu_prior="student_t(3, 0, 1)")
    with pytest.raises(SpecError, match="scale prior"):
        ExactNormalNormal([1, 2], [1, 1], tau_prior="normal(0, 1)", mu_prior="flat")
    with pytest.raises(InputError, match="labels"):
        ExactNormalNormal([1, 2], [1, 1], tau_prior="halfnormal(1)", mu_prior="flat", labels=["a"])


# ------------------------------------------------------------------------------------------------
# DataTree of independent draws
# ------------------------------------------------------------------------------------------------

def test_datatree_shape_and_reproducibility(schools_posteriors):
    post = schools_posteriors[("halfcauchy(25)", "normal(0, 50)")]
    tree = post.to_datatree(draws=200, chains=4, seed=7)
    pst = tree["posterior"]
    assert dict(pst.sizes) == {"chain": 4, "draw": 200, "study": 8}
    assert set(pst.data_vars) == {"mu", "tau", "tau2", "i2", "theta", "theta_new"}
    assert list(pst["theta"].coords["study"].values) == SCHOOLS
    assert tree.attrs["engine"] == "exact" and pst.attrs["engine"] == "exact"
    np.testing.assert_array_equal(tree["observed_data"]["y"].values, Y8)
    np.testing.assert_array_equal(tree["constant_data"]["vi"].values, SE8**2)
    assert tree["log_likelihood"]["y"].dims == ("chain", "draw", "study")
    again = post.to_datatree(draws=200, chains=4, seed=7)
    for name in pst.data_vars:
        np.testing.assert_array_equal(pst[name].values, again["posterior"][name].values)
    other = post.to_datatree(draws=200, chains=4, seed=8)
    assert not np.array_equal(pst["mu"].values, other["posterior"]["mu"].values)
    np.testing.assert_allclose(pst["tau2"].values, pst["tau"].values ** 2)


def test_draws_follow_the_exact_marginals(schools_posteriors):
    post = schools_posteriors[("halfcauchy(25)", "normal(0, 50)")]
    tree = post.to_datatree(draws=1000, chains=4, seed=3)
    pst = tree["posterior"]
    n = 4000
    # Kolmogorov–Smirnov against the exact CDFs (independent draws): p-values not tiny
    for name, dist in (("tau", post.tau), ("mu", post.mu), ("theta_new", post.theta_new),
                       ("i2", post.i2)):
        draws = pst[name].values.ravel()
        assert stats.kstest(draws, dist.cdf).pvalue > 1e-3, name
        # means within 4.5 Monte Carlo standard errors
        assert abs(draws.mean() - dist.mean) < 4.5 * dist.sd / math.sqrt(n), name
    theta_a = pst["theta"].sel(study="A").values.ravel()
    assert stats.kstest(theta_a, post.theta("A").cdf).pvalue > 1e-3


def test_tail_correction_of_heavy_tailed_moments():
    # k = 4, flat mu, uniform tau: p(tau|y) ~ tau^-3, so E[tau] is finite (a large share of it
    # from far beyond the bulk) and E[tau²] diverges. Reference: 1-D quadrature of the
    # restricted likelihood Π(v+τ²)^-1/2 (Σw)^-1/2 exp(-Σw(y-ȳ_w)²/2), coded here.
    from scipy import integrate

    y, v = np.array([0.3, -0.1, 0.5, 0.2]), np.array([0.04, 0.02, 0.09, 0.05])

    def restricted(t):
        w = 1.0 / (v + t * t)
        ybar = (w * y).sum() / w.sum()
        return math.exp(-0.5 * np.log(v + t * t).sum() - 0.5 * math.log(w.sum())
                        - 0.5 * (w * (y - ybar) ** 2).sum())

    z = integrate.quad(restricted, 0, np.inf, epsabs=0, epsrel=1e-12, limit=500)[0]
    e1 = integrate.quad(lambda t: t * restricted(t), 0, np.inf, epsabs=0, epsrel=1e-12, limit=500)[0] / z
    post = ExactNormalNormal(y, v, tau_prior="uniform(0, inf)", mu_prior="flat").fit()
    assert post.tau.mean == pytest.approx(e1, rel=1e-8)
    assert math.isinf(post.tau.sd) and math.isinf(post.tau2.mean)
    assert post.log_marginal_likelihood is None


def test_log_likelihood_is_marginal_over_theta_and_loo_is_reliable() -> None:
    """The tree's log-likelihood is log N(y_i | mu, v_i + tau²) (theta_i integrated out), so PSIS-LOO
    estimates leave-one-study-out prediction with Pareto k below 0.7 on the BCG trials (13 studies,
    I² = 92%: the conditional likelihood gave k > 0.7 for 9 of them)."""
    import arviz_stats

    from bayesmeta.datasets import load_dataset
    from bayesmeta.effects import escalc

    data = escalc(load_dataset("bcg"), "RR")
    post = ExactNormalNormal(data["yi"].to_numpy(), data["vi"].to_numpy(),
                             tau_prior="halfnormal(0.5)", mu_prior="normal(0, 4)",
                             labels=list(data["label"])).fit()
    tree = post.to_datatree(draws=1000, chains=4, seed=11)
    draws = tree["posterior"]
    mu = draws["mu"].values[..., None]
    sd = np.sqrt(data["vi"].to_numpy() + draws["tau2"].values[..., None])
    expected = stats.norm.logpdf(data["yi"].to_numpy(), loc=mu, scale=sd)
    np.testing.assert_allclose(tree["log_likelihood"]["y"].values, expected, rtol=1e-12)
    loo = arviz_stats.loo(tree, pointwise=True, var_name="y")
    assert float(loo.pareto_k.max()) < 0.7
