"""Model builders: data + settings → ``pm.Model``. The spec knows nothing of PyMC.

A *family* is registered with :func:`register_family` under a name and maps to a builder with
the signature::

    def build_xxx(
        data: pd.DataFrame,                  # analysis frame (index = spreadsheet row)
        *,
        priors: Mapping[str, Prior],         # "mu", "tau", "beta" (with moderators), ...
        moderators: Sequence[str] = (),
        subgroup: str | None = None,
        subgroup_tau: str = "separate",      # "separate" | "shared"
        **options,                           # family-specific (e.g. bias="stepfun(0.025)")
    ) -> pm.Model

Every model must have the coordinate ``study`` (the ``label`` column) and the variables of the
architecture contract: ``mu``, ``tau``, ``tau2``, ``i2`` (percent), ``theta`` (dim ``study``),
``theta_new``, ``beta`` (dim ``coef``) with moderators; prior parameters as ``pm.Data``
containers named ``<var>_prior_<param>`` (use :mod:`bayesmeta.builders._priors`) so the
inference layer can refit with new prior parameters without recompiling. The random-effects
part is best made with :func:`bayesmeta.builders.regression.add_random_effects`.

``FamilyEntry.observed`` lists the observed variables of a family (``("y",)`` for the normal
model, ``("y_t", "y_c")`` for the binomial one). The per-study log-likelihood ``y`` used for
PSIS-LOO comes from the family's ``log_likelihood`` function when it has one (both built-in
families integrate each study's own latent parameters out: ``theta_i`` for the normal model,
``theta_i`` and ``p_max_i`` for the binomial one), else from the pointwise log-likelihoods of
``observed`` summed.

Families whose module is not imported here (``selection``, written in
``bayesmeta/builders/selection.py``) are listed in :data:`LAZY_FAMILIES` and imported on
first use; that module registers itself with ``@register_family("selection", observed=...)``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayesmeta.errors import SpecError
from bayesmeta.priors import Prior

__all__ = [
    "FAMILIES",
    "LAZY_FAMILIES",
    "FamilyEntry",
    "build_model",
    "get_family",
    "register_family",
]

Builder = Callable[..., pm.Model]
PosteriorPredictive = Callable[[xr.DataTree, np.random.Generator], dict[str, xr.DataArray]]
LogLikelihood = Callable[[xr.DataTree], dict[str, xr.DataArray]]


@dataclass(frozen=True)
class FamilyEntry:
    """A registered model family.

    Attributes
    ----------
    name
        Registry key (``"normal"``, ``"binomial"``, ``"selection"``).
    build
        The builder function (signature in the module docstring).
    observed
        Observed variables that make up the per-study log-likelihood ``y``.
    priors
        Names of the priors the family uses (besides ``beta``, needed with moderators).
    description
        One line for listings.
    posterior_predictive
        Optional cheap NumPy replicate of the observed data:
        ``(tree, rng) -> {name: DataArray (chain, draw, study)}``, reading ``posterior`` and
        ``constant_data``; None to skip the ``posterior_predictive`` group.
    log_likelihood
        Optional NumPy pointwise log-likelihood ``tree -> {name: DataArray (chain, draw,
        study)}`` for every name in ``observed`` (reads ``posterior``, ``observed_data``,
        ``constant_data``). None: the inference layer uses ``pm.compute_log_likelihood``, which
        compiles a function on every fit.
    """

    name: str
    build: Builder
    observed: tuple[str, ...] = ("y",)
    priors: tuple[str, ...] = ("mu", "tau")
    description: str = ""
    posterior_predictive: PosteriorPredictive | None = None
    log_likelihood: LogLikelihood | None = None


FAMILIES: dict[str, FamilyEntry] = {}

#: Families registered by modules imported on first use: name → module.
LAZY_FAMILIES: dict[str, str] = {"selection": "bayesmeta.builders.selection"}


def register_family(
    name: str,
    *,
    observed: Sequence[str] = ("y",),
    priors: Sequence[str] = ("mu", "tau"),
    description: str = "",
    posterior_predictive: PosteriorPredictive | None = None,
    log_likelihood: LogLikelihood | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder as family ``name`` (see :class:`FamilyEntry`)."""

    def deco(func: Builder) -> Builder:
        FAMILIES[name] = FamilyEntry(name, func, tuple(observed), tuple(priors),
                                     description or (func.__doc__ or "").strip().split("\n")[0],
                                     posterior_predictive, log_likelihood)
        return func

    return deco


def get_family(name: str) -> FamilyEntry:
    """The registered family ``name`` (importing a lazily registered module if needed)."""
    if name not in FAMILIES and name in LAZY_FAMILIES:
        module = LAZY_FAMILIES[name]
        if importlib.util.find_spec(module) is None:
            raise SpecError(f"model family '{name}' is not available in this version",
                            key="model.family")
        importlib.import_module(module)
    if name not in FAMILIES:
        raise SpecError(f"unknown model family '{name}'; known: "
                        f"{', '.join(sorted(set(FAMILIES) | set(LAZY_FAMILIES)))}",
                        key="model.family")
    return FAMILIES[name]


def build_model(
    data: pd.DataFrame,
    *,
    family: str = "normal",
    priors: Mapping[str, Prior],
    moderators: Sequence[str] = (),
    subgroup: str | None = None,
    subgroup_tau: str = "separate",
    **options: Any,
) -> pm.Model:
    """Build the PyMC model of ``family`` for ``data``.

    Parameters
    ----------
    data
        Analysis frame: ``yi``/``vi`` (normal) or counts (binomial), ``label`` or ``study``,
        moderator columns.
    family
        A registered family name.
    priors
        :class:`~bayesmeta.priors.Prior` objects by variable (``mu``, ``tau``, ``beta``...).
    moderators
        Meta-regression columns (categorical → dummies, first level reference).
    subgroup
        One column; gives one ``mu`` per level (empty string or None: no subgroups).
    subgroup_tau
        ``"separate"`` (one tau per level) or ``"shared"``.
    **options
        Family-specific options passed through to the builder.
    """
    entry = get_family(family)
    return entry.build(data, priors=priors, moderators=tuple(moderators),
                       subgroup=subgroup or None, subgroup_tau=subgroup_tau, **options)


def _register_builtin() -> None:
    from bayesmeta.builders.binomial import build_binomial, replicate_counts
    from bayesmeta.builders.binomial_likelihood import marginal_count_log_likelihood
    from bayesmeta.builders.normal import build_normal, effect_log_likelihood, replicate_effects

    register_family("normal", description="normal–normal model on yi/vi (any measure)",
                    posterior_predictive=replicate_effects,
                    log_likelihood=effect_log_likelihood)(build_normal)
    register_family("binomial", observed=("y_t", "y_c"),
                    description="exact binomial likelihood on counts, log risk-ratio scale",
                    posterior_predictive=replicate_counts,
                    log_likelihood=marginal_count_log_likelihood)(build_binomial)


_register_builtin()
