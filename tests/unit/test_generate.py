"""Seeded, batched generation and the sampling rules."""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import GREEDY, Sampling, SteeringError, SteeringVector
from actadd.generation import next_tokens


def test_same_seed_same_samples_regardless_of_batch_size(tiny_llama):
    prompts = ["I hate you because", "The weather", "Once"]
    kw = dict(n_samples=3, max_new_tokens=12, seed=7, sampling=Sampling(top_p=0.9))
    a = actadd.generate(tiny_llama, prompts, batch_size=9, **kw)
    b = actadd.generate(tiny_llama, prompts, batch_size=2, **kw)
    assert a.completion.tolist() == b.completion.tolist()
    c = actadd.generate(tiny_llama, prompts, batch_size=9, **{**kw, "seed": 8})
    assert a.completion.tolist() != c.completion.tolist()


def test_generation_leaves_global_rng_alone(tiny_llama):
    state = torch.random.get_rng_state()
    actadd.generate(tiny_llama, "Hello", max_new_tokens=5)
    assert torch.equal(state, torch.random.get_rng_state())


def test_result_table_columns(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=2)
    df = actadd.generate(tiny_llama, ["a b c d e f", "x y z w"], v, n_samples=2, max_new_tokens=4)
    assert len(df) == 4
    assert {
        "prompt",
        "sample",
        "seed",
        "completion",
        "steered",
        "vector",
        "layer",
        "coeff",
        "align",
        "model",
    } <= set(df.columns)
    assert df.layer.unique().tolist() == [1] and df.coeff.unique().tolist() == [2.0]
    assert df.steered.all() and (df.n_tokens == 4).all()


def test_compare_puts_steered_and_unsteered_side_by_side(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=8)
    df = actadd.compare(tiny_llama, "I hate you because", v, sampling=GREEDY, max_new_tokens=8)
    plain = actadd.generate(tiny_llama, "I hate you because", sampling=GREEDY, max_new_tokens=8)
    assert df.unsteered[0] == plain.completion[0]
    assert df.steered[0] != df.unsteered[0]


def test_frequency_penalty_and_top_p():
    logits = torch.tensor([[3.0, 2.9, -5.0, -5.0]])
    gen = [torch.Generator().manual_seed(0)]
    # top_p small: only the top token survives
    picks = {
        int(next_tokens(logits, torch.zeros(1, 4), Sampling(top_p=0.01), gen)) for _ in range(20)
    }
    assert picks == {0}
    # a frequency penalty of 1 per previous occurrence moves the argmax
    counts = torch.tensor([[2.0, 0, 0, 0]])
    assert int(next_tokens(logits, counts, Sampling(freq_penalty=1.0, greedy=True), gen)) == 1
    assert int(next_tokens(logits, counts, GREEDY, gen)) == 0


def test_bad_sampling_and_arguments_are_rejected(tiny_llama):
    with pytest.raises(SteeringError, match="top_p"):
        Sampling(top_p=0)
    with pytest.raises(SteeringError, match="temperature"):
        Sampling(temperature=0)
    with pytest.raises(SteeringError, match="No prompts"):
        actadd.generate(tiny_llama, [])


def test_stop_at_eos_ends_rows_early(tiny_llama):
    eos = tiny_llama.tokenizer.eos_token_id
    bias = torch.zeros(tiny_llama.cfg.d_vocab)
    bias[eos] = 1e4
    original = tiny_llama.unembed.b_U.clone()
    try:
        tiny_llama.unembed.b_U.copy_(bias)
        df = actadd.generate(tiny_llama, "x", max_new_tokens=6, stop_at_eos=True, sampling=GREEDY)
    finally:
        tiny_llama.unembed.b_U.copy_(original)
    assert df.n_tokens[0] == 1 and df.completion[0] == ""
