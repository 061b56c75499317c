"""Discrete polish of a rebuilt data set against the printed tables (private).

Starting from the rounded solution of the relaxation (:mod:`.relax`), batched neighbourhood
search improves the integer data directly. Every step evaluates a whole batch of neighbours with
:mod:`._engine` and draws one of them (or staying put) with probability ``∝ exp(-Δloss / T)``.
Neighbourhoods:

- *item*: one comparison gets new labels for up to three moderators, a new effect and/or a
  changed arm size;
- *swap*: two comparisons exchange their arm data (their labels stay);
- *arms*: one animal moves between two arms (number: total kept);
- *events* (incidence): one event more or less in one or both arms of a comparison;
- *labels*: per moderator, every single relabel and every swap of two comparisons' levels,
  evaluated on the rows that moderator influences only;
- *effects* (number): least squares on Cohen's d with all labels fixed;
- *exact labels* (last stage): per moderator, the nearest relabellings that a mixed-integer
  program (:mod:`.milp`) finds for the linearised printed weights, estimates and interval widths;
  for the number outcome each is followed by the least squares on d.

The loss of a state is ``HARD * Σ (d_h + [d_h > 0]) + Σ w_c ψ(d_c) + TABLE1 * Σ |Table 1 off|``,
with ``d`` the distance outside a printed number's rounding band in rounding units (``h``: headline
cells, which must be exact; ``c``: the other cells) and ``ψ(d) = s·log(1 + d / s)``. The log loss
is robust: it lets a few cells go far off so that many are exact. The last stage of a rebuild adds
smoothed steps ``Σ_t h_t σ((d - a_t) / 0.3)`` at the scoring thresholds (:data:`THRESHOLDS`: a cell
more than 3 or 10 units off costs extra), which trades exact cells for fewer far-off ones, and a
funnel-plot term (:class:`FunnelTarget`): a squared penalty on Egger's z outside the bound that
the article's description of its funnel plot implies (asymmetric / symmetric).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from bayesmeta.rebuild import _engine as eng
from bayesmeta.rebuild.milp import label_candidates as milp_label_candidates

__all__ = ["NumberState", "IncidenceState", "Objective", "NumberPolish", "IncidencePolish",
           "FunnelTarget", "egger_z", "number_effects", "incidence_effects"]

HARD = 200.0          # per rounding unit off a headline number: headlines must be exact
TABLE1 = 1.0          # per comparison off a Table 1 count (both outcomes together)
N_MIN, N_MAX = 4, 15  # animals per arm
D_MIN, D_MAX = -8.0, 12.0  # Cohen's d of one comparison
#: Steps ``(at, height)`` of the last stage's loss: a cell 10 or more units off (d > 9.5) costs 8
#: more, 3 or more (d > 2.5) costs 1 more; the steps are centred half a unit early so that the
#: search sees them coming.
THRESHOLDS: tuple[tuple[float, float], ...] = ((9.0, 8.0), (2.0, 1.0))
STEP_WIDTH = 0.3  # units over which a step rises (logistic scale)
#: Cost per comparison off a Table 1 count in the last stage: higher than :data:`TABLE1`, so that
#: the steps do not buy printed cells with Table 1 counts.
TABLE1_LAST = 3.0


@dataclass(frozen=True)
class NumberState:
    """Number-of-metastases outcome: Cohen's d, arm sizes and labels ``(M, K)``."""

    d: np.ndarray
    n1: np.ndarray
    n2: np.ndarray
    labels: np.ndarray

    def effects(self) -> tuple[np.ndarray, np.ndarray]:
        """Hedges' g and its RevMan variance."""
        return number_effects(self.d, self.n1.astype(float), self.n2.astype(float))


@dataclass(frozen=True)
class IncidenceState:
    """Incidence outcome: events and animals per arm, and labels ``(M, K)``."""

    a: np.ndarray
    n1: np.ndarray
    c: np.ndarray
    n2: np.ndarray
    labels: np.ndarray

    def effects(self) -> tuple[np.ndarray, np.ndarray]:
        """Log RR and its variance (RevMan 0.5 correction)."""
        return incidence_effects(self.a.astype(float), self.n1.astype(float), self.c.astype(float),
                                 self.n2.astype(float))


def number_effects(d, n1, n2):
    """Hedges' g = J d and RevMan's variance, vectorised over any leading axes."""
    big_n = n1 + n2
    g = d * (1.0 - 3.0 / (4.0 * big_n - 9.0))
    return g, big_n / (n1 * n2) + g * g / (2.0 * (big_n - 3.94))


def incidence_effects(a, n1, c, n2):
    """Log RR and variance with 0.5 added to every cell of tables with a zero cell."""
    zero = (a == 0) | (c == 0) | (a == n1) | (c == n2)
    add = np.where(zero, 0.5, 0.0)
    a2, c2, m1, m2 = a + add, c + add, n1 + 2 * add, n2 + 2 * add
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a2 * m2 / (m1 * c2)), 1.0 / a2 - 1.0 / m1 + 1.0 / c2 - 1.0 / m2


def egger_z(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Egger's test statistic, batched over leading axes: the z value of the slope on the standard
    error in the mixed-effects meta-regression ``y ~ 1 + sqrt(v)`` with a DerSimonian-Laird tau²
    (``metafor::regtest(rma(y, v, method = "DL"))``, :func:`bayesmeta.frequentist.regtest`)."""
    x = np.sqrt(v)

    def moments(w):
        s0, s1, s2 = w.sum(-1), (w * x).sum(-1), (w * x * x).sum(-1)
        return s0, s1, s2, (w * y).sum(-1), (w * x * y).sum(-1), s0 * s2 - s1 * s1

    w = 1.0 / v
    s0, s1, s2, ty, txy, det = moments(w)
    b0, b1 = (s2 * ty - s1 * txy) / det, (s0 * txy - s1 * ty) / det
    qe = (w * (y - b0[..., None] - b1[..., None] * x) ** 2).sum(-1)
    w2 = w * w
    trace = s0 - (s2 * w2.sum(-1) - 2 * s1 * (w2 * x).sum(-1) + s0 * (w2 * x * x).sum(-1)) / det
    tau2 = np.maximum(0.0, (qe - (y.shape[-1] - 2)) / trace)
    s0, s1, s2, ty, txy, det = moments(1.0 / (v + tau2[..., None]))
    return (s0 * txy - s1 * ty) / det / np.sqrt(s0 / det)


@dataclass(frozen=True)
class FunnelTarget:
    """What the article says of a funnel plot, as a bound on Egger's z (see :func:`egger_z`):
    at least ``z_min`` (asymmetric: small studies show larger effects) or at most ``z_abs_max``
    in absolute value (symmetric); each z unit beyond costs ``weight`` (squared)."""

    z_min: float | None = None
    z_abs_max: float | None = None
    weight: float = 20.0

    def penalty(self, y: np.ndarray, v: np.ndarray) -> np.ndarray:
        z = egger_z(y, v)
        off = np.zeros_like(z)
        if self.z_min is not None:
            off = np.maximum(off, self.z_min - z)
        if self.z_abs_max is not None:
            off = np.maximum(off, np.abs(z) - self.z_abs_max)
        return self.weight * off * off


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def heat_choice(losses: np.ndarray, current: float, temp: float, rng: np.random.Generator) -> int:
    """Index of the chosen candidate (``len(losses)`` = stay), ``P ∝ exp(-Δ / T)``."""
    delta = np.append(losses - current, 0.0)
    delta = np.where(np.isfinite(delta), delta, np.inf)
    if temp <= 0:
        return int(np.argmin(delta))
    logits = -delta / temp
    logits -= logits.max()
    p = np.exp(logits)
    return int(rng.choice(delta.size, p=p / p.sum()))


class Objective:
    """Loss of one outcome over a (sub-)layout of rows.

    Parameters
    ----------
    layout, targets, hard
        Rows, aligned published cells and the headline mask (see :mod:`._engine`).
    table1
        ``{moderator index: {level code: count}}``: Table 1 counts (both outcomes together).
    """

    def __init__(self, layout: eng.Layout, targets: eng.Targets, hard: np.ndarray,
                 table1: dict[int, dict[int, int]]) -> None:
        self.lay = layout
        self.tg = targets
        self.hard = hard
        self.table1 = table1
        self.other = {m: {lev: 0 for lev in lv} for m, lv in table1.items()}
        self.scale = 1.0
        self.thresholds: tuple[tuple[float, float], ...] = ()
        self.table1_weight = TABLE1
        self.funnel: FunnelTarget | None = None

    def sync(self, other_labels: np.ndarray | None) -> None:
        """Take the other outcome's level counts for the Table 1 penalty."""
        self.other = {m: {lev: (0 if other_labels is None else int((other_labels[m] == lev).sum()))
                          for lev in lv} for m, lv in self.table1.items()}

    def table1_off(self, labels: np.ndarray) -> np.ndarray:
        """Σ |this + other outcome's count - Table 1| over the Table 1 levels."""
        off = np.zeros(labels.shape[:-2])
        for m, levels in self.table1.items():
            for lev, count in levels.items():
                off = off + np.abs((labels[..., m, :] == lev).sum(-1) + self.other[m][lev] - count)
        return off

    def psi(self, d: np.ndarray) -> np.ndarray:
        """Loss of a cell ``d`` units outside its rounding band: ``s log(1 + d / s)``."""
        s = self.scale
        out = s * np.log1p(d / s)
        for at, height in self.thresholds:
            out = out + height * _sigmoid((d - at) / STEP_WIDTH)
        return out

    def loss(self, y, v, labels) -> np.ndarray:
        """Loss for a batch (or one) of data sets."""
        res = eng.evaluate(y, v, labels, self.lay)
        dr, db = eng.units_off(res, self.lay, self.tg)
        soft = (self.psi(dr) * self.tg.row_wt * ~self.hard).sum(-1)
        soft = soft + (self.psi(db) * self.tg.blk_wt).sum(-1)
        hard = ((dr + (dr > 0)) * self.hard).sum(-1)      # any miss costs a full unit at least
        total = HARD * hard + soft + self.table1_weight * self.table1_off(labels)
        if self.funnel is not None:
            total = total + self.funnel.penalty(y, v)
        return np.where(np.isfinite(total), total, np.inf)

    def summary(self, y, v, labels) -> dict[str, float]:
        """Fractions of soft cells exact / within 3 / within 10 units (search targets)."""
        res = eng.evaluate(y, v, labels, self.lay)
        dr, db = eng.units_off(res, self.lay, self.tg)
        soft = np.concatenate([dr[~self.hard], db[self.tg.blk_wt > 0]])
        return {"hard_off": float(dr[self.hard].sum()), "exact": float(np.mean(soft == 0)),
                "within3": float(np.mean(soft <= 2.5)), "within10": float(np.mean(soft <= 9.5)),
                "table1_off": float(self.table1_off(labels)), "loss": float(self.loss(y, v, labels))}


class Polish:
    """Shared machinery of the two outcomes' discrete polish."""

    def __init__(self, full: Objective, per_moderator: dict[int, Objective], total: int) -> None:
        self.obj = full
        self.per_mod = per_moderator
        self.lay = full.lay
        self.total = total
        width = max(a.size for a in self.lay.allowed)
        self.allowed_pad = np.zeros((len(self.lay.mods), width), dtype=int)
        self.n_allowed = np.array([a.size for a in self.lay.allowed])
        for m, a in enumerate(self.lay.allowed):
            self.allowed_pad[m, : a.size] = a

    def objectives(self) -> list[Objective]:
        """Every objective (full and per moderator)."""
        return [self.obj, *self.per_mod.values()]

    def set_scale(self, scale: float) -> None:
        """Set the log-loss scale everywhere (large = nearly linear)."""
        for o in self.objectives():
            o.scale = scale

    def set_thresholds(self, thresholds: tuple[tuple[float, float], ...], table1_weight: float = TABLE1) -> None:
        """Add (or with ``()`` remove) steps at the scoring thresholds to every objective's loss,
        and set the cost of a comparison off a Table 1 count."""
        for o in self.objectives():
            o.thresholds = tuple(thresholds)
            o.table1_weight = table1_weight

    def sync(self, other_labels: np.ndarray | None) -> None:
        """Give every objective the other outcome's labels for the Table 1 penalty."""
        for o in self.objectives():
            o.sync(other_labels)

    def loss(self, st) -> float:
        """Full loss of one state."""
        y, v = st.effects()
        return float(self.obj.loss(y, v, st.labels))

    # --------------------------------------------------------------- labels
    def label_candidates(self, labels: np.ndarray, m: int) -> np.ndarray:
        """Every single relabel and pairwise swap of moderator ``m`` (breast rules respected)."""
        lay = self.lay
        ci = lay.cancer_index
        cur = labels[m]
        breast = labels[ci] == 0
        eligible = np.ones(labels.shape[1], bool)   # may become breast
        for mm in range(len(lay.mods)):
            eligible &= np.isin(labels[mm], lay.breast_allowed[mm])
        moves: list[tuple[tuple[int, int], ...]] = []
        k = labels.shape[1]
        for i in range(k):
            for lev in lay.allowed[m]:
                if lev == cur[i]:
                    continue
                if m == ci and lev == 0 and not eligible[i]:
                    continue
                if m != ci and breast[i] and lev not in lay.breast_allowed[m]:
                    continue
                moves.append(((i, int(lev)),))
        for i in range(k):
            for j in range(i + 1, k):
                if cur[i] == cur[j]:
                    continue
                if m == ci:
                    if not eligible[i if cur[j] == 0 else j]:
                        continue
                elif (breast[i] and cur[j] not in lay.breast_allowed[m]) or \
                        (breast[j] and cur[i] not in lay.breast_allowed[m]):
                    continue
                moves.append(((i, int(cur[j])), (j, int(cur[i]))))
        out = np.repeat(labels[None], len(moves), 0)
        for b, move in enumerate(moves):
            for i, lev in move:
                out[b, m, i] = lev
        return out

    def label_search(self, st, m: int, steps: int, temp: float, rng: np.random.Generator, chunk: int = 400):
        """Heat-bath search over moderator ``m``'s labels, on its own rows only."""
        obj = self.per_mod[m]
        y, v = st.effects()
        labels = st.labels
        cur = float(obj.loss(y, v, labels))
        best, best_labels = cur, labels
        for _ in range(steps):
            cands = self.label_candidates(labels, m)
            if len(cands) == 0:
                break
            losses = np.concatenate([obj.loss(y, v, cands[s:s + chunk]) for s in range(0, len(cands), chunk)])
            j = heat_choice(losses, cur, temp, rng)
            if j == len(cands):
                if temp <= 0:
                    break
                continue
            labels, cur = cands[j], float(losses[j])
            if cur < best:
                best, best_labels = cur, labels
        return self.with_labels(st, best_labels.copy())

    def milp_sweep(self, st, rng: np.random.Generator, count: int = 3):
        """Try :mod:`.milp`'s relabellings of every moderator; keep the best if it lowers the loss."""
        for m in self.per_mod:
            if m == self.lay.cancer_index:
                continue
            y, v = st.effects()
            cands = milp_label_candidates(y, v, st.labels, self.lay, self.obj.tg, m, rng, count)
            if len(cands):
                st = self.best_relabel(st, m, cands)
        return st

    def best_relabel(self, st, m: int, cands: np.ndarray):
        """``st`` with the candidate labels of lowest loss on moderator ``m``'s rows, if lower."""
        obj = self.per_mod[m]
        y, v = st.effects()
        losses = obj.loss(y, v, cands)
        j = int(np.argmin(losses))
        return self.with_labels(st, cands[j]) if losses[j] < float(obj.loss(y, v, st.labels)) else st

    def relabel_item(self, labels: np.ndarray, i: int, rng: np.random.Generator) -> np.ndarray:
        """A batch copy of ``labels`` where comparison ``i`` has up to three moderators changed."""
        lay = self.lay
        size = labels.shape[0]
        mods = np.array([m for m in range(len(lay.mods)) if m != lay.cancer_index and lay.allowed[m].size > 1])
        pad = self.allowed_pad[mods]
        count = self.n_allowed[mods]
        rows = np.arange(size)
        for slot in range(3):
            use = rng.integers(0, 4, size) > slot          # 0-3 changes, each moderator slot in turn
            pick = rng.integers(0, mods.size, size)
            level = pad[pick, (rng.random(size) * count[pick]).astype(int)]
            labels[rows[use], mods[pick[use]], i] = level[use]
        breast = labels[:, lay.cancer_index, i] == 0
        for m in range(len(lay.mods)):
            ok = lay.breast_allowed[m]
            bad = breast & ~np.isin(labels[:, m, i], ok)
            if bad.any():
                labels[bad, m, i] = ok[rng.integers(0, ok.size, int(bad.sum()))]
        return labels

    def sweep(self, st, temp: float, rng: np.random.Generator, label_steps: int = 10):
        """One round: items, swaps, arms, and every moderator's labels."""
        cur = self.loss(st)
        for i in rng.permutation(self.lay.k):
            st, cur = self.step(st, self.item_candidates(st, int(i), rng), cur, temp, rng)
        st, cur = self.step(st, self.swap_candidates(st), cur, temp, rng)
        for _ in range(5):
            st, cur = self.step(st, self.arm_candidates(st, rng), cur, temp, rng)
        for m in self.per_mod:
            st = self.label_search(st, m, label_steps, temp, rng)
        return st


class NumberPolish(Polish):
    """Discrete polish of the number outcome (Cohen's d stays continuous)."""

    def with_labels(self, st: NumberState, labels: np.ndarray) -> NumberState:
        """Same data, new labels."""
        return NumberState(st.d, st.n1, st.n2, labels)

    def batch_loss(self, d, n, labels, chunk: int = 300) -> np.ndarray:
        """Loss of candidate arrays ``d (B, K)``, ``n (B, 2, K)``, ``labels (B, M, K)``."""
        out = []
        for s in range(0, len(d), chunk):
            y, v = number_effects(d[s:s + chunk], n[s:s + chunk, 0].astype(float), n[s:s + chunk, 1].astype(float))
            out.append(self.obj.loss(y, v, labels[s:s + chunk]))
        return np.concatenate(out) if out else np.zeros(0)

    def step(self, st: NumberState, cands, cur: float, temp: float, rng: np.random.Generator):
        """Draw among candidates (or stay)."""
        d, n, labels = cands
        if len(d) == 0:
            return st, cur
        losses = self.batch_loss(d, n, labels)
        j = heat_choice(losses, cur, temp, rng)
        if j == len(d):
            return st, cur
        return NumberState(d[j], n[j, 0], n[j, 1], labels[j]), float(losses[j])

    def item_candidates(self, st: NumberState, i: int, rng: np.random.Generator, size: int = 300):
        """New labels, d and/or arm size for comparison ``i``."""
        labels = self.relabel_item(np.repeat(st.labels[None], size, 0), i, rng)
        d = np.repeat(st.d[None], size, 0)
        n = np.repeat(np.stack([st.n1, st.n2])[None], size, 0)
        mode = rng.integers(0, 3, size)
        new = np.where(mode == 1, d[:, i] + rng.normal(0, 0.3, size), rng.uniform(D_MIN, D_MAX, size))
        d[:, i] = np.clip(np.where(mode == 0, d[:, i], new), D_MIN, D_MAX)
        jit = rng.integers(0, 2, size) == 0
        arm, sgn = rng.integers(0, 2, size), rng.choice([-2, -1, 1, 2], size)
        other, oarm = rng.integers(0, self.lay.k, size), rng.integers(0, 2, size)
        n[jit, arm[jit], i] += sgn[jit]
        n[jit, oarm[jit], other[jit]] -= sgn[jit]
        ok = ((n >= N_MIN) & (n <= N_MAX)).all((1, 2))
        return d[ok], n[ok], labels[ok]

    def swap_candidates(self, st: NumberState):
        """Every pair of comparisons exchanging d and arm sizes."""
        i, j = np.triu_indices(self.lay.k, 1)
        rows = np.arange(i.size)
        d = np.repeat(st.d[None], i.size, 0)
        n0 = np.stack([st.n1, st.n2])
        n = np.repeat(n0[None], i.size, 0)
        d[rows, i], d[rows, j] = st.d[j], st.d[i]
        n[rows, :, i], n[rows, :, j] = n0[:, j].T, n0[:, i].T
        return d, n, np.repeat(st.labels[None], i.size, 0)

    def arm_candidates(self, st: NumberState, rng: np.random.Generator, size: int = 300):
        """One animal moves from one arm to another."""
        n = np.repeat(np.stack([st.n1, st.n2])[None], size, 0)
        rows = np.arange(size)
        n[rows, rng.integers(0, 2, size), rng.integers(0, self.lay.k, size)] += 1
        n[rows, rng.integers(0, 2, size), rng.integers(0, self.lay.k, size)] -= 1
        ok = ((n >= N_MIN) & (n <= N_MAX)).all((1, 2))
        return np.repeat(st.d[None], ok.sum(), 0), n[ok], np.repeat(st.labels[None], ok.sum(), 0)

    def fit_d(self, st: NumberState, iters: int = 30) -> NumberState:
        """Least squares on d with labels and arms fixed (Cauchy loss, 3 units)."""
        lay, tg, obj = self.lay, self.obj.tg, self.obj
        n1, n2 = st.n1.astype(float), st.n2.astype(float)
        wrow = np.sqrt(tg.row_wt * np.where(obj.hard, 30.0, 1.0))
        wblk = np.sqrt(tg.blk_wt)

        def resid(x):
            y, v = number_effects(np.atleast_2d(x), n1, n2)
            res = eng.evaluate(y, v, st.labels, lay)
            rv = eng.row_values(res, lay)[..., tg.row_q, tg.row_idx]
            bv = eng.between_values(res)[..., tg.blk_q, tg.blk_idx]
            r = np.concatenate([(rv - tg.row_val) / tg.row_unit * wrow, (bv - tg.blk_val) / tg.blk_unit * wblk], -1)
            return np.nan_to_num(r, nan=1e3)

        def jac(x):
            h = 1e-6
            return ((resid(x[None] + h * np.eye(x.size)) - resid(x)) / h).T

        x0 = np.clip(st.d, D_MIN + 1e-9, D_MAX - 1e-9)
        sol = least_squares(lambda x: resid(x)[0], x0, jac=jac, bounds=(D_MIN, D_MAX), loss="cauchy",
                            f_scale=3.0, max_nfev=iters)
        new = NumberState(sol.x, st.n1, st.n2, st.labels)
        return new if self.loss(new) < self.loss(st) else st

    def best_relabel(self, st: NumberState, m: int, cands: np.ndarray) -> NumberState:
        """Each candidate with d refitted by least squares; the best if it lowers the full loss."""
        best, best_loss = st, self.loss(st)
        for labels in cands:
            trial = self.fit_d(self.with_labels(st, labels), iters=60)
            if (loss := self.loss(trial)) < best_loss:
                best, best_loss = trial, loss
        return best

    def sweep(self, st, temp, rng, label_steps=10):
        """Least squares on d, then the shared neighbourhoods."""
        return super().sweep(self.fit_d(st), temp, rng, label_steps)


class IncidencePolish(Polish):
    """Discrete polish of the incidence outcome."""

    def with_labels(self, st: IncidenceState, labels: np.ndarray) -> IncidenceState:
        """Same data, new labels."""
        return IncidenceState(st.a, st.n1, st.c, st.n2, labels)

    @staticmethod
    def valid(ev: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Arms of 4-15 animals, 0 <= events < animals, never no event in both arms."""
        return (((n >= N_MIN) & (n <= N_MAX)).all((1, 2)) & (ev >= 0).all((1, 2)) & (ev < n).all((1, 2))
                & ~((ev[:, 0] == 0) & (ev[:, 1] == 0)).any(-1))

    def batch_loss(self, ev, n, labels, chunk: int = 300) -> np.ndarray:
        """Loss of candidate arrays ``ev, n (B, 2, K)``, ``labels (B, M, K)``."""
        out = []
        for s in range(0, len(ev), chunk):
            e, m = ev[s:s + chunk].astype(float), n[s:s + chunk].astype(float)
            y, v = incidence_effects(e[:, 0], m[:, 0], e[:, 1], m[:, 1])
            out.append(self.obj.loss(y, v, labels[s:s + chunk]))
        return np.concatenate(out) if out else np.zeros(0)

    def step(self, st: IncidenceState, cands, cur: float, temp: float, rng: np.random.Generator):
        """Draw among candidates (or stay)."""
        ev, n, labels = cands
        if len(ev) == 0:
            return st, cur
        losses = self.batch_loss(ev, n, labels)
        j = heat_choice(losses, cur, temp, rng)
        if j == len(ev):
            return st, cur
        return IncidenceState(ev[j, 0], n[j, 0], ev[j, 1], n[j, 1], labels[j]), float(losses[j])

    def _arrays(self, st: IncidenceState, size: int):
        return (np.repeat(np.stack([st.a, st.c])[None], size, 0), np.repeat(np.stack([st.n1, st.n2])[None], size, 0),
                np.repeat(st.labels[None], size, 0))

    def item_candidates(self, st: IncidenceState, i: int, rng: np.random.Generator, size: int = 300):
        """New labels, events and/or arm size for comparison ``i``."""
        ev, n, labels = self._arrays(st, size)
        labels = self.relabel_item(labels, i, rng)
        mode = rng.integers(0, 3, size)
        for arm in (0, 1):
            jitter = ev[:, arm, i] + rng.integers(-1, 2, size)
            fresh = rng.integers(0, n[:, arm, i])
            ev[:, arm, i] = np.where(mode == 0, ev[:, arm, i], np.where(mode == 1, jitter, fresh))
        jit = rng.integers(0, 3, size) == 0
        arm, sgn = rng.integers(0, 2, size), rng.choice([-1, 1], size)
        other, oarm = rng.integers(0, self.lay.k, size), rng.integers(0, 2, size)
        n[jit, arm[jit], i] += sgn[jit]
        n[jit, oarm[jit], other[jit]] -= sgn[jit]
        ok = self.valid(ev, n)
        return ev[ok], n[ok], labels[ok]

    def swap_candidates(self, st: IncidenceState):
        """Every pair of comparisons exchanging their arm data."""
        i, j = np.triu_indices(self.lay.k, 1)
        rows = np.arange(i.size)
        ev, n, labels = self._arrays(st, i.size)
        e0, n0 = np.stack([st.a, st.c]), np.stack([st.n1, st.n2])
        ev[rows, :, i], ev[rows, :, j] = e0[:, j].T, e0[:, i].T
        n[rows, :, i], n[rows, :, j] = n0[:, j].T, n0[:, i].T
        return ev, n, labels

    def arm_candidates(self, st: IncidenceState, rng: np.random.Generator, size: int = 300):
        """Event moves within a comparison, and animals moving between arms (with or without event)."""
        k = self.lay.k
        ev, n, labels = self._arrays(st, 8 * k + size)
        rows = np.arange(8 * k)
        i = np.repeat(np.arange(k), 8)
        da = np.tile([1, -1, 0, 0, 1, -1, 1, -1], k)
        dc = np.tile([0, 0, 1, -1, 1, -1, -1, 1], k)
        ev[rows, 0, i] += da
        ev[rows, 1, i] += dc
        rows = np.arange(8 * k, 8 * k + size)
        fa, fi = rng.integers(0, 2, size), rng.integers(0, k, size)
        ta, ti = rng.integers(0, 2, size), rng.integers(0, k, size)
        mode = rng.integers(0, 4, size)
        n[rows, fa, fi] -= 1
        ev[rows, fa, fi] -= mode // 2
        n[rows, ta, ti] += 1
        ev[rows, ta, ti] += mode % 2
        ok = self.valid(ev, n)
        return ev[ok], n[ok], labels[ok]
