"""rma_mh() against metafor's rma.mh (pins made by tests/reference/make_rma.R).

Six binary data sets (dat.bcg, dat.li2007, dat.hine1989, dat.yusuf1985 table 12a,
dat.collins1985b, dat.linde2005 incl. a table with no events in either arm), OR/RR/RD: pooled
estimate with RBG / Greenland-Robins variances, Q/I²/H² on the continuity-corrected study
effects, CMH, Breslow-Day and Tarone tests, MH weights.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from bayesmeta.errors import InputError, SpecError
from bayesmeta.frequentist import MHResult, rma_mh
from bayesmeta.frequentist.mh import study_effects
from _metafor import ATOL_METAFOR, RTOL_METAFOR, assert_matches, load_pins  # noqa: F401

PINS = load_pins("rma")





@pytest.mark.parametrize("rec", PINS["rma_mh"], ids=lambda r: f"{r['dataset']}-{r['measure']}")
def test_rma_mh_matches_metafor(rec: dict[str, Any]) -> None:
    counts = PINS["datasets"][rec["dataset"]]["counts"]
    res = rma_mh(counts["ai"], counts["bi"], counts["ci"], counts["di"], measure=rec["measure"])
    assert isinstance(res, MHResult)
    out = res.to_dict()
    out["yi"], out["vi"] = list(res.yi), list(res.vi)
    for key, ref in rec["result"].items():
        assert_matches(out[key], ref, f"{rec['call']} {key}")


def test_pins_cover_double_zero_table() -> None:
    """dat.linde2005 has a table with no events in either arm: dropped from Q, kept in MH."""
    rec = next(r for r in PINS["rma_mh"] if r["dataset"] == "linde_rr" and r["measure"] == "RR")
    assert rec["result"]["k_yi"] == rec["result"]["k"] - 1


def test_study_effects_continuity_correction_rules() -> None:
    # one table with a zero cell, one double-zero table, one without zeros (hand-computed values)
    a, b, c, d = [0, 0, 2], [10, 10, 8], [3, 0, 4], [7, 10, 6]
    yi, vi = study_effects(a, b, c, d, "OR")  # add 1/2 to tables with a zero, drop double zeros
    assert yi[0] == pytest.approx(math.log((0.5 * 7.5) / (10.5 * 3.5)), rel=1e-14)
    assert vi[0] == pytest.approx(1 / 0.5 + 1 / 10.5 + 1 / 3.5 + 1 / 7.5, rel=1e-14)
    assert math.isnan(yi[1]) and math.isnan(vi[1])
    assert yi[2] == pytest.approx(math.log((2 * 6) / (8 * 4)), rel=1e-14)
    yi_all, _ = study_effects(a, b, c, d, "OR", to="all", drop00=False)
    assert yi_all[2] == pytest.approx(math.log((2.5 * 6.5) / (8.5 * 4.5)), rel=1e-14)
    assert yi_all[1] == pytest.approx(0.0, abs=1e-15)
    yi_none, _ = study_effects(a, b, c, d, "RD", to="none", drop00=False)
    assert yi_none[1] == 0.0 and yi_none[0] == pytest.approx(-0.3, rel=1e-14)


def test_mh_or_undefined_without_discordant_information() -> None:
    res = rma_mh([0, 0], [10, 12], [0, 0], [9, 11], measure="OR")
    assert res.estimate is None and res.se is None and res.k_yi == 0


def test_mh_input_errors() -> None:
    with pytest.raises(InputError, match="non-negative"):
        rma_mh([1, -1], [5, 5], [1, 1], [5, 5])
    with pytest.raises(SpecError, match="OR, RR or RD"):
        rma_mh([1, 2], [5, 5], [1, 1], [5, 5], measure="SMD")
    with pytest.raises(InputError, match="same length"):
        rma_mh([1, 2], [5], [1, 1], [5, 5])


def test_mh_to_dict_json_able() -> None:
    counts = PINS["datasets"]["bcg_rr"]["counts"]
    out = rma_mh(counts["ai"], counts["bi"], counts["ci"], counts["di"], measure="RR").to_dict()
    json.dumps(out, allow_nan=False)
    assert out["method"] == "MH" and out["tau2"] == 0.0
    assert sum(out["weights"]) == pytest.approx(100.0, rel=1e-12)
    assert np.isfinite(out["estimate"])
