"""HTML report of run directories (Jinja2 templates, figures embedded as data URIs)."""

from bayesmeta.report.loader import Provenance, RunDir
from bayesmeta.report.report import print_pdf, render_report, write_report

__all__ = ["Provenance", "RunDir", "print_pdf", "render_report", "write_report"]
