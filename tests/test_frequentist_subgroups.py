"""subgroup_analysis() against metafor (pins made by tests/reference/make_rma.R).

For each pinned case metafor fitted ``rma(..., subset = g == level)`` per subgroup, the RevMan
between-subgroup test as ``rma(yi = est, sei = se, method = "FE")`` on the subgroup estimates,
the overall model (whose weights give the subgroup weights), and the common-tau² model
``rma(yi, vi, mods = ~ g)`` (QM) with cell means from ``~ g - 1``. dat.hackshaw1998 by country
has four single-study subgroups (tau² = 0, z test, as metafor does for k = 1).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import pandas as pd
import pytest

from bayesmeta.errors import DataWarning, InputError, SpecError
from bayesmeta.frequentist import SubgroupResult, rma, subgroup_analysis
from bayesmeta.frequentist.subgroups import revman_between
from _metafor import ATOL_METAFOR, RTOL_METAFOR, assert_matches, load_pins  # noqa: F401

PINS = load_pins("rma")





def _run(rec: dict[str, Any], mode: str) -> dict[str, Any]:
    data = PINS["datasets"][rec["dataset"]]
    groups = data["mods"][rec["group"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # single-study subgroups are announced
        res = subgroup_analysis(data["yi"], data["vi"], groups, method=rec["method"], test=rec["test"], tau2=mode)
    assert isinstance(res, SubgroupResult)
    return res.to_dict()


def _id(rec: dict[str, Any]) -> str:
    return f"{rec['dataset']}-{rec['group']}-{rec['method']}-{rec['test']}"


@pytest.mark.parametrize("rec", PINS["subgroups"], ids=_id)
def test_separate_tau2_matches_metafor(rec: dict[str, Any]) -> None:
    out = _run(rec, "separate")
    ref = rec["separate"]
    assert [row["level"] for row in out["subgroups"]] == rec["levels"]
    for row, ref_row in zip(out["subgroups"], ref["subgroups"], strict=True):
        for key, value in ref_row.items():
            assert_matches(row[key], value, f"{rec['calls']['subgroups']} [{ref_row['level']}] {key}")
    for key, value in ref["between"].items():
        assert_matches(out["between"][key], value, f"{rec['calls']['between']} {key}")
    assert_matches(out["overall"]["estimate"], ref["overall"]["estimate"], "overall estimate")
    assert_matches(out["overall"]["weights"], ref["overall"]["weights"], "overall weights")
    assert sum(row["weight_pct"] for row in out["subgroups"]) == pytest.approx(100.0, rel=1e-12)


@pytest.mark.parametrize("rec", PINS["subgroups"], ids=_id)
def test_common_tau2_matches_metafor(rec: dict[str, Any]) -> None:
    out = _run(rec, "common")
    ref = rec["common"]
    between = out["between"]
    assert_matches(between["q"], ref["qm"], rec["calls"]["common_qm"] + " QM")
    assert_matches(between["df"], ref["qm_df"], "QM df")
    assert_matches(between["df2"], ref["qm_df2"], "QM df2")
    assert_matches(between["p"], ref["qm_p"], "QM p")
    for key in ("estimate", "se", "ci_low", "ci_high", "pval"):
        assert_matches([row[key] for row in out["subgroups"]], ref[key], f"{rec['calls']['common_cells']} {key}")
    for row in out["subgroups"]:
        assert_matches(row["tau2"], ref["tau2"], "common tau2")
        assert_matches(row["i2"], ref["i2"], "common I2")


def test_single_study_subgroups_are_announced() -> None:
    data = PINS["datasets"]["hackshaw"]
    with pytest.warns(DataWarning, match="one study"):
        res = subgroup_analysis(data["yi"], data["vi"], data["mods"]["country"], method="DL")
    single = [row for row in res.subgroups if row.k == 1]
    assert {row.level for row in single} == {"Germany", "Russia", "Sweden", "UK"}
    for row in single:
        i = data["mods"]["country"].index(row.level)
        assert row.estimate == pytest.approx(data["yi"][i], rel=1e-14)  # weighted mean of one value
        assert row.se == pytest.approx(math.sqrt(data["vi"][i]), rel=1e-14)
        assert (row.tau2, row.i2) == (0.0, 0.0)


def test_revman_between_equals_fixed_effect_q_on_subgroup_estimates() -> None:
    """RevMan's Q is the FE heterogeneity Q of the subgroup estimates (independent: rma FE)."""
    est, se = [0.2, -0.1, 0.5, 0.05], [0.1, 0.2, 0.15, 0.3]
    fe = rma(est, [s * s for s in se], method="FE")
    between = revman_between(est, se)
    assert between.q == pytest.approx(fe.q, rel=1e-12)
    assert between.i2 == pytest.approx(fe.i2, rel=1e-12)
    assert between.df == 3


def test_category_order_sets_level_order() -> None:
    data = PINS["datasets"]["bcg_rr"]
    groups = pd.Categorical(data["mods"]["alloc"], categories=["systematic", "random", "alternate"])
    res = subgroup_analysis(data["yi"], data["vi"], groups)
    assert [row.level for row in res.subgroups] == ["systematic", "random", "alternate"]


def test_subgroup_input_errors() -> None:
    with pytest.raises(InputError, match="labels"):
        subgroup_analysis([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], ["a", "b"])
    with pytest.raises(InputError, match="missing"):
        subgroup_analysis([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], ["a", None, "b"])
    with pytest.raises(SpecError, match="tau2 mode"):
        subgroup_analysis([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], ["a", "a", "b"], tau2="pooled")


def test_to_dict_shape() -> None:
    data = PINS["datasets"]["bcg_rr"]
    out = subgroup_analysis(data["yi"], data["vi"], data["mods"]["alloc"]).to_dict()
    json.dumps(out, allow_nan=False)
    assert set(out) >= {"subgroups", "between", "overall"}
    assert set(out["subgroups"][0]) >= {"level", "k", "weight_pct", "estimate", "se", "ci_low", "ci_high", "tau2", "i2"}
    assert set(out["between"]) >= {"q", "df", "p", "i2"}
