"""Figures: the numbers they show, and that they stay legible (no overlapping or clipped text).

Inputs are synthetic but realistic: counts drawn from binomials, log risk ratios and their
variances computed here with the textbook formulas (Rothman; Cochrane Handbook 6.4.1), and
posterior draws of the normal–normal model drawn with NumPy from the conditional posterior
of theta given mu and tau. Every number a figure prints is checked against a value computed
in the test from those inputs (quantiles of the draws, exp of the CI bounds...).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from scipy import stats

from bayesmeta.errors import InputError
from bayesmeta.plots import _style
from bayesmeta.plots.forest import forest_pages, forest_plot, forest_rows
from bayesmeta.plots.funnel import funnel_plot
from bayesmeta.plots.posteriors import (
    kde,
    leave_one_out_plot,
    posterior_densities,
    prior_posterior_plot,
    rank_plot,
    trace_plot,
)
from bayesmeta.plots.sensitivity import sensitivity_plot

matplotlib.use("Agg")

Z975 = stats.norm.ppf(0.975)
MIN_FONT_PT = 8.0  # smallest legible font in a figure shown at about 16 cm width
OVERLAP_TOL_PX = 1.0  # text boxes may touch (antialiasing) but not overlap


# --------------------------------------------------------------------------- synthetic inputs


def make_data(k: int = 12, *, seed: int = 1, zero_cells: bool = True, groups: list[str] | None = None) -> pd.DataFrame:
    """Two-arm count data with log risk ratios (0.5 added to all cells of rows with a zero)."""
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(10, 60, k), rng.integers(10, 60, k)
    p2 = rng.uniform(0.05, 0.4, k)
    p1 = np.clip(p2 * np.exp(rng.normal(0.5, 0.3, k)), 0, 0.95)
    ai, ci = rng.binomial(n1, p1), rng.binomial(n2, p2)
    if zero_cells:
        ci[0] = 0  # single zero: corrected and estimable
        ai[1] = ci[1] = 0  # double zero: not estimable for RR
    zero = (ai == 0) | (ci == 0)
    a, c = ai + 0.5 * zero, ci + 0.5 * zero
    m1, m2 = n1 + zero, n2 + zero
    yi = np.log(a / m1) - np.log(c / m2)
    vi = 1 / a - 1 / m1 + 1 / c - 1 / m2
    both = (ai == 0) & (ci == 0)
    yi[both] = np.nan
    vi[both] = np.nan
    df = pd.DataFrame({"label": [f"Study {i + 1} ({2000 + i % 20})" for i in range(k)],
                       "ai": ai, "n1i": n1, "ci": ci, "n2i": n2, "yi": yi, "vi": vi})
    if groups:
        df["group"] = [groups[i % len(groups)] for i in range(k)]
    return df


def make_posterior(df: pd.DataFrame, *, seed: int = 2, chains: int = 4, draws: int = 500,
                   subgroups: list[str] | None = None) -> xr.DataTree:
    """Draws of the normal–normal model given (yi, vi): theta | mu, tau is normal (shrinkage)."""
    rng = np.random.default_rng(seed)
    ok = df["yi"].notna().to_numpy()
    labels = df["label"][ok].tolist()
    yi, vi = df["yi"][ok].to_numpy(), df["vi"][ok].to_numpy()
    s = chains * draws
    tau = np.abs(rng.normal(0.2, 0.1, s))
    mu = rng.normal(np.average(yi, weights=1 / vi), 0.1, s)
    b = vi / (vi + tau[:, None] ** 2)
    theta = rng.normal(b * mu[:, None] + (1 - b) * yi, np.sqrt((1 - b) * vi))
    i2 = 100 * tau**2 / (tau**2 + np.mean(vi))

    def cd(x: np.ndarray) -> np.ndarray:
        return x.reshape(chains, draws, *x.shape[1:])

    post = {
        "tau": (("chain", "draw"), cd(tau)),
        "tau2": (("chain", "draw"), cd(tau**2)),
        "i2": (("chain", "draw"), cd(i2)),
        "theta": (("chain", "draw", "study"), cd(theta)),
        "theta_new": (("chain", "draw"), cd(rng.normal(mu, tau))),
    }
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "study": labels}
    if subgroups:  # as builders.regression with subgroup_tau = "separate": mu, tau, theta_new per level
        g = len(subgroups)
        mu_g = mu[:, None] + np.arange(g) * 0.2
        tau_g = tau[:, None] * (1 + 0.5 * np.arange(g))
        post["mu"] = (("chain", "draw", "subgroup"), cd(mu_g))
        post["tau"] = (("chain", "draw", "subgroup"), cd(tau_g))
        post["theta_new"] = (("chain", "draw", "subgroup"), cd(rng.normal(mu_g, tau_g)))
        coords["subgroup"] = subgroups
    else:
        post["mu"] = (("chain", "draw"), cd(mu))
    ds = xr.Dataset(post, coords=coords)
    obs = xr.Dataset({"y": ("study", yi)}, coords={"study": labels})
    return xr.DataTree.from_dict({"posterior": ds, "observed_data": obs})


def dersimonian_laird(df: pd.DataFrame) -> dict:
    """DerSimonian–Laird random-effects fit (DerSimonian & Laird 1986, eqs. 3–4), as RMAResult.to_dict()."""
    ok = df["yi"].notna()
    yi, vi = df["yi"][ok].to_numpy(), df["vi"][ok].to_numpy()
    w = 1 / vi
    m = np.sum(w * yi) / w.sum()
    q = np.sum(w * (yi - m) ** 2)
    k = len(yi)
    tau2 = max(0.0, (q - (k - 1)) / (w.sum() - np.sum(w**2) / w.sum()))
    ws = 1 / (vi + tau2)
    est = np.sum(ws * yi) / ws.sum()
    se = 1 / np.sqrt(ws.sum())
    return {"k": k, "estimate": est, "se": se, "ci_low": est - Z975 * se, "ci_high": est + Z975 * se, "tau2": tau2,
            "i2": max(0.0, 100 * (q - (k - 1)) / q), "pi_low": est - Z975 * np.sqrt(se**2 + tau2),
            "pi_high": est + Z975 * np.sqrt(se**2 + tau2), "weights": list(100 * ws / ws.sum()), "method": "DL"}


# --------------------------------------------------------------------------- legibility helpers


def texts(fig: Figure) -> list[Text]:
    """Every non-empty text actually drawn when the figure is rendered (tick labels included).

    Recorded by wrapping ``Text.draw``: tick labels outside the axis limits exist as artists
    but are not drawn, so ``findobj`` alone would report them.
    """
    drawn: list[Text] = []
    original = Text.draw

    def recording_draw(self, renderer):  # noqa: ANN001, ANN202
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return original(self, renderer)

    Text.draw = recording_draw
    try:
        FigureCanvasAgg(fig).draw()
    finally:
        Text.draw = original
    return list(dict.fromkeys(drawn))


def assert_legible(fig: Figure) -> list[str]:
    """No two texts overlap, none is cut by the figure edge, none is smaller than MIN_FONT_PT.

    Returns the drawn strings (one rendering serves both checks).
    """
    ts = texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in ts:
        assert t.get_fontsize() >= MIN_FONT_PT, f"font {t.get_fontsize()} pt: {t.get_text()!r}"
        bb = t.get_window_extent(renderer)
        boxes.append((bb.x0, bb.y0, bb.x1, bb.y1, t.get_text()))
    w, h = fig.bbox.width, fig.bbox.height
    for x0, y0, x1, y1, s in boxes:
        assert x0 >= -OVERLAP_TOL_PX and y0 >= -OVERLAP_TOL_PX and x1 <= w + OVERLAP_TOL_PX \
            and y1 <= h + OVERLAP_TOL_PX, f"text clipped by the figure edge: {s!r}"
    arr = np.array([b[:4] for b in boxes])
    ox = np.minimum(arr[:, None, 2], arr[None, :, 2]) - np.maximum(arr[:, None, 0], arr[None, :, 0])
    oy = np.minimum(arr[:, None, 3], arr[None, :, 3]) - np.maximum(arr[:, None, 1], arr[None, :, 1])
    clash = (ox > OVERLAP_TOL_PX) & (oy > OVERLAP_TOL_PX)
    np.fill_diagonal(clash, False)
    pairs = [(boxes[i][4], boxes[j][4]) for i, j in zip(*np.nonzero(np.triu(clash)), strict=True)]
    assert not pairs, f"overlapping texts: {pairs[:5]}"
    return [b[4] for b in boxes]


def text_strings(fig: Figure) -> list[str]:
    return [t.get_text() for t in texts(fig)]


# --------------------------------------------------------------------------- forest plot


@pytest.fixture(scope="module")
def rr_case() -> tuple[pd.DataFrame, xr.DataTree, dict]:
    df = make_data(12)
    return df, make_posterior(df), dersimonian_laird(df)


def test_forest_prints_observed_ci_posterior_cri_and_weights(rr_case):
    df, tree, freq = rr_case
    fig = forest_plot(df, tree, measure="RR", frequentist=freq)
    strings = text_strings(fig)
    theta = tree["posterior"]["theta"].stack(s=("chain", "draw"))
    for j in (0, 2, 11):  # single-zero study, ordinary studies
        yi, vi = df["yi"][j], df["vi"][j]
        lo, hi = np.exp(yi - Z975 * np.sqrt(vi)), np.exp(yi + Z975 * np.sqrt(vi))
        assert f"{np.exp(yi):.2f} [{lo:.2f}, {hi:.2f}]" in strings
        q = np.exp(np.quantile(theta.sel(study=df["label"][j]).values, [0.5, 0.025, 0.975]))
        assert f"{q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]" in strings
    ok = df["yi"].notna().to_numpy()
    for w in np.asarray(freq["weights"])[[0, 5]]:
        assert f"{w:.1f}" in strings
    mu = np.exp(np.quantile(tree["posterior"]["mu"].values.ravel(), [0.5, 0.025, 0.975]))
    assert f"{mu[0]:.2f} [{mu[1]:.2f}, {mu[2]:.2f}]" in strings
    tn = np.exp(np.quantile(tree["posterior"]["theta_new"].values.ravel(), [0.025, 0.975]))
    assert f"[{tn[0]:.2f}, {tn[1]:.2f}]" in strings
    f = np.exp([freq["estimate"], freq["ci_low"], freq["ci_high"]])
    assert f"{f[0]:.2f} [{f[1]:.2f}, {f[2]:.2f}]" in strings
    assert f"[{np.exp(freq['pi_low']):.2f}, {np.exp(freq['pi_high']):.2f}]" in strings
    # the double-zero study is shown with its counts but no effect
    assert "not estimable" in strings and "0/" + str(df["n1i"][1]) in strings
    assert ok.sum() == 11
    assert_legible(fig)


def test_forest_log_axis_labelled_on_natural_scale(rr_case):
    df, tree, freq = rr_case
    fig = forest_plot(df, tree, measure="RR", frequentist=freq)
    ax = next(a for a in fig.axes if a.get_xscale() == "log")
    assert ax.get_xlabel() == "Risk ratio (log scale)"
    lo, hi = ax.get_xlim()
    assert lo < 1 < hi  # the null is always on the axis
    labels = [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
    assert "1" in labels and all("10^" not in s and "$" not in s for s in labels)


def test_forest_diamond_spans_posterior_interval_of_mu(rr_case):
    df, tree, _ = rr_case
    fig = forest_plot(df, tree, measure="RR")
    ax = next(a for a in fig.axes if a.get_xscale() == "log")
    diamond = ax.patches[0].get_xy()
    q = np.exp(np.quantile(tree["posterior"]["mu"].values.ravel(), [0.025, 0.5, 0.975]))
    np.testing.assert_allclose(sorted({round(x, 12) for x in diamond[:, 0]}), q, rtol=1e-12)


def test_forest_means_show_mean_sd_n_per_arm():
    rng = np.random.default_rng(4)
    k = 6
    df = pd.DataFrame({"label": [f"Trial {i}" for i in range(k)], "m1i": rng.normal(10, 1, k).round(1),
                       "sd1i": [2.5] * k, "n1i": [20] * k, "m2i": rng.normal(9, 1, k).round(1), "sd2i": [2.0] * k,
                       "n2i": [22] * k})
    df["yi"] = df["m1i"] - df["m2i"]
    df["vi"] = df["sd1i"] ** 2 / df["n1i"] + df["sd2i"] ** 2 / df["n2i"]
    fig = forest_plot(df, make_posterior(df), measure="MD")
    strings = text_strings(fig)
    assert f"{df['m1i'][0]:g} (2.5) 20" in strings and f"{df['m2i'][0]:g} (2) 22" in strings
    assert any("mean (SD) n" in s for s in strings)
    ax = fig.axes[1]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "Mean difference"
    md = df["yi"][3]
    assert f"{md:.2f} [{md - Z975 * np.sqrt(df['vi'][3]):.2f}, {md + Z975 * np.sqrt(df['vi'][3]):.2f}]" in strings
    assert_legible(fig)


def test_forest_subgroups_with_bayesian_and_frequentist_subgroup_rows():
    groups = ["Breast cancer", "Lung cancer"]
    df = make_data(14, groups=groups)
    tree = make_posterior(df, subgroups=groups)
    sub = {g: dersimonian_laird(df[df["group"] == g]) for g in groups}
    fig = forest_plot(df, tree, measure="RR", subgroup="group", subgroup_results=sub)
    strings = text_strings(fig)
    for j, g in enumerate(groups):
        assert g in strings
        q = np.exp(np.quantile(tree["posterior"]["mu"].isel(subgroup=j).values.ravel(), [0.5, 0.025, 0.975]))
        assert f"{q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]" in strings
        f = np.exp([sub[g]["estimate"], sub[g]["ci_low"], sub[g]["ci_high"]])
        assert f"{f[0]:.2f} [{f[1]:.2f}, {f[2]:.2f}]" in strings
        tn = np.exp(np.quantile(tree["posterior"]["theta_new"].isel(subgroup=j).values.ravel(), [0.025, 0.975]))
        assert f"[{tn[0]:.2f}, {tn[1]:.2f}]" in strings
    assert strings.count("Bayesian pooled μ, subgroup") == 2
    assert strings.count("Predictive, new study, subgroup") == 2
    assert "Bayesian pooled μ" not in strings  # a subgroup model has no overall mu
    assert_legible(fig)
    # tau per subgroup: one posterior curve per level against the prior
    from bayesmeta.priors import parse_prior

    fig = prior_posterior_plot(tree, parse_prior("halfnormal(0.5)"))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["Prior: halfnormal(0.5)"] + [f"Posterior, {g}" for g in groups]
    assert_legible(fig)


def test_forest_single_subgroup():
    df = make_data(5, groups=["Only level"])
    rows = forest_rows(df, make_posterior(df), frequentist=dersimonian_laird(df), subgroup="group")
    kinds = [r.kind for r in rows]
    assert kinds[0] == "header" and rows[0].label == "Only level"
    assert kinds.count("study") == 5 and "bayes" in kinds and "freq" in kinds
    assert_legible(forest_plot(df, make_posterior(df), measure="RR", subgroup="group"))


def test_forest_observed_only_without_posterior():
    df = make_data(6, zero_cells=False)
    fig = forest_plot(df, None, measure="OR")
    strings = text_strings(fig)
    assert not any(s.startswith("Posterior") for s in strings)
    # without a fit the weights are inverse-variance (tau² = 0)
    w = 100 * (1 / df["vi"]) / (1 / df["vi"]).sum()
    assert f"{w[2]:.1f}" in strings


def test_forest_200_studies_paged_and_readable():
    df = make_data(200, groups=["A", "B", "C"], seed=7)
    tree = make_posterior(df)
    freq = dersimonian_laird(df)
    pages = forest_pages(df, tree, measure="RR", frequentist=freq, subgroup="group", rows_per_page=40)
    assert len(pages) == 5  # 200 study rows / 40
    seen: list[str] = []
    limits = set()
    mu = np.exp(np.quantile(tree["posterior"]["mu"].values.ravel(), [0.5, 0.025, 0.975]))
    for p, fig in enumerate(pages, start=1):
        strings = assert_legible(fig)
        seen += [s for s in strings if s.startswith("Study ")]
        assert f"page {p} of 5" in fig.texts[-1].get_text()
        assert f"{mu[0]:.2f} [{mu[1]:.2f}, {mu[2]:.2f}]" in strings  # pooled rows on every page
        assert fig.get_size_inches()[1] < 16.5  # fits a printed page scaled to width
        limits.add(tuple(np.round(fig.axes[1].get_xlim(), 12)))
    assert sorted(seen) == sorted(df["label"])  # every study exactly once
    assert len(limits) == 1  # same x-axis on every page
    # One figure for everything stays legible too (the height grows, fonts do not shrink).
    single = forest_plot(df.iloc[:80], tree, measure="RR", frequentist=dersimonian_laird(df.iloc[:80]))
    assert single.get_size_inches()[1] > 80 * 0.28
    assert_legible(single)


def test_forest_pages_keep_subgroup_headers_with_their_studies():
    df = make_data(80, groups=["A", "B"], seed=3)  # 40 studies per subgroup: page 1 is exactly full
    df = df.sort_values("group", kind="stable").reset_index(drop=True)
    pages = forest_pages(df, make_posterior(df), measure="RR", subgroup="group", rows_per_page=40)
    first, second = (text_strings(p) for p in pages)
    assert "A" in first and "B" not in first and "A (continued)" not in second
    assert "B" in second and "B (continued)" not in second


def test_forest_rejects_missing_columns():
    with pytest.raises(InputError, match="vi"):
        forest_plot(pd.DataFrame({"label": ["a"], "yi": [0.1]}))


# --------------------------------------------------------------------------- reference case: BCG vs metafor

RMA_PINS = json.loads((Path(__file__).parent / "reference" / "rma.json").read_text())


def _pin(section: str, dataset: str, method: str) -> dict:
    return next(e["result"] for e in RMA_PINS[section] if e["dataset"] == dataset and e["method"] == method
                and e.get("test", "z") == "z")


@pytest.fixture(scope="module")
def bcg_case() -> tuple[pd.DataFrame, xr.DataTree, dict]:
    from bayesmeta.frequentist import rma
    from bayesmeta.inference import fit
    from bayesmeta.spec import load_data, load_spec

    spec = load_spec(Path(__file__).parents[1] / "models" / "bcg.toml")
    data = load_data(spec)
    freq = rma(data["yi"], data["vi"], method="REML").to_dict()
    return data, fit(spec, engine="exact").tree, freq


def test_forest_bcg_reproduces_metafor(bcg_case):
    data, tree, freq = bcg_case
    pin = _pin("rma", "bcg_rr", "REML")
    esc = RMA_PINS["datasets"]["bcg_rr"]
    fig = forest_plot(data, tree, measure="RR", frequentist=freq, subgroup="alloc")
    strings = assert_legible(fig)
    for yi, vi, w in zip(esc["yi"], esc["vi"], pin["weights"], strict=True):
        lo, hi = np.exp(yi - Z975 * np.sqrt(vi)), np.exp(yi + Z975 * np.sqrt(vi))
        assert f"{np.exp(yi):.2f} [{lo:.2f}, {hi:.2f}]" in strings  # escalc(measure = "RR") of metafor
        assert f"{w:.1f}" in strings  # metafor weights(rma(..., method = "REML"))
    e = np.exp([pin["estimate"], pin["ci_low"], pin["ci_high"]])
    assert f"{e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}]" == "0.49 [0.34, 0.70]"  # Colditz et al. 1994 as printed
    assert f"{e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}]" in strings
    assert f"[{np.exp(pin['pi_low']):.2f}, {np.exp(pin['pi_high']):.2f}]" in strings
    assert any(f"frequentist τ² = {pin['tau2']:.3f}, I² = {pin['i2']:.0f}%" in s for s in strings)
    assert {"random", "alternate", "systematic", "Aronson 1948", "4/123", "11/139"} <= set(strings)


def test_leave_one_out_bcg_matches_metafor(bcg_case):
    from bayesmeta.frequentist import leave1out

    data, _, freq = bcg_case
    l1o = pd.DataFrame(leave1out(data["yi"], data["vi"], method="REML", labels=list(data["label"])).to_dict()["rows"])
    fig = leave_one_out_plot(l1o, measure="RR", overall=freq)
    squares = next(line for line in fig.axes[0].lines if line.get_marker() == "s")
    np.testing.assert_allclose(squares.get_xdata(), np.exp(_pin("leave1out", "bcg_rr", "REML")["estimate"]),
                               rtol=1e-6)  # root-finder tolerance of REML refits
    assert_legible(fig)


def test_posterior_densities_bcg_marks_metafor_and_paper(bcg_case):
    data, tree, freq = bcg_case
    pin = _pin("rma", "bcg_rr", "REML")
    fig = posterior_densities(tree, measure="RR", frequentist=freq,
                              published={"estimate": 0.49, "scale": "ratio"})  # Colditz et al. 1994
    ax_mu, ax_tau, _ = fig.axes
    marks = sorted(float(line.get_xdata()[0]) for line in ax_mu.lines[1:])
    np.testing.assert_allclose(marks, sorted([np.median(np.exp(tree["posterior"]["mu"].values)),
                                              np.exp(pin["estimate"]), 0.49]), rtol=1e-6)
    tau_marks = [float(line.get_xdata()[0]) for line in ax_tau.lines[1:]]
    assert np.isclose(tau_marks, np.sqrt(pin["tau2"]), rtol=1e-6).any()
    assert_legible(fig)


# --------------------------------------------------------------------------- funnel plot


def test_funnel_points_contours_and_selection_estimate(rr_case):
    df, tree, freq = rr_case
    fig = funnel_plot(df, measure="RR", frequentist=freq, posterior=tree,
                      selection={"estimate": 0.2, "label": "Selection model"})
    ax = fig.axes[0]
    ok = df["yi"].notna()
    pts = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(pts[:, 0], np.exp(df["yi"][ok]), rtol=1e-12)
    np.testing.assert_allclose(pts[:, 1], np.sqrt(df["vi"][ok]), rtol=1e-12)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # standard error axis inverted
    assert ax.get_xscale() == "log"
    # the 95% contour band starts where |yi| = 1.96 SE: check its inner edge at the largest SE
    bands = [c for c in ax.collections[:-1] if len(c.get_paths())]
    assert len(bands) == 6  # three bands on each side of the null
    se_max = ax.get_ylim()[0]
    inner_95 = bands[2].get_paths()[0].vertices  # second band (p in (0.01, 0.05]) on the left
    at_max = inner_95[np.isclose(inner_95[:, 1], se_max)][:, 0]
    assert np.isclose(np.max(at_max), np.exp(-Z975 * se_max), rtol=1e-9)
    legend = [t.get_text() for leg in ax.findobj(Legend) for t in leg.get_texts()]
    assert f"Selection model ({np.exp(0.2):.2f})" in legend
    assert f"Frequentist estimate ({np.exp(freq['estimate']):.2f})" in legend
    assert "0.01 < p ≤ 0.05" in legend
    assert_legible(fig)


# --------------------------------------------------------------------------- densities


def test_reflected_kde_recovers_half_normal_density_at_zero():
    x = np.abs(np.random.default_rng(3).normal(0, 1, 40_000))
    grid, dens = kde(x, lower=0.0)
    true = stats.halfnorm.pdf(grid)
    # reflection removes the boundary bias: at 0 the plain KDE would give about half of 0.798
    assert abs(dens[0] - true[0]) < 0.05
    assert abs(np.trapezoid(dens, grid) - stats.halfnorm.cdf(grid[-1])) < 0.01


def test_posterior_densities_mark_frequentist_and_published(rr_case):
    df, tree, freq = rr_case
    published = {"estimate": 2.04, "ci_low": 1.57, "ci_high": 2.65, "i2": 21, "scale": "ratio"}
    fig = posterior_densities(tree, measure="RR", frequentist=freq, published=published)
    ax_mu, ax_tau, ax_i2 = fig.axes
    mu = np.exp(np.quantile(tree["posterior"]["mu"].values.ravel(), [0.5, 0.025, 0.975]))
    assert ax_mu.get_title().endswith(f"{mu[0]:.2f} [{mu[1]:.2f}, {mu[2]:.2f}]")
    vlines = {round(line.get_xdata()[0], 10) for line in ax_mu.lines[1:]}
    assert round(2.04, 10) in vlines and round(float(np.exp(freq["estimate"])), 10) in vlines
    tau_marks = {round(line.get_xdata()[0], 10) for line in ax_tau.lines[1:]}
    assert round(float(np.sqrt(freq["tau2"])), 10) in tau_marks
    i2_marks = {round(float(line.get_xdata()[0]), 10) for line in ax_i2.lines[1:]}
    assert 21.0 in i2_marks and round(float(freq["i2"]), 10) in i2_marks
    x, y = ax_i2.lines[0].get_xdata(), ax_i2.lines[0].get_ydata()
    # draws pile up near I² = 0: the density is reflected there, starts at 0 and keeps its mass in [0, 100]
    assert x.min() == 0.0 and x.max() <= 100.0
    assert abs(np.trapezoid(y, x) - 1.0) < 0.01
    assert_legible(fig)


def test_prior_posterior_tau_draws_the_prior_density(rr_case):
    from bayesmeta.priors import parse_prior

    _, tree, _ = rr_case
    prior = parse_prior("halfnormal(0.5)")
    fig = prior_posterior_plot(tree, prior)
    line = fig.axes[0].lines[0]
    x, y = line.get_xdata(), line.get_ydata()
    np.testing.assert_allclose(y, stats.halfnorm.pdf(x, scale=0.5), rtol=1e-10)
    assert "halfnormal(0.5)" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert_legible(fig)


def test_prior_posterior_improper_prior_is_rescaled_and_says_so(rr_case):
    _, tree, _ = rr_case

    class Flat:
        text = "uniform(0, inf)"
        proper = False

        @staticmethod
        def logpdf(x):
            return np.zeros_like(np.asarray(x, dtype=float))

    fig = prior_posterior_plot(tree, Flat())
    line = fig.axes[0].lines[0]
    assert np.isclose(np.trapezoid(line.get_ydata(), line.get_xdata()), 1.0)
    assert "improper" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_rank_and_trace_plots_from_arviz_plots(rr_case):
    _, tree, _ = rr_case
    fig = rank_plot(tree, ["mu", "tau"])
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.has_data()]) == 2
    assert matplotlib.pyplot.get_fignums() == []  # detached from pyplot: no leak across tests
    fig = trace_plot(tree, ["mu", "tau"])
    assert len([a for a in fig.axes if a.has_data()]) == 4
    with pytest.raises(InputError):
        rank_plot({"mu": np.zeros(10)})


def test_leave_one_out_plot(rr_case):
    df, _, freq = rr_case
    ok = df[df["yi"].notna()]
    rows = []
    for lab in ok["label"]:
        f = dersimonian_laird(ok[ok["label"] != lab])
        rows.append({"label": lab, "estimate": f["estimate"], "ci_low": f["ci_low"], "ci_high": f["ci_high"]})
    loo = pd.DataFrame(rows)
    fig = leave_one_out_plot(loo, measure="RR", overall=freq)
    ax = fig.axes[0]
    squares = next(line for line in ax.lines if line.get_marker() == "s")
    np.testing.assert_allclose(squares.get_xdata(), np.exp(loo["estimate"]), rtol=1e-12)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"− {s}" for s in loo["label"]]
    assert_legible(fig)


# --------------------------------------------------------------------------- sensitivity


def test_sensitivity_plot_flags_changed_conclusions():
    rows = []
    for (t, m), shift in zip(itertools.product(["halfnormal(0.5)", "halfcauchy(1)"], ["normal(0, 10)", "normal(0, 1)"]),
                             [0.0, 0.05, 0.4, 0.1], strict=True):
        rows.append({"tau_prior": t, "mu_prior": m, "mu_median": 0.5 - shift, "mu_q025": 0.2 - shift,
                     "mu_q975": 0.8 - shift, "tau_median": 0.2, "tau_q025": 0.02, "tau_q975": 0.5,
                     "conclusion_changes": 0.2 - shift < 0, "primary": shift == 0.0, "error": ""})
    grid = pd.DataFrame(rows)
    fig = sensitivity_plot(xr.Dataset.from_dataframe(grid), measure="OR")
    ax = fig.axes[0]
    labels = ax.get_yticklabels()
    assert [lab.get_text() for lab in labels] == ["τ ~ halfnormal(0.5)", "τ ~ halfcauchy(1)"]
    assert [lab.get_color() for lab in labels] == ["black", _style.COLORS["changed"]]
    intervals = [line for line in ax.lines if len(line.get_xdata()) == 2
                 and line.get_color() in (_style.COLORS["posterior"], _style.COLORS["changed"])]
    np.testing.assert_allclose(intervals[0].get_xdata(), np.exp([0.2, 0.8]), rtol=1e-12)
    colors = [line.get_color() for line in intervals]
    assert colors == [_style.COLORS["posterior"]] * 2 + [_style.COLORS["changed"], _style.COLORS["posterior"]]
    # the two mu priors of a row are drawn just above and below the row's centre, in grid order
    ys = [line.get_ydata()[0] for line in intervals]
    assert ys[0] < ys[1] < ys[2] < ys[3] and np.isclose(ys[1] - ys[0], ys[3] - ys[2])
    assert_legible(fig)
    failed = grid.assign(error=["", "", "sampler crashed", ""])
    assert " fit failed" in text_strings(sensitivity_plot(failed))
    with pytest.raises(InputError, match="tau_q975"):
        sensitivity_plot(grid.drop(columns="tau_q975"))


# --------------------------------------------------------------------------- saving


def test_save_figure_writes_png_and_svg_reproducibly(tmp_path, rr_case):
    df, tree, freq = rr_case
    fig = forest_plot(df, tree, measure="RR", frequentist=freq)
    a = _style.save_figure(fig, tmp_path / "a" / "forest")
    b = _style.save_figure(fig, tmp_path / "b" / "forest")
    assert [p.name for p in a] == ["forest.png", "forest.svg"]
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    assert a[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in a[1].read_bytes()[:500]
