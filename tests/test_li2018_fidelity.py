"""The rebuilt Li et al. (2018) data against the article's printed numbers.

Independent source: Li J-H et al. (2018) J Transl Med 16:113, doi:10.1186/s12967-018-1484-9 —
Results (p. 4: 31 comparisons / 624 animals, RR 2.04 [1.57, 2.65], I² 21%; p. 6: 35 comparisons /
489 animals, SMD 1.23 [0.43, 2.03], I² 89%), Table 2 (incidence subgroups), Table 3 (number
subgroups), Table 4 (number, breast-cancer comparisons; its "All experiments" row is 2.04
[0.87, 3.21], I² 90%). The bundled CSVs are rebuilt (synthetic) data; these tests lock how closely
they reproduce the printed numbers so a later change cannot silently worsen it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmeta.rebuild import fidelity_markdown, fidelity_summary, fidelity_table, find_contradictions, write_fidelity
from bayesmeta.rebuild.claims import text_claims
from bayesmeta.rebuild.fidelity import FIDELITY_COLUMNS, analyse, load_rebuilt

REPORT = Path(__file__).resolve().parents[1] / "reports" / "li2018"

# Achieved by the committed data (seed 9, default budget, pinned numerics); locked so they cannot
# silently drop. The brief asks for >= 0.75 within 3 units and >= 0.95 within 10.
LOCK_WITHIN3 = 0.782   # share of subgroup cells of Tables 2-4 within 3 rounding units (achieved 0.782)
LOCK_WITHIN10 = 0.966  # ... within 10 rounding units (achieved 0.966: 12 of 358 cells further off)
LOCK_TABLE1_OFF = 16    # comparisons off Table 1's counts, summed over levels (achieved 16)
# Engines: the package's escalc/rma/subgroup_analysis and the rebuild's RevMan reference share no
# code; closed forms in double precision agree to rounding error.
RTOL_ENGINES = 1e-9

PUBLISHED_HEADLINES = [
    # table, quantity, printed value  (Results p. 4 and p. 6; Table 4 "All experiments")
    ("2", "comparisons", 31), ("2", "animals", 624), ("2", "estimate", 2.04), ("2", "ci_low", 1.57),
    ("2", "ci_high", 2.65), ("2", "i2_within_pct", 21),
    ("3", "comparisons", 35), ("3", "animals", 489), ("3", "estimate", 1.23), ("3", "ci_low", 0.43),
    ("3", "ci_high", 2.03), ("3", "i2_within_pct", 89),
    ("4", "estimate", 2.04), ("4", "ci_low", 0.87), ("4", "ci_high", 3.21), ("4", "i2_within_pct", 90),
]


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return pd.read_csv(REPORT / "fidelity.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    incidence, number = load_rebuilt()
    return fidelity_table(incidence, number)


def test_committed_fidelity_csv_is_what_write_fidelity_produces(tmp_path: Path, committed: pd.DataFrame) -> None:
    out = tmp_path / "fidelity.csv"
    write_fidelity(out)
    assert out.read_text(encoding="utf-8") == (REPORT / "fidelity.csv").read_text(encoding="utf-8")
    assert tuple(committed.columns) == FIDELITY_COLUMNS
    assert set(committed["verdict"]) <= {"exact", "close", "off", "contradicts-itself"}


def test_committed_fidelity_md_is_current(table: pd.DataFrame) -> None:
    claims = text_claims(*load_rebuilt())
    assert fidelity_markdown(table, claims=claims) == (REPORT / "fidelity.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("tab", "quantity", "printed"), PUBLISHED_HEADLINES)
def test_headlines_reproduced_exactly_at_printed_rounding(table: pd.DataFrame, tab: str, quantity: str,
                                                         printed: float) -> None:
    row = table[(table["table"] == tab) & (table["moderator"] == "all") & (table["quantity"] == quantity)]
    assert len(row) == 1
    assert float(row["published"].iloc[0]) == printed
    assert float(row["reproduced"].iloc[0]) == printed
    assert row["verdict"].iloc[0] == "exact"


def test_subgroup_fidelity_is_locked(table: pd.DataFrame) -> None:
    summary = fidelity_summary(table)
    assert summary["headline_exact"]
    assert summary["within3"] >= LOCK_WITHIN3
    assert summary["within10"] >= LOCK_WITHIN10
    assert summary["table1_off"] <= LOCK_TABLE1_OFF
    # the denominators: every printed subgroup cell of Tables 2-4 but the self-contradicting ones
    cells = table[table["table"].isin(["2", "3", "4"]) & (table["moderator"] != "all")]
    assert summary["subgroup_cells"] == int((cells["verdict"] != "contradicts-itself").sum())
    assert summary["contradicting_cells"] == 15


def test_self_contradicting_cells_are_marked_not_scored(table: pd.DataFrame) -> None:
    keys = {key for c in find_contradictions() for key in c.keys()}
    marked = table[table["verdict"] == "contradicts-itself"]
    got = {(r.table, r.moderator, "" if r.level == "between" else r.level, r.quantity) for r in marked.itertuples()}
    assert got == keys
    # Table 3, Metastasis site, Lung prints 1.80 (0.28, 2.07): the estimate is not the CI midpoint
    lung = marked[(marked["table"] == "3") & (marked["level"] == "Lung")]
    assert set(lung["quantity"]) == {"estimate", "ci_low", "ci_high"}


def test_verdicts_follow_units_off(table: pd.DataFrame) -> None:
    scored = table[table["verdict"] != "contradicts-itself"].dropna(subset=["units_off"])
    units = scored["units_off"].astype(int)
    assert (scored.loc[units == 0, "verdict"] == "exact").all()
    assert (scored.loc[(units >= 1) & (units <= 3), "verdict"] == "close").all()
    assert (scored.loc[units > 3, "verdict"] == "off").all()


def test_units_off_is_distance_between_printed_and_rounded_reproduction(table: pd.DataFrame) -> None:
    rows = table[table["quantity"].isin(["estimate", "ci_low", "ci_high"]) & (table["verdict"] != "contradicts-itself")]
    rows = rows[rows["reproduced"].astype(str) != ""]
    pub = rows["published"].astype(float).to_numpy()
    rep = rows["reproduced"].astype(float).to_numpy()
    assert np.array_equal(np.round(np.abs(pub - rep) / 0.01).astype(int), rows["units_off"].astype(int).to_numpy())


def test_empty_subgroups_stay_empty(table: pd.DataFrame) -> None:
    # Table 2: no comparison longer than 42 days, none meeting 9-12 criteria; Table 4: no breast
    # comparison in other mice/rat, with bioluminescence or with a dose ratio > 1
    for tab, moderator, level in [("2", "study_length", ">42"), ("2", "quality", "Meet 9-12 criteria"),
                                  ("3", "quality", "Meet 9-12 criteria"), ("4", "species", "Other mice/rat"),
                                  ("4", "estimation", "Bioluminescence"), ("4", "dose_ratio", ">1")]:
        row = table[(table["table"] == tab) & (table["moderator"] == moderator) & (table["level"] == level)]
        assert row["reproduced"].astype(float).tolist() == [0.0], (tab, moderator, level)


def test_table1_counts_cover_all_66_comparisons(table: pd.DataFrame) -> None:
    t1 = table[table["table"] == "1"]
    for moderator, rows in t1.groupby("moderator"):
        assert rows["published"].astype(float).sum() == 66, moderator
        assert rows["reproduced"].astype(float).sum() == 66, moderator


def test_package_engines_agree_with_rebuild_reference() -> None:
    incidence, number = load_rebuilt()
    package = analyse(incidence, number, engine="package")
    reference = analyse(incidence, number, engine="reference")
    assert package.keys() == reference.keys()
    for key, value in package.items():
        assert value == pytest.approx(reference[key], rel=RTOL_ENGINES, abs=1e-12), key


def test_reproduce_writes_the_fidelity_table_of_the_li2018_specs(tmp_path: Path) -> None:
    from bayesmeta.reproduce import _write_fidelity, fidelity_inputs
    from bayesmeta.spec import load_spec

    models = REPORT.parents[1] / "models"
    specs = [load_spec(p) for p in sorted(models.glob("li2018_*.toml"))]
    inputs = fidelity_inputs(specs)
    assert inputs is not None and inputs.files is None          # the bundled rebuilt data
    assert _write_fidelity(inputs, tmp_path / "case", lambda _msg: None) == tmp_path / "case" / "fidelity.csv"
    for name in ("fidelity.csv", "fidelity.md"):   # what the README's main command commits
        assert (tmp_path / "case" / name).read_bytes() == (REPORT / name).read_bytes()
    # a set of specs without both outcomes' tables gets no fidelity table
    assert fidelity_inputs([load_spec(models / "bcg.toml"), *specs[:1]]) is None
    assert fidelity_inputs([load_spec(models / "li2018_number.toml"),
                            load_spec(models / "li2018_number_breast.toml")]) is None
