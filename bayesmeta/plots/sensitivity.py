"""Prior-sensitivity plot: the posterior of mu and tau under each prior of a grid.

One row per prior combination; the left panel shows ``mu`` (natural scale,
log axis for ratio measures) with its credible interval, the right panel
``tau``. Rows whose conclusion differs from the primary analysis (for
instance the credible interval of ``mu`` now covers the null) are drawn in
red and flagged in the label.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextToPath

from bayesmeta.errors import InputError
from bayesmeta.plots._style import COLORS, effect_scale, style

__all__ = ["sensitivity_plot", "sensitivity_table"]

_STATS = ("median", "q025", "q975")
_TEXT = TextToPath()
_PROP = FontProperties(family="DejaVu Sans", size=9)


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


_MARKERS = ("o", "s", "^", "D", "v", "P")
LABEL_WRAP = 34  # characters per line of a prior label
ROW_BASE_IN, ROW_PER_MU_IN, LINE_IN = 0.16, 0.16, 0.17


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LABEL_WRAP, break_long_words=False, break_on_hyphens=False)) or text


def sensitivity_plot(
    grid: pd.DataFrame | xr.Dataset,
    *,
    measure: str | None = None,
    level_label: str = "95% CrI",
    title: str | None = None,
) -> Figure:
    """Posterior of ``mu`` and ``tau`` under each prior (see :func:`sensitivity_table` for the input).

    One row per tau prior; within a row one interval per mu prior (marker shape in the
    legend). Intervals whose conclusion differs from the primary analysis are red; the
    primary analysis has an open marker and sets the dashed reference lines.

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
    taus = list(dict.fromkeys(frame["tau_prior"].astype(str)))
    mus = list(dict.fromkeys(frame["mu_prior"].astype(str)))
    if len(mus) > len(_MARKERS):
        raise InputError(f"at most {len(_MARKERS)} mu priors can be drawn in one sensitivity plot, got {len(mus)}")
    failed = frame["error"].map(lambda e: isinstance(e, str) and bool(e)) if "error" in frame.columns \
        else pd.Series(False, index=frame.index)
    labels = [_wrap(f"τ ~ {t}") for t in taus]
    lines_per_row = [lab.count("\n") + 1 for lab in labels]
    heights = [max(ROW_BASE_IN + ROW_PER_MU_IN * len(mus), LINE_IN * n + 0.08) for n in lines_per_row]
    centers = np.cumsum(heights) - np.asarray(heights) / 2
    offsets = {m: (j - (len(mus) - 1) / 2) * ROW_PER_MU_IN for j, m in enumerate(mus)}  # inches within a row
    label_in = max(0.8, max(_text_width(line) for lab in labels for line in lab.split("\n")) + 0.15)
    height = 1.35 + float(np.sum(heights)) + (0.3 if title else 0.0)
    with style():
        fig = Figure(figsize=(label_in + 7.0, height))
        ax_mu, ax_tau = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.3, 1.0]})
        row_of = {t: i for i, t in enumerate(taus)}
        for i in range(len(frame)):
            r = frame.iloc[i]
            y = centers[row_of[str(r["tau_prior"])]] + offsets[str(r["mu_prior"])]
            color = COLORS["changed"] if r["conclusion_changes"] else COLORS["posterior"]
            marker = _MARKERS[mus.index(str(r["mu_prior"]))]
            face = "white" if r["primary"] else color
            if failed.iloc[i]:
                ax_mu.text(scale.null, y, " fit failed", va="center", fontsize=8, color=COLORS["changed"])
                continue
            ax_mu.plot([scale.show(r["mu_q025"]), scale.show(r["mu_q975"])], [y, y], color=color, lw=1.4)
            ax_mu.plot([scale.show(r["mu_median"])], [y], marker=marker, color=color, ms=5, mfc=face)
            ax_tau.plot([r["tau_q025"], r["tau_q975"]], [y, y], color=color, lw=1.4)
            ax_tau.plot([r["tau_median"]], [y], marker=marker, color=color, ms=5, mfc=face)
        ax_mu.axvline(scale.null, color="black", lw=0.7)
        prim = frame.index[frame["primary"]]
        if len(prim):
            ax_mu.axvline(scale.show(frame.loc[prim[0], "mu_median"]), color=COLORS["prior"], lw=0.8, ls="--")
            ax_tau.axvline(frame.loc[prim[0], "tau_median"], color=COLORS["prior"], lw=0.8, ls="--")
        ax_mu.set_yticks(centers, labels)
        changed_taus = set(frame.loc[frame["conclusion_changes"], "tau_prior"].astype(str))
        for tick, t in zip(ax_mu.get_yticklabels(), taus, strict=True):
            tick.set_color(COLORS["changed"] if t in changed_taus else "black")
        for a in (ax_mu, ax_tau):
            a.set_ylim(float(np.sum(heights)), 0.0)
            a.tick_params(axis="y", length=0)
        for edge in np.cumsum(heights)[:-1]:
            for a in (ax_mu, ax_tau):
                a.axhline(edge, color=COLORS["grid"], lw=0.5)
        if scale.log:
            ax_mu.set_xscale("log")
        scale.apply(ax_mu)
        ax_mu.set_xlabel(f"μ, {scale.label.lower()}" + (" (log scale)" if scale.log else ""))
        ax_tau.set_xlabel("τ (between-study SD)")
        ax_tau.set_xlim(left=0)
        ax_mu.set_title(f"Pooled effect (median, {level_label})", fontsize=10)
        ax_tau.set_title(f"Heterogeneity (median, {level_label})", fontsize=10)
        handles = [Line2D([], [], color="black", marker=_MARKERS[j], lw=0, label=f"μ ~ {m}") for j, m in
                   enumerate(mus)]
        handles += [Line2D([], [], color=COLORS["posterior"], lw=1.4, label="Same conclusion"),
                    Line2D([], [], color=COLORS["changed"], lw=1.4, label="Conclusion changes")]
        if len(prim):
            handles.append(Line2D([], [], color="black", marker="o", mfc="white", lw=0, label="Primary analysis"))
        fig.legend(handles=handles, loc="lower center", ncols=min(len(handles), 4), frameon=False, fontsize=9)
        if title:
            fig.suptitle(title, fontsize=11, fontweight="bold")
        n_legend_rows = -(-len(handles) // 4)
        fig.tight_layout(rect=(0, (0.2 + 0.22 * n_legend_rows) / height, 1, 1))
    return fig


def _text_width(text: str) -> float:
    """Width in inches of ``text`` at the tick-label size."""
    w, _, _ = _TEXT.get_text_width_height_descent(text, _PROP, ismath=False)
    return w / 72.0
