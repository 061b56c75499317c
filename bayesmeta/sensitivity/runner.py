"""Run a prior-sensitivity sweep on Dask distributed (or serially) and gather one result.

Scheduling
----------
``scheduler=None`` starts a :class:`distributed.LocalCluster` (``n_workers`` processes, one
thread each) for the run and closes it afterwards; a string is the address of a running
scheduler (``"tcp://10.0.0.5:8786"``), so a large sweep moves to a cluster unchanged; a
:class:`distributed.Client` is used as it is; ``"serial"`` runs every task in the calling
process without Dask (the reference the Dask results are tested against).

Tasks are coarse: the exact engine fits a batch of prior combinations per task; MCMC fits one
combination per task, and each worker keeps the compiled model of a spec (keyed by the model
and the prior families) for all its tasks. Every MCMC seed comes from the spec's seed and the
combination (:func:`bayesmeta.sensitivity.tasks.combination_seed`); the spec's own combination
uses the spec's seed itself, so its row equals ``bayesmeta fit`` of the spec. Results therefore
do not depend on how tasks are scheduled.

A LocalCluster starts worker *processes* (spawn): a script that calls :func:`run_sensitivity`
with ``scheduler=None`` needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bayesmeta.effects import MEASURES
from bayesmeta.errors import SpecError
from bayesmeta.priors import parse_prior
from bayesmeta.sensitivity.conclusion import FAILED, conclusion, conclusion_changes
from bayesmeta.sensitivity.grid import (
    default_mu_priors,
    default_tau_priors,
    parse_prior_list,
    reference_scale,
)
from bayesmeta.sensitivity.psense import exact_psense
from bayesmeta.sensitivity.result import SensitivityResult, build_dataset
from bayesmeta.sensitivity.tasks import EXACT_SEED, combination_seed, exact_batch
from bayesmeta.spec import Spec, load_data

__all__ = ["SERIAL", "SweepPlan", "plan_sweep", "run_sensitivity"]

SERIAL = "serial"
EXACT_MU_FAMILIES = ("normal", "flat")
#: Exact-engine tasks per worker: a few batches each balances load without per-fit overhead.
BATCHES_PER_WORKER = 3

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------
# Planning


def exact_capable(spec: Spec) -> bool:
    """Whether the spec's model is the plain normal–normal model the exact engine fits."""
    m = spec.model
    return m.family == "normal" and not m.moderators and not m.subgroup and m.bias == "none"


def engine_for(spec: Spec, mu_prior: str) -> str:
    """Engine of one combination: the spec's engine, ``auto`` resolving to exact when possible."""
    requested = spec.sampling.engine
    mu_ok = parse_prior(mu_prior, target="location").family in EXACT_MU_FAMILIES
    if requested == "mcmc":
        return "mcmc"
    if requested == "exact":
        if not exact_capable(spec):
            raise SpecError("the exact engine fits the normal–normal model only (family normal, "
                            "no moderators, subgroup or bias model)", key="sampling.engine")
        if not mu_ok:
            raise SpecError(f"the exact engine needs a normal or flat mu prior, got '{mu_prior}'",
                            key="sampling.engine")
        return "exact"
    return "exact" if exact_capable(spec) and mu_ok else "mcmc"


@dataclass(frozen=True)
class SweepPlan:
    """The prior combinations of a sweep, in table order, with engine and seed of each."""

    combos: tuple[tuple[str, str], ...]
    engines: tuple[str, ...]
    seeds: tuple[int, ...]
    base: tuple[str, str]
    reference_scale: float
    reference_basis: str
    measure: str
    null: float = 0.0

    @property
    def base_index(self) -> int:
        return self.combos.index(self.base)


def plan_sweep(spec: Spec, data: pd.DataFrame, tau_priors: str | Sequence[str] | None = None,
               mu_priors: str | Sequence[str] | None = None) -> SweepPlan:
    """The combinations a sweep fits: ``tau_priors × mu_priors`` (defaults from
    :mod:`bayesmeta.sensitivity.grid`), with the spec's own pair first when the grid lacks it.
    """
    measure = MEASURES[spec.effect.measure]
    base = (parse_prior(spec.priors.tau, target="scale").text,
            parse_prior(spec.priors.mu, target="location").text)
    exact_default = spec.sampling.engine != "mcmc" and exact_capable(spec)
    ref = reference_scale(measure.code, data, base[0])
    taus = parse_prior_list(tau_priors, target="scale")
    if taus is None:
        taus = default_tau_priors(measure.code, ref.value, exact=exact_default)
    mus = parse_prior_list(mu_priors, target="location")
    if mus is None:
        mus = default_mu_priors(base[1], exact=exact_default, scale=ref.value)
    combos = [(t, m) for t in taus for m in mus]
    if base not in combos:
        combos.insert(0, base)
    engines = tuple(engine_for(spec, m) for _, m in combos)
    seeds = tuple(
        EXACT_SEED if eng == "exact"
        else int(spec.sampling.seed) if combo == base
        else combination_seed(spec.sampling.seed, *combo)
        for combo, eng in zip(combos, engines, strict=True)
    )
    return SweepPlan(tuple(combos), engines, seeds, base, ref.value, ref.basis, measure.code,
                     float(measure.null))


# ---------------------------------------------------------------------------------------------
# Tasks


@dataclass(frozen=True)
class _Task:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    size: int  # number of fits
    group: str = ""  # tasks of one group prefer one worker (they share a compiled model)


def _batches(items: list[Any], n_batches: int) -> list[list[Any]]:
    n_batches = max(1, min(n_batches, len(items)))
    size = math.ceil(len(items) / n_batches)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _make_tasks(plan: SweepPlan, spec: Spec, data: pd.DataFrame, n_workers: int,
                psense: bool) -> list[_Task]:
    tasks: list[_Task] = []
    exact = [c for c, e in zip(plan.combos, plan.engines, strict=True) if e == "exact"]
    if exact:
        yi = data["yi"].to_numpy(float)
        vi = data["vi"].to_numpy(float)
        for batch in _batches(exact, BATCHES_PER_WORKER * max(1, n_workers)):
            tasks.append(_Task(exact_batch, (yi, vi, tuple(batch)),
                               {"null": plan.null, "measure": plan.measure}, len(batch)))
    mcmc = [(c, s) for c, e, s in zip(plan.combos, plan.engines, plan.seeds, strict=True)
            if e == "mcmc"]
    if mcmc:
        from bayesmeta.sensitivity._mcmc import mcmc_fit  # PyMC only when needed

        spec_tree = spec.model_dump(mode="json")
        # base first: it also computes the power-scaling diagnostics, the longest task
        mcmc.sort(key=lambda cs: cs[0] != plan.base)
        for (tau, mu), seed in mcmc:
            is_base = (tau, mu) == plan.base
            group = "|".join(parse_prior(t).family for t in (tau, mu))
            tasks.append(_Task(mcmc_fit, (spec_tree, data, tau, mu, seed),
                               {"null": plan.null, "measure": plan.measure,
                                "psense": psense and is_base}, 1, group))
    return tasks


# ---------------------------------------------------------------------------------------------
# Execution


@contextmanager
def _client(scheduler: Any, n_workers: int) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if isinstance(scheduler, str):
        with Client(scheduler) as client:
            yield client
        return
    if scheduler is not None:
        raise SpecError(f"scheduler must be None, '{SERIAL}', an address or a distributed.Client, "
                        f"got {scheduler!r}")
    # no dashboard; the scheduler's HTTP endpoints on a free port (a fixed port warns when taken)
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _run(tasks: list[_Task], scheduler: Any, n_workers: int,
         progress: Progress | None) -> list[dict[str, Any]]:
    """Run the tasks; return their outputs (each ``{"rows": [...], "psense": ...}``)."""
    total = sum(t.size for t in tasks)
    done = 0
    outputs: list[dict[str, Any]] = []

    def report(out: dict[str, Any]) -> None:
        nonlocal done
        outputs.append(out)
        done += len(out["rows"])
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    if scheduler == SERIAL:
        for t in tasks:
            report(_as_output(t.fn(*t.args, **t.kwargs)))
        return outputs
    from distributed import as_completed

    with _client(scheduler, n_workers) as client:
        preferred = _worker_preferences(tasks, sorted(client.scheduler_info()["workers"]))
        futures = []
        for t in tasks:
            where = preferred.get(t.group)
            futures.append(client.submit(t.fn, *t.args, pure=False, workers=where,
                                         allow_other_workers=where is not None, **t.kwargs))
        for fut in as_completed(futures):
            report(_as_output(fut.result()))
            fut.release()
    return outputs


def _worker_preferences(tasks: list[_Task], workers: list[str]) -> dict[str, list[str]]:
    """Preferred worker of each MCMC group (prior families): largest groups spread first.

    A soft preference (``allow_other_workers=True``): a worker compiles a model once per
    prior structure, so keeping a structure on one worker saves compilations; idle workers
    still steal work. Results do not depend on it (seeds belong to the tasks).
    """
    sizes: dict[str, int] = {}
    for t in tasks:
        if t.group:
            sizes[t.group] = sizes.get(t.group, 0) + 1
    if not workers:
        return {}
    load = dict.fromkeys(workers, 0)
    out: dict[str, list[str]] = {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        w = min(workers, key=lambda a: (load[a], a))
        load[w] += sizes[group]
        out[group] = [w]
    return out


def _as_output(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    return {"rows": list(result), "psense": None}


def _finish(plan: SweepPlan, outputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """Rows in plan order (subgroup levels in model order), with conclusions against the base
    (per level for subgroup models)."""
    by_combo: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for out in outputs:
        for r in out["rows"]:
            by_combo.setdefault((r["tau_prior"], r["mu_prior"]), []).append(dict(r))
    psense = next((out["psense"] for out in outputs if out.get("psense") is not None), None)
    base_rows = by_combo[plan.base]
    base_conclusion = {r["subgroup"]: conclusion(r["mu_q025"], r["mu_q975"], plan.null)
                       for r in base_rows}
    rows = []
    for combo in plan.combos:
        for row in by_combo[combo]:
            row["conclusion"] = conclusion(row["mu_q025"], row["mu_q975"], plan.null)
            base = base_conclusion.get(row["subgroup"], FAILED)
            row["conclusion_changes"] = conclusion_changes(row["conclusion"], base)
            row["primary"] = combo == plan.base
            rows.append(row)
    return rows, psense


def run_sensitivity(
    spec: Spec,
    *,
    tau_priors: str | Sequence[str] | None = None,
    mu_priors: str | Sequence[str] | None = None,
    scheduler: Any = None,
    n_workers: int = 2,
    progress: Progress | None = None,
    psense: bool = True,
    data: pd.DataFrame | None = None,
) -> SensitivityResult:
    """Fit the spec's model under every combination of tau and mu priors.

    Parameters
    ----------
    spec
        The model spec; its own priors are the base the conclusions are compared with.
    tau_priors, mu_priors
        Prior strings (a sequence, or one ``;``-separated string as the CLI passes it); ``None``
        gives the default grids of :mod:`bayesmeta.sensitivity.grid`.
    scheduler
        ``None`` (a LocalCluster of ``n_workers`` processes for this run), the address of a
        running Dask scheduler, a :class:`distributed.Client`, or ``"serial"`` (no Dask).
    n_workers
        Worker processes of the LocalCluster (one thread each); with a running cluster, the
        number of workers to split the exact-engine grid for (3 batches per worker).
    progress
        Called as ``progress(done, total)`` (numbers of fits) at the start and whenever a task
        completes.
    psense
        Compute power-scaling sensitivity diagnostics (:mod:`bayesmeta.sensitivity.psense`) of
        the base fit: in its MCMC task, or from exact draws (the spec's draws, chains and seed)
        in this process.
    data
        The analysis frame, if already loaded (default: ``load_data(spec)``).

    Returns
    -------
    SensitivityResult
    """
    if data is None:
        data = load_data(spec)
    plan = plan_sweep(spec, data, tau_priors, mu_priors)
    tasks = _make_tasks(plan, spec, data, n_workers, psense)
    outputs = _run(tasks, scheduler, n_workers, progress)
    rows, psense_out = _finish(plan, outputs)
    base_row = next(r for r in rows if r["primary"])
    if psense and plan.engines[plan.base_index] == "exact" and not base_row["error"]:
        s = spec.sampling
        psense_out = exact_psense(data["yi"].to_numpy(float), data["vi"].to_numpy(float),
                                  *plan.base, draws=s.draws, chains=s.chains, seed=s.seed)
    measure = MEASURES[plan.measure]
    attrs = {
        "title": spec.title,
        "measure": plan.measure,
        "scale": measure.scale,
        "null": plan.null,
        "spec_tau_prior": plan.base[0],
        "spec_mu_prior": plan.base[1],
        "spec_seed": int(spec.sampling.seed),
        "reference_scale": plan.reference_scale,
        "reference_scale_basis": plan.reference_basis,
        "k": int(len(data)),
        "psense_json": _dumps(psense_out),
    }
    return SensitivityResult(build_dataset(rows, attrs))


def _dumps(value: Any) -> str:
    from bayesmeta._json import dumps

    return dumps(value)
