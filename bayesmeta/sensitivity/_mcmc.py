"""MCMC work unit of a sensitivity sweep: one prior combination per task, compiled models reused.

Each worker process keeps the :class:`~bayesmeta.inference.CompiledFit` objects it has built in
the process's cache of compiled models (:mod:`bayesmeta.compiled_models`, shared with
:func:`~bayesmeta.inference.fit`), keyed by the model, a digest of the data and the sampler; a
new prior combination reuses a compiled model whose prior *structure* (families and bound
finiteness) matches, so a worker compiles once per model and prior family, then only swaps prior
parameters (nutpie: no recompilation).

The base combination (the spec's own priors, sampled with the spec's own seed) also yields the
power-scaling sensitivity diagnostics (:mod:`bayesmeta.sensitivity.psense`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from bayesmeta.errors import BayesmetaError
from bayesmeta.sensitivity.psense import PSENSE_VARS, mcmc_psense
from bayesmeta.sensitivity.result import NATURAL_STATS, STATS
from bayesmeta.sensitivity.tasks import empty_row

__all__ = ["mcmc_fit"]

ROW_QUANTITIES = ("mu", "tau", "i2", "theta_new")


def _priors(spec_tree: dict[str, Any], tau: str, mu: str) -> dict[str, str]:
    p = spec_tree["priors"]
    priors = {"mu": mu, "tau": tau}
    if spec_tree["model"]["moderators"]:
        priors["beta"] = p["beta"]
    if spec_tree["model"]["bias"] not in ("", "none"):
        priors["omega"] = p["omega"]
    return priors


def _diagnostics(tree: Any) -> dict[str, float]:
    import arviz_stats as azs

    names = [v for v in PSENSE_VARS if v in tree["posterior"].data_vars]
    rhat = azs.rhat(tree, var_names=names)
    ess = azs.ess(tree, var_names=names, method="bulk")
    stats = tree.children.get("sample_stats")
    div = float(np.asarray(stats["diverging"]).sum()) if stats is not None and "diverging" in \
        stats.data_vars else float("nan")
    return {"rhat_max": float(max(float(np.max(rhat[v])) for v in names)),
            "ess_bulk_min": float(min(float(np.min(ess[v])) for v in names)),
            "divergences": div}


def mcmc_fit(spec_tree: dict[str, Any], data: pd.DataFrame, tau_prior: str, mu_prior: str,
             seed: int, *, null: float, measure: str,
             psense: bool = False) -> dict[str, Any]:
    """Fit one prior combination by MCMC (one Dask task).

    Parameters
    ----------
    spec_tree
        ``Spec.model_dump(mode="json")`` (sampler settings, model, the other priors).
    data
        The analysis frame.
    tau_prior, mu_prior
        Canonical prior strings of the combination.
    seed
        Sampler seed of this combination.
    null, measure
        Null value (analysis scale) and measure code.
    psense
        Also compute the power-scaling diagnostics (the base combination).

    Returns
    -------
    dict
        ``{"rows": [...], "psense": dict | None}``: one row, or one per subgroup level
        (``subgroup`` set; ``tau``/``i2`` are the level's own with separate taus, the shared
        ones otherwise).
    """
    from bayesmeta.effects import MEASURES
    from bayesmeta.inference import SamplingSettings, compiled_model

    row = empty_row(tau_prior, mu_prior, "mcmc", seed)
    out: dict[str, Any] = {"rows": [row], "psense": None}
    start = time.perf_counter()
    s = spec_tree["sampling"]
    settings = SamplingSettings(sampler=s["sampler"], chains=int(s["chains"]), draws=int(s["draws"]),
                                tune=int(s["tune"]), target_accept=float(s["target_accept"]),
                                seed=int(seed))
    priors = _priors(spec_tree, tau_prior, mu_prior)
    m = spec_tree["model"]
    try:
        with compiled_model(data, priors=priors, family=m["family"], moderators=m["moderators"],
                            subgroup=m["subgroup"] or None, subgroup_tau=m["subgroup_tau"],
                            bias=m["bias"], sampler=s["sampler"],
                            measure=spec_tree["effect"]["measure"]) as compiled:
            result = compiled.sample(settings, priors=priors, diagnostics=False,
                                     posterior_predictive=False)
            out["psense"] = mcmc_psense(result.tree, compiled.model) if psense else None
    except BayesmetaError as exc:
        row["error"] = str(exc)
        row["seconds"] = time.perf_counter() - start
        return out
    post = result.tree["posterior"]
    to_natural = MEASURES[measure].to_natural
    levels = _levels(post)
    diag = _diagnostics(result.tree)
    seconds = time.perf_counter() - start
    rows = []
    for level in levels:
        r = dict(row) if level is None else {**row, "subgroup": str(level)}
        for q in ROW_QUANTITIES:
            stats = result.summary[q]
            if level is not None and q in _per_level(post):
                stats = stats[str(level)]
            r.update({f"{q}_{st}": float(stats[st]) for st in STATS})
        mu = post["mu"] if level is None else post["mu"].sel(subgroup=level)
        r["p_effect"] = float(np.mean(np.asarray(mu.values, dtype=float) > null))
        for st in NATURAL_STATS:
            r[f"mu_natural_{st}"] = float(to_natural(r[f"mu_{st}"]))
        r.update(diag)
        r["seconds"] = seconds
        rows.append(r)
    out["rows"] = rows
    return out


def _levels(post: Any) -> list[Any]:
    """Subgroup levels of ``mu`` (``[None]`` when mu is a scalar)."""
    mu = post["mu"]
    return [None] if "subgroup" not in mu.dims else list(mu["subgroup"].values)


def _per_level(post: Any) -> set[str]:
    """Row quantities that have one value per subgroup level."""
    return {q for q in ROW_QUANTITIES if "subgroup" in post[q].dims}
