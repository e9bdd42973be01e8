"""Experiment kind ``failures``: the paper's known failure cases against working pairs.

A sweep whose pairs come in families, a working pair followed by its failing variant
(e.g. ``"Anger" − "Calm"`` then lowercase ``" anger" − " calm"``; ``"Love" − "Hate"`` then
``"Love" − ""``), each evaluated at the same layers and coefficients. The figure has one
panel per metric — topic-word fraction of completions (Wilson 95% CIs), the next-token
change in topic-word log-probability, VADER sentiment (95% CIs), and KL on neutral text
(disruption) — with one bar per pair in every
(layer, coefficient) cell and the unsteered value as a band. Pairs are coloured by family:
the working pair dark, its variant light.
"""

from __future__ import annotations

from actadd.studies.paper.claims import paired_cell_claims
from actadd.studies.paper.figures import failures_figure
from actadd.studies.sweep.kind import SweepKind

__all__ = ["EQUIVALENCE_MARGIN", "KIND", "METRICS", "NAME", "claims"]

NAME = "failures"
# summary.csv: one row per (pair, cell, alignment, metric) with a 95% interval and the
# difference from unsteered (actadd.studies.sweep.kind.cell_summary)
METRICS = ("topic_any", "sentiment", "kl_neutral", "target_logprob_delta")

# "Love" alone vs "Love" − "Hate": equal within this many VADER compound points?
EQUIVALENCE_MARGIN = 0.1


def claims(run) -> list:
    """One-sided against two-sided pairs: does ``"Love" − ""`` move sentiment as much as
    ``"Love" − "Hate"``? An equivalence claim per cell (same seeds): SUPPORTED only when the
    95% interval of the difference lies within ±EQUIVALENCE_MARGIN."""
    from actadd.config import parse_pairs
    from actadd.lab.claims import mean_claim

    pairs = {(p.positive, p.negative): p.name for p in parse_pairs(run.config.get("pairs", []))}
    alone, both = pairs.get(("Love", "")), pairs.get(("Love", "Hate"))
    if alone is None or both is None:
        return []
    df = run.read_table("results")
    sel = df[(df.pair == both) & (df.metric == "sentiment")]
    return paired_cell_claims(
        run,
        df,
        "sentiment",
        sel[["pad", "layer", "coeff"]].drop_duplicates().to_dict("records"),
        ({"pair": alone}, {"pair": both}),
        mean_claim,
        id=lambda cell: f"love_alone_equiv:L{cell['layer']}:c{cell['coeff']:g}",
        statement=lambda cell, where: (
            f"at {where}, {alone} moves sentiment as much as {both} "
            f"(difference within ±{EQUIVALENCE_MARGIN})"
        ),
        margin=EQUIVALENCE_MARGIN,
        family="one-sided vs two-sided (equivalence)",
    )


KIND = SweepKind(
    NAME,
    "known failure cases (lowercase anger, Love alone) against working pairs",
    needs="sentiment",
    summary=METRICS,
    draw=failures_figure,
    draw_from="summary",
    scans=("topic_any", "sentiment"),
    claims=claims,
)
