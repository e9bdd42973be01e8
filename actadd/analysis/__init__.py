"""Analysis instruments: is a steering vector "just injecting extra tokens"?

- :mod:`actadd.analysis.conditions` — the conditions (token injection, embedding-only
  addition, transplants across layers, random and dimension-slice controls, coefficients and
  sums), :class:`PairSetting` and :class:`Settings`;
- :mod:`actadd.analysis.comparison` — :func:`compare_conditions`, which compares them with
  ActAdd on next-token metrics, batched from the clean prefix (:class:`PromptBatch`);
- :mod:`actadd.analysis.summaries` — per-layer means, dose response, headline numbers;
- :mod:`actadd.analysis.diagnostics` — norms, embedding cosines and the logit lens of a vector.

The experiment that runs them is the ``token_injection`` kind
(:mod:`actadd.kinds.token_injection`); its figures are :mod:`actadd.plots.token_injection`.
"""

from actadd.analysis.comparison import (
    COLUMNS,
    METRICS,
    NULL_COLUMNS,
    PromptBatch,
    compare_conditions,
    contextual_patch,
    effect_metrics,
    next_token_logprobs,
)
from actadd.analysis.conditions import (
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
from actadd.analysis.diagnostics import (
    embedding_cosines,
    logit_lens,
    logit_lens_across_layers,
    norm_ratios,
    typical_norm,
    vector_diagnostics,
)
from actadd.analysis.summaries import dose_response_summary, headline, layer_summary
from actadd.tokens import pair_token_ids

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
