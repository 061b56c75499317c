"""leave1out(), regtest(), trimfill() and funnel() against metafor (pins from make_rma.R).

leave1out on 5 data sets (REML/DL/PM/FE/EB, z and knha); regtest on 5 data sets (default
model="rma" with predictor "sei", predictor "vi", the sample-size predictors "sqrtninv"/"ninv"
on SMDs, the classical model="lm", FE and knha fits);
trimfill on 6 data sets (L0/R0, side chosen by metafor's rule or given, FE/REML/DL/PM);
funnel-plot points and critical values on 3 data sets.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest

from bayesmeta.errors import DataWarning, InputError, SpecError
from bayesmeta.frequentist import funnel, leave1out, regtest, rma, trimfill
from _metafor import ATOL_METAFOR, RTOL_METAFOR, assert_matches, load_pins  # noqa: F401

PINS = load_pins("rma")





def _data(name: str) -> dict[str, Any]:
    return PINS["datasets"][name]


@pytest.mark.parametrize("rec", PINS["leave1out"], ids=lambda r: f"{r['dataset']}-{r['method']}-{r['test']}")
def test_leave1out_matches_metafor(rec: dict[str, Any]) -> None:
    data = _data(rec["dataset"])
    rows = leave1out(data["yi"], data["vi"], method=rec["method"], test=rec["test"]).to_dict()["rows"]
    assert [row["omitted"] for row in rows] == list(range(len(data["yi"])))
    for key, ref in rec["result"].items():
        if ref is None:  # metafor has no tau² column for FE models: ours is exactly 0
            assert all(row[key] == 0.0 for row in rows)
            continue
        assert_matches([row[key] for row in rows], ref, f"{rec['call']}; leave1out {key}")


def _regtest_id(rec: dict[str, Any]) -> str:
    return "-".join(rec[key] for key in ("dataset", "method", "test", "model", "predictor"))


@pytest.mark.parametrize("rec", PINS["regtest"], ids=_regtest_id)
def test_regtest_matches_metafor(rec: dict[str, Any]) -> None:
    data = _data(rec["dataset"])
    out = regtest(data["yi"], data["vi"], model=rec["model"], predictor=rec["predictor"], method=rec["method"],
                  test=rec["test"], ni=data.get("ni")).to_dict()
    for key, ref in rec["result"].items():
        assert_matches(out[key], ref, f"{rec['call']}; {rec['regtest_call']} {key}")


def _trimfill_id(rec: dict[str, Any]) -> str:
    opts = rec["options"] if isinstance(rec["options"], dict) else {}
    return "-".join([rec["dataset"], rec["method"], *(f"{k}={v}" for k, v in opts.items())])


@pytest.mark.parametrize("rec", PINS["trimfill"], ids=_trimfill_id)
def test_trimfill_matches_metafor(rec: dict[str, Any]) -> None:
    data = _data(rec["dataset"])
    options = rec["options"] if isinstance(rec["options"], dict) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out = trimfill(data["yi"], data["vi"], method=rec["method"], **options).to_dict()
    ref = rec["result"]
    where = f"{rec['call']}; {rec['trimfill_call']}"
    for key in ("k0", "k0_se", "k0_p", "side", "estimator", "filled_yi", "filled_vi"):
        assert_matches(out[key], ref[key], f"{where} {key}")
    for key, value in ref["model"].items():
        assert_matches(out["model"][key], value, f"{where} model {key}")


def test_trimfill_pins_include_filled_studies() -> None:
    assert sum(rec["result"]["k0"] > 0 for rec in PINS["trimfill"]) >= 3
    assert {rec["result"]["side"] for rec in PINS["trimfill"]} == {"left", "right"}


@pytest.mark.parametrize("rec", PINS["funnel"], ids=lambda r: f"{r['dataset']}-{r['method']}")
def test_funnel_matches_metafor(rec: dict[str, Any]) -> None:
    data = _data(rec["dataset"])
    ref = rec["result"]
    f = funnel(data["yi"], data["vi"], method=rec["method"])
    assert_matches(list(f.yi), ref["x"], "funnel x")
    assert_matches(list(f.sei), ref["y"], "funnel y")
    assert_matches(f.refline, ref["refline"], "refline")
    # the axis runs from 1.1 max(sei) to 0 and the pseudo-CI lines use metafor's normal quantile
    assert_matches(f.sei_grid[0], 1.1 * ref["max_sei"], "grid bottom")
    assert f.sei_grid[-1] == 0.0
    assert_matches(f.ci_high[0] - f.refline, ref["z_level"] * f.sei_grid[0], "pseudo-CI half width")
    for level, z in zip((90.0, 95.0, 99.0), ref["z_contours"], strict=True):
        low, high = f.contours[level]
        assert_matches(high[0], z * f.sei_grid[0], f"contour {level}")
        assert_matches(low[0], -z * f.sei_grid[0], f"contour {level}")
    c = funnel(data["yi"], data["vi"], refline=0.0)
    assert_matches(list(c.yi), ref["contour_x"], "contour-plot x")
    json.dumps(f.to_dict(), allow_nan=False)


def test_funnel_addtau2_widens_by_tau2() -> None:
    data = _data("bcg_rr")
    fit = rma(data["yi"], data["vi"], method="DL")
    f = funnel(data["yi"], data["vi"], method="DL", addtau2=True, n_grid=5)
    assert f.tau2 == fit.tau2
    z = f.ci_high[-1] - f.refline  # at sei = 0 the half width is z * tau
    assert z == pytest.approx(1.959963984540054 * math.sqrt(fit.tau2), rel=1e-14)


def test_egger_lm_equals_hand_wls() -> None:
    """Classical Egger: WLS of yi on sei with weights 1/vi, t test with k - 2 df (numpy lstsq)."""
    data = _data("hackshaw")
    y, v = np.asarray(data["yi"]), np.asarray(data["vi"])
    X = np.column_stack([np.ones(y.size), np.sqrt(v)])
    sw = 1 / np.sqrt(v)
    beta, rss, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    cov = rss[0] / (y.size - 2) * np.linalg.inv((X * sw[:, None]).T @ (X * sw[:, None]))
    res = regtest(y, v, model="lm")
    assert res.zval == pytest.approx(beta[1] / math.sqrt(cov[1, 1]), rel=1e-10)
    assert res.df == y.size - 2


def test_bias_input_errors() -> None:
    with pytest.raises(SpecError, match="predictor"):
        regtest([0.1, 0.2, 0.3], [0.1, 0.1, 0.2], predictor="precision")
    with pytest.raises(InputError, match="ni"):
        regtest([0.1, 0.2, 0.3], [0.1, 0.1, 0.2], predictor="ninv")
    with pytest.raises(SpecError, match="estimator"):
        trimfill([0.1, 0.2, 0.3], [0.1, 0.1, 0.2], estimator="X0")
    with pytest.raises(InputError, match="two studies"):
        leave1out([0.1], [0.1])
