"""Power-scaling prior sensitivity of the base fit (Kallioinen, Paananen, Bürkner & Vehtari 2024,
*Stat Comput* 34:57), as a JSON-able dict.

Only the top-level priors are power-scaled — ``mu`` and ``tau`` (for MCMC their free
parameterisation: ``log_tau2`` for priors on tau², ``tau_excess`` for ``uniform(lower, inf)``)
— together with the per-study log-likelihood ``y``; the diagnostic is ``arviz_stats.psense_summary``
with its default perturbation ``alpha in (0.99, 1.01)`` and threshold 0.05.

* MCMC fits: the log prior comes from the PyMC model (:func:`bayesmeta.diagnostics.add_log_prior`).
* Exact fits: independent draws of the exact posterior (``ExactPosterior.to_datatree``, whose
  ``y`` is the marginal log-likelihood ``log N(y_i | mu, v_i + tau²)``) and the prior densities of
  :mod:`bayesmeta.priors` (:func:`bayesmeta.diagnostics.add_log_prior_from_densities`). A flat
  prior has a constant log density, so power-scaling it changes nothing (sensitivity 0).

Variables with a subgroup dimension are reported per level (``"mu[early]"``).
Flat and uniform priors (constant densities) are reported with prior sensitivity 0 and listed
under ``constant_priors``; the diagnosis labels are those of ``psense_summary``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PSENSE_THRESHOLD", "exact_psense", "mcmc_psense"]

PSENSE_THRESHOLD = 0.05  # Kallioinen et al. (2024), Sec. 4: sensitivity above 0.05 is flagged
PSENSE_ALPHAS = (0.99, 1.01)
PSENSE_VARS = ("mu", "tau")
#: Free variables that carry the top-level priors (tau has alternative parameterisations).
TOP_LEVEL_FREE = ("mu", "tau", "log_tau2", "tau_excess")
#: Prior families with a constant density on their support (power-scaling changes nothing).
CONSTANT_FAMILIES = ("flat", "uniform")
#: The PyMC random-variable ops of those families (``uniform(lower, inf)`` is a ``HalfFlat``).
CONSTANT_OPS = ("FlatRV", "HalfFlatRV", "UniformRV")
METHOD = ("power-scaling sensitivity (Kallioinen et al. 2024, Stat Comput 34:57), "
          "arviz_stats.psense_summary")


def _diagnosis(prior: float, likelihood: float) -> str:
    """The labels of ``arviz_stats.psense_summary`` (Kallioinen et al. 2024, Sec. 4)."""
    if prior >= PSENSE_THRESHOLD and likelihood >= PSENSE_THRESHOLD:
        return "potential prior-data conflict"
    if prior > PSENSE_THRESHOLD > likelihood:
        return "potential strong prior / weak likelihood"
    return "✓"


def _elements(da: Any) -> list[tuple[str, tuple[int, ...]]]:
    """``("mu", ())`` for a scalar, ``("mu[level]", (i,))`` per element of a 1-D variable."""
    if da.ndim == 0:
        return [(str(da.name), ())]
    dim = da.dims[0]
    return [(f"{da.name}[{c}]", (i,)) for i, c in enumerate(da[dim].values)]


def _summary(tree: Any, prior_vars: list[str], constant: list[str], engine: str) -> dict[str, Any]:
    """Prior and likelihood sensitivity of mu and tau; ``constant`` priors have sensitivity 0.

    Power-scaling a constant density (``flat``, ``uniform``) leaves the posterior unchanged, so
    its sensitivity is 0 by definition; those priors are left out of the perturbation (PSIS with
    constant weights only adds noise and warnings).
    """
    import arviz_stats as azs

    scaled = [v for v in prior_vars if v not in constant]
    like = azs.psense(tree, var_names=list(PSENSE_VARS), group="likelihood", alphas=PSENSE_ALPHAS,
                      group_var_names=["y"])
    prior = (azs.psense(tree, var_names=list(PSENSE_VARS), group="prior", alphas=PSENSE_ALPHAS,
                        group_var_names=scaled) if scaled else None)
    variables = {}
    for name in PSENSE_VARS:
        lk_da = like[name]
        for label, index in _elements(lk_da):
            lk = float(lk_da.values[index])
            p = float(prior[name].values[index]) if prior is not None else 0.0
            variables[label] = {"prior": p, "likelihood": lk, "diagnosis": _diagnosis(p, lk)}
    return {"method": METHOD, "engine": engine, "threshold": PSENSE_THRESHOLD,
            "alphas": list(PSENSE_ALPHAS), "prior_var_names": scaled,
            "constant_priors": constant, "likelihood_var_names": ["y"], "variables": variables}


def mcmc_psense(tree: Any, model: Any) -> dict[str, Any]:
    """Power-scaling sensitivity of ``mu`` and ``tau`` of an MCMC fit of ``model``."""
    from bayesmeta.diagnostics import add_log_prior

    free = {rv.name for rv in model.free_RVs}
    prior_vars = [v for v in TOP_LEVEL_FREE if v in free]
    constant = [v for v in prior_vars if model[v].owner.op.__class__.__name__ in CONSTANT_OPS]
    return _summary(add_log_prior(tree, model, var_names=prior_vars), prior_vars, constant, "mcmc")


def exact_psense(yi: Any, vi: Any, tau_prior: str, mu_prior: str, *, draws: int, chains: int,
                 seed: int) -> dict[str, Any]:
    """Power-scaling sensitivity of the exact posterior, from ``chains x draws`` exact draws."""
    from bayesmeta.diagnostics import add_log_prior_from_densities
    from bayesmeta.exact import ExactNormalNormal

    model = ExactNormalNormal(yi, vi, tau_prior=tau_prior, mu_prior=mu_prior)
    tree = model.fit().to_datatree(draws=draws, chains=chains, seed=seed)
    v = np.asarray(vi, dtype=float)
    densities = {
        "mu": lambda x: model.mu_prior.logpdf(x),
        "tau": lambda x: model.tau_prior.logpdf(x, vi=v if model.tau_prior.data_dependent else None),
    }
    constant = [name for name, p in (("mu", model.mu_prior), ("tau", model.tau_prior))
                if p.family in CONSTANT_FAMILIES]
    return _summary(add_log_prior_from_densities(tree, densities), list(PSENSE_VARS), constant,
                    "exact")
