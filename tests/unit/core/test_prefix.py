"""The batched forward from a clean prefix equals one full hooked forward per condition."""

from __future__ import annotations

import pytest
import torch

from actadd import SteeringError, SteeringVector, steering
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement

TEXTS = ["I hate you because", "Hello", "The movie was great"]


def full(model, text, placements):
    tokens = model.to_tokens(text)
    with steering(model, placements) if placements else torch.no_grad():
        return model(tokens)[0]


@pytest.mark.parametrize("padding", ["left", "by_length"])
def test_each_condition_equals_a_full_forward_of_each_text(tiny_llama, padding):
    v1 = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    v0 = SteeringVector.from_pair(tiny_llama, "ab", "cd", layer=1)
    conditions = [None, v1, [Placement(v1 * -2, "back"), v0], Placement(v0, "front")]
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    batch = PrefixBatch(tiny_llama, ids, padding=padding, max_rows=4)  # forces chunking
    got = batch.logits(conditions)
    for cond, logits in zip(conditions, got):
        placements = [] if cond is None else cond if isinstance(cond, list) else [cond]
        for i, text in enumerate(TEXTS):
            ref = full(tiny_llama, text, placements)[-1]
            torch.testing.assert_close(logits[i], ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(batch.clean, got[0])


def test_all_positions_of_a_left_padded_batch(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    batch = PrefixBatch(tiny_llama, ids, positions="all")
    (logits,) = batch.logits([v])
    for i, text in enumerate(TEXTS):
        ref = full(tiny_llama, text, [v])
        torch.testing.assert_close(logits[i, -len(ref) :], ref, atol=2e-5, rtol=1e-5)


def test_typical_norm_skips_the_leading_token_and_padding(tiny_llama):
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    left = PrefixBatch(tiny_llama, ids).typical_norm(2)
    grouped = PrefixBatch(tiny_llama, ids, padding="by_length").typical_norm(2)
    norms = []
    for text in TEXTS:
        _, cache = tiny_llama.run_with_cache(text, names_filter="blocks.2.hook_resid_pre")
        norms += cache["blocks.2.hook_resid_pre"][0, 1:].norm(dim=-1).tolist()
    assert left == pytest.approx(sum(norms) / len(norms), rel=1e-5)
    assert grouped == pytest.approx(left, rel=1e-5)


def test_bad_batches_are_refused(tiny_llama):
    with pytest.raises(SteeringError, match="non-empty token list"):
        PrefixBatch(tiny_llama, [[]])
    with pytest.raises(SteeringError, match="positions='all' needs padding='left'"):
        PrefixBatch(tiny_llama, [[0, 1]], padding="by_length", positions="all")
