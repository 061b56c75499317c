"""Leave-one-out diagnostics, as metafor's ``leave1out``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from bayesmeta.errors import BayesmetaError, DataWarning, InputError
from bayesmeta.frequentist.results import Leave1OutResult, Leave1OutRow, RMAResult
from bayesmeta.frequentist.rma import check_effects, rma
from bayesmeta.frequentist.tau2 import Tau2Control

__all__ = ["leave1out"]

_NAN = math.nan


def leave1out(
    yi: ArrayLike,
    vi: ArrayLike,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    control: Tau2Control | None = None,
    labels: Sequence[str] | None = None,
) -> Leave1OutResult:
    """Refit the model once without each study (``metafor::leave1out``).

    Parameters
    ----------
    yi, vi
        Effect sizes and sampling variances.
    method, test, level, control
        As for :func:`bayesmeta.frequentist.rma`.
    labels
        Study labels, carried into ``to_dict()``.

    Returns
    -------
    Leave1OutResult
        One row per omitted study: estimate, se, z (t), p, CI, Q and its p-value, tau², I², H².
        A refit that fails (metafor then reports NA) gives a row of NaN (``None`` in ``to_dict``)
        and a :class:`~bayesmeta.errors.DataWarning`.
    """
    y, v = check_effects(yi, vi)
    k = y.size
    if k < 2:
        raise InputError("leave-one-out needs at least two studies")
    if labels is not None and len(labels) != k:
        raise InputError(f"{len(labels)} labels for {k} studies")
    rows = []
    for i in range(k):
        keep = np.arange(k) != i
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DataWarning)
                fit = rma(y[keep], v[keep], method=method, test=test, level=level, control=control)
        except (BayesmetaError, ArithmeticError) as exc:
            warnings.warn(f"leave-one-out without study {i}: refit failed ({exc})", DataWarning, stacklevel=2)
            rows.append(Leave1OutRow(i, *([_NAN] * 11)))
            continue
        assert isinstance(fit, RMAResult)
        rows.append(Leave1OutRow(omitted=i, estimate=fit.estimate, se=fit.se, zval=fit.zval, pval=fit.pval,
                                 ci_low=fit.ci_low, ci_high=fit.ci_high, q=fit.q, q_p=fit.q_p, tau2=fit.tau2,
                                 i2=fit.i2, h2=fit.h2))
    return Leave1OutResult(rows=tuple(rows), method=method, test=test,
                           labels=None if labels is None else tuple(str(s) for s in labels))
