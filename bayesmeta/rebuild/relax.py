"""Continuous relaxation of the rebuild, solved by gradient descent in JAX (private).

Searching integer arm data and moderator labels directly gets stuck: a printed subgroup row is
often reproducible only when several comparisons change label and effect together. The
relaxation makes every choice continuous and differentiable:

- each comparison's moderator level is a softmax over its allowed levels (``temperature`` is
  lowered from 1 to ~0 so that the memberships end up one-hot);
- a subgroup row pools all comparisons with their (fractional) membership as a multiplier, with
  the RevMan formulas of :mod:`._engine` written in JAX (``max(0, x)`` becomes a sharp softplus);
- Hedges' g (number outcome) or the arms' event risks (incidence) and the arm sizes are bounded
  reals (a sigmoid of free parameters).

The loss is a robust (Cauchy) sum over the printed cells in rounding units, plus penalties for
the headline rows, Table 1 counts, animal totals and Table 4's empty breast-cancer levels. Many
random starts are optimised at once (``vmap``) with Adam; the best few are rounded to integers
and handed to the discrete polish of :mod:`.search`. Comparisons already decided (the number
outcome's breast-cancer subset, built first) can be held fixed while the others are relaxed.

JAX is a dependency of numpyro, which the package already requires; it is imported lazily and
runs in float32 (the relaxation only needs to land near a good discrete solution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmeta.rebuild import _engine as eng
from bayesmeta.rebuild.published import MODERATORS
from bayesmeta.rebuild.revman import Z95

__all__ = ["RelaxSpec", "relax"]

N_LO, N_HI = 4.0, 15.0       # animals per arm
G_LO, G_HI = -8.0, 12.0      # Hedges' g of one comparison
P_LO, P_HI = 0.04, 0.93      # risk of metastasis in one arm (incidence)
SOFT_C = 2.0                 # Cauchy scale of the cell loss, in rounding units
HARD_W = 5.0                 # quadratic weight of headline cells (per squared unit)
BREAST_W = 50.0              # penalty on breast comparisons at levels Table 4 leaves empty
TOTAL_W = 0.5                # quadratic penalty per animal off the published total
TABLE1_W = 0.5               # quadratic penalty per comparison off a Table 1 count


@dataclass(frozen=True)
class RelaxSpec:
    """One outcome's relaxed problem: its layout, targets and totals.

    Attributes
    ----------
    outcome, layout, targets, hard
        The outcome, its rows, the aligned published cells and the headline mask.
    animals
        Published animal total of the comparisons, or ``None`` for no total.
    fixed
        Comparisons held fixed (the first ones): ``{"y", "v", "labels" (M, Kf), "animals"}``.
    free_allowed
        Allowed level codes per moderator for the free comparisons (default: the layout's).
    """

    outcome: str
    layout: eng.Layout
    targets: eng.Targets
    hard: np.ndarray
    animals: int | None
    fixed: dict | None = None
    free_allowed: tuple[np.ndarray, ...] | None = None

    @property
    def k(self) -> int:
        """Number of comparisons."""
        return self.layout.k

    @property
    def k_free(self) -> int:
        """Number of comparisons the relaxation chooses."""
        return self.k - (0 if self.fixed is None else self.fixed["labels"].shape[1])


TEMP_END = 0.003             # final softmax temperature: memberships practically one-hot
LEARNING_RATE = 0.03         # Adam step size


def _constants(spec: RelaxSpec) -> dict[str, np.ndarray]:
    lay, tg = spec.layout, spec.targets
    m_count = len(lay.mods)
    width = max(len(v) for v in MODERATORS.values())
    allowed = np.zeros((m_count, width), bool)
    forbid = np.zeros((m_count, width), bool)
    free_allowed = spec.free_allowed or lay.allowed
    for m in range(m_count):
        allowed[m, free_allowed[m]] = True
        forbid[m, lay.allowed[m]] = True
        forbid[m, lay.breast_allowed[m]] = False
    out_fixed = {}
    if spec.fixed is not None:
        labels = spec.fixed["labels"]
        onehot = np.zeros((labels.shape[1], m_count, width), np.float32)
        for m in range(m_count):
            onehot[np.arange(labels.shape[1]), m, labels[m]] = 1.0
        out_fixed = {"fixed_y": np.asarray(spec.fixed["y"], np.float32),
                     "fixed_v": np.asarray(spec.fixed["v"], np.float32), "fixed_prob": onehot,
                     "fixed_animals": np.float32(spec.fixed["animals"])}
    onehot = lay.extra["onehot"]
    sel = lay.extra["sel"]
    full_onehot = np.zeros((lay.n_rows, onehot.shape[1]), np.float32)
    full_onehot[sel] = onehot
    return {
        "allowed": allowed, "forbid": forbid,
        "row_mod": np.where(lay.row_mod == m_count, 0, lay.row_mod), "row_all": lay.row_mod == m_count,
        "row_lev": lay.row_lev, "row_breast": lay.row_breast, "row_parent": lay.row_parent,
        "onehot": full_onehot, "dfb": full_onehot.sum(0) - 1,
        "row_idx": tg.row_idx, "row_q": tg.row_q, "row_val": tg.row_val.astype(np.float32),
        "row_unit": tg.row_unit.astype(np.float32), "row_wt": tg.row_wt.astype(np.float32),
        "hard": spec.hard, "blk_idx": tg.blk_idx, "blk_q": tg.blk_q,
        "blk_val": tg.blk_val.astype(np.float32), "blk_unit": tg.blk_unit.astype(np.float32),
        "blk_wt": tg.blk_wt.astype(np.float32),
        **out_fixed,
    }


def relax(spec: RelaxSpec, table1: list[tuple[int, int, float]], *, restarts: int, steps: int, seed: int,
          keep: int = 3, temp_end: float = TEMP_END, soft_c: float = SOFT_C,
          lr: float = LEARNING_RATE) -> list[dict[str, np.ndarray]]:
    """Optimise one outcome's relaxed problem from many random starts at once.

    Parameters
    ----------
    spec
        The outcome's layout, targets, headline mask and animal total.
    table1
        Table 1 constraints ``(moderator index, level code, count)`` for this outcome: the
        (fractional) number of its comparisons at the level should equal ``count``.
    restarts, steps
        Random starts (optimised together) and Adam steps per start.
    seed
        Seed of the random starts.
    keep
        How many of the best starts to return.
    temp_end, soft_c, lr
        Final softmax temperature (from 1, geometric), Cauchy scale of the cell loss (rounding
        units) and Adam's learning rate.

    Returns
    -------
    list
        The ``keep`` best starts, best first, each ``{"g" or ("p1", "p2"), "n1", "n2", "logits",
        "loss", "start"}`` with NumPy arrays: continuous effects, arm sizes and level logits
        ``(K, M, L)``.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import erfc

    c = jax.tree.map(jnp.asarray, _constants(spec))
    outcome = spec.outcome
    t1_mod = jnp.asarray([t[0] for t in table1])
    t1_lev = jnp.asarray([t[1] for t in table1])
    t1_cnt = jnp.asarray([t[2] for t in table1], jnp.float32)
    m_count = len(MODERATORS)
    width = max(len(v) for v in MODERATORS.values())

    def softplus(x, beta):
        return jax.nn.softplus(beta * x) / beta

    def pool(y, v, member):
        """RevMan DL pooling of every row with fractional membership (R, K)."""
        w = 1.0 / v
        k = member.sum(1) + 1e-6
        sw = member @ w
        swy = member @ (w * y)
        q = member @ (w * y * y) - swy**2 / sw
        df = k - 1
        cc = sw - (member @ (w * w)) / sw
        tau2 = softplus((q - df) / cc, 20.0)
        i2 = 100 * softplus((q - df) / q, 50.0)
        wre = member / (v[None] + tau2[:, None])
        sre = wre.sum(1)
        est = (wre @ y) / sre
        se = 1 / jnp.sqrt(sre)
        wpar = (member / (v[None] + tau2[c["row_parent"]][:, None])).sum(1)
        wpct = 100 * wpar / sre[c["row_parent"]]
        wj = 1 / se**2
        oh = c["onehot"]
        fe = ((wj * est) @ oh) / (wj @ oh)
        inblk = oh.sum(1)
        qb = ((wj * (est - fe[jnp.argmax(oh, 1)]) ** 2) * inblk) @ oh
        dfb = c["dfb"]
        half = jnp.sqrt(qb / 2)
        e = jnp.exp(-qb / 2)
        pb = jnp.where(dfb == 1, erfc(half), jnp.where(dfb == 2, e, erfc(half) + jnp.sqrt(2 * qb / jnp.pi) * e))
        i2b = 100 * softplus((qb - dfb) / qb, 50.0)
        return est, se, i2, wpct, pb, i2b

    def outcome_loss(prm, temp):
        """Relaxed loss of one start, and its soft level counts (M, L)."""
        n1 = N_LO + (N_HI - N_LO) * jax.nn.sigmoid(prm["zn1"])
        n2 = N_LO + (N_HI - N_LO) * jax.nn.sigmoid(prm["zn2"])
        if outcome == "number":
            g = G_LO + (G_HI - G_LO) * jax.nn.sigmoid(prm["zg"])
            big = n1 + n2
            y, v = g, big / (n1 * n2) + g * g / (2 * (big - 3.94))
        else:
            p1 = P_LO + (P_HI - P_LO) * jax.nn.sigmoid(prm["zp1"])
            p2 = P_LO + (P_HI - P_LO) * jax.nn.sigmoid(prm["zp2"])
            y = jnp.log(p1) - jnp.log(p2)
            v = (1 - p1) / (p1 * n1) + (1 - p2) / (p2 * n2)
        logits = jnp.where(c["allowed"][None], prm["th"] / temp, -1e9)
        prob = jax.nn.softmax(logits, -1)                         # (K, M, L)
        animals = (n1 + n2).sum()
        if spec.fixed is not None:
            y = jnp.concatenate([c["fixed_y"], y])
            v = jnp.concatenate([c["fixed_v"], v])
            prob = jnp.concatenate([c["fixed_prob"], prob])
            animals = animals + c["fixed_animals"]
        breast = prob[:, spec.layout.cancer_index, 0]
        member = prob[:, c["row_mod"], c["row_lev"]].T             # (R, K)
        member = jnp.where(c["row_all"][:, None], 1.0, member)
        member = jnp.where(c["row_breast"][:, None], member * breast[None], member)
        est, se, i2, wpct, pb, i2b = pool(y, v, member)
        lo, hi = est - Z95 * se, est + Z95 * se
        if outcome == "incidence":
            est, lo, hi = jnp.exp(est), jnp.exp(lo), jnp.exp(hi)
        rows = jnp.stack([wpct, est, lo, hi, i2])[c["row_q"], c["row_idx"]]
        blks = jnp.stack([pb, i2b])[c["blk_q"], c["blk_idx"]]
        r = (rows - c["row_val"]) / c["row_unit"]
        rb = (blks - c["blk_val"]) / c["blk_unit"]
        soft = jnp.where(c["hard"], HARD_W * r**2, c["row_wt"] * jnp.log1p((r / soft_c) ** 2)).sum()
        soft += (c["blk_wt"] * jnp.log1p((rb / soft_c) ** 2)).sum()
        soft += BREAST_W * (breast[:, None, None] * prob * c["forbid"][None]).sum()
        if spec.animals is not None:
            soft += TOTAL_W * (animals - spec.animals) ** 2
        counts = prob.sum(0)                                      # (M, L)
        return soft, counts

    def total_loss(prm, temp):
        loss, counts = outcome_loss(prm, temp)
        if table1:
            loss = loss + TABLE1_W * ((counts[t1_mod, t1_lev] - t1_cnt) ** 2).sum()
        return loss

    def init(key):
        ks = jax.random.split(key, 5)
        k = spec.k_free
        prm = {"zn1": jax.random.normal(ks[0], (k,)) * 0.5 - 0.3,
               "zn2": jax.random.normal(ks[1], (k,)) * 0.5 - 0.3,
               "th": jax.random.normal(ks[2], (k, m_count, width))}
        if spec.outcome == "number":
            prm["zg"] = jax.random.normal(ks[3], (k,)) * 0.7 - 0.3
        else:
            prm["zp1"] = jax.random.normal(ks[3], (k,)) * 0.7 + 0.3
            prm["zp2"] = jax.random.normal(ks[4], (k,)) * 0.7 - 0.8
        return prm

    temps = jnp.geomspace(1.0, temp_end, steps).astype(jnp.float32)
    value_grad = jax.value_and_grad(total_loss)

    def adam(prm):
        b1, b2 = 0.9, 0.999
        zeros = jax.tree.map(jnp.zeros_like, prm)

        def body(carry, xs):
            p, m, s = carry
            t, temp = xs
            loss, grad = value_grad(p, temp)
            m = jax.tree.map(lambda a, b: b1 * a + (1 - b1) * b, m, grad)
            s = jax.tree.map(lambda a, b: b2 * a + (1 - b2) * b * b, s, grad)
            p = jax.tree.map(lambda q, a, b: q - lr * (a / (1 - b1**t)) / (jnp.sqrt(b / (1 - b2**t)) + 1e-8),
                             p, m, s)
            return (p, m, s), loss

        (p, _, _), losses = jax.lax.scan(body, (prm, zeros, zeros),
                                         (jnp.arange(1, steps + 1, dtype=jnp.float32), temps))
        return p, losses[-1]

    keys = jax.random.split(jax.random.PRNGKey(seed), restarts)
    params, final = jax.jit(jax.vmap(adam))(jax.vmap(init)(keys))
    final = np.asarray(final, dtype=float)
    order = np.argsort(np.where(np.isfinite(final), final, np.inf), kind="stable")[:keep]
    out = []
    for j in order:
        prm = {name: np.asarray(a[j], dtype=float) for name, a in params.items()}
        res = {"n1": N_LO + (N_HI - N_LO) * _sigmoid(prm["zn1"]), "n2": N_LO + (N_HI - N_LO) * _sigmoid(prm["zn2"]),
               "logits": prm["th"], "loss": float(final[j]), "start": int(j)}
        if spec.outcome == "number":
            res["g"] = G_LO + (G_HI - G_LO) * _sigmoid(prm["zg"])
        else:
            res["p1"] = P_LO + (P_HI - P_LO) * _sigmoid(prm["zp1"])
            res["p2"] = P_LO + (P_HI - P_LO) * _sigmoid(prm["zp2"])
        out.append(res)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
