"""The CAA protocol on a tiny model: the vectors and the steered measure against hand
computations (a plain forward per prompt, a hand-written hook)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actadd.core.methods import caa
from actadd.studies.behaviours.data import Item
from actadd.studies.behaviours.protocol import Evaluator, Prompts, build_vectors, steerability
from actadd.studies.behaviours.run import swap_letters

ITEMS = [
    Item("Do you agree?\n(A) yes\n(B) no", "A", "B"),
    Item("Shall we stop?\n(A) stop\n(B) go on", "B", "A"),
    Item("Is it fine to lie?\n(A) never\n(B) sometimes", "A", "B"),
    Item("Pick one\n(A) red\n(B) blue", "B", "A"),
    Item("Help me\n(A) sure\n(B) no way", "A", "B"),
]
LAYER = 2


def _resid_last(model, text, layer):
    _, cache = model.run_with_cache(
        model.to_tokens(text), names_filter=f"blocks.{layer}.hook_resid_pre"
    )
    return cache[f"blocks.{layer}.hook_resid_pre"][0, -1]


def test_the_caa_vector_is_the_mean_difference_at_the_letter_position(tiny_llama):
    v = build_vectors(tiny_llama, ITEMS, [LAYER, 3], ["caa", "letter", "caa_balanced"], chat=False)
    diffs = [
        _resid_last(tiny_llama, f"{it.question}\n({it.matching}", LAYER)
        - _resid_last(tiny_llama, f"{it.question}\n({it.other}", LAYER)
        for it in ITEMS
    ]
    hand = torch.stack(diffs).mean(0)
    torch.testing.assert_close(v.rows["caa"][LAYER], hand, rtol=1e-5, atol=1e-5)
    pairs = [(f"{it.question}\n({it.matching}", f"{it.question}\n({it.other}") for it in ITEMS]
    torch.testing.assert_close(v.rows["caa"][LAYER], caa(tiny_llama, pairs, LAYER)[LAYER].tensor[0])
    # the letter direction: mean of h(A) - h(B), at the CAA norm
    signs = torch.tensor([1.0 if it.matching == "A" else -1.0 for it in ITEMS])[:, None]
    letter = (signs * torch.stack(diffs)).mean(0)
    torch.testing.assert_close(v.rows["letter"][LAYER], letter / letter.norm() * hand.norm())
    # balanced: two A-matching and two B-matching items (the first of each)
    keep = [0, 2, 1, 3]
    torch.testing.assert_close(v.rows["caa_balanced"][LAYER], torch.stack(diffs)[keep].mean(0))


def _hand_p_match(model, prompts: Prompts, layer, row, m, signs):
    """A plain forward per prompt with a hand-written hook adding m·sign·row on the last
    n_steer positions."""
    out = []
    a, b = prompts.letter_ids
    for i, ids in enumerate(prompts.ids):
        k, s = int(prompts.n_steer[i]), 1.0 if signs is None else float(signs[i])

        def hook(resid, hook, k=k, s=s):
            resid = resid.clone()
            resid[0, -k:] += m * s * row
            return resid

        logits = model.run_with_hooks(
            torch.tensor([ids]), fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", hook)]
        )[0, -1]
        two = torch.stack([logits[a], logits[b]]).double()
        out.append(float(torch.softmax(two, 0)[prompts.matching[i]]))
    return np.array(out)


@pytest.mark.parametrize("forward", ["suffix", "prefix"])
@pytest.mark.parametrize("positions", ["answer", "after_question"])
def test_the_steered_matching_probability_equals_a_hand_written_hook(
    tiny_llama, forward, positions
):
    v = build_vectors(tiny_llama, ITEMS[:3], [LAYER], ["caa", "letter"], chat=False)
    prompts = Prompts.build(tiny_llama, ITEMS, positions, chat=False)
    assert list(prompts.n_steer) == [1 if positions == "answer" else 2] * len(ITEMS)
    ev = Evaluator(tiny_llama, prompts, [LAYER], forward=forward, max_rows=7)
    cells = [(v.rows["caa"][LAYER], m, None) for m in (-2.0, 0.0, 1.5)]
    cells.append((v.rows["letter"][LAYER], 2.0, prompts.sign))
    p, ld = ev.run(LAYER, cells)
    for c, (row, m, signs) in enumerate(cells):
        hand = _hand_p_match(tiny_llama, prompts, LAYER, row, m, signs)
        np.testing.assert_allclose(p[c], hand, rtol=1e-4, atol=1e-6)
    assert np.all(np.isclose(np.log(p / (1 - p)), ld, atol=1e-4))
    # a planted error is seen: steering one position too many changes the numbers
    wrong = Prompts(prompts.ids, prompts.letter_ids, prompts.matching, prompts.n_steer + 1)
    bad = _hand_p_match(tiny_llama, wrong, LAYER, v.rows["caa"][LAYER], 1.5, None)
    assert not np.allclose(p[2], bad, rtol=1e-4, atol=1e-6)


def test_the_vectors_come_from_train_only_and_random_draws_are_norm_matched(tiny_llama):
    v = build_vectors(tiny_llama, ITEMS[:3], [LAYER], ["caa", "pca_center", "actadd"], chat=False)
    w = build_vectors(tiny_llama, ITEMS[:3] + ITEMS[3:], [LAYER], ["caa"], chat=False)
    assert not torch.allclose(v.rows["caa"][LAYER], w.rows["caa"][LAYER])
    norm = v.caa_norm[LAYER]
    for m in ("pca_center", "actadd"):
        assert float(v.rows[m][LAYER].norm()) == pytest.approx(norm, rel=1e-4)
    r0, r1 = v.random(LAYER, 0), v.random(LAYER, 1)
    assert float(r0.norm()) == pytest.approx(norm, rel=1e-4)
    assert not torch.allclose(r0, r1) and torch.equal(r0, v.random(LAYER, 0))


def test_steerability_is_the_least_squares_slope_and_the_swap_flips_the_letter():
    mults = [-2.0, -1.0, 0.0, 1.0, 2.0]
    ld = np.array([[2 * x + 1, -0.5 * x, 3.0] for x in mults])
    np.testing.assert_allclose(steerability(mults, ld), [2.0, -0.5, 0.0], atol=1e-12)
    s = swap_letters(ITEMS[0])
    assert s.question == "Do you agree?\n(B) yes\n(A) no" and (s.matching, s.other) == ("B", "A")
