"""The concept-specificity matrix (actadd.studies.token_injection.specificity): per-prompt null
draws, each equal to a single-prompt forward with its own draw (tiny random Llama)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actadd import ConfigError
from actadd.lab.stats import pearson
from actadd.studies.token_injection import (
    PromptBatch,
    aligned_arms,
    next_token_logprobs,
    place_ids,
    residual_random_like,
)
from actadd.studies.token_injection.conditions import seed_of
from actadd.studies.token_injection.forwards import _text_resid
from actadd.studies.token_injection.specificity import concept_pairs, specificity_matrix

PER_PROMPT = ["hello world there", "the quick brown fox", "abcd efg hij", "one two three four"]


def test_specificity_per_prompt_nulls_deal_each_prompt_its_own_draws(tiny_llama):
    pairs = concept_pairs(["a", "b", "c"], 2.0, "z")
    kw = dict(null_words=["x", "y", "k"], null_coeff=2.0, null_pad="z", control_words=["q"])
    res = specificity_matrix(
        tiny_llama, PER_PROMPT, pairs, [1], null_draws_per_prompt=1, progress=False, **kw
    )
    n, J = len(PER_PROMPT), len(pairs)
    nulls, draws = res.nulls, res.draws
    assert set(nulls.null) == {"words", "residual", "embedding"}
    assert (nulls.draws_per_prompt == 1).all()
    assert (nulls[nulls.null != "words"].draws == n).all()
    assert (nulls[nulls.null == "words"].draws == 3).all()  # 4 prompts deal all 3 words
    # one draw per prompt: the draw table's value on its prompt is that prompt's null
    d = draws[draws.null == "residual"].sort_values(["actadd", "inject", "prompt_index"])
    m = nulls[nulls.null == "residual"].sort_values(["actadd", "inject", "prompt_index"])
    assert len(d) == len(m) == J * J * n
    np.testing.assert_allclose(d.effect_corr.to_numpy(), m.effect_corr.to_numpy(), rtol=1e-6)
    # prompt t's residual null for concept 0 = a single-prompt forward with its own draw
    batch = PromptBatch(tiny_llama, PER_PROMPT)
    ref = pairs[0].vector(tiny_llama, 1)
    rows = torch.cat([r[1:] for r in _text_resid(batch, 1)])
    plus, _ = aligned_arms(tiny_llama, " a", "", "right", "z")
    for t, toks in enumerate(batch.token_lists):
        gen = torch.Generator().manual_seed(seed_of(2, 0, 1, 0, t))
        base = next_token_logprobs(tiny_llama, [toks])
        lp = next_token_logprobs(tiny_llama, [toks], residual_random_like(ref, rows, gen))
        inj = next_token_logprobs(tiny_llama, [place_ids(toks, plus, "replace")])
        want = float(pearson(lp - base, inj - base)[0])
        got = m[(m.actadd == "a") & (m.inject == "a") & (m.prompt_index == t)].effect_corr
        assert math.isclose(got.iloc[0], want, rel_tol=1e-4, abs_tol=1e-5)
    with pytest.raises(ConfigError, match="not both"):
        specificity_matrix(
            tiny_llama, PER_PROMPT, pairs, [1], null_draws=2, null_draws_per_prompt=1, **kw
        )
