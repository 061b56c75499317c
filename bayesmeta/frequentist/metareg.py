"""Design matrices for meta-regression, built as R's ``model.matrix`` builds them.

Continuous moderators enter as they are. Categorical moderators (strings, booleans, pandas
categoricals) become treatment dummies with the first level as reference, as R's default
contrasts do: levels are a categorical's own order, otherwise the sorted unique values, and a
dummy is named ``<column><level>`` (``allocrandom``, ``sexTRUE``), as R names them for a formula
``~ alloc``. The intercept is added by :func:`bayesmeta.frequentist.rma`, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bayesmeta.errors import InputError

__all__ = ["as_design", "design_matrix", "factor_dummies", "factor_levels"]


def _is_categorical(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        arr = np.asarray(values)
        return arr.dtype.kind in "OUSb"
    if getattr(dtype, "name", "") == "category":
        return True
    kind = getattr(dtype, "kind", "O")
    return kind in "OUSb" or str(dtype) in ("string", "boolean")


def factor_levels(values: Any) -> list[Any]:
    """Levels as R's ``factor()`` orders them: a categorical's own order, else sorted unique values."""
    cats = getattr(values, "categories", None)  # pandas.Categorical
    if cats is None:
        cats = getattr(getattr(values, "cat", None), "categories", None)  # Series of dtype category
    if cats is not None:
        present = set(np.asarray(values, dtype=object).tolist())
        return [c for c in cats.tolist() if c in present]
    return sorted(set(np.asarray(values, dtype=object).tolist()), key=lambda v: (str(type(v)), v))


def _label(level: Any) -> str:
    if isinstance(level, (bool, np.bool_)):
        return "TRUE" if level else "FALSE"
    return str(level)


def factor_dummies(values: Any, name: str, *, full: bool = False) -> tuple[NDArray[np.float64], list[str]]:
    """Treatment dummies of a categorical variable (first level = reference), R-style names.

    With ``full=True`` every level gets an indicator (R's coding of the first factor of a model
    without intercept).
    """
    arr = np.asarray(values, dtype=object)
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr.tolist()):
        raise InputError(f"moderator '{name}' has missing values", column=name)
    levels = factor_levels(values)
    coded = levels if full else levels[1:]
    cols = [(arr == level).astype(float) for level in coded]
    X = np.column_stack(cols) if cols else np.empty((arr.size, 0))
    return X, [f"{name}{_label(level)}" for level in coded]


def design_matrix(frame: Any, columns: Sequence[str], *,
                  intercept: bool = True) -> tuple[NDArray[np.float64], list[str]]:
    """Moderator columns of a data frame → design matrix (no intercept column) and column names.

    Parameters
    ----------
    frame
        A pandas DataFrame (anything indexable by column name with array-like columns).
    columns
        Moderator columns, in model order.
    intercept
        Whether the model has an intercept. Without one, the first categorical column gets an
        indicator for every level, as in R (``~ g - 1`` gives one mean per level).
    """
    blocks: list[NDArray[np.float64]] = []
    names: list[str] = []
    full_first = not intercept
    for column in columns:
        if column not in getattr(frame, "columns", ()):
            raise InputError(f"no moderator column '{column}'", column=column)
        values = frame[column]
        if _is_categorical(values):
            X, cols = factor_dummies(values, column, full=full_first)
            full_first = False
        else:
            x = np.asarray(values, dtype=float)
            if not np.all(np.isfinite(x)):
                raise InputError(f"moderator '{column}' has missing or non-finite values", column=column)
            X, cols = x[:, None], [column]
        blocks.append(X)
        names.extend(cols)
    k = len(frame)
    return (np.column_stack(blocks) if blocks else np.empty((k, 0))), names


def as_design(mods: Any, moderators: Sequence[str] | None, k: int,
              intercept: bool = True) -> tuple[NDArray[np.float64], list[str]]:
    """Normalise the ``mods`` argument of :func:`rma` to a float matrix with column names.

    ``mods`` is a data frame (its ``moderators`` columns, or all of them) or an array of shape
    ``(k,)`` or ``(k, m)`` that is already a design matrix (named ``mods`` or ``mods1..m`` as R
    names an unnamed matrix).
    """
    if hasattr(mods, "columns"):
        cols = list(mods.columns) if moderators is None else list(moderators)
        X, names = design_matrix(mods, cols, intercept=intercept)
    else:
        if moderators is not None:
            raise InputError("'moderators' selects columns of a data frame; mods is an array")
        X = np.asarray(mods, dtype=float)
        if X.ndim == 1:
            X, names = X[:, None], ["mods"]
        elif X.ndim == 2:
            names = [f"mods{j + 1}" for j in range(X.shape[1])]
        else:
            raise InputError(f"mods must be a vector or a matrix, got {X.ndim} dimensions")
        if not np.all(np.isfinite(X)):
            raise InputError("mods has missing or non-finite values")
    if X.shape[0] != k:
        raise InputError(f"mods has {X.shape[0]} rows for {k} studies")
    return X, names
