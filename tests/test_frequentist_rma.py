"""rma() and meta-regression against metafor 3.8 (pins made by tests/reference/make_rma.R).

The pins hold yi/vi computed by escalc() in R from 16 metadat data sets and metafor's results
for all seven tau² estimators x {z, knha} plus FE, the Q-profile CI of tau²/I²/H², the
prediction interval and the weights; meta-regressions with continuous and categorical
moderators; and R's uniroot() iterates on test functions.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bayesmeta.errors import InputError, SpecError
from bayesmeta.frequentist import TAU2_ESTIMATORS, MetaRegressionResult, RMAResult, rma
from bayesmeta.frequentist.metareg import design_matrix
from bayesmeta.frequentist.tau2 import uniroot
from _metafor import ATOL_METAFOR, RTOL_METAFOR, assert_matches, load_pins  # noqa: F401

PINS = load_pins("rma")





def _fit_quietly(*args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. ll0check messages; values are what is compared
        return rma(*args, **kwargs)


def test_pins_record_metafor_version_and_calls() -> None:
    assert PINS["metafor_version"].count(".") == 2
    assert len(PINS["datasets"]) >= 12
    assert all(rec["call"].startswith("rma(") for rec in PINS["rma"])
    methods = {rec["method"] for rec in PINS["rma"]}
    assert methods == {"DL", "REML", "ML", "PM", "SJ", "HE", "EB", "FE"}


@pytest.mark.parametrize("rec", PINS["rma"], ids=lambda r: f"{r['dataset']}-{r['method']}-{r['test']}-{r['level']:g}")
def test_rma_matches_metafor(rec: dict[str, Any]) -> None:
    data = PINS["datasets"][rec["dataset"]]
    res = _fit_quietly(data["yi"], data["vi"], method=rec["method"], test=rec["test"], level=rec["level"])
    assert isinstance(res, RMAResult)
    out = res.to_dict()
    for key, ref in rec["result"].items():
        assert_matches(out[key], ref, f"{rec['dataset']} {rec['call']} {key}")
    if rec["method"] == "FE":
        assert out["pi_low"] is None and out["tau2_ci_low"] is None


def _moderator_frame(dataset: str, columns: list[str]) -> pd.DataFrame:
    mods = PINS["datasets"][dataset]["mods"]
    return pd.DataFrame({c: mods[c] for c in columns})


def _metareg_id(rec: dict[str, Any]) -> str:
    formula = "+".join(rec["moderators"]) + ("" if rec["intercept"] else "-1")
    return f"{rec['dataset']}-{formula}-{rec['method']}-{rec['test']}"


@pytest.mark.parametrize("rec", PINS["metareg"], ids=_metareg_id)
def test_metaregression_matches_metafor(rec: dict[str, Any]) -> None:
    data = PINS["datasets"][rec["dataset"]]
    frame = _moderator_frame(rec["dataset"], rec["moderators"])
    res = _fit_quietly(data["yi"], data["vi"], mods=frame, moderators=rec["moderators"], method=rec["method"],
                       test=rec["test"], intercept=rec["intercept"])
    assert isinstance(res, MetaRegressionResult)
    ref = rec["result"]
    # names: R's model.matrix names (intrcpt, allocrandom, grade_f2, designcohort ...)
    assert list(res.names) == ref["names"]
    out = res.to_dict()
    for field in ("beta", "se", "zval", "pval", "ci_low", "ci_high"):
        assert_matches([c[field] for c in out["coefficients"]], ref[field], f"{rec['call']} {field}")
    # metafor's vb is column-major; ours row-major (symmetric anyway)
    p = ref["p"]
    vcov_ref = np.asarray(ref["vcov"]).reshape(p, p, order="F").tolist()
    assert_matches([list(row) for row in res.vcov], vcov_ref, f"{rec['call']} vcov")
    for key in ("k", "p", "tau2", "tau2_se", "i2", "h2", "q", "q_df", "q_p", "qm", "qm_df", "qm_df2", "qm_p",
                "r2", "df", "weights", "tau2_ci_low", "tau2_ci_high"):
        if key in ref:
            assert_matches(out[key], ref[key], f"{rec['call']} {key}")


def test_design_matrix_from_array_equals_frame() -> None:
    data = PINS["datasets"]["bcg_rr"]
    frame = _moderator_frame("bcg_rr", ["ablat", "alloc"])
    X, names = design_matrix(frame, ["ablat", "alloc"])
    assert names == ["ablat", "allocrandom", "allocsystematic"]
    a = rma(data["yi"], data["vi"], mods=X)
    b = rma(data["yi"], data["vi"], mods=frame)
    assert isinstance(a, MetaRegressionResult) and isinstance(b, MetaRegressionResult)
    assert [c.beta for c in a.coefficients] == [c.beta for c in b.coefficients]
    assert a.names == ("intrcpt", "mods1", "mods2", "mods3")


def test_categorical_reference_level_follows_categorical_order() -> None:
    data = PINS["datasets"]["bcg_rr"]
    alloc = pd.Categorical(data["mods"]["alloc"], categories=["random", "alternate", "systematic"])
    res = rma(data["yi"], data["vi"], mods=pd.DataFrame({"alloc": alloc}))
    assert isinstance(res, MetaRegressionResult)
    assert res.names == ("intrcpt", "allocalternate", "allocsystematic")


@pytest.mark.parametrize("rec", PINS["uniroot"], ids=lambda r: r["name"])
def test_uniroot_reproduces_r_iterates(rec: dict[str, Any]) -> None:
    functions = {
        "cubic": lambda x: x**3 - 2,
        "cos": lambda x: math.cos(x) - x,
        "exp": lambda x: math.exp(x) - 10,
        "step": lambda x: math.atan(50 * (x - 0.3)),
    }
    root, iterations = uniroot(functions[rec["name"]], rec["lower"], rec["upper"], tol=rec["tol"])
    assert root == pytest.approx(rec["root"], rel=1e-15)  # same arithmetic, same iterates
    assert iterations == rec["iter"]


def test_uniroot_rejects_interval_without_sign_change() -> None:
    with pytest.raises(ValueError, match="opposite sign"):
        uniroot(lambda x: x * x + 1, -1.0, 1.0)


def test_registry_has_all_estimators() -> None:
    assert set(TAU2_ESTIMATORS) >= {"DL", "REML", "ML", "PM", "SJ", "HE", "EB", "FE", "EE"}


def test_single_study_has_tau2_zero_and_z_test() -> None:
    with pytest.warns(UserWarning, match="only one study"):
        res = rma([0.5], [0.04], method="REML", test="knha")
    assert isinstance(res, RMAResult)
    assert res.tau2 == 0.0 and res.test == "z"
    assert res.se == pytest.approx(0.2, rel=1e-15)
    assert (res.q, res.q_p, res.i2, res.h2) == (0.0, 1.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("yi", "vi", "match"),
    [([0.1, 0.2], [0.1], "same length"), ([0.1, np.nan], [0.1, 0.2], "not finite"),
     ([0.1, 0.2], [0.1, 0.0], "positive"), ([], [], "k = 0")],
)
def test_bad_inputs_raise_input_error(yi: list[float], vi: list[float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        rma(yi, vi)


def test_unknown_method_or_test_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown method"):
        rma([0.1, 0.2], [0.1, 0.1], method="XX")
    with pytest.raises(SpecError, match="unknown test"):
        rma([0.1, 0.2], [0.1, 0.1], test="hk")


def test_rank_deficient_design_is_an_input_error() -> None:
    data = PINS["datasets"]["bcg_rr"]
    x = np.asarray(data["mods"]["ablat"], dtype=float)
    with pytest.raises(InputError, match="full rank"):
        rma(data["yi"], data["vi"], mods=np.column_stack([x, 2 * x]))


def test_to_dict_is_json_able_with_architecture_names() -> None:
    data = PINS["datasets"]["bcg_rr"]
    out = rma(data["yi"], data["vi"]).to_dict()
    json.dumps(out, allow_nan=False)
    for key in ("k", "estimate", "se", "zval", "pval", "ci_low", "ci_high", "tau2", "tau2_se", "tau", "i2", "h2",
                "q", "q_df", "q_p", "pi_low", "pi_high", "method", "test", "level", "weights"):
        assert key in out
    assert sum(out["weights"]) == pytest.approx(100.0, rel=1e-12)
