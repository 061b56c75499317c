"""``bayesmeta reference``: its --json output equals the library's result; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayesmeta._json import jsonable
from bayesmeta.cli import commands  # noqa: F401  (registers the subcommands)
from bayesmeta.cli.app import app
from bayesmeta.reference import run_reference
from bayesmeta.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
BCG_SPEC = ROOT / "models" / "bcg.toml"
HEADLINE_KEYS = {"k", "estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q"}

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_json_equals_library_result() -> None:
    code, out, _ = invoke("reference", str(BCG_SPEC), "--json", "--subgroup", "alloc")
    assert code == 0
    payload = json.loads(out)
    library = run_reference(load_spec(BCG_SPEC), subgroups=["alloc"]).to_dict()
    assert payload == json.loads(json.dumps(jsonable(library)))
    assert HEADLINE_KEYS <= payload.keys()
    assert {"level", "k", "weight_pct", "estimate", "ci_low", "ci_high", "tau2", "i2"} <= payload["subgroups"][0].keys()
    assert {"q", "df", "p", "i2"} <= payload["between"].keys()
    assert payload["k"] == 13


def test_command_line_overrides_spec() -> None:
    code, out, _ = invoke("reference", str(BCG_SPEC), "--json", "--method", "DL", "--test", "knha")
    assert code == 0
    payload = json.loads(out)
    assert (payload["method"], payload["test"]) == ("DL", "knha")
    spec = load_spec(BCG_SPEC).with_overrides({"reference.method": "DL", "reference.test": "knha"})
    assert payload["estimate"] == run_reference(spec).model.estimate


def test_data_file_with_measure() -> None:
    code, out, _ = invoke("reference", str(ROOT / "bayesmeta" / "datasets" / "bcg.csv"),
                          "--measure", "OR", "--method", "PM", "--json")
    assert code == 0
    assert json.loads(out)["measure"] == "OR"


@pytest.mark.parametrize(
    ("cell", "value", "fragment"),
    [("ai", "-1", "negative"), ("ai", "abc", "expected a number"), ("ci", "2.5", "non-negative integers")],
)
def test_bad_cells_exit_2_naming_file_row_column(tmp_path: Path, cell: str, value: str, fragment: str) -> None:
    rows = ["study,ai,n1i,ci,n2i", "A,3,10,5,10", "B,2,12,4,11", "C,1,9,6,10"]
    header = rows[0].split(",")
    fields = rows[2].split(",")
    fields[header.index(cell)] = value
    rows[2] = ",".join(fields)
    data = tmp_path / "trials.csv"
    data.write_text("\n".join(rows) + "\n")
    code, out, err = invoke("reference", str(data), "--measure", "RR", "--json")
    assert code == 2
    assert out == ""
    assert str(data) in err and "row 3" in err and f"'{cell}'" in err
    assert fragment in err.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv"]


def test_unknown_spec_key_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "m.toml"
    spec.write_text('[data]\ndataset = "bcg"\n[effect]\nmeasure = "RR"\nmesure = "OR"\n')
    code, _, err = invoke("reference", str(spec))
    assert code == 2
    assert "effect.mesure" in err
