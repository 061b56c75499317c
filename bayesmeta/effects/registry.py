"""The measure registry: one :class:`Measure` per effect-size code.

No code branches on measure codes: everything a layer needs to know about a
measure (data kind, analysis scale, null value, label, how to compute it, how to
show it on the natural scale) lives in its registry entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from bayesmeta.effects.binary import (
    log_odds_ratio,
    log_risk_ratio,
    no_events_both,
    no_events_or_all_events_both,
    risk_difference,
)
from bayesmeta.effects.continuous import Convention, mean_difference, standardized_mean_difference
from bayesmeta.errors import SpecError

__all__ = ["MEASURES", "SCALES", "Measure", "Scale", "generic", "get_measure"]


@dataclass(frozen=True)
class Scale:
    """An analysis scale and its map to the natural (reporting) scale."""

    name: str
    to_natural: Callable[[np.ndarray], np.ndarray]
    to_analysis: Callable[[np.ndarray], np.ndarray]


SCALES: dict[str, Scale] = {
    "log": Scale("log", np.exp, np.log),
    "identity": Scale("identity", lambda x: x, lambda x: x),
}


def generic(data: Mapping[str, np.ndarray], convention: Convention) -> tuple[np.ndarray, np.ndarray]:
    """Ready effect sizes: ``yi`` with ``vi``, or with ``sei`` (``vi = sei^2``) where ``vi`` is missing."""
    yi = np.asarray(data["yi"], dtype=float)
    vi = np.asarray(data["vi"], dtype=float) if "vi" in data else np.full_like(yi, np.nan)
    if "sei" in data:
        vi = np.where(np.isnan(vi), np.asarray(data["sei"], dtype=float) ** 2, vi)
    return yi, vi


def _natural(scale: Scale, x: float | np.ndarray) -> float | np.ndarray:
    out = scale.to_natural(np.asarray(x, dtype=float))
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class Measure:
    """An effect-size measure.

    Attributes
    ----------
    code
        ``"RR"``, ``"OR"``, ``"RD"``, ``"SMD"``, ``"MD"`` or ``"GEN"``.
    kind
        Data it needs: ``"binary"``, ``"continuous"`` (means or medians) or ``"generic"``.
    scale
        Analysis scale, a key of :data:`SCALES` (``"log"`` for ratios).
    null
        Value of "no effect" on the analysis scale (0 for all measures here).
    label
        Name for reports.
    compute
        ``compute(columns, convention) -> (yi, vi)`` on the analysis scale.
    uninformative
        For 2x2 tables: which tables the measure cannot estimate (RevMan leaves
        them out); ``None`` if every table is estimable.
    """

    code: str
    kind: str
    scale: str
    null: float
    label: str
    compute: Callable[[Mapping[str, np.ndarray], Convention], tuple[np.ndarray, np.ndarray]]
    uninformative: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None

    def to_natural(self, x: float | np.ndarray) -> float | np.ndarray:
        """Back-transform from the analysis scale (``exp`` for log-scale measures)."""
        return _natural(SCALES[self.scale], x)

    def to_analysis(self, x: float | np.ndarray) -> float | np.ndarray:
        """Transform a natural-scale value to the analysis scale (``log`` for ratios)."""
        out = SCALES[self.scale].to_analysis(np.asarray(x, dtype=float))
        return float(out) if np.ndim(out) == 0 else out

    @property
    def null_natural(self) -> float:
        """The null value on the natural scale (1 for ratios, 0 for differences)."""
        return float(self.to_natural(self.null))

    def to_dict(self) -> dict[str, object]:
        """JSON-able description (without the functions)."""
        return {
            "code": self.code,
            "kind": self.kind,
            "scale": self.scale,
            "null": self.null,
            "null_natural": self.null_natural,
            "label": self.label,
        }


MEASURES: dict[str, Measure] = {
    m.code: m
    for m in (
        Measure("RR", "binary", "log", 0.0, "Risk ratio", log_risk_ratio, no_events_both),
        Measure("OR", "binary", "log", 0.0, "Odds ratio", log_odds_ratio, no_events_or_all_events_both),
        Measure("RD", "binary", "identity", 0.0, "Risk difference", risk_difference, None),
        Measure("SMD", "continuous", "identity", 0.0, "Standardised mean difference (Hedges' g)",
                standardized_mean_difference),
        Measure("MD", "continuous", "identity", 0.0, "Mean difference", mean_difference),
        Measure("GEN", "generic", "identity", 0.0, "Effect size (as given)", generic),
    )
}


def get_measure(code: str | Measure) -> Measure:
    """Look up a measure code (or pass a :class:`Measure` through)."""
    if isinstance(code, Measure):
        return code
    if code not in MEASURES:
        raise SpecError(f"unknown measure {code!r}; choose one of {', '.join(MEASURES)}", key="effect.measure")
    return MEASURES[code]
