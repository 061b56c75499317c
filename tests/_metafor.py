"""Shared comparison against metafor pins (tests/reference/*.json made by make_*.R)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parent / "reference"

# Same algorithms as metafor (closed forms in the same order, Fisher scoring, R's uniroot
# iterates): rounding only, measured worst 5.8e-10 relative (an ill-conditioned meta-regression
# on calendar years), ~1e-12 elsewhere.
RTOL_METAFOR = 1e-8
# Floor for quantities that are ~0 (a limit estimate or an RD near 0): absolute rounding
# ~1e-16 x O(1) inputs.
ATOL_METAFOR = 1e-13


def load_pins(name: str) -> Any:
    """The pinned metafor output ``tests/reference/<name>.json``."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


def assert_matches(got: Any, ref: Any, where: str) -> None:
    """Recursive comparison: numbers within RTOL/ATOL, None only where metafor has NA/NULL."""
    if isinstance(ref, list):
        assert isinstance(got, (list, tuple)) and len(got) == len(ref), f"{where}: length {got!r} vs {ref!r}"
        for i, (a, b) in enumerate(zip(got, ref, strict=True)):
            assert_matches(a, b, f"{where}[{i}]")
        return
    if ref is None:
        assert got is None, f"{where}: metafor has no value, we have {got!r}"
        return
    if isinstance(ref, str):
        assert got == ref, f"{where}: {got!r} != {ref!r}"
        return
    assert got is not None, f"{where}: metafor has {ref!r}, we have None"
    assert math.isclose(got, ref, rel_tol=RTOL_METAFOR, abs_tol=ATOL_METAFOR), (
        f"{where}: {got!r} != metafor {ref!r} (rel err {abs(got - ref) / max(abs(ref), 1e-300):.2e})")
