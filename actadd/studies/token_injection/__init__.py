"""Analysis instruments: is a steering vector "just injecting extra tokens"?

- :mod:`actadd.studies.token_injection.conditions` — the conditions (token injection, embedding-only
  addition, transplants across layers, random and dimension-slice controls, coefficients and
  sums), :class:`PairSetting` and :class:`Settings`;
- :mod:`actadd.studies.token_injection.comparison` — :func:`compare_conditions`, which compares
  them with
  ActAdd on next-token metrics, batched from the clean prefix (:class:`PromptBatch`);
- :mod:`actadd.studies.token_injection.summaries` — per-layer means, dose response, headline
  numbers;
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
    PromptBatch,
    compare_conditions,
    contextual_patch,
    effect_metrics,
    next_token_logprobs,
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
from actadd.studies.token_injection.summaries import dose_response_summary, headline, layer_summary

__all__ = [
    "COLUMNS",
    "LAYER_INJECTIONS",
    "NULL_COLUMNS",
    "aligned_arms",
    "contextual_patch",
    "embedding_random_like",
    "hidden_below",
    "match_row_norms",
    "per_prompt_draws",
    "place_ids",
    "residual_random_like",
    "INJECTIONS",
    "INJECTION_MODES",
    "METRICS",
    "NEUTRAL_TEXT",
    "PairSetting",
    "PromptBatch",
    "Settings",
    "compare_conditions",
    "dim_slice",
    "dose_response_summary",
    "effect_metrics",
    "embedding_cosines",
    "embedding_vector",
    "headline",
    "inject_tokens",
    "layer_summary",
    "logit_lens",
    "logit_lens_across_layers",
    "next_token_logprobs",
    "norm_ratios",
    "pair_token_ids",
    "pairs_from_config",
    "random_like",
    "transplant_vector",
    "typical_norm",
    "vector_diagnostics",
]
