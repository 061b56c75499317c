"""Exact normal–normal engine: quadrature over tau, mu integrated out analytically.

See :mod:`bayesmeta.exact.engine` for the method. Public API::

    post = ExactNormalNormal(yi, vi, tau_prior="halfnormal(0.5)", mu_prior="flat").fit()
    post.summary(); post.mu.ppf(0.975); post.to_datatree(draws=1000, seed=1)
"""

from bayesmeta.exact.engine import ExactNormalNormal, ExactPosterior, typical_within_variance

__all__ = ["ExactNormalNormal", "ExactPosterior", "typical_within_variance"]
