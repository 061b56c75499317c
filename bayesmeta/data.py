"""Read study-level data (CSV, Excel, Parquet) into a tidy frame and validate it.

The vocabulary follows metafor (see ARCHITECTURE.md): counts ``ai, bi, ci, di`` or
``ai, n1i, ci, n2i``; means ``m1i, sd1i, n1i, m2i, sd2i, n2i``; medians ``med1i,
q1_1i, q3_1i, min1i, max1i`` (and ``_2i``); ready effects ``yi`` with ``vi`` or
``sei``. Every other column is a moderator and is kept.

The frame index is the spreadsheet row number of each record (header = row 1, first
data row = 2), so any later error can still name the row. ``df.attrs`` records the
source file (``"source"``) and, for every canonical column, the column name in the
file (``"columns"``), so errors name the column the user sees.

This module never imports PyMC, PyTensor or ArviZ.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmeta.errors import DataWarning, InputError

__all__ = [
    "CANONICAL_COLUMNS",
    "KINDS",
    "DataKind",
    "detect_kind",
    "make_labels",
    "read_table",
    "validate",
]

# --------------------------------------------------------------------------- vocabulary

#: Every column name with a meaning for bayesmeta (outcome columns plus ``study``).
CANONICAL_COLUMNS: tuple[str, ...] = (
    "study",
    "ai", "bi", "ci", "di", "n1i", "n2i",
    "m1i", "sd1i", "m2i", "sd2i",
    "med1i", "q1_1i", "q3_1i", "min1i", "max1i",
    "med2i", "q1_2i", "q3_2i", "min2i", "max2i",
    "yi", "vi", "sei",
)

_COUNT = ("ai", "bi", "ci", "di")
_SIZE = ("n1i", "n2i")
_POSITIVE = ("sd1i", "sd2i", "vi", "sei")


@dataclass(frozen=True)
class DataKind:
    """One shape of study-level data.

    Attributes
    ----------
    name
        ``"binary"``, ``"continuous"``, ``"median"`` or ``"generic"``.
    groups
        Each group must be satisfied by one of its alternatives (a tuple of columns
        that must all be present in a row). Binary data have one group (events and
        totals, or the four cells); continuous data one group per arm.
    min_n
        Smallest allowed group size (``n1i``, ``n2i``).
    description
        Human-readable list of the columns, for error messages.
    """

    name: str
    groups: tuple[tuple[tuple[str, ...], ...], ...]
    min_n: int
    description: str

    @property
    def columns(self) -> tuple[str, ...]:
        """All columns this kind can use, in first-mention order."""
        seen: dict[str, None] = {}
        for group in self.groups:
            for alternative in group:
                for col in alternative:
                    seen.setdefault(col, None)
        return tuple(seen)


def _median_arm(k: int) -> tuple[tuple[str, ...], ...]:
    # richest alternative first: a row uses the first one it satisfies
    return (
        (f"m{k}i", f"sd{k}i", f"n{k}i"),
        (f"med{k}i", f"q1_{k}i", f"q3_{k}i", f"min{k}i", f"max{k}i", f"n{k}i"),
        (f"med{k}i", f"q1_{k}i", f"q3_{k}i", f"n{k}i"),
        (f"med{k}i", f"min{k}i", f"max{k}i", f"n{k}i"),
    )


#: Registry of data kinds, in detection priority order.
KINDS: dict[str, DataKind] = {
    "binary": DataKind(
        "binary",
        ((("ai", "n1i", "ci", "n2i"), ("ai", "bi", "ci", "di")),),
        min_n=1,
        description="ai, n1i, ci, n2i (or ai, bi, ci, di)",
    ),
    "median": DataKind(
        "median",
        (_median_arm(1), _median_arm(2)),
        min_n=2,
        description="per arm: med, q1, q3 and/or min, max, with n (or m, sd, n)",
    ),
    "continuous": DataKind(
        "continuous",
        ((("m1i", "sd1i", "n1i"),), (("m2i", "sd2i", "n2i"),)),
        min_n=2,
        description="m1i, sd1i, n1i, m2i, sd2i, n2i",
    ),
    "generic": DataKind(
        "generic",
        ((("yi", "vi"), ("yi", "sei")),),
        min_n=1,
        description="yi with vi (or sei)",
    ),
}

_DETECT_BY: dict[str, Callable[[set[str]], bool]] = {
    # a kind is detected when its predicate holds for the column names; first match wins
    "binary": lambda cols: {"ai", "ci"} <= cols,
    "median": lambda cols: bool({"med1i", "med2i"} & cols),  # medians in at least one arm
    "continuous": lambda cols: {"m1i", "m2i"} <= cols,
    "generic": lambda cols: "yi" in cols,
}

_MISSING_STRINGS = frozenset({"", "na", "n/a", "nan", "null", "none", "."})

# --------------------------------------------------------------------------- helpers


def _file_of(df: pd.DataFrame, file: str | Path | None) -> str | None:
    if file is not None:
        return str(file)
    source = df.attrs.get("source")
    return None if source is None else str(source)


def _file_column(df: pd.DataFrame, canonical: str) -> str:
    """The name of a canonical column as it appears in the user's file."""
    return df.attrs.get("columns", {}).get(canonical, canonical)


def _row_number(label: object) -> int | None:
    try:
        return int(label)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _to_number(value: object) -> float | None:
    """Parse one cell; ``None`` means "not a number", NaN means missing."""
    if value is None:
        return np.nan
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    text = str(value).strip()
    if text.lower() in _MISSING_STRINGS:
        return np.nan
    try:
        return float(text)
    except ValueError:
        return None


def _coerce_numeric(df: pd.DataFrame, columns: Sequence[str], file: str | None) -> None:
    """Convert ``columns`` of ``df`` to float in place; name the first bad cell."""
    for col in columns:
        series = df[col]
        if pd.api.types.is_bool_dtype(series):
            raise InputError(
                f"expected numbers, found true/false values", file=file,
                row=_row_number(series.index[0]), column=_file_column(df, col),
            )
        if pd.api.types.is_numeric_dtype(series):
            df[col] = series.astype(float)
            continue
        parsed = []
        for label, value in series.items():
            number = _to_number(value)
            if number is None:
                raise InputError(
                    f"expected a number, found {str(value)!r}", file=file,
                    row=_row_number(label), column=_file_column(df, col),
                )
            parsed.append(number)
        df[col] = pd.Series(parsed, index=series.index, dtype=float)


def make_labels(study: pd.Series) -> pd.Series:
    """Unique display labels: the study name, with " [2]", " [3]"… for repeats.

    Parameters
    ----------
    study
        Study names, one per comparison (row).

    Returns
    -------
    pandas.Series
        Labels with the same index; the first comparison of a study keeps the plain
        name, the k-th repeat gets `` [k]``. Labels are guaranteed unique.
    """
    counts: dict[str, int] = {}
    used: set[str] = set()
    labels = []
    for name in study.astype(str):
        counts[name] = counts.get(name, 0) + 1
        label = name if counts[name] == 1 else f"{name} [{counts[name]}]"
        while label in used:  # e.g. a study literally named "X [2]"
            counts[name] += 1
            label = f"{name} [{counts[name]}]"
        used.add(label)
        labels.append(label)
    return pd.Series(labels, index=study.index, name="label")


# --------------------------------------------------------------------------- kinds


def detect_kind(df: pd.DataFrame, *, file: str | Path | None = None) -> str:
    """Which kind of outcome data a frame holds.

    Parameters
    ----------
    df
        Frame in bayesmeta's vocabulary.
    file
        File named in the error (defaults to ``df.attrs["source"]``).

    Returns
    -------
    str
        ``"binary"``, ``"median"``, ``"continuous"`` or ``"generic"``, checked in
        that order (raw summary data win over ready effect sizes).

    Raises
    ------
    InputError
        If the frame has none of the outcome columns.
    """
    names = {str(c) for c in df.columns}
    for name, detected in _DETECT_BY.items():
        if detected(names):
            return name
    expected = "; ".join(f"{k.name}: {k.description}" for k in KINDS.values())
    raise InputError(
        f"no outcome columns found (columns are {list(map(str, df.columns))}); "
        f"expected one of - {expected}",
        file=_file_of(df, file),
    )


@dataclass(frozen=True)
class _Check:
    """A per-cell rule: ``bad(values, min_n)`` marks violations."""

    bad: Callable[[np.ndarray, int], np.ndarray]
    message: Callable[[float, int], str]


def _fmt(x: float) -> str:
    return f"{x:g}"


_CELL_CHECKS: dict[str, _Check] = {
    **{c: _Check(lambda v, n: (v < 0) | (v != np.round(v)) | ~np.isfinite(v),
                 lambda x, n: f"counts must be non-negative integers, found {_fmt(x)}") for c in _COUNT},
    **{c: _Check(lambda v, n: (v < n) | (v != np.round(v)) | ~np.isfinite(v),
                 lambda x, n: f"group size must be an integer of at least {n}, found {_fmt(x)}") for c in _SIZE},
    **{c: _Check(lambda v, n: ~(v > 0) | ~np.isfinite(v),
                 lambda x, n: f"must be > 0, found {_fmt(x)}") for c in _POSITIVE},
}
_FINITE = _Check(lambda v, n: ~np.isfinite(v), lambda x, n: f"must be a finite number, found {_fmt(x)}")


@dataclass(frozen=True)
class _RowRule:
    """A relation between columns of one row: ``bad(df)`` marks violating rows."""

    columns: tuple[str, ...]
    bad: Callable[[pd.DataFrame], pd.Series]
    message: Callable[[pd.Series], str]
    blame: str  # column named in the error


def _order_rules(k: int) -> list[_RowRule]:
    names = (f"min{k}i", f"q1_{k}i", f"med{k}i", f"q3_{k}i", f"max{k}i")
    rules = []
    for lo, hi in zip(names[:-1], names[1:], strict=True):
        rules.append(_RowRule(
            (lo, hi), lambda d, lo=lo, hi=hi: d[lo] > d[hi],
            lambda r, lo=lo, hi=hi: f"{lo} = {_fmt(r[lo])} is above {hi} = {_fmt(r[hi])}", hi))
    for lo, hi in ((f"q1_{k}i", f"q3_{k}i"), (f"min{k}i", f"max{k}i")):
        rules.append(_RowRule(
            (lo, hi), lambda d, lo=lo, hi=hi: d[lo] >= d[hi],
            lambda r, lo=lo, hi=hi: f"{hi} = {_fmt(r[hi])} must exceed {lo} = {_fmt(r[lo])}", hi))
    return rules


_ROW_RULES: dict[str, list[_RowRule]] = {
    "binary": [
        _RowRule(("ai", "n1i"), lambda d: d["ai"] > d["n1i"],
                 lambda r: f"events ai = {_fmt(r['ai'])} exceed the group total n1i = {_fmt(r['n1i'])}", "ai"),
        _RowRule(("ci", "n2i"), lambda d: d["ci"] > d["n2i"],
                 lambda r: f"events ci = {_fmt(r['ci'])} exceed the group total n2i = {_fmt(r['n2i'])}", "ci"),
        _RowRule(("ai", "bi", "n1i"), lambda d: d["ai"] + d["bi"] != d["n1i"],
                 lambda r: f"ai + bi = {_fmt(r['ai'] + r['bi'])} differs from n1i = {_fmt(r['n1i'])}", "n1i"),
        _RowRule(("ci", "di", "n2i"), lambda d: d["ci"] + d["di"] != d["n2i"],
                 lambda r: f"ci + di = {_fmt(r['ci'] + r['di'])} differs from n2i = {_fmt(r['n2i'])}", "n2i"),
        _RowRule(("ai", "bi"), lambda d: d["ai"] + d["bi"] < 1,
                 lambda r: "arm 1 has no participants (ai + bi = 0)", "bi"),
        _RowRule(("ci", "di"), lambda d: d["ci"] + d["di"] < 1,
                 lambda r: "arm 2 has no participants (ci + di = 0)", "di"),
    ],
    "median": _order_rules(1) + _order_rules(2),
    "continuous": [],
    "generic": [],
}


def validate(
    df: pd.DataFrame,
    kind: str,
    *,
    strict: bool = False,
    file: str | Path | None = None,
) -> pd.DataFrame:
    """Check study-level data and return a clean copy with numeric outcome columns.

    Parameters
    ----------
    df
        Frame in bayesmeta's vocabulary; its index is the spreadsheet row number.
    kind
        A key of :data:`KINDS` (see :func:`detect_kind`).
    strict
        If true, a row whose outcome values are all missing is an error instead of
        being left out with a :class:`~bayesmeta.errors.DataWarning`. Group sizes
        (``n1i``, ``n2i``) do not count as outcome values: a study that reports its
        sample sizes but not the outcome is left out like an empty row.
    file
        File named in errors (defaults to ``df.attrs["source"]``).

    Returns
    -------
    pandas.DataFrame
        A copy with the outcome columns as floats, rows with all outcome values
        missing left out (as metafor leaves out NA rows), ``attrs["kind"]`` set and
        the left-out rows listed in ``attrs["missing_rows"]``.

    Raises
    ------
    InputError
        Naming file, row and column, for: non-numeric cells, negative or
        non-integer counts, events above totals, SD <= 0, n below the minimum,
        some (not all) outcome values missing in a row, quantiles out of order,
        vi/sei <= 0, or fewer than 2 usable rows.
    """
    if kind not in KINDS:
        raise InputError(f"unknown data kind {kind!r}; known kinds: {', '.join(KINDS)}")
    spec = KINDS[kind]
    source = _file_of(df, file)
    if not df.index.is_unique:
        raise InputError("row numbers (the frame index) must be unique; use the frame read_table() returns "
                         "or reset the index", file=source)
    out = df.copy()
    present = [c for c in spec.columns if c in out.columns]
    _coerce_numeric(out, present, source)

    outcome = [c for c in present if c not in _SIZE]  # group sizes alone are no outcome data
    all_missing = ~out[outcome].notna().any(axis=1)
    missing_rows = [_row_number(i) for i in out.index[all_missing]]
    if missing_rows:
        names = _describe_rows(out, out.index[all_missing])
        if strict:
            raise InputError(
                f"all outcome values ({', '.join(_file_column(out, c) for c in outcome)}) are missing",
                file=source, row=missing_rows[0],
            )
        warnings.warn(
            f"{source + ': ' if source else ''}left out {len(missing_rows)} row(s) whose outcome "
            f"values are all missing: {names}",
            DataWarning, stacklevel=2,
        )
        out = out.loc[~all_missing].copy()

    for group in spec.groups:
        _check_group(out, group, source)

    for col in present:
        check = _CELL_CHECKS.get(col, _FINITE)
        v = out[col].to_numpy(dtype=float)
        bad = ~np.isnan(v) & check.bad(np.where(np.isnan(v), 1.0, v), spec.min_n)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(check.message(v[i], spec.min_n), file=source,
                             row=_row_number(out.index[i]), column=_file_column(out, col))

    for rule in _ROW_RULES[kind]:
        if not all(c in out.columns for c in rule.columns):
            continue
        sub = out[list(rule.columns)]
        bad = sub.notna().all(axis=1) & rule.bad(sub)
        if bad.any():
            label = bad.index[bad.to_numpy()][0]
            raise InputError(rule.message(sub.loc[label]), file=source,
                             row=_row_number(label), column=_file_column(out, rule.blame))

    if len(out) < 2:
        raise InputError(
            f"a meta-analysis needs at least 2 usable rows of {kind} data, found {len(out)}",
            file=source,
        )
    out.attrs["kind"] = kind
    out.attrs["missing_rows"] = missing_rows
    return out


def _describe_rows(df: pd.DataFrame, labels: Sequence[object]) -> str:
    names = []
    for label in labels:
        study = df.at[label, "study"] if "study" in df.columns else None
        names.append(f"row {label}" + (f" ({study})" if study is not None and not pd.isna(study) else ""))
    return ", ".join(names)


def _check_group(df: pd.DataFrame, group: tuple[tuple[str, ...], ...], source: str | None) -> None:
    """Every row must satisfy one alternative of ``group``; else name the missing cell."""
    ok = pd.Series(False, index=df.index)
    for alternative in group:
        if all(c in df.columns for c in alternative):
            ok |= df[list(alternative)].notna().all(axis=1)
    if ok.all():
        return
    label = df.index[~ok.to_numpy()][0]
    row = df.loc[label]
    best, best_present = group[0], -1
    for alternative in group:  # the alternative closest to complete names the gap
        n_present = sum(c in df.columns and not pd.isna(row[c]) for c in alternative)
        if n_present > best_present:
            best, best_present = alternative, n_present
    missing = next(c for c in best if c not in df.columns or pd.isna(row[c]))
    needs = " or ".join(", ".join(a) for a in group)
    raise InputError(f"value missing (each row needs {needs})", file=source,
                     row=_row_number(label), column=_file_column(df, missing))


# --------------------------------------------------------------------------- reading


def _read_csv(path: Path, sheet: str | int | None) -> pd.DataFrame:
    return pd.read_csv(path, skip_blank_lines=False)


def _read_excel(path: Path, sheet: str | int | None) -> pd.DataFrame:
    with pd.ExcelFile(path, engine="openpyxl") as book:
        target = 0 if sheet is None else sheet
        if isinstance(target, str) and target not in book.sheet_names:
            raise InputError(f"sheet {target!r} not found; sheets are {book.sheet_names}", file=path)
        if isinstance(target, int) and not 0 <= target < len(book.sheet_names):
            raise InputError(f"sheet number {target} not found; the file has {len(book.sheet_names)} sheet(s)",
                             file=path)
        return pd.read_excel(book, sheet_name=target)


def _read_parquet(path: Path, sheet: str | int | None) -> pd.DataFrame:
    return pd.read_parquet(path).reset_index(drop=True)


_READERS: dict[str, Callable[[Path, str | int | None], pd.DataFrame]] = {
    ".csv": _read_csv,
    ".xlsx": _read_excel,
    ".xlsm": _read_excel,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
}


def read_table(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    filter: Mapping[str, Sequence[object] | object] | None = None,  # noqa: A002 (spec key)
    sheet: str | int | None = None,
    study: str = "study",
    strict: bool = False,
) -> pd.DataFrame:
    """Read a CSV, Excel (.xlsx) or Parquet file of study-level data.

    Parameters
    ----------
    path
        The data file; the reader is chosen by its suffix.
    columns
        Maps canonical names (``ai``, ``n1i``, ``m1i``, ``yi``…, see
        :data:`CANONICAL_COLUMNS`) to the file's column names.
    filter
        ``{column: [allowed values]}``: keep the rows whose value is in the list
        (values are also compared as text, so ``2018`` matches ``"2018"``). The
        column may be given by its file name or canonical name. Never an expression.
    sheet
        Excel sheet name or 0-based number (default: the first sheet).
    study
        The file's column with study labels (renamed to ``study``). A study may
        contribute several comparisons (rows); each gets a unique ``label``. If the
        default ``"study"`` column is absent, labels are ``"Row <n>"``.
    strict
        Make rows whose outcome values are all missing an error (see :func:`validate`).

    Returns
    -------
    pandas.DataFrame
        Index = spreadsheet row number (header row 1, first data row 2; for Parquet
        the record number + 1). Columns: ``study``, ``label``, the canonical outcome
        columns as floats, and every other column unchanged (moderators).
        ``attrs``: ``source`` (str(path)), ``columns`` (canonical -> file name),
        ``kind``, ``filter``, ``missing_rows``.

    Raises
    ------
    InputError
        Naming file, row and column (see :func:`validate`), and for an unknown file
        type, a missing file, sheet or column, or an unknown name in ``columns``.
    """
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"unsupported file type {path.suffix!r}; use one of {', '.join(_READERS)}", file=path)
    if not path.is_file():
        raise InputError("file not found", file=path)
    raw = reader(path, sheet)
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.dropna(how="all")  # blank lines are not records
    raw.index = raw.index + 2  # spreadsheet numbering (header = row 1)
    df = _rename_columns(raw, columns or {}, study, path)
    df.attrs["source"] = str(path)
    if filter:
        df = _apply_filter(df, filter, path)
    kind = detect_kind(df, file=path)
    df = validate(df, kind, strict=strict, file=path)
    df.insert(1, "label", make_labels(df["study"]))
    df.attrs["filter"] = {str(k): list(v) if _is_list(v) else [v] for k, v in (filter or {}).items()}
    return df


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


def _rename_columns(raw: pd.DataFrame, mapping: Mapping[str, str], study: str, path: Path) -> pd.DataFrame:
    mapping = dict(mapping)
    if study != "study":
        if mapping.get("study", study) != study:
            raise InputError(f"study column given twice: {study!r} and {mapping['study']!r}", file=path)
        mapping["study"] = study
    for canonical, file_col in mapping.items():
        if canonical not in CANONICAL_COLUMNS:
            raise InputError(
                f"unknown name {canonical!r} in the column mapping; known names: {', '.join(CANONICAL_COLUMNS)}",
                file=path, column=str(file_col),
            )
        if file_col not in raw.columns:
            raise InputError(
                f"column {file_col!r} (mapped to {canonical!r}) not found; the file has {list(raw.columns)}",
                file=path, column=str(file_col),
            )
        if canonical in raw.columns and canonical != file_col and canonical not in mapping.values():
            raise InputError(
                f"the file already has a column {canonical!r}; map {file_col!r} to it only after renaming "
                f"or removing the existing one",
                file=path, column=canonical,
            )
    sources = list(mapping.values())
    duplicated = {c for c in sources if sources.count(c) > 1}
    if duplicated:
        raise InputError(f"column {sorted(duplicated)[0]!r} is mapped to several names", file=path,
                         column=sorted(duplicated)[0])
    df = raw.rename(columns={v: k for k, v in mapping.items()})
    names = {c: c for c in CANONICAL_COLUMNS if c in df.columns}
    names.update({k: v for k, v in mapping.items()})
    df.attrs["columns"] = names
    if "study" not in df.columns:
        if study != "study":
            raise InputError(f"study column {study!r} not found", file=path, column=study)
        df.insert(0, "study", [f"Row {i}" for i in df.index])
    else:
        blank = df["study"].isna() | (df["study"].astype(str).str.strip() == "")
        if blank.any():
            raise InputError("study label is missing", file=path, row=_row_number(df.index[blank.to_numpy()][0]),
                             column=names["study"])
        df["study"] = df["study"].astype(str).str.strip()
        df = df[["study"] + [c for c in df.columns if c != "study"]]
    return df


def _apply_filter(df: pd.DataFrame, spec: Mapping[str, object], path: Path) -> pd.DataFrame:
    keep = pd.Series(True, index=df.index)
    reverse = {v: k for k, v in df.attrs.get("columns", {}).items()}
    for column, allowed in spec.items():
        name = column if column in df.columns else reverse.get(column)
        if name is None or name not in df.columns:
            raise InputError(f"filter column {column!r} not found; the file has {list(df.columns)}",
                             file=path, column=str(column))
        values = list(allowed) if _is_list(allowed) else [allowed]
        as_text = {str(v) for v in values}
        keep &= df[name].isin(values) | df[name].astype(str).isin(as_text)
    out = df.loc[keep].copy()
    if out.empty:
        raise InputError(f"the filter {dict(spec)} kept no rows", file=path)
    return out
