"""bayesmeta: Bayesian meta-analysis with an exact frequentist reference.

The public API is importable from the top level; heavy layers (PyMC, ArviZ) load only when one
of their names is first used, so ``import bayesmeta`` and the frequentist reference stay fast.

>>> import bayesmeta as bm                                              # doctest: +SKIP
>>> spec = bm.load_spec("models/li2018_number.toml")                    # doctest: +SKIP
>>> bm.run_reference(spec).model.estimate                               # doctest: +SKIP
>>> bm.fit(spec).summary["mu"]                                          # doctest: +SKIP
"""

from importlib import import_module
from importlib.metadata import version as _version
from typing import Any

from bayesmeta.errors import BayesmetaError, DataWarning, InputError, SamplerWarning, SpecError

__version__ = _version("bayesmeta")

#: public name → module that defines it (loaded on first use)
_LAZY = {
    "read_table": "bayesmeta.data",
    "escalc": "bayesmeta.effects",
    "MEASURES": "bayesmeta.effects",
    "rma": "bayesmeta.frequentist",
    "rma_mh": "bayesmeta.frequentist",
    "subgroup_analysis": "bayesmeta.frequentist",
    "leave1out": "bayesmeta.frequentist",
    "regtest": "bayesmeta.frequentist",
    "trimfill": "bayesmeta.frequentist",
    "selmodel": "bayesmeta.frequentist",
    "load_spec": "bayesmeta.spec",
    "load_data": "bayesmeta.spec",
    "run_reference": "bayesmeta.reference",
    "parse_prior": "bayesmeta.priors",
    "list_priors": "bayesmeta.priors",
    "ExactNormalNormal": "bayesmeta.exact",
    "fit": "bayesmeta.inference",
    "fit_data": "bayesmeta.inference",
    "compile_fit": "bayesmeta.inference",
    "check": "bayesmeta.diagnostics",
    "compare": "bayesmeta.comparison",
    "fit_spec": "bayesmeta.runs",
    "save_run": "bayesmeta.runs",
    "run_sensitivity": "bayesmeta.sensitivity",
    "write_report": "bayesmeta.report.report",
    "load_dataset": "bayesmeta.datasets",
    "list_datasets": "bayesmeta.datasets",
}

__all__ = [
    "BayesmetaError",
    "DataWarning",
    "InputError",
    "SamplerWarning",
    "SpecError",
    "__version__",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bayesmeta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
