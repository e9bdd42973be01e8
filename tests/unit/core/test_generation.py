"""Seeded, batched generation and the sampling rules."""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import GREEDY, Sampling, SteeringError, SteeringVector
from actadd.core.generation import next_tokens


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


# ------------------------------------------------------------ the prompt pass per distinct row


def _rows_and_placements(model, align):
    """Rows 0, 1, 3: one prompt under one setting; row 2 another prompt; row 4 the first
    prompt under another setting (so it must not share rows 0's prompt pass)."""
    from actadd.core.steering import Placement

    v = SteeringVector.from_pair(model, "Love", "Hate", layer=1, coeff=3)
    if align == "all":
        v = v.mean(skip_first=True)
    a, b = (model.to_tokens(t)[0].tolist() for t in ("I hate you because", "The weather"))
    lists = [a, a, b, a, a]
    placements = [Placement(v, align, (0, 1, 2, 3)), Placement(v * -2, align, (4,))]
    return lists, placements


@pytest.mark.parametrize("align", ["front", "back", "all"])
def test_distinct_rows_groups_equal_prompts_under_equal_steering(tiny_llama, align):
    from actadd.core.steering import distinct_rows, steering
    from actadd.runtime.forward import left_pad

    lists, placements = _rows_and_placements(tiny_llama, align)
    tokens, mask = left_pad(tiny_llama, lists)
    with steering(tiny_llama, placements):
        assert distinct_rows(tiny_llama, tokens, mask) == [0, 0, 2, 0, 4]
    assert distinct_rows(tiny_llama, tokens, mask) == [0, 0, 2, 0, 0]  # unsteered


def test_distinct_rows_shares_nothing_when_a_plan_holds_what_it_does_not_know(tiny_llama):
    """A kind of steering whose plan is not per-row tensors (a future field) turns the
    sharing off rather than risk steering a copy wrongly."""
    from actadd.core.steering import distinct_rows, steering
    from actadd.runtime.forward import left_pad

    lists, placements = _rows_and_placements(tiny_llama, "front")
    tokens, mask = left_pad(tiny_llama, lists)
    with steering(tiny_llama, placements) as ctx:
        ctx._ensure_plans(mask, mask)
        ctx._plans[1].later = []  # nothing there: still shared
        assert distinct_rows(tiny_llama, tokens, mask) == [0, 0, 2, 0, 4]
        ctx._plans[1].later = [("row", "where")]
        assert distinct_rows(tiny_llama, tokens, mask) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("align", ["front", "back", "all"])
def test_shared_prompt_pass_equals_each_row_alone(tiny_llama, align):
    """The fast decoding loop runs the prompt once per distinct row and copies the cache;
    every row still samples exactly what it samples alone, steering included."""
    from actadd.core.generation import generate_tokens
    from actadd.core.steering import Placement, steering

    lists, placements = _rows_and_placements(tiny_llama, align)
    sampling = Sampling(top_p=0.9)
    widths = []
    handle = tiny_llama.hook_embed.register_forward_hook(
        lambda m, i, out: widths.append(out.shape[0])
    )
    try:
        with steering(tiny_llama, placements):
            gens = [torch.Generator().manual_seed(i) for i in range(len(lists))]
            together = generate_tokens(tiny_llama, lists, gens, max_new_tokens=8, sampling=sampling)
    finally:
        handle.remove()
    assert widths[0] == 3  # the prompt pass: rows 0, 2 and 4 only
    assert set(widths[1:]) == {5}  # decoding: every row
    for i, ids in enumerate(lists):
        mine = [Placement(p.vector, p.align) for p in placements if i in p.rows]
        with steering(tiny_llama, mine):
            alone = generate_tokens(
                tiny_llama,
                [ids],
                [torch.Generator().manual_seed(i)],
                max_new_tokens=8,
                sampling=sampling,
            )
        assert together[i] == alone[0]
    assert together[0] != together[1]  # own generators: copies sample on their own


def test_shared_prompt_pass_gives_the_logits_of_the_full_batch(tiny_llama):
    """The first step's logits and the cache after the prompt equal those of the prompt
    pass over every row."""
    from actadd.core.generation import _prompt_pass
    from actadd.core.steering import prompt_is, steering
    from actadd.runtime.fast import StaticKVCache, fast_path
    from actadd.runtime.forward import last_logits, left_pad

    lists, placements = _rows_and_placements(tiny_llama, "front")
    tokens, mask = left_pad(tiny_llama, lists)
    n = tokens.shape[1]
    with torch.inference_mode(), fast_path(tiny_llama), steering(tiny_llama, placements):
        with prompt_is(tiny_llama, mask):
            full_cache = StaticKVCache.allocate(tiny_llama.cfg, "cpu", 5, n + 4)
            full = last_logits(tiny_llama, tokens, attention_mask=mask, past_kv_cache=full_cache)
        with prompt_is(tiny_llama, mask):
            cache = StaticKVCache.allocate(tiny_llama.cfg, "cpu", 5, n + 4)
            shared, cache = _prompt_pass(tiny_llama, tokens, mask, cache)
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=0)
    for a, b in zip(cache.entries, full_cache.entries):
        assert a.cached == b.cached == n
        torch.testing.assert_close(a.past_keys, b.past_keys, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.past_values, b.past_values, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache.previous_attention_mask, full_cache.previous_attention_mask)
