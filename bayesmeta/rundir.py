"""Run directories: everything one fit produced, written atomically.

Layout (read by :mod:`bayesmeta.report`)::

    RUN/
      posterior.nc       the DataTree (NetCDF, h5netcdf)
      summary.json       FitResult.to_dict(): summary, settings, engine, measure, diagnostics
      reference.json     the frequentist reference (ReferenceResult.to_dict())
      comparison.csv     paper vs frequentist vs Bayesian
      data.csv           the analysed rows (label, yi, vi, arm columns, moderators)
      spec.toml          the resolved spec (command-line overrides applied)
      versions.json      software versions, platform, seed
      <extra>            optional: sensitivity.csv/.nc, selection.json …

A directory is written to a temporary sibling first and renamed into place, so a failed run
leaves no half-written output and an earlier run at the same path stays intact until the new
one is complete.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILES", "package_versions", "software_versions", "write_atomically"]

RUN_FILES = ("posterior.nc", "summary.json", "reference.json", "comparison.csv", "data.csv",
             "spec.toml", "versions.json")

_PACKAGES = ("bayesmeta", "numpy", "scipy", "pandas", "xarray", "pymc", "pytensor", "arviz",
             "arviz-base", "arviz-stats", "arviz-plots", "nutpie", "numpyro", "jax", "dask",
             "distributed", "matplotlib")


def package_versions(*names: str) -> dict[str, str]:
    """Installed version of each named distribution (``"not installed"`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def software_versions() -> dict[str, str]:
    """Versions of Python, the platform and every package a result depends on."""
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            **package_versions(*_PACKAGES)}


def write_atomically(out: Path, writers: Mapping[str, Callable[[Path], None]]) -> Path:
    """Create directory ``out`` holding one file per writer, all or nothing.

    Parameters
    ----------
    out
        The run directory. An existing one is replaced only once the new one is complete.
    writers
        File name → function that writes that file at the path it is given.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, write in writers.items():
            write(staging / name)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            old.rmdir()
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
