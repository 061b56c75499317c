"""Contour-enhanced funnel plot (Peters et al. 2008, J Clin Epidemiol 61:991–996).

Each study is a point at its effect (x, natural scale; log axis for ratio
measures) and standard error (y, inverted so that large studies are at the
top). Shaded bands centred on the null show where a study's two-sided
p-value falls between the significance levels (by default 0.10, 0.05, 0.01);
dashed lines give the pseudo-confidence funnel around the pooled estimate.
Vertical lines mark the frequentist estimate, the posterior median of ``mu``
and, when there is one, the selection-model-adjusted estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import stats

from bayesmeta.errors import InputError
from bayesmeta.plots._draws import as_draws
from bayesmeta.plots._style import COLORS, effect_scale, style

__all__ = ["funnel_plot"]

_SHADES = ("#E4E4E4", "#C2C2C2", "#999999")  # p in (0.05, 0.10], (0.01, 0.05], <= 0.01 for the defaults


def funnel_plot(
    data: pd.DataFrame,
    *,
    measure: str | None = None,
    frequentist: Mapping | None = None,
    posterior=None,  # noqa: ANN001
    selection: Mapping | None = None,
    levels: Sequence[float] = (0.90, 0.95, 0.99),
    title: str | None = None,
    label_studies: int = 0,
) -> Figure:
    """Contour-enhanced funnel plot.

    Parameters
    ----------
    data
        ``yi`` and ``vi`` (or ``sei``) on the analysis scale, optionally ``label``.
        Rows with missing ``yi`` are left out.
    measure
        Measure code (log axis for RR and OR).
    frequentist
        ``RMAResult.to_dict()``; its ``estimate`` centres the pseudo-confidence funnel.
    posterior
        Posterior draws; the median of ``mu`` is marked.
    selection
        A selection-model result with ``estimate`` (and optional ``label``), marked
        as the bias-adjusted estimate.
    levels
        Confidence levels of the significance contours (two-sided).
    title
        Figure title.
    label_studies
        Label this many studies with the largest absolute standardised residual.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if "yi" not in data.columns or not ({"vi", "sei"} & set(data.columns)):
        raise InputError("funnel plot data need yi and vi (or sei)")
    yi = data["yi"].to_numpy(dtype=float)
    sei = data["sei"].to_numpy(dtype=float) if "sei" in data.columns else np.sqrt(data["vi"].to_numpy(dtype=float))
    ok = np.isfinite(yi) & np.isfinite(sei)
    yi, sei = yi[ok], sei[ok]
    labels = data["label"].astype(str).to_numpy()[ok] if "label" in data.columns else None
    if yi.size == 0:
        raise InputError("no study has an estimable effect size to draw in a funnel plot")
    scale = effect_scale(measure)
    levels = sorted(levels)
    se_max = float(sei.max()) * 1.08
    se_grid = np.linspace(0.0, se_max, 200)
    z = [stats.norm.ppf(0.5 + lev / 2) for lev in levels]
    center = float(frequentist["estimate"]) if frequentist and frequentist.get("estimate") is not None else \
        float(np.sum(yi / sei**2) / np.sum(1 / sei**2))
    with style():
        fig = Figure(figsize=(6.4, 6.0))
        ax = fig.add_subplot()
        x_extent = max(np.max(np.abs(yi)) * 1.1, z[-1] * se_max * 1.05, abs(center) + 1.96 * se_max)
        lo_x, hi_x = -x_extent, x_extent
        # Shaded significance bands around the null, from the outermost (most significant) inwards.
        edges = list(z) + [np.inf]  # inf * 0 at se = 0 is avoided by np.minimum below
        se_pos = np.where(se_grid > 0, se_grid, np.finfo(float).tiny)
        handles = []
        for j in range(len(z)):
            inner, outer = edges[j], edges[j + 1]
            for sign in (-1, 1):
                a = sign * inner * se_grid
                b = sign * np.minimum(outer * se_pos, x_extent)
                ax.fill_betweenx(se_grid, scale.show(a), scale.show(b), color=_SHADES[j % len(_SHADES)], lw=0,
                                 zorder=0)
            p_hi = 1 - levels[j]
            p_lo = 1 - levels[j + 1] if j + 1 < len(levels) else 0.0
            text = f"{p_lo:g} < p ≤ {p_hi:g}" if p_lo > 0 else f"p ≤ {p_hi:g}"
            handles.append(Patch(facecolor=_SHADES[j % len(_SHADES)], edgecolor="#888888", lw=0.5, label=text))
        handles.insert(0, Patch(facecolor="white", edgecolor="#888888", lw=0.5, label=f"p > {1 - levels[0]:g}"))
        # Pseudo-95% confidence funnel around the pooled estimate.
        z95 = stats.norm.ppf(0.975)
        for sign in (-1, 1):
            ax.plot(scale.show(center + sign * z95 * se_grid), se_grid, color="black", lw=0.8, ls="--", zorder=1)
        ax.plot([scale.show(center)] * 2, [0, se_max], color=COLORS["frequentist"], lw=1.2, zorder=1,
                label=f"Frequentist estimate ({scale.fmt(center)})")
        if posterior is not None:
            draws = as_draws(posterior)
            if "mu" in draws and draws["mu"].ndim == 1:
                m = float(np.median(draws["mu"]))
                ax.plot([scale.show(m)] * 2, [0, se_max], color=COLORS["posterior"], lw=1.2, ls="-.", zorder=1,
                        label=f"Posterior median μ ({scale.fmt(m)})")
        if selection is not None and selection.get("estimate") is not None:
            s = float(selection["estimate"])
            name = selection.get("label", "Selection-model adjusted")
            ax.plot([scale.show(s)] * 2, [0, se_max], color=COLORS["selection"], lw=1.6, ls=":", zorder=1,
                    label=f"{name} ({scale.fmt(s)})")
        ax.scatter(scale.show(yi), sei, s=22, facecolor="white", edgecolor="black", lw=1.0, zorder=3,
                   label=f"Studies (k = {yi.size})")
        if labels is not None and label_studies > 0:
            resid = np.abs(yi - center) / sei
            for i in np.argsort(-resid)[:label_studies]:
                ax.annotate(labels[i], (scale.show(yi[i]), sei[i]), xytext=(4, 2), textcoords="offset points",
                            fontsize=8)
        if scale.log:
            ax.set_xscale("log")
        ax.set_xlim(scale.show(lo_x), scale.show(hi_x))
        scale.apply(ax)
        ax.set_ylim(se_max, 0)
        ax.set_ylabel("Standard error")
        ax.axvline(scale.null, color="black", lw=0.6, zorder=1)
        line_handles, _ = ax.get_legend_handles_labels()
        lines_legend = ax.legend(handles=line_handles, loc="upper left", bbox_to_anchor=(-0.02, -0.13),
                                 frameon=False, fontsize=8.5)
        ax.add_artist(lines_legend)
        ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.02, -0.13), frameon=False, fontsize=8.5,
                  title="Shading: two-sided p against no effect", title_fontsize=8.5)
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig
