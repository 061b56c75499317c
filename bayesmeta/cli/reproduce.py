"""``bayesmeta reproduce``: fits, prior sensitivity and the report for a set of specs, in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayesmeta.cli._common import console, err_console, guarded, print_json
from bayesmeta.cli.app import app


@app.command("reproduce")
def reproduce_command(
    specs: Annotated[list[Path], typer.Argument(metavar="SPEC...", help="Model specs (.toml).")],
    out: Annotated[Path, typer.Option(help="Output folder (runs/, report.html, tables).")] = Path("report"),
    sensitivity: Annotated[bool, typer.Option(help="Run the default prior-sensitivity grid per spec.")] = True,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (default: a local cluster).")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print report.pdf.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail when any fit has sampler problems.")] = False,
) -> None:
    """Reproduce a case study: every spec fitted, swept over priors, and reported."""
    from bayesmeta.reproduce import reproduce
    from bayesmeta.spec import load_spec

    with guarded():
        loaded = [load_spec(p) for p in specs]
        with err_console.status("starting") as status:
            result = reproduce(loaded, out, sensitivity=sensitivity, scheduler=scheduler, pdf=pdf,
                               step=lambda msg: status.update(msg))
    if as_json:
        print_json(result.to_dict())
    else:
        for name, path in result.runs.items():
            console.print(f"{name}: {path}")
        console.print(f"report: {result.report}")
    for name, messages in result.problems.items():
        for message in messages:
            err_console.print(f"[bold red]SAMPLER PROBLEM ({name}):[/] {message}")
    if strict and not result.ok:
        raise typer.Exit(3)
