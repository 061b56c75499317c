"""Rebuild the Li et al. (2018) data sets from the published tables.

The article prints pooled results and subgroup Tables 2-4 but gives the per-comparison data only
as forest-plot images. :func:`rebuild_li2018` constructs synthetic data sets — integer arm data and
moderator labels — whose RevMan 5 analysis reproduces the printed numbers as closely as a search
can make it, with the headline rows exact at the printed rounding. The data are *rebuilt*, not
the real data: a user who digitises Fig. 3/4 replaces the CSVs with the same columns.

Pipeline (deterministic for a given seed and budget):

1. :mod:`.relax`: a continuous relaxation of both outcomes, solved from many random starts.
2. Rounding of the best starts to integers (arm sizes, events, labels).
3. :mod:`.search`: discrete polish of each, then more polish of the best one; then polish with
   steps at the scoring thresholds in the loss and exact per-moderator label moves (:mod:`.milp`);
   last, the same with the funnel-plot targets of the text (:data:`FUNNEL_AIM`,
   :data:`FUNNEL_KEEP`: Egger's test asymmetric for incidence, symmetric for number).
4. The number outcome's Cohen's d is realised as means and SDs with two decimals, and the last
   digits are polished.
5. The frames and the fidelity table are built from the final data with the reference formulas.

The search runs in the pinned numeric environment of :mod:`.numerics` (NumPy's baseline SIMD
kernels, generic OpenBLAS), so the same seed, budget and package versions give the same bits on
any x86-64 machine; with the CPU's own kernels the last bits of ``exp``/``log`` differ between
machines and the search ends elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmeta.rebuild import _engine as eng
from bayesmeta.rebuild.consistency import find_contradictions, repaired_values
from bayesmeta.rebuild.published import MODERATORS, published_cells, table1_counts
from bayesmeta.rebuild.search import (
    D_MAX, D_MIN, N_MAX, N_MIN, TABLE1_LAST, THRESHOLDS, FunnelTarget, IncidencePolish, IncidenceState,
    NumberPolish, NumberState, Objective, number_effects,
)

__all__ = ["Budget", "BUDGETS", "RebuildResult", "rebuild_li2018", "DEFAULT_SEED", "COMPARISONS", "ANIMALS"]

#: Progress callback: called with a short description before each stage.
Step = Callable[[str], None]

DEFAULT_SEED = 9   # best of seeds 3, 6, 9 and 2018 with the funnel stage, pinned numerics (see the data cards)
COMPARISONS = {"incidence": 31, "number": 35}
ANIMALS = {"incidence": 624, "number": 489}
OUTCOMES = ("incidence", "number")
MODERATOR_COLUMNS = tuple(MODERATORS)
DETAIL_LEVELS = ("Osteosarcoma", "Hepatocellular carcinoma", "Colon cancer", "Melanoma", "Other")


@dataclass(frozen=True)
class Budget:
    """How much search to do.

    Attributes
    ----------
    restarts_incidence, steps_incidence, restarts_number, steps_number
        Random starts and Adam steps of each relaxation (the number outcome's two stages use
        the same).
    breast_k
        Breast-cancer comparisons of the number outcome (the article does not print it; Table 3
        gives them 48.6% of the weight, about 17 of 35).
    keep
        How many of the best relaxed starts (per outcome) are rounded and polished.
    rounds_each
        Polish rounds given to each kept pair of starts.
    rounds_final
        Further polish rounds of the best pair.
    rounds_threshold
        Last polish rounds with steps at the scoring thresholds added to the loss
        (:data:`~bayesmeta.rebuild.search.THRESHOLDS`).
    rounds_funnel
        Rounds of the same polish with the funnel-plot targets (:data:`FUNNEL_AIM`), then as many
        again with the looser :data:`FUNNEL_KEEP` (cells recovered, the tests kept on the text's side).
    """

    restarts_incidence: int
    steps_incidence: int
    restarts_number: int
    steps_number: int
    breast_k: int
    keep: int
    rounds_each: int
    rounds_final: int
    rounds_threshold: int
    rounds_funnel: int

    def to_dict(self) -> dict[str, int]:
        """JSON-able form."""
        return dict(self.__dict__)


BUDGETS = {
    "default": Budget(restarts_incidence=16, steps_incidence=4000, restarts_number=24, steps_number=6000,
                      breast_k=17, keep=2, rounds_each=2, rounds_final=2, rounds_threshold=4,
                      rounds_funnel=3),
    "quick": Budget(restarts_incidence=2, steps_incidence=300, restarts_number=2, steps_number=300,
                    breast_k=17, keep=1, rounds_each=1, rounds_final=0, rounds_threshold=1,
                    rounds_funnel=1),
}


@dataclass(frozen=True)
class RebuildResult:
    """The rebuilt data sets and how well they reproduce the article.

    Attributes
    ----------
    incidence, number
        Data frames in the schema of ``bayesmeta/datasets/li2018_*.csv``.
    fidelity
        One row per printed number (see :func:`bayesmeta.rebuild.fidelity.fidelity_table`).
    seed, budget
        What produced them.
    seconds
        Wall time of the search.
    """

    incidence: pd.DataFrame
    number: pd.DataFrame
    fidelity: pd.DataFrame
    seed: int
    budget: Budget
    seconds: float = field(compare=False)

    def write_csvs(self, directory: str | Path) -> dict[str, Path]:
        """Write ``li2018_incidence.csv`` and ``li2018_number.csv`` into ``directory``.

        The format is the bundled data sets' (``\n`` line ends, no index), so writing the result of
        the default rebuild into ``bayesmeta/datasets`` reproduces the committed files byte for byte.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, frame in (("incidence", self.incidence), ("number", self.number)):
            out[name] = directory / f"li2018_{name}.csv"
            frame.to_csv(out[name], index=False, lineterminator="\n")
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (the frames as lists of records)."""
        from bayesmeta.rebuild.fidelity import fidelity_summary

        return {"seed": int(self.seed), "budget": self.budget.to_dict(), "seconds": float(self.seconds),
                "summary": fidelity_summary(self.fidelity),
                "incidence": self.incidence.to_dict(orient="records"),
                "number": self.number.to_dict(orient="records")}


# ----------------------------------------------------------------------------- problem set-up
#: Search weight of Table 4's cells (the breast subset: fewest comparisons, hardest to fit).
TABLE4_WEIGHT = 1.0


def _search_weights() -> dict[tuple[str, str, str, str], float]:
    """Search weight per printed cell: 0 for contradictions without a likely reading."""
    weights = {c.key: TABLE4_WEIGHT for c in published_cells() if c.table == "4"}
    weights.update({key: 0.0 for c in find_contradictions() if not c.repair for key in c.keys()})
    return weights


def _table1_levels(lay: eng.Layout) -> dict[int, dict[int, int]]:
    counts = table1_counts()
    out: dict[int, dict[int, int]] = {}
    for column, levels in counts.items():
        if column in lay.mods:
            out[lay.mods.index(column)] = {MODERATORS[column].index(lev): n for lev, n in levels.items()}
    breast = counts["cancer_type_detail"]["Breast cancer"]
    total = sum(counts["cancer_type_detail"].values())
    out[lay.cancer_index] = {0: breast, 1: total - breast}
    return out


def _objective(outcome: str, only: str | None = None, *, k: int | None = None,
               tables: tuple[str, ...] = ("2", "3", "4"), breast_only: bool = False) -> Objective:
    lay = eng.make_layout(outcome, COMPARISONS[outcome] if k is None else k, only, tables, breast_only)
    cells = [c for c in published_cells() if c.table in tables]
    tg = eng.make_targets(cells, lay, _search_weights(), repaired_values())
    hard = np.array([c.moderator == "all" for c in tg.row_cells])
    t1 = {} if breast_only else _table1_levels(lay)
    if only is not None:
        m = lay.mods.index(only)
        t1 = {m: t1[m]} if m in t1 else {}
    return Objective(lay, tg, hard, t1)


#: What the article says of its funnel plots (Results, "Publication bias", Fig. 5): "some degree of
#: asymmetry for the incidence of metastases", "a symmetrical distribution for the number of
#: metastases". As bounds on Egger's z (DL mixed-effects regression on the standard error). The
#: funnel stage first aims beyond the tests' thresholds, incidence z >= 2.5 (p <= 0.012; small
#: studies with larger risk ratios) and number |z| <= 1.0 (p >= 0.32), then keeps z inside
#: 2.2 (p <= 0.028) and 1.2 (p >= 0.23), more firmly, while the cells recover; the realisation of
#: means and SDs keeps the same. The earlier stages place the effects without them.
FUNNEL_AIM = {"incidence": FunnelTarget(z_min=2.5, weight=200.0),
              "number": FunnelTarget(z_abs_max=1.0, weight=200.0)}
FUNNEL_KEEP = {"incidence": FunnelTarget(z_min=2.2, weight=400.0),
               "number": FunnelTarget(z_abs_max=1.2, weight=400.0)}


def _aim_at_funnels(pol: dict, targets: dict[str, FunnelTarget]) -> None:
    """Set the funnel-plot targets of both outcomes' full objectives (all comparisons; labels do
    not move Egger's z, so the per-moderator objectives need no term)."""
    for outcome in OUTCOMES:
        pol[outcome].obj.funnel = targets[outcome]


def _polishers() -> dict[str, NumberPolish | IncidencePolish]:
    out = {}
    for outcome, cls in (("incidence", IncidencePolish), ("number", NumberPolish)):
        full = _objective(outcome)
        per_mod = {m: _objective(outcome, col) for m, col in enumerate(MODERATOR_COLUMNS)}
        out[outcome] = cls(full, per_mod, ANIMALS[outcome])
    return out


def _breast_polisher(k: int) -> NumberPolish:
    """Polish of the breast-cancer subset alone, against Table 4."""
    full = _objective("number", k=k, tables=("4",), breast_only=True)
    per_mod = {m: _objective("number", col, k=k, tables=("4",), breast_only=True)
               for m, col in enumerate(MODERATOR_COLUMNS) if col in eng.TABLE4_MODERATORS}
    return NumberPolish(full, per_mod, 0)


# ----------------------------------------------------------------------------- rounding
def _round_arms(n1: np.ndarray, n2: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer arm sizes within [N_MIN, N_MAX] that sum to ``total``, close to the continuous ones."""
    cont = np.stack([n1, n2])
    arms = np.clip(np.round(cont), N_MIN, N_MAX).astype(int)
    while (diff := total - int(arms.sum())) != 0:
        step = 1 if diff > 0 else -1
        room = (arms + step >= N_MIN) & (arms + step <= N_MAX)
        gain = np.where(room, step * (cont - arms), -np.inf)
        idx = np.unravel_index(int(np.argmax(gain)), arms.shape)
        arms[idx] += step
    return arms[0], arms[1]


def _round_labels(logits: np.ndarray, lay: eng.Layout, allowed: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """Most probable allowed level per comparison and moderator, breast rules respected."""
    allowed = allowed or lay.allowed
    m_count = len(lay.mods)
    masked = np.full(logits.shape, -np.inf)
    for m in range(m_count):
        masked[:, m, allowed[m]] = logits[:, m, allowed[m]]
    labels = masked.argmax(-1).T.copy()
    breast = labels[lay.cancer_index] == 0
    for m in range(m_count):
        ok = lay.breast_allowed[m]
        bad = breast & ~np.isin(labels[m], ok)
        if bad.any():
            sub = np.full(masked.shape[2], -np.inf)
            sub[ok] = 0.0
            labels[m, bad] = (masked[bad, m, :] + sub).argmax(-1)
    return labels


def _round_number(sol: dict, lay: eng.Layout, total: int | None = None,
                  allowed: tuple[np.ndarray, ...] | None = None) -> NumberState:
    total = int(round(float(np.sum(sol["n1"]) + np.sum(sol["n2"])))) if total is None else total
    n1, n2 = _round_arms(sol["n1"], sol["n2"], total)
    big = n1 + n2
    d = np.clip(sol["g"] / (1 - 3 / (4 * big - 9)), D_MIN, D_MAX)
    return NumberState(d, n1, n2, _round_labels(sol["logits"], lay, allowed))


def _round_incidence(sol: dict, lay: eng.Layout) -> IncidenceState:
    n1, n2 = _round_arms(sol["n1"], sol["n2"], ANIMALS["incidence"])
    a = np.clip(np.round(sol["p1"] * n1), 0, n1 - 1).astype(int)
    c = np.clip(np.round(sol["p2"] * n2), 0, n2 - 1).astype(int)
    both = (a == 0) & (c == 0)
    a[both & (sol["p1"] >= sol["p2"])] = 1
    c[both & (sol["p1"] < sol["p2"])] = 1
    return IncidenceState(a, n1, c, n2, _round_labels(sol["logits"], lay))


# ----------------------------------------------------------------------------- search
def _polish(pol, states: dict, rounds: int, rng: np.random.Generator, temp0: float = 0.05) -> dict:
    for r in range(rounds):
        temp = temp0 * 0.6**r
        for outcome, other in (("number", "incidence"), ("incidence", "number")):
            pol[outcome].sync(states[other].labels)
            pol[outcome].set_scale(3.0 if r == 0 else 1.0)
            states[outcome] = pol[outcome].sweep(states[outcome], temp, rng)
    for outcome, other in (("number", "incidence"), ("incidence", "number")):
        pol[outcome].set_scale(1.0)
        pol[outcome].sync(states[other].labels)
    return states


def _total_loss(pol, states: dict) -> float:
    return sum(pol[o].loss(states[o]) for o in OUTCOMES)


def _table1_list(lay: eng.Layout) -> list[tuple[int, int, int]]:
    return [(m, lev, n) for m, levels in _table1_levels(lay).items() for lev, n in levels.items()]


def _polish_alone(pol: NumberPolish, st: NumberState, rounds: int, rng: np.random.Generator) -> NumberState:
    for r in range(rounds):
        pol.set_scale(3.0 if r == 0 else 1.0)
        st = pol.sweep(st, 0.05 * 0.6**r, rng)
    pol.set_scale(1.0)
    return st


def _concat(a: NumberState, b: NumberState) -> NumberState:
    return NumberState(np.concatenate([a.d, b.d]), np.concatenate([a.n1, b.n1]), np.concatenate([a.n2, b.n2]),
                       np.concatenate([a.labels, b.labels], axis=1))


def _search_number(pol: NumberPolish, seed: int, budget: Budget, rng: np.random.Generator) -> NumberState:
    """Breast-cancer comparisons first (Table 4 alone), then the others around them (Table 3)."""
    from bayesmeta.rebuild.relax import RelaxSpec, relax

    kb = budget.breast_k
    bpol = _breast_polisher(kb)
    bspec = RelaxSpec("number", bpol.lay, bpol.obj.tg, bpol.obj.hard, None)
    best, best_loss = None, np.inf
    for sol in relax(bspec, [], restarts=budget.restarts_number, steps=budget.steps_number, seed=seed + 1,
                     keep=budget.keep):
        st = _polish_alone(bpol, _round_number(sol, bpol.lay), budget.rounds_each, rng)
        if (loss := bpol.loss(st)) < best_loss:
            best, best_loss = st, loss
    breast = best
    y, v = breast.effects()
    lay = pol.lay
    free_allowed = tuple(np.array([1]) if m == lay.cancer_index else a for m, a in enumerate(lay.allowed))
    fixed = {"y": y, "v": v, "labels": breast.labels, "animals": int(breast.n1.sum() + breast.n2.sum())}
    spec = RelaxSpec("number", lay, pol.obj.tg, pol.obj.hard, ANIMALS["number"], fixed, free_allowed)
    others = [_round_number(sol, lay, ANIMALS["number"] - fixed["animals"], free_allowed)
              for sol in relax(spec, [], restarts=budget.restarts_number, steps=budget.steps_number,
                               seed=seed + 2, keep=budget.keep)]
    return [_concat(breast, o) for o in others]


def _search(seed: int, budget: Budget, step: Step) -> dict[str, NumberState | IncidenceState]:
    """Number outcome in two stages, then incidence aiming at Table 1 minus the number's counts;
    each kept pair polished jointly, the best polished further."""
    from bayesmeta.rebuild.relax import RelaxSpec, relax

    pol = _polishers()
    rng = np.random.default_rng(seed)
    step("number of metastases: breast-cancer comparisons (Table 4), then the others (Table 3)")
    numbers = _search_number(pol["number"], seed, budget, rng)
    step("incidence (Table 2)")
    lay = pol["incidence"].lay
    t1 = [(m, lev, float(n - (numbers[0].labels[m] == lev).sum())) for m, lev, n in _table1_list(lay)]
    spec = RelaxSpec("incidence", lay, pol["incidence"].obj.tg, pol["incidence"].obj.hard, ANIMALS["incidence"])
    incidences = [_round_incidence(sol, lay) for sol in
                  relax(spec, t1, restarts=budget.restarts_incidence, steps=budget.steps_incidence, seed=seed,
                        keep=budget.keep)]
    step("polishing both outcomes together")
    best, best_loss = None, np.inf
    for inc, num in zip(incidences, numbers, strict=True):
        states = _polish(pol, {"incidence": inc, "number": num}, budget.rounds_each, rng)
        if (loss := _total_loss(pol, states)) < best_loss:
            best, best_loss = states, loss
    best = _polish(pol, best, budget.rounds_final, rng, temp0=0.02)
    step("scoring thresholds and exact label moves")
    best = _threshold_polish(pol, best, budget.rounds_threshold, rng)
    step("last stage: funnel plots as the text describes them")
    for targets in (FUNNEL_AIM, FUNNEL_KEEP):
        _aim_at_funnels(pol, targets)
        best = _threshold_polish(pol, best, budget.rounds_funnel, rng)
    return best


def _threshold_polish(pol, states: dict, rounds: int, rng: np.random.Generator) -> dict:
    """Polish rounds aimed at the scoring thresholds (fewer cells more than 3 or 10 units off).

    Each round tries the exact (MILP) label moves of every moderator, then runs a fresh one-round
    :func:`_polish` (near-linear loss scale) at a falling temperature.
    """
    for o in OUTCOMES:
        pol[o].set_thresholds(THRESHOLDS, TABLE1_LAST)
    for r in range(rounds):
        for outcome, other in (("number", "incidence"), ("incidence", "number")):
            pol[outcome].sync(states[other].labels)
            pol[outcome].set_scale(3.0)
            states[outcome] = pol[outcome].milp_sweep(states[outcome], rng)
        states = _polish(pol, states, 1, rng, temp0=0.03 * 0.7**r)
    for o in OUTCOMES:
        pol[o].set_thresholds(())
    return states


# ----------------------------------------------------------------------------- realisation
def _realise_number(st: NumberState, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Means and SDs (two decimals) with Cohen's d as close as rounding allows to ``st.d``.

    The arm with fewer metastases gets a mean of 4-40 and an SD of 20-60% of it; the other arm's
    SD is 0.8-1.6 times larger; its mean follows from d and the pooled SD.
    """
    k = st.d.size
    n1, n2 = st.n1.astype(float), st.n2.astype(float)
    m_low = np.round(np.exp(rng.uniform(np.log(4), np.log(40), k)), 2)
    cv = rng.uniform(0.2, 0.6, k)
    ratio = rng.uniform(0.8, 1.6, k)
    high_is_1 = st.d >= 0
    n_low = np.where(high_is_1, n2, n1)
    n_high = np.where(high_is_1, n1, n2)
    sp_target = m_low * cv
    sd_low = sp_target * np.sqrt((n1 + n2 - 2) / ((n_low - 1) + (n_high - 1) * ratio**2))
    sd_low = np.maximum(np.round(sd_low, 2), 0.05)
    sd_high = np.maximum(np.round(sd_low * ratio, 2), 0.05)
    sd1 = np.where(high_is_1, sd_high, sd_low)
    sd2 = np.where(high_is_1, sd_low, sd_high)
    sp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2))
    m_high = np.round(m_low + np.abs(st.d) * sp, 2)
    m1 = np.where(high_is_1, m_high, m_low)
    m2 = np.where(high_is_1, m_low, m_high)
    return {"m1i": m1, "sd1i": sd1, "n1i": st.n1.copy(), "m2i": m2, "sd2i": sd2, "n2i": st.n2.copy()}


def _d_of(arms: dict[str, np.ndarray]) -> np.ndarray:
    n1, n2 = arms["n1i"].astype(float), arms["n2i"].astype(float)
    sp = np.sqrt(((n1 - 1) * arms["sd1i"] ** 2 + (n2 - 1) * arms["sd2i"] ** 2) / (n1 + n2 - 2))
    return (arms["m1i"] - arms["m2i"]) / sp


def _polish_digits(pol: NumberPolish, arms: dict[str, np.ndarray], labels: np.ndarray,
                   sweeps: int = 4) -> dict[str, np.ndarray]:
    """Greedy ±0.01-0.05 changes of the higher-mean arm's mean to undo realisation rounding."""
    k = labels.shape[1]
    steps = np.array([-0.05, -0.04, -0.03, -0.02, -0.01, 0.01, 0.02, 0.03, 0.04, 0.05])
    n1, n2 = arms["n1i"].astype(float), arms["n2i"].astype(float)
    for _ in range(sweeps):
        base_d = _d_of(arms)
        cur = float(pol.obj.loss(*number_effects(base_d, n1, n2), labels))
        improved = False
        for i in range(k):
            col = "m1i" if arms["m1i"][i] >= arms["m2i"][i] else "m2i"
            cand = np.round(arms[col][i] + steps, 2)
            trial = np.repeat(base_d[None], steps.size, 0)
            sp = np.sqrt(((n1[i] - 1) * arms["sd1i"][i] ** 2 + (n2[i] - 1) * arms["sd2i"][i] ** 2) / (n1[i] + n2[i] - 2))
            trial[:, i] = ((cand - arms["m2i"][i]) if col == "m1i" else (arms["m1i"][i] - cand)) / sp
            losses = pol.obj.loss(*number_effects(trial, n1, n2), np.repeat(labels[None], steps.size, 0))
            j = int(np.argmin(losses))
            if losses[j] < cur - 1e-12:
                arms[col] = arms[col].copy()
                arms[col][i] = cand[j]
                base_d = _d_of(arms)
                cur = float(losses[j])
                improved = True
        if not improved:
            break
    return arms


def _label_columns(labels: np.ndarray) -> dict[str, list[str]]:
    return {col: [MODERATORS[col][code] for code in labels[m]] for m, col in enumerate(MODERATOR_COLUMNS)}


def _assign_detail(frames: dict[str, pd.DataFrame], rng: np.random.Generator) -> None:
    """Table 1 cancer types for the non-breast comparisons of both outcomes (synthetic)."""
    counts = table1_counts()["cancer_type_detail"]
    slots = [(o, i) for o in OUTCOMES for i in np.flatnonzero(frames[o]["cancer_type"] != "Breast cancer")]
    want = np.array([counts[lev] for lev in DETAIL_LEVELS], float)
    alloc = np.floor(want / want.sum() * len(slots)).astype(int)
    rest = len(slots) - alloc.sum()
    alloc[np.argsort(-(want / want.sum() * len(slots) - alloc), kind="stable")[:rest]] += 1
    levels = np.repeat(np.array(DETAIL_LEVELS, dtype=object), alloc)
    levels = levels[rng.permutation(len(levels))]
    for o in OUTCOMES:
        frames[o]["cancer_type_detail"] = np.where(frames[o]["cancer_type"] == "Breast cancer",
                                                   "Breast cancer", "")
    for (o, i), lev in zip(slots, levels):
        frames[o].loc[frames[o].index[i], "cancer_type_detail"] = lev


def _frames(states: dict, arms: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    inc = states["incidence"]
    frames = {
        "incidence": pd.DataFrame({"ai": inc.a, "n1i": inc.n1, "ci": inc.c, "n2i": inc.n2,
                                   **_label_columns(inc.labels)}),
        "number": pd.DataFrame({**arms, **_label_columns(states["number"].labels)}),
    }
    _assign_detail(frames, rng)
    out = {}
    for outcome, prefix in (("incidence", "I"), ("number", "N")):
        f = frames[outcome]
        if outcome == "incidence":
            effect = np.log((f["ai"] + 0.5) / (f["n1i"] + 1)) - np.log((f["ci"] + 0.5) / (f["n2i"] + 1))
        else:
            effect = pd.Series(_d_of({c: f[c].to_numpy(float) for c in arms}))
        order = np.lexsort((-effect.to_numpy(), f["msc_source"].to_numpy(), f["cancer_type"].to_numpy()))
        f = f.iloc[order].reset_index(drop=True)
        f.insert(0, "study", [f"Rebuilt {prefix}{i + 1:02d}" for i in range(len(f))])
        data_cols = ["ai", "n1i", "ci", "n2i"] if outcome == "incidence" else list(arms)
        cols = ["study", *data_cols, "cancer_type", "cancer_type_detail", *MODERATOR_COLUMNS[1:]]
        out[outcome] = f[cols]
    return out


def rebuild_li2018(seed: int = DEFAULT_SEED, budget: str | Budget = "default",
                   step: Step | None = None, numerics: str = "pinned") -> RebuildResult:
    """Rebuild the Li et al. (2018) data sets from the published tables.

    Parameters
    ----------
    seed
        Seed of every random choice; the same seed and budget give the same data bit for bit.
    budget
        ``"default"`` (the committed data sets; about 2-4 min on two cores), ``"quick"`` (~1 min,
        for tests) or a :class:`Budget`.
    step
        Called with a short description before each stage (the CLI shows it); no effect on the result.
    numerics
        ``"pinned"``: search in a fresh interpreter with the pinned numeric environment of
        :mod:`bayesmeta.rebuild.numerics`, so the result is the same on every x86-64 machine
        with the same package versions (the committed data were made so). ``"native"``: in this
        process with the CPU's fastest kernels; reproducible on this machine only.

    Returns
    -------
    RebuildResult
        The two frames (incidence: ``study, ai, n1i, ci, n2i``; number: ``study, m1i, sd1i, n1i,
        m2i, sd2i, n2i``; both with the moderator columns) and the fidelity table.
    """
    from bayesmeta.rebuild.numerics import run_pinned

    plan = BUDGETS[budget] if isinstance(budget, str) else budget
    if numerics == "pinned":
        return run_pinned(_rebuild, seed, plan, step=step)
    if numerics == "native":
        return _rebuild(seed, plan, step=step or (lambda _msg: None))
    raise ValueError(f"numerics must be 'pinned' or 'native', not {numerics!r}")


def _rebuild(seed: int, plan: Budget, *, step: Step) -> RebuildResult:
    """:func:`rebuild_li2018` in the current process."""
    from bayesmeta.rebuild.fidelity import fidelity_table

    start = time.perf_counter()
    states = _search(seed, plan, step)
    rng = np.random.default_rng([seed, 1])
    step("means and SDs with two decimals")
    pol = _polishers()
    _aim_at_funnels(pol, FUNNEL_KEEP)
    pol["number"].sync(states["incidence"].labels)
    arms = _polish_digits(pol["number"], _realise_number(states["number"], rng), states["number"].labels)
    frames = _frames(states, arms, rng)
    seconds = time.perf_counter() - start
    return RebuildResult(frames["incidence"], frames["number"], fidelity_table(frames["incidence"], frames["number"]),
                         seed, plan, seconds)
