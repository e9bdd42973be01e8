"""Generation-phase alignments: only generated tokens, only the first k, from a marker on.

The same proofs as for prompt alignments: exact additions at the named positions and none
elsewhere, cache = no cache (on the fast path and on TransformerLens's own), batch = alone.
"""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import GREEDY, Align, SteeringError, SteeringVector, steering
from actadd.core.generation import generate_tokens
from actadd.core.steering import prompt_is
from actadd.runtime.forward import left_pad
from actadd.runtime.hooks import resid_pre

PROMPT = "I hate you because"  # 19 tokens with the leading token (byte tokenizer)
PROMPTS = [PROMPT, "Hi there", "A much longer prompt than the others here"]


def one_row(model, layer=2, coeff=6.0):
    return SteeringVector.from_pair(model, "Love", "Hate", layer=layer, coeff=coeff).mean(
        skip_first=True
    )


def layer_resid(model, tokens, layer, **kwargs):
    name = resid_pre(model, layer)
    _, cache = model.run_with_cache(tokens, names_filter=name, **kwargs)
    return cache[name][0]


@pytest.mark.parametrize(
    "align, covered",
    [
        ("generated", range(10, 19)),
        ("generated:3", range(10, 13)),
        ("from:y", range(8, 19)),  # the first "y" of "I hate you because" (byte 7 + leading)
    ],
)
def test_additions_land_exactly_on_the_phase_positions(tiny_llama, align, covered):
    """A re-fed sequence whose first 10 tokens are pinned as the prompt."""
    v = one_row(tiny_llama)
    tokens = tiny_llama.to_tokens(PROMPT)
    clean = layer_resid(tiny_llama, tokens, 2)
    with steering(tiny_llama, v, align), prompt_is(tiny_llama, torch.ones(1, 10, dtype=torch.long)):
        steered = layer_resid(tiny_llama, tokens, 2)
    on = torch.zeros(19, dtype=torch.bool)
    on[list(covered)] = True
    assert torch.equal(steered[on], clean[on] + v.tensor[0])
    assert torch.equal(steered[~on], clean[~on])


def test_generated_alignment_leaves_a_plain_forward_untouched(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    with steering(tiny_model, one_row(tiny_model), "generated"):
        steered = tiny_model(tokens)
    assert torch.equal(steered, tiny_model(tokens))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("align", ["generated", "generated:3", "from:e", "from: "])
def test_cache_equals_no_cache(tiny_model, align, fast):
    v = one_row(tiny_model, coeff=20.0)
    ids = [tiny_model.to_tokens(p)[0].tolist() for p in PROMPTS]

    def run(use_cache):
        gens = [torch.Generator().manual_seed(i) for i in range(len(ids))]
        return generate_tokens(
            tiny_model,
            ids,
            gens,
            max_new_tokens=16,
            sampling=GREEDY,
            use_cache=use_cache,
            fast=fast,
        )

    with steering(tiny_model, v, align):
        cached, uncached = run(True), run(False)
    assert cached == uncached
    assert cached != run(True)  # the steering changed something


@pytest.mark.parametrize("align", ["generated", "generated:2", "from:e"])
def test_left_padded_batch_equals_each_prompt_alone(tiny_model, align):
    v = one_row(tiny_model, coeff=20.0)
    batch = actadd.generate(tiny_model, PROMPTS, v, align, sampling=GREEDY, max_new_tokens=16)
    alone = [
        actadd.generate(tiny_model, p, v, align, sampling=GREEDY, max_new_tokens=16).completion[0]
        for p in PROMPTS
    ]
    assert batch.completion.tolist() == alone


def test_first_generated_token_is_unsteered_and_first_k_stops_after_k(tiny_llama):
    """The first token is drawn from the prompt's logits, before any generated position
    exists; "generated:1" then steers exactly one position."""
    v = one_row(tiny_llama, coeff=30.0)
    run = lambda *a: actadd.generate(  # noqa: E731
        tiny_llama, PROMPT, *a, sampling=GREEDY, max_new_tokens=12
    ).completion[0]
    plain, steered = run(), run(v, "generated")
    assert plain[0] == steered[0] and plain != steered
    ids = tiny_llama.to_tokens(PROMPT)[0].tolist()
    with steering(tiny_llama, v, "generated:1") as s:
        gen = generate_tokens(
            tiny_llama, [ids], [torch.Generator()], max_new_tokens=4, sampling=GREEDY
        )
    full = torch.tensor([ids + gen[0][:-1]])
    with steering(tiny_llama, v, "generated:1"), prompt_is(tiny_llama, torch.ones(1, len(ids))):
        steered_resid = layer_resid(tiny_llama, full, 2)
    clean = layer_resid(tiny_llama, full, 2)
    changed = (steered_resid != clean).any(-1).nonzero().flatten().tolist()
    assert changed == [len(ids)]
    assert "generated:1" in set(s.applied().kind)


def test_marker_is_found_in_generated_text_with_the_cache(tiny_llama):
    """A marker that first appears in the generated text starts the steering there."""
    ids = tiny_llama.to_tokens("Hi")[0].tolist()
    plain = generate_tokens(
        tiny_llama, [ids], [torch.Generator()], max_new_tokens=20, sampling=GREEDY
    )[0]
    marker = tiny_llama.tokenizer.decode([plain[5]])
    first = plain.index(plain[5])
    v = one_row(tiny_llama, coeff=30.0)
    with steering(tiny_llama, v, Align.from_marker(plain[5])):
        steered = generate_tokens(
            tiny_llama, [ids], [torch.Generator()], max_new_tokens=20, sampling=GREEDY
        )[0]
    # up to and including the token after the marker's first position, nothing changed
    assert steered[: first + 1] == plain[: first + 1]
    assert steered != plain, marker


def test_phase_alignments_need_one_row_and_a_one_token_marker(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    with pytest.raises(SteeringError, match="align=generated adds one d_model vector"):
        steering(tiny_llama, v, "generated")
    with pytest.raises(SteeringError, match="marker token 'ab' is 2 tokens"):
        steering(tiny_llama, v.mean(), "from:ab")
    with pytest.raises(SteeringError, match="generated:<k> needs k >= 1"):
        Align.parse("generated:0")
    assert str(Align.parse("generated:4")) == "generated:4"
    assert str(Align.parse("from:<|x|>")) == "from:<|x|>"


def test_marker_alignment_refuses_residual_input(tiny_llama):
    v = one_row(tiny_llama)
    tokens, mask = left_pad(tiny_llama, [tiny_llama.to_tokens(PROMPT)[0].tolist()])
    resid = tiny_llama(tokens, stop_at_layer=1)
    with steering(tiny_llama, v, "from:e"), pytest.raises(SteeringError, match="needs token input"):
        tiny_llama(resid, start_at_layer=1)
