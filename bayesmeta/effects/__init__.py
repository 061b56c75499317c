"""Effect sizes: the measure registry, continuity corrections, conventions, escalc().

Never imports PyMC, PyTensor or ArviZ.

Examples
--------
>>> from bayesmeta.effects import MEASURES
>>> MEASURES["RR"].to_natural(0.0)
1.0
"""

from bayesmeta.effects import conversions
from bayesmeta.effects.continuous import CONVENTIONS, Convention, get_convention
from bayesmeta.effects.correction import CC_POLICIES, ContinuityCorrection, resolve_cc
from bayesmeta.effects.escalc import escalc
from bayesmeta.effects.registry import MEASURES, SCALES, Measure, Scale, get_measure

__all__ = [
    "CC_POLICIES",
    "CONVENTIONS",
    "MEASURES",
    "SCALES",
    "ContinuityCorrection",
    "Convention",
    "Measure",
    "Scale",
    "conversions",
    "escalc",
    "get_convention",
    "get_measure",
    "resolve_cc",
]
