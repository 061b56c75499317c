"""The qualitative conclusion of an analysis and whether a prior changes it.

The conclusion of a fit is read from the 95% credible interval of ``mu`` on the analysis scale
against the measure's null value (0 for every measure here, i.e. a ratio of 1):

* ``"positive"``: the interval lies strictly above the null (``q025 > null``);
* ``"negative"``: it lies strictly below (``q975 < null``);
* ``"includes null"``: otherwise (an end point equal to the null does not exclude it);
* ``"failed"``: the fit did not produce an interval (NaN bounds).

A prior combination *changes the conclusion* when its conclusion differs from the one under the
spec's own priors: an interval that now covers the null, one that no longer does, or (rarely)
a reversed direction. A failed fit never counts as a change; it is reported by its error.
"""

from __future__ import annotations

import math

__all__ = ["CONCLUSIONS", "conclusion", "conclusion_changes"]

POSITIVE, NEGATIVE, INCLUDES_NULL, FAILED = "positive", "negative", "includes null", "failed"
CONCLUSIONS = (POSITIVE, NEGATIVE, INCLUDES_NULL, FAILED)


def conclusion(q025: float, q975: float, null: float = 0.0) -> str:
    """Qualitative conclusion of a 95% interval ``[q025, q975]`` about ``null``.

    Parameters
    ----------
    q025, q975
        Interval end points on the analysis scale.
    null
        The null value on the same scale.

    Returns
    -------
    str
        One of :data:`CONCLUSIONS`.
    """
    if math.isnan(q025) or math.isnan(q975):
        return FAILED
    if q025 > q975:
        raise ValueError(f"interval end points in the wrong order: [{q025}, {q975}]")
    if q025 > null:
        return POSITIVE
    if q975 < null:
        return NEGATIVE
    return INCLUDES_NULL


def conclusion_changes(current: str, base: str) -> bool:
    """Whether ``current`` differs from the ``base`` conclusion (never for failed fits)."""
    for value in (current, base):
        if value not in CONCLUSIONS:
            raise ValueError(f"unknown conclusion {value!r}; expected one of {CONCLUSIONS}")
    if FAILED in (current, base):
        return False
    return current != base
