"""``bayesmeta reference``: the frequentist reference analysis (as metafor/RevMan compute it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bayesmeta.cli._common import console, guarded, print_json
from bayesmeta.cli.app import app


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def render(result: dict[str, Any]) -> None:
    """Print a reference result (its ``to_dict()``) as rich tables."""
    from bayesmeta.effects import get_measure

    measure = get_measure(result["measure"])
    natural = measure.scale == "log"
    head = Table(title=f"Random-effects model: {result['method']}, test {result['test']}, "
                       f"measure {result['measure']}", show_header=True)
    head.add_column("quantity")
    head.add_column("analysis scale", justify="right")
    if natural:
        head.add_column(f"{result['measure']} scale", justify="right")
    for key in ("estimate", "se", "ci_low", "ci_high", "pval", "pi_low", "pi_high", "tau2", "tau",
                "i2", "h2", "q", "q_df", "q_p", "k", "animals"):
        value = result.get(key)
        row = [key, _fmt(value)]
        if natural:
            shown = key in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high") and value is not None
            row.append(_fmt(float(measure.to_natural(value))) if shown else "")
        head.add_row(*row)
    console.print(head)
    analyses = result.get("subgroup_analyses") or (
        {result["subgroup"]: {"subgroups": result["subgroups"], "between": result["between"]}}
        if "subgroups" in result else {}
    )
    for column, analysis in analyses.items():
        table = Table(title=f"Subgroups by {column}")
        cols = ["level", "k", "weight_pct", "estimate", "ci_low", "ci_high", "tau2", "i2"]
        for c in cols:
            table.add_column(c, justify="right")
        for row in analysis["subgroups"]:
            table.add_row(*[_fmt(row.get(c), 3) for c in cols])
        b = analysis["between"]
        console.print(table)
        console.print(f"  test for subgroup differences: Q = {_fmt(b['q'], 3)}, df = {b['df']}, "
                      f"p = {_fmt(b['p'], 3)}, I² = {_fmt(b['i2'], 3)}%")
    for key in ("regtest", "regtest_n", "trimfill", "selection"):
        if key in result:
            console.print(f"[bold]{key}[/]: {result[key]}")


@app.command("reference")
def reference(
    target: Annotated[Path, typer.Argument(help="A model spec (.toml) or a data file (CSV, Excel, Parquet).")],
    measure: Annotated[str | None, typer.Option(help="RR, OR, RD, SMD or MD (not needed with yi/vi).")] = None,
    method: Annotated[str | None, typer.Option(help="tau² estimator: DL REML ML PM SJ HE EB (or FE).")] = None,
    test: Annotated[str | None, typer.Option(help="z (Wald) or knha (Knapp–Hartung).")] = None,
    convention: Annotated[str | None, typer.Option(help="metafor or revman effect-size conventions.")] = None,
    subgroup: Annotated[list[str] | None, typer.Option(help="Moderator column for a subgroup analysis.")] = None,
    leave1out: Annotated[bool, typer.Option("--leave1out", help="Also run leave-one-out.")] = False,
    bias: Annotated[bool, typer.Option("--bias", help="Also run Egger's test and trim-and-fill.")] = False,
    selection: Annotated[str | None, typer.Option(help='ML selection model, e.g. "stepfun(0.025, 0.5)".')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Rows left out become errors.")] = False,
) -> None:
    """Fit the frequentist random-effects model (the reference for every Bayesian fit)."""
    from bayesmeta.reference import run_reference, spec_or_data

    with guarded():
        spec, from_toml = spec_or_data(target, measure=measure, method=method, test=test,
                                       convention=convention)
        if from_toml:
            spec = spec.with_overrides({"effect.measure": measure, "reference.method": method,
                                        "reference.test": test, "effect.convention": convention})
        result = run_reference(spec, subgroups=subgroup or None, leave_one_out=leave1out, bias=bias,
                               selection=selection, strict=strict)
        payload = result.to_dict()
    if as_json:
        print_json(payload)
    else:
        render(payload)
