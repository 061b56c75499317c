"""Posterior draws from a DataTree, a Dataset or a plain mapping, as flat NumPy arrays.

Figures accept any of the three so that they can be drawn from a fit
(``FitResult.tree``), from a ``posterior.nc`` read back, or from arrays made
in a test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from bayesmeta.errors import InputError

__all__ = ["Draws", "as_draws", "interval"]

_SAMPLE_DIMS = ("chain", "draw")


@dataclass(frozen=True)
class Draws:
    """Flattened posterior draws.

    Attributes
    ----------
    values
        Variable name → array of shape ``(n_draws,)`` for scalars or
        ``(n_draws, n)`` for vector variables (``theta`` over ``study``).
    coords
        Variable name → labels of its last axis (``theta`` → study labels).
    """

    values: Mapping[str, np.ndarray]
    coords: Mapping[str, tuple[str, ...]]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise InputError(f"the posterior has no variable '{name}' (has: {', '.join(sorted(self.values))})")
        return self.values[name]

    def labels(self, name: str) -> tuple[str, ...]:
        """Coordinate labels of vector variable ``name``."""
        return self.coords.get(name, tuple(str(i) for i in range(self[name].shape[-1])))


def _flatten(da: xr.DataArray) -> tuple[np.ndarray, tuple[str, ...] | None]:
    sample = [d for d in _SAMPLE_DIMS if d in da.dims]
    other = [d for d in da.dims if d not in _SAMPLE_DIMS]
    if len(other) > 1:
        return np.empty(0), None  # matrices are not drawn by these figures
    if sample:
        da = da.stack(__sample__=sample).transpose("__sample__", *other)
    values = np.asarray(da.values, dtype=float)
    labels = tuple(str(v) for v in da[other[0]].values) if other and other[0] in da.coords else None
    return values, labels


def as_draws(posterior: xr.DataTree | xr.Dataset | Mapping[str, np.ndarray] | Draws) -> Draws:
    """Flatten chains and draws of ``posterior``.

    Parameters
    ----------
    posterior
        A DataTree with a ``posterior`` group, an ``xr.Dataset`` with dims
        ``chain``/``draw``, or a mapping of names to arrays whose first axis
        indexes draws (``theta`` may carry labels via ``{"theta": DataArray}``).

    Returns
    -------
    Draws
    """
    if isinstance(posterior, Draws):
        return posterior
    if isinstance(posterior, xr.DataTree):
        if "posterior" not in posterior.children:
            raise InputError("the DataTree has no 'posterior' group")
        posterior = posterior["posterior"].to_dataset()
    values: dict[str, np.ndarray] = {}
    coords: dict[str, tuple[str, ...]] = {}
    if isinstance(posterior, xr.Dataset):
        items = posterior.data_vars.items()
    elif isinstance(posterior, Mapping):
        items = posterior.items()
    else:
        raise InputError(f"cannot read posterior draws from a {type(posterior).__name__}")
    for name, var in items:
        if isinstance(var, xr.DataArray):
            arr, labels = _flatten(var)
        else:
            arr, labels = np.asarray(var, dtype=float), None
        if arr.size == 0:
            continue
        values[str(name)] = arr
        if labels is not None:
            coords[str(name)] = labels
    return Draws(values=values, coords=coords)


def interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Median and equal-tailed ``level`` interval of draws along axis 0."""
    lo, med, hi = np.quantile(x, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
    return med, lo, hi
