"""``bayesmeta fit``: --json equals the library's result, run directories are complete or absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayesmeta._json import jsonable
from bayesmeta.cli import commands  # noqa: F401  (registers the subcommands)
from bayesmeta.cli.app import app
from bayesmeta.rundir import RUN_FILES
from bayesmeta.runs import fit_spec
from bayesmeta.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
BCG_SPEC = ROOT / "models" / "bcg.toml"
runner = CliRunner()


def test_exact_fit_json_equals_library_and_run_dir_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(BCG_SPEC), "--engine", "exact", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    for name in ("mu", "tau", "i2"):
        assert set(payload[name]) >= {"median", "mean", "sd", "q025", "q975"}
    assert 0.0 <= payload["p_mu_positive"] <= 1.0
    assert "diagnostics" in payload
    library = fit_spec(load_spec(BCG_SPEC).with_overrides({"sampling.engine": "exact"})).to_dict()
    library.pop("timings")
    payload.pop("timings")
    assert payload == json.loads(json.dumps(jsonable(library)))
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    assert json.loads((out / "summary.json").read_text())["mu"] == payload["mu"]


def test_command_line_priors_override_spec() -> None:
    result = runner.invoke(app, ["fit", str(BCG_SPEC), "--tau-prior", "halfcauchy(1)",
                                 "--mu-prior", "flat", "--json"])
    assert result.exit_code == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["priors"]["tau"] == "halfcauchy(1)"
    assert settings["priors"]["mu"] == "flat"


def test_bad_prior_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(BCG_SPEC), "--tau-prior", "halfnormal(-1)", "--out", str(out)])
    assert result.exit_code == 2
    assert "halfnormal" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["ai,n1i,ci,n2i\n3,10,12,10\n2,12,4,11\n"])
def test_events_above_total_exit_2_and_write_nothing(tmp_path: Path, bad: str) -> None:
    data = tmp_path / "d.csv"
    data.write_text(bad)
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(data), "--measure", "RR", "--out", str(out)])
    assert result.exit_code == 2
    assert str(data) in result.stderr and "row 2" in result.stderr and "'ci'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]
