"""Test-wide settings: a persistent PyTensor compile cache, a headless matplotlib, artifact folder."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Compiling a PyMC model costs seconds; a cache shared by all test processes makes refits cheap.
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")
os.environ.setdefault("MPLBACKEND", "Agg")
ARTIFACTS.mkdir(exist_ok=True)
