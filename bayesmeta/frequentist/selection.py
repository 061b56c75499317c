"""Step-function selection models for publication bias (Hedges 1992; Vevea & Hedges 1995).

A study's likelihood under selection is its random-effects density ``N(y_i; mu, v_i + tau^2)``
times the weight ``omega_j`` of the p-value interval its result falls in, divided by the
normalising constant ``A_i = sum_j omega_j P(p_i in interval j | mu, tau^2, v_i)`` computed
exactly from normal CDFs. The most significant interval has ``omega = 1``.

This module holds the pieces shared by the maximum-likelihood fit (:func:`selmodel`, equal to
metafor's ``selmodel(rma(yi, vi, method="ML"), type="stepfun", steps=...)``) and the Bayesian
builders (``bayesmeta.builders.selection``):

* :class:`WeightFunction` and :func:`parse_weight_function`: one-sided and two-sided step
  functions, with RoBMA's six standard weight functions (:data:`ROBMA_WEIGHT_FUNCTIONS`)
  addressable by name;
* :func:`selection_loglik`: the exact log-likelihood (NumPy/SciPy).

Two-sided cutpoints are mapped to one-sided ones as RoBMA does: a two-sided p-value below
``c`` means a one-sided p-value below ``c/2`` or above ``1 - c/2``, so ``two-sided(0.05)`` is
the one-sided step function with cutpoints ``(0.025, 0.975)`` and weights ``(1, w, 1)``.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special, stats

from bayesmeta.errors import DataWarning, InputError

__all__ = [
    "ROBMA_WEIGHT_FUNCTIONS",
    "SelectionResult",
    "WeightFunction",
    "parse_steps",
    "parse_weight_function",
    "selection_loglik",
    "selmodel",
]

Side = Literal["one-sided", "two-sided"]
Direction = Literal["positive", "negative"]


@dataclass(frozen=True)
class WeightFunction:
    """A step function of the p-value giving the relative probability that a study is published.

    Parameters
    ----------
    side
        ``"one-sided"``: the steps are one-sided p-values (of ``H0: theta <= 0`` against
        positive effects when ``direction="positive"``); ``"two-sided"``: the steps are
        two-sided p-values and the function is symmetric in the sign of the estimate.
    steps
        Increasing cutpoints strictly between 0 and 1 (1 is implied).
    direction
        Sign of the effects favoured by a one-sided function (RoBMA's ``effect_direction``;
        metafor's ``alternative="greater"`` is ``"positive"``, ``"less"`` is ``"negative"``).
    """

    side: Side
    steps: tuple[float, ...]
    direction: Direction = "positive"

    def __post_init__(self) -> None:
        if self.side not in ("one-sided", "two-sided"):
            raise ValueError(f"side must be 'one-sided' or 'two-sided', not {self.side!r}")
        if self.direction not in ("positive", "negative"):
            raise ValueError(f"direction must be 'positive' or 'negative', not {self.direction!r}")
        steps = tuple(float(s) for s in self.steps)
        if not steps:
            raise ValueError("a step function needs at least one cutpoint between 0 and 1")
        if any(not 0.0 < s < 1.0 for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"cutpoints must be increasing and strictly between 0 and 1: {steps}")
        object.__setattr__(self, "steps", steps)

    # -- structure -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Canonical text form, e.g. ``"one-sided(0.025, 0.05)"`` (accepted by the parser)."""
        text = f"{self.side}({', '.join(_fmt(s) for s in self.steps)})"
        return text if self.direction == "positive" or self.side == "two-sided" else text + " negative"

    @property
    def n_omega(self) -> int:
        """Number of weights, including the fixed reference weight ``omega[0] = 1``."""
        return len(self.steps) + 1

    @property
    def cutpoints(self) -> tuple[float, ...]:
        """Cutpoints on the one-sided p-value scale (in the favoured direction)."""
        if self.side == "one-sided":
            return self.steps
        return tuple(s / 2.0 for s in self.steps) + tuple(1.0 - s / 2.0 for s in reversed(self.steps))

    @property
    def interval_omega(self) -> tuple[int, ...]:
        """For each one-sided interval (``len(cutpoints) + 1`` of them), the index of its weight."""
        m = len(self.steps)
        if self.side == "one-sided":
            return tuple(range(m + 1))
        return tuple(range(m + 1)) + tuple(range(m - 1, -1, -1))

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per weight: the p-value interval it applies to (coordinate ``p_interval``)."""
        edges = (0.0, *self.steps, 1.0)
        prefix = "two-sided p " if self.side == "two-sided" else "p "
        return tuple(
            f"{prefix}{'[' if j == 0 else '('}{_fmt(edges[j])}, {_fmt(edges[j + 1])}]"
            for j in range(self.n_omega)
        )

    # -- data ------------------------------------------------------------------------------
    @property
    def sign(self) -> float:
        """+1 or -1: multiply estimates by this to put the favoured direction on the positive side."""
        return -1.0 if (self.side == "one-sided" and self.direction == "negative") else 1.0

    def pvalues(self, yi: ArrayLike, vi: ArrayLike) -> NDArray[np.float64]:
        """Each study's p-value on the scale of ``steps`` (one- or two-sided Wald test of 0)."""
        z = self.sign * np.asarray(yi, dtype=float) / np.sqrt(np.asarray(vi, dtype=float))
        if self.side == "two-sided":
            return 2.0 * special.ndtr(-np.abs(z))
        return special.ndtr(-z)

    def groups(self, yi: ArrayLike, vi: ArrayLike) -> NDArray[np.int64]:
        """Index of each study's weight: the first interval with ``p <= step`` (as metafor)."""
        p = self.pvalues(yi, vi)
        return np.searchsorted(np.asarray(self.steps), p, side="left").astype(np.int64)

    def thresholds(self, vi: ArrayLike) -> NDArray[np.float64]:
        """Estimate values at the one-sided cutpoints, shape ``(k, len(cutpoints))``, decreasing.

        A sign-adjusted estimate ``sign * y_i`` has one-sided p-value ``<= c`` exactly when it is
        ``>= sqrt(v_i) * Phi^{-1}(1 - c)``.
        """
        c = np.asarray(self.cutpoints)
        return np.sqrt(np.asarray(vi, dtype=float))[:, None] * -special.ndtri(c)[None, :]


def _fmt(x: float) -> str:
    return f"{x:.10g}"


# RoBMA-PSMA's six weight functions (Bartos et al. 2023, Res Synth Methods 14:99-116, Table 1;
# Maier, Bartos & Wagenmakers 2023, Psychol Methods 28:107-122): cumulative Dirichlet(1, ..., 1)
# priors on the weights in RoBMA.
ROBMA_WEIGHT_FUNCTIONS: dict[str, WeightFunction] = {
    wf.name: wf
    for wf in (
        WeightFunction("two-sided", (0.05,)),
        WeightFunction("two-sided", (0.05, 0.10)),
        WeightFunction("one-sided", (0.05,)),
        WeightFunction("one-sided", (0.025, 0.05)),
        WeightFunction("one-sided", (0.05, 0.5)),
        WeightFunction("one-sided", (0.025, 0.05, 0.5)),
    )
}

_SIDES: dict[str, Side] = {"stepfun": "one-sided", "one-sided": "one-sided", "two-sided": "two-sided"}
_FORM = re.compile(
    r"^\s*(?P<kind>stepfun|one-sided|two-sided)\s*\((?P<args>[^()]*)\)\s*(?P<dir>positive|negative)?\s*$"
)


def parse_weight_function(text: str) -> WeightFunction:
    """Parse ``"stepfun(0.025, 0.05)"``, ``"one-sided(0.05, 0.5)"``, ``"two-sided(0.05)"``.

    ``stepfun(...)`` is a one-sided step function on one-sided p-values (metafor's
    ``type="stepfun"`` with ``alternative="greater"``). A trailing ``negative`` makes a one-sided
    function favour negative effects. The six names of :data:`ROBMA_WEIGHT_FUNCTIONS` parse to
    themselves.

    Raises
    ------
    ValueError
        If the text is not of that form (the spec layer turns this into a ``SpecError``).
    """
    m = _FORM.match(text.strip().lower())
    if m is None:
        known = ", ".join(f'"{n}"' for n in ROBMA_WEIGHT_FUNCTIONS)
        raise ValueError(
            f"unknown weight function {text!r}: write stepfun(c1, c2, ...), one-sided(...) or "
            f"two-sided(...) with p-value cutpoints, e.g. one of {known}"
        )
    try:
        steps = tuple(float(a) for a in m["args"].split(",") if a.strip())
    except ValueError as err:
        raise ValueError(f"cutpoints in {text!r} must be numbers: {err}") from None
    if steps and steps[-1] == 1.0:
        steps = steps[:-1]
    side = _SIDES[m["kind"]]
    if side == "two-sided" and m["dir"]:
        raise ValueError(f"{text!r}: a two-sided weight function has no direction")
    return WeightFunction(side, tuple(sorted(set(steps))), m["dir"] or "positive")


def parse_steps(text: str) -> WeightFunction:
    """Weight function of a ``selection = "..."`` text, for ``selmodel(steps=...)``.

    Same as :func:`parse_weight_function` (kept under this name for ``bayesmeta.reference``).
    """
    return parse_weight_function(text)


# ---------------------------------------------------------------------------------------------
# likelihood


def _interval_probs(
    y_thr: NDArray[np.float64], m: float, sigma: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Upper-tail probabilities ``S_j = P(Y >= a_j)`` padded with 0 and 1, and their standardised points."""
    u = (m - y_thr) / sigma[:, None]
    k = y_thr.shape[0]
    s = np.concatenate([np.zeros((k, 1)), special.ndtr(u), np.ones((k, 1))], axis=1)
    return s, u


def selection_loglik(
    yi: ArrayLike,
    vi: ArrayLike,
    mu: float,
    tau2: float,
    omega: ArrayLike,
    wf: WeightFunction,
    *,
    pointwise: bool = False,
) -> float | NDArray[np.float64]:
    """Exact log-likelihood of the step-function selection model.

    Parameters
    ----------
    yi, vi
        Estimates and sampling variances.
    mu, tau2
        Mean and variance of the true effects before selection.
    omega
        ``wf.n_omega`` weights, ``omega[0]`` normally 1 (weights are relative).
    wf
        The weight function.
    pointwise
        Return one value per study instead of the sum.
    """
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    omega = np.asarray(omega, dtype=float)
    sigma2 = vi + tau2
    sigma = np.sqrt(sigma2)
    s, _ = _interval_probs(wf.thresholds(vi), wf.sign * mu, sigma)
    w_int = omega[list(wf.interval_omega)]
    norm_const = np.diff(s, axis=1) @ w_int
    ll = (
        np.log(omega[wf.groups(yi, vi)])
        - 0.5 * np.log(2.0 * np.pi * sigma2)
        - 0.5 * (yi - mu) ** 2 / sigma2
        - np.log(norm_const)
    )
    return ll if pointwise else float(ll.sum())


def _loglik_grad(
    yi: NDArray[np.float64],
    vi: NDArray[np.float64],
    y_thr: NDArray[np.float64],
    groups: NDArray[np.int64],
    wf: WeightFunction,
    mu: float,
    tau2: float,
    omega: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64]]:
    """Log-likelihood and its gradient in ``(mu, tau2, omega[0], ..., omega[m])``."""
    sg = wf.sign
    sigma2 = vi + tau2
    sigma = np.sqrt(sigma2)
    s, u = _interval_probs(y_thr, sg * mu, sigma)
    idx = np.asarray(wf.interval_omega)
    w_int = omega[idx]
    probs = np.diff(s, axis=1)  # (k, J)
    a = probs @ w_int
    r = yi - mu
    ll = float(np.sum(np.log(omega[groups]) - 0.5 * np.log(2.0 * np.pi * sigma2) - 0.5 * r**2 / sigma2 - np.log(a)))
    k = len(yi)
    dens = np.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)  # phi(u), shape (k, J - 1)
    zero = np.zeros((k, 1))
    ds_dm = np.concatenate([zero, dens / sigma[:, None], zero], axis=1)
    ds_ds2 = np.concatenate([zero, -dens * u / (2.0 * sigma2[:, None]), zero], axis=1)
    da_dm = np.diff(ds_dm, axis=1) @ w_int
    da_ds2 = np.diff(ds_ds2, axis=1) @ w_int
    g_mu = np.sum(r / sigma2 - sg * da_dm / a)
    g_tau2 = np.sum(-0.5 / sigma2 + 0.5 * r**2 / sigma2**2 - da_ds2 / a)
    g_omega = np.zeros(wf.n_omega)
    np.add.at(g_omega, groups, 1.0 / omega[groups])
    p_by_omega = np.zeros((k, wf.n_omega))
    np.add.at(p_by_omega.T, idx, probs.T)
    g_omega -= np.sum(p_by_omega / a[:, None], axis=0)
    return ll, np.concatenate([[g_mu, g_tau2], g_omega])


# ---------------------------------------------------------------------------------------------
# maximum likelihood

# metafor bounds the step-function weights to [0, 100] (control delta.min/delta.max) and maps
# them to the real line with a scaled logistic; we keep the same bounds so that the optimum is
# the same when a weight runs to a bound.
OMEGA_MAX = 100.0
# Optimum: BFGS in metafor's transformed parameters, then Newton steps in the natural ones until
# the step is below this relative size (the MLE to ~1e-12, far inside the 1e-6 we promise).
_NEWTON_RTOL = 1e-12
_NEWTON_MAXIT = 50
# A weight this close to a bound is reported with a warning (metafor's thresholds:
# delta.min + eps^0.25 and delta.max - 100 eps^0.25).
_BOUND_TOL_LOW = np.finfo(float).eps ** 0.25
_BOUND_TOL_HIGH = 100.0 * np.finfo(float).eps ** 0.25
# Richardson-extrapolated central differences of the analytic gradient for the Hessian.
_HESS_REL_STEP = 1e-4


@dataclass(frozen=True)
class SelectionResult:
    """Maximum-likelihood step-function selection model (metafor ``selmodel(..., type="stepfun")``).

    Attributes
    ----------
    weight_function
        Canonical name of the weight function (``WeightFunction.name``).
    steps
        Its cutpoints (on its own one- or two-sided p-value scale; 1 implied).
    method
        ``"ML"`` (random effects) or ``"EE"`` (equal effects, ``tau2 = 0``).
    k
        Number of studies.
    estimate, se, zval, pval, ci_low, ci_high
        Selection-adjusted mean effect (analysis scale) with its Wald test and interval.
    tau2, se_tau2, tau
        Heterogeneity before selection (``se_tau2`` is ``None`` on the boundary ``tau2 = 0``).
    weights, se_weights
        Estimated relative publication weights, the first fixed at 1 (its SE is ``None``).
    weight_labels, n_in_interval
        The p-value interval of each weight and how many studies fall in it.
    ll, ll0
        Maximised log-likelihood of the selection model and of the model without selection.
    lrt, lrt_df, lrt_p
        Likelihood-ratio test of ``H0: all weights = 1`` (no selection).
    level
        Confidence level in percent.
    """

    weight_function: str
    steps: tuple[float, ...]
    method: str
    k: int
    estimate: float
    se: float | None
    zval: float | None
    pval: float | None
    ci_low: float | None
    ci_high: float | None
    tau2: float
    se_tau2: float | None
    tau: float
    weights: tuple[float, ...]
    se_weights: tuple[float | None, ...]
    weight_labels: tuple[str, ...]
    n_in_interval: tuple[int, ...]
    ll: float
    ll0: float
    lrt: float
    lrt_df: int
    lrt_p: float
    level: float

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict (plain floats, ``None`` where a quantity is not defined)."""
        return {
            "model": "stepfun",
            "weight_function": self.weight_function,
            "steps": list(self.steps),
            "method": self.method,
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "zval": self.zval,
            "pval": self.pval,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "tau2": self.tau2,
            "se_tau2": self.se_tau2,
            "tau": self.tau,
            "weights": list(self.weights),
            "se_weights": list(self.se_weights),
            "weight_labels": list(self.weight_labels),
            "n_in_interval": list(self.n_in_interval),
            "ll": self.ll,
            "ll0": self.ll0,
            "lrt": self.lrt,
            "lrt_df": self.lrt_df,
            "lrt_p": self.lrt_p,
            "level": self.level,
        }


_ALTERNATIVES: dict[str, tuple[Side, Direction]] = {
    "greater": ("one-sided", "positive"),
    "less": ("one-sided", "negative"),
    "two.sided": ("two-sided", "positive"),
}


def _as_weight_function(steps: WeightFunction | str | ArrayLike, alternative: str) -> WeightFunction:
    if isinstance(steps, WeightFunction):
        return steps
    if isinstance(steps, str):
        return parse_weight_function(steps)
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {sorted(_ALTERNATIVES)}, not {alternative!r}")
    side, direction = _ALTERNATIVES[alternative]
    cuts = sorted({float(s) for s in np.atleast_1d(np.asarray(steps, dtype=float))})
    if any(not 0.0 <= c <= 1.0 for c in cuts):
        raise ValueError(f"steps must lie between 0 and 1: {cuts}")
    cuts = [c for c in cuts if c < 1.0]
    return WeightFunction(side, tuple(cuts), direction)


class _Problem:
    """Data and free parameters of one fit: natural parameters ``(mu, tau2, omega[1:])``."""

    def __init__(self, yi: NDArray[np.float64], vi: NDArray[np.float64], wf: WeightFunction, fixed_tau2: bool):
        self.yi, self.vi, self.wf = yi, vi, wf
        self.y_thr = wf.thresholds(vi)
        self.groups = wf.groups(yi, vi)
        self.fixed_tau2 = fixed_tau2

    def unpack(self, theta: NDArray[np.float64]) -> tuple[float, float, NDArray[np.float64]]:
        if self.fixed_tau2:
            return float(theta[0]), 0.0, np.concatenate([[1.0], theta[1:]])
        return float(theta[0]), float(theta[1]), np.concatenate([[1.0], theta[2:]])

    def value_grad(self, theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        mu, tau2, omega = self.unpack(theta)
        ll, g = _loglik_grad(self.yi, self.vi, self.y_thr, self.groups, self.wf, mu, tau2, omega)
        keep = [0] + ([] if self.fixed_tau2 else [1]) + list(range(3, len(g)))
        return ll, g[keep]

    # metafor's working parameters: log(tau2) and a scaled logit of each weight
    def to_natural(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        theta = np.array(x, dtype=float)
        jac = np.ones_like(theta)
        start = 1
        if not self.fixed_tau2:
            theta[1] = math.exp(x[1])
            jac[1] = theta[1]
            start = 2
        w = OMEGA_MAX * special.expit(x[start:])
        theta[start:] = w
        jac[start:] = w * (1.0 - w / OMEGA_MAX)
        return theta, jac

    def hessian(self, theta: NDArray[np.float64], scale: NDArray[np.float64]) -> NDArray[np.float64]:
        """Hessian of the log-likelihood: Richardson-extrapolated central differences of the gradient."""

        def central(h: NDArray[np.float64]) -> NDArray[np.float64]:
            cols = []
            for j in range(len(theta)):
                e = np.zeros_like(theta)
                e[j] = h[j]
                cols.append((self.value_grad(theta + e)[1] - self.value_grad(theta - e)[1]) / (2.0 * h[j]))
            return np.column_stack(cols)

        h = _HESS_REL_STEP * np.maximum(np.abs(theta), scale)
        # tau2 and the weights are >= 0: keep the stencil inside (a weight near 0 gets tiny steps)
        first_w = 1 if self.fixed_tau2 else 2
        lower = np.zeros(len(theta), dtype=bool)
        lower[1:] = True
        lower[1 : first_w] = not self.fixed_tau2
        positive = lower & (theta > 0)
        h[positive] = np.minimum(h[positive], theta[positive] / 4.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            hess = (4.0 * central(h / 2.0) - central(h)) / 3.0
        return 0.5 * (hess + hess.T)


def _fit_ml(problem: _Problem, x0: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
    """Maximise the likelihood: BFGS in working parameters, then Newton in natural ones."""

    def objective(x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        theta, jac = problem.to_natural(x)
        ll, g = problem.value_grad(theta)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(x)
        return -ll, -g * jac

    res = optimize.minimize(objective, x0, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    theta, _ = problem.to_natural(res.x)
    ll = problem.value_grad(theta)[0]
    # Newton polish on the coordinates that are not at a bound.
    lo = np.full_like(theta, -np.inf)
    hi = np.full_like(theta, np.inf)
    first_w = 1 if problem.fixed_tau2 else 2
    if not problem.fixed_tau2:
        lo[1] = 0.0
    lo[first_w:], hi[first_w:] = 0.0, OMEGA_MAX
    scale = _scales(problem, theta)
    for _ in range(_NEWTON_MAXIT):
        free = (theta - lo > 1e-7 * scale) & (hi - theta > 1e-7 * scale)
        if not free.any():
            break
        _, g = problem.value_grad(theta)
        hess = problem.hessian(theta, scale)[np.ix_(free, free)]
        try:
            step_free = np.linalg.solve(-hess, g[free])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.linalg.eigvalsh(-hess) > 0):
            break
        step = np.zeros_like(theta)
        step[free] = step_free
        t = 1.0
        while t > 1e-6:
            cand = np.clip(theta + t * step, lo, hi)
            ll_c = problem.value_grad(cand)[0]
            if np.isfinite(ll_c) and ll_c >= ll - 1e-13 * abs(ll):
                break
            t /= 2.0
        else:
            break
        moved = np.max(np.abs(cand - theta) / np.maximum(np.abs(theta), scale))
        theta, ll = cand, max(ll, ll_c)
        if moved < _NEWTON_RTOL:
            break
    return theta, ll


def _scales(problem: _Problem, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Typical size of each natural parameter (for relative steps when a parameter is near 0)."""
    v = float(np.mean(problem.vi))
    scale = np.ones_like(theta)
    scale[0] = math.sqrt(v)
    if not problem.fixed_tau2:
        scale[1] = v
    return scale


def _ml_no_selection(yi: NDArray[np.float64], vi: NDArray[np.float64], fixed_tau2: bool) -> tuple[float, float, float]:
    """ML random-effects (or equal-effects) fit: ``(mu, tau2, loglik)`` (profile over tau2)."""

    def profile(tau2: float) -> tuple[float, float]:
        w = 1.0 / (vi + tau2)
        mu = float(np.sum(w * yi) / np.sum(w))
        ll = float(np.sum(-0.5 * np.log(2.0 * np.pi / w) - 0.5 * w * (yi - mu) ** 2))
        return mu, ll

    if fixed_tau2:
        mu, ll = profile(0.0)
        return mu, 0.0, ll
    upper = 10.0 * (float(np.var(yi)) + float(np.max(vi)))
    res = optimize.minimize_scalar(lambda t: -profile(t)[1], bounds=(0.0, upper), method="bounded",
                                   options={"xatol": 1e-14 * upper, "maxiter": 1000})
    tau2 = float(res.x)
    if -profile(0.0)[1] <= res.fun:
        tau2 = 0.0
    mu, ll = profile(tau2)
    return mu, tau2, ll


def selmodel(
    yi: ArrayLike,
    vi: ArrayLike,
    *,
    steps: WeightFunction | str | ArrayLike = (0.025,),
    method: str = "ML",
    alternative: str = "greater",
    level: float = 95.0,
) -> SelectionResult:
    """Fit a step-function selection model by maximum likelihood.

    Equal to metafor's ``selmodel(rma(yi, vi, method="ML"), type="stepfun", steps=steps,
    alternative=alternative)``: same likelihood, same parameter bounds (weights in ``[0, 100]``),
    the same likelihood-ratio test against the model without selection, and standard errors from
    the inverse Hessian in ``(mu, tau2, weights)``.

    Parameters
    ----------
    yi, vi
        Estimates (analysis scale) and sampling variances (all > 0).
    steps
        Cutpoints of the step function on the p-value scale set by ``alternative`` (1 implied),
        or a weight-function text such as ``"two-sided(0.05)"`` / ``"stepfun(0.025, 0.5)"``, or a
        :class:`WeightFunction` (then ``alternative`` is ignored).
    method
        ``"ML"`` (random effects; metafor refits any ``rma`` method with ML) or ``"EE"``.
    alternative
        ``"greater"`` (one-sided, selection for positive effects; metafor's default),
        ``"less"`` or ``"two.sided"``.
    level
        Confidence level in percent.

    Raises
    ------
    InputError
        Non-positive variances, too few studies, or a p-value interval without studies
        (its weight is not identified).
    """
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise InputError(f"yi and vi differ in length ({y.size} vs {v.size})")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise InputError("yi and vi must be finite for a selection model")
    if np.any(v <= 0):
        raise InputError("a selection model needs every sampling variance vi > 0", column="vi")
    if method not in ("ML", "EE"):
        raise ValueError(f"method must be 'ML' or 'EE' (metafor refits with ML), not {method!r}")
    wf = _as_weight_function(steps, alternative)
    fixed_tau2 = method == "EE"
    k = y.size
    n_par = 1 + (0 if fixed_tau2 else 1) + wf.n_omega - 1
    if k < n_par:
        raise InputError(f"{k} studies are too few to fit a selection model with {n_par} parameters")
    counts = np.bincount(wf.groups(y, v), minlength=wf.n_omega)
    empty = [lab for lab, n in zip(wf.labels, counts) if n == 0]
    if empty:
        raise InputError(
            f"no study has a p-value in {', '.join(empty)}: that weight cannot be estimated; "
            "choose other cutpoints for the step function"
        )

    mu0, tau20, ll0 = _ml_no_selection(y, v, fixed_tau2)
    problem = _Problem(y, v, wf, fixed_tau2)
    # metafor's start: the ML estimates, log(tau2 + 0.001), all weights 1
    x0 = [mu0] + ([] if fixed_tau2 else [math.log(tau20 + 0.001)])
    x0 += [math.log(1.0 / (OMEGA_MAX - 1.0))] * (wf.n_omega - 1)
    theta, ll = _fit_ml(problem, np.asarray(x0))
    if not fixed_tau2 and theta[1] < 1e-10 * float(np.mean(v)):
        # heterogeneity at its boundary: refit with tau2 = 0 and keep it if no worse
        fixed = _Problem(y, v, wf, True)
        th0, ll_b = _fit_ml(fixed, np.delete(np.asarray(x0), 1))
        if ll_b >= ll - 1e-12 * abs(ll):
            theta, ll = np.insert(th0, 1, 0.0), ll_b

    mu, tau2, omega = problem.unpack(theta)
    near = [lab for lab, w in zip(wf.labels[1:], omega[1:])
            if w <= _BOUND_TOL_LOW or w >= OMEGA_MAX - _BOUND_TOL_HIGH]
    if near:
        warnings.warn(
            f"selection model: the weight of {', '.join(near)} is at its bound (0 or {OMEGA_MAX:g}); "
            "treat the estimates with caution",
            DataWarning,
            stacklevel=2,
        )
    se, se_tau2, se_w = _standard_errors(problem, theta)
    crit = float(stats.norm.isf((1.0 - level / 100.0) / 2.0))
    zval = None if se is None else mu / se
    lrt = max(0.0, 2.0 * (ll - ll0))
    lrt_df = wf.n_omega - 1
    return SelectionResult(
        weight_function=wf.name,
        steps=wf.steps,
        method=method,
        k=k,
        estimate=mu,
        se=se,
        zval=zval,
        pval=None if zval is None else float(2.0 * stats.norm.sf(abs(zval))),
        ci_low=None if se is None else mu - crit * se,
        ci_high=None if se is None else mu + crit * se,
        tau2=tau2,
        se_tau2=se_tau2,
        tau=math.sqrt(tau2),
        weights=tuple(float(w) for w in omega),
        se_weights=(None, *se_w),
        weight_labels=wf.labels,
        n_in_interval=tuple(int(n) for n in counts),
        ll=ll,
        ll0=ll0,
        lrt=lrt,
        lrt_df=lrt_df,
        lrt_p=float(stats.chi2.sf(lrt, lrt_df)),
        level=float(level),
    )


def _standard_errors(
    problem: _Problem, theta: NDArray[np.float64]
) -> tuple[float | None, float | None, tuple[float | None, ...]]:
    """SEs from the inverse observed information; ``tau2`` on its boundary is held fixed."""
    n_w = problem.wf.n_omega - 1
    on_boundary = (not problem.fixed_tau2) and theta[1] == 0.0
    keep = np.ones(len(theta), dtype=bool)
    if on_boundary:
        keep[1] = False
    hess = problem.hessian(theta, _scales(problem, theta))[np.ix_(keep, keep)]
    try:
        cov_k = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        cov_k = None
    if cov_k is None or not np.all(np.isfinite(cov_k)) or np.any(np.diag(cov_k) <= 0):
        warnings.warn("selection model: the Hessian could not be inverted; no standard errors", DataWarning,
                      stacklevel=3)
        return None, None, (None,) * n_w
    cov = np.full((len(theta), len(theta)), np.nan)
    cov[np.ix_(keep, keep)] = cov_k
    sd = np.sqrt(np.diag(cov))
    se_tau2 = None if (problem.fixed_tau2 or on_boundary) else float(sd[1])
    return float(sd[0]), se_tau2, tuple(float(s) for s in sd[-n_w:])
