"""Vector diagnostics (actadd.core.diagnostics) on tiny random models: the typical residual
norm, norm ratios, embedding cosines, the logit lens, and the per-layer table."""

from __future__ import annotations

import math

import numpy as np

from actadd import SteeringVector
from actadd.studies.token_injection import (
    embedding_cosines,
    logit_lens,
    norm_ratios,
    typical_norm,
    vector_diagnostics,
)

PROMPTS = ["hello world there", "the quick brown fox"]


def test_typical_norm_leaves_out_the_leading_token(tiny_llama):
    layer = 2
    tokens = tiny_llama.to_tokens(PROMPTS[0])
    r = tiny_llama(tokens, stop_at_layer=layer)[0]
    assert math.isclose(
        typical_norm(tiny_llama, PROMPTS[:1], layer), float(r[1:].norm(dim=-1).mean()), rel_tol=1e-6
    )


# ---------------------------------------------------------------------- diagnostics


def test_norm_ratios_compare_each_row_with_the_prompt_position_it_lands_on(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2, 2.0)
    df = norm_ratios(tiny_llama, v, PROMPTS)
    r = [tiny_llama(tiny_llama.to_tokens(p), stop_at_layer=2)[0].norm(dim=-1) for p in PROMPTS]
    j = 3
    expected = float(v.norms()[j]) / float((r[0][j] + r[1][j]) / 2)
    assert math.isclose(df.norm_ratio[j], expected, rel_tol=1e-5)
    assert df.vec_norm[0] == 0  # the shared leading token


def test_embedding_cosines_at_layer0_point_exactly_at_the_token_difference(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "ab", "xy", 0)
    df = embedding_cosines(tiny_llama, v, "ab", "xy")
    assert list(df.token_pos) == ["<|bos|>", "a", "b"]
    assert np.allclose(df.cos_diff[1:], 1.0, atol=1e-5)
    assert np.isnan(df.cos_diff[0])
    assert (df.pos_token_rank[1:] == 0).all()  # each row is closest to its own p+ token


def test_logit_lens_is_the_unembedded_final_norm_of_the_rows(tiny_gpt2):
    v = SteeringVector.from_pair(tiny_gpt2, "abc", "x", 2)
    df = logit_lens(tiny_gpt2, v, k=5)
    x = v.tensor[1:].sum(0)[None, None]
    logits = tiny_gpt2.unembed(tiny_gpt2.ln_final(x))[0, 0]
    assert list(df.token_id) == logits.topk(5).indices.tolist()
    assert list(df["rank"]) == list(range(5)) and (df.row == "sum").all()
    assert len(logit_lens(tiny_gpt2, v, k=3, rows="each")) == 3 * v.k


def test_vector_diagnostics_covers_every_layer_and_row(tiny_llama):
    df = vector_diagnostics(tiny_llama, "abc", "x", [0, 2, 4], PROMPTS, coeff=2.0)
    assert len(df) == 3 * 4 and set(df.layer) == {0, 2, 4} and (df.coeff == 2.0).all()
