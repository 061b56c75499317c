"""``bayesmeta rebuild li2018``: rebuild the Li et al. (2018) datasets from the published tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayesmeta.cli._common import console, err_console, guarded, print_json
from bayesmeta.cli.app import app

CASES = ("li2018",)


@app.command("rebuild")
def rebuild_command(
    case: Annotated[str, typer.Argument(help="The case to rebuild: li2018.")],
    out: Annotated[Path, typer.Option(help="Folder for li2018_incidence.csv, li2018_number.csv, fidelity.csv.")] = Path("rebuilt"),
    seed: Annotated[int | None, typer.Option(help="Seed of the search (default: the one the bundled data used).")] = None,
    budget: Annotated[str, typer.Option(help="default (the bundled data) or quick.")] = "default",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search integer arm data and labels against every published number (RevMan 5 conventions).

    The result is REBUILT data, consistent with the paper's tables, not the primary studies' data.
    With the default seed and budget it reproduces the bundled CSVs byte for byte.
    """
    from bayesmeta.errors import InputError
    from bayesmeta.rebuild.claims import text_claims
    from bayesmeta.rebuild.fidelity import fidelity_markdown, fidelity_table
    from bayesmeta.rebuild.li2018 import DEFAULT_SEED, rebuild_li2018
    from bayesmeta.rundir import write_atomically

    with guarded():
        if case not in CASES:
            raise InputError(f"unknown case {case!r}; available: {', '.join(CASES)}")
        with err_console.status("searching (minutes with the default budget)") as status:
            def step(message: str) -> None:
                status.update(f"searching: {message}")

            result = rebuild_li2018(seed=DEFAULT_SEED if seed is None else seed, budget=budget, step=step)

        def csvs(name: str):  # noqa: ANN202 - writer for one frame
            frame = getattr(result, name)
            return lambda path: frame.to_csv(path, index=False, lineterminator="\n")

        table = fidelity_table(result.incidence, result.number)
        write_atomically(out, {
            "li2018_incidence.csv": csvs("incidence"),
            "li2018_number.csv": csvs("number"),
            "fidelity.csv": lambda path: table.to_csv(path, index=False, lineterminator="\n"),
            "fidelity.md": lambda path: path.write_text(fidelity_markdown(
                table, claims=text_claims(result.incidence, result.number)), encoding="utf-8"),
        })
        payload = result.to_dict()
    if as_json:
        print_json(payload)
    else:
        console.print(f"rebuilt datasets and fidelity table written to {out} "
                      f"({result.seconds:.0f} s, seed {result.seed})")
