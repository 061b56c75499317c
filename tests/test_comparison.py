"""Comparison table: values on the printed scale, flags fire where they must and only there.

Sources: metafor's random-effects fits of the BCG trials pinned by
``tests/reference/make_comparison.R`` (including metafor's own back-transformed estimates via
``predict(fit, transf = exp)``), and the published pooled relative risk of Colditz et al. (1994),
*JAMA* 271(9):698-702, Abstract/Results: RR 0.49 (95% CI 0.34 to 0.70) from 13 trials.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from bayesmeta.comparison import COLUMNS, ROUNDING_UNITS_TOLERANCE, compare, render_text, rich_table

PINS = json.loads((Path(__file__).parent / "reference" / "comparison.json").read_text())
# math.exp vs R's exp of the same double: equal up to the last bit or two.
RTOL_EXP = 1e-13

COLDITZ_1994 = {
    "source": "Colditz et al. 1994, JAMA 271:698, Abstract",
    "scale": "ratio",
    "digits": 2,
    "k": 13,
    "estimate": 0.49,
    "ci_low": 0.34,
    "ci_high": 0.70,
}

FREQ_KEYS = ("k", "estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2", "level")


def _freq(case: str = "bcg_dl") -> dict:
    return {key: PINS[case][key] for key in FREQ_KEYS}


def _summary(mu=(-0.72, -1.10, -0.35), new=(-0.72, -2.00, 0.60), tau2=(0.33, 0.12, 0.95),
             i2=(92.5, 82.0, 97.5)) -> dict:
    def entry(values):
        return {"median": values[0], "q025": values[1], "q975": values[2]}

    return {"mu": entry(mu), "theta_new": entry(new), "tau2": entry(tau2), "i2": entry(i2)}


def test_bcg_values_on_printed_scale_match_metafor_back_transform() -> None:
    comp = compare(COLDITZ_1994, _freq(), _summary(), measure_scale="log")
    pin = PINS["bcg_dl"]
    assert comp.scale == "ratio" and comp.null == 1.0
    for quantity in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
        assert comp.row(quantity).frequentist == pytest.approx(pin[f"exp_{quantity}"], rel=RTOL_EXP)
    # tau² stays on the log scale, I² in percent
    assert comp.row("tau2").frequentist == pin["tau2"]
    assert comp.row("i2").frequentist == pin["i2"]
    est = comp.row("estimate")
    assert (est.published, est.bayes_median, est.bayes_q025, est.bayes_q975) == pytest.approx(
        (0.49, math.exp(-0.72), math.exp(-1.10), math.exp(-0.35)))
    assert comp.row("ci_low").bayes_q025 == pytest.approx(math.exp(-1.10))
    assert comp.row("ci_low").bayes_median is None and comp.row("ci_high").bayes_q975 == pytest.approx(math.exp(-0.35))
    assert comp.row("pi_high").bayes_q975 == pytest.approx(math.exp(0.60))
    assert comp.row("i2").bayes_q025 == 82.0


def test_published_bcg_reproduces_without_flags_on_estimate_rows() -> None:
    for case in ("bcg_dl", "bcg_reml"):
        comp = compare(COLDITZ_1994, _freq(case), _summary())
        for quantity in ("estimate", "ci_low", "ci_high", "k"):
            assert comp.row(quantity).flags == (), (case, quantity, comp.row(quantity).flags)


def test_rounding_flag_fires_beyond_three_units_only() -> None:
    exp_est = PINS["bcg_dl"]["exp_estimate"]  # 0.48962...
    unit = 0.01
    quiet = dict(COLDITZ_1994, estimate=round(exp_est - 2.9 * unit, 4))
    loud = dict(COLDITZ_1994, estimate=round(exp_est + 3.1 * unit, 4))
    assert compare(quiet, _freq(), _summary()).row("estimate").flags == ()
    flags = compare(loud, _freq(), _summary()).row("estimate").flags
    assert len(flags) == 1
    assert f"> {ROUNDING_UNITS_TOLERANCE} rounding units" in flags[0] and "published" in flags[0]


def test_rounding_unit_follows_published_digits() -> None:
    # 0.4896 printed with 3 decimals as 0.495 is 5.4 units of 0.001 away: flagged
    flagged = compare(dict(COLDITZ_1994, digits=3, estimate=0.495), _freq(), _summary())
    assert flagged.row("estimate").flags
    # the same number with 2 printed decimals is 0.54 units away: fine
    assert not compare(dict(COLDITZ_1994, estimate=0.495), _freq(), _summary()).row("estimate").flags


def test_published_i2_outside_posterior_interval() -> None:
    published = dict(COLDITZ_1994, i2=21)
    comp = compare(published, None, _summary(i2=(45.0, 30.0, 60.0)))
    assert comp.row("i2").flags == ("published I² 21 outside the posterior 95% interval [30, 60]",)
    assert compare(dict(COLDITZ_1994, i2=40), None, _summary(i2=(45.0, 30.0, 60.0))).row("i2").flags == ()
    # the frequentist I² (92%) is 3 rounding units away from 21 too
    assert any("rounding" in f for f in compare(published, _freq(), _summary()).row("i2").flags)


def test_frequentist_ci_excludes_null_but_credible_interval_does_not() -> None:
    wide = _summary(mu=(-0.70, -1.40, 0.05))  # credible interval crosses log(1) = 0
    flags = compare(None, _freq(), wide).row("estimate").flags
    assert flags == ("frequentist 95% CI excludes the null (1) but the credible interval does not",)
    with_paper = compare(COLDITZ_1994, _freq(), wide).row("estimate").flags
    assert "published 95% CI excludes the null (1) but the credible interval does not" in with_paper
    assert compare(None, _freq(), _summary()).row("estimate").flags == ()


def test_credible_interval_excludes_null_but_frequentist_does_not() -> None:
    freq = dict(_freq(), estimate=-0.3, ci_low=-0.7, ci_high=0.1)
    flags = compare(None, freq, _summary(mu=(-0.35, -0.60, -0.05))).row("estimate").flags
    assert flags == ("credible interval excludes the null (1) but the frequentist 95% CI does not",)


def test_frequentist_estimate_outside_credible_interval() -> None:
    flags = compare(None, _freq(), _summary(mu=(-0.20, -0.50, -0.05))).row("estimate").flags
    assert len(flags) == 1 and flags[0].startswith("frequentist Pooled estimate 0.4896 outside")


def test_prediction_interval_flag() -> None:
    comp = compare(None, _freq(), _summary())  # mu excludes 0, theta_new interval spans it
    assert comp.row("pi_low").flags == (
        "the 95% predictive interval for a new study includes the null (1) although the credible "
        "interval for mu excludes it",)
    narrow = compare(None, _freq(), _summary(new=(-0.72, -1.5, -0.1)))
    assert narrow.row("pi_low").flags == ()


def test_count_mismatch_is_flagged() -> None:
    comp = compare(dict(COLDITZ_1994, k=31, animals=624), dict(_freq(), animals=600), _summary())
    assert comp.row("k").flags == ("published k=31 but the reproduction has k=13",)
    assert comp.row("animals").flags == ("published animals=624 but the reproduction has animals=600",)
    bayes = dict(_summary(), k=12)
    assert "published k=13 but the Bayesian model has k=12" in compare(COLDITZ_1994, _freq(), bayes).row("k").flags


def test_identity_scale_keeps_values_and_null_zero() -> None:
    freq = {"k": 5, "estimate": 0.42, "ci_low": 0.10, "ci_high": 0.74, "pi_low": -0.2, "pi_high": 1.04,
            "tau2": 0.05, "i2": 35.0, "level": 95}
    summary = _summary(mu=(0.40, 0.05, 0.78), new=(0.40, -0.30, 1.10))
    comp = compare({"source": "x", "scale": "identity", "digits": 2, "estimate": 0.42}, freq, summary,
                   measure_scale="identity")
    assert comp.scale == "identity" and comp.null == 0.0
    assert comp.row("estimate").frequentist == 0.42 and comp.row("estimate").bayes_q975 == 0.78
    assert comp.row("pi_low").flags  # mu excludes 0, new-study interval does not
    assert comp.row("estimate").flags == ()


def test_ratio_published_with_identity_measure_is_an_error() -> None:
    with pytest.raises(ValueError, match="ratio"):
        compare(COLDITZ_1994, None, _summary(), measure_scale="identity")
    with pytest.raises(ValueError, match="measure_scale"):
        compare(None, None, _summary(), measure_scale="exp")  # type: ignore[arg-type]


def test_log_measure_with_published_log_values_stays_on_log_scale() -> None:
    comp = compare({"source": "y", "scale": "identity", "digits": 2, "estimate": -0.71}, _freq(), _summary())
    assert comp.scale == "identity" and comp.null == 0.0
    assert comp.row("estimate").frequentist == PINS["bcg_dl"]["estimate"]
    assert comp.row("estimate").flags == ()


def test_non_95_level_skips_null_flags_with_note() -> None:
    freq = dict(_freq(), level=90)
    comp = compare(None, freq, _summary(mu=(-0.70, -1.40, 0.05)))
    assert comp.row("estimate").flags == ()
    assert comp.notes and "90" not in comp.notes[0] and "95%" in comp.notes[0]


def test_missing_sources_drop_empty_rows() -> None:
    comp = compare(None, None, {"mu": {"median": 0.1, "q025": -0.1, "q975": 0.3}})
    assert [r.quantity for r in comp.rows] == ["estimate", "ci_low", "ci_high"]
    assert comp.row("estimate").published is None and comp.flags == ()


def test_accepts_published_spec_model() -> None:
    from bayesmeta.spec import PublishedSpec

    spec = PublishedSpec(**COLDITZ_1994)
    comp = compare(spec, _freq(), _summary())
    assert comp.source == COLDITZ_1994["source"] and comp.row("estimate").published == 0.49


def test_outputs_frame_dict_csv_text_and_rich(tmp_path: Path) -> None:
    comp = compare(dict(COLDITZ_1994, i2=21), _freq(), _summary())
    frame = comp.to_frame()
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["quantity"]) == [r.quantity for r in comp.rows]
    payload = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    assert payload["scale"] == "ratio" and len(payload["rows"]) == len(comp.rows)
    assert payload["flags"] == list(comp.flags) and any(f.startswith("i2: ") for f in payload["flags"])
    path = tmp_path / "comparison.csv"
    comp.to_csv(path)
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["quantity"] == "estimate"
    assert float(rows[0]["frequentist"]) == pytest.approx(PINS["bcg_dl"]["exp_estimate"], rel=1e-12)
    text = render_text(comp)
    assert "Colditz" in text and "published I² 21 outside" in text and "0.490" in text
    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(rich_table(comp))
    assert "published I² 21 outside" in console.export_text()
