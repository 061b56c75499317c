"""Every spec under models/ loads, its priors parse, and its data load with the declared measure."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bayesmeta.errors import DataWarning
from bayesmeta.priors import parse_prior
from bayesmeta.spec import load_data, load_spec

SPECS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.toml"))


def test_models_folder_has_the_reference_case() -> None:
    names = {p.stem for p in SPECS}
    assert {"li2018_incidence", "li2018_number", "li2018_number_breast"} <= names


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_is_valid_and_its_data_load(path: Path) -> None:
    spec = load_spec(path)
    parse_prior(spec.priors.mu, target="location")
    parse_prior(spec.priors.tau, target="scale")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_data(spec)
    # The only data warnings a bundled spec may raise: zero cells corrected (announced, not silent).
    for w in caught:
        assert issubclass(w.category, DataWarning) and "continuity correction" in str(w.message), w
    assert len(data) >= 2
    assert data["vi"].gt(0).all()
    for column in [*spec.reference.subgroups, *spec.model.moderators, *filter(None, [spec.model.subgroup])]:
        assert column in data.columns, f"{path.name}: no column {column!r}"
    if spec.published is not None and spec.published.k is not None and not spec.data.filter:
        assert len(data) == spec.published.k
