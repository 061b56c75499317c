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
and handed to the discrete polish of :mod:`.search`.

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
    """One outcome's relaxed problem: its layout, targets and totals."""

    outcome: str
    layout: eng.Layout
    targets: eng.Targets
    hard: np.ndarray
    animals: int

    @property
    def k(self) -> int:
        """Number of comparisons."""
        return self.layout.k


def _constants(spec: RelaxSpec) -> dict[str, np.ndarray]:
    lay, tg = spec.layout, spec.targets
    m_count = len(lay.mods)
    width = max(len(v) for v in MODERATORS.values())
    allowed = np.zeros((m_count, width), bool)
    forbid = np.zeros((m_count, width), bool)
    for m in range(m_count):
        allowed[m, lay.allowed[m]] = True
        forbid[m, lay.allowed[m]] = True
        forbid[m, lay.breast_allowed[m]] = False
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
    }


def relax(specs: dict[str, RelaxSpec], table1: list[tuple[int, int, int]], *, restarts: int, steps: int,
          seed: int, keep: int = 3) -> list[dict[str, dict[str, np.ndarray]]]:
    """Optimise the relaxed problem of all outcomes jointly from many random starts.

    Parameters
    ----------
    specs
        ``{"incidence": RelaxSpec, "number": RelaxSpec}``.
    table1
        Table 1 constraints ``(moderator index, level code, count)``: incidence + number comparisons
        at the level should equal the count.
    restarts, steps
        Random starts (optimised together) and Adam steps per start.
    seed
        Seed of the random starts.
    keep
        How many of the best starts to return.

    Returns
    -------
    list
        For each kept start, ``{outcome: {"g" or ("p1", "p2"), "n1", "n2", "labels_p"}}`` as NumPy
        arrays: continuous effects and arm sizes, and level probabilities ``(K, M, L)``.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import erfc

    consts = {o: jax.tree.map(jnp.asarray, _constants(s)) for o, s in specs.items()}
    t1_mod = jnp.asarray([t[0] for t in table1])
    t1_lev = jnp.asarray([t[1] for t in table1])
    t1_cnt = jnp.asarray([t[2] for t in table1], jnp.float32)
    m_count = len(MODERATORS)
    width = max(len(v) for v in MODERATORS.values())

    def softplus(x, beta):
        return jax.nn.softplus(beta * x) / beta

    def pool(c, y, v, member):
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

    def outcome_loss(c, outcome, prm, temp):
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
        breast = prob[:, specs[outcome].layout.cancer_index, 0]
        member = prob[:, c["row_mod"], c["row_lev"]].T             # (R, K)
        member = jnp.where(c["row_all"][:, None], 1.0, member)
        member = jnp.where(c["row_breast"][:, None], member * breast[None], member)
        est, se, i2, wpct, pb, i2b = pool(c, y, v, member)
        lo, hi = est - Z95 * se, est + Z95 * se
        if outcome == "incidence":
            est, lo, hi = jnp.exp(est), jnp.exp(lo), jnp.exp(hi)
        rows = jnp.stack([wpct, est, lo, hi, i2])[c["row_q"], c["row_idx"]]
        blks = jnp.stack([pb, i2b])[c["blk_q"], c["blk_idx"]]
        r = (rows - c["row_val"]) / c["row_unit"]
        rb = (blks - c["blk_val"]) / c["blk_unit"]
        soft = jnp.where(c["hard"], HARD_W * r**2, c["row_wt"] * jnp.log1p((r / SOFT_C) ** 2)).sum()
        soft += (c["blk_wt"] * jnp.log1p((rb / SOFT_C) ** 2)).sum()
        soft += BREAST_W * (breast[:, None, None] * prob * c["forbid"][None]).sum()
        soft += TOTAL_W * ((n1 + n2).sum() - specs[outcome].animals) ** 2
        counts = prob.sum(0)                                      # (M, L)
        return soft, counts

    def total_loss(prm, temp):
        total = 0.0
        counts = 0.0
        for outcome in specs:
            part, cnt = outcome_loss(consts[outcome], outcome, prm[outcome], temp)
            total = total + part
            counts = counts + cnt
        if table1:
            total = total + TABLE1_W * ((counts[t1_mod, t1_lev] - t1_cnt) ** 2).sum()
        return total

    def init(key):
        out = {}
        for outcome, spec in specs.items():
            key, *ks = jax.random.split(key, 6)
            prm = {"zn1": jax.random.normal(ks[0], (spec.k,)) * 0.5 - 0.3,
                   "zn2": jax.random.normal(ks[1], (spec.k,)) * 0.5 - 0.3,
                   "th": jax.random.normal(ks[2], (spec.k, m_count, width))}
            if outcome == "number":
                prm["zg"] = jax.random.normal(ks[3], (spec.k,)) * 0.7 - 0.3
            else:
                prm["zp1"] = jax.random.normal(ks[3], (spec.k,)) * 0.7 + 0.3
                prm["zp2"] = jax.random.normal(ks[4], (spec.k,)) * 0.7 - 0.8
            out[outcome] = prm
        return out

    temps = jnp.geomspace(1.0, 0.03, steps).astype(jnp.float32)
    value_grad = jax.value_and_grad(total_loss)

    def adam(prm):
        b1, b2, lr = 0.9, 0.999, 0.05
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
    final = np.asarray(final)
    order = np.argsort(np.where(np.isfinite(final), final, np.inf), kind="stable")[:keep]
    out = []
    for j in order:
        sol = {}
        for outcome in specs:
            prm = {name: np.asarray(a[j], dtype=float) for name, a in params[outcome].items()}
            res = {"n1": N_LO + (N_HI - N_LO) * _sigmoid(prm["zn1"]),
                   "n2": N_LO + (N_HI - N_LO) * _sigmoid(prm["zn2"]),
                   "logits": prm["th"], "loss": float(final[j])}
            if outcome == "number":
                res["g"] = G_LO + (G_HI - G_LO) * _sigmoid(prm["zg"])
            else:
                res["p1"] = P_LO + (P_HI - P_LO) * _sigmoid(prm["zp1"])
                res["p2"] = P_LO + (P_HI - P_LO) * _sigmoid(prm["zp2"])
            sol[outcome] = res
        out.append(sol)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
