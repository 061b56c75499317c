"""Prior grids for sensitivity analyses: default grids, reference scales and list parsing.

Default heterogeneity grid
--------------------------
Scales are multiples of a *reference scale* ``s`` of the measure (:func:`reference_scale`):

* log risk/odds ratios (``RR``, ``OR``) and standardised mean differences (``SMD``): ``s = 1``.
  Both are unit-free; a between-study SD of 1 on these scales is very large heterogeneity
  (a ratio that varies by a factor e between studies, or one SD), so the grid spans
  weakly informative to vague priors. With ``s = 1`` the half-normal entries bracket the
  scales 0.5 and 1 that Röver et al. (2021, Res Synth Methods 12:448-474) discuss for log ratios.
* every other measure (``MD``, ``RD``, ``GEN``) has units: ``s`` is the unit-information
  standard deviation ``UISD = sqrt(Σ n_i / Σ 1/v_i)`` (Röver et al. 2021, Eq. 6) when the data
  hold the arm sizes (``n1i``/``n2i`` or the 2x2 cells), else the half-normal scale with the
  same median as the spec's own (proper) tau prior. Otherwise there is no scale and the
  grid must be given explicitly.

Entries (``s = 1`` shown; scaled values are rounded to 3 significant digits):

======================  ==========================================================  =====
family                  entries                                                     count
======================  ==========================================================  =====
half-normal             ``halfnormal(0.25 s | 0.5 s | s | 2 s)``                    4
half-Cauchy             ``halfcauchy(0.1 s | 0.25 s | 0.5 s | s)``                  4
half-t (3 df)           ``halft(3, 0.25 s | 0.5 s | s)``                            3
uniform                 ``uniform(0, s | 2 s | 5 s)``                               3
exponential             ``exponential(1/s | 2/s | 4/s)`` (means s, s/2, s/4)       3
log-normal (on tau)     ``lognormal(log(0.1 s), 1)``, ``lognormal(log(0.3 s), 1)``,
                        ``lognormal(log(0.3 s), 2)``                                3
empirical               log ratios: Turner et al. (2015); SMD: Rhodes et al. (2015)  3
exact engine only       ``uniform(0, inf)`` (improper flat), ``jeffreys``           2
======================  ==========================================================  =====

Empirical settings: the general setting, and the least and the most heterogeneous outcome
types of *pharmacological vs placebo/control* comparisons (the largest comparison class of both
papers; smallest and largest location of log tau²), so the three bracket the range of the
published predictions. For Rhodes et al. the medical area is "other". Turner et al.'s
distributions were derived for log odds ratios; they are used for log risk ratios too (as is
common practice, and close when events are rare) — this is stated in every report row by the
prior's own description.

Default mu grid: the spec's mu prior plus a wider one — ``flat`` for the exact engine, and
``normal(m, 10 s0)`` for MCMC when the spec has ``normal(m, s0)`` (``student_t`` likewise;
``normal(0, 100 s)`` for a flat spec prior).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmeta.errors import SpecError
from bayesmeta.priors import parse_prior, rhodes2015_table, turner2015_table

__all__ = [
    "ReferenceScale",
    "default_mu_priors",
    "default_tau_priors",
    "parse_prior_list",
    "reference_scale",
]

LIST_SEPARATOR = ";"
#: Measures whose analysis scale is unit-free, with reference scale 1.
UNIT_FREE = frozenset({"RR", "OR", "SMD"})


def _sig(x: float, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant digits, as short text."""
    if x == 0 or not math.isfinite(x):
        return repr(x)
    text = f"{x:.{digits}g}"
    return str(int(float(text))) if float(text).is_integer() and "e" not in text else text


@dataclass(frozen=True)
class ReferenceScale:
    """The scale ``s`` the default tau grid is expressed in, and why."""

    value: float
    basis: str

    def to_dict(self) -> dict[str, object]:
        return {"value": float(self.value), "basis": self.basis}


def _arm_sizes(data: pd.DataFrame) -> np.ndarray | None:
    cols = set(data.columns)
    if {"n1i", "n2i"} <= cols:
        return data["n1i"].to_numpy(float) + data["n2i"].to_numpy(float)
    if {"ai", "bi", "ci", "di"} <= cols:
        return data[["ai", "bi", "ci", "di"]].to_numpy(float).sum(axis=1)
    return None


def _halfnormal_equivalent(tau_prior: str) -> float | None:
    prior = parse_prior(tau_prior, target="scale")
    if not prior.proper:
        return None
    median = float(prior.ppf(0.5))
    return median / 0.6744897501960817  # half-normal median = 0.6745 scale


def reference_scale(measure: str, data: pd.DataFrame, tau_prior: str) -> ReferenceScale:
    """The reference scale of the default tau grid (see the module docstring).

    Parameters
    ----------
    measure
        Measure code of the spec.
    data
        Analysis frame (``yi``, ``vi`` and, when known, arm sizes).
    tau_prior
        The spec's tau prior (fallback for measures with units and no arm sizes).

    Raises
    ------
    SpecError
        When no scale can be found; give the tau priors explicitly then.
    """
    if measure in UNIT_FREE:
        return ReferenceScale(1.0, f"{measure} is unit-free on its analysis scale: s = 1")
    n = _arm_sizes(data)
    if n is not None and np.all(np.isfinite(n)) and np.all(n > 0):
        vi = data["vi"].to_numpy(float)
        uisd = math.sqrt(float(n.sum()) / float(np.sum(1.0 / vi)))
        return ReferenceScale(float(_sig(uisd)), "unit-information SD sqrt(sum n / sum 1/vi) "
                                                 "(Röver et al. 2021, Eq. 6)")
    hn = _halfnormal_equivalent(tau_prior)
    if hn is not None:
        return ReferenceScale(float(_sig(hn)), f"half-normal scale with the median of the spec's "
                                               f"tau prior {tau_prior}")
    raise SpecError(f"no reference scale for the default tau grid of measure {measure}: the data "
                    "have no arm sizes and the spec's tau prior is improper; list the tau priors "
                    "explicitly", key="priors.tau")


# ---------------------------------------------------------------------------------------------
# Default tau grid: a registry of (family template, multipliers)

#: ``(template, multipliers)``; ``{}`` is filled with ``multiplier * s`` (3 significant digits).
SCALED_ENTRIES: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("halfnormal({})", (0.25, 0.5, 1.0, 2.0)),
    ("halfcauchy({})", (0.1, 0.25, 0.5, 1.0)),
    ("halft(3, {})", (0.25, 0.5, 1.0)),
    ("uniform(0, {})", (1.0, 2.0, 5.0)),
)


def _exponential(s: float) -> list[str]:
    return [f"exponential({_sig(k / s)})" for k in (1.0, 2.0, 4.0)]


def _lognormal(s: float) -> list[str]:
    return [f"lognormal({_sig(math.log(med * s))}, {sd})" for med, sd in ((0.1, 1), (0.3, 1), (0.3, 2))]


def _bracketing(table: dict, comparison: str, key_len: int, fmt: Callable[[tuple], str]) -> list[str]:
    rows = [(k, v) for k, v in table.items() if k[1] == comparison and (key_len < 3 or k[2] == "other")]
    low = min(rows, key=lambda kv: kv[1][0])[0]
    high = max(rows, key=lambda kv: kv[1][0])[0]
    return [fmt(low), fmt(high)]


def _turner() -> list[str]:
    out = ['turner2015("general")']
    out += _bracketing(turner2015_table(), "pharmacological vs placebo/control", 2,
                       lambda k: f'turner2015("{k[0]}", "{k[1]}")')
    return out


def _rhodes() -> list[str]:
    out = ['rhodes2015("general")']
    out += _bracketing(rhodes2015_table(), "pharmacological vs placebo/control", 3,
                       lambda k: f'rhodes2015("{k[0]}", "{k[1]}", "{k[2]}")')
    return out


#: Empirical priors by measure code (none for measures with units).
EMPIRICAL: dict[str, Callable[[], list[str]]] = {"OR": _turner, "RR": _turner, "SMD": _rhodes}
#: Scale priors only the exact engine can use (improper flat, data-dependent Jeffreys).
EXACT_ONLY = ("uniform(0, inf)", "jeffreys")


def default_tau_priors(measure: str, scale: float, *, exact: bool) -> tuple[str, ...]:
    """The default heterogeneity grid (canonical prior strings) for ``measure``.

    Parameters
    ----------
    measure
        Measure code.
    scale
        Reference scale ``s`` (:func:`reference_scale`).
    exact
        Whether the exact engine runs the grid (adds ``uniform(0, inf)`` and ``jeffreys``).
    """
    texts: list[str] = []
    for template, mults in SCALED_ENTRIES:
        texts += [template.format(_sig(m * scale)) for m in mults]
    texts += _exponential(scale) + _lognormal(scale)
    texts += EMPIRICAL.get(measure, list)()
    if exact:
        texts += list(EXACT_ONLY)
    return _canonical(texts, "scale")


def default_mu_priors(spec_mu: str, *, exact: bool, scale: float = 1.0) -> tuple[str, ...]:
    """The spec's mu prior plus a wider one (``flat`` for the exact engine)."""
    base = parse_prior(spec_mu, target="location")
    if exact:
        wider = "flat"
    elif base.family == "normal":
        wider = f"normal({_sig(base.params[0])}, {_sig(10 * base.params[1])})"
    elif base.family == "student_t":
        nu, m, s0 = base.params
        wider = f"student_t({_sig(nu)}, {_sig(m)}, {_sig(10 * s0)})"
    else:
        wider = f"normal(0, {_sig(100 * scale)})"
    return _canonical([base.text, wider], "location")


def _canonical(texts: Iterable[str], target: str) -> tuple[str, ...]:
    """Canonical texts in order, duplicates removed."""
    return tuple(dict.fromkeys(parse_prior(t, target=target).text for t in texts))


def parse_prior_list(text: str | Sequence[str] | None, *, target: str) -> tuple[str, ...] | None:
    """Parse a semicolon-separated list of prior strings (the CLI's ``--tau-priors``).

    Prior strings contain commas, so items are separated by ``;``:
    ``"halfnormal(0.5); halfcauchy(1); turner2015(\\"general\\")"``. A sequence of strings is
    also accepted (each item may itself hold ``;``-separated priors).

    Parameters
    ----------
    text
        The list, or ``None`` (returns ``None``: use the default grid).
    target
        ``"scale"`` for tau priors, ``"location"`` for mu priors.

    Returns
    -------
    tuple of str or None
        Canonical prior strings, duplicates removed, in the given order.

    Raises
    ------
    SpecError
        For an empty list or an item that does not parse (the message names the item).
    """
    if text is None:
        return None
    chunks = [text] if isinstance(text, str) else list(text)
    items = [part.strip() for chunk in chunks for part in chunk.split(LIST_SEPARATOR)]
    items = [i for i in items if i]
    if not items:
        raise SpecError(f"empty prior list {text!r}: separate prior strings by '{LIST_SEPARATOR}'")
    out = []
    for i, item in enumerate(items, start=1):
        try:
            out.append(parse_prior(item, target=target).text)
        except SpecError as exc:
            raise SpecError(f"item {i} of the prior list ('{item}'): {exc.message}") from None
    return tuple(dict.fromkeys(out))
