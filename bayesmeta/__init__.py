"""bayesmeta: Bayesian meta-analysis with an exact frequentist reference.

The public API is re-exported here as the layers land; see ARCHITECTURE.md.
"""

from importlib.metadata import version as _version

from bayesmeta.errors import BayesmetaError, DataWarning, InputError, SamplerWarning, SpecError

__version__ = _version("bayesmeta")

__all__ = [
    "BayesmetaError",
    "DataWarning",
    "InputError",
    "SamplerWarning",
    "SpecError",
    "__version__",
]
