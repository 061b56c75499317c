"""Import every subcommand module so that each registers itself on the app."""

from bayesmeta.cli import fit, reference, sensitivity  # noqa: F401
