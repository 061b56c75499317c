"""Reproduce a case study end to end: fits, prior sensitivity, fidelity and the HTML report.

``bayesmeta reproduce SPEC... --out DIR`` writes::

    DIR/
      runs/<spec name>/      one run directory per spec (see bayesmeta.rundir), with
                             sensitivity.csv / sensitivity.nc when a sweep was run
      sensitivity_<name>.csv the sensitivity table of each spec
      comparison_<name>.csv  paper vs frequentist vs Bayesian of each spec
      report.html            the self-contained report; figures/ holds PNG and SVG copies
      manifest.json          the specs, seeds and software versions used, and the command
      fidelity.csv, .md      when the specs of both Li et al. (2018) outcomes are given (``[published]
                             tables``): every published number beside the one reproduced from
                             the data they analyse, rebuilt or supplied (:mod:`bayesmeta.rebuild.fidelity`)

All fits of one call run in one process, so compiled models are reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayesmeta._json import write_json
from bayesmeta.runs import FitRun, fit_spec, save_run
from bayesmeta.rundir import software_versions
from bayesmeta.spec import Spec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CaseResult", "FidelityInputs", "fidelity_inputs", "reproduce"]

Step = Callable[[str], None]


@dataclass(frozen=True)
class CaseResult:
    """What :func:`reproduce` wrote."""

    out: Path
    runs: dict[str, Path]
    report: Path
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no fit reported a sampler problem."""
        return not any(self.problems.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary of the outputs."""
        return {"out": str(self.out), "runs": {k: str(v) for k, v in self.runs.items()},
                "report": str(self.report), "problems": self.problems}


def _problems(run: FitRun) -> list[str]:
    diag = run.fit.diagnostics
    return [] if diag is None else [p.message for p in diag.problems]


#: The outcomes of Li et al. (2018) whose full tables :mod:`bayesmeta.rebuild.fidelity` scores
#: (``[published] tables`` of a spec), by the data set each outcome's rebuilt data are bundled as.
LI2018_TABLES = {"li2018_incidence": "incidence", "li2018_number": "number"}


@dataclass(frozen=True)
class FidelityInputs:
    """The two Li et al. (2018) outcomes' data, read and checked before anything is fitted."""

    incidence: pd.DataFrame
    number: pd.DataFrame
    files: tuple[str, str] | None   # None: the bundled rebuilt data sets


def fidelity_inputs(specs: Sequence[Spec]) -> FidelityInputs | None:
    """Read the data of the specs marked ``[published] tables`` when both Li et al. (2018)
    outcomes are among them (else ``None``), and check they carry every column the scoring needs.

    The data are whatever the specs point at: the bundled rebuilt data sets, or (``[data] path``)
    a user's digitised forest plots in the same schema.

    Raises
    ------
    SpecError
        A marked spec filters its data (the tables describe whole outcomes).
    InputError
        A data file lacks a column (named with the file).
    """
    marked = {spec.published.tables: spec for spec in specs
              if spec.published is not None and spec.published.tables}
    if not set(LI2018_TABLES) <= set(marked):
        return None
    from bayesmeta.data import read_table
    from bayesmeta.errors import SpecError
    from bayesmeta.rebuild.fidelity import check_columns

    frames = []
    for name, outcome in LI2018_TABLES.items():
        spec = marked[name]
        if spec.data.filter:
            raise SpecError("published.tables scores a whole outcome; this spec filters its data",
                            file=spec.source, key="published.tables")
        path = spec.data_path()
        frame = read_table(path, columns=spec.data.columns or None, sheet=spec.data.sheet,
                           study=spec.data.study)
        check_columns(frame, outcome, file=path)
        frames.append(frame)
    bundled = all(marked[name].data.dataset == name for name in LI2018_TABLES)
    files = None if bundled else tuple(str(marked[name].data_path()) for name in LI2018_TABLES)
    return FidelityInputs(*frames, files=files)


def _write_fidelity(inputs: FidelityInputs | None, out: Path, say: Step) -> Path | None:
    """``fidelity.csv`` and ``fidelity.md``: every number Li et al. (2018) print beside the one
    reproduced from ``inputs`` (see :func:`fidelity_inputs`); nothing when ``inputs`` is None."""
    if inputs is None:
        return None
    from bayesmeta.rebuild.claims import text_claims
    from bayesmeta.rebuild.fidelity import fidelity_markdown, fidelity_table

    say("scoring the " + ("rebuilt" if inputs.files is None else "analysed")
        + " data against the published tables")
    table = fidelity_table(inputs.incidence, inputs.number)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "fidelity.csv", index=False, lineterminator="\n")
    (out / "fidelity.md").write_text(fidelity_markdown(
        table, data=inputs.files, claims=text_claims(inputs.incidence, inputs.number)), encoding="utf-8")
    return out / "fidelity.csv"


def reproduce(
    specs: Sequence[Spec],
    out: Path,
    *,
    sensitivity: bool | str = True,
    scheduler: Any = None,
    n_workers: int = 2,
    step: Step | None = None,
    pdf: bool = False,
) -> CaseResult:
    """Fit every spec, run its prior-sensitivity sweep, and write one report.

    Parameters
    ----------
    specs
        Loaded specs; each gets ``runs/<file stem>``.
    out
        Output folder (created; existing run directories are replaced atomically).
    sensitivity
        ``True``: run the default prior grid for every spec fitted by the exact engine (seconds);
        ``"all"``: also refit MCMC specs over the grid (minutes per spec); ``False``: none.
    scheduler, n_workers
        Passed to :func:`bayesmeta.sensitivity.run_sensitivity`.
    step
        Called with a short message before each step (the CLI shows it).
    pdf
        Also print the report to PDF with headless Chromium.
    """
    from bayesmeta.report.report import write_report
    from bayesmeta.sensitivity import run_sensitivity

    say = step or (lambda _msg: None)
    out = Path(out)
    scoring = fidelity_inputs(specs)   # bad data for the fidelity table fail before any fit
    runs: dict[str, Path] = {}
    problems: dict[str, list[str]] = {}
    for spec in specs:
        name = spec.source.stem if spec.source is not None else f"spec{len(runs) + 1}"
        say(f"fitting {name}")
        run = fit_spec(spec)
        extra = {}
        if sensitivity == "all" or (sensitivity and run.fit.engine == "exact"):
            say(f"prior sensitivity of {name}")
            sens = run_sensitivity(spec, scheduler=scheduler, n_workers=n_workers,
                                   data=run.reference.data)
            extra = {"sensitivity.csv": sens.to_csv, "sensitivity.nc": sens.to_netcdf}
            out.mkdir(parents=True, exist_ok=True)
            sens.to_csv(out / f"sensitivity_{name}.csv")
        runs[name] = save_run(run, out / "runs" / name, extra=extra)
        run.comparison.to_csv(out / f"comparison_{name}.csv")
        problems[name] = _problems(run)
    _write_fidelity(scoring, out, say)
    say("writing the report")
    report = write_report(list(runs.values()), out / "report.html", pdf=pdf, figures_dir=out / "figures")
    write_json(out / "manifest.json", {
        "specs": {name: str(spec.source) for name, spec in zip(runs, specs, strict=True)},
        "seeds": {name: spec.sampling.seed for name, spec in zip(runs, specs, strict=True)},
        "versions": software_versions(),
    })
    return CaseResult(out=out, runs=runs, report=report, problems=problems)
