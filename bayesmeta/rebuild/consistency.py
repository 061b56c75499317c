"""Which printed numbers of Tables 2-4 contradict the others printed beside them.

A row can be checked against itself and against its moderator block without any data:

1. *Interval*: RevMan's CI is ``estimate ± 1.96 se`` on the analysis scale (log for RR), so the
   estimate is the CI midpoint there. A row whose estimate cannot be the midpoint for any values
   that round to the printed ones contradicts itself.
2. *p versus I²*: the between-subgroup p and I² are two functions of one Q with
   ``df = non-empty subgroups - 1`` (``I² = (Q - df) / Q``); both printed values must admit a
   common Q.
3. *Between versus rows*: Q is computed from the printed subgroup estimates and standard errors
   (from the CI width); the printed I² (or p, when I² is 0) must lie in the range that the rounding
   of those rows allows.

For a row failing check 1, the three one-number repairs (estimate = CI midpoint; lower bound
mirrored from the upper; upper bound mirrored from the lower) are each tried in check 3; the repair
that best matches the printed between-subgroup I² (or p) is taken as the likely reading. The search
aims at that reading; the fidelity table still compares with the printed value and marks the cell
``contradicts-itself``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import chdtrc

from bayesmeta.rebuild.published import load_published, unit_of
from bayesmeta.rebuild.revman import Z95

__all__ = ["Contradiction", "find_contradictions", "repaired_values"]


@dataclass(frozen=True)
class Contradiction:
    """Printed cells that cannot all be right, with the reason and the likely reading."""

    table: str
    moderator: str
    level: str
    quantities: tuple[str, ...]
    reason: str
    repair: dict[str, float] = field(default_factory=dict)

    def keys(self) -> list[tuple[str, str, str, str]]:
        """Cell keys ``(table, moderator, level, quantity)`` of the contradicting cells."""
        return [(self.table, self.moderator, self.level, q) for q in self.quantities]

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"table": self.table, "moderator": self.moderator, "level": self.level,
                "quantities": list(self.quantities), "reason": self.reason,
                "repair": {k: float(v) for k, v in self.repair.items()}}


def _scale(ratio: bool):
    return (np.log, np.exp) if ratio else ((lambda x: np.asarray(x, dtype=float)),) * 2


def interval_consistent(est: float, lo: float, hi: float, ratio: bool, unit: float = 0.01) -> bool:
    """Can the estimate be the analysis-scale midpoint of the CI, within printed rounding?"""
    f, _ = _scale(ratio)
    h = unit / 2
    e_lo, e_hi = f(est - h), f(est + h)
    m_lo = (f(lo - h) + f(hi - h)) / 2
    m_hi = (f(lo + h) + f(hi + h)) / 2
    return not (e_hi < m_lo or e_lo > m_hi)


def q_from_i2(i2: float, df: int) -> float:
    """Q implied by an I² (percent) and df (Q = df / (1 - I²))."""
    return df / (1 - i2 / 100)


def q_band_of_print(p: float, i2: float, df: int) -> tuple[float, float, float, float]:
    """Q intervals admitted by the printed p and by the printed I² (each within rounding)."""
    up = unit_of("p_between", p) / 2
    ui = unit_of("i2_between_pct", i2) / 2
    p_hi, p_lo = min(1.0, p + up), max(1e-300, p - up)
    q_from_p_lo = 0.0 if p_hi >= 1 else brentq(lambda q: chdtrc(df, q) - p_hi, 0, 1e4)
    q_from_p_hi = brentq(lambda q: chdtrc(df, q) - p_lo, 0, 1e4)
    if i2 - ui <= 0:
        q_i_lo, q_i_hi = 0.0, q_from_i2(i2 + ui, df)
    else:
        q_i_lo, q_i_hi = q_from_i2(i2 - ui, df), q_from_i2(i2 + ui, df)
    return q_from_p_lo, q_from_p_hi, q_i_lo, q_i_hi


def q_range_of_rows(est, lo, hi, ratio: bool, unit: float = 0.01) -> tuple[float, float, float]:
    """Range of the between-subgroup Q over the rounding box of the printed rows.

    Estimates are used as printed, standard errors from the CI width; the box is small, so a
    first-order (gradient) bound is used. Returns ``(low, central, high)``.
    """
    f, _ = _scale(ratio)
    x0 = np.concatenate([est, lo, hi]).astype(float)
    n = len(est)

    def q_of(x):
        e = f(x[:n])
        se = (f(x[2 * n:]) - f(x[n:2 * n])) / (2 * Z95)
        w = 1 / se**2
        fe = np.sum(w * e) / np.sum(w)
        return float(np.sum(w * (e - fe) ** 2))

    q0 = q_of(x0)
    h = 1e-7
    grad = np.array([(q_of(x0 + h * u) - q_of(x0 - h * u)) / (2 * h) for u in np.eye(x0.size)])
    spread = float(np.abs(grad).sum() * unit / 2)
    return q0 - spread, q0, q0 + spread


def _i2(q: float, df: int) -> float:
    return max(0.0, (q - df) / q * 100) if q > 0 else 0.0


@lru_cache(maxsize=1)
def find_contradictions() -> tuple[Contradiction, ...]:
    """Run the three checks over Tables 2-4.

    Returns
    -------
    tuple of Contradiction
        Self-contradicting cells with the reason, and the likely reading where one exists.
    """
    frame = load_published()
    sub = frame[frame["table"].isin(["2", "3", "4"]) & (frame["column"] != "")]
    found: list[Contradiction] = []
    for (table, column), block in sub.groupby(["table", "column"], sort=False):
        ratio = table == "2"
        f, finv = _scale(ratio)
        rows = block[block["weight_pct"] > 0]
        est = rows["estimate"].to_numpy(float)
        lo = rows["ci_low"].to_numpy(float)
        hi = rows["ci_high"].to_numpy(float)
        levels = rows["level"].tolist()
        df = len(rows) - 1
        p = rows["p_between"].iloc[0]
        i2b = rows["i2_between_pct"].iloc[0]
        has_between = df > 0 and not pd.isna(p)
        # check 1, with the repairs judged by check 3
        variants: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for j in range(len(rows)):
            if interval_consistent(est[j], lo[j], hi[j], ratio):
                continue
            mid = finv((f(lo[j]) + f(hi[j])) / 2)
            new_lo = finv(2 * f(est[j]) - f(hi[j]))
            new_hi = finv(2 * f(est[j]) - f(lo[j]))
            cand = {
                "estimate": ({"estimate": round(float(mid), 3)}, (_put(est, j, mid), lo, hi)),
                "ci_low": ({"ci_low": round(float(new_lo), 2)}, (est, _put(lo, j, new_lo), hi)),
                "ci_high": ({"ci_high": round(float(new_hi), 2)}, (est, lo, _put(hi, j, new_hi))),
            }
            text = (f"estimate {est[j]:g} is not the midpoint of its CI [{lo[j]:g}, {hi[j]:g}] on the "
                    f"{'log' if ratio else 'SMD'} scale (midpoint {float(mid):.3f})")
            best, best_gap, notes = None, np.inf, []
            if has_between:
                for name, (repair, (e2, l2, h2)) in cand.items():
                    q_lo, q_mid, q_hi = q_range_of_rows(e2, l2, h2, ratio)
                    gap = (abs(_i2(q_mid, df) - i2b) if i2b > 0 else abs(float(chdtrc(df, q_mid)) - p))
                    ok = _admits(q_lo, q_hi, p, i2b, df)
                    notes.append(f"{name} -> {list(repair.values())[0]:g}: I² between "
                                 f"{_i2(q_mid, df):.1f}%, p {float(chdtrc(df, q_mid)):.2g} "
                                 f"({'consistent' if ok else 'inconsistent'})")
                    if gap < best_gap:
                        best, best_gap = repair, gap
                        variants[column] = (e2, l2, h2)
            if best is not None:
                name = next(iter(best))
                printed = f"I² {i2b:g}%" if i2b > 0 else f"p {p:g}"
                text += (f"; reading {name} = {best[name]:g} best matches the printed between-subgroup "
                         f"{printed} (tried: " + "; ".join(notes) + ")")
            found.append(Contradiction(table, column, levels[j], ("estimate", "ci_low", "ci_high"),
                                       text, dict(best or {})))
        if not has_between:
            continue
        e2, l2, h2 = variants.get(column, (est, lo, hi))
        q_lo, q_mid, q_hi = q_range_of_rows(e2, l2, h2, ratio)
        qp_lo, qp_hi, qi_lo, qi_hi = q_band_of_print(p, i2b, df)
        p_vs_i2 = qp_hi >= qi_lo and qi_hi >= qp_lo
        i2_vs_rows = qi_hi >= q_lo and q_hi >= qi_lo
        p_vs_rows = qp_hi >= q_lo and q_hi >= qp_lo
        bad = []
        if not p_vs_rows:
            bad.append("p_between")
        if not i2_vs_rows:
            bad.append("i2_between_pct")
        if bad:
            p_rows = float(chdtrc(df, q_mid))
            reason = (f"printed p = {p:g} and I² = {i2b:g}% with df = {df}"
                      f"{' cannot come from one Q' if not p_vs_i2 else ''}; the printed subgroup rows"
                      f"{' (as read above)' if column in variants else ''} give Q = {q_lo:.2f}-{q_hi:.2f}, "
                      f"I² = {_i2(q_lo, df):.1f}-{_i2(q_hi, df):.1f}%, p = {p_rows:.2g}")
            found.append(Contradiction(table, column, "", tuple(bad), reason, {}))
    return tuple(found)


def _put(arr: np.ndarray, j: int, value: float) -> np.ndarray:
    out = arr.astype(float).copy()
    out[j] = value
    return out


def _admits(q_lo: float, q_hi: float, p: float, i2b: float, df: int) -> bool:
    qp_lo, qp_hi, qi_lo, qi_hi = q_band_of_print(p, i2b, df)
    return qp_hi >= q_lo and q_hi >= qp_lo and qi_hi >= q_lo and q_hi >= qi_lo


def repaired_values() -> dict[tuple[str, str, str, str], float]:
    """Likely readings of self-contradicting cells, keyed like :attr:`Cell.key`."""
    out: dict[tuple[str, str, str, str], float] = {}
    for c in find_contradictions():
        for q, value in c.repair.items():
            out[(c.table, c.moderator, c.level, q)] = value
    return out
