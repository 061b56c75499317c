"""The figures of one run, rendered to embeddable images.

Each entry names its figure, says in a caption what is drawn, and holds one PNG
per page (a forest plot of many studies has several pages). The PNGs are
embedded in the HTML as base64 data URIs so the report is one self-contained
file; :func:`run_figures` can also save PNG and SVG files for a paper.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bayesmeta.frequentist.results import format_z_p
from bayesmeta.plots import _style
from bayesmeta.plots.forest import forest_pages
from bayesmeta.plots.funnel import funnel_plot
from bayesmeta.plots.posteriors import (
    leave_one_out_plot,
    posterior_densities,
    prior_posterior_plot,
    rank_plot,
    trace_plot,
)
from bayesmeta.plots.sensitivity import sensitivity_plot
from bayesmeta.priors import parse_prior
from bayesmeta.report.loader import RunDir

__all__ = ["FigureEntry", "png_data_uri", "run_figures"]

PNG_DPI = 130  # ~2x screen density at the width the report shows figures


@dataclass(frozen=True)
class FigureEntry:
    """One figure of the report: an anchor id, a title, a caption and one image per page."""

    id: str
    title: str
    caption: str
    images: tuple[str, ...]  # data URIs


def png_data_uri(fig: Figure, dpi: int = PNG_DPI) -> str:
    """PNG of ``fig`` as a ``data:image/png;base64,...`` URI (no timestamp: reproducible)."""
    buf = io.BytesIO()
    with _style.style():
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _forest(run: RunDir) -> tuple[list[Figure], str]:
    figs = forest_pages(run.data, run.tree, measure=run.measure, frequentist=run.frequentist,
                        subgroup=run.subgroup, subgroup_results=run.subgroup_results, title=run.title)
    method = run.reference.get("method", "")
    caption = (
        "Black squares: observed study estimates with 95% confidence intervals (area ∝ random-effects weight). "
        "Blue circles: posterior of each study's true effect θ with 95% credible intervals (shrunken towards μ). "
        f"Blue diamond: posterior median and 95% credible interval of μ; light-blue bar: 95% predictive interval of "
        f"a new study. Orange: frequentist random-effects estimate ({method}) with 95% CI and prediction interval."
    )
    if len(figs) > 1:
        caption += f" {len(figs)} pages; the pooled rows are repeated on each page and the x-axis is shared."
    return figs, caption


def _funnel(run: RunDir) -> tuple[list[Figure], str]:
    sel = None
    if run.selection and run.selection.get("estimate") is not None:
        sel = {"estimate": run.selection["estimate"],
               "label": f"Selection model {run.selection.get('weight_function', '')}".strip()}
    fig = funnel_plot(run.data, measure=run.measure, frequentist=run.frequentist, posterior=run.tree, selection=sel)
    caption = ("Contour-enhanced funnel plot: shaded bands mark where a study's two-sided p-value against no effect "
               "falls between 0.10, 0.05 and 0.01; dashed lines are the pseudo-95% confidence funnel around the "
               "frequentist estimate.")
    if sel:
        caption += " Dotted purple line: the selection-model-adjusted estimate."
    return [fig], caption + _asymmetry_tests(run.reference)


def _asymmetry_tests(reference: dict) -> str:
    """Egger's tests and trim-and-fill of the frequentist reference, in words (empty if not run)."""
    out = []
    egger = reference.get("regtest")
    if egger:
        out.append(f" Egger's regression test (standard error as predictor, {egger.get('method', '')}): "
                   f"{format_z_p(egger['zval'], egger['pval'])}.")
    egger_n = reference.get("regtest_n")
    if egger_n:
        out.append(f" With 1/√n as predictor (no artefactual link between an effect and its standard error, "
                   f"which inflates the first test for SMDs): {format_z_p(egger_n['zval'], egger_n['pval'])}.")
    fill = reference.get("trimfill")
    if fill and fill.get("k0") is not None:
        out.append(f" Trim-and-fill ({fill.get('estimator', 'L0')}) imputes {int(fill['k0'])} "
                   f"stud{'y' if int(fill['k0']) == 1 else 'ies'} on the {fill.get('side', '')} side.")
    return "".join(out)


def _densities(run: RunDir) -> tuple[list[Figure], str]:
    fig = posterior_densities(run.tree, measure=run.measure, frequentist=run.reference, published=run.published)
    return [fig], ("Posterior densities with 95% credible intervals shaded. Orange dashed: frequentist estimate; "
                   "green dotted: the published value.")


def _prior_tau(run: RunDir) -> tuple[list[Figure], str]:
    text = (run.settings.get("priors") or {}).get("tau") or run.spec.get("priors", {}).get("tau")
    fig = prior_posterior_plot(run.tree, parse_prior(text))
    return [fig], f"Prior ({text}) and posterior of the between-study standard deviation τ."


def _rank(run: RunDir) -> tuple[list[Figure], str]:
    return [rank_plot(run.tree, ["mu", "tau"])], (
        "Rank-ECDF plot per chain (arviz-plots): chains that sample the same distribution stay inside the "
        "simultaneous band; the p-value tests uniformity of the ranks.")


def _trace(run: RunDir) -> tuple[list[Figure], str]:
    return [trace_plot(run.tree, ["mu", "tau"])], "Trace of each chain (right) and per-chain densities (left)."


def _loo(run: RunDir) -> tuple[list[Figure], str]:
    fig = leave_one_out_plot(run.leave1out, measure=run.measure, overall=run.reference)
    return [fig], "Frequentist pooled estimate with each study left out in turn; the band is the all-study 95% CI."


def _sensitivity(run: RunDir) -> tuple[list[Figure], str]:
    return [sensitivity_plot(run.sensitivity, measure=run.measure)], (
        "Posterior median and 95% credible interval of μ and τ under each prior; red rows change the conclusion.")


def _is_mcmc(run: RunDir) -> bool:
    post = run.tree["posterior"]
    return run.summary.get("engine") == "mcmc" and post.sizes.get("chain", 1) > 1


def _has_scalar_mu(run: RunDir) -> bool:
    return "mu" in run.tree["posterior"] and set(run.tree["posterior"]["mu"].dims) <= {"chain", "draw"}


def _has_tau_prior(run: RunDir) -> bool:
    return bool((run.settings.get("priors") or {}).get("tau") or run.spec.get("priors", {}).get("tau"))


#: (anchor, title, builder, applies-to-run) in report order.
FIGURES: tuple[tuple[str, str, Callable[[RunDir], tuple[list[Figure], str]], Callable[[RunDir], bool]], ...] = (
    ("forest", "Posterior forest plot", _forest, lambda r: True),
    ("densities", "Posterior densities of μ, τ and I²", _densities, _has_scalar_mu),
    ("prior-tau", "Prior and posterior of τ", _prior_tau, _has_tau_prior),
    ("funnel", "Contour-enhanced funnel plot", _funnel, lambda r: int(np.isfinite(r.data["yi"]).sum()) >= 3),
    ("leave-one-out", "Leave-one-out", _loo, lambda r: r.leave1out is not None),
    ("sensitivity", "Prior sensitivity", _sensitivity, lambda r: r.sensitivity is not None),
    ("rank", "MCMC rank plot", _rank, _is_mcmc),
    ("trace", "MCMC trace plot", _trace, _is_mcmc),
)


def run_figures(run: RunDir, *, prefix: str = "", save_dir: Path | None = None) -> list[FigureEntry]:
    """Draw every figure that applies to ``run``.

    Parameters
    ----------
    run
        The loaded run directory.
    prefix
        Prefix of the anchor ids (unique per run in a multi-run report).
    save_dir
        When given, also save each page as PNG and SVG there (``<id>[-<page>].png/.svg``).
    """
    out = []
    for anchor, title, build, applies in FIGURES:
        if not applies(run):
            continue
        figs, caption = build(run)
        fid = f"{prefix}{anchor}"
        if save_dir is not None:
            for p, fig in enumerate(figs, start=1):
                _style.save_figure(fig, Path(save_dir) / (fid if len(figs) == 1 else f"{fid}-{p}"))
        out.append(FigureEntry(fid, title, caption, tuple(png_data_uri(f) for f in figs)))
    return out
