"""The `bayesmeta` command line: one module per subcommand, no logic of its own."""

from bayesmeta.cli.app import app, main

__all__ = ["app", "main"]
