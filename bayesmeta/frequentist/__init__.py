"""Frequentist reference engine (NumPy/SciPy only), agreeing with metafor to ~1e-8.

tau² estimators (:data:`TAU2_ESTIMATORS`), random/fixed-effect models and meta-regression
(:func:`rma`), Mantel–Haenszel (:func:`rma_mh`), subgroup analyses (:func:`subgroup_analysis`),
leave-one-out (:func:`leave1out`), small-study tests (:func:`regtest`, :func:`trimfill`,
:func:`funnel`) and step-function selection models (:func:`selmodel`).
"""

from bayesmeta.frequentist.bias import funnel, regtest, trimfill
from bayesmeta.frequentist.influence import leave1out
from bayesmeta.frequentist.mh import rma_mh
from bayesmeta.frequentist.results import (
    BetweenTest,
    Coefficient,
    FunnelData,
    Leave1OutResult,
    Leave1OutRow,
    MetaRegressionResult,
    MHResult,
    RegtestResult,
    RMAResult,
    SubgroupResult,
    SubgroupRow,
    TrimfillResult,
)
from bayesmeta.frequentist.rma import TESTS, rma
from bayesmeta.frequentist.selection import selmodel
from bayesmeta.frequentist.subgroups import subgroup_analysis
from bayesmeta.frequentist.tau2 import TAU2_ESTIMATORS, ConvergenceError, Tau2Control

__all__ = [
    "BetweenTest",
    "Coefficient",
    "ConvergenceError",
    "FunnelData",
    "Leave1OutResult",
    "Leave1OutRow",
    "MHResult",
    "MetaRegressionResult",
    "RMAResult",
    "RegtestResult",
    "SubgroupResult",
    "SubgroupRow",
    "TAU2_ESTIMATORS",
    "TESTS",
    "Tau2Control",
    "TrimfillResult",
    "funnel",
    "leave1out",
    "regtest",
    "rma",
    "rma_mh",
    "subgroup_analysis",
    "trimfill",
]
