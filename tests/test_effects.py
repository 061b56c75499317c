"""escalc() against metafor (pinned JSON) and against RevMan 5's published formulas.

The metafor pins come from ``tests/reference/make_escalc.R`` (exact R calls and
metafor's version are in the JSON); no R is needed here.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmeta.effects import (
    CC_POLICIES,
    CONVENTIONS,
    MEASURES,
    ContinuityCorrection,
    escalc,
    get_measure,
    resolve_cc,
)
from bayesmeta.effects.continuous import hedges_j_exact, hedges_j_revman
from bayesmeta.errors import DataWarning, InputError, SpecError

PINS = json.loads((Path(__file__).parent / "reference" / "escalc.json").read_text(encoding="utf-8"))
CASES = {case["id"]: case for case in PINS["cases"]}

# Same closed-form formulas as metafor; the only differences are floating-point
# rounding of differently ordered operations (largest seen: 7e-14 relative).
RTOL_METAFOR = 1e-10
# Values that are exactly 0 in exact arithmetic (e.g. the log risk ratio of a table
# with equal risks) have no meaningful relative error; 1e-13 absolute is ~500 ulp at 1.
ATOL_METAFOR = 1e-13
# Hand-computed RevMan values below are typed with 12+ significant digits.
RTOL_HAND = 1e-9


def frame(data: dict[str, list]) -> pd.DataFrame:
    """A case's data as bayesmeta sees it: index = spreadsheet row (first data row 2)."""
    df = pd.DataFrame({k: [np.nan if v is None else v for v in vals] for k, vals in data.items()})
    df.index = df.index + 2
    return df


def arr(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def run(df: pd.DataFrame, measure: str, **kwargs) -> tuple[pd.DataFrame, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = escalc(df, measure, **kwargs)
    return out, list(caught)


# --------------------------------------------------------------- metafor pins


def test_pins_record_versions_and_cover_six_datasets() -> None:
    assert PINS["metafor_version"] == "3.8.1"
    assert PINS["metadat_version"]
    datasets = {case["dataset"].split(" ")[0] for case in PINS["cases"]}
    assert len(datasets) >= 6, datasets
    assert {case["measure"] for case in PINS["cases"]} == set(MEASURES)
    for case in PINS["cases"]:
        assert case["call"].startswith("escalc(") and case["prepare"].startswith("d <- ")


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_escalc_equals_metafor(case_id: str) -> None:
    case = CASES[case_id]
    df = frame(case["data"])
    out, caught = run(df, case["measure"], cc=case["cc"])
    ryi, rvi = arr(case["yi"]), arr(case["vi"])
    # metafor returns NA for rows it cannot estimate (and vi = 0 for e.g. an
    # uncorrected double-zero RD); bayesmeta leaves those rows out with a warning.
    usable = np.isfinite(ryi) & np.isfinite(rvi) & (rvi > 0)
    assert list(out.index) == list(df.index[usable])
    np.testing.assert_allclose(out["yi"].to_numpy(), ryi[usable], rtol=RTOL_METAFOR, atol=ATOL_METAFOR)
    np.testing.assert_allclose(out["vi"].to_numpy(), rvi[usable], rtol=RTOL_METAFOR, atol=ATOL_METAFOR)
    np.testing.assert_allclose(out["sei"].to_numpy() ** 2, out["vi"].to_numpy(), rtol=1e-14)
    left_out = [d["row"] for d in out.attrs["dropped"]] + out.attrs.get("missing_rows", [])
    assert sorted(left_out) == [int(i) for i in df.index[~usable]]
    data_warnings = [w for w in caught if issubclass(w.category, DataWarning)]
    assert (len(data_warnings) > 0) == (bool(left_out) or bool(out.attrs["corrected"]))
    assert [w for w in caught if not issubclass(w.category, DataWarning)] == []
    assert out.attrs["measure"] == case["measure"]
    json.dumps(out.attrs)  # attrs must stay JSON-able


def test_metafor_zero_cell_policies_differ_where_they_should() -> None:
    """The pinned constructed table has zero cells in rows 2-6; the policies must act there only."""
    base = CASES["bcg_zero_RR_default"]
    df = frame(base["data"])
    default, _ = run(df, "RR", cc="metafor")
    assert default.attrs["corrected"] == [2, 3, 4, 5, 6]
    everywhere, _ = run(df, "RR", cc={"add": 0.5, "to": "all", "drop00": False})
    assert everywhere.attrs["corrected"] == list(range(2, 15))
    dropped, _ = run(df, "RR", cc={"add": 0.5, "to": "only0", "drop00": True})
    assert [d["row"] for d in dropped.attrs["dropped"]] == [4, 5]
    assert all("drop00" in d["reason"] for d in dropped.attrs["dropped"])


# --------------------------------------------------------------- RevMan convention (SMD)


def test_revman_smd_hand_computed() -> None:
    """RevMan 5 (Deeks & Higgins 2010, 'Standardized mean difference'): g = (m1-m2)/s (1 - 3/(4N-9)),
    SE^2 = N/(n1 n2) + g^2/(2(N-3.94)).

    Hand computation for n1 = 10, m1 = 5, sd1 = 2; n2 = 12, m2 = 4, sd2 = 3:
    s^2 = (9*4 + 11*9)/20 = 6.75, d = 1/sqrt(6.75) = 0.384900179459750,
    J = 1 - 3/79 = 0.962025316455696, g = 0.370283717050746,
    SE^2 = 22/120 + g^2/(2*18.06) = 0.183333333333333 + 0.003795948...
    """
    df = pd.DataFrame({"study": ["A", "B"], "m1i": [5.0, 0.0], "sd1i": [2.0, 1.0], "n1i": [10, 20],
                       "m2i": [4.0, 0.0], "sd2i": [3.0, 1.0], "n2i": [12, 20]}, index=[2, 3])
    out, _ = run(df, "SMD", convention="revman")
    d = 1.0 / math.sqrt(6.75)
    g = d * (1.0 - 3.0 / 79.0)
    assert g == pytest.approx(0.370283717050746, rel=RTOL_HAND)
    assert out.loc[2, "yi"] == pytest.approx(g, rel=RTOL_HAND)
    assert out.loc[2, "vi"] == pytest.approx(22.0 / 120.0 + g**2 / (2.0 * (22.0 - 3.94)), rel=RTOL_HAND)
    # equal means: g = 0 and the variance is N/(n1 n2) = 40/400
    assert out.loc[3, "yi"] == 0.0
    assert out.loc[3, "vi"] == pytest.approx(0.1, rel=RTOL_HAND)
    assert out.attrs["convention"] == "revman"


@pytest.mark.parametrize("case_id", ["normand1999_SMD", "curtis1998_SMD", "gibson2002_SMD"])
def test_revman_smd_from_metafor_g(case_id: str) -> None:
    """RevMan's g is metafor's g with the exact correction J swapped for 1 - 3/(4N - 9)."""
    case = CASES[case_id]
    df = frame(case["data"])
    out, _ = run(df, "SMD", convention="revman")
    ryi = arr(case["yi"])
    usable = np.isfinite(ryi)
    n1, n2 = arr(case["data"]["n1i"])[usable], arr(case["data"]["n2i"])[usable]
    n = n1 + n2
    m = n - 2
    j_exact = np.array([math.exp(math.lgamma(k / 2) - math.lgamma((k - 1) / 2)) / math.sqrt(k / 2) for k in m])
    g = ryi[usable] / j_exact * (1 - 3 / (4 * n - 9))
    np.testing.assert_allclose(out["yi"].to_numpy(), g, rtol=1e-9)
    np.testing.assert_allclose(out["vi"].to_numpy(), n / (n1 * n2) + g**2 / (2 * (n - 3.94)), rtol=1e-9)


def test_revman_and_exact_j_close_for_moderate_n() -> None:
    """Hedges (1981): J(m) ~ 1 - 3/(4m - 1), m = N - 2, i.e. 1 - 3/(4N - 9); within 1e-3 from N = 10."""
    n1 = np.arange(5, 200)
    rel = np.abs(hedges_j_revman(n1, n1) / hedges_j_exact(n1, n1) - 1)
    assert rel.max() < 1e-3 and rel[-1] < 1e-6


def test_md_is_the_same_under_both_conventions() -> None:
    df = frame(CASES["normand1999_MD"]["data"])
    a, _ = run(df, "MD", convention="metafor")
    b, _ = run(df, "MD", convention="revman")
    pd.testing.assert_frame_equal(a[["yi", "vi"]], b[["yi", "vi"]])


# --------------------------------------------------------------- RevMan continuity correction


def zero_table() -> pd.DataFrame:
    return frame(CASES["bcg_zero_RR_default"]["data"])  # rows 2-6 have zero cells; row 4: ai = ci = 0; row 5: bi = di = 0


def test_revman_rr_drops_no_event_tables_only() -> None:
    out, caught = run(zero_table(), "RR", cc="revman")
    assert [d["row"] for d in out.attrs["dropped"]] == [4]  # no events in both arms
    assert 5 in out.index  # all events in both arms: RR = 1 is estimable
    assert any("row 4" in str(w.message) and "not estimable" in str(w.message) for w in caught)
    ref = CASES["bcg_zero_RR_default"]  # RevMan's 0.5-to-every-cell = metafor's only0 on kept rows
    keep = [i - 2 for i in out.index]
    np.testing.assert_allclose(out["yi"], arr(ref["yi"])[keep], rtol=RTOL_METAFOR, atol=ATOL_METAFOR)
    np.testing.assert_allclose(out["vi"], arr(ref["vi"])[keep], rtol=RTOL_METAFOR)


def test_revman_or_drops_no_event_and_all_event_tables() -> None:
    out, _ = run(zero_table(), "OR", cc="revman")
    assert [d["row"] for d in out.attrs["dropped"]] == [4, 5]
    ref = CASES["bcg_zero_OR_drop00"]  # here RevMan's rule equals metafor's drop00
    usable = np.isfinite(arr(ref["yi"]))
    np.testing.assert_allclose(out["yi"], arr(ref["yi"])[usable], rtol=RTOL_METAFOR, atol=ATOL_METAFOR)
    np.testing.assert_allclose(out["vi"], arr(ref["vi"])[usable], rtol=RTOL_METAFOR)


def test_revman_rd_keeps_double_zero_and_estimates_from_raw_counts() -> None:
    df = zero_table()
    out, _ = run(df, "RD", cc="revman")
    assert out.attrs["dropped"] == [] and len(out) == len(df)
    p1 = df["ai"] / (df["ai"] + df["bi"])
    p2 = df["ci"] / (df["ci"] + df["di"])
    np.testing.assert_allclose(out["yi"], p1 - p2, rtol=1e-14, atol=1e-16)
    assert out.loc[4, "yi"] == 0.0  # double zero: RD = 0
    ref = CASES["bcg_zero_RD_default"]  # SE from the 0.5-corrected cells, as metafor's only0
    np.testing.assert_allclose(out["vi"], arr(ref["vi"]), rtol=RTOL_METAFOR)


def test_revman_rr_small_table_by_hand() -> None:
    """a = 0/10 vs c = 2/10: RevMan adds 0.5 to every cell (n becomes 11):
    log RR = log((0.5/11)/(2.5/11)) = log(0.2); SE^2 = 1/0.5 - 1/11 + 1/2.5 - 1/11."""
    df = pd.DataFrame({"study": ["A", "B"], "ai": [0, 3], "n1i": [10, 10], "ci": [2, 3], "n2i": [10, 10]},
                      index=[2, 3])
    out, caught = run(df, "RR", cc="revman", convention="revman")
    assert out.loc[2, "yi"] == pytest.approx(math.log(0.2), rel=RTOL_HAND)
    assert out.loc[2, "vi"] == pytest.approx(2.0 - 1 / 11 + 0.4 - 1 / 11, rel=RTOL_HAND)
    assert out.loc[3, "yi"] == 0.0 and out.loc[3, "vi"] == pytest.approx(1 / 3 - 1 / 10 + 1 / 3 - 1 / 10)
    assert out.attrs["corrected"] == [2]
    assert any("added 0.5" in str(w.message) and "row 2 (A)" in str(w.message) for w in caught)


def test_no_correction_leaves_zero_cell_tables_out() -> None:
    out, caught = run(zero_table(), "OR", cc="none")
    assert sorted(d["row"] for d in out.attrs["dropped"]) == [2, 3, 4, 5, 6]
    assert all("not estimable" in d["reason"] for d in out.attrs["dropped"])
    assert any(issubclass(w.category, DataWarning) for w in caught)


# --------------------------------------------------------------- policies, registry, errors


def test_cc_policies_as_data() -> None:
    assert resolve_cc("metafor") == ContinuityCorrection(0.5, "only0", False, name="metafor")
    assert resolve_cc({"add": 0.25, "to": "all", "drop00": True}) == ContinuityCorrection(0.25, "all", True)
    assert resolve_cc(CC_POLICIES["revman"]) is CC_POLICIES["revman"]
    assert CC_POLICIES["revman"].estimate_from_raw == ("RD",)
    json.dumps({k: v.to_dict() for k, v in CC_POLICIES.items()})
    with pytest.raises(SpecError, match="unknown continuity-correction setting 'addd'") as err:
        resolve_cc({"addd": 0.5})
    assert err.value.key == "effect.cc.addd"
    with pytest.raises(SpecError, match="target"):
        resolve_cc({"to": "some"})
    with pytest.raises(SpecError):
        resolve_cc({"add": -1})
    with pytest.raises(SpecError, match="unknown continuity correction 'cochrane'"):
        resolve_cc("cochrane")


def test_measure_registry_and_back_transform() -> None:
    assert set(MEASURES) == {"RR", "OR", "RD", "SMD", "MD", "GEN"}
    assert {c for c, m in MEASURES.items() if m.scale == "log"} == {"RR", "OR"}
    assert MEASURES["RR"].to_natural(math.log(2.0)) == pytest.approx(2.0, rel=1e-15)
    assert MEASURES["OR"].to_natural(np.array([0.0, math.log(0.5)])) == pytest.approx([1.0, 0.5])
    assert MEASURES["RD"].to_natural(-0.1) == -0.1
    assert MEASURES["RR"].null_natural == 1.0 and MEASURES["SMD"].null_natural == 0.0
    assert MEASURES["OR"].to_analysis(1.0) == 0.0
    json.dumps({k: m.to_dict() for k, m in MEASURES.items()})
    assert set(CONVENTIONS) == {"metafor", "revman"}
    with pytest.raises(SpecError, match="unknown measure 'HR'"):
        get_measure("HR")
    with pytest.raises(SpecError, match="unknown convention"):
        escalc(zero_table(), "RR", convention="cochrane")


def test_measure_needs_matching_data() -> None:
    df = frame(CASES["normand1999_SMD"]["data"])
    with pytest.raises(InputError, match="measure RR needs ai, n1i, ci, n2i"):
        escalc(df, "RR", source="normand.csv")


def test_escalc_fails_below_two_estimable_rows(tmp_path: Path) -> None:
    df = pd.DataFrame({"study": ["A", "B", "C"], "ai": [0, 0, 4], "n1i": [10, 10, 10], "ci": [0, 0, 3],
                       "n2i": [10, 12, 10]}, index=[2, 3, 4])
    with pytest.warns(DataWarning, match="left out 2 row"):
        with pytest.raises(InputError, match="fewer than 2 estimable rows") as err:
            escalc(df, "OR", cc="revman", source=str(tmp_path / "x.csv"))
    assert "x.csv" in str(err.value)


def test_labels_added_and_repeats_numbered() -> None:
    out, _ = run(frame(CASES["yusuf1985_OR"]["data"]), "OR")
    assert out["label"].is_unique
    assert {"Ahlmark", "Ahlmark [2]", "Ahlmark [3]"} <= set(out["label"])


def test_escalc_converts_medians_and_records_method() -> None:
    df = pd.DataFrame({
        "study": ["A", "B", "C"],
        "m1i": [10.0, np.nan, np.nan], "sd1i": [2.0, np.nan, np.nan], "n1i": [30, 41, 25],
        "med1i": [np.nan, 9.0, 11.0], "q1_1i": [np.nan, 7.5, np.nan], "q3_1i": [np.nan, 11.0, np.nan],
        "min1i": [np.nan, np.nan, 4.0], "max1i": [np.nan, np.nan, 17.0],
        "m2i": [8.0, 8.5, 9.0], "sd2i": [2.5, 2.0, 3.0], "n2i": [30, 40, 25],
    }, index=[2, 3, 4])
    with pytest.warns(DataWarning, match="estimated means and SDs from medians"):
        out = escalc(df, "MD")
    # row 2 reported mean/SD: untouched
    assert out.loc[2, "yi"] == 2.0 and out.loc[2, "vi"] == pytest.approx(4 / 30 + 6.25 / 30)
    # row 3, S2 (q1, med, q3), n = 41: Luo mean w = 0.7 + 0.39/41, Wan SD = IQR / (2 z((0.75*41 - 0.125)/41.25))
    w = 0.7 + 0.39 / 41
    assert out.loc[3, "m1i"] == pytest.approx(w * (7.5 + 11.0) / 2 + (1 - w) * 9.0, rel=1e-12)
    from statistics import NormalDist
    eta = 2 * NormalDist().inv_cdf((0.75 * 41 - 0.125) / 41.25)
    assert out.loc[3, "sd1i"] == pytest.approx(3.5 / eta, rel=1e-12)
    # row 4, S1 (min, med, max), n = 25: Luo w = 4/(4 + 25^0.75), Wan SD = range / (2 z((25 - 0.375)/25.25))
    w1 = 4 / (4 + 25**0.75)
    assert out.loc[4, "m1i"] == pytest.approx(w1 * 21 / 2 + (1 - w1) * 11.0, rel=1e-12)
    xi = 2 * NormalDist().inv_cdf(24.625 / 25.25)
    assert out.loc[4, "sd1i"] == pytest.approx(13.0 / xi, rel=1e-12)
    rows = out.attrs["conversion"]["rows"]
    assert [(r["row"], r["arm"]) for r in rows] == [(3, 1), (4, 1)]
    assert rows[0]["method"].startswith("S2") and "Luo" in rows[0]["method"] and "Wan" in rows[0]["method"]
    assert out.loc[3, "yi"] == pytest.approx(out.loc[3, "m1i"] - 8.5)


def test_median_row_without_enough_statistics_names_the_cell() -> None:
    df = pd.DataFrame({"study": ["A", "B"], "med1i": [9.0, 9.0], "q1_1i": [7.0, np.nan], "q3_1i": [11.0, np.nan],
                       "n1i": [20, 20], "m2i": [8.0, 8.0], "sd2i": [2.0, 2.0], "n2i": [20, 20]}, index=[2, 3])
    with pytest.raises(InputError, match="row 3, column 'q1_1i': value missing"):
        escalc(df, "SMD", source="medians.csv")
