"""A one-row vector is never a silent no-op: given no alignment it goes on every position
after the leading token (``"all:1"``), a per-position vector still goes to the front (the
paper, bit for bit), and a context whose additions all land on the leading token warns once.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import actadd
from actadd import GREEDY, Align, SteeringVector, steering
from actadd.core.align import default_align
from actadd.errors import LeadingTokenWarning
from actadd.runtime.hooks import resid_pre

PROMPT = "I hate you because"


def resid_at(model, tokens, layer):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == resid_pre(model, layer))
    return cache[resid_pre(model, layer)]


def caa_like(model, layer=2, coeff=30.0):
    """A one-row vector (as CAA, PCA or a mean are), times ``coeff``."""
    return (
        SteeringVector.from_pair(model, "Love", "Hate", layer=layer).mean(skip_first=True) * coeff
    )


def test_default_alignment_is_front_for_per_position_and_all_after_leading_for_one_row():
    assert default_align(5) == Align.front()
    assert default_align(1) == Align.all(1) == Align.parse("all:1")
    assert str(Align.all(1)) == "all:1" and str(Align.all()) == "all"


def test_caa_times_k_default_changes_logits_after_the_leading_token(tiny_model):
    """CAA × 30 with no alignment given: every position >= 1 moves, position 0 does not."""
    v = caa_like(tiny_model)
    tokens = tiny_model.to_tokens(PROMPT)
    clean = tiny_model(tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeadingTokenWarning)  # the default never warns
        with steering(tiny_model, v) as s:
            steered = tiny_model(tokens)
    moved = (steered - clean).abs().amax(-1)[0]
    assert torch.equal(steered[0, 0], clean[0, 0])  # the leading token is untouched
    assert bool((moved[1:] > 1e-3).all())
    assert sorted(s.applied().query("kind == 'prompt'").position) == list(range(1, tokens.shape[1]))


def test_default_one_row_addition_is_exact_at_every_position_after_the_leading_token(tiny_llama):
    v = caa_like(tiny_llama, layer=2, coeff=3.0)
    tokens = tiny_llama.to_tokens(PROMPT)
    clean = resid_at(tiny_llama, tokens, 2)
    with steering(tiny_llama, v):
        steered = resid_at(tiny_llama, tokens, 2)
    assert torch.equal(steered[0, 0], clean[0, 0])
    assert torch.equal(steered[0, 1:], clean[0, 1:] + v.tensor[0])


def test_default_one_row_generation_steers_generated_tokens_and_matches_the_cache_off(tiny_llama):
    """``all:1`` covers generated tokens too (as ``all``), with and without the KV cache,
    and a left-padded batch equals each prompt alone."""
    v = caa_like(tiny_llama, coeff=4.0)
    prompts = [PROMPT, "Short one", "A much longer prompt than the others here"]
    runs = [
        actadd.generate(tiny_llama, prompts, v, sampling=GREEDY, max_new_tokens=16, use_cache=c)
        for c in (True, False)
    ]
    assert runs[0].completion.tolist() == runs[1].completion.tolist()
    assert set(runs[0]["align"]) == {"all:1"}
    alone = [
        actadd.generate(tiny_llama, p, v, sampling=GREEDY, max_new_tokens=16).completion[0]
        for p in prompts
    ]
    assert runs[0].completion.tolist() == alone
    # on the prompt the same as a span from position 1; after it, also on generated tokens
    prompt_only = actadd.generate(
        tiny_llama, prompts, v, Align.span(1), sampling=GREEDY, max_new_tokens=16
    )
    assert runs[0].completion.tolist() != prompt_only.completion.tolist()


def test_per_position_vectors_keep_the_paper_front_alignment_bit_for_bit(tiny_model):
    v = SteeringVector.from_pair(tiny_model, "Love", "Hate", layer=2, coeff=5.0)
    tokens = tiny_model.to_tokens(PROMPT)
    with steering(tiny_model, v, "front"):
        front = tiny_model(tokens)
    with steering(tiny_model, v):
        default = tiny_model(tokens)
    assert torch.equal(front, default)
    kw = dict(sampling=GREEDY, max_new_tokens=12)
    assert (
        actadd.generate(tiny_model, PROMPT, v, **kw).completion.tolist()
        == actadd.generate(tiny_model, PROMPT, v, "front", **kw).completion.tolist()
    )


def test_front_aligned_one_row_vector_warns_once(tiny_llama):
    v = caa_like(tiny_llama)
    tokens = tiny_llama.to_tokens(PROMPT)
    with pytest.warns(LeadingTokenWarning, match="leading token only") as caught:
        with steering(tiny_llama, v, "front"):
            tiny_llama(tokens)
            tiny_llama(tokens)  # a second sequence: no second warning
        actadd.generate(tiny_llama, PROMPT, v, "front", max_new_tokens=3)  # a new context
    assert len([w for w in caught if w.category is LeadingTokenWarning]) == 2  # one per context


@pytest.mark.parametrize("align", [None, "all", "all:1", "offset:1", "back"])
def test_no_warning_when_an_addition_lands_past_the_leading_token(tiny_llama, align):
    v = caa_like(tiny_llama)
    tokens = tiny_llama.to_tokens(PROMPT)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeadingTokenWarning)
        with steering(tiny_llama, v, align):
            tiny_llama(tokens)
        # a per-position pair vector at the front: its rows cover positions 0..k-1
        with steering(tiny_llama, SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)):
            tiny_llama(tokens)


def test_leading_token_warning_is_per_row_of_a_left_padded_batch(tiny_llama):
    """Left padding moves the leading token; a one-row vector at the front of every row
    still lands on leading tokens only, and warns."""
    v = caa_like(tiny_llama)
    with pytest.warns(LeadingTokenWarning):
        actadd.generate(tiny_llama, [PROMPT, "Hi"], v, "front", max_new_tokens=2)
