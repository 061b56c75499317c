"""Dependencies point one way: the reference layers never import PyMC, PyTensor or ArviZ."""

from __future__ import annotations

import subprocess
import sys

import pytest

LOWER_LAYERS = [
    "bayesmeta.errors",
    "bayesmeta.data",
    "bayesmeta.effects",
    "bayesmeta.frequentist",
    "bayesmeta.spec",
    "bayesmeta.priors",
    "bayesmeta.reference",
]
HEAVY = ("pymc", "pytensor", "arviz", "arviz_base", "arviz_stats", "arviz_plots", "numpyro", "jax")


@pytest.mark.parametrize("module", LOWER_LAYERS)
def test_lower_layer_does_not_import_heavy_packages(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"
