"""Read a run directory written by ``bayesmeta fit --out DIR`` (layout in :mod:`bayesmeta.rundir`).

Required files: ``posterior.nc``, ``summary.json``, ``reference.json``, ``comparison.csv``,
``data.csv``, ``spec.toml``, ``versions.json``. Optional: ``sensitivity.csv`` (or
``sensitivity.nc``) and ``selection.json``. A missing or unreadable file is an
:class:`~bayesmeta.errors.InputError` naming it.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from bayesmeta import datasets
from bayesmeta.errors import InputError

__all__ = ["REQUIRED_FILES", "Provenance", "RunDir"]

REQUIRED_FILES = ("posterior.nc", "summary.json", "reference.json", "comparison.csv", "data.csv", "spec.toml",
                  "versions.json")

#: A data card whose text matches this describes a data set rebuilt from published aggregates.
REBUILT_PATTERN = re.compile(r"\brebuil[dt]\b|\breconstruct(ed|ion)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Provenance:
    """Where the analysed data come from.

    Attributes
    ----------
    source
        Bundled data set name or the data file path given in the spec.
    card
        The data card (Markdown) when there is one, else ``None``.
    rebuilt
        ``True`` when the card says the data were rebuilt (reconstructed) from
        published aggregate results rather than taken from study-level records.
    """

    source: str
    card: str | None
    rebuilt: bool


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno})", file=path) from exc


@dataclass(frozen=True)
class RunDir:
    """The contents of one run directory."""

    path: Path
    summary: dict[str, Any]
    reference: dict[str, Any]
    comparison: pd.DataFrame
    data: pd.DataFrame
    spec: dict[str, Any]
    spec_text: str
    versions: dict[str, Any]
    tree: xr.DataTree
    sensitivity: pd.DataFrame | None = None
    selection: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | Path) -> RunDir:
        """Read every file of the run directory ``path``."""
        path = Path(path)
        if not path.is_dir():
            raise InputError("run directory not found", file=path)
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise InputError(f"not a complete run directory: missing {', '.join(missing)}", file=path)
        spec_text = (path / "spec.toml").read_text(encoding="utf-8")
        try:
            spec = tomllib.loads(spec_text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"spec is not valid TOML: {exc}", file=path / "spec.toml") from exc
        with xr.open_datatree(path / "posterior.nc", engine="h5netcdf") as tree:
            tree = tree.load()
        sensitivity = None
        if (path / "sensitivity.csv").is_file():
            sensitivity = pd.read_csv(path / "sensitivity.csv")
        elif (path / "sensitivity.nc").is_file():
            with xr.open_dataset(path / "sensitivity.nc", engine="h5netcdf") as ds:
                sensitivity = ds.load().to_dataframe().reset_index()
        selection = _read_json(path / "selection.json") if (path / "selection.json").is_file() else None
        return cls(
            path=path,
            summary=_read_json(path / "summary.json"),
            reference=_read_json(path / "reference.json"),
            comparison=pd.read_csv(path / "comparison.csv"),
            data=pd.read_csv(path / "data.csv"),
            spec=spec,
            spec_text=spec_text,
            versions=_read_json(path / "versions.json"),
            tree=tree,
            sensitivity=sensitivity,
            selection=selection,
        )

    # ------------------------------------------------------------------ derived facts

    @property
    def title(self) -> str:
        """The spec's title, else the directory name."""
        return str(self.spec.get("title") or self.path.name)

    @property
    def measure(self) -> str:
        """Effect measure code (``"GEN"`` when none is recorded)."""
        return str(self.summary.get("measure") or self.reference.get("measure")
                   or self.spec.get("effect", {}).get("measure") or "GEN")

    @property
    def settings(self) -> dict[str, Any]:
        """Resolved fit settings (priors, sampler, seed...)."""
        return dict(self.summary.get("settings") or {})

    @property
    def diagnostics(self) -> dict[str, Any] | None:
        """``Diagnostics.to_dict()`` of the fit, or ``None``."""
        return self.summary.get("diagnostics")

    @property
    def published(self) -> dict[str, Any] | None:
        """The spec's ``[published]`` table."""
        return self.spec.get("published")

    @property
    def subgroup(self) -> str | None:
        """Column of the single subgroup analysis of the reference (or the model's subgroup)."""
        sub = self.reference.get("subgroup") or self.settings.get("subgroup") \
            or self.spec.get("model", {}).get("subgroup")
        return str(sub) if sub and sub in self.data.columns else None

    @property
    def frequentist(self) -> dict[str, Any]:
        """The reference model with ``weights`` (percent) aligned with ``data`` rows."""
        ref = dict(self.reference)
        studies = ref.get("studies")
        if studies:
            by_label = {str(s["label"]): s.get("weight_pct") for s in studies}
            ref["weights"] = [by_label.get(str(lab), float("nan")) for lab in self.data["label"]]
        return ref

    @property
    def subgroup_results(self) -> dict[str, dict[str, Any]] | None:
        """Frequentist per-level results of the subgroup analysis, keyed by level."""
        rows = self.reference.get("subgroups")
        if not rows:
            return None
        return {str(r["level"]): r for r in rows}

    @property
    def leave1out(self) -> pd.DataFrame | None:
        """Frequentist leave-one-out table (``label, estimate, ci_low, ci_high``), when computed."""
        l1o = self.reference.get("leave1out")
        if not l1o or not l1o.get("rows"):
            return None
        frame = pd.DataFrame(l1o["rows"])
        if "label" not in frame.columns:
            labels = [s["label"] for s in self.reference.get("studies", [])] or list(self.data["label"])
            frame["label"] = [labels[int(i)] for i in frame["omitted"]]
        return frame

    @property
    def seed(self) -> int | None:
        """Sampling seed."""
        seed = self.settings.get("seed", self.spec.get("sampling", {}).get("seed"))
        return None if seed is None else int(seed)

    def provenance(self) -> Provenance:
        """Data source and its card (bundled cards via :mod:`bayesmeta.datasets`, else a ``.md`` beside the file)."""
        data_spec = self.spec.get("data", {})
        name = data_spec.get("dataset")
        card: str | None = None
        if name:
            source = f"bundled data set '{name}'"
            if name in datasets.list_datasets():
                card = datasets.card_path(name).read_text(encoding="utf-8")
        else:
            raw = data_spec.get("path")
            source = str(raw) if raw else "(not recorded)"
            if raw:
                candidate = Path(raw)
                if not candidate.is_absolute():
                    candidate = self.path / candidate
                md = candidate.with_suffix(".md")
                if md.is_file():
                    card = md.read_text(encoding="utf-8")
        rebuilt = bool(card and REBUILT_PATTERN.search(card))
        return Provenance(source=source, card=card, rebuilt=rebuilt)
