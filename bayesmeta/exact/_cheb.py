"""Adaptive piecewise-Chebyshev representation of a positive 1-D density.

The marginal posterior of ``u = log tau`` is represented on panels ``[lo_p, hi_p]``; on each
panel the (scaled) density is interpolated at ``n`` Chebyshev points of the first kind. Panels
are halved until the last Chebyshev coefficients are below ``tol`` (relative to the density's
maximum), so the interpolant is accurate to about ``tol`` everywhere. From the coefficients we
get, exactly for the interpolant:

* the integral (normalising constant) and a Fejér quadrature rule (nodes and weights) for
  expectations ``E[g(u)]``;
* the cumulative distribution function (antiderivative per panel) and its inverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C

__all__ = ["PiecewiseCheb", "build_piecewise_cheb"]

N_NODES = 20  # Chebyshev points per panel
_K = np.arange(N_NODES)
_X = np.cos(np.pi * (_K + 0.5) / N_NODES)  # nodes on [-1, 1] (descending)
_T = np.cos(np.outer(np.arange(N_NODES), np.pi * (_K + 0.5) / N_NODES))  # T_j(x_k)
_FIT = (2.0 / N_NODES) * _T  # coefficients c = _FIT @ f, with c_0 halved below
_FIT[0] *= 0.5
_J = np.arange(N_NODES)
_INT_T = np.zeros(N_NODES)  # ∫_{-1}^{1} T_j = 2 / (1 - j²) for even j, 0 for odd j
_INT_T[::2] = 2.0 / (1.0 - _J[::2].astype(float) ** 2)
_FEJER = _INT_T @ _FIT  # quadrature weights on [-1, 1]


@dataclass(frozen=True)
class PiecewiseCheb:
    """Panels, interpolation coefficients and derived quadrature of a scaled density ``f(u)``.

    ``f(u) = exp(logf(u) - log_scale)``; ``total`` is ``∫ f`` (so the normalising constant of
    ``exp(logf)`` is ``exp(log_scale) * total``).
    """

    lo: np.ndarray  # (P,)
    hi: np.ndarray  # (P,)
    coef: np.ndarray  # (P, n) Chebyshev coefficients of f on each panel
    anti: np.ndarray  # (P, n + 1) antiderivative coefficients (zero at the panel's left end)
    cum: np.ndarray  # (P + 1,) integral of f up to each panel edge
    nodes: np.ndarray  # (P * n,) quadrature nodes in u
    fvals: np.ndarray  # (P * n,) f at the nodes (exact evaluations)
    qweights: np.ndarray  # (P * n,) Fejér weights (including the half-width)
    log_scale: float

    @property
    def total(self) -> float:
        """``∫ f(u) du`` over all panels."""
        return float(self.cum[-1])

    @property
    def a(self) -> float:
        return float(self.lo[0])

    @property
    def b(self) -> float:
        return float(self.hi[-1])

    def integral_below(self, u: np.ndarray) -> np.ndarray:
        """``∫_a^u f`` for each ``u`` (0 below the first panel, ``total`` above the last)."""
        u = np.asarray(u, dtype=float)
        flat = u.ravel()
        idx = np.clip(np.searchsorted(self.hi, flat, side="left"), 0, len(self.hi) - 1)
        lo, hi = self.lo[idx], self.hi[idx]
        t = np.clip((2.0 * flat - lo - hi) / (hi - lo), -1.0, 1.0)
        within = C.chebval(t, self.anti[idx].T, tensor=False) * 0.5 * (hi - lo)
        out = self.cum[idx] + within
        out = np.where(flat <= self.a, 0.0, np.where(flat >= self.b, self.total, out))
        return np.clip(out, 0.0, self.total).reshape(u.shape)

    def inverse(self, mass: np.ndarray) -> np.ndarray:
        """``u`` with ``∫_a^u f = mass`` (vectorised bisection inside the located panel)."""
        mass = np.clip(np.asarray(mass, dtype=float), 0.0, self.total)
        flat = mass.ravel()
        idx = np.clip(np.searchsorted(self.cum, flat, side="right") - 1, 0, len(self.lo) - 1)
        target = (flat - self.cum[idx]) / (0.5 * (self.hi[idx] - self.lo[idx]))
        coef = self.anti[idx].T
        dcoef = self.coef[idx].T  # derivative of the antiderivative in t (times 2/width)
        left = np.full(flat.shape, -1.0)
        right = np.ones(flat.shape)
        for _ in range(12):  # bisection to 2^-12 of the panel, then safeguarded Newton
            mid = 0.5 * (left + right)
            below = C.chebval(mid, coef, tensor=False) < target
            left = np.where(below, mid, left)
            right = np.where(below, right, mid)
        t = 0.5 * (left + right)
        for _ in range(6):
            g = C.chebval(t, coef, tensor=False) - target
            d = C.chebval(t, dcoef, tensor=False)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(d > 0, g / d, 0.0)
            t = np.clip(t - step, left, right)
        u = self.lo[idx] + 0.5 * (t + 1.0) * (self.hi[idx] - self.lo[idx])
        return u.reshape(mass.shape)


def _panel_values(logf: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
                  log_scale: float) -> np.ndarray:
    u = 0.5 * (lo + hi)[:, None] + 0.5 * (hi - lo)[:, None] * _X[None, :]
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(np.asarray(logf(u.ravel()), dtype=float).reshape(u.shape) - log_scale)


def build_piecewise_cheb(
    logf: Callable[[np.ndarray], np.ndarray],
    edges: np.ndarray,
    log_scale: float,
    *,
    tol: float = 1e-13,
    max_panels: int = 20000,
) -> PiecewiseCheb:
    """Adaptively split the initial panels ``edges`` until ``exp(logf - log_scale)`` is resolved.

    Parameters
    ----------
    logf
        Vectorised log density (unnormalised) of ``u``.
    edges
        Increasing initial panel edges; the first and last are the integration limits.
    log_scale
        Roughly the maximum of ``logf`` (so the scaled density peaks near 1).
    tol
        Largest allowed magnitude of the last three Chebyshev coefficients on a panel.
    """
    edges = np.unique(np.asarray(edges, dtype=float))
    lo, hi = edges[:-1], edges[1:]
    done_lo, done_hi, done_f = [], [], []
    while lo.size:
        f = _panel_values(logf, lo, hi, log_scale)
        coef = f @ _FIT.T
        tail = np.abs(coef[:, -3:]).max(axis=1)
        ok = (tail <= tol) | ((hi - lo) < 1e-9 * np.maximum(1.0, np.abs(lo)))
        done_lo.append(lo[ok])
        done_hi.append(hi[ok])
        done_f.append(f[ok])
        lo, hi = lo[~ok], hi[~ok]
        mid = 0.5 * (lo + hi)
        lo, hi = np.concatenate([lo, mid]), np.concatenate([mid, hi])
        if sum(len(x) for x in done_lo) + lo.size > max_panels:
            raise RuntimeError("the posterior density of tau could not be resolved "
                               f"with {max_panels} panels")
    lo = np.concatenate(done_lo)
    hi = np.concatenate(done_hi)
    f = np.concatenate(done_f)
    order = np.argsort(lo)
    lo, hi, f = lo[order], hi[order], f[order]
    coef = f @ _FIT.T
    half = 0.5 * (hi - lo)
    anti = C.chebint(coef.T, lbnd=-1.0).T  # antiderivative in t, zero at t = -1
    panel_int = C.chebval(1.0, anti.T) * half
    cum = np.concatenate([[0.0], np.cumsum(panel_int)])
    nodes = (0.5 * (lo + hi)[:, None] + half[:, None] * _X[None, :]).ravel()
    qweights = (half[:, None] * _FEJER[None, :]).ravel()
    return PiecewiseCheb(lo=lo, hi=hi, coef=coef, anti=anti, cum=cum, nodes=nodes,
                         fvals=f.ravel(), qweights=qweights, log_scale=float(log_scale))
