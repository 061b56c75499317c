"""``bayesmeta report``: a self-contained HTML report of one or more run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayesmeta.cli._common import console, guarded
from bayesmeta.cli.app import app


@app.command("report")
def report_command(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Run directories of `bayesmeta fit --out`.")],
    out: Annotated[Path, typer.Option(help="Folder for report.html and figures/.")] = Path("report"),
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print report.pdf with headless Chromium.")] = False,
) -> None:
    """Write report.html (figures embedded; PNG and SVG copies in figures/)."""
    from bayesmeta.report.report import write_report

    with guarded():
        html = write_report(list(run_dirs), out / "report.html", pdf=pdf, figures_dir=out / "figures")
    console.print(f"report written: {html}")
