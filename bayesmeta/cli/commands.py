"""Import every subcommand module so that each registers itself on the app."""

from bayesmeta.cli import fit, rebuild, reference, report, reproduce, sensitivity  # noqa: F401
