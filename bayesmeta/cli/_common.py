"""Plumbing shared by the subcommands: errors to exit codes, warnings to the console, JSON out."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

from bayesmeta._json import dumps
from bayesmeta.errors import BayesmetaError, DataWarning, SamplerWarning

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def print_json(payload: dict[str, Any]) -> None:
    """Print one JSON object on stdout (nothing else goes to stdout under ``--json``)."""
    sys.stdout.write(dumps(payload) + "\n")
    sys.stdout.flush()


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    if issubclass(category, SamplerWarning):
        err_console.print(f"[bold red]SAMPLER PROBLEM:[/] {message}")
    elif issubclass(category, DataWarning):
        err_console.print(f"[yellow]data:[/] {message}")
    else:
        err_console.print(f"[dim]warning ({category.__name__}):[/] {message}")


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Turn package errors into a red message and their exit code; show warnings on stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            yield
        except BayesmetaError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(exc.exit_code) from None
