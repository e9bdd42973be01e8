"""The token-injection comparison (actadd.studies.token_injection.comparison) on tiny random
models, exact checks.

- token injection is a plain forward on the concatenated ids, several per forward;
- the fast paths (cached prefix, many conditions per forward, per-text placements) equal plain
  forwards; the contextual patch equals a hand-built hooked forward;
- the runner's table has the stated shape and internal identities, its random control and null
  draws are reproducible from the seed, its summaries cover every cell; bad input fails clearly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from actadd import ConfigError, SteeringError, SteeringVector
from actadd.config import Pair
from actadd.core.metrics import kl_div, log_probs, target_token_ids
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement
from actadd.runtime.hooks import resid_pre
from actadd.studies.token_injection import (
    PairSetting,
    PromptBatch,
    Settings,
    aligned_arms,
    compare_conditions,
    contextual_patch,
    dose_response_summary,
    effect_metrics,
    inject_tokens,
    layer_summary,
    next_token_logprobs,
    pairs_from_config,
    place_ids,
    random_like,
    residual_random_like,
    transplant_vector,
)
from actadd.studies.token_injection.conditions import seed_of
from actadd.studies.token_injection.forwards import _text_resid
from actadd.studies.token_injection.pair_conditions import _conditions

PROMPTS = ["hello world there", "the quick brown fox"]


def last_logprobs(model, ids):
    return log_probs(model(torch.tensor([ids]))[0, -1])


def test_injected_logits_equal_a_plain_forward_on_the_concatenated_tokens(tiny_model):
    lists = [
        inject_tokens(tiny_model, p, "cat", mode)
        for p in PROMPTS
        for mode in ("prepend", "append", "replace")
    ]
    got = next_token_logprobs(tiny_model, lists)  # grouped by length, several per forward
    for row, ids in zip(got, lists):
        torch.testing.assert_close(row, last_logprobs(tiny_model, ids), atol=1e-5, rtol=0)


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
    expected |= {"patch", "visible_replace", "visible_insert", "ctxdiff", "ctxdiff_normed"}
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
    # at layer 0 the contextual difference is ActAdd's vector (resid_pre 0 is the embedding)
    for name in ("ctxdiff", "ctxdiff_normed"):
        assert np.allclose(
            at0[at0.condition == name].kl.values,
            at0[at0.condition == "actadd"].kl.values,
            atol=1e-5,
        )
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
