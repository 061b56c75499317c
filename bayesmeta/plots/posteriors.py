"""Posterior densities, prior versus posterior, MCMC rank and trace plots, leave-one-out.

Densities are Gaussian kernel estimates with reflection at the bounds of the
support (0 for ``tau``; 0 and 100 for ``I²``) so that a posterior piled up at
zero heterogeneity is not shown falling to zero at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from bayesmeta.errors import InputError
from bayesmeta.plots._draws import as_draws
from bayesmeta.plots._style import COLORS, EffectScale, effect_scale, style

__all__ = [
    "kde",
    "leave_one_out_plot",
    "posterior_densities",
    "prior_posterior_plot",
    "rank_plot",
    "trace_plot",
]

KDE_POINTS = 512


def kde(x: np.ndarray, *, lower: float | None = None, upper: float | None = None,
        grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian KDE (Scott bandwidth) reflected at ``lower``/``upper``; returns grid and density.

    The reflected density integrates to one over ``[lower, upper]``.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2 or np.ptp(x) == 0:
        raise InputError("cannot estimate a density from constant or fewer than two draws")
    k = stats.gaussian_kde(x)
    lo = np.quantile(x, 0.0005) if lower is None else lower
    hi = np.quantile(x, 0.9995) if upper is None else upper
    if grid is None:
        pad = 0.0 if lower is not None else 0.1 * (hi - lo)
        pad_hi = 0.0 if upper is not None else 0.1 * (hi - lo)
        grid = np.linspace(lo - pad, hi + pad_hi, KDE_POINTS)
    dens = k(grid)
    if lower is not None:
        dens = dens + k(2 * lower - grid)
    if upper is not None:
        dens = dens + k(2 * upper - grid)
    return grid, dens


def _published_on_analysis_scale(published: Mapping | None, key: str) -> float | None:
    if not published or published.get(key) is None:
        return None
    v = float(published[key])
    return float(np.log(v)) if published.get("scale", "identity") == "ratio" else v


def _panel(ax, draws: np.ndarray, *, name: str, xlabel: str, scale: EffectScale | None, level: float,  # noqa: ANN001
           lower: float | None, upper: float | None, marks: Sequence[tuple[str, float | None, str, str]]) -> None:
    """One density panel with its credible interval shaded and vertical marks."""
    shown = scale.show(draws) if scale is not None else draws
    if scale is not None and scale.log:
        grid, dens = kde(draws)  # density of log values, drawn against exp(grid) on a log axis
        grid = scale.show(grid)
        ax.set_xscale("log")
    else:
        # Reflect only at a bound the draws come near; otherwise the grid would span the whole support.
        span = float(np.ptp(draws))
        near_lo = lower is not None and np.min(draws) - lower < 0.5 * span
        near_hi = upper is not None and upper - np.max(draws) < 0.5 * span
        grid, dens = kde(draws, lower=lower if near_lo else None, upper=upper if near_hi else None)
        if lower is not None:
            keep = grid >= lower
            grid, dens = grid[keep], dens[keep]
        if upper is not None:
            keep = grid <= upper
            grid, dens = grid[keep], dens[keep]
    lo, med, hi = np.quantile(shown, [(1 - level) / 2, 0.5, (1 + level) / 2])
    ax.plot(grid, dens, color=COLORS["posterior"], lw=1.5)
    inside = (grid >= lo) & (grid <= hi)
    ax.fill_between(grid[inside], dens[inside], color=COLORS["posterior"], alpha=0.25, lw=0)
    ax.axvline(med, color=COLORS["posterior"], lw=1.2)
    for _, value, color, ls in marks:
        if value is not None and np.isfinite(value):
            ax.axvline(value, color=color, lw=1.4, ls=ls)
    ax.set_ylim(0, dens.max() * 1.12)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_xlabel(xlabel)
    digits = 1 if upper == 100.0 else 2
    ax.set_title(f"{name}: {med:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]", fontsize=10)
    if scale is not None:
        scale.apply(ax)
        ax.set_xlabel(xlabel)


def posterior_densities(
    posterior,  # noqa: ANN001
    *,
    measure: str | None = None,
    frequentist: Mapping | None = None,
    published: Mapping | None = None,
    level: float = 0.95,
    title: str | None = None,
) -> Figure:
    """Posterior densities of ``mu`` (natural scale), ``tau`` and ``I²`` in three panels.

    Parameters
    ----------
    posterior
        Draws with ``mu``, ``tau`` and (optionally) ``i2`` in percent.
    measure
        Measure code; for ratio measures ``mu`` is drawn as ``exp(mu)`` on a log axis.
    frequentist
        ``RMAResult.to_dict()``: ``estimate``, ``tau2``, ``i2`` are marked (orange, dashed).
    published
        The spec's ``[published]`` table: ``estimate``, ``i2``, optional ``tau2``
        and ``scale`` (``"ratio"`` means the estimate is printed as a ratio); marked
        green, dotted.
    level
        Credible interval level, shaded under each density.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    draws = as_draws(posterior)
    scale = effect_scale(measure)
    freq = frequentist or {}
    names = ["mu", "tau"] + (["i2"] if "i2" in draws else [])
    with style():
        fig = Figure(figsize=(3.1 * len(names), 3.3))
        axes = fig.subplots(1, len(names))
        mu = draws["mu"]
        if mu.ndim != 1:
            raise InputError("posterior_densities needs a scalar mu (no subgroup dimension)")
        f_mu = freq.get("estimate")
        p_mu = _published_on_analysis_scale(published, "estimate")
        _panel(axes[0], mu, name="μ" if not scale.log else f"exp(μ), {scale.label.lower()}",
               xlabel=f"{scale.label}" if scale.log else f"μ ({scale.label.lower()})", scale=scale, level=level,
               lower=None, upper=None,
               marks=[("frequentist", None if f_mu is None else float(scale.show(f_mu)), COLORS["frequentist"], "--"),
                      ("published", None if p_mu is None else float(scale.show(p_mu)), COLORS["published"], ":")])
        f_tau = None if freq.get("tau2") is None else float(np.sqrt(max(freq["tau2"], 0.0)))
        p_tau = None if not published or published.get("tau2") is None else float(np.sqrt(published["tau2"]))
        _panel(axes[1], draws["tau"], name="τ", xlabel="τ (between-study SD)", scale=None, level=level, lower=0.0,
               upper=None, marks=[("frequentist", f_tau, COLORS["frequentist"], "--"),
                                  ("published", p_tau, COLORS["published"], ":")])
        if "i2" in draws:
            _panel(axes[2], draws["i2"], name="I²", xlabel="I² (%)", scale=None, level=level, lower=0.0, upper=100.0,
                   marks=[("frequentist", freq.get("i2"), COLORS["frequentist"], "--"),
                          ("published", None if not published else published.get("i2"), COLORS["published"], ":")])
        handles = [Line2D([], [], color=COLORS["posterior"], lw=1.5, label=f"Posterior (median, {100 * level:g}% CrI)")]
        if frequentist:
            handles.append(Line2D([], [], color=COLORS["frequentist"], lw=1.4, ls="--", label="Frequentist estimate"))
        if published:
            handles.append(Line2D([], [], color=COLORS["published"], lw=1.4, ls=":", label="Published"))
        fig.legend(handles=handles, loc="lower center", ncols=len(handles), frameon=False, fontsize=9,
                   bbox_to_anchor=(0.5, 0.0))
        if title:
            fig.suptitle(title, fontsize=11, fontweight="bold")
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def prior_posterior_plot(
    posterior,  # noqa: ANN001
    prior,  # noqa: ANN001  (bayesmeta.priors.Prior or any object with logpdf(x))
    *,
    var: str = "tau",
    prior_label: str | None = None,
    xmax: float | None = None,
) -> Figure:
    """Prior density against the posterior of ``var`` (default ``tau``).

    Parameters
    ----------
    posterior
        Posterior draws.
    prior
        An object with ``logpdf(x)`` (a :class:`bayesmeta.priors.Prior`); improper
        priors (``prior.proper`` false) are drawn rescaled to the plotted range and
        say so in the legend.
    var
        Variable to draw; ``tau`` is reflected at 0.
    prior_label
        Legend text for the prior (default ``prior.text``).
    xmax
        Right end of the axis (default: the 99.5% posterior quantile × 1.3).
    """
    draws = as_draws(posterior)
    x = draws[var]
    # a vector variable (tau per subgroup) gets one posterior curve per element
    columns = [x] if x.ndim == 1 else [x[:, j] for j in range(x.shape[1])]
    names = ["Posterior"] if x.ndim == 1 else [f"Posterior, {lab}" for lab in draws.labels(var)]
    lower = 0.0 if var in ("tau", "tau2") else None
    hi = xmax or float(np.quantile(x, 0.995)) * 1.3
    lo = lower if lower is not None else float(np.quantile(x, 0.0005)) - 0.3 * abs(hi)
    grid = np.linspace(lo, hi, KDE_POINTS)
    posts = [kde(c, lower=lower, grid=grid)[1] for c in columns]
    with np.errstate(divide="ignore"):
        pri = np.exp(np.asarray(prior.logpdf(grid), dtype=float))
    pri = np.where(np.isfinite(pri), pri, np.nan)
    proper = bool(getattr(prior, "proper", True))
    label = prior_label or getattr(prior, "text", "prior")
    if not proper:
        area = np.trapezoid(np.nan_to_num(pri), grid)
        pri = pri / area if area > 0 else pri
        label += " (improper; rescaled to this range)"
    with style():
        fig = Figure(figsize=(5.2, 3.4))
        ax = fig.add_subplot()
        ax.plot(grid, pri, color=COLORS["prior"], lw=1.5, ls="--", label=f"Prior: {label}")
        palette = [COLORS["posterior"], COLORS["frequentist"], COLORS["published"], COLORS["selection"],
                   COLORS["predictive"], "#E69F00"]
        for j, (post, name) in enumerate(zip(posts, names, strict=True)):
            color = palette[j % len(palette)]
            ax.plot(grid, post, color=color, lw=1.8, label=name)
            ax.fill_between(grid, post, color=color, alpha=0.12, lw=0)
        top = max(p.max() for p in posts)
        finite = np.concatenate([top * np.ones(1), pri[np.isfinite(pri)]])
        ax.set_ylim(0, min(finite.max(), top * 3) * 1.1)
        ax.set_xlim(lo, hi)
        ax.set_xlabel({"tau": "τ (between-study SD)", "tau2": "τ²", "mu": "μ"}.get(var, var))
        ax.set_ylabel("Density")
        ax.legend(frameon=False, loc="upper right")
        fig.tight_layout()
    return fig


def _as_tree(posterior) -> xr.DataTree:  # noqa: ANN001
    if isinstance(posterior, xr.DataTree):
        return posterior
    if isinstance(posterior, xr.Dataset):
        return xr.DataTree.from_dict({"posterior": posterior})
    raise InputError("rank and trace plots need draws with chain and draw dimensions (a DataTree or Dataset)")


def _arviz_figure(pc) -> Figure:  # noqa: ANN001
    """The matplotlib Figure of an arviz-plots PlotCollection, detached from pyplot."""
    fig = pc.viz["figure"].item()
    plt.close(fig)  # arviz-plots creates it through pyplot; keep no global reference
    return fig


def _n_panels(tree: xr.DataTree, var_names: Sequence[str]) -> int:
    """Number of scalar elements of ``var_names`` (one rank panel each)."""
    post = tree["posterior"]
    n = 0
    for name in var_names:
        if name not in post:
            raise InputError(f"the posterior has no variable '{name}'")
        n += int(np.prod([size for dim, size in post[name].sizes.items() if dim not in ("chain", "draw")] or [1]))
    return n


def rank_plot(posterior, var_names: Sequence[str] = ("mu", "tau")) -> Figure:  # noqa: ANN001
    """Rank-ECDF plot per chain (arviz-plots ``plot_rank``) with simultaneous bands.

    Chains that mix well stay inside the band; the panel title gives the
    p-value of the uniformity test.
    """
    tree = _as_tree(posterior)
    import arviz_plots as azp  # heavy import kept out of module import time

    panels = _n_panels(tree, var_names)
    cols = min(panels, 3)
    rows = -(-panels // cols)
    with style():
        pc = azp.plot_rank(tree, var_names=list(var_names), backend="matplotlib",
                           figure_kwargs={"figsize": (3.4 * cols, 2.6 * rows)}, col_wrap=cols)
        fig = _arviz_figure(pc)
        fig.tight_layout()
    return fig


def trace_plot(posterior, var_names: Sequence[str] = ("mu", "tau")) -> Figure:  # noqa: ANN001
    """Trace of each chain (left) and per-chain densities (right), from arviz-plots ``plot_trace_dist``."""
    tree = _as_tree(posterior)
    import arviz_plots as azp

    with style():  # compact: the elements of a vector variable share its row
        pc = azp.plot_trace_dist(tree, var_names=list(var_names), backend="matplotlib", compact=True,
                                 figure_kwargs={"figsize": (8.0, 2.2 * len(var_names))})
        fig = _arviz_figure(pc)
        fig.tight_layout()
    return fig


def leave_one_out_plot(
    loo: pd.DataFrame,
    *,
    measure: str | None = None,
    overall: Mapping | None = None,
    bayes_overall: tuple[float, float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Pooled estimate with each study left out in turn.

    Parameters
    ----------
    loo
        One row per omitted study: ``label``, ``estimate``, ``ci_low``, ``ci_high``
        (frequentist, analysis scale) and optionally Bayesian ``mu_median``,
        ``mu_q025``, ``mu_q975``.
    measure
        Measure code (log axis for ratio measures).
    overall
        The full-data frequentist result (``estimate``, ``ci_low``, ``ci_high``), drawn as a band.
    bayes_overall
        Full-data posterior (median, low, high) of ``mu``.
    """
    need = {"label", "estimate", "ci_low", "ci_high"} - set(loo.columns)
    if need:
        raise InputError(f"leave-one-out table lacks column(s) {', '.join(sorted(need))}")
    scale = effect_scale(measure)
    n = len(loo)
    has_bayes = {"mu_median", "mu_q025", "mu_q975"} <= set(loo.columns)
    y = np.arange(n)
    height = 1.3 + 0.26 * n
    label_w = min(max(len(str(s)) for s in loo["label"]), 40) * 0.075 + 0.3
    with style():
        fig = Figure(figsize=(4.8 + label_w, height))
        ax = fig.add_subplot()
        off = 0.15 if has_bayes else 0.0
        if overall is not None and overall.get("estimate") is not None:
            ax.axvspan(scale.show(overall["ci_low"]), scale.show(overall["ci_high"]), color=COLORS["frequentist"],
                       alpha=0.12, lw=0, label="All studies, frequentist 95% CI")
            ax.axvline(scale.show(overall["estimate"]), color=COLORS["frequentist"], lw=1.0)
        if bayes_overall is not None:
            ax.axvline(scale.show(bayes_overall[0]), color=COLORS["posterior"], lw=1.0, ls="--",
                       label="All studies, posterior median μ")
        ax.hlines(y - off, scale.show(loo["ci_low"]), scale.show(loo["ci_high"]), color=COLORS["frequentist"], lw=1.3)
        ax.plot(scale.show(loo["estimate"]), y - off, "s", color=COLORS["frequentist"], ms=4.5,
                label="Frequentist, study omitted")
        if has_bayes:
            ax.hlines(y + off, scale.show(loo["mu_q025"]), scale.show(loo["mu_q975"]), color=COLORS["posterior"], lw=1.3)
            ax.plot(scale.show(loo["mu_median"]), y + off, "o", color=COLORS["posterior"], ms=4,
                    label="Bayesian μ, study omitted")
        ax.axvline(scale.null, color="black", lw=0.7)
        ax.set_yticks(y, [f"− {s}" if len(str(s)) <= 40 else f"− {str(s)[:39]}…" for s in loo["label"]])
        ax.set_ylim(n - 0.5, -0.5)
        scale.apply(ax)
        ax.set_xlabel(f"Pooled {scale.label.lower()}" + (" (log scale)" if scale.log else ""))
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncols=2, frameon=False, fontsize=8.5)
        if title:
            ax.set_title(title)
        fig.tight_layout(rect=(0, 0.5 / height, 1, 1))
    return fig
