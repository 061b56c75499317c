"""One-dimensional marginal posteriors used by the exact engine.

* :class:`TauMarginal`: tau (and monotone transforms of it: tau², I²) from the piecewise
  Chebyshev representation of ``p(log tau | y)``.
* :class:`NormalMixture`: mu, a new study's effect and the study-specific effects, each a
  mixture of the conditional normals ``p(. | tau, y)`` over the quadrature rule in ``log tau``.

Both expose ``pdf``, ``cdf``, ``ppf``, ``mean``, ``sd``, ``median``, ``mode`` and
``interval(level, kind)`` with ``kind`` ``"central"`` or ``"shortest"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from bayesmeta.exact._cheb import PiecewiseCheb

__all__ = ["NormalMixture", "TauMarginal", "Marginal"]

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
XTOL = 1e-12  # relative root-finding tolerance for quantiles


class Marginal:
    """Shared summaries of a continuous 1-D distribution (subclasses give pdf/cdf/ppf/moments)."""

    lower: float = -math.inf

    def pdf(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def cdf(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def ppf(self, p):  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def mean(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def sd(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def median(self) -> float:
        return float(self.ppf(0.5))

    def interval(self, level: float = 0.95, kind: str = "central") -> tuple[float, float]:
        """Central (equal-tailed) or shortest interval with probability ``level``."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        if kind == "central":
            lo, hi = self.ppf(np.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0]))
            return float(lo), float(hi)
        if kind != "shortest":
            raise ValueError(f"kind must be 'central' or 'shortest', got {kind!r}")
        alpha = 1.0 - level

        def width(a: float) -> float:
            lo, hi = self.ppf(np.array([a, a + level]))
            return float(hi - lo)

        res = optimize.minimize_scalar(width, bounds=(0.0, alpha), method="bounded",
                                       options={"xatol": 1e-10 * alpha})
        best = min((0.0, res.x, alpha), key=width)
        lo, hi = self.ppf(np.array([best, best + level]))
        return float(lo), float(hi)

    def summary(self) -> dict[str, float]:
        """``{"median", "mean", "sd", "q025", "q975"}`` as floats."""
        q025, q50, q975 = (float(v) for v in self.ppf(np.array([0.025, 0.5, 0.975])))
        return {"median": q50, "mean": float(self.mean), "sd": float(self.sd),
                "q025": q025, "q975": q975}


@dataclass(frozen=True, eq=False)
class TauMarginal(Marginal):
    """Marginal posterior of ``g(tau)`` for a monotone increasing ``g`` (identity, tau², I²).

    ``log_post_tau(tau)`` is the normalised log density of tau; ``moments[r]`` holds ``E[g^r]``
    (r = 1, 2) computed by the engine (``inf`` where the integral diverges).
    """

    cheb: PiecewiseCheb
    log_post_tau: Callable[[np.ndarray], np.ndarray]
    to_x: Callable[[np.ndarray], np.ndarray]  # tau -> x
    to_tau: Callable[[np.ndarray], np.ndarray]  # x -> tau
    log_dtau_dx: Callable[[np.ndarray], np.ndarray]  # log |d tau / d x| at x
    moments: tuple[float, float]
    lower: float = 0.0
    upper: float = math.inf

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = self.to_tau(np.where(x > self.lower, x, np.nan))
            val = np.exp(self.log_post_tau(tau) + self.log_dtau_dx(x))
        return np.where(np.isfinite(val), val, 0.0)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.log(self.to_tau(np.maximum(x, self.lower)))
        u = np.where(x <= self.lower, -np.inf, u)
        return self.cheb.integral_below(u) / self.cheb.total

    def ppf(self, p):
        p = np.asarray(p, dtype=float)
        u = self.cheb.inverse(p * self.cheb.total)
        x = self.to_x(np.exp(u))
        return np.where(p <= 0.0, self.lower, np.where(p >= 1.0, self.upper, x))

    @property
    def mean(self) -> float:
        return float(self.moments[0])

    @property
    def sd(self) -> float:
        m1, m2 = self.moments
        if not (math.isfinite(m1) and math.isfinite(m2)):
            return math.inf
        return math.sqrt(max(m2 - m1 * m1, 0.0))

    def mode(self) -> float:
        """Posterior mode (the density is maximised on the quadrature grid, then refined)."""
        x = np.sort(self.to_x(np.exp(self.cheb.nodes)))
        dens = self.pdf(x)
        i = int(np.argmax(dens))
        if dens[0] >= dens[i] * (1.0 - 1e-9):
            return float(self.lower)  # density highest at the lower boundary (e.g. tau = 0)
        a, b = x[max(i - 1, 0)], x[min(i + 1, len(x) - 1)]
        res = optimize.minimize_scalar(lambda t: -float(self.pdf(t)), bounds=(a, b),
                                       method="bounded", options={"xatol": 1e-12 * max(1.0, abs(x[i]))})
        return float(res.x) if -res.fun >= dens[i] else float(x[i])


@dataclass(frozen=True, eq=False)
class NormalMixture(Marginal):
    """``sum_j w_j N(means_j, sds_j²)``; ``second_moment`` may carry a tail correction."""

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    first_moment: float
    second_moment: float

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        z = (x[..., None] - self.means) / self.sds
        dens = np.exp(-0.5 * z * z - _LOG_SQRT_2PI) / self.sds
        return dens @ self.weights

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        z = (x[..., None] - self.means) / self.sds
        return np.clip(special.ndtr(z) @ self.weights, 0.0, 1.0)

    def _scale(self) -> tuple[float, float]:
        """Centre and spread of the bulk (finite even when the moments are not)."""
        m = self.mean if math.isfinite(self.mean) else float(self.means @ self.weights)
        s = self.sd if math.isfinite(self.sd) else float(np.sqrt(self.weights @ self.sds**2))
        if not (math.isfinite(s) and s > 0.0):
            s = float(np.sqrt(self.weights @ np.minimum(self.sds, 1e150) ** 2)) or 1.0
        return m, s

    def _bracket(self, p: float) -> tuple[float, float]:
        m, s = self._scale()
        lo, hi = m - 10.0 * s, m + 10.0 * s
        for _ in range(200):
            if float(self.cdf(lo)) <= p:
                break
            lo = m - 2.0 * (m - lo)
        for _ in range(200):
            if float(self.cdf(hi)) >= p:
                break
            hi = m + 2.0 * (hi - m)
        return lo, hi

    def ppf(self, p):
        p_arr = np.asarray(p, dtype=float)
        out = np.empty(p_arr.shape)
        for idx, pi in np.ndenumerate(p_arr):
            if pi <= 0.0:
                out[idx] = -math.inf
            elif pi >= 1.0:
                out[idx] = math.inf
            else:
                lo, hi = self._bracket(float(pi))
                out[idx] = optimize.brentq(lambda x, q=float(pi): float(self.cdf(x)) - q, lo, hi,
                                           xtol=XTOL * self._scale()[1],
                                           rtol=4 * np.finfo(float).eps, maxiter=500)
        return out if out.ndim else out[()]

    @property
    def mean(self) -> float:
        return float(self.first_moment)

    @property
    def sd(self) -> float:
        if not math.isfinite(self.second_moment):
            return math.inf
        return math.sqrt(max(self.second_moment - self.first_moment**2, 0.0))

    def mode(self) -> float:
        """Posterior mode (maximise the mixture density around its median)."""
        lo, hi = self.ppf(np.array([0.05, 0.95]))
        grid = np.linspace(lo, hi, 201)
        i = int(np.argmax(self.pdf(grid)))
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, 200)]
        res = optimize.minimize_scalar(lambda t: -float(self.pdf(t)), bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-12 * max(1.0, abs(grid[i]))})
        return float(res.x)
