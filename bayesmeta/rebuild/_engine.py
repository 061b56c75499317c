"""Vectorised RevMan subgroup tables for the search (private).

One call evaluates every row of the published subgroup tables of one outcome for a whole batch of
candidate data sets at once: arrays carry a leading batch axis ``B``. A *row* is one pooled
analysis: the headline (all comparisons), a subgroup level of Table 2/3, the breast-cancer headline
(Table 4) or a subgroup level within breast cancer (Table 4). Rows are evaluated with matrix
products over a 0/1 membership array built from the moderator labels, so the inner loop of the
search never leaves NumPy.

The formulas are those of :mod:`bayesmeta.rebuild.revman`; ``tests/test_li2018_rebuild.py`` checks
that both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import erfc

from bayesmeta.rebuild.published import MODERATORS, Cell
from bayesmeta.rebuild.revman import Z95

__all__ = ["Layout", "make_layout", "evaluate", "QUANTITY_CODES"]

#: Row quantities in the order of the stacked output of :func:`row_values`.
QUANTITY_CODES = {"weight_pct": 0, "estimate": 1, "ci_low": 2, "ci_high": 3, "i2_within_pct": 4}
BETWEEN_CODES = {"p_between": 0, "i2_between_pct": 1}

#: Levels that stay empty in each outcome (Tables 2-4 print them with weight 0 or leave them out).
EMPTY_LEVELS: dict[str, dict[str, tuple[str, ...]]] = {
    "incidence": {"msc_source": ("Unclear",), "study_length": (">42",), "quality": ("Meet 9-12 criteria",)},
    "number": {"quality": ("Meet 9-12 criteria",)},
}
#: Levels no breast-cancer comparison of the number outcome may take (empty rows of Table 4).
BREAST_EMPTY: dict[str, tuple[str, ...]] = {
    "species": ("Other mice/rat",),
    "estimation": ("Bioluminescence",),
    "dose_ratio": (">1",),
}
#: Moderators of Table 4 (the breast subset has no cancer-type or quality rows).
TABLE4_MODERATORS = ("species", "msc_source", "estimation", "dose_ratio", "timing", "study_length",
                     "site", "impact_factor")


@dataclass(frozen=True)
class Layout:
    """Which rows to pool for one outcome, and how labels map to them.

    Labels are integer codes into ``MODERATORS[column]`` (the full printed level list), stored
    as an array ``(M, K)`` in the order of ``mods``.
    """

    outcome: str
    k: int
    mods: tuple[str, ...]
    allowed: tuple[np.ndarray, ...]          # allowed level codes per moderator
    breast_allowed: tuple[np.ndarray, ...]   # allowed codes for breast comparisons (number)
    row_mod: np.ndarray                      # (R,) moderator index, len(mods) = all rows
    row_lev: np.ndarray                      # (R,) level code
    row_breast: np.ndarray                   # (R,) bool: restricted to breast comparisons
    row_parent: np.ndarray                   # (R,) row whose RE weights give the weight %
    row_key: tuple[tuple[str, str, str], ...]  # (table, moderator, level)
    block_of_row: np.ndarray                 # (R,) between-test block, -1 if none
    block_key: tuple[tuple[str, str], ...]   # (table, moderator)
    ratio: bool                              # printed on the ratio scale
    cancer_index: int                        # index of cancer_type in mods
    extra: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Number of pooled rows."""
        return int(self.row_mod.size)


def make_layout(outcome: str, k: int, only: str | None = None,
                tables: tuple[str, ...] = ("2", "3", "4"), breast_only: bool = False) -> Layout:
    """Build the row layout of ``"incidence"`` (Table 2) or ``"number"`` (Tables 3 and 4).

    Parameters
    ----------
    outcome
        ``"incidence"`` or ``"number"``.
    k
        Number of comparisons.
    only
        Keep only the rows whose membership depends on this moderator's labels (its own rows in
        Tables 2/3 and 4; for ``cancer_type`` every Table 4 row), plus the headline rows that give
        the weight percentages. ``None`` keeps all rows.
    tables
        Tables whose subgroup rows to include (the headline rows are always included).
    breast_only
        Every comparison is a breast-cancer one (the first stage of the number outcome): the
        only allowed cancer type is breast, and every moderator keeps Table 4's non-empty levels.
    """
    mods = tuple(MODERATORS)
    empty = EMPTY_LEVELS[outcome]
    allowed, breast_allowed = [], []
    for m in mods:
        levels = MODERATORS[m]
        ok = np.array([i for i, lev in enumerate(levels) if lev not in empty.get(m, ())])
        allowed.append(ok)
        if outcome == "number":
            bad = BREAST_EMPTY.get(m, ())
            breast_allowed.append(np.array([i for i in ok if levels[i] not in bad]))
        else:
            breast_allowed.append(ok)
    if breast_only:
        ci = mods.index("cancer_type")
        breast_allowed[ci] = np.array([0])
        allowed = list(breast_allowed)
    table = "2" if outcome == "incidence" else "3"
    row_mod, row_lev, row_breast, row_parent, row_key, block_of_row, block_key = [], [], [], [], [], [], []

    def add_rows(tab: str, moderators: tuple[str, ...], breast: bool, parent: int) -> None:
        for m in moderators:
            mi = mods.index(m)
            codes = breast_allowed[mi] if breast else allowed[mi]
            block = len(block_key) if codes.size > 1 else -1
            if codes.size > 1:
                block_key.append((tab, m))
            for code in codes:
                row_mod.append(mi)
                row_lev.append(int(code))
                row_breast.append(breast)
                row_parent.append(parent)
                row_key.append((tab, m, MODERATORS[m][code]))
                block_of_row.append(block)

    row_mod.append(len(mods)); row_lev.append(0); row_breast.append(False); row_parent.append(0)
    row_key.append((table, "all", "All")); block_of_row.append(-1)
    if table in tables:
        add_rows(table, mods if only is None else (only,), False, 0)
    if outcome == "number":
        breast_row = len(row_mod)
        row_mod.append(len(mods)); row_lev.append(0); row_breast.append(True); row_parent.append(breast_row)
        row_key.append(("4", "all", "All")); block_of_row.append(-1)
        t4 = TABLE4_MODERATORS if only in (None, "cancer_type") else tuple(m for m in TABLE4_MODERATORS if m == only)
        if "4" in tables:
            add_rows("4", t4, True, breast_row)
    block_of_row_arr = np.array(block_of_row)
    sel = block_of_row_arr >= 0
    blk = block_of_row_arr[sel]
    extra = {"sel": sel, "blk": blk,
             "onehot": (blk[:, None] == np.arange(len(block_key))[None, :]).astype(float)}
    return Layout(
        extra=extra,
        outcome=outcome, k=k, mods=mods, allowed=tuple(allowed), breast_allowed=tuple(breast_allowed),
        row_mod=np.array(row_mod), row_lev=np.array(row_lev), row_breast=np.array(row_breast),
        row_parent=np.array(row_parent), row_key=tuple(row_key), block_of_row=np.array(block_of_row),
        block_key=tuple(block_key), ratio=(outcome == "incidence"), cancer_index=mods.index("cancer_type"),
    )


def membership(labels: np.ndarray, lay: Layout) -> np.ndarray:
    """0/1 membership ``(..., R, K)`` of comparisons in rows, from labels ``(..., M, K)``."""
    shape = labels.shape[:-2] + (1, labels.shape[-1])
    ext = np.concatenate([labels, np.zeros(shape, dtype=labels.dtype)], axis=-2)
    member = ext[..., lay.row_mod, :] == lay.row_lev[:, None]
    if lay.row_breast.any():
        breast = labels[..., lay.cancer_index:lay.cancer_index + 1, :] == 0
        member = member & (breast | ~lay.row_breast[:, None])
    return member.astype(float)


def evaluate(y: np.ndarray, v: np.ndarray, labels: np.ndarray, lay: Layout) -> dict[str, np.ndarray]:
    """Pool every row for a batch of data sets.

    Parameters
    ----------
    y, v
        Effects (analysis scale) and variances, shape ``(..., K)``.
    labels
        Moderator level codes, shape ``(..., M, K)``.
    lay
        Row layout of the outcome.

    Returns
    -------
    dict
        ``k, est, se, tau2, i2, wpct`` of shape ``(..., R)`` (analysis scale; empty rows give
        ``k = 0`` and NaN) and ``q_b, p_b, i2_b`` of shape ``(..., NB)``.
    """
    g = membership(labels, lay)
    w = 1.0 / v
    y, v = np.broadcast_arrays(y, v)
    stack = np.stack([np.ones_like(w), w, w * y, w * y * y, w * w], axis=-1)      # (..., K, 5)
    sums = g @ stack                                                               # (..., R, 5)
    k, sw, swy, swyy, sww = (sums[..., j] for j in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = swyy - swy * swy / sw
        df = k - 1
        c = sw - sww / sw
        tau2 = np.where(k > 1, np.maximum(0.0, (q - df) / c), 0.0)
        tau2 = np.where(np.isfinite(tau2), tau2, 0.0)
        i2 = np.where((k > 1) & (q > df), (q - df) / q * 100, 0.0)
        wre = g / (v[..., None, :] + tau2[..., :, None])
        sre = wre.sum(-1)
        est = (wre @ y[..., :, None])[..., 0] / sre
        se = 1.0 / np.sqrt(sre)
        tau2_parent = tau2[..., lay.row_parent]
        wpar = (g / (v[..., None, :] + tau2_parent[..., :, None])).sum(-1)
        wpct = 100.0 * wpar / sre[..., lay.row_parent]
    out = {"k": k, "est": est, "se": se, "tau2": tau2, "i2": i2, "wpct": wpct}
    out.update(between(est, se, k, lay))
    return out


def chi2_sf_small(q: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Chi-square upper tail for df in {1, 2, 3} in closed form (NaN otherwise).

    ``scipy.special.chdtrc`` costs ~100 µs per call on small arrays; the search calls this
    millions of times.
    """
    q = np.maximum(q, 0.0)
    half = np.sqrt(q / 2)
    tail1 = erfc(half)
    e = np.exp(-q / 2)
    out = np.where(df == 1, tail1, np.where(df == 2, e, tail1 + np.sqrt(2 * q / np.pi) * e))
    return np.where((df >= 1) & (df <= 3), out, np.nan)


def between(est: np.ndarray, se: np.ndarray, k: np.ndarray, lay: Layout) -> dict[str, np.ndarray]:
    """RevMan test for subgroup differences for every block of rows."""
    sel, blk, onehot = lay.extra["sel"], lay.extra["blk"], lay.extra["onehot"]
    e, s, kk = est[..., sel], se[..., sel], k[..., sel]
    present = kk > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        wj = np.where(present, 1.0 / (s * s), 0.0)
        ej = np.where(present, e, 0.0)
        sw = wj @ onehot
        fe = ((wj * ej) @ onehot) / np.where(sw > 0, sw, 1.0)
        qb = (wj * (ej - fe[..., blk]) ** 2) @ onehot
        df = present.astype(float) @ onehot - 1
        pb = chi2_sf_small(qb, df)
        i2b = np.where((df > 0) & (qb > df), (qb - df) / qb * 100, 0.0)
    return {"q_b": qb, "p_b": pb, "i2_b": i2b, "df_b": df}


def row_values(res: dict[str, np.ndarray], lay: Layout) -> np.ndarray:
    """Printed-scale values ``(..., 5, R)``: weight %, estimate, CI low, CI high, I² within."""
    est, se = res["est"], res["se"]
    lo, hi = est - Z95 * se, est + Z95 * se
    if lay.ratio:
        est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
    return np.stack([res["wpct"], est, lo, hi, res["i2"]], axis=-2)


def between_values(res: dict[str, np.ndarray]) -> np.ndarray:
    """Printed-scale between-subgroup values ``(..., 2, NB)``: p and I²."""
    return np.stack([res["p_b"], res["i2_b"]], axis=-2)


@dataclass(frozen=True)
class Targets:
    """Published cells of one outcome aligned with the layout's rows and blocks."""

    row_idx: np.ndarray
    row_q: np.ndarray
    row_val: np.ndarray
    row_unit: np.ndarray
    row_wt: np.ndarray
    blk_idx: np.ndarray
    blk_q: np.ndarray
    blk_val: np.ndarray
    blk_unit: np.ndarray
    blk_wt: np.ndarray
    row_cells: tuple[Cell, ...]
    blk_cells: tuple[Cell, ...]


def make_targets(cells: list[Cell], lay: Layout, weights: dict[tuple, float],
                 values: dict[tuple, float] | None = None) -> Targets:
    """Align published cells with the layout (cells of empty rows and counts are skipped).

    Parameters
    ----------
    cells
        Published cells (all tables; those of other outcomes are ignored).
    lay
        Layout of the outcome.
    weights
        Search weight per cell key; cells with weight 0 are left out.
    values
        Optional replacement target per cell key (the repaired reading of a self-contradicting
        row); the published value otherwise.
    """
    values = values or {}
    tables = {"2"} if lay.outcome == "incidence" else {"3", "4"}
    row_index = {key: r for r, key in enumerate(lay.row_key)}
    block_index = {key: b for b, key in enumerate(lay.block_key)}
    rows, blks = [], []
    for cell in cells:
        if cell.table not in tables or weights.get(cell.key, 1.0) == 0.0:
            continue
        if cell.quantity in QUANTITY_CODES:
            r = row_index.get((cell.table, cell.moderator, cell.level))
            if r is not None:
                rows.append((r, QUANTITY_CODES[cell.quantity], values.get(cell.key, cell.published),
                             cell.unit, weights.get(cell.key, 1.0), cell))
        elif cell.quantity in BETWEEN_CODES:
            b = block_index.get((cell.table, cell.moderator))
            if b is not None:
                blks.append((b, BETWEEN_CODES[cell.quantity], values.get(cell.key, cell.published),
                             cell.unit, weights.get(cell.key, 1.0), cell))

    def arr(items, j, dtype=float):
        return np.array([it[j] for it in items], dtype=dtype)

    return Targets(arr(rows, 0, int), arr(rows, 1, int), arr(rows, 2), arr(rows, 3), arr(rows, 4),
                   arr(blks, 0, int), arr(blks, 1, int), arr(blks, 2), arr(blks, 3), arr(blks, 4),
                   tuple(it[5] for it in rows), tuple(it[5] for it in blks))


def units_off(res: dict[str, np.ndarray], lay: Layout, tg: Targets) -> tuple[np.ndarray, np.ndarray]:
    """Continuous distance outside the rounding band, in units, for row and block targets.

    0 inside the band ``|reproduced - target| <= unit / 2``; NaN results count as 1000 units.
    """
    rv = row_values(res, lay)[..., tg.row_q, tg.row_idx]
    bv = between_values(res)[..., tg.blk_q, tg.blk_idx]
    dr = np.maximum(0.0, np.abs(rv - tg.row_val) - 0.5 * tg.row_unit) / tg.row_unit
    db = np.maximum(0.0, np.abs(bv - tg.blk_val) - 0.5 * tg.blk_unit) / tg.blk_unit
    return np.nan_to_num(dr, nan=1000.0), np.nan_to_num(db, nan=1000.0)
