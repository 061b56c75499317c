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


def _sleep_recording_pid(path: str, *, step) -> None:
    """A long 'search' that leaves its pid in ``path``."""
    import time
    from pathlib import Path

    Path(path).write_text(str(os.getpid()))
    step("started")
    time.sleep(120)


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie waiting to be reaped has ended)."""
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:   # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_the_pinned_child_ends_when_its_parent_is_killed(tmp_path) -> None:
    """A parent killed without warning (SIGKILL: no finally, no atexit) cannot stop its child;
    the child notices it was orphaned and exits instead of searching on for minutes."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[2]); import test_rebuild_numerics as t; "
         "from bayesmeta.rebuild.numerics import run_pinned; run_pinned(t._sleep_recording_pid, sys.argv[1])",
         str(pid_file), os.path.dirname(__file__)])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "the child never started"
        time.sleep(0.2)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not _running(child):
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the orphaned child was still running 10 s after its parent died")
    finally:
        if parent.poll() is None:
            parent.kill()
