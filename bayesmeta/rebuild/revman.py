"""RevMan 5 conventions, written out plainly: the reference the rebuilt data are scored with.

Li et al. (2018) analysed their data with Review Manager 5.2:

- risk ratio: ``log((a/n1)/(c/n2))`` with variance ``1/a - 1/n1 + 1/c - 1/n2``; a comparison with
  no event in one arm gets 0.5 added to every cell (``a, b, c, d``, so ``n1`` and ``n2`` grow by 1);
  comparisons with no event in either arm are left out;
- standardised mean difference: Hedges' adjusted g, ``g = J (m1 - m2) / s_pooled`` with
  ``J = 1 - 3 / (4N - 9)`` and variance ``N / (n1 n2) + g² / (2 (N - 3.94))``;
- inverse-variance DerSimonian-Laird random effects, 95% CI ``estimate ± 1.96 se``;
  I² = ``(Q - df) / Q`` truncated at 0;
- subgroups: each subgroup pooled with its own tau²; a subgroup's weight is its comparisons' share
  of the weights of the *overall* random-effects model; the test for subgroup differences is
  ``Q = Σ (est_j - est_FE)² / se_j²`` over the subgroup estimates, df = subgroups - 1,
  I² = ``(Q - df) / Q``.

These functions are the package-independent reference used by :mod:`bayesmeta.rebuild.fidelity`
and by the tests that compare it with ``bayesmeta.effects`` / ``bayesmeta.frequentist``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc, ndtri

__all__ = [
    "Z95",
    "PooledResult",
    "BetweenResult",
    "rr_revman",
    "smd_revman",
    "dl_pool",
    "re_weights",
    "between_test",
]

#: Two-sided 95% normal quantile.
Z95 = float(ndtri(0.975))


@dataclass(frozen=True)
class PooledResult:
    """DerSimonian-Laird random-effects result on the analysis scale."""

    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    tau2: float
    q: float
    i2: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-able form."""
        return {name: (int(v) if name == "k" else float(v)) for name, v in self.__dict__.items()}


@dataclass(frozen=True)
class BetweenResult:
    """Test for subgroup differences (RevMan): Q over subgroup estimates."""

    q: float
    df: int
    pval: float
    i2: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-able form."""
        return {"q": float(self.q), "df": int(self.df), "pval": float(self.pval), "i2": float(self.i2)}


def rr_revman(ai, n1i, ci, n2i) -> tuple[np.ndarray, np.ndarray]:
    """Log risk ratio and its variance with RevMan's 0.5 correction.

    Parameters
    ----------
    ai, n1i, ci, n2i
        Events and animals in the MSC arm (1) and the control arm (2).

    Returns
    -------
    yi, vi
        Log RR and variance; NaN for comparisons without events in either arm.
    """
    a, n1, c, n2 = (np.asarray(x, dtype=float) for x in (ai, n1i, ci, n2i))
    zero = (a == 0) | (c == 0) | (a == n1) | (c == n2)
    add = np.where(zero, 0.5, 0.0)
    a2, c2, n12, n22 = a + add, c + add, n1 + 2 * add, n2 + 2 * add
    yi = np.log(a2 / n12) - np.log(c2 / n22)
    vi = 1 / a2 - 1 / n12 + 1 / c2 - 1 / n22
    both = (a == 0) & (c == 0)
    return np.where(both, np.nan, yi), np.where(both, np.nan, vi)


def smd_revman(m1i, sd1i, n1i, m2i, sd2i, n2i) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' adjusted g and its variance as RevMan 5 computes them.

    Returns
    -------
    yi, vi
        g and ``N / (n1 n2) + g² / (2 (N - 3.94))``.
    """
    m1, s1, n1, m2, s2, n2 = (np.asarray(x, dtype=float) for x in (m1i, sd1i, n1i, m2i, sd2i, n2i))
    big_n = n1 + n2
    sp = np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (big_n - 2))
    g = (m1 - m2) / sp * (1 - 3 / (4 * big_n - 9))
    return g, big_n / (n1 * n2) + g**2 / (2 * (big_n - 3.94))


def dl_pool(yi, vi) -> PooledResult:
    """Inverse-variance DerSimonian-Laird random-effects pooling (RevMan).

    Parameters
    ----------
    yi, vi
        Effects on the analysis scale and their variances (NaN rows are left out).
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    keep = np.isfinite(y) & np.isfinite(v)
    y, v = y[keep], v[keep]
    k = int(y.size)
    w = 1 / v
    fe = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fe) ** 2))
    df = k - 1
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - df) / c) if k > 1 else 0.0
    i2 = max(0.0, (q - df) / q) * 100 if (k > 1 and q > 0) else 0.0
    ws = 1 / (v + tau2)
    est = float(np.sum(ws * y) / np.sum(ws))
    se = float(np.sqrt(1 / np.sum(ws)))
    return PooledResult(k, est, se, est - Z95 * se, est + Z95 * se, tau2, q, i2)


def re_weights(vi, tau2: float) -> np.ndarray:
    """Random-effects weights ``1 / (v + tau²)``; rows with NaN variance get weight 0."""
    v = np.asarray(vi, dtype=float)
    finite = np.isfinite(v)
    return np.where(finite, 1 / (np.where(finite, v, 1.0) + tau2), 0.0)


def between_test(estimates, ses) -> BetweenResult:
    """RevMan's test for subgroup differences on the subgroup estimates.

    Parameters
    ----------
    estimates, ses
        One estimate (analysis scale) and standard error per non-empty subgroup.
    """
    est = np.asarray(estimates, dtype=float)
    w = 1 / np.asarray(ses, dtype=float) ** 2
    fe = np.sum(w * est) / np.sum(w)
    q = float(np.sum(w * (est - fe) ** 2))
    df = int(est.size - 1)
    pval = float(chdtrc(df, q)) if df > 0 else float("nan")
    i2 = max(0.0, (q - df) / q) * 100 if q > 0 else 0.0
    return BetweenResult(q, df, pval, i2)
