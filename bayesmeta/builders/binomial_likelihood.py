"""Per-study marginal likelihood of the binomial log-RR model, for PSIS-LOO.

For study ``i`` of :mod:`bayesmeta.builders.binomial` (counts ``ai/n1i``, ``ci/n2i``; larger arm
risk ``p_max ~ Beta(a, b)``; ``theta ~ N(eta_i, tau_i²)``)::

    log ∫∫ Bin(ai | n1i, p_t) Bin(ci | n2i, p_c) Beta(p_max | a, b) N(theta | eta_i, tau_i²)
           dp_max dtheta

per posterior draw of ``(eta_i, tau_i)``. Conditional on ``theta_i`` and ``p_max_i`` most studies
have Pareto k > 0.7, because those parameters are informed mainly by the study itself (Vehtari,
Gelman & Gabry 2017, Stat Comput 27:1413, Sect. 4); with them integrated out PSIS-LOO estimates
the predictive density of a left-out study.

NumPy and SciPy only (no PyMC): ``g(theta)``, the likelihood with ``p_max`` integrated out, by
Gauss quadrature of a polynomial in ``p`` (see :func:`log_study_likelihood`); then the normal
integral over ``theta`` by bracketed Gauss–Legendre rules on each side of the kink of ``g`` at
``theta = 0`` (see :func:`marginal_log_likelihood`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special, stats
import xarray as xr

__all__ = ["log_study_likelihood", "marginal_count_log_likelihood", "marginal_log_likelihood"]

DEFAULT_BASELINE = (1.0, 1.0)

#: Spacing of the table of ``log g_i`` in ``u = asinh(theta / delta)`` (see :class:`_LogGTable`);
#: cubic Hermite interpolation with exact derivatives has error ≤ h⁴/384 · max|d⁴ log g / du⁴|.
U_STEP = 0.004
#: ``delta`` as a fraction of the scale of ``log g``'s structure next to ``theta = 0``.
DELTA_FRACTION = 0.25
#: Beyond ``|theta| = 60`` ``log g_i`` is linear in ``theta`` to within ``e^-60``: extrapolated.
THETA_CAP = 60.0
#: ``theta = eta + tau z`` is integrated over ``|z| ≤ 12`` (the normal mass left out is
#: ``2 Φ(−12) ≈ 4e-33``).
Z_RANGE = 12.0
#: Spacing of the uniform grid of the coarse pass (bracketing only: its error, at most a few
#: nats next to ``theta = 0``, is far inside ``LEVEL_DROP``).
COARSE_STEP = 0.01
#: Coarse passes that bracket the integrand's mass: the first over ``|z| ≤ Z_RANGE``, each
#: next one over the previous bracket, ``BRACKET_POINTS`` points each.
BRACKET_POINTS = 33
BRACKET_ROUNDS = 2
#: The integrand below ``max − 40`` nats (a factor ``4e-18``) is left out of the bracket.
LEVEL_DROP = 40.0
#: Gauss–Legendre nodes on each of the three pieces of the bracket (split at the mode and at
#: ``theta = 0``, the kink of ``g_i``).
GL_NODES = 24
#: Draws integrated at once: the temporaries stay in the CPU cache (twice as fast as all 4000).
DRAW_CHUNK = 512
#: Gauss–Jacobi nodes at most (exact for arms with up to ``2 JACOBI_NODES − 1`` non-events on the
#: integrated side); larger arms use the windowed logit-scale rule of :func:`_window`.
JACOBI_NODES = 150
#: Mass of the integrand in ``p`` left out on each side by that window.
WINDOW_TAIL = 1e-25
#: Gauss–Legendre nodes per logit-scale standard deviation of the integrand in that window.
NODES_PER_SD = 8.0


def _beta_nodes(A: float, B: float, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log p`` and ``log(1 − p)`` of the nodes and the log-weights of a rule for ``E[f(p)]``,
    ``p ~ Beta(A, B)``, where ``f(p) = (1 − c p)^m`` with ``0 < c ≤ 1`` (``1 − p`` in logs:
    nodes of the windowed rule can lie closer to 1 than a double resolves).

    Up to ``m = 2 JACOBI_NODES − 1``: Gauss–Jacobi (Golub & Welsch 1969, via
    ``scipy.special.roots_jacobi``), exact for a polynomial of degree ``m``. Above (scipy's
    Jacobi roots lose accuracy for hundreds of nodes and large ``A``, ``B``): Gauss–Legendre in
    ``u = logit(p)`` over a window holding all but ``2 WINDOW_TAIL`` of the integrand's mass for
    every ``c`` (see :func:`_window`)."""
    if m < 2 * JACOBI_NODES:
        x, w = special.roots_jacobi(m // 2 + 1, B - 1.0, A - 1.0)
        return np.log1p(x) - np.log(2.0), np.log1p(-x) - np.log(2.0), np.log(w / w.sum())
    ulo, uhi, nodes = _window(A, B, m)
    gx, gw = special.roots_legendre(nodes)
    half = (uhi - ulo) / 2
    u = (uhi + ulo) / 2 + half * gx
    log_p, log_q = -np.logaddexp(0.0, -u), -np.logaddexp(0.0, u)  # log p, log(1 − p)
    # Beta(A, B) density in u: p^A (1 − p)^B / B(A, B)
    return log_p, log_q, np.log(half * gw) + A * log_p + B * log_q - special.betaln(A, B)


def _window(A: float, B: float, m: int) -> tuple[float, float, int]:
    """``[logit lo, logit hi]`` and a node count for the ``u = logit(p)`` rule of
    :func:`_beta_nodes`.

    ``p^(A−1) (1 − p)^(B−1) (1 − c p)^m`` with ``0 < c ≤ 1`` has a likelihood ratio against
    ``Beta(A, B + m)`` that rises in ``p`` and one against ``Beta(A, B)`` that falls, so its
    normalised mass below the ``WINDOW_TAIL`` quantile of the first and above the upper one of
    the second is at most ``WINDOW_TAIL`` each. Nodes: ``NODES_PER_SD`` per logit-scale standard
    deviation ``sqrt(1/A + 1/(B + m))`` of the narrower Beta, at least ``JACOBI_NODES``."""
    lo = stats.beta.ppf(WINDOW_TAIL, A, B + m)
    if lo > 0:
        ulo = float(special.logit(lo))
    else:  # below the smallest double: P(p < x) ≈ x^A / (A B(A, B + m)) for small x
        ulo = (np.log(WINDOW_TAIL) + np.log(A) + special.betaln(A, B + m)) / A
    # the upper quantile through 1 − p ~ Beta(B, A): it rounds to 1.0 when B is small (an arm
    # with every animal affected) while its logit is finite
    q = stats.beta.ppf(WINDOW_TAIL, B, A)
    uhi = float(np.log1p(-q) - np.log(q)) if q > 0 else -((np.log(WINDOW_TAIL) + np.log(B)
                                                            + special.betaln(B, A)) / B)
    sd = np.sqrt(1.0 / A + 1.0 / (B + m))
    return ulo, uhi, max(JACOBI_NODES, int(np.ceil(NODES_PER_SD * (uhi - ulo) / sd)))


def _half_log_g(t: np.ndarray, events: int, m: int, A: float, B: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """``F(t) = e·t + log E[(1 − e^t p)^m]``, ``p ~ Beta(A, B)``, and ``dF/dt``, for ``t ≤ 0``.

    ``(1 − e^t p)^m`` is a polynomial of degree ``m`` in ``p``: up to ``2 JACOBI_NODES − 1``
    the Gauss–Jacobi sum is exact (see :func:`_beta_nodes`); its terms are all positive (no
    cancellation) and summed in log space."""
    log_p, log_q, log_w = _beta_nodes(A, B, m)
    # log(1 − e^t p) = log((1 − p) + p (1 − e^t)), both parts ≥ 0: no cancellation next to p = 1
    with np.errstate(divide="ignore"):
        log_gap = np.log(-np.expm1(t))[:, None]  # −inf at t = 0
    log_rest = np.logaddexp(log_q[None, :], log_p[None, :] + log_gap)
    terms = log_w[None, :] + m * log_rest
    value = events * t + special.logsumexp(terms, axis=1)
    share = special.softmax(terms, axis=1)
    ratio = np.exp(t[:, None] + log_p[None, :] - log_rest)  # e^t p / (1 − e^t p)
    slope = events - m * np.sum(share * ratio, axis=1)
    return value, slope


def _sides(ai: int, n1: int, ci: int, n2: int, a: float, b: float):
    """Constants of ``log g`` on each side: ``(K, events, m, A, B)`` for theta ≥ 0 and < 0."""
    A = ai + ci + a
    common = (special.gammaln(n1 + 1) - special.gammaln(ai + 1) - special.gammaln(n1 - ai + 1)
              + special.gammaln(n2 + 1) - special.gammaln(ci + 1) - special.gammaln(n2 - ci + 1)
              - special.betaln(a, b))
    plus = (common + special.betaln(A, n1 - ai + b), ci, n2 - ci, A, n1 - ai + b)
    minus = (common + special.betaln(A, n2 - ci + b), ai, n1 - ai, A, n2 - ci + b)
    return plus, minus


def _log_g_and_slopes(theta: np.ndarray, counts: tuple[int, int, int, int],
                      baseline: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log g(theta)`` with its left and right derivatives (equal except at ``theta = 0``)."""
    plus, minus = _sides(*counts, *baseline)
    value = np.empty_like(theta)
    left, right = np.empty_like(theta), np.empty_like(theta)
    pos, neg = theta >= 0, theta <= 0
    if pos.any():
        f, d = _half_log_g(-theta[pos], *plus[1:])
        value[pos], right[pos], left[pos] = plus[0] + f, -d, -d
    if neg.any():
        f, d = _half_log_g(theta[neg], *minus[1:])
        value[neg], left[neg] = minus[0] + f, d
        right[neg & ~pos] = d[~pos[neg]]
    return value, left, right


def log_study_likelihood(theta: np.ndarray | float, counts: tuple[int, int, int, int],
                         baseline: tuple[float, float] = DEFAULT_BASELINE) -> np.ndarray:
    """``log g(theta) = log ∫ Bin(ai | n1i, p_t) Bin(ci | n2i, p_c) Beta(p | a, b) dp``.

    The likelihood of one study's log-RR ``theta`` with its larger arm risk ``p = p_max``
    integrated out (parameterisation in the module docstring); exact up to rounding
    (Gauss–Jacobi quadrature of a polynomial in ``p``).

    Parameters
    ----------
    theta
        Log risk ratio(s).
    counts
        ``(ai, n1i, ci, n2i)`` of the study.
    baseline
        ``(a, b)`` of the Beta prior on ``p_max``.
    """
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    return _log_g_and_slopes(theta, tuple(int(v) for v in counts), baseline)[0]


def _feature_scale(counts: tuple[int, int, int, int], baseline: tuple[float, float]) -> float:
    """Scale of the structure of ``log g`` next to ``theta = 0``: the mean of ``1 − p`` under the
    Beta of either side whose polynomial degree ``m`` is ≥ 1 (``(1 − e^{∓θ} p)^m`` changes on
    the scale ``θ ≈ 1 − p``, e.g. 0.013 for 41/41 vs 33/35 events)."""
    scales = [1.0]
    for _, _, m, A, B in _sides(*counts, *baseline):
        if m >= 1:
            scales.append(B / (A + B))
    return min(scales)


class _LogGTable:
    """Piecewise-cubic Hermite interpolant of ``log g`` with the exact one-sided derivatives,
    on a grid uniform in ``u = asinh(theta / delta)``: spacing ``≈ delta · U_STEP`` next to
    ``theta = 0`` (where ``log g`` has a kink, reproduced by the node at ``u = 0``, and changes
    on the scale ``delta``), ``≈ |theta| · U_STEP`` far from it. Linear extrapolation in
    ``theta`` with the end slopes outside the grid."""

    def __init__(self, counts: tuple[int, int, int, int], baseline: tuple[float, float],
                 lo: float, hi: float) -> None:
        self.delta = DELTA_FRACTION * _feature_scale(counts, baseline)
        ulo, uhi = np.arcsinh(lo / self.delta), np.arcsinh(hi / self.delta)
        self.u = np.arange(np.floor(ulo / U_STEP) - 1, np.ceil(uhi / U_STEP) + 2) * U_STEP
        theta = self.delta * np.sinh(self.u)
        f, left, right = _log_g_and_slopes(theta, counts, baseline)
        jac = np.hypot(theta, self.delta) * U_STEP  # dtheta/du times the step
        d0, d1 = right[:-1] * jac[:-1], left[1:] * jac[1:]
        df = f[1:] - f[:-1]
        self.coef = np.stack([f[:-1], d0, 3 * df - 2 * d0 - d1, -2 * df + d0 + d1])
        self.ends = (theta[0], theta[-1])
        self.end_slopes = (right[0], left[-1])
        _, left0, right0 = _log_g_and_slopes(np.zeros(1), counts, baseline)
        self.kink_slopes = (float(left0[0]), float(right0[0]))
        self.concave_sides = baseline[1] >= 1.0

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        first, last = self.ends
        inside = theta.min() >= first and theta.max() <= last
        clipped = theta if inside else np.clip(theta, first, last)
        x = np.arcsinh(clipped * (1.0 / self.delta))
        x -= self.u[0]
        x *= 1.0 / U_STEP
        j = x.astype(np.intp)  # x ≥ 0; the last node (x = size − 1) is clipped by take
        s = x - j
        c0, c1, c2, c3 = (np.take(c, j, mode="clip") for c in self.coef)
        out = c0 + s * (c1 + s * (c2 + s * c3))
        if inside:
            return out
        outside = theta - clipped
        return out + outside * np.where(outside > 0, self.end_slopes[1], self.end_slopes[0])

    def coarse(self) -> Callable[[np.ndarray], np.ndarray]:
        """A cheap lookup of ``log g`` at the nearest node of a uniform ``COARSE_STEP`` grid
        (clipped to the table's range), for bracketing only."""
        first, last = self.ends
        grid = np.arange(first, last + COARSE_STEP, COARSE_STEP)
        values = self(np.clip(grid, first, last))

        def lookup(theta: np.ndarray) -> np.ndarray:
            j = (theta - first) * (1.0 / COARSE_STEP) + 0.5
            return np.take(values, j.astype(np.intp), mode="clip")

        return lookup


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """``log Σ exp`` over the last axis (all-``-inf`` rows give ``-inf``)."""
    top = np.max(x, axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - safe[..., None]), axis=-1)) + safe


def _integrate_study(table: _LogGTable, eta: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``log ∫ g(theta) N(theta | eta, tau²) dtheta`` for 1-D arrays ``eta``, ``tau``."""
    lookup = table.coarse()
    lo = np.full_like(eta, -Z_RANGE)
    hi = np.full_like(eta, Z_RANGE)
    grid = np.linspace(0.0, 1.0, BRACKET_POINTS)
    for _ in range(BRACKET_ROUNDS):
        step = (hi - lo)[:, None] / (BRACKET_POINTS - 1)
        zb = lo[:, None] + (hi - lo)[:, None] * grid
        coarse = lookup(eta[:, None] + tau[:, None] * zb) - zb**2 / 2
        keep = coarse >= coarse.max(axis=1, keepdims=True) - LEVEL_DROP
        first = np.argmax(keep, axis=1)[:, None]
        last = BRACKET_POINTS - 1 - np.argmax(keep[:, ::-1], axis=1)[:, None]
        mode = np.take_along_axis(zb, np.argmax(coarse, axis=1)[:, None], axis=1)[:, 0]
        lo = np.maximum(np.take_along_axis(zb - step, first, axis=1)[:, 0], -Z_RANGE)
        hi = np.minimum(np.take_along_axis(zb + step, last, axis=1)[:, 0], Z_RANGE)
    # Pieces [lo, p1], [p1, p2], [p2, hi] split at the mode and at the kink z0 = -eta / tau
    # (theta = 0). log g is concave on each side of the kink when b ≥ 1 (Prékopa: the joint
    # log-density is concave in (theta, log p) there), so an outer piece that starts at the
    # kink and decays at rate r is cut where it has dropped LEVEL_DROP nats, at distance
    # LEVEL_DROP / r: a steep exponential cliff (e.g. 42/42 control events) fills its piece.
    z0 = np.divide(-eta, tau, out=np.full_like(eta, np.inf), where=tau > 0)
    mid = np.clip(z0, lo, hi)
    kink = (z0 > lo) & (z0 < hi)
    if table.concave_sides:
        left_slope, right_slope = table.kink_slopes
        with np.errstate(divide="ignore"):
            rate = np.where(kink & (mid <= mode), tau * left_slope - z0, 0.0)
            lo = np.where(rate > 0, np.maximum(lo, mid - LEVEL_DROP / rate), lo)
            rate = np.where(kink & (mid >= mode), z0 - tau * right_slope, 0.0)
            hi = np.where(rate > 0, np.minimum(hi, mid + LEVEL_DROP / rate), hi)
    ends = np.stack([lo, np.minimum(mode, mid), np.maximum(mode, mid), hi], axis=1)
    half = (ends[:, 1:] - ends[:, :-1]) / 2
    z = (ends[:, 1:] + ends[:, :-1])[..., None] / 2 + half[..., None] * _GL_X
    with np.errstate(divide="ignore"):
        log_w = np.log(half)[..., None] + _GL_LOG_W
    log_w -= z * z / 2
    terms = table(eta[:, None, None] + tau[:, None, None] * z)
    terms += log_w
    return _logsumexp(terms.reshape(eta.size, -1)) - 0.5 * np.log(2 * np.pi)


_GL_X, _GL_W = special.roots_legendre(GL_NODES)
_GL_LOG_W = np.log(_GL_W)


def marginal_log_likelihood(
    ai: np.ndarray, n1i: np.ndarray, ci: np.ndarray, n2i: np.ndarray,
    eta: np.ndarray, tau: np.ndarray, baseline: tuple[float, float] = DEFAULT_BASELINE,
) -> np.ndarray:
    """``log ∫∫ Bin(ai | n1i, p_t) Bin(ci | n2i, p_c) Beta(p | a, b) N(theta | eta, tau²) dp dθ``.

    Parameters
    ----------
    ai, n1i, ci, n2i
        Counts, shape ``(k,)``.
    eta, tau
        Each study's expected effect and heterogeneity SD, shape ``(..., k)`` (e.g. draws ×
        studies); ``tau = 0`` gives ``log g(eta)``.
    baseline
        ``(a, b)`` of the Beta prior on each study's larger arm risk.

    Returns
    -------
    Array of shape ``(..., k)``.

    Notes
    -----
    ``log g_i(theta)`` (``p`` integrated out exactly) is tabulated once per study on a grid
    covering every ``eta ± Z_RANGE tau`` and interpolated (cubic Hermite, exact one-sided
    derivatives). For each draw a coarse pass over ``z = (theta − eta) / tau`` brackets where
    the integrand ``g(eta + tau z) φ(z)`` is within ``LEVEL_DROP`` nats of its maximum (so a
    narrow likelihood far from ``eta`` is found, too), then Gauss–Legendre rules on each side of
    ``theta = 0`` (where ``g`` has a kink) integrate over the bracket.
    """
    counts = [np.asarray(v, dtype=np.int64) for v in (ai, n1i, ci, n2i)]
    eta = np.asarray(eta, dtype=float)
    tau = np.broadcast_to(np.asarray(tau, dtype=float), eta.shape)
    k = counts[0].size
    eta2 = np.ascontiguousarray(eta.reshape(-1, k).T)  # (study, draw)
    tau2 = np.ascontiguousarray(tau.reshape(-1, k).T)
    lo = float(np.clip(np.min(eta2 - Z_RANGE * tau2), -THETA_CAP, 0.0))
    hi = float(np.clip(np.max(eta2 + Z_RANGE * tau2), 0.0, THETA_CAP))
    out = np.empty_like(eta2)
    for i in range(k):
        table = _LogGTable(tuple(int(c[i]) for c in counts), baseline, lo, hi)
        for start in range(0, eta2.shape[1], DRAW_CHUNK):
            block = slice(start, start + DRAW_CHUNK)
            out[i, block] = _integrate_study(table, eta2[i, block], tau2[i, block])
    return out.T.reshape(eta.shape)


def marginal_count_log_likelihood(tree: xr.DataTree) -> dict[str, xr.DataArray]:
    """Per-study marginal log-likelihood ``y`` (dim ``study``) per draw, for PSIS-LOO.

    ``log ∫∫ Bin(y_t | n1i, p_t) Bin(y_c | n2i, p_c) Beta(p_max | a, b) N(theta | eta_i, tau_i²)``
    over ``p_max`` and ``theta``: both arms of a study together, with its latent parameters
    integrated out, so that PSIS-LOO estimates the predictive density of a left-out study.
    Conditional on ``theta_i`` and ``p_max_i`` most studies have Pareto k > 0.7, because those
    are informed mainly by the study itself (Vehtari, Gelman & Gabry 2017, Stat Comput 27:1413,
    Sect. 4). ``eta_i`` is ``mu``, ``mu[level]`` or ``mu + x_i' beta`` (posterior ``eta``);
    ``tau_i`` is ``tau`` or ``tau[level]`` (``tau_study``); ``(a, b)`` are
    ``constant_data.p_max_prior_a``/``p_max_prior_b``. See :func:`marginal_log_likelihood`.
    """
    post, obs, const = tree["posterior"], tree["observed_data"], tree["constant_data"]
    eta = post["eta"].transpose("chain", "draw", "study")
    tau = post["tau_study"].transpose("chain", "draw", "study").values if "tau_study" in post \
        else post["tau"].transpose("chain", "draw").values[..., None]
    baseline = (float(const["p_max_prior_a"]), float(const["p_max_prior_b"]))
    values = marginal_log_likelihood(obs["y_t"].values, const["n1i"].values, obs["y_c"].values,
                                     const["n2i"].values, eta.values,
                                     np.broadcast_to(tau, eta.shape), baseline)
    return {"y": eta.copy(data=values).rename("y")}
