"""Effect sizes for two-group continuous outcomes, and the two conventions.

A :class:`Convention` fixes how the standardised mean difference (Hedges' g) is
bias-corrected and what variance it gets. Two are registered in
:data:`CONVENTIONS`:

``metafor`` (default)
    Exact bias correction ``J = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))`` with
    ``m = n1 + n2 - 2`` (Hedges 1981; Hedges & Olkin 1985, p. 80) and metafor's
    default large-sample variance (``escalc(vtype = "LS")``)
    ``vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2))``.

``revman``
    RevMan 5 (Deeks & Higgins, *Statistical algorithms in Review Manager 5*, 2010,
    section "Standardized mean difference"): Hedges' adjusted g with the
    approximate correction ``J = 1 - 3 / (4N - 9)`` and
    ``SE(g)^2 = N / (n1 n2) + g^2 / (2 (N - 3.94))``, ``N = n1 + n2``.
    No ``vtype`` of metafor 3.8 reproduces this variance (checked: LS, LS2, UB, AV).

The mean difference is the same in both programs: ``yi = m1 - m2``,
``vi = sd1^2 / n1 + sd2^2 / n2`` (metafor ``vtype = "LS"``; RevMan 5 "Mean
difference").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from bayesmeta.errors import SpecError

__all__ = [
    "CONVENTIONS",
    "Convention",
    "get_convention",
    "hedges_j_exact",
    "hedges_j_revman",
    "mean_difference",
    "smd_variance_ls",
    "smd_variance_revman",
    "standardized_mean_difference",
]

Columns = Mapping[str, np.ndarray]


def hedges_j_exact(n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Exact small-sample bias correction of Cohen's d (Hedges 1981).

    ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m - 1)/2))`` with ``m = n1 + n2 - 2``.
    """
    m = np.asarray(n1, dtype=float) + np.asarray(n2, dtype=float) - 2.0
    return np.exp(gammaln(m / 2.0) - 0.5 * np.log(m / 2.0) - gammaln((m - 1.0) / 2.0))


def hedges_j_revman(n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """RevMan 5's approximate correction ``1 - 3 / (4N - 9)``, ``N = n1 + n2``."""
    n = np.asarray(n1, dtype=float) + np.asarray(n2, dtype=float)
    return 1.0 - 3.0 / (4.0 * n - 9.0)


def smd_variance_ls(g: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """metafor's large-sample variance: ``1/n1 + 1/n2 + g^2 / (2 (n1 + n2))``."""
    return 1.0 / n1 + 1.0 / n2 + g**2 / (2.0 * (n1 + n2))


def smd_variance_revman(g: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """RevMan 5's variance: ``N / (n1 n2) + g^2 / (2 (N - 3.94))``, ``N = n1 + n2``."""
    n = n1 + n2
    return n / (n1 * n2) + g**2 / (2.0 * (n - 3.94))


@dataclass(frozen=True)
class Convention:
    """How Hedges' g is corrected and what variance it gets.

    Attributes
    ----------
    name
        Registry key.
    smd_correction
        ``J(n1, n2)``, the multiplier turning Cohen's d into Hedges' g.
    smd_variance
        ``var(g, n1, n2)``.
    source
        Where the formulas come from.
    """

    name: str
    smd_correction: Callable[[np.ndarray, np.ndarray], np.ndarray]
    smd_variance: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    source: str

    def to_dict(self) -> dict[str, str]:
        """JSON-able description."""
        return {"name": self.name, "source": self.source}


CONVENTIONS: dict[str, Convention] = {
    "metafor": Convention(
        "metafor", hedges_j_exact, smd_variance_ls,
        "metafor escalc(): exact J (Hedges 1981), vtype='LS' variance",
    ),
    "revman": Convention(
        "revman", hedges_j_revman, smd_variance_revman,
        "Deeks & Higgins (2010) Statistical algorithms in Review Manager 5: "
        "J = 1 - 3/(4N - 9), var = N/(n1 n2) + g^2/(2(N - 3.94))",
    ),
}


def get_convention(name: str | Convention) -> Convention:
    """Look up a convention by name (or pass a :class:`Convention` through)."""
    if isinstance(name, Convention):
        return name
    if name not in CONVENTIONS:
        raise SpecError(f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}",
                        key="effect.convention")
    return CONVENTIONS[name]


def _arms(data: Columns) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(data[k], dtype=float) for k in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"))


def standardized_mean_difference(data: Columns, convention: Convention) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g with the pooled SD and the convention's correction and variance.

    ``sp = sqrt(((n1 - 1) sd1^2 + (n2 - 1) sd2^2) / (n1 + n2 - 2))``,
    ``g = J (m1 - m2) / sp``.
    """
    m1, sd1, n1, m2, sd2, n2 = _arms(data)
    sp = np.sqrt(((n1 - 1.0) * sd1**2 + (n2 - 1.0) * sd2**2) / (n1 + n2 - 2.0))
    g = convention.smd_correction(n1, n2) * (m1 - m2) / sp
    return g, convention.smd_variance(g, n1, n2)


def mean_difference(data: Columns, convention: Convention) -> tuple[np.ndarray, np.ndarray]:
    """Raw mean difference with unequal-variance standard error."""
    m1, sd1, n1, m2, sd2, n2 = _arms(data)
    return m1 - m2, sd1**2 / n1 + sd2**2 / n2
