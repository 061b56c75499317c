"""Prior-sensitivity plot: the posterior of mu and tau under each prior of a grid.

One row per prior combination; the left panel shows ``mu`` (natural scale,
log axis for ratio measures) with its credible interval, the right panel
``tau``. Rows whose conclusion differs from the primary analysis (for
instance the credible interval of ``mu`` now covers the null) are drawn in
red and flagged in the label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesmeta.errors import InputError
from bayesmeta.plots._style import COLORS, effect_scale, style

__all__ = ["sensitivity_plot", "sensitivity_table"]

_STATS = ("median", "q025", "q975")


def sensitivity_table(grid: pd.DataFrame | xr.Dataset) -> pd.DataFrame:
    """Normalise a prior-sensitivity result to one row per prior combination.

    Parameters
    ----------
    grid
        A DataFrame, or an ``xr.Dataset`` with one dimension over the prior
        combinations, holding ``tau_prior``, ``mu_prior``, ``mu_median``,
        ``mu_q025``, ``mu_q975``, ``tau_median``, ``tau_q025``, ``tau_q975`` and
        optionally ``conclusion_changes`` (bool) and ``primary`` (bool, the
        analysis reported as main).

    Returns
    -------
    pandas.DataFrame
    """
    frame = grid.to_dataframe().reset_index() if isinstance(grid, xr.Dataset) else grid.reset_index(drop=True)
    need = {"tau_prior", "mu_prior"} | {f"{v}_{s}" for v in ("mu", "tau") for s in _STATS}
    missing = need - set(frame.columns)
    if missing:
        raise InputError(f"sensitivity table lacks column(s) {', '.join(sorted(missing))}")
    if "conclusion_changes" not in frame.columns:
        frame["conclusion_changes"] = False
    if "primary" not in frame.columns:
        frame["primary"] = False
    frame["conclusion_changes"] = frame["conclusion_changes"].astype(bool)
    frame["primary"] = frame["primary"].astype(bool)
    return frame


def sensitivity_plot(
    grid: pd.DataFrame | xr.Dataset,
    *,
    measure: str | None = None,
    level_label: str = "95% CrI",
    title: str | None = None,
) -> Figure:
    """Posterior of ``mu`` and ``tau`` under each prior (see :func:`sensitivity_table` for the input).

    Parameters
    ----------
    grid
        The prior-sensitivity result.
    measure
        Measure code; ``mu`` is drawn on the natural scale.
    level_label
        Name of the interval in the legend.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    frame = sensitivity_table(grid)
    scale = effect_scale(measure)
    n = len(frame)
    labels = [
        f"τ ~ {t}, μ ~ {m}" + ("  (primary)" if p else "") + ("  ◆ changes" if c else "")
        for t, m, p, c in zip(frame["tau_prior"], frame["mu_prior"], frame["primary"], frame["conclusion_changes"],
                              strict=True)
    ]
    label_in = max(len(s) for s in labels) * 0.075 + 0.2
    height = 1.5 + 0.3 * n
    y = np.arange(n)
    colors = np.where(frame["conclusion_changes"], COLORS["changed"], COLORS["posterior"])
    with style():
        fig = Figure(figsize=(label_in + 6.4, height))
        ax_mu, ax_tau = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.3, 1.0]})
        for i in range(n):
            r = frame.iloc[i]
            ax_mu.plot([scale.show(r["mu_q025"]), scale.show(r["mu_q975"])], [i, i], color=colors[i], lw=1.6)
            ax_mu.plot([scale.show(r["mu_median"])], [i], "o", color=colors[i], ms=5,
                       mfc="white" if r["primary"] else colors[i])
            ax_tau.plot([r["tau_q025"], r["tau_q975"]], [i, i], color=colors[i], lw=1.6)
            ax_tau.plot([r["tau_median"]], [i], "o", color=colors[i], ms=5, mfc="white" if r["primary"] else colors[i])
        ax_mu.axvline(scale.null, color="black", lw=0.7)
        prim = frame.index[frame["primary"]]
        if len(prim):
            ax_mu.axvline(scale.show(frame.loc[prim[0], "mu_median"]), color=COLORS["prior"], lw=0.8, ls="--")
            ax_tau.axvline(frame.loc[prim[0], "tau_median"], color=COLORS["prior"], lw=0.8, ls="--")
        ax_mu.set_yticks(y, labels)
        for tick, c in zip(ax_mu.get_yticklabels(), colors, strict=True):
            tick.set_color(c)
        ax_mu.set_ylim(n - 0.5, -0.5)
        if scale.log:
            ax_mu.set_xscale("log")
        scale.apply(ax_mu)
        ax_mu.set_xlabel(f"μ, {scale.label.lower()}" + (" (log scale)" if scale.log else ""))
        ax_tau.set_xlabel("τ (between-study SD)")
        ax_tau.set_xlim(left=0)
        ax_mu.set_title(f"Pooled effect (median, {level_label})", fontsize=10)
        ax_tau.set_title(f"Heterogeneity (median, {level_label})", fontsize=10)
        handles = [Line2D([], [], color=COLORS["posterior"], marker="o", lw=1.6, label="Same conclusion"),
                   Line2D([], [], color=COLORS["changed"], marker="o", lw=1.6, label="Conclusion changes")]
        if len(prim):
            handles.append(Line2D([], [], color=COLORS["posterior"], marker="o", mfc="white", lw=0,
                                  label="Primary analysis"))
        fig.legend(handles=handles, loc="lower center", ncols=len(handles), frameon=False, fontsize=9)
        if title:
            fig.suptitle(title, fontsize=11, fontweight="bold")
        fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
    return fig
