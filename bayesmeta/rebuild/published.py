"""The published numbers of Li et al. (2018) in machine form, and their rounding units.

The article (J Transl Med 16:113, doi:10.1186/s12967-018-1484-9, CC BY 4.0) prints a headline
result per outcome (Results, Fig. 3/4) and subgroup Tables 2 (incidence, RR), 3 (number, SMD) and
4 (number, breast-cancer comparisons only); Table 1 counts the 66 comparisons by characteristic.
``bayesmeta/datasets/li2018_published.csv`` holds all of them as printed; this module reads that
file and turns it into *cells*: one printed number each, with the scale it is printed on and its
rounding unit.

Rounding units (what "exact" means for each printed number):

- estimates and CI bounds: 0.01 on the printed scale (RevMan prints two decimals; values printed
  with one decimal, e.g. ``0.9``, are read as a dropped trailing zero, ``0.90``);
- subgroup weights: 0.1 percentage points (RevMan prints one decimal; ``30`` is read as ``30.0``);
- within-subgroup I²: 1 percentage point (RevMan prints integers);
- between-subgroup I²: 0.1 percentage points (RevMan prints one decimal; ``72`` is read as ``72.0``);
- between-subgroup p: 0.01 when the printed p is at least 0.01, otherwise 0.001 (RevMan's
  precision; trailing zeros such as ``0.630`` are the article's padding);
- comparisons and animals: 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

__all__ = [
    "PUBLISHED_FILE",
    "MODERATORS",
    "Cell",
    "load_published",
    "published_cells",
    "table1_counts",
    "unit_of",
]

PUBLISHED_FILE = "li2018_published.csv"

#: Dataset column of each moderator, in the order of Tables 2-4, with the levels in printed order.
MODERATORS: dict[str, tuple[str, ...]] = {
    "cancer_type": ("Breast cancer", "Other cancer"),
    "species": ("Nude mice", "Other mice/rat"),
    "msc_source": ("Human bone marrow", "Other human tissue", "Mice/rat bone marrow", "Unclear"),
    "estimation": ("Fluorescence microscopy", "Histological evaluation", "Bioluminescence"),
    "dose_ratio": ("=1", ">1", "<1"),
    "timing": ("Co-administration", "Follow-administration"),
    "study_length": ("<=42", ">42"),
    "site": ("Lung", "Other tissue"),
    "quality": ("Meet 9-12 criteria", "Meet 5-8 criteria", "Meet 0-4 criteria"),
    "impact_factor": ("<=5", ">5"),
}

#: Quantities of a subgroup row, as named in the fidelity table.
QUANTITIES = ("weight_pct", "estimate", "ci_low", "ci_high", "i2_within_pct", "p_between", "i2_between_pct")


@dataclass(frozen=True)
class Cell:
    """One printed number of Tables 2-4 (or the Results text).

    Attributes
    ----------
    table
        ``"2"``, ``"3"`` or ``"4"``.
    outcome
        ``"incidence"``, ``"number"`` or ``"number_breast"``.
    moderator
        Dataset column of the moderator, or ``"all"`` for the headline row.
    level
        Level label as printed (``"All"`` for the headline row; ``""`` for between-subgroup cells).
    quantity
        One of ``comparisons, animals, weight_pct, estimate, ci_low, ci_high, i2_within_pct,
        p_between, i2_between_pct``.
    published
        The printed value, on the printed scale (ratio scale for RR).
    unit
        Rounding unit of the printed value.
    """

    table: str
    outcome: str
    moderator: str
    level: str
    quantity: str
    published: float
    unit: float

    @property
    def key(self) -> tuple[str, str, str, str]:
        """``(table, moderator, level, quantity)``, unique within the published tables."""
        return (self.table, self.moderator, self.level, self.quantity)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {
            "table": self.table, "outcome": self.outcome, "moderator": self.moderator,
            "level": self.level, "quantity": self.quantity, "published": float(self.published),
            "unit": float(self.unit),
        }


def unit_of(quantity: str, published: float) -> float:
    """Rounding unit of a printed number (see the module docstring).

    Parameters
    ----------
    quantity
        Quantity name, e.g. ``"estimate"`` or ``"p_between"``.
    published
        The printed value (needed for p-values, whose precision depends on their size).

    Returns
    -------
    float
        The unit: a result within half a unit of the printed value prints the same.
    """
    units = {"comparisons": 1.0, "animals": 1.0, "weight_pct": 0.1, "estimate": 0.01,
             "ci_low": 0.01, "ci_high": 0.01, "i2_within_pct": 1.0, "i2_between_pct": 0.1}
    if quantity == "p_between":
        return 0.01 if published >= 0.0095 else 0.001
    return units[quantity]


@lru_cache(maxsize=1)
def _read() -> pd.DataFrame:
    path = resources.files("bayesmeta.datasets").joinpath(PUBLISHED_FILE)
    with resources.as_file(path) as p:
        frame = pd.read_csv(p, dtype={"table": str}, keep_default_na=False, na_values=[""])
    for col in ("column", "maps_to", "note", "measure"):
        frame[col] = frame[col].fillna("")
    return frame


def load_published() -> pd.DataFrame:
    """The bundled transcription of the article's Tables 1-4 and headline results.

    Returns
    -------
    pandas.DataFrame
        One row per printed row; numbers as printed (ratio scale for RR), blank cells as NaN.
        Columns ``table, outcome, measure, moderator, column, level, maps_to, comparisons,
        animals, weight_pct, estimate, ci_low, ci_high, i2_within_pct, p_between,
        i2_between_pct, note, source``.
    """
    return _read().copy()


def published_cells() -> list[Cell]:
    """Every printed number of Tables 2-4 as a :class:`Cell`, in table order.

    Between-subgroup p and I² are printed once per moderator; they become one cell each with
    ``level == ""``. The headline rows contribute ``comparisons`` and ``animals`` where the
    Results text gives them.
    """
    frame = _read()
    cells: list[Cell] = []
    seen_between: set[tuple[str, str]] = set()
    for row in frame[frame["table"].isin(["2", "3", "4"])].itertuples(index=False):
        moderator = row.column or "all"
        quantities = ["comparisons", "animals", "weight_pct", "estimate", "ci_low", "ci_high",
                      "i2_within_pct"]
        for q in quantities:
            value = getattr(row, q)
            if pd.isna(value):
                continue
            cells.append(Cell(row.table, row.outcome, moderator, row.level, q, float(value),
                              unit_of(q, float(value))))
        if (row.table, moderator) in seen_between:
            continue
        for q in ("p_between", "i2_between_pct"):
            value = getattr(row, q)
            if pd.isna(value):
                continue
            seen_between.add((row.table, moderator))
            cells.append(Cell(row.table, row.outcome, moderator, "", q, float(value),
                              unit_of(q, float(value))))
    return cells


def table1_counts() -> dict[str, dict[str, int]]:
    """Table 1 comparison counts (both outcomes together) mapped to dataset levels.

    Returns
    -------
    dict
        ``{column: {level: count}}`` for ``cancer_type_detail, species, msc_source, dose_ratio,
        timing, site``; levels are the dataset's (e.g. Table 1's "Rat" and "Other mice" are
        summed into "Other mice/rat").
    """
    frame = _read()
    t1 = frame[(frame["table"] == "1") & (frame["column"] != "")]
    out: dict[str, dict[str, int]] = {}
    for row in t1.itertuples(index=False):
        level_counts = out.setdefault(row.column, {})
        level_counts[row.maps_to] = level_counts.get(row.maps_to, 0) + int(row.comparisons)
    return out


def printed_is_ratio(outcome: str) -> bool:
    """True when the outcome's estimates are printed on the ratio scale (RR)."""
    return outcome == "incidence"


def analysis_scale(values: np.ndarray | float, outcome: str) -> np.ndarray:
    """Printed estimates/CI bounds → analysis scale (log for RR)."""
    arr = np.asarray(values, dtype=float)
    return np.log(arr) if printed_is_ratio(outcome) else arr
