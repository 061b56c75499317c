"""Shared look of every bayesmeta figure: fonts, colours, scales and saving.

Every figure function returns a :class:`matplotlib.figure.Figure` drawn under
:func:`style` so that fonts are legible at the size the figure is shown in a
report (about 16 cm wide) and in print. :func:`save_figure` writes PNG and SVG.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from bayesmeta.effects import get_measure

__all__ = [
    "COLORS",
    "EffectScale",
    "effect_scale",
    "save_figure",
    "style",
]

#: Colour-blind safe palette (Okabe–Ito), one role per colour.
COLORS: dict[str, str] = {
    "observed": "#000000",
    "posterior": "#0072B2",
    "pooled": "#0072B2",
    "predictive": "#56B4E9",
    "frequentist": "#D55E00",
    "published": "#009E73",
    "selection": "#CC79A7",
    "prior": "#999999",
    "changed": "#D55E00",
    "grid": "#DDDDDD",
}

_RC: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.1,
    "svg.fonttype": "path",
    "svg.hashsalt": "bayesmeta",  # reproducible SVG ids
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context in which figures are drawn with the package's rc settings."""
    with mpl.rc_context(_RC):
        yield


@dataclass(frozen=True)
class EffectScale:
    """How effects on the analysis scale are shown.

    Attributes
    ----------
    label
        Axis label on the natural scale, e.g. ``"Risk ratio"``.
    log
        ``True`` for ratio measures: analysis-scale values are logs, shown as
        ``exp(value)`` on a logarithmic axis labelled in natural units.
    """

    label: str
    log: bool

    @property
    def null(self) -> float:
        """Value of no effect on the displayed scale (1 for ratios, 0 otherwise)."""
        return 1.0 if self.log else 0.0

    def show(self, x: np.ndarray | float) -> np.ndarray | float:
        """Analysis scale → displayed (natural) scale."""
        return np.exp(x) if self.log else x

    def fmt(self, x: float, digits: int = 2) -> str:
        """Format one analysis-scale value on the natural scale."""
        if not np.isfinite(x):
            return "–"
        return f"{float(self.show(x)):.{digits}f}"

    def fmt_interval(self, est: float, low: float, high: float, digits: int = 2) -> str:
        """``"1.23 [0.98, 1.55]"`` on the natural scale."""
        return f"{self.fmt(est, digits)} [{self.fmt(low, digits)}, {self.fmt(high, digits)}]"

    def apply(self, ax) -> None:  # noqa: ANN001  (matplotlib Axes)
        """Set a log x-axis with plain-number tick labels for ratio measures.

        Call it after the x limits are set: the tick density follows the range.
        """
        if self.log:
            ax.set_xscale("log")
            lo, hi = ax.get_xlim()
            decades = np.log10(hi / lo) if lo > 0 and hi > lo else 1.0
            if decades < 1.0:  # under a decade: evenly spaced round numbers read best
                ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
            else:
                subs = (1.0, 2.0, 5.0) if decades <= 2.2 else (1.0, 3.0) if decades <= 3.5 else (1.0,)
                ax.xaxis.set_major_locator(mpl.ticker.LogLocator(base=10, subs=subs))
            ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(_plain_number))
            ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        ax.set_xlabel(f"{self.label} (log scale)" if self.log else self.label)


def _plain_number(x: float, _pos: int | None = None) -> str:
    return f"{x:g}"


def effect_scale(measure: str | None = None, *, label: str | None = None, log: bool | None = None) -> EffectScale:
    """Display scale of a measure code (``"RR"``, ``"SMD"``…) from :data:`bayesmeta.effects.MEASURES`.

    Parameters
    ----------
    measure
        Measure code; ``None`` means a generic effect on the identity scale.
    label, log
        Override the axis label or the log flag.
    """
    m = get_measure(measure or "GEN")
    return EffectScale(label=label or m.label, log=(m.scale == "log") if log is None else log)


def save_figure(fig: Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` (by default); return the paths.

    Metadata dates are cleared so that the files are reproducible byte for byte.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        metadata = {"Date": None} if ext == "svg" else {"Software": None} if ext == "png" else None
        with style():
            fig.savefig(path, format=ext, metadata=metadata)
        paths.append(path)
    return paths
