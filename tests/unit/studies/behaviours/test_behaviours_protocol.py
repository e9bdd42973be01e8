"""The CAA protocol on a tiny model: the vectors and the steered measure against hand
computations (a plain forward per prompt, a hand-written hook)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actadd.core.methods import caa
from actadd.studies.behaviours.data import Item
from actadd.studies.behaviours.protocol import (
    Evaluator,
    Prompts,
    build_vectors,
    letter_unembedding,
    steerability,
)
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
    # the residual letter direction (cosines only): mean of h(A) - h(B)
    signs = torch.tensor([1.0 if it.matching == "A" else -1.0 for it in ITEMS])[:, None]
    torch.testing.assert_close(v.letter_residual[LAYER], (signs * torch.stack(diffs)).mean(0))
    # the control: w_ln * (W_U[:, A] - W_U[:, B]), at the CAA norm
    a, b = (tiny_llama.to_single_token(x) for x in "AB")
    g = tiny_llama.ln_final.w * (tiny_llama.W_U[:, a] - tiny_llama.W_U[:, b])
    torch.testing.assert_close(v.rows["letter"][LAYER], g / g.norm() * hand.norm())
    # balanced: two A-matching and two B-matching items (the first of each)
    keep = [0, 2, 1, 3]
    torch.testing.assert_close(v.rows["caa_balanced"][LAYER], torch.stack(diffs)[keep].mean(0))


def _hand_p_match(model, prompts: Prompts, layer, row, m, signs, shift=0):
    """A plain forward per prompt with a hand-written hook adding m·sign·row on the last
    n_steer positions (``shift`` 1: on one more position; -1: all one position early)."""
    out = []
    a, b = prompts.letter_ids
    for i, ids in enumerate(prompts.ids):
        k, s = int(prompts.n_steer[i]), 1.0 if signs is None else float(signs[i])
        lo, hi = len(ids) - k - abs(shift), len(ids) - (1 if shift < 0 else 0)

        def hook(resid, hook, lo=lo, hi=hi, s=s):
            resid = resid.clone()
            resid[0, lo:hi] += m * s * row
            return resid

        logits = model.run_with_hooks(
            torch.tensor([ids]), fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", hook)]
        )[0, -1]
        two = torch.stack([logits[a], logits[b]]).double()
        out.append(float(torch.softmax(two, 0)[prompts.matching[i]]))
    return np.array(out)


@pytest.mark.parametrize("forward", ["suffix", "suffix_repeat", "prefix"])
@pytest.mark.parametrize("positions", ["answer", "after_question"])
@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gemma3"])
def test_the_steered_matching_probability_equals_a_hand_written_hook(
    request, name, forward, positions
):
    """Every forward, at several layers (tiny-gemma3's 0-2 attend through a 4-token
    window, so the prefix's window is exercised), cells of several multipliers and signs,
    in chunks of uneven size (``max_rows`` 7 over 5 prompts): the matching-letter
    probability equals a plain forward of the whole prompt with a hand-written hook."""
    model = request.getfixturevalue(name)
    layers = [0, LAYER, model.cfg.n_layers - 1]
    v = build_vectors(model, ITEMS[:3], layers, ["caa", "letter"], chat=False)
    prompts = Prompts.build(model, ITEMS, positions, chat=False)
    assert list(prompts.n_steer) == [1 if positions == "answer" else 2] * len(ITEMS)
    ev = Evaluator(model, prompts, layers, forward=forward, max_rows=7)
    for layer in layers:
        row = v.rows["caa"][layer]
        cells = [(row, m, None) for m in (-2.0, 0.0, 1.5, 4.0)]
        cells.append((v.rows["letter"][layer], 2.0, prompts.sign))
        p, ld = ev.run(layer, cells)
        for c, (r, m, signs) in enumerate(cells):
            hand = _hand_p_match(model, prompts, layer, r, m, signs)
            np.testing.assert_allclose(p[c], hand, rtol=1e-4, atol=1e-6)
        assert np.all(np.isclose(np.log(p / (1 - p)), ld, atol=1e-4))
        # a planted error is seen: the vector on one position too many, or one too early
        for shift in (1, -1):
            bad = _hand_p_match(model, prompts, layer, row, 1.5, None, shift=shift)
            assert not np.allclose(p[2], bad, rtol=1e-4, atol=1e-6), shift


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


@pytest.mark.parametrize("layer", [0, LAYER, 3])
def test_the_letter_control_raises_the_matching_letter_and_a_planted_sign_flip_is_caught(
    tiny_llama, layer
):
    """The positive control knows the answer: at +1 (and at every positive multiplier,
    where it reaches the output unchanged) it raises P(matching letter) on every question,
    at every layer of the tiny model; with its signs flipped (a planted bug) it lowers it."""
    v = build_vectors(tiny_llama, ITEMS[:3], [layer], ["caa", "letter"], chat=False)
    prompts = Prompts.build(tiny_llama, ITEMS, "answer", chat=False)
    ev = Evaluator(tiny_llama, prompts, [layer])
    row = v.rows["letter"][layer]
    p, _ = ev.run(layer, [(row, 0.0, None), (row, 1.0, prompts.sign), (row, 1.0, -prompts.sign)])
    assert np.all(p[1] > p[0]), (p[0], p[1])
    assert np.all(p[2] < p[0]), (p[0], p[2])


def test_on_the_final_residual_the_unembedding_direction_raises_the_letter_by_construction(
    tiny_llama,
):
    """The docstring's argument, checked on real residuals: the final norm then the two
    letters' logits, with α·g added, for random α > 0, every prompt: the logit difference
    A − B grows (and falls with α < 0)."""
    prompts = Prompts.build(tiny_llama, ITEMS, "answer", chat=False)
    g = letter_unembedding(tiny_llama, prompts.letter_ids)
    a, b = prompts.letter_ids
    n = tiny_llama.cfg.n_layers
    for ids in prompts.ids:
        _, cache = tiny_llama.run_with_cache(
            torch.tensor([ids]), names_filter=f"blocks.{n - 1}.hook_resid_post"
        )
        x = cache[f"blocks.{n - 1}.hook_resid_post"][0, -1]

        def diff(alpha, x=x):
            lg = tiny_llama.unembed(tiny_llama.ln_final((x + alpha * g)[None, None]))[0, 0]
            return float(lg[a] - lg[b])

        base = diff(0.0)
        for alpha in (0.01, 0.3, 2.0, 50.0):
            assert diff(alpha) > base > diff(-alpha)
