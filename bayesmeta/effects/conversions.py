"""Estimate a sample mean and SD from the median, quartiles and/or range.

Three scenarios, named as in Wan et al. (2014) and Luo et al. (2018):

``S1``  minimum ``a``, median ``m``, maximum ``b`` and ``n``;
``S2``  first quartile ``q1``, median ``m``, third quartile ``q3`` and ``n``;
``S3``  all five numbers and ``n``.

Methods (registries :data:`MEAN_METHODS`, :data:`SD_METHODS`):

``luo2018`` (mean, default)
    Luo, Wan, Liu & Tong (2018), Stat Methods Med Res 27(6):1785-1805: weighted
    means of mid-range, mid-quartile range and median with weights depending on
    ``n`` (S1 ``w = 4/(4 + n^0.75)``; S2 ``w = 0.7 + 0.39/n``; S3
    ``w1 = 2.2/(2.2 + n^0.75)``, ``w2 = 0.7 - 0.72/n^0.55``).
``wan2014`` (mean and SD, SD default)
    Wan, Wang, Liu & Tong (2014), BMC Med Res Methodol 14:135. Means: S1
    ``(a + 2m + b)/4`` (as metafor's ``conv.fivenum(method="wan2014")``), S2
    ``(q1 + m + q3)/3`` (eq. 14), S3 ``(a + 2q1 + 2m + 2q3 + b)/8`` (eq. 10). SDs:
    S1 ``(b - a) / xi(n)`` (eq. 9), S2 ``(q3 - q1) / eta(n)`` (eq. 16), S3 the
    average of both (eqs. 12-13), with Blom's approximations
    ``xi(n) = 2 Phi^-1((n - 0.375)/(n + 0.25))`` and
    ``eta(n) = 2 Phi^-1((0.75 n - 0.125)/(n + 0.25))``. (Wan et al. tabulate the
    exact ``xi(n)`` for ``n <= 50`` in their Table 1; we use the closed form for
    every ``n``, as metafor's ``conv.fivenum()`` does.)
``hozo2005`` (S1 only)
    Hozo, Djulbegovic & Hozo (2005), BMC Med Res Methodol 5:13, with the rules of
    their abstract: mean ``(a + 2m + b)/4`` for ``n <= 25`` and the median above;
    SD ``sqrt(((a - 2m + b)^2/4 + (b - a)^2)/12)`` for ``n <= 15``, ``range/4`` for
    ``15 < n <= 70``, ``range/6`` above.

All functions are vectorised over NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = [
    "MEAN_METHODS",
    "SD_METHODS",
    "ArmSummary",
    "blom_eta",
    "blom_xi",
    "estimate_mean_sd",
    "hozo_mean_s1",
    "hozo_sd_s1",
    "luo_mean_s1",
    "luo_mean_s2",
    "luo_mean_s3",
    "scenario",
    "wan_mean_s1",
    "wan_mean_s2",
    "wan_mean_s3",
    "wan_sd_s1",
    "wan_sd_s2",
    "wan_sd_s3",
]

Arr = np.ndarray


def blom_xi(n: Arr) -> Arr:
    """Wan et al. (2014) eq. (9): ``2 Phi^-1((n - 0.375) / (n + 0.25))``, the expected range of n N(0,1) draws."""
    n = np.asarray(n, dtype=float)
    return 2.0 * norm.ppf((n - 0.375) / (n + 0.25))


def blom_eta(n: Arr) -> Arr:
    """Wan et al. (2014) eq. (16): ``2 Phi^-1((0.75 n - 0.125) / (n + 0.25))``, the expected IQR."""
    n = np.asarray(n, dtype=float)
    return 2.0 * norm.ppf((0.75 * n - 0.125) / (n + 0.25))


# ----------------------------------------------------------------------- means


def luo_mean_s1(a: Arr, m: Arr, b: Arr, n: Arr) -> Arr:
    """Luo et al. (2018), S1: ``w (a + b)/2 + (1 - w) m``, ``w = 4 / (4 + n^0.75)``."""
    w = 4.0 / (4.0 + np.asarray(n, dtype=float) ** 0.75)
    return w * (a + b) / 2.0 + (1.0 - w) * m


def luo_mean_s2(q1: Arr, m: Arr, q3: Arr, n: Arr) -> Arr:
    """Luo et al. (2018), S2: ``w (q1 + q3)/2 + (1 - w) m``, ``w = 0.7 + 0.39 / n``."""
    w = 0.7 + 0.39 / np.asarray(n, dtype=float)
    return w * (q1 + q3) / 2.0 + (1.0 - w) * m


def luo_mean_s3(a: Arr, q1: Arr, m: Arr, q3: Arr, b: Arr, n: Arr) -> Arr:
    """Luo et al. (2018), S3.

    ``w1 (a + b)/2 + w2 (q1 + q3)/2 + (1 - w1 - w2) m`` with
    ``w1 = 2.2 / (2.2 + n^0.75)`` and ``w2 = 0.7 - 0.72 / n^0.55``.
    """
    n = np.asarray(n, dtype=float)
    w1 = 2.2 / (2.2 + n**0.75)
    w2 = 0.7 - 0.72 / n**0.55
    return w1 * (a + b) / 2.0 + w2 * (q1 + q3) / 2.0 + (1.0 - w1 - w2) * m


def wan_mean_s1(a: Arr, m: Arr, b: Arr, n: Arr) -> Arr:
    """Wan et al. (2014): ``(a + 2m + b) / 4``."""
    return (a + 2.0 * m + b) / 4.0


def wan_mean_s2(q1: Arr, m: Arr, q3: Arr, n: Arr) -> Arr:
    """Wan et al. (2014) eq. (14): ``(q1 + m + q3) / 3``."""
    return (q1 + m + q3) / 3.0


def wan_mean_s3(a: Arr, q1: Arr, m: Arr, q3: Arr, b: Arr, n: Arr) -> Arr:
    """Wan et al. (2014) eq. (10): ``(a + 2 q1 + 2 m + 2 q3 + b) / 8``."""
    return (a + 2.0 * q1 + 2.0 * m + 2.0 * q3 + b) / 8.0


def hozo_mean_s1(a: Arr, m: Arr, b: Arr, n: Arr) -> Arr:
    """Hozo et al. (2005): ``(a + 2m + b)/4`` if ``n <= 25``, else the median."""
    return np.where(np.asarray(n) <= 25, (a + 2.0 * m + b) / 4.0, m)


# ----------------------------------------------------------------------- SDs


def wan_sd_s1(a: Arr, m: Arr, b: Arr, n: Arr) -> Arr:
    """Wan et al. (2014) eq. (9): ``(b - a) / xi(n)``."""
    return (b - a) / blom_xi(n)


def wan_sd_s2(q1: Arr, m: Arr, q3: Arr, n: Arr) -> Arr:
    """Wan et al. (2014) eq. (16): ``(q3 - q1) / eta(n)``."""
    return (q3 - q1) / blom_eta(n)


def wan_sd_s3(a: Arr, q1: Arr, m: Arr, q3: Arr, b: Arr, n: Arr) -> Arr:
    """Wan et al. (2014) eqs. (12)-(13): ``((b - a) / xi(n) + (q3 - q1) / eta(n)) / 2``."""
    return 0.5 * ((b - a) / blom_xi(n) + (q3 - q1) / blom_eta(n))


def hozo_sd_s1(a: Arr, m: Arr, b: Arr, n: Arr) -> Arr:
    """Hozo et al. (2005) with their sample-size rules (see module docstring)."""
    n = np.asarray(n, dtype=float)
    small = np.sqrt(((a - 2.0 * m + b) ** 2 / 4.0 + (b - a) ** 2) / 12.0)
    return np.where(n <= 15, small, np.where(n <= 70, (b - a) / 4.0, (b - a) / 6.0))


#: ``method -> scenario -> function``; S1 takes (a, m, b, n), S2 (q1, m, q3, n), S3 (a, q1, m, q3, b, n).
MEAN_METHODS: dict[str, dict[str, Callable[..., Arr]]] = {
    "luo2018": {"S1": luo_mean_s1, "S2": luo_mean_s2, "S3": luo_mean_s3},
    "wan2014": {"S1": wan_mean_s1, "S2": wan_mean_s2, "S3": wan_mean_s3},
    "hozo2005": {"S1": hozo_mean_s1},
}
SD_METHODS: dict[str, dict[str, Callable[..., Arr]]] = {
    "wan2014": {"S1": wan_sd_s1, "S2": wan_sd_s2, "S3": wan_sd_s3},
    "hozo2005": {"S1": hozo_sd_s1},
}

#: Scenario -> the summary statistics it needs (in the order the functions take them).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "S3": ("min", "q1", "med", "q3", "max"),
    "S2": ("q1", "med", "q3"),
    "S1": ("min", "med", "max"),
}

_CITATIONS = {
    "luo2018": "Luo et al. (2018)",
    "wan2014": "Wan et al. (2014)",
    "hozo2005": "Hozo et al. (2005)",
}


@dataclass(frozen=True)
class ArmSummary:
    """Summary statistics of one arm of one study (NaN where not reported)."""

    min: float = np.nan
    q1: float = np.nan
    med: float = np.nan
    q3: float = np.nan
    max: float = np.nan
    n: float = np.nan


def scenario(summary: Mapping[str, float] | ArmSummary) -> str | None:
    """The richest scenario (``"S3"``, ``"S2"``, ``"S1"``) the reported statistics allow."""
    values = summary if isinstance(summary, Mapping) else summary.__dict__
    for name, needed in SCENARIOS.items():
        if all(not np.isnan(float(values.get(k, np.nan))) for k in needed):
            return name
    return None


def estimate_mean_sd(
    summary: Mapping[str, float] | ArmSummary,
    *,
    mean_method: str = "luo2018",
    sd_method: str = "wan2014",
) -> tuple[float, float, str]:
    """Estimate mean and SD of one arm from its reported quantiles.

    Parameters
    ----------
    summary
        ``min, q1, med, q3, max, n`` (NaN or absent where not reported).
    mean_method, sd_method
        Keys of :data:`MEAN_METHODS` and :data:`SD_METHODS`.

    Returns
    -------
    mean, sd, description
        ``description`` names scenario, methods and equations, e.g.
        ``"S2 (q1, med, q3): mean Luo et al. (2018), SD Wan et al. (2014)"``.

    Raises
    ------
    KeyError
        Unknown method. ``ValueError`` if the statistics fit no scenario the
        methods cover (the caller turns this into an InputError naming the row).
    """
    values = dict(summary) if isinstance(summary, Mapping) else dict(summary.__dict__)
    mean_funcs, sd_funcs = MEAN_METHODS[mean_method], SD_METHODS[sd_method]
    for name, needed in SCENARIOS.items():
        if name not in mean_funcs or name not in sd_funcs:
            continue
        args = [float(values.get(k, np.nan)) for k in needed]
        if any(np.isnan(args)):
            continue
        n = float(values["n"])
        mean = float(mean_funcs[name](*args, n))
        sd = float(sd_funcs[name](*args, n))
        text = (f"{name} ({', '.join(needed)}): mean {_CITATIONS[mean_method]}, "
                f"SD {_CITATIONS[sd_method]}")
        return mean, sd, text
    covered = sorted(set(mean_funcs) & set(sd_funcs), reverse=True)
    raise ValueError(
        "needs " + " or ".join(f"{', '.join(SCENARIOS[s])}" for s in covered)
        + f" for mean method {mean_method!r} and SD method {sd_method!r}"
    )
