"""The token-injection conditions (actadd.studies.token_injection.conditions) each do what they
claim (tiny random models, exact checks).

- embedding-only addition at layer 0 is the tokens' embedding difference, added exactly;
- injected ids land where each mode says; tokens hidden below layer L equal a direct
  construction;
- a transplant from S = L with scale 1 is ActAdd; other scales are the typical-norm ratio;
- the random control has the stated per-row norms and comes from the given generator only;
  residual and embedding nulls keep the reference row norms; per-prompt draws are seeded;
- the dimension slice keeps exactly the stated dimensions; bad settings fail clearly.
"""

from __future__ import annotations

import pytest
import torch

from actadd import ConfigError, SteeringError, SteeringVector, steering
from actadd.core.metrics import log_probs
from actadd.runtime.hooks import resid_pre
from actadd.studies.token_injection import (
    Settings,
    aligned_arms,
    dim_slice,
    embedding_random_like,
    embedding_vector,
    hidden_below,
    inject_tokens,
    match_row_norms,
    next_token_logprobs,
    per_prompt_draws,
    place_ids,
    random_like,
    residual_random_like,
    transplant_vector,
    typical_norm,
)
from actadd.studies.token_injection.conditions import seed_of

PROMPTS = ["hello world there", "the quick brown fox"]

# ---------------------------------------------------------------------- embedding-only


def test_embedding_only_at_layer0_adds_exactly_the_one_token_embedding_difference(tiny_llama):
    model = tiny_llama
    a, b = (model.to_tokens(t, prepend_bos=False)[0, 0] for t in ("a", "b"))
    vec = embedding_vector(model, "a", "b", coeff=1.0)
    assert vec.layer == 0 and vec.k == 2
    diff = model.W_E[a] - model.W_E[b]
    assert torch.equal(vec.tensor[0], torch.zeros_like(diff))  # the shared leading token
    assert torch.equal(vec.tensor[1], diff)

    tokens = model.to_tokens("xyz")
    name = resid_pre(model, 0)
    _, clean = model.run_with_cache(tokens, names_filter=name)
    with steering(model, vec):
        _, steered = model.run_with_cache(tokens, names_filter=name)
    expected = clean[name].clone()
    expected[0, 1] += diff
    assert torch.equal(steered[name], expected)


@pytest.mark.parametrize("pad", ["right", "left"])
def test_embedding_vector_equals_the_layer0_pair_vector(tiny_model, pad):
    # resid_pre 0 is the embedding (+ position embedding, which cancels in the difference)
    v = embedding_vector(tiny_model, "abc", "x", coeff=3.0, equalize=pad)
    ref = SteeringVector.from_pair(tiny_model, "abc", "x", 0, 3.0, equalize=pad)
    torch.testing.assert_close(v.tensor, ref.tensor, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------- token injection


def test_inject_tokens_places_the_text_ids_where_each_mode_says(tiny_llama):
    m = tiny_llama
    bos = m.to_tokens("")[0].tolist()
    p = m.to_tokens("wxyz", prepend_bos=False)[0].tolist()
    t = m.to_tokens("ab", prepend_bos=False)[0].tolist()
    assert inject_tokens(m, "wxyz", "ab", "prepend") == bos + t + p
    assert inject_tokens(m, "wxyz", "ab", "append") == bos + p + t
    assert inject_tokens(m, "wxyz", "ab", "replace") == bos + t + p[2:]
    assert inject_tokens(m, "wxyz", "ab", "insert", position=2) == bos + p[:1] + t + p[1:]
    assert inject_tokens(m, "wxyz", "", "prepend") == bos + p


# ---------------------------------------------------------------------- transplants


def test_transplant_from_the_same_layer_with_scale_1_is_actadd(tiny_llama):
    ref = SteeringVector.from_pair(tiny_llama, "abc", "xy", 2, 4.0)
    t = transplant_vector(tiny_llama, "abc", "xy", source=2, target=2, coeff=4.0)
    assert t.layer == 2 and torch.equal(t.tensor, ref.tensor)
    ids = tiny_llama.to_tokens(PROMPTS[1])[0].tolist()
    a, b = (next_token_logprobs(tiny_llama, [ids], v) for v in (ref, t))
    assert torch.equal(a, b)


def test_transplant_is_the_source_difference_rescaled_by_the_typical_norm_ratio(tiny_llama):
    t = transplant_vector(
        tiny_llama, "abc", "xy", source=0, target=3, coeff=2.0, norm_texts=PROMPTS
    )
    scale = typical_norm(tiny_llama, PROMPTS, 3) / typical_norm(tiny_llama, PROMPTS, 0)
    src = SteeringVector.from_pair(tiny_llama, "abc", "xy", 0, 2.0)
    assert t.layer == 3
    torch.testing.assert_close(t.tensor, src.tensor * scale)
    assert scale > 1  # residual norms grow with depth on this model


# ---------------------------------------------------------------------- controls


def test_random_control_has_the_same_row_norms_and_uses_only_its_generator(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2, 3.0)
    state = torch.random.get_rng_state()
    r1 = random_like(v, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    r2 = random_like(v, torch.Generator().manual_seed(7))
    r3 = random_like(v, torch.Generator().manual_seed(8))
    torch.testing.assert_close(r1.norms(), v.norms(), atol=1e-4, rtol=1e-5)
    assert torch.equal(r1.tensor, r2.tensor) and not torch.equal(r1.tensor, r3.tensor)
    assert r1.layer == v.layer and r1.tensor.shape == v.tensor.shape
    cos = torch.nn.functional.cosine_similarity(r1.tensor[1:], v.tensor[1:], dim=-1)
    assert cos.abs().max() < 0.6  # a direction unrelated to the vector's


def test_dim_slice_keeps_exactly_the_first_fraction_of_dimensions(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2)
    s = dim_slice(v, 0.7)
    n = round(0.7 * v.d_model)
    assert torch.equal(s.tensor[:, :n], v.tensor[:, :n])
    assert torch.count_nonzero(s.tensor[:, n:]) == 0
    assert torch.equal(dim_slice(v, slice(10, 20)).tensor[:, 10:20], v.tensor[:, 10:20])
    assert torch.count_nonzero(dim_slice(v, [3]).tensor[:, 4:]) == 0


@pytest.mark.parametrize(
    "dims, match",
    [
        (slice(0, 65), "outside d_model=64"),
        (slice(-1, 10), "outside"),
        (0.0, r"\(0, 1\]"),
        (1.5, r"\(0, 1\]"),
        ([64], "0..63"),
        ("abc", "fraction"),
    ],
)
def test_dim_slice_outside_d_model_is_a_clear_error(tiny_llama, dims, match):
    v = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2)
    with pytest.raises(SteeringError, match=match):
        dim_slice(v, dims)


# ---------------------------------------------------------------------- v2: same positions


def test_pad_is_the_empty_contrast_arm_of_the_aligned_pair(tiny_llama):
    plus, minus = aligned_arms(tiny_llama, "ab", "", pad_token="z")
    z = tiny_llama.to_tokens("z", prepend_bos=False)[0].tolist()
    assert plus == tiny_llama.to_tokens("ab", prepend_bos=False)[0].tolist()
    assert minus == z * len(plus)
    ids = tiny_llama.to_tokens("hello world")[0].tolist()
    assert place_ids(ids, plus, "replace") == ids[:1] + plus + ids[1 + len(plus) :]
    assert place_ids(ids, plus, "insert") == ids[:1] + plus + ids[1:]


def test_visible_only_from_layer_l_equals_a_direct_construction(tiny_llama):
    """Tokens at positions 1..2 hidden from the rest below L: a hand-written attention-score
    hook gives the same logits; from L = 0 it is the plain injection; and it differs from the
    plain injection at L > 0 (the hook does something)."""
    model, layer = tiny_llama, 3
    ids = model.to_tokens("hello world there")[0].tolist()
    hidden = [1, 2]

    def scores_hook(scores, hook):
        scores = scores.clone()
        for q in range(scores.shape[-2]):
            if q not in hidden:
                scores[:, :, q, hidden] = torch.finfo(scores.dtype).min
        return scores

    hooks = [(f"blocks.{b}.attn.hook_attn_scores", scores_hook) for b in range(layer)]
    direct = log_probs(model.run_with_hooks(torch.tensor([ids]), fwd_hooks=hooks)[0, -1])
    with hidden_below(model, hidden, layer):
        got = next_token_logprobs(model, [ids])[0]
    torch.testing.assert_close(got, direct, atol=1e-5, rtol=0)
    plain = next_token_logprobs(model, [ids])[0]
    with hidden_below(model, hidden, 0):
        torch.testing.assert_close(next_token_logprobs(model, [ids])[0], plain)
    assert (got - plain).abs().max() > 1e-3
    # below L the later positions see exactly the prompt without the hidden tokens
    with hidden_below(model, hidden, model.cfg.n_layers):
        _, cache = model.run_with_cache(torch.tensor([ids]))
    _, short = model.run_with_cache(torch.tensor([ids[:1]]))
    torch.testing.assert_close(cache[resid_pre(model, 2)][0, 0], short[resid_pre(model, 2)][0, 0])


def test_per_row_norm_matching_is_exact_and_keeps_zero_rows_zero(tiny_llama):
    ref = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2, 3.0)
    gen = torch.Generator().manual_seed(0)
    src = random_like(ref, gen) * 7.0
    zero = src.tensor.clone()
    zero[1] = 0
    src0 = SteeringVector.from_tensor(zero, 2, src.model_name)
    for vec, skip in ((src, None), (src0, 1)):
        out = match_row_norms(vec, ref)
        want = ref.norms().double()
        got = out.norms().double()
        rows = [r for r in range(ref.k) if r != skip]
        torch.testing.assert_close(got[rows], want[rows], atol=1e-5, rtol=1e-6)
        # directions are the source's (where the reference row is not 0, e.g. the BOS row)
        rows = [r for r in rows if want[r] > 1e-6]
        cos = torch.nn.functional.cosine_similarity(out.tensor[rows], vec.tensor[rows], dim=-1)
        torch.testing.assert_close(cos, torch.ones_like(cos), atol=1e-5, rtol=0)
        if skip is not None:
            assert float(out.tensor[skip].abs().max()) == 0.0


def test_nulls_come_from_the_residual_distribution_with_the_reference_row_norms(tiny_llama):
    ref = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2, 3.0)
    # residual rows confined to a 2-dimensional subspace: every draw must lie in it
    basis = torch.randn(2, ref.d_model, generator=torch.Generator().manual_seed(1))
    rows = torch.randn(50, 2, generator=torch.Generator().manual_seed(2)) @ basis + 5 * basis[0]
    draw = residual_random_like(ref, rows, torch.Generator().manual_seed(3))
    q, _ = torch.linalg.qr(basis.T.double())
    t = draw.tensor.double()
    torch.testing.assert_close(t - (t @ q) @ q.T, torch.zeros_like(t), atol=1e-4, rtol=0)
    torch.testing.assert_close(draw.norms()[1:], ref.norms()[1:], atol=1e-4, rtol=1e-5)
    again = residual_random_like(ref, rows, torch.Generator().manual_seed(3))
    assert torch.equal(draw.tensor, again.tensor)
    emb = embedding_random_like(tiny_llama, ref, [3, 5, 7], torch.Generator().manual_seed(4))
    torch.testing.assert_close(emb.norms()[1:], ref.norms()[1:], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(transplant_norm="global"), "transplant_norm"),
        (dict(null_draws=-1), "null_draws"),
        (dict(null_draws_per_prompt=-1), "null_draws_per_prompt"),
        (dict(null_draws=2, null_draws_per_prompt=1), "not both"),
        (dict(null_kinds=["isotropic"]), "null_kinds"),
        (dict(injections=["swap"]), "Unknown injections"),
    ],
)
def test_bad_v2_settings_are_one_clear_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        Settings(prompts=PROMPTS, layers=[1], **kw)


# ---------------------------------------------------------------------- per-prompt null draws


def test_per_prompt_draws_differ_across_prompts_are_seeded_and_norm_matched_per_row(tiny_llama):
    ref = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2, 3.0)
    rows = torch.randn(40, ref.d_model, generator=torch.Generator().manual_seed(0))
    fn = lambda g: residual_random_like(ref, rows, g)  # noqa: E731
    conds = per_prompt_draws(fn, 4, 2, (7, 1))
    assert len(conds) == 2 and all(len(c) == 4 for c in conds)
    assert [p.rows for p in conds[0]] == [(0,), (1,), (2,), (3,)]
    tensors = [p.vector.tensor for c in conds for p in c]
    for i in range(len(tensors)):
        for j in range(i):
            assert not torch.allclose(tensors[i], tensors[j])  # 8 different draws
    for c in conds:
        for p in c:  # every row, the leading (zero) row included
            torch.testing.assert_close(p.vector.norms(), ref.norms(), atol=1e-4, rtol=1e-6)
    again = per_prompt_draws(fn, 4, 2, (7, 1))
    fewer = per_prompt_draws(fn, 2, 2, (7, 1))  # a prompt's draws ignore the other prompts
    other = per_prompt_draws(fn, 4, 2, (8, 1))
    for j in range(2):
        for t in range(4):
            assert torch.equal(conds[j][t].vector.tensor, again[j][t].vector.tensor)
            assert not torch.allclose(conds[j][t].vector.tensor, other[j][t].vector.tensor)
        for t in range(2):
            assert torch.equal(conds[j][t].vector.tensor, fewer[j][t].vector.tensor)
    # text t's draws are the generator seeded by (*seed, t), used in order
    gen = torch.Generator().manual_seed(seed_of(7, 1, 3))
    assert torch.equal(fn(gen).tensor, conds[0][3].vector.tensor)
    assert torch.equal(fn(gen).tensor, conds[1][3].vector.tensor)
    with pytest.raises(SteeringError, match="per_prompt"):
        per_prompt_draws(fn, 4, 0, (7,))
