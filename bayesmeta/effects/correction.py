"""Continuity corrections for 2x2 tables with zero cells, as data.

A :class:`ContinuityCorrection` says how much to add (``add``), to which tables
(``to``), and which tables to leave out. Three policies are registered in
:data:`CC_POLICIES`:

``metafor`` (default)
    metafor's ``escalc()`` defaults: ``add = 1/2``, ``to = "only0"`` (add to every
    cell of the tables that have a zero cell), ``drop00 = FALSE``. With
    ``drop00 = TRUE`` metafor leaves out tables with no events in both arms or no
    non-events in both arms, for every measure. ``to = "all"`` corrects every
    table, ``to = "if0all"`` every table if any has a zero cell, ``"none"`` none.

``revman``
    RevMan 5 (Deeks & Higgins, *Statistical algorithms in Review Manager 5*, 2010;
    Cochrane Handbook 5.1, section 9.4.4: "RevMan automatically adds 0.5 to each
    cell of the 2x2 table for any such study"): 0.5 is added to every cell of a
    comparison with a zero cell. Comparisons the measure cannot estimate are left
    out: for the risk ratio those with no events in both arms, for the odds ratio
    those with no events or only events in both arms. For the risk difference no
    comparison is left out (a double-zero study has RD = 0 and is kept); the 0.5
    correction enters only its standard error, the estimate uses the observed
    counts. The RevMan document states the correction only where zero cells
    "cause problems with computation of the standard error"; the RD handling
    follows the RevMan-5 emulation of R package meta (``metabin``:
    ``RR.Cochrane``, ``allstudies`` applies to RR/OR only, RD estimate from the raw
    proportions, SE from the corrected cells). Both choices are recorded in
    ``df.attrs`` so a reader can see them.

``none``
    No correction: tables with a zero cell usually give an infinite estimate or
    variance and are then left out by :func:`~bayesmeta.effects.escalc` with a
    :class:`~bayesmeta.errors.DataWarning`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from bayesmeta.errors import SpecError

__all__ = ["CC_POLICIES", "TARGETS", "ContinuityCorrection", "CorrectionResult", "apply_correction", "resolve_cc"]

Cells = dict[str, np.ndarray]

#: Which tables receive ``add``: ``rule(has_zero_cell) -> mask``.
TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "only0": lambda zero: zero.copy(),
    "all": lambda zero: np.ones_like(zero),
    "if0all": lambda zero: np.full_like(zero, bool(zero.any())),
    "none": lambda zero: np.zeros_like(zero),
}


@dataclass(frozen=True)
class ContinuityCorrection:
    """A continuity-correction policy.

    Attributes
    ----------
    add
        Amount added to each of the four cells of a corrected table.
    to
        ``"only0"``, ``"all"``, ``"if0all"`` or ``"none"`` (metafor's ``to``).
    drop00
        metafor's ``drop00``: leave out tables with no events in both arms or no
        non-events in both arms (every measure).
    drop_uninformative
        RevMan's rule: leave out the tables the measure cannot estimate (see
        ``Measure.uninformative``: RR no events in both arms; OR no events or only
        events in both arms; RD none).
    estimate_from_raw
        Measure codes whose estimate ``yi`` uses the uncorrected counts; the
        correction then only enters ``vi`` (RevMan's risk difference).
    name
        Registry name, or ``"custom"``.
    """

    add: float = 0.5
    to: str = "only0"
    drop00: bool = False
    drop_uninformative: bool = False
    estimate_from_raw: tuple[str, ...] = field(default=())
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise SpecError(f"unknown continuity-correction target {self.to!r}; choose one of {', '.join(TARGETS)}",
                            key="effect.cc.to")
        if not (isinstance(self.add, int | float) and np.isfinite(self.add) and self.add >= 0):
            raise SpecError(f"continuity correction 'add' must be a number >= 0, got {self.add!r}",
                            key="effect.cc.add")
        object.__setattr__(self, "add", float(self.add))
        object.__setattr__(self, "estimate_from_raw", tuple(self.estimate_from_raw))

    def to_dict(self) -> dict[str, object]:
        """JSON-able description."""
        out = asdict(self)
        out["estimate_from_raw"] = list(self.estimate_from_raw)
        return out


CC_POLICIES: dict[str, ContinuityCorrection] = {
    "metafor": ContinuityCorrection(0.5, "only0", drop00=False, name="metafor"),
    "revman": ContinuityCorrection(0.5, "only0", drop00=False, drop_uninformative=True,
                                   estimate_from_raw=("RD",), name="revman"),
    "none": ContinuityCorrection(0.0, "none", drop00=False, name="none"),
}


def resolve_cc(cc: str | Mapping[str, object] | ContinuityCorrection) -> ContinuityCorrection:
    """Turn ``"metafor" | "revman" | "none" | dict | ContinuityCorrection`` into a policy.

    A dict takes the fields of :class:`ContinuityCorrection` (``add``, ``to``,
    ``drop00``, ``drop_uninformative``, ``estimate_from_raw``); unknown keys are a
    :class:`~bayesmeta.errors.SpecError` naming the key.
    """
    if isinstance(cc, ContinuityCorrection):
        return cc
    if isinstance(cc, str):
        if cc not in CC_POLICIES:
            raise SpecError(f"unknown continuity correction {cc!r}; choose one of {', '.join(CC_POLICIES)} "
                            f"or a table {{add, to, drop00}}", key="effect.cc")
        return CC_POLICIES[cc]
    if isinstance(cc, Mapping):
        known = {f.name for f in fields(ContinuityCorrection)}
        for key in cc:
            if key not in known:
                raise SpecError(f"unknown continuity-correction setting {key!r}; known: {', '.join(sorted(known))}",
                                key=f"effect.cc.{key}")
        return ContinuityCorrection(**dict(cc))  # type: ignore[arg-type]
    raise SpecError(f"continuity correction must be a name or a table, got {cc!r}", key="effect.cc")


@dataclass(frozen=True)
class CorrectionResult:
    """Outcome of applying a policy to a set of tables.

    Attributes
    ----------
    for_estimate, for_variance
        Cells to compute ``yi`` and ``vi`` from (the same arrays unless the measure
        is in ``estimate_from_raw``).
    corrected
        Tables that received ``add``.
    dropped
        Tables left out, and ``reasons`` says why (one string per dropped table).
    """

    for_estimate: Cells
    for_variance: Cells
    corrected: np.ndarray
    dropped: np.ndarray
    reasons: tuple[str, ...]


def apply_correction(
    cells: Mapping[str, np.ndarray],
    policy: ContinuityCorrection,
    measure_code: str,
    uninformative: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None,
) -> CorrectionResult:
    """Apply ``policy`` to the tables ``cells`` (arrays ``ai, bi, ci, di``).

    Parameters
    ----------
    cells
        Raw counts.
    policy
        The continuity-correction policy.
    measure_code
        The measure (for ``estimate_from_raw``).
    uninformative
        The measure's rule for tables it cannot estimate (used when
        ``policy.drop_uninformative``); ``None`` if it has none.
    """
    raw = {k: np.asarray(cells[k], dtype=float) for k in ("ai", "bi", "ci", "di")}
    n = len(raw["ai"])
    dropped = np.zeros(n, dtype=bool)
    reasons = [""] * n
    if policy.drop00:
        double = ((raw["ai"] == 0) & (raw["ci"] == 0)) | ((raw["bi"] == 0) & (raw["di"] == 0))
        for i in np.flatnonzero(double):
            reasons[i] = "no events (or no non-events) in both arms; drop00"
        dropped |= double
    if policy.drop_uninformative and uninformative is not None:
        bad = uninformative(raw) & ~dropped
        for i in np.flatnonzero(bad):
            reasons[i] = f"{measure_code} not estimable: no events (or only events) in both arms"
        dropped |= bad
    zero = np.zeros(n, dtype=bool)
    for k in raw:
        zero |= raw[k] == 0
    zero &= ~dropped
    corrected = TARGETS[policy.to](zero) & ~dropped
    if policy.add == 0.0:
        corrected[:] = False
    added = {k: v + policy.add * corrected for k, v in raw.items()}
    for_estimate = raw if measure_code in policy.estimate_from_raw else added
    return CorrectionResult(
        for_estimate=for_estimate,
        for_variance=added,
        corrected=corrected,
        dropped=dropped,
        reasons=tuple(reasons[i] for i in np.flatnonzero(dropped)),
    )
