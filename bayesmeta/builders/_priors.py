"""Prior families → PyMC variables.

Two registries map :attr:`bayesmeta.priors.Prior.family` to a function that creates the
PyMC variable inside the current model context: :data:`SCALE_PRIORS` for heterogeneity
standard deviations (``tau``) and :data:`LOCATION_PRIORS` for locations (``mu``, ``beta``).

Every numeric prior parameter becomes a named scalar ``pm.Data`` container called
``"<var>_prior_<param>"`` (e.g. ``tau_prior_scale``, ``mu_prior_s``). Changing those
containers (``pm.set_data`` or nutpie's ``CompiledModel.with_data``) changes the prior without
rebuilding or recompiling the model; :func:`prior_parameter_values` gives the values for a new
set of priors and :func:`prior_structure` tells whether two sets of priors can share one
compiled model (same families, same finiteness of bounds).

Scale priors defined on tau² (``lognormal_tau2``, ``logt_tau2``) sample ``log_<var>2`` (e.g.
``log_tau2``) and make ``tau`` a deterministic, so the sampler works on the scale the prior is
written on. ``uniform(lower, inf)`` (improper) samples ``<var>_excess ~ HalfFlat`` and sets
``tau = lower + <var>_excess``. ``jeffreys`` depends on the within-study variances and has no
PyMC form here: it raises :class:`~bayesmeta.errors.SpecError` (exact engine only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pymc as pm
import pytensor.tensor as pt

from bayesmeta.errors import SpecError
from bayesmeta.priors import Prior

__all__ = [
    "LOCATION_PRIORS",
    "PARAM_NAMES",
    "SCALE_PRIORS",
    "add_location_prior",
    "add_scale_prior",
    "prior_data_name",
    "prior_parameter_values",
    "prior_structure",
]

Dims = str | Sequence[str] | None
#: ``(var_name, params, dims) -> tensor``; ``params`` maps parameter name → scalar tensor.
PriorFactory = Callable[[str, Mapping[str, Any], Dims], Any]

#: Parameter names of each family, in the order of ``Prior.params``.
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "halfnormal": ("scale",),
    "halfcauchy": ("scale",),
    "halft": ("nu", "scale"),
    "uniform": ("lower", "upper"),
    "exponential": ("rate",),
    "lognormal": ("m", "s"),
    "lognormal_tau2": ("m", "s"),
    "logt_tau2": ("m", "s", "nu"),
    "jeffreys": (),
    "normal": ("m", "s"),
    "student_t": ("nu", "m", "s"),
    "flat": (),
}


def _log_tau2(name: str, dist: Callable[..., Any], dims: Dims) -> Any:
    log_v2 = dist(f"log_{name}2", dims=dims)
    return pm.Deterministic(name, pt.exp(0.5 * log_v2), dims=dims)


def _uniform(name: str, p: Mapping[str, Any], dims: Dims) -> Any:
    if "upper" in p:
        return pm.Uniform(name, lower=p["lower"], upper=p["upper"], dims=dims)
    excess = pm.HalfFlat(f"{name}_excess", dims=dims)
    return pm.Deterministic(name, p["lower"] + excess, dims=dims)


SCALE_PRIORS: dict[str, PriorFactory] = {
    "halfnormal": lambda n, p, d: pm.HalfNormal(n, sigma=p["scale"], dims=d),
    "halfcauchy": lambda n, p, d: pm.HalfCauchy(n, beta=p["scale"], dims=d),
    "halft": lambda n, p, d: pm.HalfStudentT(n, nu=p["nu"], sigma=p["scale"], dims=d),
    "uniform": _uniform,
    "exponential": lambda n, p, d: pm.Exponential(n, lam=p["rate"], dims=d),
    "lognormal": lambda n, p, d: pm.LogNormal(n, mu=p["m"], sigma=p["s"], dims=d),
    "lognormal_tau2": lambda n, p, d: _log_tau2(
        n, lambda nm, dims: pm.Normal(nm, mu=p["m"], sigma=p["s"], dims=dims), d
    ),
    "logt_tau2": lambda n, p, d: _log_tau2(
        n, lambda nm, dims: pm.StudentT(nm, nu=p["nu"], mu=p["m"], sigma=p["s"], dims=dims), d
    ),
}

LOCATION_PRIORS: dict[str, PriorFactory] = {
    "normal": lambda n, p, d: pm.Normal(n, mu=p["m"], sigma=p["s"], dims=d),
    "student_t": lambda n, p, d: pm.StudentT(n, nu=p["nu"], mu=p["m"], sigma=p["s"], dims=d),
    "flat": lambda n, p, d: pm.Flat(n, dims=d),
}

_REGISTRIES = {"scale": SCALE_PRIORS, "location": LOCATION_PRIORS}


def prior_data_name(var: str, param: str) -> str:
    """Name of the ``pm.Data`` container holding parameter ``param`` of ``var``'s prior."""
    return f"{var}_prior_{param}"


def _numeric_params(prior: Prior) -> dict[str, float]:
    names = PARAM_NAMES.get(prior.family)
    if names is None or len(names) != len(prior.params):
        raise SpecError(f"prior '{prior.text}': family '{prior.family}' has no PyMC form here")
    out = dict(zip(names, (float(v) for v in prior.params), strict=True))
    if prior.family == "uniform" and math.isinf(out["upper"]):
        del out["upper"]  # improper flat prior: no upper bound in the graph
    return out


def _check(var: str, prior: Prior, kind: str) -> PriorFactory:
    if prior.family == "jeffreys":
        raise SpecError(
            f"prior '{prior.text}' for {var} depends on the within-study variances and is "
            "available with the exact engine only (engine = \"exact\" or \"auto\", normal family, "
            "no moderators)",
            key=f"priors.{var}",
        )
    registry = _REGISTRIES[kind]
    factory = registry.get(prior.family)
    if factory is None:
        raise SpecError(
            f"prior '{prior.text}' cannot be used for {var}: it needs a {kind} prior, one of "
            f"{', '.join(sorted(registry))}",
            key=f"priors.{var}",
        )
    return factory


def _add(var: str, prior: Prior, kind: str, dims: Dims) -> Any:
    factory = _check(var, prior, kind)
    params = {
        name: pm.Data(prior_data_name(var, name), value)
        for name, value in _numeric_params(prior).items()
    }
    return factory(var, params, dims)


def add_scale_prior(var: str, prior: Prior, *, dims: Dims = None) -> Any:
    """Create the heterogeneity SD ``var`` (e.g. ``"tau"``) with ``prior`` in the model context.

    Returns the tau tensor (a free variable, or a deterministic for tau²-scale and improper
    uniform priors). Raises :class:`SpecError` for ``jeffreys`` and location families.
    """
    return _add(var, prior, "scale", dims)


def add_location_prior(var: str, prior: Prior, *, dims: Dims = None) -> Any:
    """Create the location variable ``var`` (``"mu"``, ``"beta"``) with ``prior``."""
    return _add(var, prior, "location", dims)


def prior_parameter_values(priors: Mapping[str, Any]) -> dict[str, float]:
    """``{"tau_prior_scale": 0.5, ...}``: the ``pm.Data`` values that encode ``priors``.

    Entries that are not :class:`Prior` objects (e.g. an ``omega`` string handled by its own
    builder) are skipped.
    """
    return {
        prior_data_name(var, name): value
        for var, prior in priors.items() if isinstance(prior, Prior)
        for name, value in _numeric_params(prior).items()
    }


def prior_structure(priors: Mapping[str, Any]) -> tuple[tuple[Any, ...], ...]:
    """Hashable key: two prior sets with equal keys can share one built/compiled model
    (non-:class:`Prior` entries must be equal)."""
    return tuple(sorted(
        (var, p.family, tuple(_numeric_params(p))) if isinstance(p, Prior)
        else (var, "raw", (str(p),))
        for var, p in priors.items()
    ))
