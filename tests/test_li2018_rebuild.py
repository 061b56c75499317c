"""The Li et al. (2018) rebuild: published tables, consistency checks, search engine, data sets.

Independent sources: the article (Li J-H et al. 2018, J Transl Med 16:113; Results, Tables 1-4)
for the transcribed numbers and for which printed rows contradict themselves; the package's own
effect-size and pooling engines (written separately) for the rebuild's vectorised formulas.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmeta.datasets import card_path, dataset_path
from bayesmeta.errors import DataWarning
from bayesmeta.rebuild import BUDGETS, DEFAULT_SEED, find_contradictions, load_published, rebuild_li2018
from bayesmeta.rebuild import _engine as eng
from bayesmeta.rebuild.consistency import interval_consistent
from bayesmeta.rebuild.published import MODERATORS, published_cells, table1_counts
from bayesmeta.rebuild.revman import between_test, dl_pool, re_weights, rr_revman, smd_revman
from bayesmeta.rebuild.search import incidence_effects, number_effects

ROOT = Path(__file__).resolve().parents[1]
RTOL_SAME_FORMULA = 1e-10   # the same closed forms, vectorised vs scalar, in double precision

INCIDENCE_COLUMNS = ["study", "ai", "n1i", "ci", "n2i"]
NUMBER_COLUMNS = ["study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
MODERATOR_COLUMNS = ["cancer_type", "cancer_type_detail", *list(MODERATORS)[1:]]


# ------------------------------------------------------------------ the transcription
@pytest.mark.parametrize(("table", "moderator", "level", "values"), [
    # Table 2 (p. 5): weight, RR, 95% CI, I²a, P, I²b
    ("2", "Cancer cell/MSC dose ratio", "<1", (7.5, 3.83, 1.68, 8.73, 0, 0.03, 71.6)),
    ("2", "Study quality category", "Meet 5-8 criteria", (9.2, 2.90, 0.74, 11.40, 37, 0.63, 0)),
    # Table 3 (p. 7)
    ("3", "Metastasis site", "Lung", (81.6, 1.80, 0.28, 2.07, 89, 0.57, 0)),
    ("3", "Timing of MSC administration", "Follow-administration", (31.5, -1.13, -2.50, 0.23, 88, 0.001, 94)),
    # Table 4 (p. 8)
    ("4", "Source of MSC", "Human bone marrow", (40.3, 4.06, 2.43, 5.70, 70, 0.006, 75.8)),
    ("4", "Timing of MSC administration", "Follow-administration", (15.2, -2.24, -2.93, 1.55, 0, 0.001, 98)),
])
def test_published_tables_match_the_article(table, moderator, level, values) -> None:
    frame = load_published()
    row = frame[(frame["table"] == table) & (frame["moderator"] == moderator) & (frame["level"] == level)]
    assert len(row) == 1
    cols = ["weight_pct", "estimate", "ci_low", "ci_high", "i2_within_pct", "p_between", "i2_between_pct"]
    assert tuple(row[cols].iloc[0].astype(float)) == pytest.approx(values)
    assert "doi:10.1186/s12967-018-1484-9" in row["source"].iloc[0]


def test_table1_counts_are_the_articles() -> None:
    counts = table1_counts()   # Table 1 (p. 4): 66 comparisons by characteristic
    assert counts["cancer_type_detail"] == {"Breast cancer": 32, "Osteosarcoma": 8, "Hepatocellular carcinoma": 6,
                                            "Colon cancer": 4, "Melanoma": 3, "Other": 13}
    assert counts["species"] == {"Nude mice": 55, "Other mice/rat": 11}
    assert counts["msc_source"] == {"Human bone marrow": 30, "Other human tissue": 16, "Mice/rat bone marrow": 17,
                                    "Unclear": 3}
    assert counts["timing"] == {"Co-administration": 47, "Follow-administration": 19}


def test_cells_have_printed_rounding_units() -> None:
    units = {(c.table, c.moderator, c.level, c.quantity): c.unit for c in published_cells()}
    assert units[("2", "all", "All", "estimate")] == 0.01
    assert units[("2", "cancer_type", "Breast cancer", "weight_pct")] == 0.1
    assert units[("3", "all", "All", "i2_within_pct")] == 1.0
    assert units[("3", "cancer_type", "", "i2_between_pct")] == 0.1
    assert units[("3", "cancer_type", "", "p_between")] == 0.01      # printed 0.060
    assert units[("3", "study_length", "", "p_between")] == 0.001    # printed 0.006


# ------------------------------------------------------------------ consistency checks
def test_contradictions_are_the_rows_that_cannot_be_right() -> None:
    found = {(c.table, c.moderator, c.level): c for c in find_contradictions()}
    # estimate not the CI midpoint: Table 3 Lung 1.80 (0.28, 2.07); Table 3 fluorescence 1.11
    # (-0.3, 2.35); Table 3 unclear source 2.15 (-0.14, 4.34); Table 4 follow-administration
    # -2.24 (-2.93, 1.55). p = 0.001 with I² 94% (Table 3) or 98% (Table 4) and df 1.
    assert set(found) == {("3", "site", "Lung"), ("3", "estimation", "Fluorescence microscopy"),
                          ("3", "msc_source", "Unclear"), ("4", "timing", "Follow-administration"),
                          ("3", "timing", ""), ("4", "timing", "")}
    assert found[("3", "site", "Lung")].repair == {"estimate": 1.175}        # p 0.57 needs the CI midpoint
    assert found[("4", "timing", "Follow-administration")].repair == {"ci_high": -1.55}
    assert found[("3", "estimation", "Fluorescence microscopy")].repair == {"ci_low": -0.13}
    assert found[("3", "timing", "")].quantities == ("p_between",)
    assert found[("4", "timing", "")].quantities == ("p_between", "i2_between_pct")


def test_interval_check_uses_the_analysis_scale() -> None:
    # Table 2, "<1": RR 3.83 (1.68, 8.73) is symmetric on the log scale, not on the ratio scale
    assert interval_consistent(3.83, 1.68, 8.73, ratio=True)
    assert not interval_consistent(3.83, 1.68, 8.73, ratio=False)


# ------------------------------------------------------------------ formulas
def test_reference_effects_agree_with_package_escalc() -> None:
    from bayesmeta.effects import escalc

    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(4, 16, 40), rng.integers(4, 16, 40)
    a, c = rng.integers(0, n1), rng.integers(0, n2)
    c = np.where((a == 0) & (c == 0), 1, c)
    frame = pd.DataFrame({"study": [f"s{i}" for i in range(40)], "ai": a, "n1i": n1, "ci": c, "n2i": n2})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DataWarning)    # zero cells get the 0.5 correction
        pkg = escalc(frame, "RR", convention="revman", cc="revman")
    yi, vi = rr_revman(a, n1, c, n2)
    assert pkg["yi"].to_numpy() == pytest.approx(yi, rel=RTOL_SAME_FORMULA)
    assert pkg["vi"].to_numpy() == pytest.approx(vi, rel=RTOL_SAME_FORMULA)
    fast_y, fast_v = incidence_effects(a.astype(float), n1.astype(float), c.astype(float), n2.astype(float))
    assert fast_y == pytest.approx(yi, rel=RTOL_SAME_FORMULA)
    assert fast_v == pytest.approx(vi, rel=RTOL_SAME_FORMULA)

    m1, m2 = rng.uniform(5, 30, 40), rng.uniform(5, 30, 40)
    s1, s2 = rng.uniform(1, 8, 40), rng.uniform(1, 8, 40)
    frame = pd.DataFrame({"study": [f"s{i}" for i in range(40)], "m1i": m1, "sd1i": s1, "n1i": n1,
                          "m2i": m2, "sd2i": s2, "n2i": n2})
    pkg = escalc(frame, "SMD", convention="revman", cc="revman")
    g, v = smd_revman(m1, s1, n1, m2, s2, n2)
    assert pkg["yi"].to_numpy() == pytest.approx(g, rel=RTOL_SAME_FORMULA)
    assert pkg["vi"].to_numpy() == pytest.approx(v, rel=RTOL_SAME_FORMULA)
    sp = np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    fast_g, fast_v = number_effects((m1 - m2) / sp, n1.astype(float), n2.astype(float))
    assert fast_g == pytest.approx(g, rel=RTOL_SAME_FORMULA)
    assert fast_v == pytest.approx(v, rel=RTOL_SAME_FORMULA)


def test_reference_pooling_agrees_with_package_rma_and_subgroups() -> None:
    from bayesmeta.frequentist import rma, subgroup_analysis

    rng = np.random.default_rng(5)
    yi, vi = rng.normal(1, 1.5, 30), rng.uniform(0.1, 1.5, 30)
    groups = rng.choice(["a", "b", "c"], 30)
    ours = dl_pool(yi, vi)
    pkg = rma(yi, vi, method="DL")
    assert (ours.estimate, ours.se, ours.tau2, ours.i2) == pytest.approx((pkg.estimate, pkg.se, pkg.tau2, pkg.i2),
                                                                         rel=RTOL_SAME_FORMULA)
    sub = subgroup_analysis(yi, vi, groups, method="DL")
    w = re_weights(vi, ours.tau2)
    for row in sub.subgroups:
        m = groups == row.level
        p = dl_pool(yi[m], vi[m])
        assert (p.estimate, p.ci_low, p.ci_high, p.i2) == pytest.approx(
            (row.estimate, row.ci_low, row.ci_high, row.i2), rel=RTOL_SAME_FORMULA)
        assert 100 * w[m].sum() / w.sum() == pytest.approx(row.weight_pct, rel=RTOL_SAME_FORMULA)
    b = between_test([r.estimate for r in sub.subgroups], [r.se for r in sub.subgroups])
    assert (b.q, b.pval, b.i2) == pytest.approx((sub.between.q, sub.between.p, sub.between.i2), rel=RTOL_SAME_FORMULA)


@pytest.mark.parametrize("outcome", ["incidence", "number"])
def test_vectorised_engine_agrees_with_reference(outcome: str) -> None:
    rng = np.random.default_rng(11)
    k = 31 if outcome == "incidence" else 35
    lay = eng.make_layout(outcome, k)
    labels = np.stack([rng.choice(a, k) for a in lay.allowed])
    breast = labels[lay.cancer_index] == 0
    for m, ok in enumerate(lay.breast_allowed):
        bad = breast & ~np.isin(labels[m], ok)
        labels[m, bad] = rng.choice(ok, bad.sum())
    yi, vi = rng.normal(0.8, 1.5, k), rng.uniform(0.1, 2.0, k)
    batch = eng.evaluate(np.stack([yi, yi]), np.stack([vi, vi]), np.stack([labels, labels]), lay)
    tau2_all = dl_pool(yi, vi).tau2
    tau2_breast = dl_pool(yi[breast], vi[breast]).tau2
    for r, (table, column, level) in enumerate(lay.row_key):
        member = np.ones(k, bool) if column == "all" else labels[lay.mods.index(column)] == MODERATORS[column].index(level)
        if lay.row_breast[r]:
            member &= breast
        if not member.any():
            assert batch["k"][0, r] == 0
            continue
        p = dl_pool(yi[member], vi[member])
        assert batch["est"][1, r] == pytest.approx(p.estimate, rel=RTOL_SAME_FORMULA)
        assert batch["se"][1, r] == pytest.approx(p.se, rel=RTOL_SAME_FORMULA)
        assert batch["i2"][1, r] == pytest.approx(p.i2, rel=RTOL_SAME_FORMULA, abs=1e-9)
        parent = breast if lay.row_breast[r] else np.ones(k, bool)
        w = re_weights(vi, tau2_breast if lay.row_breast[r] else tau2_all)
        assert batch["wpct"][1, r] == pytest.approx(100 * w[member].sum() / w[parent].sum(), rel=RTOL_SAME_FORMULA)


# ------------------------------------------------------------------ the committed data sets
@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(dataset_path(f"li2018_{name}")) for name in ("incidence", "number")}


def test_schema_and_labels(data: dict[str, pd.DataFrame]) -> None:
    inc, num = data["incidence"], data["number"]
    assert list(inc.columns) == INCIDENCE_COLUMNS + MODERATOR_COLUMNS
    assert list(num.columns) == NUMBER_COLUMNS + MODERATOR_COLUMNS
    assert len(inc) == 31 and len(num) == 35
    assert inc["study"].str.startswith("Rebuilt I").all() and num["study"].str.startswith("Rebuilt N").all()
    for frame in (inc, num):
        for column, levels in MODERATORS.items():
            assert set(frame[column]) <= set(levels), column
        assert set(frame["cancer_type_detail"]) <= {"Breast cancer", "Osteosarcoma", "Hepatocellular carcinoma",
                                                   "Colon cancer", "Melanoma", "Other"}
        assert ((frame["cancer_type"] == "Breast cancer") == (frame["cancer_type_detail"] == "Breast cancer")).all()


def test_headline_counts(data: dict[str, pd.DataFrame]) -> None:
    # Results: 31 comparisons with 624 animals (incidence), 35 with 489 (number)
    assert int((data["incidence"]["n1i"] + data["incidence"]["n2i"]).sum()) == 624
    assert int((data["number"]["n1i"] + data["number"]["n2i"]).sum()) == 489


def test_data_are_plausible_animal_experiments(data: dict[str, pd.DataFrame]) -> None:
    inc, num = data["incidence"], data["number"]
    for frame in (inc, num):
        assert frame[["n1i", "n2i"]].to_numpy().min() >= 4 and frame[["n1i", "n2i"]].to_numpy().max() <= 15
    assert (inc["ai"] >= 0).all() and (inc["ai"] < inc["n1i"]).all()
    assert (inc["ci"] >= 0).all() and (inc["ci"] < inc["n2i"]).all()
    assert not ((inc["ai"] == 0) & (inc["ci"] == 0)).any()
    assert (num[["m1i", "m2i"]] > 0).all().all() and (num[["sd1i", "sd2i"]] > 0).all().all()
    g, _ = smd_revman(num["m1i"], num["sd1i"], num["n1i"], num["m2i"], num["sd2i"], num["n2i"])
    assert np.abs(g).max() <= 12


def test_structurally_empty_levels(data: dict[str, pd.DataFrame]) -> None:
    inc, num = data["incidence"], data["number"]
    assert (inc["study_length"] == "<=42").all()               # Table 2: no incidence study > 42 days
    assert not (inc["msc_source"] == "Unclear").any()          # Table 2 has no "Unclear" source
    assert not (inc["quality"] == "Meet 9-12 criteria").any()  # no publication met 9-12 criteria
    assert not (num["quality"] == "Meet 9-12 criteria").any()
    breast = num[num["cancer_type"] == "Breast cancer"]        # Table 4: empty levels
    assert (breast["species"] == "Nude mice").all()
    assert not (breast["estimation"] == "Bioluminescence").any()
    assert not (breast["dose_ratio"] == ">1").any()


def test_data_cards_say_the_data_are_rebuilt() -> None:
    for name in ("li2018_incidence", "li2018_number"):
        text = card_path(name).read_text(encoding="utf-8").lower()
        assert "rebuilt" in text and "synthetic" in text and "10.1186/s12967-018-1484-9" in text


@pytest.mark.parametrize(("spec_file", "published"), [
    ("li2018_incidence.toml", (31, 2.04, 1.57, 2.65, 21)),
    ("li2018_number.toml", (35, 1.23, 0.43, 2.03, 89)),
    ("li2018_number_breast.toml", (None, 2.04, 0.87, 3.21, 90)),
])
def test_specs_reproduce_their_published_headline(spec_file: str, published: tuple) -> None:
    from bayesmeta.reference import run_reference
    from bayesmeta.spec import load_spec

    spec = load_spec(ROOT / "models" / spec_file)
    p = spec.published
    assert (p.k, p.estimate, p.ci_low, p.ci_high, p.i2) == published
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DataWarning)   # zero-cell corrections, one-study subgroups
        ref = run_reference(spec)
    scale = np.exp if p.scale == "ratio" else (lambda x: x)
    got = (round(float(scale(ref.model.estimate)), 2), round(float(scale(ref.model.ci_low)), 2),
           round(float(scale(ref.model.ci_high)), 2), round(float(ref.model.i2)))
    assert got == (p.estimate, p.ci_low, p.ci_high, p.i2)
    if p.k is not None:
        assert ref.model.k == p.k
    assert set(ref.subgroups) == set(spec.reference.subgroups)


# ------------------------------------------------------------------ the generator
@pytest.fixture(scope="module")
def quick():
    return rebuild_li2018(seed=7, budget="quick")


def test_quick_rebuild_has_the_published_structure(quick) -> None:
    assert list(quick.incidence.columns) == INCIDENCE_COLUMNS + MODERATOR_COLUMNS
    assert list(quick.number.columns) == NUMBER_COLUMNS + MODERATOR_COLUMNS
    assert len(quick.incidence) == 31 and len(quick.number) == 35
    assert int((quick.incidence["n1i"] + quick.incidence["n2i"]).sum()) == 624
    assert int((quick.number["n1i"] + quick.number["n2i"]).sum()) == 489
    assert quick.budget == BUDGETS["quick"]
    summary = quick.to_dict()["summary"]
    assert 0 <= summary["within3"] <= summary["within10"] <= 1


def test_quick_rebuild_is_deterministic(quick) -> None:
    stages: list[str] = []
    again = rebuild_li2018(seed=7, budget="quick", step=stages.append)   # progress reports change nothing
    assert [s.split(":")[0].split(" (")[0] for s in stages] == [
        "number of metastases", "incidence", "polishing both outcomes together",
        "scoring thresholds and exact label moves", "last stage", "means and SDs with two decimals"]
    pd.testing.assert_frame_equal(again.incidence, quick.incidence)
    pd.testing.assert_frame_equal(again.number, quick.number)
    pd.testing.assert_frame_equal(again.fidelity, quick.fidelity)


@pytest.mark.slow
def test_default_rebuild_reproduces_committed_csvs_bit_for_bit(tmp_path: Path) -> None:
    res = rebuild_li2018(seed=DEFAULT_SEED, budget="default")
    for name, path in res.write_csvs(tmp_path).items():
        assert path.read_bytes() == dataset_path(f"li2018_{name}").read_bytes(), name


def test_cli_rebuild_json_equals_the_library_and_writes_the_files(quick, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from bayesmeta.cli import commands  # noqa: F401  (registers the subcommands)
    from bayesmeta.cli.app import app
    from bayesmeta.rebuild.claims import text_claims
    from bayesmeta.rebuild.fidelity import fidelity_markdown

    out = tmp_path / "rebuilt"
    result = CliRunner().invoke(app, ["rebuild", "li2018", "--seed", "7", "--budget", "quick", "--out", str(out),
                                      "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    expected = json.loads(json.dumps(quick.to_dict()))
    payload.pop("seconds"), expected.pop("seconds")                # wall time differs between runs
    assert payload == expected
    for name in ("incidence", "number"):
        assert (out / f"li2018_{name}.csv").read_text() == getattr(quick, name).to_csv(index=False, lineterminator="\n")
    assert (out / "fidelity.md").read_text(encoding="utf-8") == fidelity_markdown(
        quick.fidelity, claims=text_claims(quick.incidence, quick.number))


def test_search_egger_statistic_equals_regtest() -> None:
    """The search's batched Egger z (search.egger_z) is the package's regtest (metafor-pinned)."""
    from bayesmeta.frequentist import regtest
    from bayesmeta.rebuild.search import FunnelTarget, egger_z

    rng = np.random.default_rng(3)
    v = rng.uniform(0.05, 3.0, (5, 31))
    y = rng.normal(0.7, 0.6, (5, 31)) + rng.uniform(-1.5, 1.5, (5, 1)) * np.sqrt(v)
    z = egger_z(y, v)
    for j in range(5):
        assert z[j] == pytest.approx(regtest(y[j], v[j], method="DL").zval, rel=1e-10)
    asym, sym = FunnelTarget(z_min=2.3, weight=20.0), FunnelTarget(z_abs_max=1.3, weight=20.0)
    np.testing.assert_allclose(asym.penalty(y, v), 20.0 * np.maximum(0.0, 2.3 - z) ** 2)
    np.testing.assert_allclose(sym.penalty(y, v), 20.0 * np.maximum(0.0, np.abs(z) - 1.3) ** 2)
