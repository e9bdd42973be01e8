"""Analysis instruments: is a steering vector "just injecting extra tokens"?

- :mod:`actadd.analysis.token_injection` — the conditions (token injection, embedding-only
  addition, transplants across layers, random and dimension-slice controls, coefficients and
  sums) and :func:`compare_conditions`, which compares them with ActAdd on next-token metrics;
- :mod:`actadd.analysis.diagnostics` — norms, embedding cosines and the logit lens of a vector.
"""

from actadd.analysis.diagnostics import (
    embedding_cosines,
    logit_lens,
    logit_lens_across_layers,
    norm_ratios,
    pair_token_ids,
    typical_norm,
    vector_diagnostics,
)
from actadd.analysis.token_injection import (
    INJECTION_MODES,
    INJECTIONS,
    NEUTRAL_TEXT,
    Pair,
    PromptBatch,
    Settings,
    compare_conditions,
    dim_slice,
    dose_response_summary,
    effect_metrics,
    embedding_vector,
    experiment_figures,
    headline,
    inject_tokens,
    layer_summary,
    next_token_logprobs,
    pairs_from_config,
    random_like,
    run_experiment,
    transplant_vector,
)

__all__ = [
    "INJECTIONS",
    "INJECTION_MODES",
    "NEUTRAL_TEXT",
    "Pair",
    "PromptBatch",
    "Settings",
    "compare_conditions",
    "dim_slice",
    "dose_response_summary",
    "effect_metrics",
    "experiment_figures",
    "headline",
    "embedding_cosines",
    "embedding_vector",
    "inject_tokens",
    "layer_summary",
    "logit_lens",
    "logit_lens_across_layers",
    "next_token_logprobs",
    "norm_ratios",
    "pair_token_ids",
    "pairs_from_config",
    "random_like",
    "run_experiment",
    "transplant_vector",
    "typical_norm",
    "vector_diagnostics",
]
