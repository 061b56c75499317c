"""Timing helpers for the benchmarks: timed subprocesses (wall + CPU), repeats, machine info.

Imports nothing from bayesmeta, PyMC or ArviZ, so that the parent process of a benchmark stays
cheap and its own imports never count in a measured child.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "CpuClock",
    "Repeats",
    "TimedRun",
    "machine_info",
    "package_versions",
    "repeat_timing",
    "run_timed",
]


@dataclass(frozen=True)
class TimedRun:
    """One finished subprocess: wall seconds, CPU seconds (user + sys of the child and all the
    descendants it waited for), return code and output."""

    cmd: tuple[str, ...]
    wall: float
    cpu: float
    returncode: int
    stdout: str
    stderr: str

    def to_dict(self) -> dict[str, Any]:
        return {"cmd": list(self.cmd), "wall": self.wall, "cpu": self.cpu,
                "returncode": self.returncode,
                "stderr_tail": self.stderr[-2000:] if self.returncode else ""}


def run_timed(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | Path | None = None, timeout: float | None = None) -> TimedRun:
    """Run ``cmd`` and time it end to end (wall clock, and CPU from the reaped child's rusage)."""
    before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    wall = time.perf_counter() - start
    # communicate() has reaped the child: its rusage (and that of every descendant it waited
    # for) is now part of RUSAGE_CHILDREN. Children run one at a time here.
    cpu = _children_cpu() - before
    return TimedRun(cmd=tuple(cmd), wall=wall, cpu=cpu, returncode=proc.returncode,
                    stdout=out, stderr=err)


def _children_cpu() -> float:
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return c.ru_utime + c.ru_stime


class CpuClock:
    """CPU seconds of this process (all threads) plus its reaped children."""

    def __init__(self) -> None:
        self.start = self.now()

    @staticmethod
    def now() -> float:
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def elapsed(self) -> float:
        return self.now() - self.start


@dataclass(frozen=True)
class Repeats:
    """Wall times of repeated calls of one function (seconds)."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    def to_dict(self) -> dict[str, Any]:
        return {"n": len(self.times), "median": self.median, "min": self.best,
                "max": max(self.times)}


def repeat_timing(func: Callable[[], Any], *, repeat: int, warmup: int = 1) -> Repeats:
    """Time ``func()`` ``repeat`` times (one call each, after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        func()
    timer = timeit.Timer(func, timer=time.perf_counter)
    return Repeats(tuple(timer.repeat(repeat=repeat, number=1)))


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed distribution versions (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _cpuinfo() -> dict[str, Any]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {"model": platform.processor() or None}
    model = None
    flags: set[str] = set()
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags}


def _meminfo_gib() -> float | None:
    path = Path("/proc/meminfo")
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, OS, load average (the machine may be shared)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "cpu": _cpuinfo(),
        "mem_gib": _meminfo_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "rscript": shutil.which("Rscript"),
    }
