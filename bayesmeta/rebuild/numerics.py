"""A pinned numeric environment, so that a rebuild gives the same bits on every x86-64 machine.

The rebuild is a long search whose every step compares floating-point losses, so a difference
in the last bit of one ``exp`` or ``log`` eventually sends it down another path. NumPy picks its
SIMD kernels for ``exp``, ``log``, ``power``... at import from the CPU it finds (the AVX-512
kernels round differently from the AVX2 and baseline ones), and OpenBLAS picks its kernels the
same way. Measured on one machine (2026-12-04, numpy 2.5.5): the quick rebuild with NumPy's
dispatch limited to AVX2 differs from the unrestricted run from the first comparison on.

:func:`run_pinned` runs a function in a fresh interpreter whose environment limits NumPy to its
compiled-in baseline (``NPY_ENABLE_CPU_FEATURES``), fixes OpenBLAS's kernel family and uses one
BLAS thread, and relays progress messages back. Same package versions + x86-64 = same bits,
with one caveat beyond NumPy's control: glibc's libm selects FMA variants of ``exp``/``log`` on
CPUs with FMA (every x86-64 server CPU of the last decade), so a CPU without FMA could still differ.
Processes already started in that environment run the function in place.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["pinned_environment", "is_pinned", "run_pinned"]

#: OpenBLAS kernels for every x86-64 CPU with SSE3 (no AVX): the same on any machine.
OPENBLAS_CORETYPE = "Prescott"
#: Seconds between checks that the child process is still alive while waiting for it.
POLL_SECONDS = 1.0
PARENT_POLL_SECONDS = 0.5   # how often the child checks that its parent still waits for it


def pinned_environment() -> dict[str, str]:
    """Environment variables of the pinned numeric environment (NumPy's baseline SIMD only,
    generic OpenBLAS kernels, one BLAS/OpenMP thread)."""
    baseline = np.__config__.CONFIG["SIMD Extensions"]["baseline"]
    return {
        "NPY_ENABLE_CPU_FEATURES": " ".join(baseline),
        "OPENBLAS_CORETYPE": OPENBLAS_CORETYPE,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def is_pinned() -> bool:
    """Whether this process was started in the pinned environment."""
    return all(os.environ.get(k) == v for k, v in pinned_environment().items())


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _exit_with_parent(parent: int) -> None:
    """End this process when its parent is gone (killed without the chance to stop its child):
    a search nobody waits for would hold a core for minutes."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _child(out: Any, func: Callable[..., Any], args: tuple, kwargs: dict, parent: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()

    def step(message: str) -> None:
        out.put(("step", message))

    try:
        out.put(("result", func(*args, step=step, **kwargs)))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which re-raises it
        out.put(("error", exc))


def run_pinned(func: Callable[..., Any], *args: Any, step: Callable[[str], None] | None = None,
               **kwargs: Any) -> Any:
    """``func(*args, step=..., **kwargs)`` in the pinned numeric environment.

    Parameters
    ----------
    func
        A module-level function (it is pickled to a fresh interpreter) taking a ``step``
        callback; its result must pickle.
    step
        Receives ``func``'s progress messages.

    Raises
    ------
    Exception
        Whatever ``func`` raised; ``RuntimeError`` if the child process died without an answer.
    """
    relay = step or (lambda _message: None)
    if is_pinned():
        return func(*args, step=relay, **kwargs)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with _environ(pinned_environment()):
        proc = ctx.Process(target=_child, args=(out, func, args, kwargs, os.getpid()), daemon=True)
        proc.start()
    try:
        while True:
            try:
                kind, payload = out.get(timeout=POLL_SECONDS)
            except queue_module.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"the pinned rebuild process ended (exit code {proc.exitcode}) "
                                       "without a result") from None
                continue
            if kind == "step":
                relay(payload)
            elif kind == "error":
                raise payload
            else:
                return payload
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
