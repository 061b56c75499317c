"""Prior sensitivity: refit a spec under a grid of priors, on Dask distributed.

>>> from bayesmeta.sensitivity import run_sensitivity, parse_prior_list   # doctest: +SKIP
>>> res = run_sensitivity(spec, tau_priors=parse_prior_list("halfnormal(0.5);halfcauchy(1)",
...                                                         target="scale"))  # doctest: +SKIP
>>> res.to_frame()                                                         # doctest: +SKIP

Modules: :mod:`~bayesmeta.sensitivity.grid` (default grids, reference scales, list parsing),
:mod:`~bayesmeta.sensitivity.conclusion` (qualitative conclusions),
:mod:`~bayesmeta.sensitivity.tasks` (work units), :mod:`~bayesmeta.sensitivity.runner`
(planning and Dask execution), :mod:`~bayesmeta.sensitivity.result` (the Dataset and tables).
"""

from bayesmeta.sensitivity.conclusion import conclusion, conclusion_changes
from bayesmeta.sensitivity.grid import (
    default_mu_priors,
    default_tau_priors,
    parse_prior_list,
    reference_scale,
)
from bayesmeta.sensitivity.result import SensitivityResult
from bayesmeta.sensitivity.runner import SERIAL, plan_sweep, run_sensitivity

__all__ = [
    "SERIAL",
    "SensitivityResult",
    "conclusion",
    "conclusion_changes",
    "default_mu_priors",
    "default_tau_priors",
    "parse_prior_list",
    "plan_sweep",
    "reference_scale",
    "run_sensitivity",
]
