"""Paper vs frequentist reproduction vs Bayesian posterior, on the paper's printed scale.

:func:`compare` builds a :class:`Comparison`: one row per quantity (pooled ``estimate``, its
``ci_low``/``ci_high``, the prediction interval ``pi_low``/``pi_high`` against the posterior
predictive ``theta_new``, ``tau2``, ``i2`` and the counts ``k``, ``animals``, ``participants``) with
columns ``quantity, published, frequentist, bayes_median, bayes_q025, bayes_q975, flag``.

Scales: frequentist results and posterior summaries are on the analysis scale (log for ratio
measures); ``published`` numbers are on the printed scale (``scale = "ratio"`` means exp of the
analysis scale). Location rows (estimate, CI, PI) are shown on the printed scale; posterior
quantiles transform exactly under exp, the posterior mean does not, so only medians and
quantiles are used. ``tau2`` stays on the analysis scale and ``i2`` in percent.

In the ``ci_low`` (``pi_low``) row the Bayesian counterpart is the 2.5% quantile of ``mu``
(``theta_new``) and sits in ``bayes_q025``; in ``ci_high`` (``pi_high``) it is the 97.5% quantile
in ``bayes_q975``. Flags are produced by the rules in :data:`RULES` and say where sources disagree.

This module computes only; :func:`render_text` and :func:`rich_table` format a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from bayesmeta._json import jsonable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.table import Table

__all__ = [
    "COLUMNS",
    "ROUNDING_UNITS_TOLERANCE",
    "RULES",
    "Comparison",
    "ComparisonRow",
    "compare",
    "render_text",
    "rich_table",
]

#: A published number may differ from our reproduction by rounding (at most half a unit of the
#: last printed digit); more than 3 units means a different method, data or a typo.
ROUNDING_UNITS_TOLERANCE = 3

COLUMNS = ("quantity", "published", "frequentist", "bayes_median", "bayes_q025", "bayes_q975", "flag")

#: Row order and display labels.
QUANTITIES: dict[str, str] = {
    "estimate": "Pooled estimate",
    "ci_low": "95% interval, lower",
    "ci_high": "95% interval, upper",
    "pi_low": "95% prediction, lower",
    "pi_high": "95% prediction, upper",
    "tau2": "tau² (analysis scale)",
    "i2": "I² (%)",
    "k": "Studies (k)",
    "animals": "Animals",
    "participants": "Participants",
}

#: Rows shown on the printed scale (exp of the analysis scale for ratio measures).
_LOCATION = ("estimate", "ci_low", "ci_high", "pi_low", "pi_high")
_COUNTS = ("k", "animals", "participants")
_LEVEL = 95.0

PrintedScale = Literal["ratio", "identity"]


@dataclass(frozen=True)
class ComparisonRow:
    """One quantity from each source (``None`` where a source has no such number)."""

    quantity: str
    published: float | None
    frequentist: float | None
    bayes_median: float | None
    bayes_q025: float | None
    bayes_q975: float | None
    flags: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """All flags of the row joined by ``"; "`` (empty when the sources agree)."""
        return "; ".join(self.flags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping with the table's columns plus the list of ``flags``."""
        return jsonable({**{c: getattr(self, c) for c in COLUMNS}, "flags": list(self.flags)})


@dataclass(frozen=True)
class Comparison:
    """The comparison table and its context.

    Attributes
    ----------
    rows
        In the order of :data:`QUANTITIES`; rows without any number are left out.
    scale
        Printed scale of the location rows: ``"ratio"`` (exp) or ``"identity"``.
    null
        The no-effect value on the printed scale (1 for ratio, 0 for identity).
    source, digits
        Where the published numbers come from and their printed decimals.
    notes
        Checks that could not be made, and why.
    """

    rows: tuple[ComparisonRow, ...]
    scale: PrintedScale
    null: float
    source: str | None = None
    digits: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def flags(self) -> tuple[str, ...]:
        """Every flag, prefixed by its quantity."""
        return tuple(f"{row.quantity}: {f}" for row in self.rows for f in row.flags)

    def row(self, quantity: str) -> ComparisonRow:
        """The row of ``quantity``; ``KeyError`` when absent."""
        for row in self.rows:
            if row.quantity == quantity:
                return row
        raise KeyError(f"no row '{quantity}' (have {', '.join(r.quantity for r in self.rows)})")

    def to_frame(self) -> pd.DataFrame:
        """The table with :data:`COLUMNS` (``flag`` is the joined string)."""
        return pd.DataFrame([{c: getattr(r, c) for c in COLUMNS} for r in self.rows], columns=list(COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping: context, rows and all flags."""
        return jsonable(
            {"scale": self.scale, "null": self.null, "source": self.source, "digits": self.digits,
             "rows": [r.to_dict() for r in self.rows], "flags": list(self.flags),
             "notes": list(self.notes)}
        )

    def to_csv(self, path: str | Path) -> None:
        """Write :meth:`to_frame` as CSV (UTF-8, no index)."""
        self.to_frame().to_csv(path, index=False, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# gathering values


def _number(mapping: Mapping[str, Any] | None, key: str) -> float | None:
    if mapping is None:
        return None
    value = mapping.get(key)
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _as_mapping(obj: Any) -> Mapping[str, Any] | None:
    """dicts pass through; pydantic models (``PublishedSpec``) and result objects are dumped."""
    if obj is None or isinstance(obj, Mapping):
        return obj
    for method in ("model_dump", "to_dict"):
        if callable(getattr(obj, method, None)):
            return getattr(obj, method)()
    raise TypeError(f"expected a mapping, got {type(obj).__name__}")


def _decimals(value: float) -> int:
    """Decimals of a printed number as Python writes it shortest (21.0 -> 0, 2.04 -> 2)."""
    text = repr(float(value))
    if "e" in text or "E" in text or text.endswith(".0"):
        return 0
    return len(text.split(".")[1]) if "." in text else 0


@dataclass(frozen=True)
class _Context:
    """Values of every source on the printed scale, shared by the rules."""

    scale: PrintedScale
    null: float
    digits: int | None
    published: dict[str, float | None]
    frequentist: dict[str, float | None]
    bayes: dict[str, tuple[float | None, float | None, float | None]]  # median, q025, q975
    level_ok: bool

    def unit(self, quantity: str) -> float | None:
        """One rounding unit of the published number of ``quantity``."""
        value = self.published.get(quantity)
        if value is None:
            return None
        if quantity in _LOCATION and self.digits is not None:
            return 10.0 ** (-self.digits)
        return 10.0 ** (-_decimals(value))


def _gather(
    published: Mapping[str, Any] | None,
    frequentist: Mapping[str, Any] | None,
    bayes_summary: Mapping[str, Any],
    measure_scale: Literal["log", "identity"],
) -> _Context:
    if measure_scale not in ("log", "identity"):
        raise ValueError(f"measure_scale must be 'log' or 'identity', not {measure_scale!r}")
    if published is not None and published.get("scale") is not None:
        scale: PrintedScale = published["scale"]
        if scale not in ("ratio", "identity"):
            raise ValueError(f"published scale must be 'ratio' or 'identity', not {scale!r}")
        if scale == "ratio" and measure_scale != "log":
            raise ValueError("published numbers are ratios but the measure is not on the log scale")
    else:
        scale = "ratio" if measure_scale == "log" else "identity"
    to_printed: Callable[[float | None], float | None] = (
        (lambda x: None if x is None else math.exp(x)) if scale == "ratio" else (lambda x: x)
    )

    pub = {q: _number(published, q) for q in QUANTITIES}
    freq: dict[str, float | None] = {q: _number(frequentist, q) for q in QUANTITIES}
    for q in _LOCATION:
        freq[q] = to_printed(freq[q])

    def bayes(name: str, printed: bool) -> tuple[float | None, float | None, float | None]:
        entry = bayes_summary.get(name)
        if not isinstance(entry, Mapping):
            return (None, None, None)
        values = tuple(_number(entry, key) for key in ("median", "q025", "q975"))
        return tuple(to_printed(v) for v in values) if printed else values  # type: ignore[return-value]

    mu, new = bayes("mu", True), bayes("theta_new", True)
    bay = {
        "estimate": mu,
        "ci_low": (None, mu[1], None),
        "ci_high": (None, None, mu[2]),
        "pi_low": (None, new[1], None),
        "pi_high": (None, None, new[2]),
        "tau2": bayes("tau2", False),
        "i2": bayes("i2", False),
    }
    for q in _COUNTS:
        count = bayes_summary.get(q)
        bay[q] = (None if count is None else float(count), None, None)
    level = _number(frequentist, "level")
    digits = None if published is None or published.get("digits") is None else int(published["digits"])
    return _Context(scale, 1.0 if scale == "ratio" else 0.0, digits, pub, freq, bay,
                    level_ok=level is None or level == _LEVEL)


# --------------------------------------------------------------------------------------------
# rules: each returns (quantity, message) pairs


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _rule_rounding(ctx: _Context) -> list[tuple[str, str]]:
    out = []
    for q in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2"):
        pub, freq, unit = ctx.published[q], ctx.frequentist[q], ctx.unit(q)
        if pub is None or freq is None or unit is None:
            continue
        if abs(pub - freq) > ROUNDING_UNITS_TOLERANCE * unit * (1 + 1e-9):
            out.append((q, f"published {_fmt(pub)} differs from the frequentist reproduction "
                           f"{_fmt(freq)} by > {ROUNDING_UNITS_TOLERANCE} rounding units ({unit:g})"))
    return out


def _rule_counts(ctx: _Context) -> list[tuple[str, str]]:
    out = []
    for q in _COUNTS:
        pub = ctx.published[q]
        for name, other in (("reproduction", ctx.frequentist[q]), ("Bayesian model", ctx.bayes[q][0])):
            if pub is not None and other is not None and round(pub) != round(other):
                out.append((q, f"published {q}={round(pub)} but the {name} has {q}={round(other)}"))
    return out


def _rule_outside_posterior(ctx: _Context) -> list[tuple[str, str]]:
    out = []
    for q in ("estimate", "tau2", "i2"):
        _, lo, hi = ctx.bayes[q]
        if lo is None or hi is None:
            continue
        for name, value in (("published", ctx.published[q]), ("frequentist", ctx.frequentist[q])):
            if name == "frequentist" and q != "estimate":
                continue  # point estimates of tau² (often 0) sit outside routinely; not news
            if value is not None and not lo <= value <= hi:
                out.append((q, f"{name} {QUANTITIES[q].split(' (')[0]} {_fmt(value)} outside the "
                               f"posterior 95% interval [{_fmt(lo)}, {_fmt(hi)}]"))
    return out


def _excludes(lo: float | None, hi: float | None, null: float) -> bool | None:
    if lo is None or hi is None:
        return None
    return lo > null or hi < null


def _rule_null(ctx: _Context) -> list[tuple[str, str]]:
    if not ctx.level_ok:
        return []
    bayes = _excludes(ctx.bayes["ci_low"][1], ctx.bayes["ci_high"][2], ctx.null)
    out = []
    for name, source in (("frequentist", ctx.frequentist), ("published", ctx.published)):
        other = _excludes(source["ci_low"], source["ci_high"], ctx.null)
        if bayes is None or other is None or bayes == other:
            continue
        if other:
            text = f"{name} 95% CI excludes the null ({ctx.null:g}) but the credible interval does not"
        else:
            text = f"credible interval excludes the null ({ctx.null:g}) but the {name} 95% CI does not"
        out.append(("estimate", text))
    return out


def _rule_prediction(ctx: _Context) -> list[tuple[str, str]]:
    mu = _excludes(ctx.bayes["ci_low"][1], ctx.bayes["ci_high"][2], ctx.null)
    new = _excludes(ctx.bayes["pi_low"][1], ctx.bayes["pi_high"][2], ctx.null)
    if mu and new is False:
        return [("pi_low", f"the 95% predictive interval for a new study includes the null "
                           f"({ctx.null:g}) although the credible interval for mu excludes it")]
    return []


#: The flag rules, applied in order; each maps the context to ``(quantity, message)`` pairs.
RULES: tuple[Callable[[_Context], list[tuple[str, str]]], ...] = (
    _rule_rounding,
    _rule_counts,
    _rule_outside_posterior,
    _rule_null,
    _rule_prediction,
)


# --------------------------------------------------------------------------------------------
# public API


def compare(
    published: Mapping[str, Any] | None,
    frequentist: Mapping[str, Any] | None,
    bayes_summary: Mapping[str, Any],
    *,
    measure_scale: Literal["log", "identity"] = "log",
) -> Comparison:
    """Compare published, frequentist and Bayesian results and flag disagreements.

    Parameters
    ----------
    published
        The spec's ``[published]`` section (dict or ``PublishedSpec``): ``source``, ``scale``
        (``"ratio"``/``"identity"``), ``digits``, ``k``, ``animals``, ``participants``,
        ``estimate``, ``ci_low``, ``ci_high``, ``i2`` (percent), ``tau2`` (analysis scale).
    frequentist
        ``RMAResult.to_dict()`` (or the reference result's dict): ``k, estimate, ci_low, ci_high,
        pi_low, pi_high, tau2, i2, level`` on the analysis scale, optionally ``animals``.
    bayes_summary
        Posterior summaries ``{"mu": {"median", "q025", "q975", ...}, "theta_new": ..., "tau2": ...,
        "i2": ...}`` on the analysis scale, optionally counts ``k``/``animals``.
    measure_scale
        ``"log"`` for ratio measures (RR, OR), ``"identity"`` otherwise.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        On an unknown scale, or ratio-scale published numbers with an identity-scale measure.
    """
    published = _as_mapping(published)
    frequentist = _as_mapping(frequentist)
    ctx = _gather(published, frequentist, bayes_summary, measure_scale)
    flags: dict[str, list[str]] = {q: [] for q in QUANTITIES}
    for rule in RULES:
        for quantity, message in rule(ctx):
            flags[quantity].append(message)
    rows = []
    for q in QUANTITIES:
        median, q025, q975 = ctx.bayes[q] if q in ctx.bayes else (None, None, None)
        values = (ctx.published[q], ctx.frequentist[q], median, q025, q975)
        if all(v is None for v in values):
            continue
        rows.append(ComparisonRow(q, *values, flags=tuple(flags[q])))
    notes = []
    if not ctx.level_ok:
        notes.append(f"frequentist intervals are not {_LEVEL:g}%: null-exclusion flags skipped")
    return Comparison(
        rows=tuple(rows),
        scale=ctx.scale,
        null=ctx.null,
        source=None if published is None else published.get("source"),
        digits=ctx.digits,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# formatting (kept apart from computing)


def _cell(value: float | None, quantity: str, digits: int | None, column: str) -> str:
    """Published numbers as printed (``digits``); ours with one more decimal."""
    if value is None:
        return "–"
    if quantity in _COUNTS:
        return f"{value:.0f}"
    if column == "published" and not (quantity in _LOCATION and digits is not None):
        return f"{value:g}"
    if quantity == "i2":
        return f"{value:.1f}"
    if quantity in _LOCATION and digits is not None:
        return f"{value:.{digits + (column != 'published')}f}"
    return f"{value:.4g}"


def _display_rows(comparison: Comparison) -> list[list[str]]:
    return [
        [QUANTITIES[r.quantity]]
        + [_cell(getattr(r, c), r.quantity, comparison.digits, c) for c in COLUMNS[1:-1]]
        + [r.flag]
        for r in comparison.rows
    ]


_HEADER = ("Quantity", "Published", "Frequentist", "Bayes median", "Bayes 2.5%", "Bayes 97.5%", "Flag")


def render_text(comparison: Comparison) -> str:
    """Plain fixed-width text of the table (for logs, ``--no-color`` and tests)."""
    rows = _display_rows(comparison)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(_HEADER[:-1])]
    lines = []
    scale = "ratio scale (exp of the log scale)" if comparison.scale == "ratio" else "analysis scale"
    if comparison.source:
        lines.append(f"Published: {comparison.source}")
    lines.append(f"Estimates and intervals on the {scale}; null = {comparison.null:g}")
    lines.append("  ".join(h.ljust(w) for h, w in zip(_HEADER[:-1], widths)) + "  Flag")
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + ("  " + r[-1] if r[-1] else ""))
    lines.extend(f"Note: {n}" for n in comparison.notes)
    return "\n".join(line.rstrip() for line in lines)


def rich_table(comparison: Comparison) -> Table:
    """A :class:`rich.table.Table` with flags in red, for the CLI."""
    from rich.table import Table  # formatting only; the computing side needs no rich

    title = "Published vs frequentist vs Bayesian"
    if comparison.source:
        title += f"\n[dim]{comparison.source}[/dim]"
    table = Table(title=title)
    for i, header in enumerate(_HEADER):
        table.add_column(header, justify="left" if i in (0, len(_HEADER) - 1) else "right",
                         style="red" if i == len(_HEADER) - 1 else None)
    for row in _display_rows(comparison):
        table.add_row(*row)
    return table
