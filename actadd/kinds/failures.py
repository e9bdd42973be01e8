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

from actadd.kinds.sweep import SweepKind
from actadd.plots.paper import failures_figure

NAME = "failures"
# summary.csv: one row per (pair, cell, alignment, metric) with a 95% interval and the
# difference from unsteered (actadd.kinds.sweep.cell_summary)
METRICS = ("topic_any", "sentiment", "kl_neutral", "target_logprob_delta")

KIND = SweepKind(
    NAME,
    "known failure cases (lowercase anger, Love alone) against working pairs",
    needs="sentiment",
    summary=METRICS,
    draw=failures_figure,
    draw_from="summary",
)
