"""The pinned numeric environment of the rebuild (bayesmeta.rebuild.numerics).

The rebuild's bits depend on which SIMD kernels NumPy dispatches to (measured: AVX-512 against
AVX2 changes the quick rebuild from the first stage on); the pinned child process must run
NumPy's compiled-in baseline only, whatever this machine offers.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bayesmeta.rebuild.numerics import OPENBLAS_CORETYPE, is_pinned, pinned_environment, run_pinned


def _simd_in_use(*, step) -> dict:
    """What a process sees of NumPy's dispatched SIMD features and the BLAS environment."""
    from numpy._core import _multiarray_umath as umath

    step("inspected")
    enabled = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    return {"pid": os.getpid(), "dispatched": enabled, "coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "threads": os.environ.get("OPENBLAS_NUM_THREADS")}


def _fails(*, step) -> None:
    step("about to fail")
    raise ValueError("raised in the child")


def test_pinned_child_runs_numpy_baseline_kernels_only() -> None:
    steps: list[str] = []
    seen = run_pinned(_simd_in_use, step=steps.append)
    assert seen["pid"] != os.getpid()
    assert seen["dispatched"] == []
    assert (seen["coretype"], seen["threads"]) == (OPENBLAS_CORETYPE, "1")
    assert steps == ["inspected"]
    assert pinned_environment()["NPY_ENABLE_CPU_FEATURES"] == " ".join(
        np.__config__.CONFIG["SIMD Extensions"]["baseline"])
    assert not is_pinned() or os.environ.get("OPENBLAS_CORETYPE") == OPENBLAS_CORETYPE


def test_child_errors_are_raised_in_the_parent() -> None:
    steps: list[str] = []
    with pytest.raises(ValueError, match="raised in the child"):
        run_pinned(_fails, step=steps.append)
    assert steps == ["about to fail"]


def test_a_pinned_process_runs_the_function_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in pinned_environment().items():
        monkeypatch.setenv(key, value)
    assert is_pinned()
    assert run_pinned(_simd_in_use)["pid"] == os.getpid()


def test_rebuild_rejects_an_unknown_numerics_mode() -> None:
    from bayesmeta.rebuild import rebuild_li2018

    with pytest.raises(ValueError, match="'pinned' or 'native'"):
        rebuild_li2018(budget="quick", numerics="fast")
