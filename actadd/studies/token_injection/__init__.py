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
- :mod:`actadd.studies.token_injection.contextual` — the contextual difference
  (:func:`contextual_difference`): ActAdd's difference read after each prompt, added at
  ActAdd's rows without replacing a token;
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

The names below are imported on first use (PEP 562), so the study's pure-data modules
(:mod:`~actadd.studies.token_injection.config`, :mod:`~actadd.studies.token_injection.settings`)
import without torch.
"""

from actadd._lazy import lazy_module

# public name -> the module that defines it
_LAZY = {
    "embedding_cosines": "actadd.core.diagnostics",
    "logit_lens": "actadd.core.diagnostics",
    "logit_lens_across_layers": "actadd.core.diagnostics",
    "norm_ratios": "actadd.core.diagnostics",
    "typical_norm": "actadd.core.diagnostics",
    "vector_diagnostics": "actadd.core.diagnostics",
    "pair_token_ids": "actadd.runtime.tokens",
    "COLUMNS": "actadd.studies.token_injection.comparison",
    "METRICS": "actadd.studies.token_injection.comparison",
    "NULL_COLUMNS": "actadd.studies.token_injection.comparison",
    "compare_conditions": "actadd.studies.token_injection.comparison",
    "INJECTIONS": "actadd.studies.token_injection.conditions",
    "INJECTION_MODES": "actadd.studies.token_injection.conditions",
    "LAYER_INJECTIONS": "actadd.studies.token_injection.conditions",
    "NEUTRAL_TEXT": "actadd.studies.token_injection.conditions",
    "PairSetting": "actadd.studies.token_injection.conditions",
    "Settings": "actadd.studies.token_injection.conditions",
    "aligned_arms": "actadd.studies.token_injection.conditions",
    "dim_slice": "actadd.studies.token_injection.conditions",
    "embedding_random_like": "actadd.studies.token_injection.conditions",
    "embedding_vector": "actadd.studies.token_injection.conditions",
    "hidden_below": "actadd.studies.token_injection.conditions",
    "inject_tokens": "actadd.studies.token_injection.conditions",
    "match_row_norms": "actadd.studies.token_injection.conditions",
    "pairs_from_config": "actadd.studies.token_injection.conditions",
    "per_prompt_draws": "actadd.studies.token_injection.conditions",
    "place_ids": "actadd.studies.token_injection.conditions",
    "random_like": "actadd.studies.token_injection.conditions",
    "residual_random_like": "actadd.studies.token_injection.conditions",
    "transplant_vector": "actadd.studies.token_injection.conditions",
    "ContextSource": "actadd.studies.token_injection.contextual",
    "contextual_difference": "actadd.studies.token_injection.contextual",
    "contextual_placements": "actadd.studies.token_injection.contextual",
    "effect_metrics": "actadd.studies.token_injection.effects",
    "js_divergence": "actadd.studies.token_injection.effects",
    "PromptBatch": "actadd.studies.token_injection.forwards",
    "next_token_logprobs": "actadd.studies.token_injection.forwards",
    "contextual_patch": "actadd.studies.token_injection.pair_conditions",
    "dose_response_summary": "actadd.studies.token_injection.summaries",
    "headline": "actadd.studies.token_injection.summaries",
    "layer_summary": "actadd.studies.token_injection.summaries",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_module(__name__, _LAZY, globals())
