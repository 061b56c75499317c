"""Figures of a meta-analysis: each function returns a matplotlib Figure (save with ``save_figure``)."""

from bayesmeta.plots._style import save_figure
from bayesmeta.plots.forest import forest_pages, forest_plot
from bayesmeta.plots.funnel import funnel_plot
from bayesmeta.plots.posteriors import (
    leave_one_out_plot,
    posterior_densities,
    prior_posterior_plot,
    rank_plot,
    trace_plot,
)
from bayesmeta.plots.sensitivity import sensitivity_plot

__all__ = [
    "forest_pages",
    "forest_plot",
    "funnel_plot",
    "leave_one_out_plot",
    "posterior_densities",
    "prior_posterior_plot",
    "rank_plot",
    "save_figure",
    "sensitivity_plot",
    "trace_plot",
]
