"""The pinned metafor outputs are not stale: rerun every committed R script with live R and compare.

Each ``tests/reference/make_<area>.R OUT.json`` records its exact R calls and metafor's version.
The Python tests read the pins; this test proves the pins are what R says today.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parent / "reference"
SCRIPTS = sorted(REFERENCE.glob("make_*.R"))
# Same R, same data: only BLAS/libm differences may move the last bits.
RTOL_LIVE = 1e-9
ATOL_LIVE = 1e-12


def _compare(pinned: object, live: object, where: str) -> list[str]:
    if isinstance(pinned, dict) and isinstance(live, dict):
        if set(pinned) != set(live):
            return [f"{where}: keys differ: {sorted(set(pinned) ^ set(live))}"]
        return [d for k in pinned for d in _compare(pinned[k], live[k], f"{where}.{k}")]
    if isinstance(pinned, list) and isinstance(live, list):
        if len(pinned) != len(live):
            return [f"{where}: length {len(pinned)} != {len(live)}"]
        return [d for i, (a, b) in enumerate(zip(pinned, live)) for d in _compare(a, b, f"{where}[{i}]")]
    if isinstance(pinned, (int, float)) and isinstance(live, (int, float)) and not isinstance(pinned, bool):
        if math.isclose(pinned, live, rel_tol=RTOL_LIVE, abs_tol=ATOL_LIVE):
            return []
        return [f"{where}: pinned {pinned!r} != live {live!r}"]
    return [] if pinned == live else [f"{where}: pinned {pinned!r} != live {live!r}"]


def test_there_are_reference_scripts() -> None:
    assert len(SCRIPTS) >= 2, "expected the committed make_*.R scripts"


@pytest.mark.reference
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_pins_equal_live_r(script: Path, tmp_path: Path) -> None:
    rscript = shutil.which("Rscript")
    assert rscript, "Rscript is required (install r-base-core r-cran-metafor r-cran-metadat)"
    pinned_path = REFERENCE / (script.stem.removeprefix("make_") + ".json")
    assert pinned_path.exists(), f"{script.name} has no pinned output {pinned_path.name}"
    out = tmp_path / pinned_path.name
    run = subprocess.run([rscript, str(script), str(out)], cwd=REFERENCE.parents[1],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    diffs = _compare(json.loads(pinned_path.read_text()), json.loads(out.read_text()), pinned_path.stem)
    assert not diffs, "stale pins (rerun the script):\n" + "\n".join(diffs[:20])
