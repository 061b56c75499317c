"""Every name in bayesmeta.__all__ resolves, and importing the package loads no PyMC."""

from __future__ import annotations

import subprocess
import sys

import bayesmeta


def test_every_public_name_resolves() -> None:
    for name in bayesmeta.__all__:
        assert getattr(bayesmeta, name) is not None, name


def test_import_is_light() -> None:
    code = "import sys, bayesmeta; bayesmeta.rma; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
