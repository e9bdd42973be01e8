"""The behaviours study's suffix forward (actadd.studies.behaviours.suffix): the shared
prefix gives TransformerLens's numbers, planted errors in it are seen, and it never leaves
an attention module patched. (Its agreement with a hand-written hook, on every forward, is
in test_behaviours_protocol.py.)"""

from __future__ import annotations

import pytest
import torch

from actadd.studies.behaviours.data import Item
from actadd.studies.behaviours.protocol import Prompts
from actadd.studies.behaviours.suffix import SuffixBatch, shared_unsupported

ITEMS = [
    Item("Do you agree with the plan we made?\n(A) yes\n(B) no", "A", "B"),
    Item("Shall we stop here?\n(A) stop\n(B) go on", "B", "A"),
    Item("Pick one\n(A) red\n(B) blue", "B", "A"),
]


def _batches(model, positions="answer", layers=(0, 1, 3), max_rows=4):
    prompts = Prompts.build(model, ITEMS, positions, chat=False)
    k = int(prompts.n_steer[0])
    make = lambda shared: SuffixBatch(
        model, prompts.ids, k, list(layers), max_rows=max_rows, shared=shared
    )
    return prompts, make(True), make(False)


def _additions(model, cells=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    add = torch.randn((cells, len(ITEMS), model.cfg.d_model), generator=g) * 3
    add[1] = 0.0  # an unsteered cell
    return add


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gpt2", "tiny_gemma3"])
@pytest.mark.parametrize("positions", ["answer", "after_question"])
def test_the_shared_prefix_gives_transformerlens_logits_for_every_row(request, name, positions):
    """Each (cell, prompt) row its own random addition, over chunks of uneven size: the
    shared attention's letter logits equal TransformerLens's own attention over the
    repeated cache, and the unsteered cell the clean forward's, exactly."""
    model = request.getfixturevalue(name)
    prompts, shared, repeat = _batches(model, positions)
    assert shared.shared and not repeat.shared
    add = _additions(model)
    for layer in (0, 1, 3):
        a = shared.logits(layer, add, prompts.letter_ids)
        b = repeat.logits(layer, add, prompts.letter_ids)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert torch.equal(a[1], shared.clean[:, list(prompts.letter_ids)])
        assert not torch.allclose(a[0], a[1], atol=1e-3)  # the additions do move them


def test_a_planted_error_in_the_shared_attention_is_seen(tiny_gemma3):
    """tiny-gemma3 attends through a 4-token window on layers 0-2: giving those layers the
    global layer's view of the prefix (the window forgotten), or hiding each new position
    from its own key, changes the logits well beyond the tolerance above."""
    prompts, shared, repeat = _batches(tiny_gemma3)
    add = _additions(tiny_gemma3)
    right = repeat.logits(0, add, prompts.letter_ids)
    masks = {i: p.mask for i, p in shared.prefix.items()}
    for i in (0, 1, 2):
        shared.prefix[i].mask = masks[3]
    assert (shared.logits(0, add, prompts.letter_ids) - right).abs().max() > 1e-3
    for i in shared.prefix:
        own = masks[i].clone()
        own[..., -1] = False
        shared.prefix[i].mask = own
    assert (shared.logits(0, add, prompts.letter_ids) - right).abs().max() > 1e-3


def test_a_hook_the_shared_attention_would_not_fire_sends_the_call_to_transformerlens(
    tiny_llama,
):
    """A hook on the attention pattern: the batch says why it cannot share the prefix and
    runs TransformerLens's attention, so the hook fires, with the same numbers."""
    prompts, shared, _ = _batches(tiny_llama)
    add = _additions(tiny_llama)
    plain = shared.logits(1, add, prompts.letter_ids)
    seen = []
    with tiny_llama.hooks(
        fwd_hooks=[("blocks.2.attn.hook_pattern", lambda x, hook: seen.append(1))]
    ):
        assert "hook" in shared_unsupported(tiny_llama)
        hooked = shared.logits(1, add, prompts.letter_ids)
    assert seen
    torch.testing.assert_close(hooked, plain, rtol=1e-5, atol=1e-5)


def test_no_attention_module_stays_patched_when_a_block_raises(tiny_llama):
    prompts, shared, _ = _batches(tiny_llama)

    def boom(x, hook):
        raise RuntimeError("planted")

    with tiny_llama.hooks(fwd_hooks=[("blocks.2.hook_resid_mid", boom)]):
        with pytest.raises(RuntimeError, match="planted"):
            shared.logits(0, _additions(tiny_llama), prompts.letter_ids)
    assert not any("forward" in vars(b.attn) for b in tiny_llama.blocks)
