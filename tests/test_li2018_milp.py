"""The rebuild's exact label move (``bayesmeta.rebuild.milp``).

Independent source: a planted solution. Labels of one moderator are drawn at random, the
vectorised RevMan engine computes the subgroup weights they give, and those weights become the
targets; starting from other labels, the MILP must find labels whose weights round to the planted
ones. Single relabels and pairwise swaps (the local search's moves) rarely reach such a subset.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmeta.rebuild import _engine as eng
from bayesmeta.rebuild.li2018 import COMPARISONS, MODERATOR_COLUMNS
from bayesmeta.rebuild.milp import MAX_CHANGES, label_candidates
from bayesmeta.rebuild.published import published_cells

WEIGHT = eng.QUANTITY_CODES["weight_pct"]


def _planted(outcome: str, moderator: str, seed: int):
    rng = np.random.default_rng(seed)
    k = COMPARISONS[outcome]
    lay = eng.make_layout(outcome, k, moderator, tables=("2", "3"))
    tg = eng.make_targets(published_cells(), lay, {})
    m = lay.mods.index(moderator)
    labels = np.stack([rng.choice(a, k) for a in lay.allowed])
    labels[lay.cancer_index] = 1                       # no breast rows: Table 2/3 rows only
    y = rng.normal(0.7, 0.8, k)
    v = rng.uniform(0.05, 0.6, k)
    res = eng.evaluate(y, v, labels, lay)
    wpct = eng.row_values(res, lay)[WEIGHT]
    is_weight = (tg.row_q == WEIGHT) & (lay.row_mod[tg.row_idx] == m)
    # targets: the planted weights at the printed rounding (0.1 points); nothing else is scored
    tg = dataclasses.replace(tg, row_val=np.where(is_weight, np.round(wpct[tg.row_idx], 1), tg.row_val),
                             row_wt=np.where(is_weight, 1.0, 0.0), blk_wt=np.zeros_like(tg.blk_wt))
    start = labels.copy()
    moved = rng.choice(k, 5, replace=False)
    for i in moved:                                    # five labels changed to another level
        others = [lev for lev in lay.allowed[m] if lev != labels[m, i]]
        start[m, i] = rng.choice(others)
    return lay, tg, m, y, v, start, is_weight


@pytest.mark.parametrize(("outcome", "moderator", "seed"), [
    ("incidence", "msc_source", 1), ("incidence", "estimation", 2),
    ("number", "site", 3), ("number", "dose_ratio", 4), ("number", "impact_factor", 5),
])
def test_milp_recovers_labels_with_the_printed_weights(outcome: str, moderator: str, seed: int) -> None:
    lay, tg, m, y, v, start, is_weight = _planted(outcome, moderator, seed)
    before, _ = eng.units_off(eng.evaluate(y, v, start, lay), lay, tg)
    assert before[is_weight].max() > 0                 # the start is off the planted weights
    cands = label_candidates(y, v, start, lay, tg, m, np.random.default_rng(0), count=3)
    assert len(cands) >= 1
    off, _ = eng.units_off(eng.evaluate(y, v, cands, lay), lay, tg)
    assert off[:, is_weight].max(axis=1).min() == 0.0  # some candidate has every weight in its band
    changed = (cands[:, m] != start[m]).sum(axis=1)
    assert changed.max() <= MAX_CHANGES
    others = np.delete(np.arange(len(MODERATOR_COLUMNS)), m)
    assert (cands[:, others] == start[others]).all()   # only the moderator's own labels move


def test_milp_candidates_are_deterministic() -> None:
    lay, tg, m, y, v, start, _ = _planted("number", "estimation", 6)
    a = label_candidates(y, v, start, lay, tg, m, np.random.default_rng(11), count=3)
    b = label_candidates(y, v, start, lay, tg, m, np.random.default_rng(11), count=3)
    np.testing.assert_array_equal(a, b)


def test_milp_refuses_the_cancer_type() -> None:
    lay, tg, _, y, v, start, _ = _planted("number", "site", 7)
    with pytest.raises(ValueError, match="breast subset"):
        label_candidates(y, v, start, lay, tg, lay.cancer_index, np.random.default_rng(0))
