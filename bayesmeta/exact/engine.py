"""Exact posterior of the normal–normal random-effects model by 1-D quadrature over tau.

Model (Röver 2020, *J Stat Softw* 93(6), Sec. 2): ``y_i | theta_i ~ N(theta_i, v_i)``,
``theta_i | mu, tau ~ N(mu, tau²)``, ``mu ~ N(m0, s0²)`` or flat, ``tau ~`` any scale prior of
:mod:`bayesmeta.priors` (including the data-dependent ``jeffreys``).

* mu is integrated out analytically: ``p(y | tau)`` is a normal integral and
  ``p(mu | tau, y) = N(M(tau), S(tau)²)`` with ``S⁻² = Σ w_i (+ 1/s0²)``, ``w_i = 1/(v_i + tau²)``.
* ``p(log tau | y) ∝ p(tau) tau p(y | tau)`` is represented by adaptive piecewise Chebyshev
  interpolation (relative accuracy ~1e-13), which gives its normalising constant (the marginal
  likelihood), CDF, quantiles and a Fejér quadrature rule in ``log tau``.
* Every other marginal (mu, a new study's effect ``theta_new``, the shrinkage estimates
  ``theta_i``) is a mixture of conditional normals over that quadrature rule. This plays the role
  of Röver's DIRECT mixture with a bounded divergence between neighbouring components: here the
  mixture weights are those of a high-order quadrature rule whose panels are refined until the
  density is resolved, so the mixture approximates the marginal to near machine precision.
* Second moments are completed by an analytic tail term beyond the last panel (power-law tails
  in tau); moments that diverge (e.g. E[tau] under a uniform tau prior with k = 3) are ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from bayesmeta.errors import InputError, SpecError
from bayesmeta.exact._cheb import PiecewiseCheb, build_piecewise_cheb
from bayesmeta.exact._marginals import NormalMixture, TauMarginal
from bayesmeta.priors import Prior, parse_prior

__all__ = ["ExactNormalNormal", "ExactPosterior", "typical_within_variance"]

_LOG_2PI = math.log(2.0 * math.pi)
TAU_MIN, TAU_MAX = 1e-150, 1e150  # tau² stays a finite double
LOG_NEGLIGIBLE = 62.0  # density below exp(-62) ≈ 1e-27 of the peak is outside the panels
TAIL_RATE_MIN = 0.05  # a tail decaying slower than exp(-0.05 u) counts as divergent


def typical_within_variance(vi: np.ndarray) -> float:
    """Higgins–Thompson typical within-study variance ``(k-1) Σw / ((Σw)² - Σw²)``, ``w = 1/v``.

    For a single study this is its own variance.
    """
    vi = np.asarray(vi, dtype=float)
    if vi.size == 1:
        return float(vi[0])
    w = 1.0 / vi
    return float((vi.size - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum()))


def _as_prior(p: Prior | str, target: str, what: str) -> Prior:
    prior = parse_prior(p, target=target) if isinstance(p, str) else p
    if not isinstance(prior, Prior):
        raise SpecError(f"{what} must be a prior string or a Prior, got {p!r}")
    if prior.target != target:
        raise SpecError(f"prior '{prior.text}' for {what} is a {prior.target} prior; "
                        f"a {target} prior is needed")
    return prior


class ExactNormalNormal:
    """Exact (quadrature) Bayesian normal–normal random-effects meta-analysis.

    Parameters
    ----------
    yi, vi
        Effect estimates and their within-study variances (``vi > 0``).
    tau_prior
        Scale prior for tau (a :class:`~bayesmeta.priors.Prior` or its text).
    mu_prior
        ``normal(m, s)`` or ``flat`` (other location priors cannot be integrated analytically).
    labels
        Study labels (default ``"1"``, ``"2"``, ...).
    """

    def __init__(self, yi: Sequence[float], vi: Sequence[float], *, tau_prior: Prior | str,
                 mu_prior: Prior | str, labels: Sequence[str] | None = None) -> None:
        y = np.asarray(yi, dtype=float).ravel()
        v = np.asarray(vi, dtype=float).ravel()
        if y.size == 0:
            raise InputError("the exact engine needs at least one study")
        if y.shape != v.shape:
            raise InputError(f"yi and vi differ in length ({y.size} and {v.size})")
        for name, arr, ok in (("yi", y, np.isfinite(y)), ("vi", v, np.isfinite(v) & (v > 0))):
            if not ok.all():
                i = int(np.argmin(ok))
                raise InputError(f"{name}[{i}] must be a finite number{' > 0' if name == 'vi' else ''}, "
                                 f"got {arr[i]!r}", column=name)
        self.yi, self.vi = y, v
        self.tau_prior = _as_prior(tau_prior, "scale", "tau")
        self.mu_prior = _as_prior(mu_prior, "location", "mu")
        if self.mu_prior.family not in ("normal", "flat"):
            raise SpecError(f"the exact engine needs a normal or flat prior for mu, got "
                            f"'{self.mu_prior.text}' (use the MCMC engine)", key="priors.mu")
        labels = [str(i + 1) for i in range(y.size)] if labels is None else [str(s) for s in labels]
        if len(labels) != y.size:
            raise InputError(f"{len(labels)} labels for {y.size} studies", column="label")
        self.labels = tuple(labels)

    # --- conditional quantities given tau (vectorised over a 1-D array of tau) -----------------

    def conditional(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(M, S, log p(y | tau))``: mean and sd of ``mu | tau, y`` and the marginal likelihood.

        With a flat mu prior, ``p(y | tau)`` is the integral against Lebesgue measure
        (the restricted likelihood).
        """
        tau = np.asarray(tau, dtype=float)
        y, v = self.yi, self.vi
        V = v + (tau**2)[..., None]
        w = 1.0 / V
        sw = w.sum(-1)
        if self.mu_prior.family == "normal":
            m0, s0 = self.mu_prior.params
            prec = sw + 1.0 / s0**2
            M = ((w * y).sum(-1) + m0 / s0**2) / prec
            Q = (w * (y - M[..., None]) ** 2).sum(-1) + (M - m0) ** 2 / s0**2
            loglik = (-0.5 * y.size * _LOG_2PI - 0.5 * np.log(V).sum(-1) - math.log(s0)
                      - 0.5 * np.log(prec) - 0.5 * Q)
        else:
            prec = sw
            M = (w * y).sum(-1) / prec
            Q = (w * (y - M[..., None]) ** 2).sum(-1)
            loglik = (-0.5 * (y.size - 1) * _LOG_2PI - 0.5 * np.log(V).sum(-1)
                      - 0.5 * np.log(prec) - 0.5 * Q)
        return M, 1.0 / np.sqrt(prec), loglik

    def _log_joint_u(self, u: np.ndarray) -> np.ndarray:
        """Unnormalised log posterior density of ``u = log tau``."""
        tau = np.exp(u)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.asarray(self.tau_prior.logpdf(tau, vi=self.vi if self.tau_prior.data_dependent
                                                  else None), dtype=float)
        out = lp + u + self.conditional(tau)[2]
        return np.where(np.isnan(out), -np.inf, out)

    # --- fitting ------------------------------------------------------------------------------

    def _domain(self) -> tuple[np.ndarray, float, bool]:
        """Initial panel edges in ``u``, the log density's peak and whether the upper end is open."""
        lo, hi = self.tau_prior.support
        u_min = math.log(max(lo, TAU_MIN))
        upper_open = not math.isfinite(hi)
        u_max = math.log(min(hi, TAU_MAX)) if not upper_open else math.log(TAU_MAX)
        scan = [np.linspace(u_min, u_max, 1601)]
        if self.tau_prior.proper:  # put points where the prior has its mass (narrow priors)
            p = np.clip(np.exp(np.linspace(-35.0, 0.0, 200)), 1e-15, 0.5)
            q = self.tau_prior.ppf(np.concatenate([p, 1.0 - p]))
            q = q[(q > math.exp(u_min)) & (q < math.exp(u_max))]
            scan.append(np.log(q))
        sd_scale = np.log(np.sqrt(self.vi))  # where the likelihood changes
        scan.append(np.concatenate([sd_scale + d for d in np.linspace(-6.0, 6.0, 49)]))
        u = np.unique(np.clip(np.concatenate(scan), u_min, u_max))
        lj = self._log_joint_u(u)
        peak = float(np.max(lj))
        if not math.isfinite(peak):
            raise SpecError("the posterior of tau is zero everywhere: check the tau prior")
        keep = np.flatnonzero(lj > peak - LOG_NEGLIGIBLE)
        i0, i1 = max(keep[0] - 1, 0), min(keep[-1] + 1, u.size - 1)
        if upper_open and i1 == u.size - 1 and lj[-1] > peak - LOG_NEGLIGIBLE:
            raise SpecError(
                f"the posterior of tau is improper (or too heavy-tailed) with tau prior "
                f"'{self.tau_prior.text}', mu prior '{self.mu_prior.text}' and k = {self.yi.size} "
                "studies: use a proper tau prior or more studies"
            )
        a, b = u[i0], u[i1]
        # initial edges: crude posterior quantiles on the scan grid plus a uniform grid
        us, ls = u[i0:i1 + 1], lj[i0:i1 + 1]
        dens = np.exp(ls - peak)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(us))])
        cdf /= cdf[-1] if cdf[-1] > 0 else 1.0
        probs = np.concatenate([[1e-12, 1e-8, 1e-5, 1e-3], np.linspace(0.02, 0.98, 13),
                                [1 - 1e-3, 1 - 1e-5, 1 - 1e-8, 1 - 1e-12]])
        q_edges = np.interp(probs, cdf, us)
        edges = np.unique(np.concatenate([np.linspace(a, b, 9), q_edges, [a, b]]))
        edges = edges[(edges >= a) & (edges <= b)]
        return edges, peak, upper_open

    def fit(self) -> ExactPosterior:
        """Compute the posterior (milliseconds)."""
        edges, peak, upper_open = self._domain()
        cheb = build_piecewise_cheb(self._log_joint_u, edges, peak)
        return ExactPosterior(model=self, cheb=cheb, upper_open=upper_open)


@dataclass(frozen=True, eq=False)
class ExactPosterior:
    """Exact posterior of the normal–normal model (see :mod:`bayesmeta.exact.engine`).

    Marginals are available as :attr:`mu`, :attr:`tau`, :attr:`tau2`, :attr:`i2` (percent),
    :attr:`theta_new` and :meth:`theta` (study ``i``); each has ``pdf``, ``cdf``, ``ppf``,
    ``mean``, ``sd``, ``median``, ``mode()`` and ``interval(level, kind)``.
    """

    model: ExactNormalNormal
    cheb: PiecewiseCheb = field(repr=False)
    upper_open: bool = True

    # --- basic facts ---------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def k(self) -> int:
        return int(self.model.yi.size)

    @cached_property
    def s2(self) -> float:
        """Typical within-study variance used for I²."""
        return typical_within_variance(self.model.vi)

    @cached_property
    def log_evidence(self) -> float:
        """``log ∫∫ p(y | mu, tau) p(mu) p(tau) dmu dtau`` (flat/improper priors: up to a constant)."""
        return float(self.cheb.log_scale + math.log(self.cheb.total))

    @property
    def log_marginal_likelihood(self) -> float | None:
        """Log marginal likelihood (for Bayes factors); ``None`` unless both priors are proper."""
        if self.model.tau_prior.proper and self.model.mu_prior.proper:
            return self.log_evidence
        return None

    def log_density_tau(self, tau: np.ndarray) -> np.ndarray:
        """Normalised log posterior density of tau."""
        tau = np.asarray(tau, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.log(tau)
            out = self.model._log_joint_u(np.where(tau > 0, u, 0.0)) - u - self.log_evidence
        return np.where(tau > 0, out, -np.inf)

    # --- quadrature rule over log tau ------------------------------------------------------------

    @cached_property
    def _rule(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(tau_j, W_j, M_j, S_j)``: nodes, normalised weights and conditional moments of mu."""
        c = self.cheb
        keep = c.fvals > 0
        tau = np.exp(c.nodes[keep])
        W = c.qweights[keep] * c.fvals[keep] / c.total
        M, S, _ = self.model.conditional(tau)
        return tau, W, M, S

    def _expect(self, g: np.ndarray, log_g_tail=None) -> float:
        """``E[g(tau)]`` over the rule, plus the tail beyond the last panel for positive ``g``."""
        tau, W, _, _ = self._rule
        value = float(W @ g)
        if log_g_tail is None or not self.upper_open:
            return value
        b = self.cheb.b
        pts = np.array([b, b + 1.0])
        lf = self.model._log_joint_u(pts) - self.log_evidence + log_g_tail(np.exp(pts))
        rate = float(lf[0] - lf[1])
        if rate <= TAIL_RATE_MIN:
            return math.inf
        return value + math.exp(lf[0]) / rate

    # --- marginals -------------------------------------------------------------------------------

    def _tau_like(self, to_x, to_tau, log_dtau_dx, log_x_of_tau, x_at_inf: float) -> TauMarginal:
        tau = self._rule[0]
        x = to_x(tau)
        m1 = self._expect(x, lambda t: log_x_of_tau(t))
        m2 = self._expect(x * x, lambda t: 2.0 * log_x_of_tau(t))
        lo, hi = self.model.tau_prior.support
        lower = float(to_x(np.array([lo]))[0])
        upper = float(to_x(np.array([hi]))[0]) if math.isfinite(hi) else x_at_inf
        return TauMarginal(cheb=self.cheb, log_post_tau=self.log_density_tau, to_x=to_x,
                           to_tau=to_tau, log_dtau_dx=log_dtau_dx, moments=(m1, m2),
                           lower=lower, upper=upper)

    @cached_property
    def tau(self) -> TauMarginal:
        """Marginal posterior of tau."""
        return self._tau_like(lambda t: t, lambda x: x, lambda x: np.zeros_like(x), np.log, math.inf)

    @cached_property
    def tau2(self) -> TauMarginal:
        """Marginal posterior of tau²."""
        return self._tau_like(lambda t: t * t, np.sqrt, lambda x: -math.log(2.0) - 0.5 * np.log(x),
                              lambda t: 2.0 * np.log(t), math.inf)

    @cached_property
    def i2(self) -> TauMarginal:
        """Marginal posterior of I² in percent, ``100 tau² / (tau² + s²)``."""
        s2 = self.s2

        def to_x(t):
            return 100.0 * t * t / (t * t + s2)

        def to_tau(x):
            f = np.clip(np.asarray(x, dtype=float) / 100.0, 0.0, 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.sqrt(s2 * f / (1.0 - f))

        def log_dtau_dx(x):
            f = np.asarray(x, dtype=float) / 100.0
            with np.errstate(divide="ignore", invalid="ignore"):
                # tau = sqrt(s2 f/(1-f)); dtau/df = sqrt(s2) / (2 sqrt(f) (1-f)^{3/2})
                return (0.5 * math.log(s2) - math.log(2.0) - 0.5 * np.log(f) - 1.5 * np.log1p(-f)
                        - math.log(100.0))

        return self._tau_like(to_x, to_tau, log_dtau_dx, lambda t: np.log(to_x(t)), 100.0)

    def _mixture(self, means: np.ndarray, sds: np.ndarray, second_tail) -> NormalMixture:
        _, W, _, _ = self._rule
        m1 = float(W @ means)
        m2 = self._expect(sds**2 + means**2, second_tail)
        return NormalMixture(weights=W, means=means, sds=sds, first_moment=m1, second_moment=m2)

    def _tail_sq(self, extra_tau2: bool):
        def log_g(t):
            M, S, _ = self.model.conditional(t)
            return np.log(S**2 + M**2 + (t * t if extra_tau2 else 0.0))
        return log_g

    @cached_property
    def mu(self) -> NormalMixture:
        """Marginal posterior of mu."""
        _, _, M, S = self._rule
        return self._mixture(M, S, self._tail_sq(False))

    @cached_property
    def theta_new(self) -> NormalMixture:
        """Posterior predictive distribution of a new study's true effect."""
        tau, _, M, S = self._rule
        return self._mixture(M, np.sqrt(S**2 + tau**2), self._tail_sq(True))

    def theta(self, i: int | str) -> NormalMixture:
        """Shrinkage (study-specific) posterior of theta_i (index or label)."""
        i = self.labels.index(i) if isinstance(i, str) else int(i)
        return self._thetas[i]

    @cached_property
    def _thetas(self) -> tuple[NormalMixture, ...]:
        tau, _, M, S = self._rule
        out = []
        for yi, vi in zip(self.model.yi, self.model.vi, strict=True):
            b = vi / (vi + tau**2)
            means = b * M + (1.0 - b) * yi
            sds = np.sqrt((1.0 - b) * vi + b * b * S**2)
            out.append(self._mixture(means, sds, None))
        return tuple(out)

    @property
    def p_mu_positive(self) -> float:
        """Posterior probability that mu > 0."""
        return float(1.0 - self.mu.cdf(0.0))

    # --- summaries -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Posterior summaries (``median, mean, sd, q025, q975`` per quantity) and shrinkage."""
        return {
            "mu": self.mu.summary(),
            "tau": self.tau.summary(),
            "tau2": self.tau2.summary(),
            "i2": self.i2.summary(),
            "theta_new": self.theta_new.summary(),
            "p_mu_positive": self.p_mu_positive,
            "theta": {lab: self.shrinkage_row(i) for i, lab in enumerate(self.labels)},
        }

    def shrinkage_row(self, i: int) -> dict[str, float]:
        """Observed ``y``, ``sei`` and the shrinkage summary of study ``i``."""
        row = {"y": float(self.model.yi[i]), "sei": float(math.sqrt(self.model.vi[i]))}
        row.update(self.theta(i).summary())
        return row

    def shrinkage_table(self) -> list[dict[str, Any]]:
        """One row per study: label, y, sei, median, mean, sd, q025, q975."""
        return [{"study": lab, **self.shrinkage_row(i)} for i, lab in enumerate(self.labels)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result (floats; infinite moments stay ``inf`` for the JSON writer)."""
        out = self.summary()
        out.update({
            "engine": "exact",
            "k": self.k,
            "tau_prior": self.model.tau_prior.text,
            "mu_prior": self.model.mu_prior.text,
            "log_marginal_likelihood": self.log_marginal_likelihood,
            "shrinkage": self.shrinkage_table(),
        })
        return out

    def to_datatree(self, draws: int = 1000, *, chains: int = 4, seed: int = 0):
        """Independent posterior draws as an ArviZ-style :class:`xarray.DataTree`.

        See :func:`bayesmeta.exact._tree.posterior_datatree`; ``draws`` is per chain.
        """
        from bayesmeta.exact._tree import posterior_datatree

        return posterior_datatree(self, draws=draws, chains=chains, seed=seed)
