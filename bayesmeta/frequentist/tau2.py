"""Between-study variance (tau²) estimators, reproducing metafor's ``rma.uni`` step by step.

Every estimator here follows the algorithm metafor 3.8 uses, with the same starting values,
updates, stopping rules and truncation, so that our estimates agree with metafor's to
floating-point noise rather than merely to the iteration tolerance:

* ``DL`` DerSimonian–Laird, ``HE`` Hedges (method of moments with OLS weights), ``SJ``
  Sidik–Jonkman (one step from the centred sample variance): closed forms
  (Viechtbauer 2005, Veroniki et al. 2016);
* ``ML``, ``REML`` and ``EB`` (empirical Bayes, Morris 1983): metafor's Fisher-scoring-type
  iterations started at the HE estimate, step-halving at the lower bound, stopping when the
  change is at most ``threshold = 1e-5``; ML and REML are then compared with the
  log-likelihood at tau² = 0 (metafor's ``ll0check``);
* ``PM`` Paule–Mandel: the root of the generalised Q-statistic ``Q(tau²) = k - p`` found
  with Brent's algorithm exactly as R's ``uniroot`` runs it (:func:`uniroot`,
  ``tol = eps^0.25``), on the interval ``[0, max(100, 10 mad(yi)²)]``;
* ``FE``/``EE``: tau² = 0.

As in metafor, the estimators work with the centred outcomes ``yi - mean(yi)`` (this changes
nothing when the model has an intercept) and truncate the result at ``tau2_min = 0``.

References
----------
Viechtbauer W (2005). Bias and efficiency of meta-analytic variance estimators in the
random-effects model. J Educ Behav Stat 30:261-293.
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3).
Veroniki AA et al. (2016). Methods to estimate the between-study variance and its uncertainty
in meta-analysis. Res Synth Methods 7:55-79.
Brent RP (1973). Algorithms for Minimization without Derivatives, ch. 4 (procedure *zero*).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from bayesmeta.errors import BayesmetaError, DataWarning

__all__ = [
    "ConvergenceError",
    "TAU2_ESTIMATORS",
    "Tau2Control",
    "Tau2Fit",
    "Tau2Problem",
    "estimate_tau2",
    "generalised_q",
    "hat_projection",
    "r_mad",
    "uniroot",
    "weighted_inverse",
]

_EPS = float(np.finfo(float).eps)


class ConvergenceError(BayesmetaError, RuntimeError):
    """An iterative estimator did not converge (metafor stops with an error in the same case)."""


# ----------------------------------------------------------------------------------------
# Root finding as R's uniroot()
# ----------------------------------------------------------------------------------------


def uniroot(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    *,
    tol: float = _EPS**0.25,
    maxiter: int = 1000,
) -> tuple[float, int]:
    """Find a root of ``f`` in ``[lower, upper]`` with the iterates of R's ``uniroot``.

    This is Brent's (1973) *zero* procedure (bisection safeguarding secant and inverse
    quadratic interpolation) in the form R's ``stats::uniroot`` calls it: ``f(lower)`` and
    ``f(upper)`` are evaluated first, the tolerance on the bracket is
    ``2 eps |b| + tol/2`` and at most ``maxiter + 1`` further evaluations are made.
    Reproducing the iterates (not just the tolerance) is what makes roots found with the
    default ``tol = eps^0.25 ≈ 1.2e-4`` agree with metafor to ~1e-13.

    Returns
    -------
    root, iterations
        The root and the number of iterations used (``-1`` when it did not converge).

    Raises
    ------
    ValueError
        When ``f(lower)`` and ``f(upper)`` have the same sign, as ``uniroot`` does.
    """
    if not lower < upper:
        raise ValueError("uniroot: lower < upper is not fulfilled")
    fa = f(lower)
    fb = f(upper)
    if math.isnan(fa) or math.isnan(fb):
        raise ValueError("uniroot: f is NaN at an end point")
    if not np.sign(fa) * np.sign(fb) <= 0:
        raise ValueError("uniroot: f() values at end points not of opposite sign")
    a, b = lower, upper
    if fa == 0.0:
        return a, 0
    if fb == 0.0:
        return b, 0
    c, fc = a, fa
    budget = maxiter + 1
    used = 0
    while budget > 0:
        budget -= 1
        used += 1
        previous_step = b - a
        if abs(fc) < abs(fb):
            # make b the best approximation, keeping the bracket [b, c]
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
        step = (c - b) / 2.0
        if abs(step) <= tol_act or fb == 0.0:
            return b, used - 1
        if abs(previous_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # two distinct points: secant step
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(previous_step * q / 2.0):
                step = p / q
        if abs(step) < tol_act:
            step = tol_act if step > 0.0 else -tol_act
        a, fa = b, fb
        b = b + step
        fb = f(b)
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            c, fc = a, fa
    return b, -1


# ----------------------------------------------------------------------------------------
# Linear algebra shared by the estimators
# ----------------------------------------------------------------------------------------


def weighted_inverse(X: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(X' W X)^-1`` through the QR decomposition of ``W^(1/2) X`` (as metafor's ``.invcalc``)."""
    _, r = np.linalg.qr(np.sqrt(w)[:, None] * X)
    r_inv = linalg.solve_triangular(r, np.eye(r.shape[0]))
    return r_inv @ r_inv.T


def hat_projection(X: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """The residual-forming matrix ``P = W - W X (X'WX)^-1 X' W`` for weights ``w``."""
    wx = w[:, None] * X
    return np.diag(w) - wx @ weighted_inverse(X, w) @ wx.T


def generalised_q(tau2: float, y: NDArray[np.float64], vi: NDArray[np.float64],
                  X: NDArray[np.float64]) -> float:
    """The generalised Q-statistic ``y' P(tau²) y`` with weights ``1/(vi + tau²)``.

    Computed as the weighted residual sum of squares of the least-squares fit (QR of
    ``W^(1/2) X``), which equals ``y' P y`` without forming the k x k matrix ``P``.
    """
    sw = 1.0 / np.sqrt(vi + tau2)
    q, _ = np.linalg.qr(sw[:, None] * X)
    z = sw * y
    resid = z - q @ (q.T @ z)
    return float(resid @ resid)


def r_mad(x: NDArray[np.float64]) -> float:
    """R's ``mad()``: ``1.4826 * median(|x - median(x)|)``."""
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


# ----------------------------------------------------------------------------------------
# Problem, control and result
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tau2Control:
    """Iteration settings, metafor's ``control`` defaults for ``rma.uni``.

    ``tau2_max=None`` means metafor's default ``max(100, 10 * mad(yi)^2)``.
    """

    tau2_init: float | None = None
    tau2_min: float = 0.0
    tau2_max: float | None = None
    threshold: float = 1e-5
    tol: float = _EPS**0.25
    maxiter: int = 100
    stepadj: float = 1.0
    ll0check: bool = True


@dataclass(frozen=True)
class Tau2Problem:
    """Data of one estimation: outcomes, variances and the (full-rank) design matrix."""

    yi: NDArray[np.float64]
    vi: NDArray[np.float64]
    X: NDArray[np.float64]
    control: Tau2Control

    @property
    def k(self) -> int:
        return int(self.yi.size)

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def ymc(self) -> NDArray[np.float64]:
        """Centred outcomes, as metafor's estimators use them."""
        return self.yi - self.yi.mean()

    @property
    def tau2_max(self) -> float:
        if self.control.tau2_max is not None:
            return self.control.tau2_max
        return max(100.0, 10.0 * r_mad(self.yi) ** 2)


@dataclass(frozen=True)
class Tau2Fit:
    """An estimate of tau² with its standard error (``None`` for FE/EE)."""

    tau2: float
    se: float | None
    iterations: int = 0


# ----------------------------------------------------------------------------------------
# The estimators
# ----------------------------------------------------------------------------------------


def _fixed(problem: Tau2Problem) -> Tau2Fit:
    return Tau2Fit(0.0, None)


def _dl(problem: Tau2Problem) -> Tau2Fit:
    k, p = problem.k, problem.p
    P = hat_projection(problem.X, 1.0 / problem.vi)
    y = problem.ymc
    rss = float(y @ P @ y)
    tr_p = float(np.trace(P))
    tau2 = max(problem.control.tau2_min, (rss - (k - p)) / tr_p)
    t = max(tau2, 0.0)
    se = math.sqrt(1.0 / tr_p**2 * (2 * (k - p) + 4 * t * tr_p + 2 * t**2 * float(np.sum(P * P))))
    return Tau2Fit(tau2, se)


def _ols_moments(problem: Tau2Problem) -> tuple[float, NDArray[np.float64]]:
    """HE's moment estimate (before truncation) and the matrix ``P V`` of the OLS fit."""
    k, p = problem.k, problem.p
    X = problem.X
    P = np.eye(k) - X @ weighted_inverse(X, np.ones(k)) @ X.T
    y = problem.ymc
    PV = P * problem.vi[None, :]
    return (float(y @ P @ y) - float(np.trace(PV))) / (k - p), PV


def _he(problem: Tau2Problem) -> Tau2Fit:
    k, p = problem.k, problem.p
    raw, PV = _ols_moments(problem)
    tau2 = max(problem.control.tau2_min, raw)
    t = max(tau2, 0.0)
    se = math.sqrt(1.0 / (k - p) ** 2 * (2 * float(np.sum(PV * PV.T)) + 4 * t * float(np.trace(PV))
                                         + 2 * t**2 * (k - p)))
    return Tau2Fit(tau2, se)


def _sj(problem: Tau2Problem) -> Tau2Fit:
    k, p = problem.k, problem.p
    y = problem.ymc
    tau2_0 = problem.control.tau2_init
    if tau2_0 is None:
        tau2_0 = float(np.var(y, ddof=1)) * (k - 1) / k
    P = hat_projection(problem.X, 1.0 / (problem.vi + tau2_0))
    tau2 = max(problem.control.tau2_min, tau2_0 * float(y @ P @ y) / (k - p))
    PV = P * problem.vi[None, :]
    t = max(tau2, 0.0)
    se = math.sqrt(tau2_0**2 / (k - p) ** 2 * (2 * float(np.sum(PV * PV.T)) + 4 * t * float(np.sum(PV * P))
                                               + 2 * t**2 * float(np.sum(P * P))))
    return Tau2Fit(tau2, se)


def _moment_se(problem: Tau2Problem, tau2: float) -> float:
    """metafor's standard error for EB and PM: ``sqrt(2 k² / (k - p) / (Σ w)²)``."""
    k, p = problem.k, problem.p
    w = 1.0 / (problem.vi + tau2)
    return math.sqrt(2 * k**2 / (k - p) / float(np.sum(w)) ** 2)


def _pm(problem: Tau2Problem) -> Tau2Fit:
    k, p = problem.k, problem.p
    ctl = problem.control
    y, vi, X = problem.ymc, problem.vi, problem.X
    target = k - p
    if generalised_q(ctl.tau2_min, y, vi, X) < target:
        tau2, iterations = ctl.tau2_min, 0
    else:
        upper = problem.tau2_max
        if generalised_q(upper, y, vi, X) > target:
            raise ConvergenceError(
                f"Paule-Mandel: Q(tau2_max = {upper:g}) is still above k - p; increase tau2_max "
                "or use another method")
        tau2, iterations = uniroot(lambda t: generalised_q(t, y, vi, X) - target, ctl.tau2_min, upper,
                                   tol=ctl.tol, maxiter=ctl.maxiter)
        if iterations < 0:
            raise ConvergenceError("Paule-Mandel: the root search for tau2 did not converge")
    tau2 = max(ctl.tau2_min, tau2)
    return Tau2Fit(tau2, _moment_se(problem, tau2), iterations)


def _ll_at(problem: Tau2Problem, tau2: float, reml: bool) -> float:
    """The (restricted) log-likelihood at ``tau2``, on the centred outcomes (metafor's ll0check)."""
    k, p = problem.k, problem.p
    X, y = problem.X, problem.ymc
    w = 1.0 / (problem.vi + tau2)
    inv = weighted_inverse(X, w)
    beta = inv @ (X.T @ (w * y))
    rss = float(np.sum(w * (y - X @ beta) ** 2))
    if not reml:
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * float(np.sum(np.log(problem.vi + tau2))) - 0.5 * rss
    logdet = float(np.linalg.slogdet(X.T @ (w[:, None] * X))[1])
    return (-0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * float(np.sum(np.log(problem.vi + tau2)))
            - 0.5 * logdet - 0.5 * rss)


def _ml_step(problem: Tau2Problem, P: NDArray[np.float64], w: NDArray[np.float64]) -> float:
    y = problem.ymc
    Py = P @ y
    return (float(Py @ Py) - float(np.sum(w))) / float(np.sum(w**2))


def _reml_step(problem: Tau2Problem, P: NDArray[np.float64], w: NDArray[np.float64]) -> float:
    y = problem.ymc
    Py = P @ y
    return (float(Py @ Py) - float(np.trace(P))) / float(np.trace(P @ P))


def _eb_step(problem: Tau2Problem, P: NDArray[np.float64], w: NDArray[np.float64]) -> float:
    k, p = problem.k, problem.p
    y = problem.ymc
    return (float(y @ P @ y) * k / (k - p) - k) / float(np.sum(w))


def _scoring(step: Callable[[Tau2Problem, NDArray, NDArray], float], name: str) -> Callable[[Tau2Problem], Tau2Fit]:
    """ML/REML/EB: metafor's iterations from the HE start with step halving at ``tau2_min``."""

    def estimate(problem: Tau2Problem) -> Tau2Fit:
        ctl = problem.control
        if ctl.tau2_init is None:
            tau2 = max(0.0, _ols_moments(problem)[0], ctl.tau2_min)
        else:
            tau2 = ctl.tau2_init
        change = ctl.threshold + 1.0
        iterations = 0
        while change > ctl.threshold:
            iterations += 1
            previous = tau2
            w = 1.0 / (problem.vi + tau2)
            if np.any(~np.isfinite(w)):
                raise ConvergenceError(f"{name}: division by zero in the weights 1/(vi + tau2)")
            P = hat_projection(problem.X, w)
            adj = step(problem, P, w) * ctl.stepadj
            if math.isnan(adj):
                adj = 0.0
            while tau2 + adj < ctl.tau2_min:
                adj /= 2.0
            tau2 = tau2 + adj
            change = abs(previous - tau2)
            if iterations > ctl.maxiter:
                raise ConvergenceError(
                    f"{name}: Fisher scoring did not converge in {ctl.maxiter} iterations "
                    "(metafor stops here too; try another method)")
        if name in ("ML", "REML") and ctl.ll0check and np.all(problem.vi > 0):
            reml = name == "REML"
            ll0 = _ll_at(problem, 0.0, reml)
            ll = _ll_at(problem, tau2, reml)
            if ll0 - ll > ctl.tol and tau2 > ctl.threshold:
                warnings.warn(f"{name}: Fisher scoring may have stopped at a local maximum; "
                              "setting tau2 = 0 as metafor does", DataWarning, stacklevel=3)
                tau2 = 0.0
        w = 1.0 / (problem.vi + tau2)
        if name == "ML":
            se = math.sqrt(2.0 / float(np.sum(w**2)))
        elif name == "REML":
            P = hat_projection(problem.X, w)
            se = math.sqrt(2.0 / float(np.sum(P * P)))
        else:
            se = _moment_se(problem, tau2)
        return Tau2Fit(max(ctl.tau2_min, tau2), se, iterations)

    estimate.__name__ = f"_{name.lower()}"
    estimate.__doc__ = f"{name} estimate of tau² by metafor's scoring iterations."
    return estimate



#: tau² estimators by metafor's method code.
TAU2_ESTIMATORS: dict[str, Callable[[Tau2Problem], Tau2Fit]] = {
    "FE": _fixed,
    "EE": _fixed,
    "DL": _dl,
    "HE": _he,
    "SJ": _sj,
    "PM": _pm,
    "ML": _scoring(_ml_step, "ML"),
    "REML": _scoring(_reml_step, "REML"),
    "EB": _scoring(_eb_step, "EB"),
}

#: Methods without a between-study variance.
FIXED_METHODS = frozenset({"FE", "EE"})


def estimate_tau2(yi: NDArray[np.float64], vi: NDArray[np.float64], X: NDArray[np.float64],
                  method: str, control: Tau2Control | None = None) -> Tau2Fit:
    """Estimate tau² with one of :data:`TAU2_ESTIMATORS`.

    With a single study (``k = 1``) tau² is 0, as metafor does.
    """
    problem = Tau2Problem(yi, vi, X, control or Tau2Control())
    if problem.k == 1 and method not in FIXED_METHODS:
        return Tau2Fit(0.0, None)
    return TAU2_ESTIMATORS[method](problem)
