"""Exact per-moderator label moves by mixed-integer linear programming (private).

With the effects ``y, v`` of a rebuilt data set fixed, a subgroup row's printed weight is *linear*
in the moderator's labels: it is the summed share of the parent model's random-effects weights
(``100 w_i / Σ w``, ``w_i = 1 / (v_i + τ²_parent)``) over the row's members. With the row's own
``τ²`` frozen at its current value, its pooled estimate ``Σ u_i y_i / Σ u_i`` (``u_i = 1 / (v_i +
τ²_row)``) lies in a band ``[a, b]`` exactly when ``Σ u_i (y_i - b) x_i ≤ 0 ≤ Σ u_i (y_i - a) x_i``,
and its standard error ``1 / √Σ u_i`` is a band on ``Σ u_i x_i``: both linear too. A local search
that moves one or two labels at a time cannot hit a printed weight of 81.6 % with comparisons worth
2-3 % each unless it happens to pass through the right subset; :func:`label_candidates` asks HiGHS
(through :func:`scipy.optimize.milp`) for the nearest relabelling — fewest changed labels, with
random tie-breaking — that puts every printed weight, estimate and interval width of the moderator
in its rounding band, or as near as slack variables allow. The candidates are then scored with the
exact loss (τ² re-estimated, I² and the between-subgroup test included) by the caller.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from bayesmeta.rebuild import _engine as eng
from bayesmeta.rebuild.revman import Z95

__all__ = ["label_candidates"]

#: Cost of one rounding unit of slack, against 1 per changed label.
SLACK_COST = 50.0
#: Fraction of a rounding unit's half-band the constraints aim inside (keeps clear of the edges).
BAND = 0.8
#: Upper bound on labels changed per candidate (large moves rarely survive the exact loss).
MAX_CHANGES = 8
#: Branch-and-bound nodes per MILP: a deterministic limit (a time limit would make the rebuild
#: depend on the machine's speed); the best solution found so far is used.
NODE_LIMIT = 100


def _analysis(value: float, ratio: bool) -> float:
    return float(np.log(value)) if ratio else float(value)


def _rows_of(lay: eng.Layout, tg: eng.Targets, m: int) -> dict[int, dict[int, tuple[float, float, float]]]:
    """``{row: {quantity code: (value, unit, weight)}}`` of the printed cells of moderator ``m``."""
    out: dict[int, dict[int, tuple[float, float, float]]] = {}
    for r, q, val, unit, wt in zip(tg.row_idx, tg.row_q, tg.row_val, tg.row_unit, tg.row_wt, strict=True):
        if lay.row_mod[r] == m and wt > 0 and q in (0, 1, 2, 3):
            out.setdefault(int(r), {})[int(q)] = (float(val), float(unit), float(wt))
    return out


def label_candidates(y: np.ndarray, v: np.ndarray, labels: np.ndarray, lay: eng.Layout, tg: eng.Targets,
                     m: int, rng: np.random.Generator, count: int = 8) -> np.ndarray:
    """Relabellings of moderator ``m`` that the linearised printed cells favour.

    Parameters
    ----------
    y, v
        Effects and variances ``(K,)`` on the analysis scale.
    labels
        Current labels ``(M, K)``.
    lay, tg
        Layout and targets of the outcome (:mod:`._engine`).
    m
        Moderator index (not the cancer type: its labels change the breast subset itself).
    rng
        Tie-breaking noise; the candidates differ by it.
    count
        Number of MILPs solved.

    Returns
    -------
    numpy.ndarray
        Distinct candidate label arrays ``(B, M, K)``, ``B <= count``, each differing from ``labels``.
    """
    if m == lay.cancer_index:
        raise ValueError("cancer-type labels define the breast subset; they are not linear in this sense")
    rows = _rows_of(lay, tg, m)
    if not rows:
        return np.zeros((0, *labels.shape), dtype=labels.dtype)
    res = eng.evaluate(y, v, labels, lay)
    k = labels.shape[1]
    breast = labels[lay.cancer_index] == 0
    levels = lay.allowed[m]                      # breast comparisons' levels are a subset
    n_lev = levels.size
    lev_pos = {int(lev): j for j, lev in enumerate(levels)}
    n_x = k * n_lev

    def xi(i: int, lev: int) -> int:
        return i * n_lev + lev_pos[lev]

    a_rows: list[np.ndarray] = []
    lo: list[float] = []
    hi: list[float] = []
    slack_cost: list[float] = []

    def soft(coef: np.ndarray, lower: float, upper: float, unit: float, weight: float) -> None:
        """``lower <= coef·x <= upper`` with one slack (in rounding units ``unit``) for each side."""
        for sign, bound in ((1.0, lower), (-1.0, -upper)):
            a_rows.append(np.concatenate([sign * coef, [unit]]))   # sign·coef·x + unit·s >= bound
            lo.append(bound)
            hi.append(np.inf)
            slack_cost.append(SLACK_COST * weight)

    for r, cells in rows.items():
        lev = int(lay.row_lev[r])
        if lev not in lev_pos:
            continue
        member = breast if lay.row_breast[r] else np.ones(k, bool)
        parent = int(lay.row_parent[r])
        wpar = np.where(member, 1.0 / (v + res["tau2"][parent]), 0.0)
        share = 100.0 * wpar / wpar[member].sum()
        u = np.where(member, 1.0 / (v + res["tau2"][r]) if np.isfinite(res["tau2"][r]) else 1.0 / v, 0.0)
        if 0 in cells:
            val, unit, wt = cells[0]
            coef = np.zeros(n_x)
            coef[[xi(i, lev) for i in range(k)]] = share
            half = BAND * unit / 2
            soft(coef, val - half, val + half, unit, wt)
        if 1 in cells:
            val, unit, wt = cells[1]
            a = _analysis(val - BAND * unit / 2, lay.ratio)
            b = _analysis(val + BAND * unit / 2, lay.ratio)
            in_row = member & (labels[m] == lev)
            scale = max(float(u[in_row].sum()), 1e-12) * (b - a) / BAND   # one unit off the band
            for bound, sign in ((a, 1.0), (b, -1.0)):   # Σ u (y - a) x >= 0 and Σ u (b - y) x >= 0
                coef = np.zeros(n_x)
                coef[[xi(i, lev) for i in range(k)]] = sign * u * (y - bound)
                a_rows.append(np.concatenate([coef, [scale]]))
                lo.append(0.0)
                hi.append(np.inf)
                slack_cost.append(SLACK_COST * wt)
        if 2 in cells and 3 in cells:
            (l_val, l_unit, l_wt), (h_val, h_unit, h_wt) = cells[2], cells[3]
            wide = _analysis(h_val + BAND * h_unit / 2, lay.ratio) - _analysis(l_val - BAND * l_unit / 2, lay.ratio)
            narrow = _analysis(h_val - BAND * h_unit / 2, lay.ratio) - _analysis(l_val + BAND * l_unit / 2, lay.ratio)
            se_hi, se_lo = wide / (2 * Z95), narrow / (2 * Z95)
            if se_lo > 0 and se_hi > se_lo:
                coef = np.zeros(n_x)
                coef[[xi(i, lev) for i in range(k)]] = u
                soft(coef, 1.0 / se_hi**2, 1.0 / se_lo**2, (1.0 / se_lo**2 - 1.0 / se_hi**2) / BAND, min(l_wt, h_wt))

    if not a_rows:
        return np.zeros((0, *labels.shape), dtype=labels.dtype)
    n_s = len(a_rows)
    a_mat = np.zeros((n_s, n_x + n_s))
    for j, row in enumerate(a_rows):
        a_mat[j, :n_x] = row[:n_x]
        a_mat[j, n_x + j] = row[n_x]
    one = np.zeros((k, n_x + n_s))
    for i in range(k):
        one[i, i * n_lev:(i + 1) * n_lev] = 1.0
    cur = np.zeros(n_x)
    upper = np.zeros(n_x)
    for i in range(k):
        cur[xi(i, int(labels[m, i]))] = 1.0
        ok = lay.breast_allowed[m] if breast[i] else lay.allowed[m]
        for lev in ok:
            upper[xi(i, int(lev))] = 1.0
    moved = np.concatenate([1.0 - cur, np.zeros(n_s)])   # Σ changed labels <= MAX_CHANGES
    constraints = [LinearConstraint(a_mat, lo, hi), LinearConstraint(one, 1.0, 1.0),
                   LinearConstraint(moved[None], 0.0, MAX_CHANGES)]
    integrality = np.concatenate([np.ones(n_x), np.zeros(n_s)])
    bounds = Bounds(np.zeros(n_x + n_s), np.concatenate([upper, np.full(n_s, np.inf)]))
    out, seen = [], {labels[m].tobytes()}
    for _ in range(count):
        c = np.concatenate([(1.0 - cur) * (1.0 + rng.uniform(0, 0.5, n_x)), np.array(slack_cost)])
        sol = milp(c, integrality=integrality, bounds=bounds, constraints=constraints,
                   options={"node_limit": NODE_LIMIT, "mip_rel_gap": 0.01, "disp": False})
        if sol.x is None:
            continue
        x = sol.x[:n_x].reshape(k, n_lev)
        new = labels.copy()
        new[m] = levels[np.argmax(x, axis=1)]
        if new[m].tobytes() not in seen:
            seen.add(new[m].tobytes())
            out.append(new)
    return np.array(out, dtype=labels.dtype) if out else np.zeros((0, *labels.shape), dtype=labels.dtype)
