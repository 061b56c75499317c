"""CLI JSON contracts of the selection model (issue 5) and the sensitivity sweep (issue 7),
each equal to the library's result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayesmeta._json import jsonable
from bayesmeta.cli import commands  # noqa: F401  (registers the subcommands)
from bayesmeta.cli.app import app
from bayesmeta.errors import DataWarning
from bayesmeta.frequentist import selmodel
from bayesmeta.sensitivity import run_sensitivity
from bayesmeta.spec import load_data, load_spec

MODELS = Path(__file__).resolve().parents[1] / "models"
runner = CliRunner()


def test_reference_selection_object_equals_selmodel() -> None:
    spec = MODELS / "li2018_incidence.toml"
    result = runner.invoke(app, ["reference", str(spec), "--method", "ML", "--selection",
                                 "stepfun(0.025, 0.5)", "--json"])
    assert result.exit_code == 0, result.stderr
    sel = json.loads(result.stdout)["selection"]
    assert {"estimate", "se", "tau2", "weights", "lrt", "lrt_p"} <= sel.keys()
    assert len(sel["weights"]) == 3 and sel["weights"][0] == 1.0
    with pytest.warns(DataWarning, match="continuity correction"):  # 5 zero-cell tables, announced
        data = load_data(load_spec(spec))
    direct = selmodel(data["yi"].to_numpy(), data["vi"].to_numpy(), steps="stepfun(0.025, 0.5)")
    assert sel == json.loads(json.dumps(jsonable(direct.to_dict())))


def test_sensitivity_json_contract_and_equality_with_library() -> None:
    spec = MODELS / "li2018_number.toml"
    args = ["sensitivity", str(spec), "--tau-priors", "halfnormal(0.5);halfcauchy(1);rhodes2015(general)",
            "--mu-priors", "normal(0, 10);flat", "--scheduler", "serial", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    # 3 tau x 2 mu priors, plus the spec's own pair (halfnormal(2), normal(0, 10)), always swept
    assert len(out["priors"]) == 7
    assert {(r["tau_prior"], r["mu_prior"]) for r in out["priors"]} >= {("halfnormal(2)", "normal(0, 10)")}
    for row in out["priors"]:
        assert {"tau_prior", "mu_prior", "engine", "mu", "tau", "i2", "p_effect", "conclusion_changes"} <= row.keys()
        assert {"median", "q025", "q975"} <= row["mu"].keys()
        assert row["engine"] == "exact"
    library = run_sensitivity(load_spec(spec), tau_priors="halfnormal(0.5);halfcauchy(1);rhodes2015(general)",
                              mu_priors="normal(0, 10);flat", scheduler="serial").to_dict()
    assert out == json.loads(json.dumps(jsonable(library)))


@pytest.mark.slow
def test_fit_with_bias_reports_weights() -> None:
    result = runner.invoke(app, ["fit", str(MODELS / "li2018_incidence.toml"), "--bias", "stepfun(0.025)",
                                 "--chains", "2", "--draws", "500", "--tune", "500", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["engine"] == "mcmc"
    assert set(out["omega"]) == {"p [0, 0.025]", "p (0.025, 1]"} or len(out["omega"]) == 2
    for name in ("mu", "tau"):
        assert {"median", "mean", "sd", "q025", "q975"} <= out[name].keys()
