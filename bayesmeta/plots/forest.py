"""Posterior forest plot: observed and shrunken study effects, pooled and predictive intervals.

One row per study shows the observed estimate with its confidence interval
(black square, area proportional to the weight) and, just below it, the
posterior of the study's true effect ``theta`` with its credible interval
(blue circle). Text columns give the arm data (events/total or mean (SD) n),
both intervals on the natural scale and the weight. The bottom rows give the
posterior of ``mu`` (diamond), the predictive interval of a new study
(``theta_new``) and the frequentist random-effects estimate with its
prediction interval for comparison. Ratio measures are drawn on a log axis
labelled on the natural scale.

Large meta-analyses: :func:`forest_plot` draws every row in one figure whose
height grows with the number of rows (0.28 in per row, fonts unchanged);
:func:`forest_pages` splits the rows into pages of at most ``rows_per_page``
rows that share the x-axis and repeat the pooled rows, so that each page can
be printed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.textpath import TextToPath

from bayesmeta.errors import InputError
from bayesmeta.plots._forest_rows import ForestRow, arm_kind, forest_rows
from bayesmeta.plots._style import COLORS, EffectScale, effect_scale, style

__all__ = ["forest_plot", "forest_pages", "forest_rows", "ForestRow"]

ROW_HEIGHT_IN = 0.28  # one study row: two intervals and a 9-pt text line
FONT_SIZE = 9.0
PLOT_WIDTH_IN = 3.4
MAX_LABEL_CHARS = 38
_TEXT = TextToPath()
_PROP = FontProperties(family="DejaVu Sans", size=FONT_SIZE)
_PROP_BOLD = FontProperties(family="DejaVu Sans", size=FONT_SIZE, weight="bold")


@functools.lru_cache(maxsize=4096)
def _text_width_in(s: str, bold: bool = False) -> float:
    if not s:
        return 0.0
    w, _, _ = _TEXT.get_text_width_height_descent(s, _PROP_BOLD if bold else _PROP, ismath=False)
    return w / 72.0


# --------------------------------------------------------------------------- drawing


def _truncate(label: str, n: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _xlim(rows: Sequence[ForestRow], scale: EffectScale) -> tuple[float, float]:
    """Display-scale limits covering every point estimate and pooled interval, padded."""
    core: list[float] = []
    ends: list[float] = []
    for r in rows:
        for iv in (r.observed, r.posterior):
            if iv is None:
                continue
            if r.kind == "study":
                core.append(iv[0])
                ends += [iv[1], iv[2]]
            else:
                core += list(iv)
    core_arr = np.asarray([c for c in core if np.isfinite(c)] or [0.0])
    ends_arr = np.asarray([e for e in ends if np.isfinite(e)] or core_arr)
    lo, hi = core_arr.min(), core_arr.max()
    width = max(hi - lo, 0.2)
    # Study CIs may extend the axis by up to one core width; beyond that they get arrows.
    lo = max(min(lo, np.quantile(ends_arr, 0.05)), lo - width) - 0.05 * width
    hi = min(max(hi, np.quantile(ends_arr, 0.95)), hi + width) + 0.05 * width
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # always show the null
    return float(scale.show(lo)), float(scale.show(hi))


def _interval(ax, y: float, iv, color: str, lim: tuple[float, float], scale: EffectScale, lw: float = 1.2,  # noqa: ANN001
              ls: str = "-") -> None:
    """One interval line, with an arrow head where it is cut by the axis limits."""
    _study_intervals(ax, [y], [iv], color, lim, scale, lw=lw, ls=ls)


def _study_intervals(ax, ys, ivs, color: str, lim: tuple[float, float], scale: EffectScale,  # noqa: ANN001
                     lw: float = 1.2, ls: str = "-") -> None:
    """Many intervals as one LineCollection (fast for hundreds of studies); arrows where clipped."""
    if not ys:
        return
    ivs = np.asarray(ivs, dtype=float)
    ys = np.asarray(ys, dtype=float)
    lo, hi = scale.show(ivs[:, 1]), scale.show(ivs[:, 2])
    a, b = np.maximum(lo, lim[0]), np.minimum(hi, lim[1])
    keep = b > a
    segs = [[(x0, y), (x1, y)] for x0, x1, y in zip(a[keep], b[keep], ys[keep], strict=True)]
    ax.add_collection(LineCollection(segs, colors=color, linewidths=lw, linestyles=ls, capstyle="butt", zorder=2),
                      autolim=False)
    for edge, clipped, marker in ((lim[0], lo < lim[0], "<"), (lim[1], hi > lim[1], ">")):
        if clipped.any():
            ax.plot(np.full(clipped.sum(), edge), ys[clipped], ls="none", marker=marker, color=color, ms=4, zorder=3,
                    clip_on=False)


def _diamond(ax, y: float, iv, color: str, scale: EffectScale, filled: bool = True, half: float = 0.3) -> None:  # noqa: ANN001
    m, lo, hi = (scale.show(v) for v in iv)
    poly = Polygon([[lo, y], [m, y + half], [hi, y], [m, y - half]], closed=True,
                   facecolor=color if filled else "white", edgecolor=color, lw=1.2, zorder=3)
    ax.add_patch(poly)


def _columns(rows: Sequence[ForestRow], arm_kind: str | None, arm_labels: tuple[str, str], level: float,
             has_posterior: bool) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """(key, header, width in inches) of the left and right text columns."""
    pct = f"{100 * level:g}%"

    def width(key: str, header: str, bold_rows: bool = False) -> float:
        vals = [_text_width_in(header, bold=True)]
        for r in rows:
            vals.append(_text_width_in(_cell(r, key, pct), bold=bold_rows and r.kind == "header"))
        return max(vals) + 0.15

    arm_hdr = {"counts": "events/total", "means": "mean (SD) n"}
    left = [("label", "Study", 0.0)]
    if arm_kind is not None:
        left += [("arm1", f"{arm_labels[0]}\n{arm_hdr[arm_kind]}", 0.0), ("arm2", f"{arm_labels[1]}\n{arm_hdr[arm_kind]}", 0.0)]
    right = [("observed", f"Observed\n[{pct} CI]", 0.0)]
    if has_posterior:
        right.append(("posterior", f"Posterior\n[{pct} CrI]", 0.0))
    right.append(("weight", "Weight\n(%)", 0.0))
    left_w = []
    for k, h, _ in left:
        w = max(width(k, line) for line in h.split("\n"))
        if k == "label":
            w = max(w, max((_text_width_in(r.label, bold=r.kind in {"header"}) + 0.15) for r in rows if r.kind != "note"))
        left_w.append((k, h, w))
    right_w = [(k, h, max(width(k, line) for line in h.split("\n"))) for k, h, _ in right]
    return left_w, right_w


def _cell(r: ForestRow, key: str, pct: str) -> str:
    """Text of column ``key`` in row ``r`` (on the analysis scale unless formatted later)."""
    if key == "label":
        return "" if r.kind == "note" else _truncate(r.label)
    if key in ("arm1", "arm2"):
        return getattr(r, key)
    return ""  # numeric columns are formatted in _draw_text (needs the scale); widths estimated from samples


def _number_cells(r: ForestRow, scale: EffectScale, digits: int) -> dict[str, str]:
    out = {}
    if r.observed is not None and r.kind in {"study", "freq", "freq_pi"}:
        est, lo, hi = r.observed
        out["observed"] = f"[{scale.fmt(lo, digits)}, {scale.fmt(hi, digits)}]" if r.kind == "freq_pi" \
            else scale.fmt_interval(est, lo, hi, digits)
    elif r.kind == "study":
        out["observed"] = "not estimable"
    if r.posterior is not None:
        med, lo, hi = r.posterior
        out["posterior"] = f"[{scale.fmt(lo, digits)}, {scale.fmt(hi, digits)}]" if r.kind == "predictive" \
            else scale.fmt_interval(med, lo, hi, digits)
    if r.weight is not None and np.isfinite(r.weight):
        out["weight"] = f"{r.weight:.1f}" if r.weight >= 0.05 else "<0.1"
    return out


def forest_plot(
    data: pd.DataFrame,
    posterior=None,  # noqa: ANN001
    *,
    measure: str | None = None,
    frequentist: Mapping | None = None,
    subgroup: str | None = None,
    subgroup_results: Mapping[str, Mapping] | None = None,
    level: float = 0.95,
    arm_labels: tuple[str, str] = ("Treatment", "Control"),
    title: str | None = None,
    digits: int = 2,
    xlim: tuple[float, float] | None = None,
    rows: Sequence[ForestRow] | None = None,
) -> Figure:
    """Posterior forest plot of all rows in one figure (height grows with the rows).

    Parameters
    ----------
    data
        Analysed data: ``label``, ``yi``, ``vi`` (analysis scale) and optional arm
        columns (``ai n1i ci n2i`` or ``ai bi ci di``; ``m1i sd1i n1i m2i sd2i n2i``)
        and the ``subgroup`` column.
    posterior
        Posterior draws with ``mu``, ``tau``, ``i2``, ``theta`` (dim ``study``,
        labels = ``data.label``), ``theta_new``: an ``xr.DataTree`` with a
        ``posterior`` group, an ``xr.Dataset`` or a mapping of arrays. With a
        subgroup model, ``mu`` has one column per subgroup level (its coordinate
        holds the level names). ``None`` draws the observed data only.
    measure
        Measure code; ratio measures (RR, OR) are drawn on a log axis.
    frequentist
        ``RMAResult.to_dict()``: ``estimate, ci_low, ci_high, pi_low, pi_high, tau2,
        i2, weights`` (and optionally ``method``).
    subgroup, subgroup_results
        Column of ``data`` to group rows by, and per level a frequentist result
        dict (``estimate, ci_low, ci_high``) for the subgroup pooled rows.
    level
        Interval level (0.95).
    arm_labels
        Names of arm 1 and arm 2 in the column headers.
    title
        Figure title.
    digits
        Decimals of the interval texts.
    xlim
        Display-scale x limits (default: fitted to the estimates).
    rows
        Precomputed rows (used by :func:`forest_pages`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    scale = effect_scale(measure)
    rows = list(rows) if rows is not None else forest_rows(
        data, posterior, frequentist=frequentist, subgroup=subgroup, subgroup_results=subgroup_results, level=level)
    has_post = any(r.posterior is not None for r in rows)
    left, right = _columns(rows, arm_kind(data), arm_labels, level, has_post)
    # Numeric columns: widths from the formatted texts.
    cells = [_number_cells(r, scale, digits) for r in rows]
    right = [(k, h, max([w] + [_text_width_in(c.get(k, "")) + 0.2 for c in cells])) for k, h, w in right]
    lim = xlim or _xlim(rows, scale)
    return _draw(rows, cells, left, right, scale, lim, level, title)


def _draw(rows, cells, left, right, scale: EffectScale, lim, level: float, title: str | None) -> Figure:  # noqa: ANN001, C901
    notes = [r.label for r in rows if r.kind == "note"]
    kept = [(r, c) for r, c in zip(rows, cells, strict=True) if r.kind != "note"]
    rows, cells = [r for r, _ in kept], [c for _, c in kept]
    n = len(rows)
    left_w = sum(w for _, _, w in left)
    right_w = sum(w for _, _, w in right)
    margin_l, margin_r, gap = 0.1, 0.1, 0.15
    top_in = 0.55 + (0.3 if title else 0.0)
    bottom_in = 0.8 + 0.22 * len(notes)
    width = margin_l + left_w + gap + PLOT_WIDTH_IN + gap + right_w + margin_r
    height = top_in + n * ROW_HEIGHT_IN + bottom_in
    with style():
        fig = Figure(figsize=(width, height))
        y0, y1 = bottom_in / height, 1 - top_in / height

        def axes(x_in: float, w_in: float):  # noqa: ANN202
            ax = fig.add_axes((x_in / width, y0, w_in / width, y1 - y0))
            ax.set_ylim(n - 0.5, -0.5)
            return ax

        ax_l = axes(margin_l, left_w)
        ax = axes(margin_l + left_w + gap, PLOT_WIDTH_IN)
        ax_r = axes(margin_l + left_w + gap + PLOT_WIDTH_IN + gap, right_w)
        for a, w in ((ax_l, left_w), (ax_r, right_w)):
            a.set_xlim(0, w)
            a.axis("off")
        pct = f"{100 * level:g}%"

        # Headers, top aligned just above the first row.
        def headers(a, cols, align_right: bool) -> None:  # noqa: ANN001
            x = 0.0
            for key, hdr, w in cols:
                xt = x + w - 0.1 if align_right and key != "label" else x
                a.text(xt, -0.7, hdr, ha="right" if align_right and key != "label" else "left", va="bottom",
                       fontsize=FONT_SIZE, fontweight="bold", linespacing=1.1)
                x += w

        headers(ax_l, left, align_right=False)
        headers(ax_r, right, align_right=True)
        # Header rule
        for a in (ax_l, ax, ax_r):
            a.axhline(-0.55, color="black", lw=0.8, clip_on=False)

        if scale.log:
            ax.set_xscale("log")
        ax.set_xlim(*lim)
        scale.apply(ax)
        ax.axvline(scale.null, color="black", lw=0.8, zorder=1)
        ax.spines["left"].set_visible(False)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=9)

        w_study = np.array([r.weight for r in rows if r.kind == "study" and r.weight is not None and np.isfinite(r.weight)])
        w_max = w_study.max() if w_study.size else 1.0
        pooled_mu = next((r.posterior[0] for r in rows if r.kind == "bayes" and r.group is None), None)
        if pooled_mu is not None:
            study_ys = [i for i, r in enumerate(rows) if r.kind == "study"]
            if study_ys:
                ax.plot([scale.show(pooled_mu)] * 2, [min(study_ys) - 0.5, max(study_ys) + 0.5],
                        color=COLORS["pooled"], lw=0.8, ls="--", zorder=1)

        obs_y: list[float] = []
        obs_iv: list = []
        obs_ms: list[float] = []
        post_y: list[float] = []
        post_iv: list = []
        for i, (r, c) in enumerate(zip(rows, cells, strict=True)):
            bold = r.kind == "header"
            x = 0.0
            for key, _, w in left:
                txt = r.label if key == "label" and r.kind == "note" else _cell(r, key, pct)
                if key == "label" and r.kind in {"bayes", "predictive", "freq", "freq_pi"}:
                    txt = _truncate(r.label, 60)
                ax_l.text(x, i, txt, ha="left", va="center", fontsize=FONT_SIZE,
                          fontweight="bold" if bold else "normal",
                          color=_row_color(r), clip_on=False)
                x += w
            x = 0.0
            for key, _, w in right:
                if key in c:
                    ax_r.text(x + w - 0.1, i, c[key], ha="right", va="center", fontsize=FONT_SIZE, color=_row_color(r))
                x += w
            if r.kind == "study":
                if r.observed is not None:
                    obs_y.append(i - 0.13)
                    obs_iv.append(r.observed)
                    obs_ms.append(3 + 7 * np.sqrt(r.weight / w_max) if r.weight and np.isfinite(r.weight) else 4)
                if r.posterior is not None:
                    post_y.append(i + 0.17)
                    post_iv.append(r.posterior)
            if r.kind == "bayes":
                _diamond(ax, i, r.posterior, COLORS["pooled"], scale)
            elif r.kind == "predictive":
                _interval(ax, i, r.posterior, COLORS["predictive"], lim, scale, lw=5)
            elif r.kind == "freq":
                _diamond(ax, i, r.observed, COLORS["frequentist"], scale, filled=False)
            elif r.kind == "freq_pi":
                _interval(ax, i, r.observed, COLORS["frequentist"], lim, scale, lw=1.5, ls="--")
            if r.kind == "header" and i > 0:
                for a in (ax_l, ax, ax_r):
                    a.axhline(i - 0.5, color=COLORS["grid"], lw=0.6, clip_on=False)

        _study_intervals(ax, obs_y, obs_iv, COLORS["observed"], lim, scale)
        if obs_y:
            est = scale.show(np.asarray(obs_iv)[:, 0])
            inside = (est >= lim[0]) & (est <= lim[1])
            # scatter sizes are areas in pt²; square side = marker size in pt as plot(ms=...) would draw
            ax.scatter(est[inside], np.asarray(obs_y)[inside], s=np.asarray(obs_ms)[inside] ** 2, marker="s",
                       color=COLORS["observed"], zorder=3, linewidths=0)
        _study_intervals(ax, post_y, post_iv, COLORS["posterior"], lim, scale)
        if post_y:
            ax.plot(scale.show(np.asarray(post_iv)[:, 0]), post_y, ls="none", marker="o", ms=3.5,
                    color=COLORS["posterior"], zorder=3)
        handles = [
            Line2D([], [], color=COLORS["observed"], marker="s", ms=5, lw=1.2, label=f"Observed, {pct} CI"),
        ]
        if any(r.posterior is not None and r.kind == "study" for r in rows):
            handles.append(Line2D([], [], color=COLORS["posterior"], marker="o", ms=4, lw=1.2,
                                  label=f"Posterior θ, {pct} CrI"))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.5 / (n * ROW_HEIGHT_IN)),
                  ncols=len(handles), frameon=False, fontsize=8.5, handlelength=1.6, columnspacing=1.0)
        for j, note in enumerate(notes):
            fig.text(margin_l / width, (0.12 + 0.22 * (len(notes) - 1 - j)) / height, note, ha="left", va="bottom",
                     fontsize=FONT_SIZE)
        if title:
            fig.text(0.5, 1 - 0.12 / height, title, ha="center", va="top", fontsize=11, fontweight="bold")
    return fig


def _row_color(r: ForestRow) -> str:
    return {"bayes": COLORS["pooled"], "predictive": COLORS["pooled"], "freq": COLORS["frequentist"],
            "freq_pi": COLORS["frequentist"]}.get(r.kind, "black")


def forest_pages(
    data: pd.DataFrame,
    posterior=None,  # noqa: ANN001
    *,
    rows_per_page: int = 40,
    title: str | None = None,
    **kwargs,
) -> list[Figure]:
    """Forest plot split into pages of at most ``rows_per_page`` study rows.

    Every page shares the x-axis limits of the whole plot and ends with the
    overall pooled rows (Bayesian μ, predictive interval, frequentist estimate),
    so that each page is read on its own. A subgroup split over two pages repeats
    its header with "(continued)". Parameters as :func:`forest_plot`.

    Returns
    -------
    list of matplotlib.figure.Figure
        One figure when everything fits on a page.
    """
    if rows_per_page < 5:
        raise InputError("rows_per_page must be at least 5")
    level = kwargs.get("level", 0.95)
    rows = forest_rows(data, posterior, frequentist=kwargs.get("frequentist"), subgroup=kwargs.get("subgroup"),
                       subgroup_results=kwargs.get("subgroup_results"), level=level)
    n_study = sum(r.kind == "study" for r in rows)
    if n_study <= rows_per_page:
        return [forest_plot(data, posterior, title=title, rows=rows, **kwargs)]
    scale = effect_scale(kwargs.get("measure"))
    lim = kwargs.pop("xlim", None) or _xlim(rows, scale)
    tail_start = next(i for i in range(len(rows) - 1, -1, -1) if rows[i].group is not None or rows[i].kind == "study") + 1
    body, tail = rows[:tail_start], [r for r in rows[tail_start:] if r.kind != "header"]
    pages: list[list[ForestRow]] = [[]]
    count = 0
    current_header: ForestRow | None = None
    for r in body:
        if r.kind == "header":
            current_header = r
            if count >= rows_per_page:  # no orphan header at the foot of a full page
                pages.append([])
                count = 0
        if r.kind == "study":
            if count == rows_per_page:
                pages.append([])
                count = 0
                if current_header is not None and r.group == current_header.group:
                    pages[-1].append(ForestRow("header", f"{current_header.label} (continued)", group=r.group))
            count += 1
        pages[-1].append(r)
    figs = []
    for p, page in enumerate(pages, start=1):
        page_rows = page + ([ForestRow("header", "Overall (all studies)")] if tail else []) + tail
        page_title = f"{title + ' — ' if title else ''}page {p} of {len(pages)}"
        figs.append(forest_plot(data, posterior, title=page_title, rows=page_rows, xlim=lim, **kwargs))
    return figs
