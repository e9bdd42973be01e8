"""Token injection: is a steering vector "just injecting extra tokens"?

- :mod:`actadd.studies.token_injection.conditions` — the conditions (token injection,
  embedding-only addition, transplants across layers, random and dimension-slice controls,
  coefficients and sums), :class:`PairSetting` and :class:`Settings`;
- :mod:`actadd.studies.token_injection.comparison` — :func:`compare_conditions`, which
  compares them with ActAdd on next-token metrics, batched from the clean prefix; its parts
  are :mod:`~actadd.studies.token_injection.forwards` (:class:`PromptBatch`,
  :func:`next_token_logprobs`), :mod:`~actadd.studies.token_injection.pair_conditions` (the
  conditions of one pair, :func:`contextual_patch`) and
  :mod:`~actadd.studies.token_injection.effects` (:func:`effect_metrics`);
- :mod:`actadd.studies.token_injection.specificity` — the specificity matrix;
- :mod:`actadd.studies.token_injection.topic_rate` — topic-word rate of sampled completions
  under ActAdd against the same-position token injection;
- :mod:`actadd.studies.token_injection.summaries` — per-layer means, dose response, headline
  numbers;
- :mod:`actadd.studies.token_injection.claims` — the claims, computed from the saved tables;
- :mod:`actadd.core.diagnostics` — norms, embedding cosines and the logit lens of a vector.

The experiment that runs them is the ``token_injection`` kind
(:mod:`actadd.studies.token_injection.kind`); its figures are
:mod:`actadd.studies.token_injection.figures`.
"""

from actadd.core.diagnostics import (
    embedding_cosines,
    logit_lens,
    logit_lens_across_layers,
    norm_ratios,
    typical_norm,
    vector_diagnostics,
)
from actadd.runtime.tokens import pair_token_ids
from actadd.studies.token_injection.comparison import (
    COLUMNS,
    METRICS,
    NULL_COLUMNS,
    compare_conditions,
)
from actadd.studies.token_injection.conditions import (
    INJECTION_MODES,
    INJECTIONS,
    LAYER_INJECTIONS,
    NEUTRAL_TEXT,
    PairSetting,
    Settings,
    aligned_arms,
    dim_slice,
    embedding_random_like,
    embedding_vector,
    hidden_below,
    inject_tokens,
    match_row_norms,
    pairs_from_config,
    per_prompt_draws,
    place_ids,
    random_like,
    residual_random_like,
    transplant_vector,
)
from actadd.studies.token_injection.effects import effect_metrics
from actadd.studies.token_injection.forwards import PromptBatch, next_token_logprobs
from actadd.studies.token_injection.pair_conditions import contextual_patch
from actadd.studies.token_injection.summaries import dose_response_summary, headline, layer_summary

__all__ = [
    "COLUMNS",
    "INJECTIONS",
    "INJECTION_MODES",
    "LAYER_INJECTIONS",
    "METRICS",
    "NEUTRAL_TEXT",
    "NULL_COLUMNS",
    "PairSetting",
    "PromptBatch",
    "Settings",
    "aligned_arms",
    "compare_conditions",
    "contextual_patch",
    "dim_slice",
    "dose_response_summary",
    "effect_metrics",
    "embedding_cosines",
    "embedding_random_like",
    "embedding_vector",
    "headline",
    "hidden_below",
    "inject_tokens",
    "layer_summary",
    "logit_lens",
    "logit_lens_across_layers",
    "match_row_norms",
    "next_token_logprobs",
    "norm_ratios",
    "pair_token_ids",
    "pairs_from_config",
    "per_prompt_draws",
    "place_ids",
    "random_like",
    "residual_random_like",
    "transplant_vector",
    "typical_norm",
    "vector_diagnostics",
]
