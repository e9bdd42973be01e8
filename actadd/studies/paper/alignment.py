"""Experiment kind ``alignment``: where in the prompt the vector goes.

A sweep of one working pair over injection alignments — ``front`` (the paper), offsets
``offset:s``, ``back`` (the last k prompt positions) and ``all`` (the mean row added at
every position, generated tokens included) — at a few layers and coefficients. The figure
compares the alignments on the topic-word fraction of completions (Wilson 95% CIs), the
next-token change in log-probability of the topic words, and KL on neutral text, one bar
per (layer, coefficient) cell, with the unsteered value as a band where it has one.
"""

from __future__ import annotations

from actadd.studies.paper.claims import paired_cell_claims
from actadd.studies.paper.figures import alignment_figures
from actadd.studies.sweep.kind import SweepKind

__all__ = ["KIND", "METRICS", "NAME", "claims"]

NAME = "alignment"
# summary.csv: one row per (pair, cell, alignment, metric) with a 95% interval and the
# difference from unsteered (actadd.studies.sweep.kind.cell_summary)
METRICS = ("topic_any", "target_logprob_delta", "kl_neutral")


def claims(run) -> list:
    """``front`` against ``back`` in every (pair, layer, coeff) cell, on the same seeds:
    is the paper's front alignment the better one? (Benjamini–Hochberg over the cells.)"""
    from actadd.lab.claims import binary_claim
    from actadd.studies.sweep.kind import _topic

    df = run.read_table("results")
    front = df[(df.metric == "topic_any") & (df["align"] == "front") & (df.layer >= 0)]
    return paired_cell_claims(
        run,
        df,
        "topic_any",
        front[["pair", "pad", "layer", "coeff"]].drop_duplicates().to_dict("records"),
        ({"align": "front"}, {"align": "back"}),
        binary_claim,
        id=lambda cell: f"front_vs_back:{cell['pair']}:L{cell['layer']}:c{cell['coeff']:g}",
        statement=lambda cell, where: (
            f"{cell['pair']} at {where}: front alignment gives more completions with "
            f"a word from the {_topic(run.config)} list than back alignment"
        ),
        family="front vs back",
    )


KIND = SweepKind(
    NAME,
    "front vs offset vs back vs all-positions injection for one pair",
    needs="topic_any",
    summary=METRICS,
    draw=alignment_figures,
    draw_from="summary",
    scans=("topic_any",),
    claims=claims,
)
