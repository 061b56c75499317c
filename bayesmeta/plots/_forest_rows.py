"""Rows of the posterior forest plot: what each line shows, independent of drawing.

A row is a study (observed estimate and CI, posterior of its ``theta``, arm texts,
weight), a subgroup header, a pooled row (posterior ``mu``, predictive ``theta_new``,
frequentist estimate and prediction interval) or the heterogeneity note. All
intervals are on the analysis scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bayesmeta.errors import InputError
from bayesmeta.plots._draws import Draws, as_draws

__all__ = ["ForestRow", "arm_kind", "forest_rows"]


@dataclass(frozen=True)
class ForestRow:
    """One row of a forest plot (a study, a header or a pooled estimate).

    ``kind`` is one of ``header``, ``study``, ``bayes``, ``predictive``,
    ``freq``, ``freq_pi``, ``note``. Intervals are on the analysis scale.
    """

    kind: str
    label: str
    arm1: str = ""
    arm2: str = ""
    observed: tuple[float, float, float] | None = None  # estimate, low, high
    posterior: tuple[float, float, float] | None = None  # median, low, high
    weight: float | None = None
    group: str | None = None
    extra: dict = field(default_factory=dict)


def _fmt_num(x: float) -> str:
    """Three significant digits, no exponent for usual magnitudes."""
    if not np.isfinite(x):
        return "–"
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x)}"
    return f"{x:.3g}"


def _arm_texts(row: pd.Series) -> tuple[str, str] | None:
    """Events/total per arm for counts, mean (SD) n for means; None otherwise."""
    if {"ai", "ci"} <= set(row.index):
        n1 = row["n1i"] if "n1i" in row.index else row["ai"] + row.get("bi", np.nan)
        n2 = row["n2i"] if "n2i" in row.index else row["ci"] + row.get("di", np.nan)
        return f"{_fmt_num(row['ai'])}/{_fmt_num(n1)}", f"{_fmt_num(row['ci'])}/{_fmt_num(n2)}"
    if {"m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"} <= set(row.index):
        return (
            f"{_fmt_num(row['m1i'])} ({_fmt_num(row['sd1i'])}) {_fmt_num(row['n1i'])}",
            f"{_fmt_num(row['m2i'])} ({_fmt_num(row['sd2i'])}) {_fmt_num(row['n2i'])}",
        )
    return None


def arm_kind(data: pd.DataFrame) -> str | None:
    if {"ai", "ci"} <= set(data.columns) and ({"n1i", "n2i"} <= set(data.columns) or {"bi", "di"} <= set(data.columns)):
        return "counts"
    if {"m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"} <= set(data.columns):
        return "means"
    return None


def _weights(data: pd.DataFrame, frequentist: Mapping | None, draws: Draws | None) -> np.ndarray:
    """Random-effects weights in percent, aligned with ``data`` rows.

    The frequentist ``weights`` are used when given (one per analysed study, in
    data order, skipping rows whose ``yi`` is missing); otherwise
    ``1/(vi + tau²)`` with tau² from the frequentist fit or the posterior median.
    """
    vi = data["vi"].to_numpy(dtype=float)
    ok = np.isfinite(vi) & np.isfinite(data["yi"].to_numpy(dtype=float))
    w = np.full(len(data), np.nan)
    given = None if frequentist is None else frequentist.get("weights")
    if given is not None:
        given = np.asarray(given, dtype=float)
        if given.size == len(data):
            w = given.copy()
        elif given.size == ok.sum():
            w[ok] = given
        else:
            raise InputError(f"frequentist weights: {given.size} values for {ok.sum()} analysed studies")
    else:
        if frequentist is not None and frequentist.get("tau2") is not None:
            tau2 = float(frequentist["tau2"])
        elif draws is not None and "tau" in draws:
            tau2 = float(np.median(draws["tau"] ** 2))
        else:
            tau2 = 0.0
        w[ok] = 1.0 / (vi[ok] + tau2)
    total = np.nansum(w)
    return 100.0 * w / total if total > 0 else w


def _theta_by_label(draws: Draws | None, labels: Sequence[str], level: float) -> dict[str, tuple[float, float, float]]:
    if draws is None or "theta" not in draws:
        return {}
    theta = draws["theta"]
    tl = list(draws.labels("theta"))
    if not set(tl) & set(labels) and len(tl) == len(labels):
        tl = list(labels)  # unlabelled draws in data order
    q = np.quantile(theta, [0.5, (1 - level) / 2, (1 + level) / 2], axis=0)
    return {lab: (q[0, j], q[1, j], q[2, j]) for j, lab in enumerate(tl)}


def _pooled_rows(
    draws: Draws | None,
    frequentist: Mapping | None,
    level: float,
    *,
    group: str | None = None,
    mu_index: int | None = None,
    name: str = "",
) -> list[ForestRow]:
    """Bayesian mu, predictive theta_new, frequentist estimate and PI rows."""
    qs = [0.5, (1 - level) / 2, (1 + level) / 2]
    pct = f"{100 * level:g}%"
    rows: list[ForestRow] = []
    suffix = ", subgroup" if name else ""
    if draws is not None and "mu" in draws:
        mu = draws["mu"] if mu_index is None else draws["mu"][:, mu_index]
        rows.append(ForestRow("bayes", f"Bayesian pooled μ{suffix}", posterior=tuple(np.quantile(mu, qs)), group=group))
        if "theta_new" in draws:
            tn = draws["theta_new"]
            per_level = tn.ndim == 2 and mu_index is not None and draws.labels("theta_new") == draws.labels("mu")
            if tn.ndim == 1 and mu_index is None:
                rows.append(ForestRow("predictive", "Predictive, new study", posterior=tuple(np.quantile(tn, qs)),
                                      group=group))
            elif per_level:
                rows.append(ForestRow("predictive", f"Predictive, new study{suffix}",
                                      posterior=tuple(np.quantile(tn[:, mu_index], qs)), group=group))
    if frequentist is not None and frequentist.get("estimate") is not None:
        method = frequentist.get("method")
        lab = f"Frequentist RE{f' ({method})' if method else ''}{suffix}"
        rows.append(
            ForestRow("freq", lab, observed=(frequentist["estimate"], frequentist["ci_low"], frequentist["ci_high"]),
                      group=group, extra={"k": frequentist.get("k")})
        )
        if not name and frequentist.get("pi_low") is not None and np.isfinite(frequentist.get("pi_low")):
            rows.append(
                ForestRow("freq_pi", f"Frequentist {pct} PI{suffix}",
                          observed=(frequentist["estimate"], frequentist["pi_low"], frequentist["pi_high"]), group=group)
            )
    return rows


def _heterogeneity_note(draws: Draws | None, frequentist: Mapping | None, level: float) -> str:
    parts = []
    if draws is not None and "tau" in draws:
        q = np.quantile(draws["tau"], [0.5, (1 - level) / 2, (1 + level) / 2])
        parts.append(f"Bayes τ = {q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]")
        if "i2" in draws:
            q = np.quantile(draws["i2"], [0.5, (1 - level) / 2, (1 + level) / 2])
            parts.append(f"I² = {q[0]:.0f}% [{q[1]:.0f}, {q[2]:.0f}]")
    if frequentist is not None and frequentist.get("tau2") is not None:
        txt = f"frequentist τ² = {frequentist['tau2']:.3f}"
        if frequentist.get("i2") is not None:
            txt += f", I² = {frequentist['i2']:.0f}%"
        parts.append(txt)
    return "Heterogeneity: " + "; ".join(parts) if parts else ""


def forest_rows(
    data: pd.DataFrame,
    posterior=None,  # noqa: ANN001  (DataTree | Dataset | mapping | Draws)
    *,
    frequentist: Mapping | None = None,
    subgroup: str | None = None,
    subgroup_results: Mapping[str, Mapping] | None = None,
    level: float = 0.95,
) -> list[ForestRow]:
    """Rows of the forest plot, top to bottom (see :func:`forest_plot` for the parameters)."""
    missing = {"label", "yi", "vi"} - set(data.columns)
    if missing:
        raise InputError(f"forest plot data lack column(s) {', '.join(sorted(missing))}")
    if subgroup is not None and subgroup not in data.columns:
        raise InputError(f"no column '{subgroup}' to make subgroups from", column=subgroup)
    draws = None if posterior is None else as_draws(posterior)
    z = stats.norm.ppf((1 + level) / 2)
    weights = _weights(data, frequentist, draws)
    theta = _theta_by_label(draws, [str(x) for x in data["label"]], level)

    def study_row(i: int, rec: pd.Series, group: str | None) -> ForestRow:
        yi, vi = float(rec["yi"]), float(rec["vi"])
        obs = (yi, yi - z * np.sqrt(vi), yi + z * np.sqrt(vi)) if np.isfinite(yi) and np.isfinite(vi) else None
        arms = _arm_texts(rec) or ("", "")
        return ForestRow("study", str(rec["label"]), arms[0], arms[1], observed=obs,
                         posterior=theta.get(str(rec["label"])), weight=float(weights[i]), group=group)

    rows: list[ForestRow] = []
    if subgroup is None:
        rows += [study_row(i, rec, None) for i, (_, rec) in enumerate(data.iterrows())]
    else:
        levels = list(dict.fromkeys(data[subgroup].astype(str)))
        mu_labels = draws.labels("mu") if draws is not None and "mu" in draws and draws["mu"].ndim == 2 else ()
        for lev in levels:
            rows.append(ForestRow("header", lev, group=lev))
            mask = (data[subgroup].astype(str) == lev).to_numpy()
            rows += [study_row(i, rec, lev) for i, (_, rec) in enumerate(data.iterrows()) if mask[i]]
            sub_draws = draws if lev in mu_labels else None
            idx = list(mu_labels).index(lev) if sub_draws is not None else None
            freq = None if subgroup_results is None else subgroup_results.get(lev)
            rows += _pooled_rows(sub_draws, freq, level, group=lev, mu_index=idx, name=lev)
    overall_draws = draws if draws is not None and "mu" in draws and draws["mu"].ndim == 1 else None
    overall_title = "Overall" if subgroup is not None else ""
    pooled = _pooled_rows(overall_draws, frequentist, level)
    if pooled:
        if overall_title:
            rows.append(ForestRow("header", overall_title))
        rows += pooled
    note = _heterogeneity_note(overall_draws, frequentist, level)
    if note:
        rows.append(ForestRow("note", note))
    return rows
