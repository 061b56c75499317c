"""Real data as a drop-in replacement for the rebuilt Li et al. (2018) data sets.

A user who digitises Fig. 3 and Fig. 4 points ``[data] path`` of the shipped specs at a CSV of the
bundled schema (column names may differ, mapped with ``[data.columns]``) and reruns everything
unchanged. The "digitised" files here are the bundled data with other study labels, other row
order, a renamed column and changed counts and means, so every result must move with them. The
expected values come from independent code: the rebuild's own RevMan 5 engine
(:mod:`bayesmeta.rebuild.revman`, cross-checked against the package in test_li2018_rebuild.py) and
the exact normal-normal engine on its effect sizes.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayesmeta.cli import commands  # noqa: F401  (registers the subcommands)
from bayesmeta.cli.app import app
from bayesmeta.datasets import dataset_path
from bayesmeta.exact import ExactNormalNormal
from bayesmeta.rebuild.fidelity import analyse, fidelity_summary
from bayesmeta.rebuild.revman import dl_pool, rr_revman, smd_revman

MODELS = Path(__file__).resolve().parents[1] / "models"
runner = CliRunner()
RTOL_ENGINES = 1e-10   # two double-precision implementations of the same closed forms
RTOL_QUADRATURE = 1e-8  # same quadrature on effect sizes from two implementations (differ by ~1e-15)


def _digitised(outcome: str) -> pd.DataFrame:
    """The bundled data as if digitised by someone else: labels, row order and values differ."""
    frame = pd.read_csv(dataset_path(f"li2018_{outcome}"))
    rng = np.random.default_rng(7)
    frame["study"] = [f"Author{i:02d} {2008 + i % 9}" for i in range(len(frame))]
    if outcome == "incidence":
        frame.loc[0, "ai"] = min(frame.loc[0, "ai"] + 2, frame.loc[0, "n1i"])
        frame.loc[3, "ci"] = max(frame.loc[3, "ci"] - 1, 0)
        frame = frame.rename(columns={"ai": "events_msc"})
    else:
        frame.loc[[1, 4, 9], "m1i"] = frame.loc[[1, 4, 9], "m1i"] * 1.3
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


@pytest.fixture(scope="module")
def dropin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Specs ``li2018_incidence.toml`` and ``li2018_number.toml`` pointing at digitised files."""
    folder = tmp_path_factory.mktemp("digitised")
    out: dict[str, object] = {"folder": folder}
    for outcome, figure in (("incidence", "fig3"), ("number", "fig4")):
        frame = _digitised(outcome)
        frame.to_csv(folder / f"{figure}.csv", index=False)
        text = (MODELS / f"li2018_{outcome}.toml").read_text(encoding="utf-8")
        data = f'path = "{figure}.csv"'
        if outcome == "incidence":
            data += '\n\n[data.columns]\nai = "events_msc"'
        assert f'dataset = "li2018_{outcome}"' in text
        (folder / f"li2018_{outcome}.toml").write_text(
            text.replace(f'dataset = "li2018_{outcome}"', data), encoding="utf-8")
        out[outcome] = frame.rename(columns={"events_msc": "ai"})
    return out


def _effects(frame: pd.DataFrame, outcome: str) -> tuple[np.ndarray, np.ndarray]:
    if outcome == "incidence":
        return rr_revman(frame["ai"], frame["n1i"], frame["ci"], frame["n2i"])
    return smd_revman(frame["m1i"], frame["sd1i"], frame["n1i"], frame["m2i"], frame["sd2i"], frame["n2i"])


@pytest.mark.parametrize("outcome", ["incidence", "number"])
def test_reference_analyses_the_dropped_in_file(dropin: dict, outcome: str) -> None:
    frame = dropin[outcome]
    result = runner.invoke(app, ["reference", str(dropin["folder"] / f"li2018_{outcome}.toml"),
                                 "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    yi, vi = _effects(frame, outcome)
    expected = dl_pool(yi, vi)
    assert out["k"] == len(frame)
    assert out["animals"] == int((frame["n1i"] + frame["n2i"]).sum())
    for key in ("estimate", "se", "ci_low", "ci_high", "tau2", "i2"):
        assert out[key] == pytest.approx(getattr(expected, key), rel=RTOL_ENGINES, abs=1e-12), key
    assert {s["label"] for s in out["studies"]} >= {"Author00 2008", "Author05 2013"}
    bundled = json.loads(runner.invoke(app, ["reference", str(MODELS / f"li2018_{outcome}.toml"),
                                             "--json"]).stdout)
    assert abs(out["estimate"] - bundled["estimate"]) > 1e-3   # the changed values were analysed


@pytest.mark.slow
def test_reproduce_reruns_everything_on_the_dropped_in_files(dropin: dict, tmp_path: Path) -> None:
    folder: Path = dropin["folder"]
    specs = [str(folder / f"li2018_{o}.toml") for o in ("incidence", "number")]
    result = runner.invoke(app, ["reproduce", *specs, "--out", str(tmp_path / "case"),
                                 "--no-sensitivity", "--json"])
    assert result.exit_code == 0, result.stderr
    case = tmp_path / "case"

    # fidelity: the dropped-in data scored against the paper, with the independent engine's values
    table = pd.read_csv(case / "fidelity.csv", dtype={"table": str})
    values = analyse(dropin["incidence"], dropin["number"], engine="reference")
    headline = table[(table["moderator"] == "all") & (table["quantity"] != "weight_pct")]
    assert len(headline) == 16   # Tables 2 and 3: k, animals, estimate, CI, I²; Table 4: estimate, CI, I²
    for row in headline.itertuples(index=False):
        unit = 1.0 if row.quantity in ("comparisons", "animals", "i2_within_pct") else 0.01
        value = values[(row.table, "all", "All", row.quantity)]
        assert row.reproduced == pytest.approx(np.round(value / unit) * unit, abs=1e-9), row
    summary = fidelity_summary(table.assign(units_off=table["units_off"].astype("Int64")))
    assert not summary["headline_exact"]          # the changed counts moved the headline off the paper
    text = (case / "fidelity.md").read_text(encoding="utf-8")
    assert text.startswith("# Li et al. (2018): the analysed data versus the published tables")
    assert str(folder / "fig3.csv") in text and "rebuilt** data sets" not in text

    # Bayesian fits: the exact engine on the dropped-in effect sizes, with the spec's priors
    for outcome in ("incidence", "number"):
        run = json.loads((case / "runs" / f"li2018_{outcome}" / "summary.json").read_text())
        priors = tomllib.loads((MODELS / f"li2018_{outcome}.toml").read_text())["priors"]
        yi, vi = _effects(dropin[outcome], outcome)
        exact = ExactNormalNormal(yi, vi, mu_prior=priors["mu"], tau_prior=priors["tau"]).fit().summary()
        assert run["engine"] == "exact"
        for quantity in ("mu", "tau"):
            for stat in ("median", "q025", "q975"):
                assert run[quantity][stat] == pytest.approx(exact[quantity][stat], rel=RTOL_QUADRATURE), \
                    (outcome, quantity, stat)

    # the report says where the data come from and does not call them rebuilt
    html = (case / "report.html").read_text(encoding="utf-8")
    assert "fig3.csv" in html and "fig4.csv" in html
    assert "<strong>Rebuilt data.</strong>" not in html
    assert set(json.loads(result.stdout)["runs"]) == {"li2018_incidence", "li2018_number"}


def test_a_dropped_in_file_without_a_moderator_column_fails_before_anything_is_written(
        dropin: dict, tmp_path: Path) -> None:
    folder: Path = dropin["folder"]
    broken = tmp_path / "broken"
    broken.mkdir()
    pd.read_csv(folder / "fig4.csv").drop(columns=["impact_factor"]).to_csv(broken / "fig4.csv", index=False)
    (broken / "li2018_number.toml").write_text(
        (folder / "li2018_number.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = runner.invoke(app, ["reproduce", str(folder / "li2018_incidence.toml"),
                                 str(broken / "li2018_number.toml"), "--out", str(tmp_path / "case"),
                                 "--no-sensitivity"])
    assert result.exit_code == 2
    assert str(broken / "fig4.csv") in result.stderr and "'impact_factor'" in result.stderr
    assert not (tmp_path / "case").exists()


def test_scoring_a_filtered_outcome_is_a_spec_error(dropin: dict, tmp_path: Path) -> None:
    folder: Path = dropin["folder"]
    text = (folder / "li2018_number.toml").read_text(encoding="utf-8")
    filtered = tmp_path / "li2018_number.toml"
    filtered.write_text(text.replace('path = "fig4.csv"',
                                     f'path = "{folder / "fig4.csv"}"\nfilter = {{ cancer_type = ["Breast cancer"] }}'),
                        encoding="utf-8")
    result = runner.invoke(app, ["reproduce", str(folder / "li2018_incidence.toml"), str(filtered),
                                 "--out", str(tmp_path / "case"), "--no-sensitivity"])
    assert result.exit_code == 2
    assert "published.tables" in result.stderr and str(filtered) in result.stderr
    assert not (tmp_path / "case").exists()
