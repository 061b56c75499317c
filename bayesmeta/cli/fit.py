"""``bayesmeta fit``: a Bayesian fit of a spec (or a data file) into a run directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bayesmeta.cli._common import console, err_console, guarded, print_json
from bayesmeta.cli.app import app


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr fed by :class:`bayesmeta.inference.ProgressEvent`."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=1)

        def update(event: Any) -> None:
            bar.update(task, description=f"{event.stage} {event.message}".strip(),
                       completed=event.done, total=max(event.total, 1))

        yield update


def render(payload: dict[str, Any]) -> None:
    """Print a fit's summary, diagnostics and comparison table."""
    table = Table(title=f"{payload.get('title') or 'Posterior'} — engine {payload['engine']}"
                        + (f" ({payload['sampler']})" if payload.get("sampler") else ""))
    for col in ("quantity", "median", "mean", "sd", "q025", "q975"):
        table.add_column(col, justify="right")
    for name in ("mu", "tau", "tau2", "i2", "theta_new"):
        stats = payload.get(name)
        if isinstance(stats, dict) and "median" in stats:
            table.add_row(name, *[f"{stats[s]:.4g}" for s in ("median", "mean", "sd", "q025", "q975")])
    console.print(table)
    p = payload.get("p_mu_positive")
    if isinstance(p, float):
        console.print(f"P(mu > 0) = {p:.4f}")
    comp = Table(title="Paper vs frequentist reproduction vs posterior (printed scale)")
    cols = ("quantity", "published", "frequentist", "bayes_median", "bayes_q025", "bayes_q975")
    for col in cols:
        comp.add_column(col, justify="right")
    flags = []
    for row in payload["comparison"]["rows"]:
        comp.add_row(*[("" if row.get(c) is None else f"{row[c]:.4g}" if isinstance(row.get(c), float)
                        else str(row.get(c))) for c in cols])
        if row.get("flag"):
            flags.append(f"{row['quantity']}: {row['flag']}")
    console.print(comp)
    for flag in flags:
        console.print(f"  [red]flag[/] {flag}")
    diag = payload.get("diagnostics") or {}
    if diag.get("problems"):
        err_console.print(f"[bold red]{len(diag['problems'])} sampler problem(s): do not trust this fit "
                          "before reading them.[/]")
    elif diag:
        console.print("[green]diagnostics: all checks passed[/]")


@app.command("fit")
def fit_command(
    target: Annotated[Path, typer.Argument(help="A model spec (.toml) or a data file.")],
    out: Annotated[Path | None, typer.Option(help="Run directory to write (atomically).")] = None,
    engine: Annotated[str | None, typer.Option(help="auto | exact | mcmc")] = None,
    sampler: Annotated[str | None, typer.Option(help="nutpie | pymc | numpyro")] = None,
    measure: Annotated[str | None, typer.Option(help="RR, OR, RD, SMD, MD (data files).")] = None,
    family: Annotated[str | None, typer.Option(help="normal | binomial")] = None,
    tau_prior: Annotated[str | None, typer.Option(help='e.g. "halfnormal(0.5)", "turner2015(...)"')] = None,
    mu_prior: Annotated[str | None, typer.Option(help='e.g. "normal(0, 10)" or "flat"')] = None,
    bias: Annotated[str | None, typer.Option(help='"stepfun(0.025, 0.5)", "pet" or "peese"')] = None,
    chains: Annotated[int | None, typer.Option(min=1)] = None,
    draws: Annotated[int | None, typer.Option(min=10)] = None,
    tune: Annotated[int | None, typer.Option(min=0)] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Sampler problems or dropped rows fail the run.")] = False,
) -> None:
    """Fit the Bayesian model and set it beside the frequentist reference and the paper."""
    from bayesmeta.diagnostics import strict_exit_code, warn_problems
    from bayesmeta.reference import spec_or_data
    from bayesmeta.runs import fit_spec, save_run

    with guarded():
        spec, _ = spec_or_data(target, measure=measure)
        spec = spec.with_overrides({
            "effect.measure": measure, "model.family": family, "model.bias": bias,
            "priors.tau": tau_prior, "priors.mu": mu_prior, "sampling.engine": engine,
            "sampling.sampler": sampler, "sampling.chains": chains, "sampling.draws": draws,
            "sampling.tune": tune, "sampling.seed": seed,
        })
        with progress_bar(enabled=not as_json) as update:
            run = fit_spec(spec, progress=update, strict_data=strict)
        if run.fit.diagnostics is not None:
            warn_problems(run.fit.diagnostics)
        if out is not None:
            save_run(run, out)
        payload = run.to_dict()
    if as_json:
        print_json(payload)
    else:
        render(payload)
        if out is not None:
            console.print(f"run directory written: {out}")
    if strict and run.fit.diagnostics is not None:
        code = strict_exit_code(run.fit.diagnostics)
        if code:
            err_console.print("[bold red]--strict: failing because of sampler problems[/]")
            raise typer.Exit(code)
