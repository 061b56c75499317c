"""What the text of Li et al. (2018) says beyond its tables, checked on a data set.

The Results state two things that a rebuilt (or digitised) data set should also show:

- *Sensitivity analysis*: "For both the number and the incidence of metastases, the pooled effect
  was stable, indicating the results were not driven by any single study" (leave-one-out);
- *Publication bias* (Fig. 5): "Figure 5a suggested a symmetrical distribution for the number of
  metastases. But funnel plot demonstrated some degree of asymmetry for the incidence of
  metastases". The article judged the plots by eye; here Egger's regression test stands in for
  the eye (DerSimonian-Laird mixed-effects regression on the standard error, as the article's
  random-effects model; asymmetric = p < 0.05, symmetric = p >= 0.10), with the sample-size
  version (predictor 1/sqrt(n)) reported beside it.

Effects are computed as RevMan 5 does (:mod:`bayesmeta.effects`, ``convention="revman"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["Claim", "text_claims", "ASYMMETRIC_P", "SYMMETRIC_P"]

ASYMMETRIC_P = 0.05   # Egger's p below which a funnel plot counts as asymmetric
SYMMETRIC_P = 0.10    # Egger's p at or above which it counts as symmetric (Egger et al. 1997 use 0.10)
OUTCOMES = (("incidence", "RR", "incidence of metastases"), ("number", "SMD", "number of metastases"))


@dataclass(frozen=True)
class Claim:
    """One statement of the article's text and what the data show.

    Attributes
    ----------
    outcome
        ``"incidence"`` or ``"number"``.
    statement, source
        The article's words and where they stand.
    evidence
        The test result, in words.
    agrees
        Whether the data show what the article says.
    """

    outcome: str
    statement: str
    source: str
    evidence: str
    agrees: bool


def text_claims(incidence: pd.DataFrame, number: pd.DataFrame) -> list[Claim]:
    """Leave-one-out stability and funnel-plot (a)symmetry of both outcomes, as the text states them."""
    from bayesmeta.effects import MEASURES
    from bayesmeta.frequentist import leave1out, regtest
    from bayesmeta.frequentist.results import format_z_p
    from bayesmeta.rebuild.fidelity import revman_effects

    out = []
    for (outcome, measure, words), frame in zip(OUTCOMES, (incidence, number), strict=True):
        yi, vi, keep = revman_effects(frame, measure)
        ni = (frame["n1i"] + frame["n2i"]).to_numpy(float)[keep]
        natural = MEASURES[measure].to_natural
        rows = leave1out(yi, vi, method="DL", test="z").to_dict()["rows"]
        est = [natural(r["estimate"]) for r in rows]
        low = min(natural(r["ci_low"]) for r in rows)
        null = natural(0.0)
        out.append(Claim(
            outcome, f"the pooled effect on the {words} was stable (not driven by any single study)",
            "Results, sensitivity analysis",
            f"leaving out one comparison at a time, the pooled {measure} stays between {min(est):.2f} and "
            f"{max(est):.2f}, and every 95% CI excludes {null:g} (lowest bound {low:.2f})",
            bool(low > null)))
        egger = regtest(yi, vi, method="DL")
        egger_n = regtest(yi, vi, method="DL", predictor="sqrtninv", ni=ni)
        evidence = (f"Egger's test (DL, standard error): {format_z_p(egger.zval, egger.pval)}; "
                    f"with 1/sqrt(n): {format_z_p(egger_n.zval, egger_n.pval)}")
        if outcome == "incidence":
            out.append(Claim(outcome, f"the funnel plot of the {words} shows some asymmetry",
                             "Results, publication bias, Fig. 5b", evidence, bool(egger.pval < ASYMMETRIC_P)))
        else:
            out.append(Claim(outcome, f"the funnel plot of the {words} is symmetrical",
                             "Results, publication bias, Fig. 5a", evidence, bool(egger.pval >= SYMMETRIC_P)))
    return out
