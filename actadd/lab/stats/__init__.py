"""Statistics of results tables: confidence intervals, tests and correlations. Pure functions.

Nothing here runs a model. Every function takes numbers, arrays, tensors or tidy tables and
states what it computes and what it assumes. 95% by default.

- :mod:`~actadd.lab.stats.intervals` — :func:`wilson_interval` (one binomial proportion),
  :func:`newcombe_interval` (a difference of two independent proportions, Newcombe 1998
  method 10), :func:`paired_newcombe_interval` (the same for paired proportions) and
  :func:`t95` (the two-sided 95% Student-t quantile, exact);
- :mod:`~actadd.lab.stats.tables` — per-cell summaries of a tidy sweep table:
  :func:`summarize`, :func:`proportion_summary` (Wilson and Newcombe intervals),
  :func:`mean_ci` (Student-t), :func:`mean_diffs` (plus a Welch interval of the difference
  from unsteered), :func:`paired_diffs` (an interval over prompts of the difference
  paired by (prompt, sample)) and :func:`range_table` (minimum and maximum over texts);
- :mod:`~actadd.lab.stats.hypothesis_tests` — :func:`mcnemar_exact`, :func:`paired_t`,
  :func:`welch_t`, :func:`cluster_interval` (over prompts: :func:`cluster_bootstrap`,
  resampling whole prompts, from 5 of them; :func:`cluster_t` over 2–4),
  :func:`sign_flip_test` (over clusters: exact to 40, Monte Carlo above),
  :func:`rank_against_draws` and :func:`bh_adjust` (Benjamini–Hochberg adjusted p-values);
- :mod:`~actadd.lab.stats.power` — the simulated power of the confirmatory sign-flip test:
  :func:`binary_effect`, :func:`mean_effect`, :func:`sign_flip_power`,
  :func:`smallest_design`, :func:`power_statement`;
- :mod:`~actadd.lab.stats.correlation` — :func:`pearson` along the last dimension of two
  tensors, :func:`ranks` and :func:`spearman`.
"""

from actadd.lab.stats import correlation, hypothesis_tests, intervals, power, tables
from actadd.lab.stats.correlation import *  # noqa: F403
from actadd.lab.stats.hypothesis_tests import *  # noqa: F403
from actadd.lab.stats.intervals import *  # noqa: F403
from actadd.lab.stats.power import *  # noqa: F403
from actadd.lab.stats.tables import *  # noqa: F403

# every public name of the five modules (each lists its own in ``__all__``)
__all__ = [
    *correlation.__all__,
    *hypothesis_tests.__all__,
    *intervals.__all__,
    *power.__all__,
    *tables.__all__,
]
