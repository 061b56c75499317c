"""Work units of a sensitivity sweep; they run on Dask workers or in the calling process.

Each function here is importable at module level, takes plain picklable arguments and returns
plain rows (dicts of floats and strings), so a Dask worker process computes exactly what the
calling process would: the exact engine is deterministic and MCMC fits get their seed from the
task, never from the scheduler.

* :func:`exact_batch` fits a *batch* of prior combinations with the exact engine (milliseconds
  each, so one task per batch keeps scheduling overhead negligible);
* :func:`mcmc_fit` fits one combination by MCMC (lives in :mod:`bayesmeta.sensitivity._mcmc`,
  which imports PyMC only when an MCMC task runs).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bayesmeta.errors import BayesmetaError
from bayesmeta.sensitivity.result import DIAGNOSTICS, NATURAL_STATS, QUANTITIES, STATS

__all__ = ["combination_seed", "empty_row", "exact_batch", "exact_row"]

EXACT_SEED = -1  # the exact engine draws nothing


def combination_seed(spec_seed: int, tau_prior: str, mu_prior: str) -> int:
    """Seed of the MCMC fit of one prior combination, derived from the spec's seed.

    A :class:`numpy.random.SeedSequence` of the spec's seed and a SHA-256 digest of the two
    canonical prior strings: the same combination gets the same seed in every run, whatever
    the grid around it and whichever worker runs it.
    """
    digest = hashlib.sha256(f"{tau_prior}\x1f{mu_prior}".encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return int(np.random.SeedSequence([int(spec_seed), *words]).generate_state(1, dtype=np.uint32)[0])


def empty_row(tau_prior: str, mu_prior: str, engine: str, seed: int, error: str = "") -> dict[str, Any]:
    """A row with all summaries NaN (filled by the engine, or left NaN when the fit failed)."""
    row: dict[str, Any] = {"tau_prior": tau_prior, "mu_prior": mu_prior, "engine": engine,
                           "subgroup": "", "seed": int(seed), "error": error,
                           "seconds": float("nan")}
    for q in QUANTITIES:
        row.update({f"{q}_{s}": float("nan") for s in STATS})
    row.update({f"mu_natural_{s}": float("nan") for s in NATURAL_STATS})
    row["p_effect"] = float("nan")
    row.update({d: float("nan") for d in DIAGNOSTICS})
    return row


def exact_row(yi: np.ndarray, vi: np.ndarray, tau_prior: str, mu_prior: str, *, null: float,
              to_natural: Any) -> dict[str, Any]:
    """Fit one combination with the exact engine and summarise it.

    Input errors of the combination (an improper posterior, a prior the engine cannot use) are
    recorded in the row's ``error``; anything else propagates.
    """
    from bayesmeta.exact import ExactNormalNormal

    row = empty_row(tau_prior, mu_prior, "exact", EXACT_SEED)
    start = time.perf_counter()
    try:
        post = ExactNormalNormal(yi, vi, tau_prior=tau_prior, mu_prior=mu_prior).fit()
        for q in QUANTITIES:
            summary = getattr(post, q).summary()
            row.update({f"{q}_{s}": float(summary[s]) for s in STATS})
        row["p_effect"] = float(1.0 - post.mu.cdf(null))
    except BayesmetaError as exc:
        row["error"] = str(exc)
    for s in NATURAL_STATS:
        row[f"mu_natural_{s}"] = float(to_natural(row[f"mu_{s}"]))
    row["seconds"] = time.perf_counter() - start
    return row


def exact_batch(yi: Sequence[float], vi: Sequence[float], combos: Sequence[tuple[str, str]], *,
                null: float, measure: str) -> list[dict[str, Any]]:
    """Exact fits of a batch of ``(tau_prior, mu_prior)`` combinations (one Dask task)."""
    from bayesmeta.effects import MEASURES

    to_natural = MEASURES[measure].to_natural
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    return [exact_row(y, v, tau, mu, null=null, to_natural=to_natural) for tau, mu in combos]
