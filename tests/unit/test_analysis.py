"""The token-injection instruments each do what they claim (tiny random models, exact checks).

- embedding-only addition at layer 0 is the tokens' embedding difference, added exactly;
- token injection is a plain forward on the concatenated ids;
- a transplant from S = L with scale 1 is ActAdd; other scales are the typical-norm ratio;
- the random control has the stated per-row norms and comes from the given generator only;
- the dimension slice keeps exactly the stated dimensions;
- the fast paths (cached prefix, many conditions per forward) equal plain forwards;
- the runner's table has the stated shape and internal identities; bad input fails clearly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from actadd import ConfigError, SteeringError, SteeringVector, steering
from actadd.config import Pair
from actadd.core.metrics import kl_div, log_probs, target_token_ids
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement
from actadd.lab.stats import pearson
from actadd.runtime.hooks import resid_pre
from actadd.studies.token_injection import (
    PairSetting,
    PromptBatch,
    Settings,
    aligned_arms,
    compare_conditions,
    contextual_patch,
    dim_slice,
    dose_response_summary,
    effect_metrics,
    embedding_cosines,
    embedding_random_like,
    embedding_vector,
    hidden_below,
    inject_tokens,
    layer_summary,
    logit_lens,
    match_row_norms,
    next_token_logprobs,
    norm_ratios,
    pairs_from_config,
    per_prompt_draws,
    place_ids,
    random_like,
    residual_random_like,
    transplant_vector,
    typical_norm,
    vector_diagnostics,
)
from actadd.studies.token_injection.conditions import seed_of
from actadd.studies.token_injection.forwards import _text_resid
from actadd.studies.token_injection.pair_conditions import _conditions
from actadd.studies.token_injection.specificity import concept_pairs, specificity_matrix

PROMPTS = ["hello world there", "the quick brown fox"]


def last_logprobs(model, ids):
    return log_probs(model(torch.tensor([ids]))[0, -1])


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


def test_injected_logits_equal_a_plain_forward_on_the_concatenated_tokens(tiny_model):
    lists = [
        inject_tokens(tiny_model, p, "cat", mode)
        for p in PROMPTS
        for mode in ("prepend", "append", "replace")
    ]
    got = next_token_logprobs(tiny_model, lists)  # grouped by length, several per forward
    for row, ids in zip(got, lists):
        torch.testing.assert_close(row, last_logprobs(tiny_model, ids), atol=1e-5, rtol=0)


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


def test_typical_norm_leaves_out_the_leading_token(tiny_llama):
    layer = 2
    tokens = tiny_llama.to_tokens(PROMPTS[0])
    r = tiny_llama(tokens, stop_at_layer=layer)[0]
    assert math.isclose(
        typical_norm(tiny_llama, PROMPTS[:1], layer), float(r[1:].norm(dim=-1).mean()), rel_tol=1e-6
    )


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


# ---------------------------------------------------------------------- fast paths


def test_prompt_batch_matches_plain_forwards_for_every_start_layer(tiny_model):
    batch = PromptBatch(tiny_model, PROMPTS + ["ab"])
    lists = batch.token_lists
    torch.testing.assert_close(
        batch.base, next_token_logprobs(tiny_model, lists), atol=1e-5, rtol=0
    )
    vecs = [SteeringVector.from_pair(tiny_model, "ab", "x", layer, 2.0) for layer in (0, 2, 4)]
    many = batch.logprobs_many([[vecs[0]], [vecs[1]], None, [vecs[2]], vecs[1:]])
    expected = [
        next_token_logprobs(tiny_model, lists, v)
        for v in ([vecs[0]], [vecs[1]], None, [vecs[2]], vecs[1:])
    ]
    for got, want in zip(many, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert not torch.allclose(many[0], many[2])  # steering changed something


# ---------------------------------------------------------------------- metrics


def test_effect_metrics_identities():
    g = torch.Generator().manual_seed(0)
    base, cond, other = (torch.randn(3, 50, generator=g) for _ in range(3))
    base, cond, other = log_probs(base), log_probs(cond), log_probs(other)
    same = effect_metrics(base, base, [1, 2])
    assert np.allclose(same["kl"], 0, atol=1e-6) and np.allclose(same["target_logprob_delta"], 0)
    m = effect_metrics(base, cond, [1, 2], ref=(base, cond), inject=(base, other), k=5)
    assert np.allclose(m["effect_corr"], 1) and np.allclose(m["topk_overlap"], 1)
    assert np.allclose(m["kl"], kl_div(cond, base).numpy())
    d, e = (cond - base).numpy(), (other - base).numpy()
    assert np.allclose(m["inject_corr"], [np.corrcoef(d[i], e[i])[0, 1] for i in range(3)])
    assert np.allclose(
        m["target_logprob_delta"],
        (torch.logsumexp(cond[:, [1, 2]], -1) - torch.logsumexp(base[:, [1, 2]], -1)).numpy(),
    )


# ---------------------------------------------------------------------- the runner

PAIRS = [
    PairSetting("ab", Pair("abc", "xy"), 2.0, ("a", "b"), sum_with="q"),
    PairSetting("q", Pair("q", ""), 1.0, ("q",)),
]
SETTINGS = dict(
    prompts=PROMPTS,
    neutral=["some neutral text"],
    layers=[0, 2],
    transplant_sources=[0],
    sweep_targets=[3],
    dose_layers=[2],
    dose_scales=[-1.0, 0.5, 1.0],
)


@pytest.fixture(scope="module")
def table(tiny_llama):
    threads = torch.get_num_threads()  # module fixtures run before the one-thread autouse one
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return compare_conditions(tiny_llama, PAIRS, Settings(**SETTINGS), progress=False)
    finally:
        torch.set_num_threads(threads)


def test_runner_table_is_tidy_with_one_row_per_text_plus_a_mean(table):
    n_texts = len(PROMPTS) + 1
    counts = table.groupby(["pair", "layer", "condition", "source_layer", "coeff"], dropna=False)
    assert (counts.size() == n_texts + 1).all()
    assert set(table.prompt_kind) == {"user", "neutral", "mean"}
    assert set(table.layer) == {0, 2, 3}
    expected = {"actadd", "random", "slice", "transplant", "coeff", "sum", "embedding_l0"}
    expected |= {"patch", "visible_replace", "visible_insert"}
    expected |= {
        f"inject_{m}"
        for m in ("prepend", "append", "replace", "insert", "prepend_contrast", "replace_contrast")
    }
    assert set(table.condition) == expected
    assert not table.condition.str.startswith("_").any()
    for col in ("kl", "target_logprob_delta", "effect_corr", "topk_overlap", "inject_corr"):
        assert col in table


def test_runner_rows_satisfy_the_identities_they_claim(table):
    t = table
    user = t[t.prompt_kind == "user"]
    a = user[user.condition == "actadd"]
    assert np.allclose(a.effect_corr, 1) and np.allclose(a.topk_overlap, 1)
    # the mean row is the mean over user prompts, neutral texts left out
    g = t[(t.condition == "actadd") & (t.pair == "ab") & (t.layer == 2)]
    mean = g[g.prompt_kind == "mean"].kl.item()
    assert math.isclose(mean, g[g.prompt_kind == "user"].kl.mean(), rel_tol=1e-9)
    # transplant S = T (= 3) reuses ActAdd at 3; layer-0 embedding addition = ActAdd at 0
    tr = user[(user.condition == "transplant") & (user.layer == 3) & (user.source_layer == 3)]
    ad = user[(user.condition == "actadd") & (user.layer == 3)]
    assert np.allclose(tr.kl.values, ad.kl.values) and (tr.scale == 1).all()
    emb = user[(user.condition == "embedding_l0") & (user.layer == 0)]
    assert np.allclose(emb.effect_corr, 1, atol=1e-4)
    # dose: scale 1 is the reference coefficient; coeff = scale × c
    d = user[(user.condition == "coeff") & (user.pair == "ab")]
    assert np.allclose(d.coeff, d.scale * 2.0)
    one = d[d.scale == 1]
    ref = user[(user.condition == "actadd") & (user.pair == "ab") & (user.layer == 2)]
    assert np.allclose(one.kl.values, ref.kl.values, atol=1e-5)
    # an empty negative side is the pad in the contrast arm, not nothing
    q = user[user.pair == "q"]
    assert not np.allclose(
        q[q.condition == "inject_prepend_contrast"].kl.values,
        q[q.condition == "inject_prepend"].kl.values,
    )
    # at layer 0 the contextual patch and the tokens visible from layer 0 are the tokens
    at0 = user[user.layer == 0]
    for name in ("patch", "visible_replace"):
        assert np.allclose(
            at0[at0.condition == name].kl.values,
            at0[at0.condition == "inject_replace"].kl.values,
            atol=1e-5,
        )
    assert np.allclose(user[user.condition == "inject_replace"].replace_corr, 1)
    s = user[user.condition == "sum"]
    assert len(s) and s.additive_corr.notna().all() and (s.other_pair == "q").all()


def test_random_control_is_reproducible_from_the_seed(tiny_llama):
    settings = Settings(
        prompts=PROMPTS,
        layers=[2],
        injections=[],
        embedding=False,
        transplant_sources=[],
        slice_frac=None,
        seed=3,
    )
    pair = [PairSetting("ab", Pair("abc", "xy"), 2.0, ("a", "b"))]
    a, b = (compare_conditions(tiny_llama, pair, settings, progress=False) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    other = Settings(**{**settings.__dict__, "seed": 4})
    c = compare_conditions(tiny_llama, pair, other, progress=False)
    assert not np.allclose(a[a.condition == "random"].kl, c[c.condition == "random"].kl)


def test_summaries(table):
    s = layer_summary(table)
    assert {"kl_sem", "n_prompts", "neutral_kl"} <= set(s.columns)
    assert (s.n_prompts == len(PROMPTS)).all()
    d = dose_response_summary(table)
    assert set(d.pair) == {"ab", "q"} and (d.n_coeffs == 3).all()


def test_dose_response_summary_on_a_known_curve():
    scales = np.array([-1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0])
    df = pd.DataFrame(
        dict(
            condition="coeff",
            prompt_kind="mean",
            pair="p",
            layer=1,
            scale=scales,
            target_logprob_delta=2 * scales,
            kl=0.3 * scales**2,
        )
    )
    row = dose_response_summary(df, near=1.0).iloc[0]
    assert row.monotonic and math.isclose(row.spearman, 1.0)
    assert math.isclose(row.slope_near0, 2.0) and math.isclose(row.r2_near0, 1.0)
    assert math.isclose(row.odd_symmetry, 1.0) and math.isclose(row.kl_exponent, 2.0)
    assert row.peak_scale == 2.0


# ---------------------------------------------------------------------- diagnostics


def test_norm_ratios_compare_each_row_with_the_prompt_position_it_lands_on(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "abcd", "x", 2, 2.0)
    df = norm_ratios(tiny_llama, v, PROMPTS)
    r = [tiny_llama(tiny_llama.to_tokens(p), stop_at_layer=2)[0].norm(dim=-1) for p in PROMPTS]
    j = 3
    expected = float(v.norms()[j]) / float((r[0][j] + r[1][j]) / 2)
    assert math.isclose(df.norm_ratio[j], expected, rel_tol=1e-5)
    assert df.vec_norm[0] == 0  # the shared leading token


def test_embedding_cosines_at_layer0_point_exactly_at_the_token_difference(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "ab", "xy", 0)
    df = embedding_cosines(tiny_llama, v, "ab", "xy")
    assert list(df.token_pos) == ["<|bos|>", "a", "b"]
    assert np.allclose(df.cos_diff[1:], 1.0, atol=1e-5)
    assert np.isnan(df.cos_diff[0])
    assert (df.pos_token_rank[1:] == 0).all()  # each row is closest to its own p+ token


def test_logit_lens_is_the_unembedded_final_norm_of_the_rows(tiny_gpt2):
    v = SteeringVector.from_pair(tiny_gpt2, "abc", "x", 2)
    df = logit_lens(tiny_gpt2, v, k=5)
    x = v.tensor[1:].sum(0)[None, None]
    logits = tiny_gpt2.unembed(tiny_gpt2.ln_final(x))[0, 0]
    assert list(df.token_id) == logits.topk(5).indices.tolist()
    assert list(df["rank"]) == list(range(5)) and (df.row == "sum").all()
    assert len(logit_lens(tiny_gpt2, v, k=3, rows="each")) == 3 * v.k


def test_vector_diagnostics_covers_every_layer_and_row(tiny_llama):
    df = vector_diagnostics(tiny_llama, "abc", "x", [0, 2, 4], PROMPTS, coeff=2.0)
    assert len(df) == 3 * 4 and set(df.layer) == {0, 2, 4} and (df.coeff == 2.0).all()


# ---------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error(tiny_llama):
    m = tiny_llama
    with pytest.raises(SteeringError, match=r"allowed 0\.\.4"):
        transplant_vector(m, "ab", "x", source=5, target=2, norm_texts=PROMPTS)
    with pytest.raises(SteeringError, match="norm_texts"):
        transplant_vector(m, "ab", "x", source=0, target=2)
    with pytest.raises(ConfigError, match="prompt set is empty"):
        Settings(prompts=[], layers=[1])
    with pytest.raises(SteeringError, match="has 4 layers"):
        compare_conditions(m, PAIRS, Settings(prompts=PROMPTS, layers=[1], sweep_targets=[9]))
    with pytest.raises(ConfigError, match="Unknown injections"):
        Settings(prompts=PROMPTS, layers=[1], injections=["middle"])
    with pytest.raises(ConfigError, match="not a pair of this run"):
        compare_conditions(
            m,
            [PairSetting("a", Pair("a", "b"), 1, ("a",), sum_with="zz")],
            Settings(prompts=PROMPTS, layers=[1]),
        )
    with pytest.raises(ConfigError, match="both sides are empty"):
        PairSetting("e", Pair("", ""), 1.0, ("a",))
    with pytest.raises(ConfigError, match="unknown preset"):
        PairSetting("e", Pair("a", "b"), 1.0, "cats")
    with pytest.raises(SteeringError, match="at least one prompt token must remain"):
        inject_tokens(m, "ab", "abcdef", "replace")
    with pytest.raises(SteeringError, match="Unknown injection mode"):
        inject_tokens(m, "ab", "x", "sideways")
    with pytest.raises(SteeringError, match="torch.Generator"):
        random_like(SteeringVector.from_pair(m, "a", "b", 1), 0)
    with pytest.raises(ConfigError, match=r"\[settings\]: unknown key\(s\) \[.layer.\]"):
        Settings.from_dict(dict(prompts=PROMPTS, layers=[1], layer=[2]))
    with pytest.raises(ConfigError, match="missing keys"):
        pairs_from_config([dict(name="x", positive="a")])


# ---------------------------------------------------------------------- v2: same positions


def test_pad_is_the_empty_contrast_arm_of_the_aligned_pair(tiny_llama):
    plus, minus = aligned_arms(tiny_llama, "ab", "", pad_token="z")
    z = tiny_llama.to_tokens("z", prepend_bos=False)[0].tolist()
    assert plus == tiny_llama.to_tokens("ab", prepend_bos=False)[0].tolist()
    assert minus == z * len(plus)
    ids = tiny_llama.to_tokens("hello world")[0].tolist()
    assert place_ids(ids, plus, "replace") == ids[:1] + plus + ids[1 + len(plus) :]
    assert place_ids(ids, plus, "insert") == ids[:1] + plus + ids[1:]


def test_contextual_patch_equals_a_hand_built_hooked_forward(tiny_llama):
    model, layer = tiny_llama, 2
    prompts = ["hello world there", "the quick brown fox", "tiny"]
    batch = PromptBatch(model, prompts)
    plus, _ = aligned_arms(model, "ab", "", pad_token="z")
    k = 1 + len(plus)
    injected_lists = [place_ids(t, plus, "replace") for t in batch.token_lists]
    injected = PrefixBatch(model, injected_lists, padding="by_length")
    got = batch.logprobs(contextual_patch(model, batch, injected, layer, k))
    for i, (clean, inj) in enumerate(zip(batch.token_lists, injected_lists)):
        _, cache = model.run_with_cache(torch.tensor([inj]), names_filter=[resid_pre(model, 2)])
        source = cache[resid_pre(model, layer)][0, :k]

        def patch(resid, hook, source=source):
            resid = resid.clone()
            resid[0, :k] = source
            return resid

        logits = model.run_with_hooks(
            torch.tensor([clean]), fwd_hooks=[(resid_pre(model, layer), patch)]
        )
        torch.testing.assert_close(got[i], log_probs(logits[0, -1]), atol=1e-4, rtol=0)


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


def test_transplants_are_norm_matched_per_row(tiny_llama):
    settings = Settings(
        prompts=PROMPTS,
        layers=[3],
        transplant_sources=[0, 1],
        injections=["prepend"],
        embedding=False,
        random_control=False,
        slice_frac=None,
    )
    pair = PAIRS[0]
    units = {pair.name: SteeringVector.from_pair_layers(tiny_llama, "abc", "xy", [0, 1, 3])}
    conds = _conditions(pair, 0, 3, settings, units, {}, {})
    ref = conds[0].vectors[0]
    for c in conds[1:]:
        torch.testing.assert_close(c.vectors[0].norms()[1:], ref.norms()[1:], atol=1e-4, rtol=1e-5)


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


def test_per_text_placements_in_a_batch_equal_each_text_alone(tiny_llama):
    prompts = ["hello world there", "the quick brown fox", "tiny", "abcd efg"]
    batch = PromptBatch(tiny_llama, prompts)
    vecs = [SteeringVector.from_pair(tiny_llama, "ab", "x", 2, 1.0 + i) for i in range(4)]
    got = batch.logprobs([Placement(v, "front", (i,)) for i, v in enumerate(vecs)])
    for i, v in enumerate(vecs):
        alone = next_token_logprobs(tiny_llama, [batch.token_lists[i]], v)[0]
        torch.testing.assert_close(got[i], alone, atol=1e-5, rtol=0)


def test_null_draws_table_and_mean_rows(tiny_llama):
    settings = Settings(
        prompts=PROMPTS,
        layers=[2],
        injections=["prepend", "replace"],
        embedding=False,
        transplant_sources=[],
        null_draws=3,
        control_words=["z"],
    )
    df, nulls = compare_conditions(
        tiny_llama, PAIRS[1:], settings, progress=False, return_nulls=True
    )
    assert len(nulls) == 2 * 3 and set(nulls.null) == {"residual", "embedding"}
    user = df[df.prompt_kind == "user"]
    res = user[user.condition == "null_residual"]
    assert (res.draws == 3).all() and res.replace_corr.notna().all()
    mean_over_draws = nulls[nulls.null == "residual"].replace_corr.mean()
    assert math.isclose(res.replace_corr.mean(), mean_over_draws, rel_tol=1e-6)
    a = user[user.condition == "actadd"]
    np.testing.assert_allclose(
        a.target_vs_control, a.target_logprob_delta - a.control_logprob_delta
    )


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


PER_PROMPT = ["hello world there", "the quick brown fox", "abcd efg hij", "one two three four"]


def test_a_prompts_null_equals_a_single_prompt_forward_with_its_own_draw(tiny_llama):
    layer, pair = 2, PAIRS[1]
    settings = Settings(
        prompts=PER_PROMPT,
        neutral=[],
        layers=[layer],
        injections=["prepend", "replace"],
        embedding=False,
        transplant_sources=[],
        random_control=False,
        slice_frac=None,
        null_draws_per_prompt=2,
        control_words=["z"],
    )
    df, nulls = compare_conditions(tiny_llama, [pair], settings, progress=False, return_nulls=True)
    n = len(PER_PROMPT)
    assert len(nulls) == 2 * n * 2 and sorted(set(nulls.draw)) == list(range(2 * n))
    user = df[df.prompt_kind == "user"].set_index(["condition", "prompt_index"])
    res = user.loc["null_residual"]
    assert (res.draws == 2 * n).all() and (res.draws_per_prompt == 2).all()
    assert res.replace_corr.std() > 0
    # the direct computation: prompt t alone, steered by its own draws
    batch = PromptBatch(tiny_llama, PER_PROMPT)
    actadd = pair.vector(tiny_llama, layer)
    rows = torch.cat([r[1:] for r in _text_resid(batch, layer)])
    plus, _ = aligned_arms(tiny_llama, pair.positive, pair.negative, pair.equalize, pair.pad_token)
    ids = target_token_ids(tiny_llama, pair.target_words, strict=False)
    for t, toks in enumerate(batch.token_lists):
        gen = torch.Generator().manual_seed(seed_of(settings.seed + 1, 0, layer, 0, t))
        base = next_token_logprobs(tiny_llama, [toks])
        rep = next_token_logprobs(tiny_llama, [place_ids(toks, plus, "replace")])
        corr, tgt = [], []
        for j in range(2):
            lp = next_token_logprobs(tiny_llama, [toks], residual_random_like(actadd, rows, gen))
            m = effect_metrics(base, lp, ids, replace=(base, rep))
            corr.append(m["replace_corr"][0])
            tgt.append(m["target_logprob_delta"][0])
            d = nulls[(nulls.null == "residual") & (nulls.draw == 2 * t + j)]
            assert d.prompt_index.tolist() == [t]
            assert math.isclose(d.replace_corr.iloc[0], corr[-1], rel_tol=1e-4, abs_tol=1e-5)
        assert math.isclose(res.loc[t].replace_corr, np.mean(corr), rel_tol=1e-4, abs_tol=1e-5)
        assert math.isclose(
            res.loc[t].target_logprob_delta, np.mean(tgt), rel_tol=1e-4, abs_tol=1e-5
        )


def test_specificity_per_prompt_nulls_deal_each_prompt_its_own_draws(tiny_llama):
    pairs = concept_pairs(["a", "b", "c"], 2.0, "z")
    kw = dict(null_words=["x", "y", "k"], null_coeff=2.0, null_pad="z", control_words=["q"])
    res = specificity_matrix(
        tiny_llama, PER_PROMPT, pairs, [1], null_draws_per_prompt=1, progress=False, **kw
    )
    n, J = len(PER_PROMPT), len(pairs)
    nulls, draws = res.nulls, res.draws
    assert set(nulls.null) == {"words", "residual", "embedding"}
    assert (nulls.draws_per_prompt == 1).all()
    assert (nulls[nulls.null != "words"].draws == n).all()
    assert (nulls[nulls.null == "words"].draws == 3).all()  # 4 prompts deal all 3 words
    # one draw per prompt: the draw table's value on its prompt is that prompt's null
    d = draws[draws.null == "residual"].sort_values(["actadd", "inject", "prompt_index"])
    m = nulls[nulls.null == "residual"].sort_values(["actadd", "inject", "prompt_index"])
    assert len(d) == len(m) == J * J * n
    np.testing.assert_allclose(d.effect_corr.to_numpy(), m.effect_corr.to_numpy(), rtol=1e-6)
    # prompt t's residual null for concept 0 = a single-prompt forward with its own draw
    batch = PromptBatch(tiny_llama, PER_PROMPT)
    ref = pairs[0].vector(tiny_llama, 1)
    rows = torch.cat([r[1:] for r in _text_resid(batch, 1)])
    plus, _ = aligned_arms(tiny_llama, " a", "", "right", "z")
    for t, toks in enumerate(batch.token_lists):
        gen = torch.Generator().manual_seed(seed_of(2, 0, 1, 0, t))
        base = next_token_logprobs(tiny_llama, [toks])
        lp = next_token_logprobs(tiny_llama, [toks], residual_random_like(ref, rows, gen))
        inj = next_token_logprobs(tiny_llama, [place_ids(toks, plus, "replace")])
        want = float(pearson(lp - base, inj - base)[0])
        got = m[(m.actadd == "a") & (m.inject == "a") & (m.prompt_index == t)].effect_corr
        assert math.isclose(got.iloc[0], want, rel_tol=1e-4, abs_tol=1e-5)
    with pytest.raises(ConfigError, match="not both"):
        specificity_matrix(
            tiny_llama, PER_PROMPT, pairs, [1], null_draws=2, null_draws_per_prompt=1, **kw
        )


def test_null_kinds_pick_the_nulls_and_slice_frac_false_is_off(tiny_llama):
    settings = Settings(
        prompts=PER_PROMPT,
        neutral=[],
        layers=[1],
        injections=["prepend", "replace"],
        embedding=False,
        transplant_sources=[],
        random_control=False,
        slice_frac=False,
        null_draws_per_prompt=1,
        null_kinds=["residual"],
        control_words=["z"],
    )
    assert settings.slice_frac is None
    df, nulls = compare_conditions(
        tiny_llama, PAIRS[1:], settings, progress=False, return_nulls=True
    )
    assert set(nulls.null) == {"residual"} and len(nulls) == len(PER_PROMPT)
    assert "null_embedding" not in set(df.condition) and "slice" not in set(df.condition)
