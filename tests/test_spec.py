"""The TOML spec loader: valid specs load, every invalid one names its file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bayesmeta.errors import SpecError
from bayesmeta.spec import load_spec, spec_from_dict

MINIMAL = """
[data]
path = "trials.csv"

[effect]
measure = "RR"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_spec_has_documented_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL))
    assert spec.effect.measure == "RR"
    assert spec.effect.convention == "metafor"
    assert spec.reference.method == "REML"
    assert spec.sampling.engine == "auto"
    assert spec.data_path() == (tmp_path / "trials.csv").resolve()


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (MINIMAL + "\n[sampling]\ndraw = 100\n", "sampling.draw", "unknown key"),
        (MINIMAL + "colour = 'red'\n", "effect.colour", "unknown key"),
        (MINIMAL.replace('"RR"', '"HR"'), "effect.measure", "HR"),
        (MINIMAL + "\n[reference]\nmethod = 'XYZ'\n", "reference.method", "unknown method"),
        (MINIMAL + "\n[sampling]\nchains = 0\n", "sampling.chains", "greater than or equal to 1"),
        ("[effect]\nmeasure = 'RR'\n", "data", "missing"),
        (MINIMAL + "\n[published]\nestimate = 2.0\n", "published.source", "missing"),
    ],
)
def test_invalid_specs_name_file_and_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(path.resolve()) in str(info.value)


def test_data_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="exactly one of data.path or data.dataset"):
        load_spec(write(tmp_path, "[data]\nstudy = 'id'\n"))


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(write(tmp_path, "[data\npath = 1"))
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "absent.toml")


def test_overrides_replace_only_given_keys(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL))
    new = spec.with_overrides({"priors.tau": "halfcauchy(1)", "reference.method": None})
    assert new.priors.tau == "halfcauchy(1)"
    assert new.reference.method == spec.reference.method
    assert new.source == spec.source
    with pytest.raises(SpecError, match="unknown key"):
        spec.with_overrides({"priors.sigma": "halfnormal(1)"})


def test_resolved_spec_round_trips_through_toml(tmp_path: Path) -> None:
    text = MINIMAL + '\n[published]\nsource = "a paper"\nestimate = 2.04\n[data.filter]\ncancer = ["Breast"]\n'
    spec = load_spec(write(tmp_path, text))
    again = spec_from_dict(tomllib.loads(spec.to_toml()))
    assert again.data_path() == spec.data_path()  # written absolute, so it still resolves
    drop = {"source": True, "data": {"path"}}
    assert again.model_dump(exclude=drop) == spec.model_dump(exclude=drop)
