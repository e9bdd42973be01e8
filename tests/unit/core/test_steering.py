"""The steering context: exact arithmetic, positions, KV cache, padding, cleanup."""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import GREEDY, Align, SteeringError, SteeringVector, steering
from actadd.core.generation import generate_tokens
from actadd.runtime.hooks import resid_pre

PROMPT = "I hate you because"  # 18 bytes + BOS with the byte tokenizer


def resid(model, tokens, layer, **kwargs):
    name = resid_pre(model, layer)
    # resid_pre names only: the bridge warns about its gated-off hook names under a wider filter
    wanted = lambda n: n.endswith("hook_resid_pre")
    _, cache = model.run_with_cache(tokens, names_filter=wanted, **kwargs)
    return cache, cache[name]


def all_hooked_layers_equal(a, b, layers):
    return all(
        torch.equal(a[f"blocks.{i}.hook_resid_pre"], b[f"blocks.{i}.hook_resid_pre"])
        for i in layers
    )


@pytest.mark.parametrize(
    "align, expected",
    [
        ("front", [0, 1, 2, 3, 4]),
        ("offset:3", [3, 4, 5, 6, 7]),
        (7, [7, 8, 9, 10, 11]),
        ("back", [14, 15, 16, 17, 18]),
        ([0, 2, 4, 6, -1], [0, 2, 4, 6, 18]),
    ],
)
def test_addition_is_exact_at_steered_positions_and_untouched_elsewhere(any_model, align, expected):
    model = any_model
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=3.0)
    assert v.k == 5
    tokens = model.to_tokens(PROMPT)
    assert tokens.shape[1] == 19
    clean_cache, clean = resid(model, tokens, 2)
    with steering(model, v, align=align):
        steered_cache, steered = resid(model, tokens, 2)
    pos = torch.tensor(expected)
    assert torch.equal(steered[0, pos], clean[0, pos] + v.tensor)
    others = torch.ones(19, dtype=torch.bool)
    others[pos] = False
    assert torch.equal(steered[0, others], clean[0, others])
    assert all_hooked_layers_equal(clean_cache, steered_cache, [0, 1])
    assert not torch.equal(
        steered_cache["blocks.3.hook_resid_pre"], clean_cache["blocks.3.hook_resid_pre"]
    )


def test_all_positions_adds_one_row_everywhere(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1).mean(skip_first=True)
    tokens = tiny_llama.to_tokens(PROMPT)
    _, clean = resid(tiny_llama, tokens, 1)
    with steering(tiny_llama, v, "all"):
        _, steered = resid(tiny_llama, tokens, 1)
    assert torch.equal(steered, clean + v.tensor[0])


def test_all_positions_rejects_multi_row_vector(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    with pytest.raises(SteeringError, match="mean"):
        steering(tiny_llama, v, "all")


def test_one_row_vector_goes_to_every_listed_position(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1).rows([2])
    tokens = tiny_llama.to_tokens(PROMPT)
    _, clean = resid(tiny_llama, tokens, 1)
    with steering(tiny_llama, v, [1, 5, 9]):
        _, steered = resid(tiny_llama, tokens, 1)
    for p in (1, 5, 9):
        assert torch.equal(steered[0, p], clean[0, p] + v.tensor[0])
    assert torch.equal(steered[0, 10:], clean[0, 10:])


def test_steering_with_a_list_equals_steering_with_the_sum(any_model):
    v1 = SteeringVector.from_pair(any_model, "Love", "Hate", layer=2, coeff=2)
    v2 = SteeringVector.from_pair(any_model, "Happy", "Sad", layer=2, coeff=-1.5)
    assert v1.k != v2.k  # exercises zero-padding of the shorter one
    tokens = any_model.to_tokens(PROMPT)
    with steering(any_model, [v1, v2]):
        both = any_model(tokens)
    with steering(any_model, v1 + v2):
        summed = any_model(tokens)
    assert torch.equal(both, summed)


def test_vectors_at_different_layers_and_nested_contexts_compose(tiny_llama):
    v1 = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    v2 = SteeringVector.from_pair(tiny_llama, "Calm", "Anger", layer=3)
    tokens = tiny_llama.to_tokens(PROMPT)
    with steering(tiny_llama, [v1, v2]):
        together = tiny_llama(tokens)
    with steering(tiny_llama, v1), steering(tiny_llama, v2):
        nested = tiny_llama(tokens)
    assert torch.equal(together, nested)
    assert not torch.equal(together, tiny_llama(tokens))


@pytest.mark.parametrize("align", ["front", "offset:2", "back", "all", [1, 3, -2]])
def test_kv_cache_and_no_cache_give_the_same_greedy_completion(any_model, align):
    v = SteeringVector.from_pair(any_model, "Love", "Hate", layer=2, coeff=4)
    if align == "all":
        v = v.mean(skip_first=True)
    elif isinstance(align, list):
        v = v.rows([1, 2, 3])
    prompts = [PROMPT, "Yesterday I went to the", "Hi there"]
    runs = [
        actadd.generate(
            any_model, prompts, v, align, sampling=GREEDY, max_new_tokens=24, use_cache=cache
        )
        for cache in (True, False)
    ]
    assert runs[0].completion.tolist() == runs[1].completion.tolist()
    unsteered = actadd.generate(any_model, prompts, sampling=GREEDY, max_new_tokens=24)
    assert runs[0].completion.tolist() != unsteered.completion.tolist()


def test_transformerlens_generate_inside_steering_matches_ours(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2, coeff=4)
    with steering(tiny_llama, v, "back"):
        theirs = tiny_llama.generate(PROMPT, max_new_tokens=16, do_sample=False, verbose=False)
    ours = actadd.generate(tiny_llama, PROMPT, v, "back", sampling=GREEDY, max_new_tokens=16)
    assert theirs == PROMPT + ours.completion[0]


@pytest.mark.parametrize("align", ["front", "back", "offset:1"])
def test_left_padded_batch_equals_each_prompt_alone(any_model, align):
    v = SteeringVector.from_pair(any_model, "Love", "Hate", layer=1, coeff=3)
    prompts = [PROMPT, "Short one", "A much longer prompt than the others here"]
    batch = actadd.generate(any_model, prompts, v, align, sampling=GREEDY, max_new_tokens=20)
    alone = [
        actadd.generate(any_model, p, v, align, sampling=GREEDY, max_new_tokens=20).completion[0]
        for p in prompts
    ]
    assert batch.completion.tolist() == alone


def test_left_padded_forward_logits_match_single_prompts(any_model):
    """Each row of a padded batch is steered at its own positions (logit level)."""
    v = SteeringVector.from_pair(any_model, "Love", "Hate", layer=1, coeff=3)
    prompts = [PROMPT, "Short one"]
    from actadd.runtime.forward import left_pad

    ids = [any_model.to_tokens(p)[0].tolist() for p in prompts]
    tokens, mask = left_pad(any_model, ids)
    with steering(any_model, v, "back") as s:
        batch_logits = any_model(tokens, attention_mask=mask)
        placed = s.applied()
        single = [any_model(any_model.to_tokens(p))[0, -1] for p in prompts]
    for row in range(2):
        torch.testing.assert_close(batch_logits[row, -1], single[row], atol=1e-4, rtol=1e-4)
    # "back" lands on each row's last 5 real tokens, which end at the same place
    n = tokens.shape[1]
    assert sorted(placed[placed.row == 1].position) == list(range(n - 5, n))


def test_right_padded_batch_uses_each_rows_real_length(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    with steering(tiny_llama, v, "back") as s:
        tiny_llama([PROMPT, "Short one"], padding_side="right")
    placed = s.applied()
    assert sorted(placed[placed.row == 0].position) == [14, 15, 16, 17, 18]
    assert sorted(placed[placed.row == 1].position) == [5, 6, 7, 8, 9]


def test_one_token_prompt_is_steered_with_the_cache_on(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=5).rows([3])
    bos_only = [[tiny_llama.tokenizer.bos_token_id]]
    gens = lambda: [torch.Generator().manual_seed(0)]  # noqa: E731
    plain = generate_tokens(tiny_llama, bos_only, gens(), max_new_tokens=12, sampling=GREEDY)
    with steering(tiny_llama, v):
        cached = generate_tokens(
            tiny_llama, bos_only, gens(), max_new_tokens=12, sampling=GREEDY, use_cache=True
        )
        uncached = generate_tokens(
            tiny_llama, bos_only, gens(), max_new_tokens=12, sampling=GREEDY, use_cache=False
        )
    assert cached == uncached
    assert cached != plain  # the paper's `seq_len == 1` skip would leave it unsteered


def test_prompt_shorter_than_vector_is_a_clear_error_or_clipped(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)  # 5 rows
    tokens = tiny_llama.to_tokens("Hi")  # 3 tokens
    with pytest.raises(SteeringError, match="Prompt has 3 tokens"):
        with steering(tiny_llama, v):
            tiny_llama(tokens)
    _, clean = resid(tiny_llama, tokens, 1)
    with steering(tiny_llama, v, on_short="clip"):
        _, clipped = resid(tiny_llama, tokens, 1)
    assert torch.equal(clipped[0], clean[0] + v.tensor[:3])


def test_context_removes_every_hook_on_exit_and_on_exception(any_model):
    v = SteeringVector.from_pair(any_model, "Love", "Hate", layer=2, coeff=10)
    tokens = any_model.to_tokens(PROMPT)
    before = any_model(tokens)
    with steering(any_model, v):
        assert any_model.hook_dict["blocks.2.hook_resid_pre"].fwd_hooks
        assert not torch.equal(any_model(tokens), before)
    assert torch.equal(any_model(tokens), before)
    with pytest.raises(RuntimeError, match="boom"):
        with steering(any_model, v):
            raise RuntimeError("boom")
    assert not any(hp.fwd_hooks for hp in any_model.hook_dict.values())
    assert "forward" not in vars(any_model)
    assert torch.equal(any_model(tokens), before)


def test_user_hooks_outside_the_context_survive_it(tiny_llama):
    seen = []
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    hp = tiny_llama.hook_dict["blocks.2.hook_resid_pre"]
    hp.add_hook(lambda act, hook: seen.append(act.shape))
    try:
        with steering(tiny_llama, v):
            tiny_llama(tiny_llama.to_tokens(PROMPT))
        tiny_llama(tiny_llama.to_tokens(PROMPT))
        assert len(seen) == 2
    finally:
        tiny_llama.reset_hooks()


@pytest.mark.parametrize("bad", ["middle", "offset:x", "offset:-1", "front:3", 2.5, True])
def test_unknown_alignment_is_rejected(tiny_llama, bad):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    with pytest.raises(SteeringError):
        steering(tiny_llama, v, bad)


@pytest.mark.parametrize(
    "bad, name",
    [(None, "NoneType"), (3, "int"), ("v", "str"), ({2: "v"}, "dict"), (torch.ones(4), "Tensor")],
)
def test_steering_something_that_is_not_vectors_is_one_line(tiny_llama, bad, name):
    with pytest.raises(SteeringError, match=f"steering takes a SteeringVector.*got {name}") as info:
        steering(tiny_llama, bad)
    assert "\n" not in str(info.value)
    if name == "dict":
        assert "list(d.values())" in str(info.value)


def test_align_parse_round_trips():
    for spec in ["front", "back", "all", "offset:3", "positions:0,2,-1"]:
        assert str(Align.parse(spec)) == spec
    assert Align.parse(0) == Align.front()
    assert Align.parse([1, 2]) == Align.at([1, 2])


def test_vector_for_another_model_is_rejected_unless_allowed(tiny_llama, tiny_gpt2):
    v = SteeringVector.from_pair(tiny_gpt2, "Love", "Hate", layer=1)
    with pytest.raises(SteeringError, match="made for 'tiny-gpt2'"):
        steering(tiny_llama, v)
    with steering(tiny_llama, v, allow_other_model=True):
        tiny_llama(tiny_llama.to_tokens(PROMPT))


def test_vector_with_wrong_d_model_is_rejected(tiny_llama):
    v = SteeringVector.from_tensor(torch.ones(3, 32), layer=1)
    with pytest.raises(SteeringError, match="d_model 32"):
        steering(tiny_llama, v)


def test_layer_out_of_range_is_rejected(tiny_llama):
    v = SteeringVector.from_tensor(torch.ones(3, 64), layer=9)
    with pytest.raises(SteeringError, match="out of range"):
        steering(tiny_llama, v)


def test_final_layer_index_steers_the_last_residual_stream(tiny_llama):
    n = tiny_llama.cfg.n_layers
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=n)
    tokens = tiny_llama.to_tokens(PROMPT)
    with steering(tiny_llama, v):
        steered = tiny_llama(tokens)
    clean = tiny_llama(tokens)
    assert not torch.equal(steered[0, :5], clean[0, :5])
    assert torch.equal(steered[0, 5:], clean[0, 5:])


def test_row_restricted_entries_steer_each_batch_row_independently(tiny_llama):
    """(vector, align, rows) entries batch different settings into one forward."""
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    prompts = [PROMPT, PROMPT, PROMPT]
    tokens = tiny_llama.to_tokens(prompts)
    with steering(tiny_llama, [(2 * v, "front", [0]), (-1 * v, "back", [1])]) as s:
        batched = tiny_llama(tokens)
    assert set(s.applied().row) == {0, 1}
    with steering(tiny_llama, 2 * v, "front"):
        row0 = tiny_llama(tokens[:1])
    with steering(tiny_llama, -1 * v, "back"):
        row1 = tiny_llama(tokens[:1])
    torch.testing.assert_close(batched[0], row0[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], row1[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[2], tiny_llama(tokens[:1])[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(SteeringError, match="batch rows"):
        with steering(tiny_llama, [(v, "front", [5])]):
            tiny_llama(tokens)


def test_placements_equal_their_tuple_shorthand(tiny_llama):
    from actadd.core.steering import Placement

    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    tokens = tiny_llama.to_tokens([PROMPT, PROMPT])
    with steering(tiny_llama, [(2 * v, "front", [0]), (-1 * v, "back", [1])]):
        shorthand = tiny_llama(tokens)
    placed = [Placement(2 * v, Align.front(), (0,)), Placement(-1 * v, "back", [1])]
    with steering(tiny_llama, placed):
        named = tiny_llama(tokens)
    assert torch.equal(shorthand, named)
    with pytest.raises(SteeringError, match="rows must be non-empty"):
        Placement(v, "front", [])
    with pytest.raises(SteeringError, match="Expected SteeringVector"):
        Placement("not a vector")


def test_active_contexts_are_read_off_the_model_and_gone_after_exit(tiny_llama):
    from actadd.core.steering import active_steering

    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    assert active_steering(tiny_llama) == []
    with steering(tiny_llama, v) as outer:
        with steering(tiny_llama, v, "back") as inner:
            assert active_steering(tiny_llama) == [inner, outer]
        assert active_steering(tiny_llama) == [outer]
    assert active_steering(tiny_llama) == []


def test_prompt_method_keeps_back_alignment_on_the_prompt_when_the_sequence_grows(tiny_llama):
    """Re-feeding a longer sequence without a cache: inside ``prompt(mask)`` the vector stays
    on the prompt's last positions instead of moving to the new end."""
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    prompt = tiny_llama.to_tokens(PROMPT)
    longer = torch.cat([prompt, prompt[:, 1:4]], dim=1)
    with steering(tiny_llama, v, "back") as s:
        with s.prompt(torch.ones_like(prompt)):
            _, pinned = resid(tiny_llama, longer, 1)
        _, moved = resid(tiny_llama, longer, 1)
    _, clean = resid(tiny_llama, longer, 1)
    n, k = prompt.shape[1], v.k
    torch.testing.assert_close(pinned[0, n - k : n], clean[0, n - k : n] + v.tensor)
    assert torch.equal(pinned[0, n:], clean[0, n:])
    torch.testing.assert_close(moved[0, -k:], clean[0, -k:] + v.tensor)


@pytest.mark.parametrize("order", ["inner_first", "outer_first"])
def test_contexts_exited_in_any_order_restore_the_model_exactly(tiny_llama, order):
    from actadd.core.steering import active_steering

    v1 = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    v2 = SteeringVector.from_pair(tiny_llama, "ab", "cd", layer=2)
    tokens = tiny_llama.to_tokens(PROMPT)
    clean = tiny_llama(tokens)
    a, b = steering(tiny_llama, v1), steering(tiny_llama, v2)
    a.__enter__()
    b.__enter__()
    first, second = (b, a) if order == "inner_first" else (a, b)
    first.__exit__(None, None, None)
    assert active_steering(tiny_llama) == [second]
    left = tiny_llama(tokens)  # only `second` steers now
    second.__exit__(None, None, None)
    assert "forward" not in vars(tiny_llama) and active_steering(tiny_llama) == []
    assert all(not hp.fwd_hooks for hp in tiny_llama.hook_dict.values())
    assert torch.equal(tiny_llama(tokens), clean)
    with steering(tiny_llama, second.entries[0].vector):
        expected = tiny_llama(tokens)
    torch.testing.assert_close(left, expected, atol=0, rtol=0)
    actadd.generate(tiny_llama, PROMPT, max_new_tokens=2, sampling=GREEDY)  # still works
