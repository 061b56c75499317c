"""``bayesmeta sensitivity``: refit a spec under a grid of priors on Dask and tabulate the conclusions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bayesmeta.cli._common import console, err_console, guarded, print_json
from bayesmeta.cli.app import app


def render(frame: Any) -> None:
    """Print the per-prior table (one row per prior combination)."""
    table = Table(title="Prior sensitivity")
    cols = ["tau_prior", "mu_prior", "engine", "mu_median", "mu_q025", "mu_q975", "tau_median",
            "i2_median", "p_effect", "conclusion_changes"]
    present = [c for c in cols if c in frame.columns]
    for c in present:
        table.add_column(c, justify="left" if c.endswith("prior") else "right")
    for _, row in frame.iterrows():
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in present]
        if row.get("conclusion_changes"):
            cells = [f"[bold red]{c}[/]" for c in cells]
        table.add_row(*cells)
    console.print(table)


@app.command("sensitivity")
def sensitivity_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="A model spec (.toml).")],
    tau_priors: Annotated[str | None, typer.Option(help='";"-separated, e.g. "halfnormal(0.5);halfcauchy(1)"')] = None,
    mu_priors: Annotated[str | None, typer.Option(help='";"-separated, e.g. "normal(0, 10);flat"')] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler, or 'serial'.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Workers of the local Dask cluster.")] = 2,
    out: Annotated[Path | None, typer.Option(help="Write sensitivity.nc and sensitivity.csv here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Fit the model under every combination of the listed priors (default: a grid of 20+)."""
    from bayesmeta.rundir import write_atomically
    from bayesmeta.sensitivity import run_sensitivity
    from bayesmeta.spec import load_spec

    with guarded():
        spec = load_spec(spec_path)
        columns = (TextColumn("prior fits"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True, disable=as_json) as bar:
            task = bar.add_task("fits", total=None)
            result = run_sensitivity(spec, tau_priors=tau_priors, mu_priors=mu_priors,
                                     scheduler=scheduler, n_workers=workers,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
        if out is not None:
            write_atomically(out, {"sensitivity.nc": result.to_netcdf, "sensitivity.csv": result.to_csv})
        payload = result.to_dict()
    if as_json:
        print_json(payload)
    else:
        render(result.to_frame())
