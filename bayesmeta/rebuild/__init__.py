"""Rebuild the Li et al. (2018) data sets from the published tables, and score them.

The article's per-comparison data exist only as forest-plot images; :func:`rebuild_li2018`
searches synthetic data sets whose RevMan 5 analysis reproduces the printed numbers, and
:func:`write_fidelity` / :func:`fidelity_table` report printed versus reproduced, number by number.
The bundled ``li2018_incidence`` and ``li2018_number`` data sets are its output.
"""

from bayesmeta.rebuild.consistency import Contradiction, find_contradictions
from bayesmeta.rebuild.fidelity import fidelity_markdown, fidelity_summary, fidelity_table, write_fidelity
from bayesmeta.rebuild.li2018 import BUDGETS, DEFAULT_SEED, Budget, RebuildResult, rebuild_li2018
from bayesmeta.rebuild.published import load_published, published_cells

__all__ = [
    "BUDGETS",
    "Budget",
    "Contradiction",
    "DEFAULT_SEED",
    "RebuildResult",
    "fidelity_markdown",
    "fidelity_summary",
    "fidelity_table",
    "find_contradictions",
    "load_published",
    "published_cells",
    "rebuild_li2018",
    "write_fidelity",
]
