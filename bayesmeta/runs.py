"""A Bayesian fit of a spec, set beside its frequentist reference and the paper, saved as a run.

This is what ``bayesmeta fit`` does: :func:`fit_spec` computes, :func:`save_run` writes the
run directory atomically (layout in :mod:`bayesmeta.rundir`), :func:`load_run_summary` reads
one back. The CLI only parses options and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesmeta._json import write_json
from bayesmeta.comparison import Comparison, compare
from bayesmeta.effects import get_measure
from bayesmeta.inference import FitResult, Progress, fit
from bayesmeta.reference import ReferenceResult, run_reference
from bayesmeta.rundir import software_versions, write_atomically
from bayesmeta.spec import Spec

__all__ = ["FitRun", "fit_spec", "save_run"]

# Columns of the analysed data kept in the run directory (besides moderators).
_DATA_COLUMNS = ("label", "study", "yi", "vi", "sei", "ai", "bi", "ci", "di", "n1i", "n2i",
                 "m1i", "sd1i", "m2i", "sd2i")


@dataclass(frozen=True)
class FitRun:
    """One Bayesian fit with its frequentist reference and the comparison table.

    Attributes
    ----------
    spec
        The resolved spec (overrides applied).
    fit
        The Bayesian fit (exact engine or MCMC).
    reference
        The frequentist reference of the same data and spec.
    comparison
        Paper vs frequentist vs Bayesian, on the printed scale.
    """

    spec: Spec
    fit: FitResult
    reference: ReferenceResult
    comparison: Comparison

    @property
    def ok(self) -> bool:
        """True when no sampler diagnostic failed."""
        return self.fit.diagnostics is None or self.fit.diagnostics.ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result: the posterior summaries at the top level (``mu``, ``tau``, ``i2``…),
        then ``diagnostics``, ``comparison``, the frequentist ``reference`` and the settings."""
        fit_dict = self.fit.to_dict()
        summary = fit_dict.pop("summary")
        reference = self.reference.to_dict()
        reference.pop("studies", None)
        return {
            "title": self.spec.title,
            **summary,
            "diagnostics": fit_dict.pop("diagnostics"),
            **fit_dict,
            "comparison": self.comparison.to_dict(),
            "reference": reference,
        }


def fit_spec(spec: Spec, *, progress: Progress | None = None, strict_data: bool = False,
             extras: bool = True) -> FitRun:
    """Fit the spec's Bayesian model and its frequentist reference, and compare them.

    Parameters
    ----------
    spec
        A spec with any command-line overrides already applied (:meth:`Spec.with_overrides`).
    progress
        Optional callback receiving :class:`bayesmeta.inference.ProgressEvent`.
    strict_data
        Rows left out of the data become errors.
    extras
        Also run leave-one-out, Egger's test and trim-and-fill for the reference (cheap;
        the report plots them).
    """
    reference = run_reference(spec, strict=strict_data, leave_one_out=extras, bias=extras)
    result = fit(spec, progress=progress, data=reference.data)  # the data are read once
    scale = get_measure(spec.effect.measure).scale
    published = None if spec.published is None else spec.published.model_dump()
    frequentist = reference.to_dict()
    frequentist.pop("animals", None)
    for key in ("animals", "participants"):  # subjects are compared under the paper's own word
        if published is not None and published.get(key) is not None:
            frequentist[key] = reference.animals
    comparison = compare(published, frequentist, result.summary,
                         measure_scale="log" if scale == "log" else "identity")
    return FitRun(spec=spec, fit=result, reference=reference, comparison=comparison)


def _data_frame(run: FitRun) -> Any:
    data = run.reference.data
    keep = [c for c in _DATA_COLUMNS if c in data.columns]
    moderators = [c for c in data.columns if c not in keep and not c.startswith("_")
                  and c not in ("yi_corrected",)]
    return data[keep + moderators]


def save_run(run: FitRun, out: str | Path,
             extra: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write the run directory ``out`` all at once (nothing is left behind if writing fails).

    Parameters
    ----------
    run
        The fit to save.
    out
        The run directory.
    extra
        More files for the same directory (name → writer), e.g. ``sensitivity.csv``.
    """
    tree = run.fit.tree

    def write_tree(path: Path) -> None:
        tree.to_netcdf(path, engine="h5netcdf")

    writers = {
        "posterior.nc": write_tree,
        "summary.json": lambda p: write_json(p, run.to_dict()),
        "reference.json": lambda p: write_json(p, run.reference.to_dict()),
        "comparison.csv": lambda p: run.comparison.to_csv(p),
        "data.csv": lambda p: _data_frame(run).to_csv(p, index_label="row"),
        "spec.toml": lambda p: p.write_text(run.spec.to_toml(), encoding="utf-8"),
        "versions.json": lambda p: write_json(p, {**software_versions(),
                                                  "seed": run.spec.sampling.seed,
                                                  "spec_file": str(run.spec.source or "")}),
    }
    return write_atomically(Path(out), {**writers, **(extra or {})})
