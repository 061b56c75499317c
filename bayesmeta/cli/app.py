"""The typer application; subcommands register themselves from their own modules."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="Bayesian meta-analysis with an exact frequentist reference.")


@app.callback()
def _root() -> None:
    """Bayesian meta-analysis with an exact frequentist reference (metafor-compatible)."""


def main() -> None:
    """Entry point of the console script."""
    from bayesmeta.cli import commands  # noqa: F401  (registers subcommands)

    app()
