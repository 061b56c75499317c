"""``escalc()``: effect sizes and sampling variances from study-level data.

Agrees with metafor's ``escalc()`` (metafor 3.8-1, tested to 1e-10 relative, see
``tests/test_effects.py``) under the default convention and correction, and
implements RevMan 5's conventions on request.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmeta.data import KINDS, make_labels, validate
from bayesmeta.effects.continuous import Convention, get_convention
from bayesmeta.effects.conversions import MEAN_METHODS, SD_METHODS, estimate_mean_sd
from bayesmeta.effects.correction import ContinuityCorrection, apply_correction, resolve_cc
from bayesmeta.effects.registry import Measure, get_measure
from bayesmeta.errors import DataWarning, InputError, SpecError

__all__ = ["escalc"]


@dataclass
class _Computed:
    """What a pipeline hands back: effects plus bookkeeping for attrs and warnings."""

    frame: pd.DataFrame
    yi: np.ndarray
    vi: np.ndarray
    dropped: np.ndarray
    reasons: list[str]
    corrected: np.ndarray
    notes: dict[str, object]


def _row(label: object) -> int | None:
    try:
        return int(label)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _where(df: pd.DataFrame, mask: np.ndarray) -> str:
    return ", ".join(f"row {i} ({lab})" for i, lab in zip(df.index[mask], df["label"][mask], strict=True))


# ------------------------------------------------------------------ pipelines


def _binary(df: pd.DataFrame, measure: Measure, conv: Convention, policy: ContinuityCorrection,
            options: Mapping[str, str], source: str | None) -> _Computed:
    out = df.copy()
    if "bi" not in out.columns or out["bi"].isna().any():
        bi = out["n1i"] - out["ai"]
        out["bi"] = out["bi"].fillna(bi) if "bi" in out.columns else bi
    if "di" not in out.columns or out["di"].isna().any():
        di = out["n2i"] - out["ci"]
        out["di"] = out["di"].fillna(di) if "di" in out.columns else di
    for n, (a, b) in {"n1i": ("ai", "bi"), "n2i": ("ci", "di")}.items():
        total = out[a] + out[b]
        out[n] = out[n].fillna(total) if n in out.columns else total
    cells = {k: out[k].to_numpy(dtype=float) for k in ("ai", "bi", "ci", "di")}
    result = apply_correction(cells, policy, measure.code, measure.uninformative)
    yi, _ = measure.compute(result.for_estimate, conv)
    _, vi = measure.compute(result.for_variance, conv)
    return _Computed(out, yi, vi, result.dropped.copy(), list(result.reasons), result.corrected,
                     {"cc": policy.to_dict()})


def _fill_from_medians(df: pd.DataFrame, options: Mapping[str, str], source: str | None) -> tuple[pd.DataFrame, list]:
    out = df.copy()
    records = []
    for k in (1, 2):
        mean_col, sd_col = f"m{k}i", f"sd{k}i"
        for col in (mean_col, sd_col):
            if col not in out.columns:
                out[col] = np.nan
        for label in out.index:
            if not (pd.isna(out.at[label, mean_col]) or pd.isna(out.at[label, sd_col])):
                continue
            summary = {stat: float(out.at[label, f"{stat}{k}i"]) if f"{stat}{k}i" in out.columns else np.nan
                       for stat in ("min", "med", "max")}
            summary.update({stat: float(out.at[label, f"{stat}_{k}i"]) if f"{stat}_{k}i" in out.columns else np.nan
                            for stat in ("q1", "q3")})
            summary["n"] = float(out.at[label, f"n{k}i"])
            try:
                mean, sd, text = estimate_mean_sd(summary, mean_method=options["mean_method"],
                                                  sd_method=options["sd_method"])
            except ValueError as err:
                raise InputError(f"cannot estimate mean and SD of arm {k}: {err}", file=source,
                                 row=_row(label), column=df.attrs.get("columns", {}).get(f"med{k}i", f"med{k}i")
                                 ) from None
            out.at[label, mean_col] = mean
            out.at[label, sd_col] = sd
            records.append({"row": _row(label), "label": str(out.at[label, "label"]), "arm": k, "method": text})
    return out, records


def _continuous(df: pd.DataFrame, measure: Measure, conv: Convention, policy: ContinuityCorrection,
                options: Mapping[str, str], source: str | None) -> _Computed:
    notes: dict[str, object] = {"conversion": None}
    out = df
    if df.attrs.get("kind") == "median":
        out, records = _fill_from_medians(df, options, source)
        notes["conversion"] = {"mean_method": options["mean_method"], "sd_method": options["sd_method"],
                               "rows": records}
        if records:
            rows = sorted({r["row"] for r in records}, key=lambda r: (r is None, r))
            warnings.warn(
                f"{source + ': ' if source else ''}estimated means and SDs from medians/quartiles/ranges "
                f"({options['mean_method']} mean, {options['sd_method']} SD) for {len(records)} arm(s) in "
                f"row(s) {', '.join(map(str, rows))}",
                DataWarning, stacklevel=4,
            )
    cols = {k: out[k].to_numpy(dtype=float) for k in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")}
    yi, vi = measure.compute(cols, conv)
    n = len(out)
    return _Computed(out, yi, vi, np.zeros(n, dtype=bool), [], np.zeros(n, dtype=bool), notes)


def _generic(df: pd.DataFrame, measure: Measure, conv: Convention, policy: ContinuityCorrection,
             options: Mapping[str, str], source: str | None) -> _Computed:
    cols = {k: df[k].to_numpy(dtype=float) for k in ("yi", "vi", "sei") if k in df.columns}
    yi, vi = measure.compute(cols, conv)
    n = len(df)
    return _Computed(df.copy(), yi, vi, np.zeros(n, dtype=bool), [], np.zeros(n, dtype=bool), {})


_Pipeline = Callable[[pd.DataFrame, Measure, Convention, ContinuityCorrection, Mapping[str, str], "str | None"],
                     _Computed]

#: measure kind -> (data kind chooser, pipeline)
_PIPELINES: dict[str, tuple[Callable[[pd.DataFrame], str], _Pipeline]] = {
    "binary": (lambda df: "binary", _binary),
    "continuous": (lambda df: "median" if {"med1i", "med2i"} & set(df.columns) else "continuous", _continuous),
    "generic": (lambda df: "generic", _generic),
}

#: columns without which a data kind cannot be meant at all (finer checks: validate())
_NEEDS: dict[str, tuple[str, ...]] = {"binary": ("ai", "ci"), "continuous": ("m1i", "m2i"),
                                      "median": ("n1i", "n2i"), "generic": ("yi",)}


def escalc(
    data: pd.DataFrame,
    measure: str | Measure,
    *,
    convention: str | Convention = "metafor",
    cc: str | Mapping[str, object] | ContinuityCorrection = "metafor",
    source: str | None = None,
    mean_method: str = "luo2018",
    sd_method: str = "wan2014",
    strict: bool = False,
) -> pd.DataFrame:
    """Compute effect sizes ``yi`` and sampling variances ``vi`` for each comparison.

    Parameters
    ----------
    data
        Study-level data in bayesmeta's vocabulary (e.g. from
        :func:`bayesmeta.data.read_table`); index = spreadsheet row number.
    measure
        A key of :data:`~bayesmeta.effects.MEASURES`: ``"RR"``, ``"OR"``, ``"RD"``
        (2x2 tables), ``"SMD"``, ``"MD"`` (means, or medians converted first),
        ``"GEN"`` (``yi`` with ``vi`` or ``sei``).
    convention
        ``"metafor"`` (exact Hedges correction, metafor's LS variance) or
        ``"revman"`` (RevMan 5 formulas); matters for SMD only.
    cc
        Continuity correction for 2x2 tables: ``"metafor"`` (default: add 1/2 to
        tables with a zero cell), ``"revman"``, ``"none"``, a dict
        ``{add, to, drop00}`` or a :class:`ContinuityCorrection`. Independent of
        ``convention`` (set both for a RevMan-like analysis).
    source
        File named in errors and warnings (default ``data.attrs["source"]``).
    mean_method, sd_method
        Conversion methods for median data (see
        :mod:`bayesmeta.effects.conversions`).
    strict
        Rows with all outcome values missing are an error instead of a warning.

    Returns
    -------
    pandas.DataFrame
        A copy of the usable rows with ``yi``, ``vi`` and ``sei`` added (analysis
        scale: log for RR/OR), a unique ``label`` column, for 2x2 tables both
        ``bi, di`` and ``n1i, n2i``, and for median data the estimated ``m1i, sd1i,
        m2i, sd2i``. ``attrs`` records ``measure``, ``scale``, ``convention``, ``cc``
        (policy dict or ``None``), ``corrected`` (row numbers that received the
        correction), ``dropped`` (``[{"row", "label", "reason"}]``), ``conversion``
        (median conversions or ``None``) and ``source``.

    Raises
    ------
    InputError
        Bad data (naming file, row and column) or fewer than 2 usable rows.
    SpecError
        Unknown measure, convention, correction or conversion method.

    Warns
    -----
    DataWarning
        Rows left out (all values missing, not estimable, double-zero tables),
        continuity corrections applied, means/SDs estimated from medians.
    """
    m = get_measure(measure)
    conv = get_convention(convention)
    policy = resolve_cc(cc)
    if mean_method not in MEAN_METHODS:
        raise SpecError(f"unknown mean method {mean_method!r}; choose one of {', '.join(MEAN_METHODS)}",
                        key="effect.mean_method")
    if sd_method not in SD_METHODS:
        raise SpecError(f"unknown SD method {sd_method!r}; choose one of {', '.join(SD_METHODS)}",
                        key="effect.sd_method")
    file = source if source is not None else data.attrs.get("source")
    choose_kind, pipeline = _PIPELINES[m.kind]
    kind = choose_kind(data)
    if not all(c in data.columns for c in _NEEDS[kind]):
        raise InputError(
            f"measure {m.code} needs {KINDS[kind].description}; the data have columns {list(map(str, data.columns))}",
            file=file,
        )
    df = validate(data, kind, strict=strict, file=file)
    if "label" not in df.columns:
        study = df["study"] if "study" in df.columns else pd.Series([f"Row {i}" for i in df.index], index=df.index)
        df.insert(0, "label", make_labels(study))
    options = {"mean_method": mean_method, "sd_method": sd_method}
    res = pipeline(df, m, conv, policy, options, file)

    out = res.frame
    reasons = dict(zip(np.flatnonzero(res.dropped), res.reasons, strict=True))
    bad = ~res.dropped & (~np.isfinite(res.yi) | ~np.isfinite(res.vi) | ~(res.vi > 0))
    for i in np.flatnonzero(bad):
        reasons[i] = f"{m.code} not estimable (yi = {res.yi[i]:g}, vi = {res.vi[i]:g})"
    dropped = res.dropped | bad
    order = np.flatnonzero(dropped)
    dropped_info = [{"row": _row(out.index[i]), "label": str(out["label"].iat[i]), "reason": reasons[i]}
                    for i in order]
    prefix = f"{file}: " if file else ""
    corrected = res.corrected & ~dropped
    if corrected.any():
        warnings.warn(
            f"{prefix}{m.code}: continuity correction ({policy.name}) added {policy.add:g} to every cell of "
            f"{int(corrected.sum())} table(s) with zero cells: {_where(out, corrected)}",
            DataWarning, stacklevel=2,
        )
    if dropped.any():
        warnings.warn(
            f"{prefix}{m.code}: left out {int(dropped.sum())} row(s): "
            + "; ".join(f"row {d['row']} ({d['label']}): {d['reason']}" for d in dropped_info),
            DataWarning, stacklevel=2,
        )
    out = out.copy()
    out["yi"] = res.yi
    out["vi"] = res.vi
    out["sei"] = np.sqrt(np.where(res.vi > 0, res.vi, np.nan))
    out = out.loc[~dropped].copy()
    if len(out) < 2:
        raise InputError(f"{m.code}: fewer than 2 estimable rows remain ({len(out)})", file=file)
    out.attrs = dict(out.attrs)
    out.attrs.update({
        "source": None if file is None else str(file),
        "measure": m.code,
        "scale": m.scale,
        "convention": conv.name,
        "cc": res.notes.get("cc"),
        "corrected": [_row(i) for i in out.index[corrected[~dropped]]],
        "dropped": dropped_info,
        "conversion": res.notes.get("conversion"),
    })
    return out
