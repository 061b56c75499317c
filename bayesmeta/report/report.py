"""Self-contained HTML report of one or more run directories (optionally printed to PDF).

The report states where the data come from (prominently when they were rebuilt
from published aggregates), the model and its priors, the comparison of the
published numbers with the frequentist reproduction and the Bayesian fit, the
diagnostics with pass/fail against explicit thresholds, the figures, and what
is needed to reproduce the run (spec, seeds, software versions). Images are
embedded as data URIs: the HTML file is all a reader needs.
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt

from bayesmeta import __version__
from bayesmeta.comparison import QUANTITIES
from bayesmeta.effects import get_measure
from bayesmeta.errors import BayesmetaError, InputError
from bayesmeta.report.figures import FigureEntry, run_figures
from bayesmeta.report.loader import Provenance, RunDir

__all__ = ["CHROMIUM_ARGS", "SECTIONS", "print_pdf", "render_report", "write_report"]

#: Section anchors of each run, in order (``run<N>-<section>``), and the global ones.
SECTIONS = ("summary", "data", "model", "comparison", "diagnostics", "figures", "reproducibility")
GLOBAL_SECTIONS = ("contents", "software")

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
PDF_TIMEOUT_S = 300
DATA_ROWS_OPEN = 30  # data tables longer than this start collapsed

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bayesmeta.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


# --------------------------------------------------------------------------- formatting


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x)}"
    if isinstance(x, (float, np.floating)):
        if float(x).is_integer() and abs(x) >= 10:
            return f"{int(x)}"
        return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits or x == 0 else f"{x:.2g}"
    return str(x)


@dataclass(frozen=True)
class Check:
    """One row of the diagnostics table."""

    name: str
    value: str
    threshold: str
    status: str  # "pass" | "fail" | "n/a"
    where: str = ""


def _extreme(values: Mapping[str, float | None] | None, largest: bool) -> tuple[float | None, str]:
    vals = {k: v for k, v in (values or {}).items() if v is not None and math.isfinite(v)}
    if not vals:
        return None, ""
    key = max(vals, key=vals.get) if largest else min(vals, key=vals.get)
    return vals[key], key


def diagnostic_checks(diag: Mapping[str, Any] | None) -> list[Check]:
    """Pass/fail rows from ``Diagnostics.to_dict()`` (thresholds as recorded in it)."""
    if not diag:
        return []
    th = diag.get("thresholds", {})
    exact = diag.get("engine") == "exact"
    rows = []

    def add(name: str, value: float | None, limit: float | None, ok: bool | None, where: str = "",
            cmp: str = "≤", digits: int = 3) -> None:
        status = "n/a" if ok is None else ("pass" if ok else "fail")
        rows.append(Check(name, _fmt(value, digits), "–" if limit is None else f"{cmp} {_fmt(limit, digits)}", status,
                          where))

    r, where = _extreme(diag.get("rhat"), largest=True)
    add("R-hat (max)", r, th.get("rhat_max"), None if r is None else r <= th.get("rhat_max", 1.01), where)
    for key, label in (("ess_bulk", "Bulk ESS (min)"), ("ess_tail", "Tail ESS (min)")):
        e, where = _extreme(diag.get(key), largest=False)
        limit = th.get(f"{key}_min")
        add(label, e, limit, None if e is None or limit is None else e >= limit, where, "≥", 0)
    div = diag.get("divergences")
    add("Divergent transitions", div, th.get("divergences_max"),
        None if div is None else div <= th.get("divergences_max", 0), digits=0)
    bfmi = diag.get("bfmi")
    b = min(bfmi) if bfmi else None
    add("E-BFMI (min over chains)", b, th.get("bfmi_min"), None if b is None else b >= th.get("bfmi_min", 0.3),
        cmp="≥")
    loo = diag.get("loo")
    if loo:
        k, where = _extreme(loo.get("pareto_k"), largest=True)
        add("PSIS-LOO Pareto k (max)", k, loo.get("k_threshold"),
            None if k is None else k <= loo.get("k_threshold", 0.7), where, digits=2)
    else:
        add("PSIS-LOO Pareto k (max)", None, None, None)
    if exact:
        rows = [c if c.status != "n/a" else Check(c.name, c.value, c.threshold, "n/a", "exact engine") for c in rows]
    return rows


def _all_pass(checks: Sequence[Check]) -> bool | None:
    """True when every applicable check passes; None when none applies."""
    applicable = [c for c in checks if c.status != "n/a"]
    return None if not applicable else all(c.status == "pass" for c in applicable)


def _headline(run: RunDir) -> list[tuple[str, str]]:
    """Posterior summaries on the printed scale: (quantity, "median [q025, q975]")."""
    m = get_measure(run.measure)
    s = run.summary.get("summary", {})
    out = []
    for key, label, natural in (("mu", f"Pooled effect μ ({m.label.lower()})", True),
                                ("theta_new", "Predicted effect of a new study", True),
                                ("tau", "Between-study SD τ", False),
                                ("i2", "I² (%)", False)):
        st = s.get(key)
        if not isinstance(st, Mapping):
            continue
        conv = m.to_natural if natural else (lambda v: v)
        digits = 1 if key == "i2" else 2
        # scalar: {median, ...}; subgroup model: {level: {median, ...}}
        per_level = [("", st)] if "median" in st else [(f", {lev}", v) for lev, v in st.items()
                                                         if isinstance(v, Mapping) and "median" in v]
        for suffix, v in per_level:
            out.append((label + suffix, f"{_fmt(float(conv(v['median'])), digits)} "
                                        f"[{_fmt(float(conv(v['q025'])), digits)}, "
                                        f"{_fmt(float(conv(v['q975'])), digits)}]"))
    p = s.get("p_mu_positive")
    if isinstance(p, (int, float)):
        out.append(("P(μ > 0) on the analysis scale", _fmt(float(p), 3)))
    elif isinstance(p, Mapping):
        out += [(f"P(μ > 0) on the analysis scale, {lev}", _fmt(float(v), 3)) for lev, v in p.items()]
    return out


def _model_rows(run: RunDir) -> list[tuple[str, str]]:
    st = run.settings
    spec_model = run.spec.get("model", {})
    priors = st.get("priors") or run.spec.get("priors", {})
    m = get_measure(run.measure)
    rows = [("Effect measure", f"{m.code}: {m.label} (analysed on the {m.scale} scale)"),
            ("Model family", str(run.summary.get("family") or st.get("family") or spec_model.get("family", "normal")))]
    rows += [(f"Prior on {name}", str(text)) for name, text in priors.items()]
    for key, label in (("moderators", "Moderators"), ("subgroup", "Subgroup"), ("bias", "Publication-bias model")):
        val = st.get(key, spec_model.get(key))
        if val:
            rows.append((label, ", ".join(val) if isinstance(val, list) else str(val)))
    rows.append(("Engine", str(run.summary.get("engine", st.get("engine", "")))))
    if run.summary.get("sampler"):
        rows.append(("Sampler", str(run.summary["sampler"])))
    for key in ("chains", "draws", "tune", "target_accept", "seed"):
        if st.get(key) is not None:
            rows.append((key.replace("_", " ").capitalize(), _fmt(st[key], 2)))
    ref = run.reference
    rows.append(("Frequentist reference", f"{ref.get('method', '?')} estimator of τ², {ref.get('test', 'z')} test"
                                          + (f", level {_fmt(ref.get('level'), 0)}%" if ref.get("level") else "")))
    return rows


def _comparison_table(run: RunDir) -> tuple[list[str], list[list[str]], list[bool]]:
    frame = run.comparison
    header = ["Quantity", "Published", "Frequentist", "Bayes median", "Bayes 2.5%", "Bayes 97.5%", "Flag"]
    rows, flagged = [], []
    for _, r in frame.iterrows():
        q = str(r["quantity"])
        digits = 0 if q in ("k", "animals", "participants") else 1 if q == "i2" else 3 if q == "tau2" else 2
        flag = "" if pd.isna(r.get("flag")) else str(r.get("flag"))
        rows.append([QUANTITIES.get(q, q)]
                    + [_fmt(_nan_none(r.get(c)), digits)
                       for c in ("published", "frequentist", "bayes_median", "bayes_q025", "bayes_q975")]
                    + [flag])
        flagged.append(bool(flag))
    return header, rows, flagged


def _nan_none(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer() and digits < 4:
        return f"{int(value)}"  # counts read back from CSV as floats
    return _fmt(value, digits)


def _data_table(run: RunDir) -> tuple[list[str], list[list[str]], list[bool]]:
    """Columns (``label`` first; ``study`` and ``sei`` left out when redundant), rows and numeric flags."""
    frame = run.data
    cols = [c for c in frame.columns if not str(c).startswith("Unnamed")]
    if "label" in cols:
        cols.remove("label")
        cols.insert(0, "label")
        if "study" in cols and frame["study"].astype(str).equals(frame["label"].astype(str)):
            cols.remove("study")
    if "sei" in cols and "vi" in cols:
        cols.remove("sei")
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in cols]
    rows = [[_cell(v, 4 if c in ("yi", "vi") else 2) for c, v in zip(cols, rec, strict=True)]
            for rec in frame[cols].itertuples(index=False)]
    return cols, rows, numeric


def _sensitivity_table(run: RunDir) -> tuple[list[str], list[list[str]], list[bool]]:
    """Prior grid rows: priors, μ on the natural scale, τ, conclusion; flags rows whose conclusion changes."""
    if run.sensitivity is None:
        return [], [], []
    m = get_measure(run.measure)
    frame = run.sensitivity
    header = ["Prior on τ", "Prior on μ", f"μ, {m.label.lower()} (median [95% CrI])", "τ (median [95% CrI])",
              "Conclusion", "Changes"]
    rows, changed = [], []
    for _, r in frame.iterrows():
        mu = [float(m.to_natural(r[f"mu_{s}"])) for s in ("median", "q025", "q975")]
        tau = [float(r[f"tau_{s}"]) for s in ("median", "q025", "q975")]
        error = r.get("error", "") if isinstance(r.get("error", ""), str) else ""
        conclusion = f"fit failed: {error}" if error else str(r.get("conclusion", "") if pd.notna(r.get("conclusion"))
                                                              else "")
        primary = bool(r.get("primary", False))
        rows.append([str(r["tau_prior"]) + (" (primary)" if primary else ""), str(r["mu_prior"]),
                     f"{_fmt(mu[0])} [{_fmt(mu[1])}, {_fmt(mu[2])}]",
                     f"{_fmt(tau[0])} [{_fmt(tau[1])}, {_fmt(tau[2])}]", conclusion,
                     "yes" if bool(r.get("conclusion_changes", False)) else "no"])
        changed.append(bool(r.get("conclusion_changes", False)))
    return header, rows, changed


@dataclass(frozen=True)
class RunView:
    """What the template shows of one run."""

    n: int
    anchor: str
    title: str
    path: str
    provenance: Provenance
    card_html: str | None
    k: int
    headline: list[tuple[str, str]]
    model: list[tuple[str, str]]
    comparison_header: list[str]
    comparison_rows: list[list[str]]
    comparison_flagged: list[bool]
    comparison_source: str | None
    sensitivity_header: list[str]
    sensitivity_rows: list[list[str]]
    sensitivity_changed: list[bool]
    checks: list[Check]
    diag_ok: bool | None
    sampling_ok: bool | None
    loo_ok: bool | None
    problems: list[str]
    notes: list[str]
    figures: list[FigureEntry]
    data_header: list[str]
    data_rows: list[list[str]]
    data_numeric: list[bool]
    data_open: bool
    spec_text: str
    seed: int | None
    versions: dict[str, Any]


def _view(run: RunDir, n: int, figures_dir: Path | None) -> RunView:
    prov = run.provenance()
    diag = run.diagnostics
    checks = diagnostic_checks(diag)
    data_header, data_rows, data_numeric = _data_table(run)
    header, rows, flagged = _comparison_table(run)
    s_header, s_rows, s_changed = _sensitivity_table(run)
    published = run.published or {}
    return RunView(
        n=n, anchor=f"run{n}", title=run.title, path=str(run.path), provenance=prov,
        card_html=_MD.render(prov.card) if prov.card else None,
        k=int(np.isfinite(run.data["yi"]).sum()),
        headline=_headline(run), model=_model_rows(run),
        comparison_header=header, comparison_rows=rows, comparison_flagged=flagged,
        comparison_source=published.get("source"),
        sensitivity_header=s_header, sensitivity_rows=s_rows, sensitivity_changed=s_changed,
        checks=checks, diag_ok=None if diag is None else bool(diag.get("ok")),
        sampling_ok=_all_pass([c for c in checks if not c.name.startswith("PSIS")]),
        loo_ok=_all_pass([c for c in checks if c.name.startswith("PSIS")]),
        problems=[p.get("message", str(p)) for p in (diag or {}).get("problems", [])],
        notes=list((diag or {}).get("notes", [])),
        figures=run_figures(run, prefix=f"run{n}-fig-", save_dir=None if figures_dir is None
                            else figures_dir / f"run{n}"),
        data_header=data_header, data_rows=data_rows, data_numeric=data_numeric, data_open=len(data_rows) <= DATA_ROWS_OPEN,
        spec_text=run.spec_text, seed=run.seed, versions=run.versions,
    )


def render_report(runs: Sequence[RunDir], *, figures_dir: Path | None = None,
                  generated: str | None = None) -> str:
    """HTML text of the report of ``runs`` (see :func:`write_report`)."""
    if not runs:
        raise InputError("no run directory to report on")
    views = [_view(run, n, figures_dir) for n, run in enumerate(runs, start=1)]
    packages = sorted({k for v in views for k in v.versions if k not in ("python", "platform", "seed")})
    return _ENV.get_template("report.html.j2").render(
        runs=views, sections=SECTIONS, packages=packages, version=__version__,
        generated=generated or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        title=views[0].title if len(views) == 1 else f"bayesmeta report: {len(views)} analyses",
    )


def print_pdf(html: Path, pdf: Path, *, chromium: str | None = None) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium.

    Raises
    ------
    BayesmetaError
        When no Chromium is found or printing fails.
    """
    exe = chromium or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise BayesmetaError("printing to PDF needs Chromium (apt-get install chromium); none found on PATH")
    with tempfile.TemporaryDirectory(prefix="bayesmeta-chromium-") as profile:
        cmd = [exe, *CHROMIUM_ARGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PDF_TIMEOUT_S, check=False)
    if proc.returncode != 0 or not pdf.is_file():
        raise BayesmetaError(f"Chromium could not print the report (exit {proc.returncode}): {proc.stderr[-500:]}")
    return pdf


def write_report(run_dirs: list[Path], out: Path, *, pdf: bool = False, figures_dir: Path | None = None) -> Path:
    """Write a self-contained HTML report of the run directories.

    Parameters
    ----------
    run_dirs
        Run directories written by ``bayesmeta fit --out DIR``.
    out
        The HTML file to write.
    pdf
        Also print it to ``out`` with suffix ``.pdf`` via headless Chromium.
    figures_dir
        When given, every figure is also saved there as PNG and SVG.

    Returns
    -------
    Path
        ``out``.
    """
    runs = [RunDir.load(p) for p in run_dirs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(runs, figures_dir=figures_dir), encoding="utf-8")
    if pdf:
        print_pdf(out, out.with_suffix(".pdf"))
    return out
