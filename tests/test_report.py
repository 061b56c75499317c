"""HTML report: run-directory reading, content, self-containedness, and rendering in Chromium.

Two run directories are built in tmp_path with the layout of ``bayesmeta/rundir.py``:

* ``bcg``: the real pipeline on ``models/bcg.toml`` (reference analysis with leave-one-out,
  exact-engine fit, comparison table). Its frequentist numbers are checked against the
  metafor 3.8.1 pins in ``tests/reference/comparison.json`` (made by make_comparison.R).
* ``synthetic``: 200 studies rebuilt "from published aggregates" (data card says so), a
  double-zero study, subgroups, four chains of draws in which one chain is shifted (so the
  real :func:`bayesmeta.diagnostics.check` fails R-hat), a prior-sensitivity table and a
  selection-model result.
"""

from __future__ import annotations

import base64
import io
import html as html_lib
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_plots import dersimonian_laird, make_data, make_posterior

from bayesmeta.comparison import compare
from bayesmeta.diagnostics import check
from bayesmeta.errors import InputError
from bayesmeta.frequentist import rma, subgroup_analysis
from bayesmeta.inference import fit, summarise_draws
from bayesmeta.reference import run_reference
from bayesmeta.report import RunDir, render_report, write_report
from bayesmeta.report.report import CHROMIUM_ARGS, SECTIONS, diagnostic_checks
from bayesmeta.rundir import software_versions
from bayesmeta.sensitivity import run_sensitivity
from bayesmeta.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PINS = json.loads((ROOT / "tests" / "reference" / "comparison.json").read_text())
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_TIMEOUT_S = 180
BCG_TAU_PRIORS = "halfnormal(0.5);halfcauchy(1);uniform(0, 5)"


# --------------------------------------------------------------------------- run directories


def write_run_dir(out: Path, *, data: pd.DataFrame, tree, summary: dict, reference: dict,  # noqa: ANN001
                  comparison: pd.DataFrame, spec_text: str, versions: dict,
                  sensitivity: pd.DataFrame | None = None, selection: dict | None = None) -> Path:
    """Write the files of a run directory as ``bayesmeta fit --out`` does."""
    out.mkdir(parents=True)
    tree.to_netcdf(out / "posterior.nc", engine="h5netcdf")
    (out / "summary.json").write_text(json.dumps(summary, default=float))
    (out / "reference.json").write_text(json.dumps(reference, default=float))
    comparison.to_csv(out / "comparison.csv", index=False)
    data.to_csv(out / "data.csv", index=False)
    (out / "spec.toml").write_text(spec_text)
    (out / "versions.json").write_text(json.dumps(versions))
    if sensitivity is not None:
        sensitivity.to_csv(out / "sensitivity.csv", index=False)
    if selection is not None:
        (out / "selection.json").write_text(json.dumps(selection))
    return out


@pytest.fixture(scope="module")
def bcg_run(tmp_path_factory) -> Path:
    spec_path = ROOT / "models" / "bcg.toml"
    spec = load_spec(spec_path)
    ref = run_reference(spec, leave_one_out=True, bias=True)
    res = fit(spec, engine="exact")
    ref_dict = ref.to_dict()
    published = spec.published.model_dump() if spec.published else None
    comp = compare(published, ref_dict, res.summary, measure_scale="log").to_frame()
    sens = run_sensitivity(spec, tau_priors=BCG_TAU_PRIORS, mu_priors="normal(0, 4)", scheduler="serial",
                           psense=False).to_frame()
    return write_run_dir(tmp_path_factory.mktemp("runs") / "bcg", data=ref.data, tree=res.tree,
                         summary=res.to_dict(), reference=ref_dict, comparison=comp,
                         spec_text=spec_path.read_text(), versions={**software_versions(), "seed": 1994},
                         sensitivity=sens)


REBUILT_CARD = """# synth200 — 200 animal studies (rebuilt)

**Provenance.** Rebuilt from published aggregates: the per-study counts were reconstructed
so that they reproduce the subgroup totals printed in the source's Table 2.
"""


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("runs")
    groups = ["Breast cancer", "Lung cancer", "Other"]
    df = make_data(200, groups=groups, seed=11)
    tree = make_posterior(df, seed=12, subgroups=groups)  # subgroup model: mu, tau, theta_new per level
    mu = tree["posterior"]["mu"]
    shifted = mu.values.copy()
    shifted[3] += 0.5  # one chain away from the others: R-hat must fail
    tree["posterior"]["mu"] = mu.copy(data=shifted)
    ok = df["yi"].notna().to_numpy()
    model = rma(df["yi"][ok], df["vi"][ok], method="DL").to_dict()
    sub = subgroup_analysis(df["yi"][ok], df["vi"][ok], df["group"][ok], method="DL").to_dict()
    reference = {"measure": "RR", **{k: v for k, v in model.items() if k != "weights"},
                 "studies": [{"label": lab, "yi": y, "vi": v, "weight_pct": w} for lab, y, v, w in
                             zip(df["label"][ok], df["yi"][ok], df["vi"][ok], model["weights"], strict=True)],
                 "subgroup": "group", "subgroups": sub["subgroups"], "between": sub["between"]}
    summary_stats = summarise_draws(tree["posterior"].to_dataset())
    diag = check(tree).to_dict()
    published = {"source": "Synthetic paper, Table 2", "scale": "ratio", "digits": 2, "k": 199,
                 "estimate": 1.70, "ci_low": 1.50, "ci_high": 1.95, "i2": 30}
    comp = compare(published, reference, summary_stats, measure_scale="log").to_frame()
    data_dir = base / "data"
    data_dir.mkdir()
    df.to_csv(data_dir / "synth200.csv", index=False)
    (data_dir / "synth200.md").write_text(REBUILT_CARD)
    spec_text = (f'title = "Synthetic: 200 rebuilt studies"\n\n[data]\npath = "{data_dir / "synth200.csv"}"\n\n'
                 '[effect]\nmeasure = "RR"\n\n[model]\nfamily = "normal"\nsubgroup = "group"\n\n'
                 '[priors]\nmu = "normal(0, 10)"\ntau = "halfnormal(0.5)"\n\n[sampling]\nseed = 2018\n')
    sens = pd.DataFrame([
        {"tau_prior": t, "mu_prior": "normal(0, 10)", "mu_median": 0.5 + d, "mu_q025": 0.3 + d - w,
         "mu_q975": 0.7 + d + w, "tau_median": 0.2 + w, "tau_q025": 0.02, "tau_q975": 0.5 + w,
         "conclusion_changes": 0.3 + d - w < 0, "primary": t == "halfnormal(0.5)"}
        for t, d, w in (("halfnormal(0.5)", 0.0, 0.0), ("halfnormal(1)", 0.0, 0.1), ("halfcauchy(1)", -0.1, 0.25))])
    summary = {"engine": "mcmc", "sampler": "nutpie", "family": "normal", "measure": "RR", "summary": summary_stats,
               "settings": {"priors": {"mu": "normal(0, 10)", "tau": "halfnormal(0.5)"}, "chains": 4, "draws": 500,
                            "tune": 1000, "target_accept": 0.9, "seed": 2018, "subgroup": "group"},
               "diagnostics": diag}
    return write_run_dir(base / "synthetic", data=df, tree=tree, summary=summary, reference=reference,
                         comparison=comp, spec_text=spec_text, versions={**software_versions(), "seed": 2018},
                         sensitivity=sens, selection={"estimate": 0.35, "weight_function": "stepfun(0.025)"})


@pytest.fixture(scope="module")
def report_html(bcg_run, synthetic_run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    write_report([bcg_run, synthetic_run], out)
    return out, out.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- HTML helpers


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.imgs: list[dict[str, str]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href"):
            if key in a and re.match(r"^(https?:)?//", a[key]):
                self.external.append(a[key])
        if tag == "link" and a.get("rel") == "stylesheet":
            self.external.append(a.get("href", ""))


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def section(html: str, anchor: str) -> str:
    """Text of the <section id=anchor> element."""
    m = re.search(rf'<section id="{re.escape(anchor)}".*?</section>', html, re.S)
    assert m, f"no section {anchor}"
    return m.group(0)


# --------------------------------------------------------------------------- loader


def test_run_dir_loads_every_file(bcg_run, synthetic_run):
    run = RunDir.load(bcg_run)
    assert run.measure == "RR" and run.title.startswith("BCG vaccine")
    assert run.tree["posterior"]["theta"].sizes["study"] == 13
    assert run.seed == 1994 and run.selection is None
    assert list(run.sensitivity["tau_prior"]) == BCG_TAU_PRIORS.split(";")
    assert len(run.leave1out) == 13 and run.subgroup == "alloc"
    # frequentist weights aligned with data rows = metafor's REML weights
    pin = PINS["bcg_reml"]
    np.testing.assert_allclose(np.exp(run.reference["estimate"]), pin["exp_estimate"], rtol=1e-6)
    syn = RunDir.load(synthetic_run)
    assert syn.sensitivity is not None and len(syn.sensitivity) == 3
    assert syn.selection["estimate"] == 0.35
    assert syn.subgroup == "group" and set(syn.subgroup_results) == {"Breast cancer", "Lung cancer", "Other"}
    w = np.asarray(syn.frequentist["weights"], dtype=float)
    assert np.isnan(w[1]) and np.isclose(np.nansum(w), 100.0)  # the double-zero study has no weight


def test_run_dir_errors_name_the_missing_file(tmp_path, bcg_run):
    broken = tmp_path / "broken"
    shutil.copytree(bcg_run, broken)
    (broken / "comparison.csv").unlink()
    with pytest.raises(InputError, match="missing comparison.csv"):
        RunDir.load(broken)
    with pytest.raises(InputError, match="not found"):
        RunDir.load(tmp_path / "nowhere")
    shutil.copytree(bcg_run, tmp_path / "badjson")
    (tmp_path / "badjson" / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="summary.json"):
        RunDir.load(tmp_path / "badjson")


def test_provenance_detects_rebuilt_data(bcg_run, synthetic_run):
    bcg = RunDir.load(bcg_run).provenance()
    assert not bcg.rebuilt and "Colditz" in bcg.card and bcg.source == "bundled data set 'bcg'"
    syn = RunDir.load(synthetic_run).provenance()
    assert syn.rebuilt and "Table 2" in syn.card


# --------------------------------------------------------------------------- content


def test_report_has_every_section_for_every_run(report_html):
    _, html = report_html
    ids = parse(html).ids
    for n in (1, 2):
        for s in SECTIONS:
            assert f"run{n}-{s}" in ids
    assert "contents" in ids and "software" in ids


def test_rebuilt_data_said_plainly_and_prominently(report_html):
    _, html = report_html
    header = html[: html.index('<nav id="contents"')]
    assert 'data-rebuilt="run2"' in header and "rebuilt from published aggregate results" in header
    assert 'data-rebuilt="run1"' not in header  # BCG is the original trial data
    assert "These data are rebuilt from published aggregate results" in section(html, "run2-data")
    assert "rebuilt" not in section(html, "run1-data").lower().replace("colditz", "")


def test_comparison_table_reproduces_metafor(report_html):
    _, html = report_html
    table = section(html, "run1-comparison")
    pin = PINS["bcg_reml"]
    cells = re.findall(r'<td class="num">([^<]*)</td>', table)
    for value in (pin["exp_estimate"], pin["exp_ci_low"], pin["exp_ci_high"], pin["exp_pi_low"], pin["exp_pi_high"]):
        assert f"{value:.2f}" in cells
    assert f"{pin['tau2']:.3f}" in cells and f"{pin['i2']:.1f}" in cells
    assert "Colditz et al. (1994) JAMA 271:698-702" in table
    assert 'class="flagged"' in table  # predictive interval includes 1 although the CrI excludes it


def test_funnel_caption_gives_egger_test_as_metafor(report_html):
    """BCG log risk ratios, REML: metafor's regtest (pinned in tests/reference/rma.json)."""
    _, html = report_html
    pin = next(r for r in json.loads((ROOT / "tests" / "reference" / "rma.json").read_text())["regtest"]
               if (r["dataset"], r["method"], r["test"], r["model"], r["predictor"]) == ("bcg_rr", "REML", "z", "rma", "sei"))
    figure = re.search(r'<figure id="run1-fig-funnel">.*?</figure>', html, re.S)
    assert figure
    caption = html_lib.unescape(re.search(r"<figcaption>(.*?)</figcaption>", figure.group(0), re.S).group(1))
    assert f"Egger's regression test (standard error as predictor, REML): z = {pin['result']['zval']:.2f}" in caption
    assert "Trim-and-fill" in caption


def test_sensitivity_table_from_a_real_sweep(report_html, bcg_run):
    _, html = report_html
    sens = pd.read_csv(bcg_run / "sensitivity.csv")
    table = re.search(r'<table class="sensitivity">.*?</table>', section(html, "run1-comparison"), re.S).group(0)
    for _, r in sens.iterrows():
        med, lo, hi = np.exp([r["mu_median"], r["mu_q025"], r["mu_q975"]])
        assert f"{med:.2f} [{lo:.2f}, {hi:.2f}]" in table
        np.testing.assert_allclose([med, lo, hi], [r["mu_natural_median"], r["mu_natural_q025"],
                                                   r["mu_natural_q975"]], rtol=1e-12)
    assert "halfnormal(0.5) (primary)" in table
    assert table.count('class="flagged"') == int(sens["conclusion_changes"].sum())


def test_headline_is_the_posterior_on_the_natural_scale(report_html, bcg_run):
    _, html = report_html
    s = json.loads((bcg_run / "summary.json").read_text())["summary"]["mu"]
    expected = f"{np.exp(s['median']):.2f} [{np.exp(s['q025']):.2f}, {np.exp(s['q975']):.2f}]"
    assert f"<dd>{expected}</dd>" in section(html, "run1-summary")


def test_headline_of_a_subgroup_model_lists_each_level(report_html, synthetic_run):
    _, html = report_html
    summary = json.loads((synthetic_run / "summary.json").read_text())["summary"]
    text = section(html, "run2-summary")
    for level, st in summary["mu"].items():
        expected = f"{np.exp(st['median']):.2f} [{np.exp(st['q025']):.2f}, {np.exp(st['q975']):.2f}]"
        assert f"<dt>Pooled effect μ (risk ratio), {level}</dt><dd>{expected}</dd>" in text
    for level, st in summary["tau"].items():
        assert f"<dt>Between-study SD τ, {level}</dt><dd>{st['median']:.2f} [" in text


def test_diagnostics_pass_fail_against_thresholds(report_html, synthetic_run):
    _, html = report_html
    diag = json.loads((synthetic_run / "summary.json").read_text())["diagnostics"]
    rows = {c.name: c for c in diagnostic_checks(diag)}
    rhat_max = max(v for v in diag["rhat"].values() if v is not None)
    assert rhat_max > 1.01 and rows["R-hat (max)"].status == "fail" and rows["R-hat (max)"].where.startswith("mu[")
    assert rows["R-hat (max)"].value == f"{rhat_max:.3f}"
    text = section(html, "run2-diagnostics")
    assert '<tr data-status="fail"><td>R-hat (max)</td>' in text
    assert 'data-diagnostics="fail"' in section(html, "run2-summary")
    # exact engine: no sampler checks apply
    bcg = section(html, "run1-diagnostics")
    assert '<tr data-status="n/a"><td>Divergent transitions</td>' in bcg
    assert '<tr data-status="pass"><td>R-hat (max)</td>' in bcg


def test_reproducibility_spec_seed_versions(report_html, bcg_run):
    _, html = report_html
    rep = section(html, "run1-reproducibility")
    assert "Seed: <strong>1994</strong>" in rep
    assert 'tau = &#34;halfnormal(0.5)&#34;' in rep or "tau = &quot;halfnormal(0.5)&quot;" in rep
    sw = section(html, "software")
    versions = json.loads((bcg_run / "versions.json").read_text())
    assert f"<td>{versions['matplotlib']}</td>" in sw and f"<td>{versions['numpy']}</td>" in sw


def test_report_is_self_contained_with_decodable_images(report_html):
    out, html = report_html
    doc = parse(html)
    assert doc.external == []
    assert not re.search(r"<script[^>]+src=", html)
    figures = re.findall(r'<figure id="([^"]+)"', html)
    # BCG (exact engine): no rank or trace plots; leave-one-out from the reference, a real sensitivity sweep
    assert [f for f in figures if f.startswith("run1-")] == [
        "run1-fig-forest", "run1-fig-densities", "run1-fig-prior-tau", "run1-fig-funnel", "run1-fig-leave-one-out",
        "run1-fig-sensitivity"]
    # synthetic (MCMC subgroup model, 200 studies): no overall mu to draw densities of, no leave-one-out
    assert [f for f in figures if f.startswith("run2-")] == [
        "run2-fig-forest", "run2-fig-prior-tau", "run2-fig-funnel", "run2-fig-sensitivity", "run2-fig-rank",
        "run2-fig-trace"]
    forest_imgs = re.search(r'<figure id="run2-fig-forest">.*?</figure>', html, re.S).group(0)
    assert forest_imgs.count("<img") == 5  # 200 studies, 40 per page
    for img in doc.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        assert png.format == "PNG" and png.width > 300 and png.height > 200
        assert img["alt"]


def test_figures_dir_gets_png_and_svg_for_papers(bcg_run, tmp_path):
    write_report([bcg_run], tmp_path / "r.html", figures_dir=tmp_path / "figures")
    saved = sorted(p.name for p in (tmp_path / "figures" / "run1").iterdir())
    assert saved == sorted(f"run1-fig-{name}.{ext}" for name in ("forest", "densities", "prior-tau", "funnel",
                                                                  "leave-one-out", "sensitivity")
                           for ext in ("png", "svg"))


def test_data_card_html_is_escaped(bcg_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(bcg_run, run)
    data = tmp_path / "mine.csv"
    shutil.copy(run / "data.csv", data)
    data.with_suffix(".md").write_text("# Card\n\n<script>alert(1)</script> <img src=x onerror=alert(2)>\n")
    spec = (run / "spec.toml").read_text().replace('dataset = "bcg"', f'path = "{data}"')
    (run / "spec.toml").write_text(spec)
    html = render_report([RunDir.load(run)], generated="fixed")
    card = re.search(r"<div class=\"card\" data-card>.*?</div>", html, re.S).group(0)
    assert "<script>" not in card and "<img" not in card and "&lt;script&gt;alert(1)&lt;/script&gt;" in card


def test_render_report_needs_a_run():
    with pytest.raises(InputError):
        render_report([])


# --------------------------------------------------------------------------- browser


def _chromium(*args: str, timeout: int = CHROMIUM_TIMEOUT_S) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="bayesmeta-test-chromium-") as profile:
        return subprocess.run([CHROMIUM, *CHROMIUM_ARGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.browser
def test_report_renders_in_chromium_with_all_images_loaded(report_html):
    out, html = report_html
    n_img = html.count("<img ")
    dom = _chromium("--virtual-time-budget=20000", "--dump-dom", out.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert total == n_img and loaded == total and total >= 15
    ids = set(re.findall(r'<section id="([^"]+)"', dom.stdout))
    assert {f"run{n}-{s}" for n in (1, 2) for s in SECTIONS} | {"software"} <= ids
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    res = _chromium("--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", out.resolve().as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    img = Image.open(shot)
    assert img.size == (1280, 2400)
    # the page is not blank: the top of the report has text and the rebuilt-data banner colour
    pixels = np.asarray(img.convert("RGB"))
    assert (pixels < 100).all(axis=2).mean() > 0.002  # dark text
    banner = np.all(np.abs(pixels.astype(int) - [0xFD, 0xEC, 0xEA]) <= 2, axis=2)
    assert banner.any()


@pytest.mark.browser
def test_write_report_pdf(bcg_run, tmp_path):
    out = write_report([bcg_run], tmp_path / "bcg.html", pdf=True)
    pdf = out.with_suffix(".pdf")
    head = pdf.read_bytes()
    assert head[:5] == b"%PDF-"
    assert len(re.findall(rb"/Type\s*/Page[^s]", head)) >= 3  # sections start on new pages
    box = [float(x) for x in re.search(rb"MediaBox\s*\[([^\]]+)\]", head).group(1).split()]
    np.testing.assert_allclose(box[2:], [595.28, 841.89], atol=1.5)  # A4 in points, from the print CSS
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(pdf, ARTIFACTS / "report.pdf")
