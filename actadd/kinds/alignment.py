"""Experiment kind ``alignment``: where in the prompt the vector goes.

A sweep of one working pair over injection alignments — ``front`` (the paper), offsets
``offset:s``, ``back`` (the last k prompt positions) and ``all`` (the mean row added at
every position, generated tokens included) — at a few layers and coefficients. The figure
compares the alignments on the topic-word fraction of completions (Wilson 95% CIs), the
next-token change in log-probability of the topic words, and KL on neutral text, one bar
per (layer, coefficient) cell, with the unsteered value as a band where it has one.
"""

from __future__ import annotations

from actadd.kinds.sweep import SweepKind
from actadd.plots.paper import alignment_figures

NAME = "alignment"
# summary.csv: one row per (pair, cell, alignment, metric) with a 95% interval and the
# difference from unsteered (actadd.kinds.sweep.cell_summary)
METRICS = ("topic_any", "target_logprob_delta", "kl_neutral")

KIND = SweepKind(
    NAME,
    "front vs offset vs back vs all-positions injection for one pair",
    needs="topic_any",
    summary=METRICS,
    draw=alignment_figures,
    draw_from="summary",
)
