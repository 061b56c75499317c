"""Median / quartile / range -> mean / SD conversions.

metafor 3.8.1 (the version pinned here) has no ``conv.fivenum()`` (added in 4.x), so
there is no metafor oracle for these yet: ``make_escalc.R`` pins it automatically
once the installed metafor has it, and :func:`test_conv_fivenum_pins` then compares.
Until then the checks are (1) Table 1 of Wan et al. (2014), (2) the large-sample
rule of the Cochrane Handbook, (3) the formulas as printed, evaluated by hand, and
(4) a seeded simulation of the papers' claims (near-unbiased SDs; Luo's weights
beat Wan's equal weights in mean squared error).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from bayesmeta.effects.conversions import (
    MEAN_METHODS,
    SD_METHODS,
    blom_eta,
    blom_xi,
    estimate_mean_sd,
    hozo_mean_s1,
    hozo_sd_s1,
    luo_mean_s1,
    luo_mean_s2,
    luo_mean_s3,
    scenario,
    wan_mean_s1,
    wan_mean_s2,
    wan_mean_s3,
    wan_sd_s1,
    wan_sd_s2,
    wan_sd_s3,
)

PINS = json.loads((Path(__file__).parent / "reference" / "escalc.json").read_text(encoding="utf-8"))
Z = NormalDist().inv_cdf

# Wan, Wang, Liu & Tong (2014), BMC Med Res Methodol 14:135, Table 1: xi(n) = 2 E(Z_(n)),
# the expected range of n standard normal draws, for n = 1..50 (3 decimals).
WAN_TABLE1 = [
    0.000, 1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078,
    3.173, 3.259, 3.336, 3.407, 3.472, 3.532, 3.588, 3.640, 3.689, 3.735,
    3.778, 3.819, 3.858, 3.895, 3.931, 3.964, 3.997, 4.027, 4.057, 4.086,
    4.113, 4.139, 4.165, 4.189, 4.213, 4.236, 4.259, 4.280, 4.301, 4.322,
    4.341, 4.361, 4.379, 4.398, 4.415, 4.433, 4.450, 4.466, 4.482, 4.498,
]

RTOL_FORMULA = 1e-12  # same formula, evaluated twice: rounding only


def test_blom_xi_approximates_wan_table1() -> None:
    """Wan et al. eq. (9) replaces the exact xi(n) of their Table 1 by Blom's approximation.

    Measured accuracy: 4.5 % at n = 2, below 0.5 % from n = 10 to 50 (the table's
    3-decimal rounding is 0.01-0.04 %).
    """
    n = np.arange(1, 51)
    table = np.array(WAN_TABLE1)
    xi = blom_xi(n)
    assert xi[0] == 0.0 and table[0] == 0.0
    rel = np.abs(xi[1:] / table[1:] - 1)
    assert rel.max() < 0.05
    assert rel[8:].max() < 0.005  # n >= 10
    assert np.all(np.diff(xi) > 0)


def test_iqr_rule_of_the_cochrane_handbook() -> None:
    """Cochrane Handbook (v6, section 6.5.2.5): for large normal samples SD ~ IQR / 1.35."""
    assert blom_eta(1e8) == pytest.approx(1.35, abs=0.005)  # the Handbook rounds to 2 decimals
    assert wan_sd_s2(10.0, 12.0, 23.5, 1e8) == pytest.approx(13.5 / 1.349, rel=1e-3)


def test_formulas_as_printed() -> None:
    """Each estimator at (a, q1, m, q3, b) = (2, 5, 7, 10, 20), n = 30, evaluated by hand."""
    a, q1, m, q3, b, n = 2.0, 5.0, 7.0, 10.0, 20.0, 30
    w = 4 / (4 + 30**0.75)
    assert luo_mean_s1(a, m, b, n) == pytest.approx(w * 11 + (1 - w) * 7, rel=RTOL_FORMULA)
    w = 0.7 + 0.39 / 30
    assert luo_mean_s2(q1, m, q3, n) == pytest.approx(w * 7.5 + (1 - w) * 7, rel=RTOL_FORMULA)
    w1, w2 = 2.2 / (2.2 + 30**0.75), 0.7 - 0.72 / 30**0.55
    assert luo_mean_s3(a, q1, m, q3, b, n) == pytest.approx(w1 * 11 + w2 * 7.5 + (1 - w1 - w2) * 7,
                                                            rel=RTOL_FORMULA)
    assert wan_mean_s1(a, m, b, n) == 9.0  # (2 + 14 + 20) / 4
    assert wan_mean_s2(q1, m, q3, n) == pytest.approx(22 / 3)
    assert wan_mean_s3(a, q1, m, q3, b, n) == 8.25  # (2 + 10 + 14 + 20 + 20) / 8
    xi = 2 * Z((30 - 0.375) / 30.25)
    eta = 2 * Z((0.75 * 30 - 0.125) / 30.25)
    assert wan_sd_s1(a, m, b, n) == pytest.approx(18 / xi, rel=RTOL_FORMULA)
    assert wan_sd_s2(q1, m, q3, n) == pytest.approx(5 / eta, rel=RTOL_FORMULA)
    assert wan_sd_s3(a, q1, m, q3, b, n) == pytest.approx((18 / xi + 5 / eta) / 2, rel=RTOL_FORMULA)


def test_hozo_sample_size_rules() -> None:
    """Hozo et al. (2005), abstract: mean by formula up to n = 25, median above; SD by
    formula up to n = 15, range/4 up to 70, range/6 above."""
    a, m, b = 1.0, 3.0, 11.0
    assert hozo_mean_s1(a, m, b, 25) == pytest.approx((1 + 6 + 11) / 4)
    assert hozo_mean_s1(a, m, b, 26) == 3.0
    small = math.sqrt(((1 - 6 + 11) ** 2 / 4 + 10**2) / 12)
    assert hozo_sd_s1(a, m, b, 15) == pytest.approx(small, rel=RTOL_FORMULA)
    assert hozo_sd_s1(a, m, b, 16) == 2.5
    assert hozo_sd_s1(a, m, b, 70) == 2.5
    assert hozo_sd_s1(a, m, b, 71) == pytest.approx(10 / 6)


def test_simulation_supports_the_papers_claims() -> None:
    """Normal samples of n = 4Q + 1 = 41 (Wan et al.'s set-up), 20 000 replicates, seed 2018.

    - Wan's SDs are nearly unbiased for normal data (their Results): within 1 % of sigma
      (Monte Carlo SE about 0.1 %).
    - Hozo's range/4 (their rule for 15 < n <= 70) overestimates sigma at n = 41 by
      about 8 % (Wan et al.'s criticism).
    - Luo et al.'s weights give a smaller mean squared error than Wan's for S1 and S3.
    """
    rng = np.random.default_rng(2018)
    q, mu, sigma, reps = 10, 50.0, 10.0, 20_000
    n = 4 * q + 1
    x = np.sort(rng.normal(mu, sigma, size=(reps, n)), axis=1)
    a, q1, m, q3, b = x[:, 0], x[:, q], x[:, 2 * q], x[:, 3 * q], x[:, -1]
    for sd in (wan_sd_s1(a, m, b, n), wan_sd_s2(q1, m, q3, n), wan_sd_s3(a, q1, m, q3, b, n)):
        assert abs(sd.mean() / sigma - 1) < 0.01
    assert 0.05 < hozo_sd_s1(a, m, b, n).mean() / sigma - 1 < 0.12

    def mse(est: np.ndarray) -> float:
        return float(np.mean((est - mu) ** 2))

    assert mse(luo_mean_s1(a, m, b, n)) < 0.8 * mse(wan_mean_s1(a, m, b, n))
    assert mse(luo_mean_s3(a, q1, m, q3, b, n)) < 0.95 * mse(wan_mean_s3(a, q1, m, q3, b, n))
    for est in (luo_mean_s1(a, m, b, n), luo_mean_s2(q1, m, q3, n), luo_mean_s3(a, q1, m, q3, b, n)):
        assert abs(est.mean() - mu) < 4 * est.std() / math.sqrt(reps)  # unbiased by symmetry


def test_estimate_mean_sd_picks_the_richest_scenario() -> None:
    five = {"min": 2.0, "q1": 5.0, "med": 7.0, "q3": 10.0, "max": 20.0, "n": 30}
    mean, sd, text = estimate_mean_sd(five)
    assert scenario(five) == "S3" and text.startswith("S3 (min, q1, med, q3, max)")
    assert mean == pytest.approx(luo_mean_s3(2.0, 5.0, 7.0, 10.0, 20.0, 30))
    assert sd == pytest.approx(wan_sd_s3(2.0, 5.0, 7.0, 10.0, 20.0, 30))
    quart = {"q1": 5.0, "med": 7.0, "q3": 10.0, "n": 30}
    assert scenario(quart) == "S2" and estimate_mean_sd(quart)[2].startswith("S2")
    rng_only = {"min": 2.0, "med": 7.0, "max": 20.0, "n": 30}
    mean, sd, text = estimate_mean_sd(rng_only, mean_method="hozo2005", sd_method="hozo2005")
    assert (mean, sd) == (7.0, 4.5) and "Hozo" in text  # n = 30: median, range/4
    with pytest.raises(ValueError, match="needs min, med, max"):
        estimate_mean_sd(quart, mean_method="hozo2005", sd_method="hozo2005")
    assert scenario({"med": 1.0, "n": 3}) is None
    assert set(MEAN_METHODS) == {"luo2018", "wan2014", "hozo2005"} and set(SD_METHODS) == {"wan2014", "hozo2005"}


def test_conv_fivenum_pins() -> None:
    """Compared with metafor's conv.fivenum() whenever the pinned metafor has it."""
    cases = PINS["conv_fivenum"]
    assert PINS["has_conv_fivenum"] == bool(cases)
    for case in cases:
        d = case["data"]
        for i in range(len(d["n"])):
            summary = {k: np.nan if d[src][i] is None else float(d[src][i])
                       for k, src in (("min", "min"), ("q1", "q1"), ("med", "median"), ("q3", "q3"), ("max", "max"))}
            summary["n"] = float(d["n"][i])
            mean, sd, _ = estimate_mean_sd(summary)
            assert mean == pytest.approx(case["mean"][i], rel=1e-10)
            assert sd == pytest.approx(case["sd"][i], rel=1e-10)
