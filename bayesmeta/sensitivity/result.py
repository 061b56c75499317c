"""The result of a prior-sensitivity run: one :class:`xarray.Dataset` with one row per prior pair.

Layout of :attr:`SensitivityResult.dataset`:

* dimension ``prior`` (0, 1, …: one entry per (tau prior, mu prior) combination);
* coordinates along ``prior``: ``tau_prior``, ``mu_prior`` (canonical strings that
  :func:`bayesmeta.priors.parse_prior` parses back), ``engine`` (``"exact"`` or ``"mcmc"``) and
  ``subgroup`` (empty, except for subgroup models: one entry per combination *and* level, the
  level's mu, theta_new and — with separate taus — tau and I²);
* data variables along ``prior``: ``<q>_<stat>`` for ``q`` in :data:`QUANTITIES` and ``stat`` in
  :data:`STATS` (analysis scale; ``i2`` in percent), ``mu_natural_<stat>`` for the median and
  interval on the natural scale (``exp`` for ratio measures, identical otherwise), ``p_effect``
  (posterior probability that mu exceeds the null), the MCMC diagnostics ``rhat_max``,
  ``ess_bulk_min`` and ``divergences`` (NaN for exact rows), ``conclusion``, ``conclusion_changes``,
  ``primary`` (the spec's own priors), ``seed`` (MCMC seed, -1 for the exact engine),
  ``error`` (empty unless the fit failed) and ``seconds`` (wall time of the fit, not
  reproducible);
* attributes: measure, null, scale, title, the spec's priors, the reference scale of the default
  grid and the power-scaling diagnostics as JSON (``psense_json``).

A wide table rather than ``quantity``/``stat`` dimensions keeps ``to_dataframe()`` tidy: one row
per prior combination, which is what the plots and the CSV tables want.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["DIAGNOSTICS", "NATURAL_STATS", "QUANTITIES", "STATS", "SensitivityResult",
           "build_dataset"]

QUANTITIES = ("mu", "tau", "i2", "theta_new")
STATS = ("median", "mean", "sd", "q025", "q975")
NATURAL_STATS = ("median", "q025", "q975")
#: Sampler diagnostics of MCMC rows (NaN for the exact engine): max R-hat and min bulk ESS of
#: mu and tau, number of divergent transitions.
DIAGNOSTICS = ("rhat_max", "ess_bulk_min", "divergences")
COORDS = ("tau_prior", "mu_prior", "engine", "subgroup")
FLAGS = ("conclusion", "conclusion_changes", "primary", "seed", "error", "seconds")
NETCDF_ENGINE = "h5netcdf"


def value_columns() -> list[str]:
    """Numeric summary columns in table order."""
    cols = [f"{q}_{s}" for q in QUANTITIES for s in STATS]
    cols[len(STATS):len(STATS)] = [f"mu_natural_{s}" for s in NATURAL_STATS]
    return cols + ["p_effect", *DIAGNOSTICS]


def build_dataset(rows: list[dict[str, Any]], attrs: dict[str, Any]) -> xr.Dataset:
    """Assemble fit rows (dicts with the coordinate, value and flag keys) into the Dataset."""
    n = len(rows)
    coords = {"prior": np.arange(n)}
    coords.update({c: ("prior", np.array([r[c] for r in rows], dtype=str)) for c in COORDS})
    data: dict[str, tuple[str, np.ndarray]] = {}
    for col in value_columns():
        data[col] = ("prior", np.array([r.get(col, np.nan) for r in rows], dtype=float))
    data["conclusion"] = ("prior", np.array([r["conclusion"] for r in rows], dtype=str))
    data["conclusion_changes"] = ("prior", np.array([r["conclusion_changes"] for r in rows], dtype=bool))
    data["primary"] = ("prior", np.array([r["primary"] for r in rows], dtype=bool))
    data["seed"] = ("prior", np.array([r["seed"] for r in rows], dtype=np.int64))
    data["error"] = ("prior", np.array([r["error"] for r in rows], dtype=str))
    data["seconds"] = ("prior", np.array([r["seconds"] for r in rows], dtype=float))
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _stat_dict(rec: dict[str, Any], q: str, stats: tuple[str, ...]) -> dict[str, float | None]:
    return {s: _num(rec[f"{q}_{s}"]) for s in stats}


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass(frozen=True, eq=False)
class SensitivityResult:
    """Posterior summaries under every prior combination of a sensitivity grid.

    Attributes
    ----------
    dataset
        The results (layout in :mod:`bayesmeta.sensitivity.result`).
    """

    dataset: xr.Dataset

    # --- facts ---------------------------------------------------------------------------------

    @property
    def measure(self) -> str:
        return str(self.dataset.attrs["measure"])

    @property
    def log_scale(self) -> bool:
        """Whether the analysis scale is logarithmic (ratio measures)."""
        return self.dataset.attrs["scale"] == "log"

    @property
    def psense(self) -> dict[str, Any] | None:
        """Power-scaling sensitivity of the base MCMC fit, or ``None``."""
        text = self.dataset.attrs.get("psense_json", "null")
        return json.loads(text)

    @property
    def base_index(self) -> int:
        """Position of the combination with the spec's own priors (its first subgroup level)."""
        return int(np.flatnonzero(self.dataset["primary"].values)[0])

    @property
    def n_changes(self) -> int:
        """Number of combinations whose conclusion differs from the base."""
        return int(self.dataset["conclusion_changes"].values.sum())

    # --- tables --------------------------------------------------------------------------------

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per prior combination.

        Columns ``tau_prior, mu_prior, engine, subgroup``, then ``mu_median, mu_mean, mu_sd, mu_q025,
        mu_q975, mu_natural_median, mu_natural_q025, mu_natural_q975, tau_…, i2_…,
        theta_new_…, p_effect, rhat_max, ess_bulk_min, divergences, conclusion,
        conclusion_changes, primary, seed, error, seconds``.
        """
        ds = self.dataset
        frame = pd.DataFrame({c: ds[c].values.astype(str) for c in COORDS})
        for col in value_columns():
            frame[col] = ds[col].values
        for col in FLAGS:
            frame[col] = ds[col].values
        frame["conclusion"] = frame["conclusion"].astype(str)
        frame["error"] = frame["error"].astype(str)
        return frame

    def _record(self, rec: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"tau_prior": str(rec["tau_prior"]), "mu_prior": str(rec["mu_prior"]),
                               "engine": str(rec["engine"])}
        if rec["subgroup"]:
            out["subgroup"] = str(rec["subgroup"])
        for q in QUANTITIES:
            out[q] = _stat_dict(rec, q, STATS)
            if q == "mu" and self.log_scale:
                out["mu_natural"] = _stat_dict(rec, "mu_natural", NATURAL_STATS)
        out["p_effect"] = _num(rec["p_effect"])
        if out["engine"] == "mcmc":
            out["diagnostics"] = {d: _num(rec[d]) for d in DIAGNOSTICS}
        out["conclusion"] = str(rec["conclusion"])
        out["conclusion_changes"] = bool(rec["conclusion_changes"])
        out["primary"] = bool(rec["primary"])
        out["seed"] = int(rec["seed"]) if int(rec["seed"]) >= 0 else None
        out["error"] = str(rec["error"]) or None
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result: ``{"priors": [...], "base": {...}, "psense": ..., ...}``.

        Each entry of ``priors`` holds ``tau_prior``, ``mu_prior`` (strings the prior registry
        parses), ``engine``, ``mu``/``tau``/``i2``/``theta_new`` (``median, mean, sd, q025,
        q975``), ``mu_natural`` (ratio measures), ``p_effect``, ``conclusion``,
        ``conclusion_changes``, ``primary``, ``seed`` and ``error``.
        """
        records = self.to_frame().to_dict(orient="records")
        priors = [self._record(r) for r in records]
        attrs = self.dataset.attrs
        return {
            "title": str(attrs.get("title", "")),
            "measure": self.measure,
            "scale": str(attrs["scale"]),
            "null": float(attrs["null"]),
            "spec_priors": {"tau": str(attrs["spec_tau_prior"]), "mu": str(attrs["spec_mu_prior"])},
            "reference_scale": {"value": float(attrs["reference_scale"]),
                                "basis": str(attrs["reference_scale_basis"])},
            "n_priors": len(priors),
            "n_changes": self.n_changes,
            "n_failed": sum(p["error"] is not None for p in priors),
            "base": priors[self.base_index],
            **({"base_by_subgroup": {p["subgroup"]: p for p in priors if p["primary"]}}
               if any("subgroup" in p for p in priors) else {}),
            "priors": priors,
            "psense": self.psense,
        }

    # --- files ---------------------------------------------------------------------------------

    def to_netcdf(self, path: str | Path) -> Path:
        """Write the Dataset (h5netcdf) and return the path."""
        path = Path(path)
        self.dataset.to_netcdf(path, engine=NETCDF_ENGINE)
        return path

    @classmethod
    def from_netcdf(cls, path: str | Path) -> SensitivityResult:
        """Read a result written by :meth:`to_netcdf`."""
        with xr.open_dataset(path, engine=NETCDF_ENGINE) as ds:
            return cls(ds.load())

    def to_csv(self, path: str | Path, *, timings: bool = False) -> Path:
        """Write :meth:`to_frame` as CSV (for reports) and return the path.

        The wall times (``seconds``) are left out unless ``timings``, so that a rerun with the
        same spec writes the same file.
        """
        path = Path(path)
        frame = self.to_frame()
        if not timings:
            frame = frame.drop(columns="seconds")
        frame.to_csv(path, index=False)
        return path
