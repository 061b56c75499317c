"""The frequentist reference analysis of a spec: what ``bayesmeta reference`` computes.

It reads the data, computes effect sizes, fits the random-effects model and, when asked,
subgroup analyses, leave-one-out, Egger's test, trim-and-fill and a selection model.
It computes only; printing lives in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmeta import frequentist as fq
from bayesmeta.errors import InputError
from bayesmeta.frequentist.selection import selmodel
from bayesmeta.spec import Spec, load_data, load_spec, spec_from_dict

__all__ = ["ReferenceResult", "ad_hoc_spec", "run_reference", "spec_or_data"]

_DATA_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx", ".xls", ".parquet", ".pq"}


@dataclass(frozen=True)
class ReferenceResult:
    """Everything the reference analysis computed for one spec.

    Attributes
    ----------
    spec
        The resolved spec.
    data
        The analysed rows, with ``label``, ``yi`` and ``vi``.
    model
        The random-effects (or fixed-effect) model on all rows.
    subgroups
        Subgroup analyses by moderator column.
    leave1out, regtest, trimfill, selection
        Sensitivity and publication-bias analyses, when requested.
    regtest_n
        Egger's test with ``1/sqrt(n1i + n2i)`` as the predictor (metafor's ``"sqrtninv"``), when
        arm sizes are known: for SMDs (and log odds/risk ratios) the standard error depends on the
        effect itself, which makes the test on the standard error reject too often for large
        effects (Pustejovsky & Rodgers 2019, Res Synth Methods 10:57-71); the sample size does not.
    """

    spec: Spec
    data: pd.DataFrame
    model: Any
    subgroups: dict[str, Any] = field(default_factory=dict)
    leave1out: Any = None
    regtest: Any = None
    regtest_n: Any = None
    trimfill: Any = None
    selection: Any = None

    @property
    def animals(self) -> int | None:
        """Total subjects across both arms, when arm sizes are known."""
        ni = arm_totals(self.data)
        return None if ni is None else int(ni.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result: the model's headline keys at the top level, then the extras."""
        out: dict[str, Any] = {
            "measure": self.spec.effect.measure,
            "convention": self.spec.effect.convention,
            **self.model.to_dict(),
            "animals": self.animals,
        }
        out.pop("weights", None)
        out["studies"] = [
            {"label": str(lab), "yi": float(y), "vi": float(v), "weight_pct": float(w)}
            for lab, y, v, w in zip(self.data["label"], self.data["yi"], self.data["vi"],
                                    self.model.weights, strict=True)
        ]
        if len(self.subgroups) == 1:
            only = next(iter(self.subgroups.values())).to_dict()
            out["subgroup"] = next(iter(self.subgroups))
            out["subgroups"] = only["subgroups"]
            out["between"] = only["between"]
        elif self.subgroups:
            out["subgroup_analyses"] = {k: v.to_dict() for k, v in self.subgroups.items()}
        for name in ("leave1out", "regtest", "regtest_n", "trimfill", "selection"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict()
        return out


def arm_totals(data: pd.DataFrame) -> np.ndarray | None:
    """Subjects per study (``n1i + n2i``), or ``None`` when the data have no arm sizes."""
    if not {"n1i", "n2i"} <= set(data.columns):
        return None
    return data["n1i"].to_numpy(dtype=float) + data["n2i"].to_numpy(dtype=float)


def ad_hoc_spec(
    data: str | Path,
    *,
    measure: str | None = None,
    method: str = "REML",
    test: str = "z",
    convention: str = "metafor",
) -> Spec:
    """A spec for a data file given on the command line (no TOML)."""
    tree: dict[str, Any] = {
        "data": {"path": str(Path(data).resolve())},
        "effect": {"measure": measure or "GEN", "convention": convention},
        "reference": {"method": method, "test": test},
    }
    return spec_from_dict(tree)


def spec_or_data(target: str | Path, **ad_hoc: Any) -> tuple[Spec, bool]:
    """Load ``target`` as a TOML spec or wrap a data file in an ad-hoc spec.

    Returns the spec and whether it came from a TOML file.
    """
    path = Path(target)
    if path.suffix.lower() == ".toml":
        return load_spec(path), True
    if path.suffix.lower() not in _DATA_SUFFIXES:
        raise InputError(f"expected a .toml spec or a data file ({', '.join(sorted(_DATA_SUFFIXES))})",
                         file=path)
    if not path.exists():
        raise InputError("no such file", file=path)
    return ad_hoc_spec(path, **{k: v for k, v in ad_hoc.items() if v is not None}), False


def run_reference(
    spec: Spec,
    *,
    subgroups: list[str] | None = None,
    leave_one_out: bool = False,
    bias: bool = False,
    selection: str | None = None,
    strict: bool = False,
) -> ReferenceResult:
    """Run the frequentist reference analysis of a spec.

    Parameters
    ----------
    spec
        The spec; its ``[reference]`` section sets method, test, level and default subgroups.
    subgroups
        Moderator columns for subgroup analyses; ``None`` takes the spec's list.
    leave_one_out
        Also run leave-one-out.
    bias
        Also run Egger's regression test and trim-and-fill.
    selection
        A step-function selection model, e.g. ``"stepfun(0.025, 0.5)"`` (maximum likelihood).
    strict
        Turn data warnings (rows left out) into errors.
    """
    data = load_data(spec, strict=strict)
    ref = spec.reference
    yi = data["yi"].to_numpy(dtype=float)
    vi = data["vi"].to_numpy(dtype=float)
    model = fq.rma(yi, vi, method=ref.method, test=ref.test, level=ref.level)
    columns = spec.reference.subgroups if subgroups is None else subgroups
    groups = {}
    for column in columns:
        if column not in data.columns:
            raise InputError(f"no moderator column '{column}' for a subgroup analysis",
                             file=spec.data_path(), column=column)
        levels = data[column].astype("string").fillna("(missing)").to_numpy()
        groups[column] = fq.subgroup_analysis(yi, vi, levels, method=ref.method, test=ref.test,
                                              tau2=ref.subgroup_tau2, level=ref.level)
    extras: dict[str, Any] = {}
    if leave_one_out:
        extras["leave1out"] = fq.leave1out(yi, vi, method=ref.method, test=ref.test, level=ref.level)
    if bias and len(yi) >= 3:  # Egger's regression needs a residual degree of freedom
        extras["regtest"] = fq.regtest(yi, vi, method=ref.method)
        if (ni := arm_totals(data)) is not None:
            extras["regtest_n"] = fq.regtest(yi, vi, method=ref.method, predictor="sqrtninv", ni=ni)
        extras["trimfill"] = fq.trimfill(yi, vi, method=ref.method)
    if selection:
        extras["selection"] = selmodel(yi, vi, steps=selection, method="ML")
    return ReferenceResult(spec=spec, data=data, model=model, subgroups=groups, **extras)

