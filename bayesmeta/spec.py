"""Model specs: declarative TOML files that name data and settings, never code.

A spec is parsed with :mod:`tomllib` and validated by frozen pydantic models with
``extra="forbid"``, so an unknown or misspelt key is an error that names the key.
This module knows nothing of PyMC; builders turn a spec into a model.

Examples
--------
>>> spec = load_spec("models/li2018_incidence.toml")        # doctest: +SKIP
>>> spec.effect.measure, spec.reference.method               # doctest: +SKIP
('RR', 'DL')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bayesmeta.errors import SpecError

__all__ = [
    "CorrectionSpec",
    "DataSpec",
    "EffectSpec",
    "ModelSpec",
    "PriorSpec",
    "PublishedSpec",
    "ReferenceSpec",
    "SamplingSpec",
    "Spec",
    "load_data",
    "load_spec",
    "spec_from_dict",
]

TAU2_METHODS = ("DL", "REML", "ML", "PM", "SJ", "HE", "EB", "FE", "EE")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorrectionSpec(_Section):
    """metafor-style continuity correction: ``add`` to cells ``to`` which rows; ``drop00`` drops double zeros."""

    add: float = 0.5
    to: Literal["only0", "all", "if0all", "none"] = "only0"
    drop00: bool = False


class DataSpec(_Section):
    """Where the data are and how their columns map onto the vocabulary (``ai``, ``n1i``, ``yi`` …)."""

    path: Path | None = None
    dataset: str | None = None
    study: str = "study"
    columns: dict[str, str] = Field(default_factory=dict)
    filter: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    sheet: str | int | None = None


class EffectSpec(_Section):
    """The effect-size measure and the conventions used to compute it."""

    measure: Literal["RR", "OR", "RD", "SMD", "MD", "GEN"] = "GEN"
    convention: Literal["metafor", "revman"] = "metafor"
    cc: Literal["metafor", "revman", "none"] | CorrectionSpec = "metafor"
    mean_method: Literal["luo2018", "wan2014", "hozo2005"] = "luo2018"
    sd_method: Literal["wan2014", "hozo2005"] = "wan2014"


class ReferenceSpec(_Section):
    """The frequentist reference analysis."""

    method: str = "REML"
    test: Literal["z", "knha"] = "z"
    level: float = Field(95.0, gt=0, lt=100)
    subgroups: list[str] = Field(default_factory=list)
    subgroup_tau2: Literal["separate", "common"] = "separate"

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in TAU2_METHODS:
            raise ValueError(f"unknown method {value!r}; use one of {', '.join(TAU2_METHODS)}")
        return value.upper()


class ModelSpec(_Section):
    """The Bayesian model: likelihood family, moderators, subgroups and a bias model."""

    family: Literal["normal", "binomial"] = "normal"
    moderators: list[str] = Field(default_factory=list)
    subgroup: str = ""
    subgroup_tau: Literal["separate", "shared"] = "separate"
    bias: str = "none"


class PriorSpec(_Section):
    """Priors as strings of the prior registry (``bayesmeta.priors.parse_prior``)."""

    mu: str = "normal(0, 10)"
    tau: str = "halfnormal(0.5)"
    beta: str = "normal(0, 1)"
    omega: str = "dirichlet(1)"


class SamplingSpec(_Section):
    """Engine and sampler settings; the seed makes a fit reproducible bit for bit."""

    engine: Literal["auto", "exact", "mcmc"] = "auto"
    sampler: Literal["nutpie", "pymc", "numpyro"] = "nutpie"
    chains: int = Field(4, ge=1)
    draws: int = Field(2000, ge=10)
    tune: int = Field(1000, ge=0)
    target_accept: float = Field(0.9, gt=0, lt=1)
    seed: int = 2018


class PublishedSpec(_Section):
    """Numbers printed in a paper, kept for comparison only (on the printed scale)."""

    source: str
    scale: Literal["ratio", "identity"] = "identity"
    digits: int = 2
    k: int | None = None
    animals: int | None = None
    participants: int | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    i2: float | None = None
    tau2: float | None = None
    #: The article's full tables that this spec's (unfiltered) data are scored against by
    #: ``bayesmeta reproduce`` (``fidelity.csv``), when the specs of both its outcomes are given.
    tables: Literal["li2018_incidence", "li2018_number"] | None = None


class Spec(_Section):
    """A whole model spec. ``source`` is the TOML file it came from (None when built in code)."""

    title: str = ""
    description: str = ""
    data: DataSpec
    effect: EffectSpec = EffectSpec()
    reference: ReferenceSpec = ReferenceSpec()
    model: ModelSpec = ModelSpec()
    priors: PriorSpec = PriorSpec()
    sampling: SamplingSpec = SamplingSpec()
    published: PublishedSpec | None = None
    source: Path | None = Field(default=None, exclude=True)

    def data_path(self) -> Path:
        """The data file, resolved relative to the spec file (or a bundled dataset)."""
        if self.data.dataset:
            from bayesmeta.datasets import dataset_path

            return dataset_path(self.data.dataset)
        assert self.data.path is not None  # guaranteed by spec_from_dict
        if self.data.path.is_absolute() or self.source is None:
            return self.data.path
        return (self.source.parent / self.data.path).resolve()

    def with_overrides(self, overrides: dict[str, Any]) -> Spec:
        """A copy with dotted keys replaced, e.g. ``{"priors.tau": "halfcauchy(1)"}``.

        ``None`` values are ignored, so CLI options that were not given change nothing.
        """
        tree = self.model_dump(mode="python", exclude_none=False)
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = tree
            *parents, leaf = dotted.split(".")
            for part in parents:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            node[leaf] = value
        return spec_from_dict(tree, source=self.source)

    def to_toml(self) -> str:
        """The resolved spec as TOML text (paths made absolute), for run directories."""
        tree = self.model_dump(mode="json", exclude_none=True)
        if self.data.path is not None:
            tree["data"]["path"] = str(self.data_path())
        return tomli_w.dumps(tree)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def spec_from_dict(tree: dict[str, Any], *, source: Path | str | None = None) -> Spec:
    """Validate a parsed spec; errors name the file and the dotted key.

    Parameters
    ----------
    tree
        The parsed TOML document.
    source
        The file it came from, used for relative paths and in error messages.
    """
    src = None if source is None else Path(source)
    try:
        spec = Spec.model_validate({**tree, "source": src})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _where(err["loc"])
        if err["type"] == "extra_forbidden":
            message = f"unknown key '{key}'"
        elif err["type"] == "missing":
            message = f"missing required key '{key}'"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        raise SpecError(message, file=src, key=key) from None
    if (spec.data.path is None) == (spec.data.dataset is None):
        raise SpecError("give exactly one of data.path or data.dataset", file=src, key="data")
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec.

    Raises
    ------
    SpecError
        When the file is missing, is not valid TOML, or has unknown, missing or invalid keys.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", file=path) from None
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", file=path) from None
    return spec_from_dict(tree, source=path.resolve())


def load_data(spec: Spec, *, strict: bool = False) -> pd.DataFrame:
    """Read the spec's data and compute ``yi``/``vi`` as its ``[effect]`` section says.

    Parameters
    ----------
    spec
        A validated spec.
    strict
        Turn warnings about left-out rows into errors.
    """
    from bayesmeta.data import read_table
    from bayesmeta.effects import escalc

    frame = read_table(
        spec.data_path(),
        columns=spec.data.columns or None,
        filter=spec.data.filter or None,
        sheet=spec.data.sheet,
        study=spec.data.study,
        strict=strict,
    )
    cc = spec.effect.cc
    cc_arg = cc if isinstance(cc, str) else cc.model_dump()
    return escalc(frame, spec.effect.measure, convention=spec.effect.convention, cc=cc_arg,
                  source=str(spec.data_path()), mean_method=spec.effect.mean_method,
                  sd_method=spec.effect.sd_method, strict=strict)
