"""Coverage of the mean effect under publication bias: selection models vs unadjusted models.

Data are generated under a known selection process, the models are fitted to every data set,
and we count how often each 95% interval for ``mu`` covers the true value (and report bias and
interval width).

Data-generating process (per data set, fixed seed)
--------------------------------------------------
True effects ``theta ~ N(mu, tau^2)``; a study has ``n`` per arm uniform on [20, 200) and an
SMD-like sampling variance ``v = 4/n``; its estimate is ``y ~ N(theta, v)``. A study whose
one-sided p-value (``1 - Phi(y / sqrt(v))``) is at most 0.025 is always published, any other
with probability ``--p-nonsig``: a one-sided step function with one cutpoint, i.e. the model
the three-parameter selection model (3PSM) assumes. Studies are generated until ``--k`` are
published.

Models
------
* ``REML`` - unadjusted random effects, ``bayesmeta.frequentist.rma`` (REML, Wald interval);
* ``3PSM ML`` - ``bayesmeta.frequentist.selmodel(steps=0.025)`` (Wald interval);
* ``normal Bayes`` - unadjusted normal-normal model, 95% equal-tailed credible interval by exact
  quadrature over tau (mu is conditionally normal given tau), no sampling;
* ``3PSM Bayes`` - ``bias="stepfun(0.025)"``: the Bayesian step-function model with RoBMA's
  cumulative Dirichlet(1, 1) prior on the weights;
* ``PET Bayes`` - ``bias="pet"`` (RoBMA's half-Cauchy(1) slope prior), with ``--pet``.

Bayesian priors: ``mu ~ N(0, 1)``, ``tau ~ half-normal(0.5)``. Each sampled model is compiled
once (nutpie) and refitted on every data set with ``CompiledModel.with_data`` (``yi``, ``vi``,
thresholds); 2 chains x 1000 draws after 1000 tuning steps, target acceptance 0.95 (PET's
posterior of mu and the slope is strongly correlated and curved: at nutpie's default 0.8 nearly
every PET fit had a few divergences); fits with R-hat(mu) > 1.01 or any divergence are counted
and reported (and kept).

Run (about 30-60 minutes on 2 busy cores for 200 data sets)::

    .venv/bin/python benchmarks/selection_coverage.py --n-sim 200 --out benchmarks/selection_coverage.md

``--n-sim 5`` checks the plumbing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

os.environ.setdefault("PYTENSOR_FLAGS", "base_compiledir=/root/.cache/bayesmeta-pytensor")


def published(rng: np.random.Generator, k: int, mu: float, tau: float, p_nonsig: float) -> pd.DataFrame:
    """One meta-analysis of ``k`` published studies (see the module docstring)."""
    ys, vs = [], []
    while len(ys) < k:
        v = 4.0 / rng.integers(20, 200)
        y = rng.normal(rng.normal(mu, tau), math.sqrt(v))
        if special.ndtr(-y / math.sqrt(v)) <= 0.025 or rng.random() < p_nonsig:
            ys.append(y)
            vs.append(v)
    return pd.DataFrame({"yi": ys, "vi": vs, "label": [f"s{i + 1}" for i in range(k)]})


@dataclass
class Tally:
    """Running coverage, bias and width of one method's intervals."""

    covered: int = 0
    n: int = 0
    errors: list[float] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    flagged: int = 0
    failed: int = 0

    def add(self, est: float, lo: float, hi: float, truth: float, flagged: bool = False) -> None:
        self.n += 1
        self.covered += int(lo <= truth <= hi)
        self.errors.append(est - truth)
        self.widths.append(hi - lo)
        self.flagged += int(flagged)

    def row(self, name: str) -> dict[str, object]:
        cov = self.covered / self.n if self.n else float("nan")
        return {
            "method": name,
            "fits": self.n,
            "coverage": cov,
            "mc_se": math.sqrt(cov * (1 - cov) / self.n) if self.n else float("nan"),
            "bias": float(np.mean(self.errors)) if self.n else float("nan"),
            "rmse": float(np.sqrt(np.mean(np.square(self.errors)))) if self.n else float("nan"),
            "mean_width": float(np.mean(self.widths)) if self.n else float("nan"),
            "flagged": self.flagged,
            "failed": self.failed,
        }


def normal_bayes(frame: pd.DataFrame) -> tuple[float, float, float]:
    """Posterior median and 95% interval of mu in the normal-normal model, mu ~ N(0, 1),
    tau ~ half-normal(0.5): mu | tau, y is normal; p(tau | y) on a fine grid."""
    from scipy import optimize, stats

    y, v = frame["yi"].to_numpy(), frame["vi"].to_numpy()
    tau = np.linspace(0.0, 2.5, 4001)[:, None]
    w = 1.0 / (v + tau**2)
    prec = 1.0 + w.sum(1)
    m = (w * y).sum(1) / prec
    log_marg = (-0.5 * np.log(2 * np.pi / w).sum(1) - 0.5 * (w * y**2).sum(1) + 0.5 * prec * m**2
                - 0.5 * np.log(prec))
    logp = log_marg + stats.halfnorm.logpdf(tau[:, 0], scale=0.5)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    sd = 1.0 / np.sqrt(prec)

    def quantile(q: float) -> float:
        return optimize.brentq(lambda x: float(p @ special.ndtr((x - m) / sd)) - q, -5.0, 5.0, xtol=1e-10)

    return quantile(0.5), quantile(0.025), quantile(0.975)


class BayesModel:
    """A model compiled once with nutpie, refitted on new data with ``with_data``."""

    def __init__(self, template: pd.DataFrame, **build_options: object) -> None:
        import nutpie

        from bayesmeta.builders import build_model
        from bayesmeta.priors import parse_prior

        priors = {"mu": parse_prior("normal(0, 1)"), "tau": parse_prior("halfnormal(0.5)")}
        self.model = build_model(template, priors=priors, **build_options)
        self.compiled = nutpie.compile_pymc_model(self.model)
        self.bias = build_options.get("bias")

    def _data(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        from bayesmeta.frequentist.selection import parse_weight_function

        yi, vi = frame["yi"].to_numpy(), frame["vi"].to_numpy()
        names = {v.name for v in self.model.data_vars}
        out = {"vi": vi}
        if "yi" in names:
            out["yi"] = yi
        if "y_thresholds" in names:
            out["y_thresholds"] = parse_weight_function(str(self.bias)).thresholds(vi)
        if "pet_x" in names:
            out["pet_x"] = np.sqrt(vi)
        return out

    def fit(self, frame: pd.DataFrame, seed: int, target_accept: float) -> tuple[float, float, float, bool]:
        """Posterior median and 95% equal-tailed interval of mu; True when R-hat > 1.01 or divergent."""
        import arviz_stats
        import nutpie

        compiled = self.compiled.with_data(**self._data(frame))
        tree = nutpie.sample(compiled, chains=2, draws=1000, tune=1000, seed=seed, progress_bar=False,
                             target_accept=target_accept)
        mu = tree.posterior["mu"].values.ravel()
        rhat = float(arviz_stats.rhat(tree.posterior["mu"].to_dataset(name="x"))["x"])
        divergent = int(tree.sample_stats["diverging"].values.sum()) if "diverging" in tree.sample_stats else 0
        lo, med, hi = np.quantile(mu, [0.025, 0.5, 0.975])
        return float(med), float(lo), float(hi), bool(rhat > 1.01 or divergent > 0)


def run(args: argparse.Namespace) -> dict[str, object]:
    from bayesmeta.frequentist import rma
    from bayesmeta.frequentist.selection import selmodel

    rng = np.random.default_rng(args.seed)
    datasets = [published(rng, args.k, args.mu, args.tau, args.p_nonsig) for _ in range(args.n_sim)]
    tallies: dict[str, Tally] = {}
    t0 = time.perf_counter()

    freq = {"REML": lambda d: rma(d["yi"], d["vi"], method="REML"),
            "3PSM ML": lambda d: selmodel(d["yi"], d["vi"], steps=0.025)}
    for name, fit in freq.items():
        tally = tallies.setdefault(name, Tally())
        for d in datasets:
            try:
                r = fit(d)
            except Exception as err:  # noqa: BLE001 - a failed fit is counted and reported
                tally.failed += 1
                print(f"{name}: {err}", file=sys.stderr)
                continue
            tally.add(r.estimate, r.ci_low, r.ci_high, args.mu)
    timings = {"frequentist": time.perf_counter() - t0}

    tally = tallies.setdefault("normal Bayes", Tally())
    for d in datasets:
        tally.add(*normal_bayes(d), args.mu)
    timings["normal Bayes"] = time.perf_counter() - t0 - timings["frequentist"]

    bayes = {"3PSM Bayes": {"family": "selection", "bias": "stepfun(0.025)"}}
    if args.pet:
        bayes["PET Bayes"] = {"family": "selection", "bias": "pet"}
    for name, options in bayes.items():
        if args.no_bayes:
            break
        t1 = time.perf_counter()
        model = BayesModel(datasets[0], **options)
        tally = tallies.setdefault(name, Tally())
        for i, d in enumerate(datasets):
            est, lo, hi, flagged = model.fit(d, seed=args.seed + i, target_accept=args.target_accept)
            tally.add(est, lo, hi, args.mu, flagged)
            if (i + 1) % 25 == 0:
                print(f"{name}: {i + 1}/{len(datasets)} ({time.perf_counter() - t1:.0f} s)", file=sys.stderr)
        timings[name] = time.perf_counter() - t1

    return {
        "settings": {k: getattr(args, k) for k in ("n_sim", "k", "mu", "tau", "p_nonsig", "seed", "target_accept")},
        "results": [t.row(n) for n, t in tallies.items()],
        "timings_s": timings,
        "mean_nonsignificant_share": float(np.mean([
            np.mean(special.ndtr(-d["yi"] / np.sqrt(d["vi"])) > 0.025) for d in datasets])),
    }


def markdown(out: dict[str, object]) -> str:
    s = out["settings"]
    lines = [
        f"### mu = {s['mu']}, tau = {s['tau']}, k = {s['k']}, P(publish | p > 0.025) = {s['p_nonsig']}, "
        f"{s['n_sim']} data sets (seed {s['seed']}, target acceptance {s.get('target_accept', 0.8)})",
        "",
        f"Share of non-significant studies among the published: {out['mean_nonsignificant_share']:.2f}.",
        "",
        "| method | fits | coverage of 95% interval | MC SE | bias of estimate | RMSE | mean width | "
        "flagged (R-hat > 1.01 or divergences) | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["results"]:
        lines.append(
            f"| {r['method']} | {r['fits']} | {r['coverage']:.3f} | {r['mc_se']:.3f} | {r['bias']:+.3f} | "
            f"{r['rmse']:.3f} | {r['mean_width']:.3f} | {r['flagged']} | {r['failed']} |"
        )
    lines += ["", "Run time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in out["timings_s"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-sim", type=int, default=200)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--mu", type=float, default=0.2)
    p.add_argument("--tau", type=float, default=0.1)
    p.add_argument("--p-nonsig", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--pet", action="store_true", help="also the Bayesian PET model")
    p.add_argument("--target-accept", type=float, default=0.95,
                   help="NUTS target acceptance (PET needs ~0.95: its mu-slope posterior is curved)")
    p.add_argument("--no-bayes", action="store_true", help="frequentist methods only")
    p.add_argument("--json", type=Path, help="write the raw results as JSON")
    p.add_argument("--out", type=Path, help="append the markdown table to this file")
    args = p.parse_args(argv)
    out = run(args)
    text = markdown(out)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.out:
        with args.out.open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
