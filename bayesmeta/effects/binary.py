"""Effect sizes for 2x2 tables (arm 1 = treatment, arm 2 = control).

Every function takes the (possibly continuity-corrected) cells ``ai, bi, ci, di``
as float arrays and returns ``(yi, vi)``. The formulas are the large-sample ones
used by both metafor (``escalc``, ``vtype = "LS"``) and RevMan 5 (Deeks & Higgins,
*Statistical algorithms in Review Manager 5*, 2010, section "Dichotomous data,
individual studies"); the two programs differ only in how zero cells are handled,
which is :mod:`bayesmeta.effects.correction`'s job.

Zero cells give infinite or undefined values here on purpose (no warning is
raised); :func:`bayesmeta.effects.escalc` leaves such rows out and says so.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["log_odds_ratio", "log_risk_ratio", "risk_difference", "no_events_both", "no_events_or_all_events_both"]

Cells = Mapping[str, np.ndarray]


def log_risk_ratio(cells: Cells, convention: object = None) -> tuple[np.ndarray, np.ndarray]:
    """Log risk ratio and its large-sample variance.

    ``yi = log((ai / n1i) / (ci / n2i))``, ``vi = 1/ai - 1/n1i + 1/ci - 1/n2i``
    with ``n1i = ai + bi`` and ``n2i = ci + di``.
    """
    ai, bi, ci, di = (np.asarray(cells[k], dtype=float) for k in ("ai", "bi", "ci", "di"))
    n1, n2 = ai + bi, ci + di
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(ai / n1) - np.log(ci / n2)
        vi = 1.0 / ai - 1.0 / n1 + 1.0 / ci - 1.0 / n2
    return yi, vi


def log_odds_ratio(cells: Cells, convention: object = None) -> tuple[np.ndarray, np.ndarray]:
    """Log odds ratio and its Woolf variance.

    ``yi = log((ai * di) / (bi * ci))``, ``vi = 1/ai + 1/bi + 1/ci + 1/di``.
    """
    ai, bi, ci, di = (np.asarray(cells[k], dtype=float) for k in ("ai", "bi", "ci", "di"))
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(ai) + np.log(di) - np.log(bi) - np.log(ci)
        vi = 1.0 / ai + 1.0 / bi + 1.0 / ci + 1.0 / di
    return yi, vi


def risk_difference(cells: Cells, convention: object = None) -> tuple[np.ndarray, np.ndarray]:
    """Risk difference and its large-sample variance.

    ``yi = ai/n1i - ci/n2i``, ``vi = p1 (1 - p1) / n1i + p2 (1 - p2) / n2i``
    (= ``ai bi / n1i^3 + ci di / n2i^3``, the RevMan 5 form).
    """
    ai, bi, ci, di = (np.asarray(cells[k], dtype=float) for k in ("ai", "bi", "ci", "di"))
    n1, n2 = ai + bi, ci + di
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = ai / n1, ci / n2
        yi = p1 - p2
        vi = p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2
    return yi, vi


def no_events_both(cells: Cells) -> np.ndarray:
    """Tables with no events in either arm (the risk ratio is not estimable)."""
    return (np.asarray(cells["ai"]) == 0) & (np.asarray(cells["ci"]) == 0)


def no_events_or_all_events_both(cells: Cells) -> np.ndarray:
    """Tables with no events, or only events, in both arms (no odds ratio)."""
    return no_events_both(cells) | ((np.asarray(cells["bi"]) == 0) & (np.asarray(cells["di"]) == 0))
