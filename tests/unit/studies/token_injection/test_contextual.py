"""The contextual-difference arm of token injection
(actadd.studies.token_injection.contextual) on tiny-llama, exact checks.

- the contextual rows equal a hand-computed h_L difference read with hooks, at the arms'
  positions after each prompt, and differ from the rows one position off (a planted offset);
- read at the front instead, the difference is ActAdd's vector (causal attention);
- the arm adds exactly those rows at the prompt's front positions and leaves every other
  position, and every layer below, bit-for-bit as it was; the checker that says so catches a
  placement one position off;
- the runner's ctxdiff rows equal a hand-built hooked forward; ``ctxdiff_normed`` has ActAdd's
  row norms; the Jensen–Shannon column has its identities.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actadd.config import Pair
from actadd.core.metrics import log_probs
from actadd.core.steering import Placement, steering
from actadd.errors import SteeringError
from actadd.runtime.hooks import resid_pre
from actadd.runtime.tokens import encode
from actadd.studies.token_injection import (
    PairSetting,
    PromptBatch,
    Settings,
    aligned_arms,
    compare_conditions,
)
from actadd.studies.token_injection.contextual import (
    ContextSource,
    contextual_difference,
    contextual_placements,
)
from actadd.studies.token_injection.effects import js_divergence

PROMPTS = ["hello world there", "the quick brown fox", "abcd efg hij klm"]
LAYER = 2
# a two-token p+ against the pad: k = 3 rows (leading token, two arm rows)
PAIR = PairSetting("ab", Pair("ab", "", pad_token="z"), 2.0, ("a",))


def resid_at(model, ids, layer):
    """h_L of one token list, read with a hook (TransformerLens's own forward)."""
    name = resid_pre(model, layer)
    _, cache = model.run_with_cache(torch.tensor([list(ids)]), names_filter=[name])
    return cache[name][0]


def hand_rows(model, ids, plus, minus, layer, coeff, shift=0):
    """The contextual difference by hand: the arms after the prompt, rows at the arms'
    positions (``shift`` moves the rows read, to plant an offset error)."""
    n, w = len(ids) + shift, len(plus)
    a = resid_at(model, list(ids) + list(plus), layer)[n : n + w]
    b = resid_at(model, list(ids) + list(minus), layer)[n : n + w]
    return coeff * torch.cat([torch.zeros_like(a[:1]), a - b])


@pytest.fixture(scope="module")
def lists(tiny_llama):
    return [encode(tiny_llama, p) for p in PROMPTS]


def test_contextual_rows_equal_the_hand_computed_difference_and_not_one_position_off(
    tiny_llama, lists
):
    plus, minus = aligned_arms(tiny_llama, PAIR.positive, PAIR.negative, pad_token="z")
    assert len(plus) == 2 and plus != minus
    vecs = contextual_difference(tiny_llama, lists, PAIR, LAYER)
    for ids, vec in zip(lists, vecs):
        want = hand_rows(tiny_llama, ids, plus, minus, LAYER, PAIR.coeff)
        assert vec.layer == LAYER and vec.tensor.shape == (3, tiny_llama.cfg.d_model)
        assert torch.equal(vec.tensor[0], torch.zeros_like(vec.tensor[0]))
        torch.testing.assert_close(vec.tensor, want, atol=1e-5, rtol=1e-5)
        # a planted offset (the rows read one position early) is caught by this comparison
        off = hand_rows(tiny_llama, ids, plus, minus, LAYER, PAIR.coeff, shift=-1)
        with pytest.raises(AssertionError):
            torch.testing.assert_close(vec.tensor, off, atol=1e-5, rtol=1e-5)
    # and the context matters: two prompts give two different differences
    assert not torch.allclose(vecs[0].tensor, vecs[1].tensor, atol=1e-3)


def test_read_at_the_front_the_difference_is_actadds_vector(tiny_llama, lists):
    front = contextual_difference(tiny_llama, lists, PAIR, LAYER, context="front")
    actadd = PAIR.vector(tiny_llama, LAYER)
    for vec in front:  # causal attention: the prompt after the arms cannot reach their rows
        torch.testing.assert_close(vec.tensor, actadd.tensor, atol=1e-5, rtol=1e-5)


def added_rows_problems(model, ids, placement, layer, rows) -> list[str]:
    """Steer ``ids`` by ``placement`` and compare with the clean run: ``resid_pre`` of
    ``layer`` must be the clean one plus ``rows`` at positions ``[0, len(rows))`` and equal
    bit for bit everywhere else, and every layer below must be untouched bit for bit.
    Returns one line per problem (empty: all as stated)."""
    names = [resid_pre(model, b) for b in range(layer + 1)]
    toks = torch.tensor([list(ids)])
    _, clean = model.run_with_cache(toks, names_filter=names)
    with steering(model, [placement]):
        _, steered = model.run_with_cache(toks, names_filter=names)
    problems = []
    for b in range(layer):
        if not torch.equal(steered[names[b]], clean[names[b]]):
            problems.append(f"layer {b} below the addition changed")
    got, base = steered[names[layer]][0], clean[names[layer]][0]
    k = len(rows)
    if not torch.allclose(got[:k] - base[:k], rows, atol=1e-5, rtol=1e-5):
        problems.append(f"positions [0, {k}) did not get the rows")
    if not torch.equal(got[k:], base[k:]):
        problems.append(f"positions from {k} on changed")
    return problems


def test_the_arm_adds_exactly_its_rows_at_the_front_and_nothing_elsewhere(tiny_llama, lists):
    vecs = contextual_difference(tiny_llama, lists, PAIR, LAYER)
    placed = contextual_placements(vecs)
    for i, (ids, p) in enumerate(zip(lists, placed)):
        assert p.rows == (i,) and str(p.align) == "front"
        alone = Placement(p.vector, p.align)  # the placement's batch row is i; run it alone
        assert added_rows_problems(tiny_llama, ids, alone, LAYER, vecs[i].tensor) == []
    # the checker catches a placement one position off
    shifted = Placement(vecs[0], "offset:1")
    got = added_rows_problems(tiny_llama, lists[0], shifted, LAYER, vecs[0].tensor)
    assert any("did not get the rows" in g for g in got)
    assert any("from 3 on changed" in g for g in got)


def test_normed_rows_have_actadds_row_norms_and_the_contextual_direction(tiny_llama, lists):
    vecs = contextual_difference(tiny_llama, lists, PAIR, LAYER)
    actadd = PAIR.vector(tiny_llama, LAYER)
    for vec, p in zip(vecs, contextual_placements(vecs, actadd)):
        torch.testing.assert_close(p.vector.norms(), actadd.norms(), atol=1e-4, rtol=1e-5)
        cos = torch.nn.functional.cosine_similarity(p.vector.tensor[1:], vec.tensor[1:], dim=-1)
        torch.testing.assert_close(cos, torch.ones_like(cos), atol=1e-5, rtol=0)


def test_runner_ctxdiff_rows_equal_a_hand_built_hooked_forward(tiny_llama, lists):
    settings = Settings(
        prompts=PROMPTS,
        neutral=[],
        layers=[LAYER],
        injections=["prepend", "replace", "ctxdiff", "ctxdiff_normed"],
        embedding=False,
        transplant_sources=[],
        random_control=False,
        slice_frac=None,
        control_words=["z"],
    )
    with torch.no_grad():
        df = compare_conditions(tiny_llama, [PAIR], settings, progress=False)
    user = df[df.prompt_kind == "user"].set_index(["condition", "prompt_index"])
    assert {"ctxdiff", "ctxdiff_normed"} <= set(user.index.get_level_values(0))
    assert (user.loc["ctxdiff"].family == "context").all()
    plus, minus = aligned_arms(tiny_llama, PAIR.positive, PAIR.negative, pad_token="z")
    batch = PromptBatch(tiny_llama, PROMPTS)
    replaced = [[ids[0], *plus, *ids[1 + len(plus) :]] for ids in lists]
    for i, ids in enumerate(lists):
        rows = hand_rows(tiny_llama, ids, plus, minus, LAYER, PAIR.coeff)

        def add(resid, hook, rows=rows):
            resid = resid.clone()
            resid[0, : len(rows)] += rows
            return resid

        logits = tiny_llama.run_with_hooks(
            torch.tensor([ids]), fwd_hooks=[(resid_pre(tiny_llama, LAYER), add)]
        )
        lp = log_probs(logits[0, -1])
        rep = log_probs(tiny_llama(torch.tensor([replaced[i]]))[0, -1])
        kl = float((lp.exp() * (lp - batch.base[i])).sum())
        row = user.loc[("ctxdiff", i)]
        assert math.isclose(row.kl, kl, rel_tol=1e-3, abs_tol=1e-6)
        assert math.isclose(row.js_replace, float(js_divergence(lp, rep)), abs_tol=1e-5)
        assert math.isclose(
            row.js_replace_base, float(js_divergence(batch.base[i], rep)), abs_tol=1e-5
        )
    # the replacement is at distance 0 from itself; ActAdd and the arm are not
    assert np.allclose(user.loc["inject_replace"].js_replace, 0, atol=1e-6)
    assert (user.loc["ctxdiff"].js_replace > 0).all() and (user.loc["actadd"].js_replace > 0).all()
    assert not np.allclose(user.loc["ctxdiff"].kl, user.loc["actadd"].kl)


def test_js_divergence_identities():
    g = torch.Generator().manual_seed(0)
    p, q = (log_probs(torch.randn(4, 30, generator=g)) for _ in range(2))
    assert torch.allclose(js_divergence(p, p), torch.zeros(4), atol=1e-6)
    torch.testing.assert_close(js_divergence(p, q), js_divergence(q, p))
    m = torch.log((p.exp() + q.exp()) / 2)
    want = 0.5 * ((p.exp() * (p - m)).sum(-1) + (q.exp() * (q - m)).sum(-1))
    torch.testing.assert_close(js_divergence(p, q), want, atol=1e-6, rtol=1e-5)
    # disjoint supports: ln 2 (and no NaN from 0 · log 0)
    a = torch.log(torch.tensor([[1.0, 0.0]]))
    b = torch.log(torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(js_divergence(a, b), torch.tensor([math.log(2)]))


def test_bad_input_is_one_clear_error(tiny_llama, lists):
    with pytest.raises(SteeringError, match="Unknown context 'middle'"):
        ContextSource(tiny_llama, lists, [1], [2], [LAYER], context="middle")
    with pytest.raises(SteeringError, match="one equal, non-zero length"):
        ContextSource(tiny_llama, lists, [1, 2], [2], [LAYER])


# ---------------------------------------------------------------------- generation


def test_generation_arm_steers_each_prompt_with_its_own_difference(tiny_llama):
    from actadd.core.generation import Sampling, generate_tokens, sample_seed
    from actadd.studies.token_injection.topic_rate import topic_rates

    prompts, seed, n = PROMPTS[:2], 5, 2
    sampling = Sampling.paper()
    with torch.no_grad():
        df = topic_rates(
            tiny_llama,
            [PAIR],
            LAYER,
            prompts,
            n_samples=n,
            seed=seed,
            max_new_tokens=4,
            arms=("ctxdiff",),
            topics={"ab": ["a", "b"]},
        )
        assert set(df.arm) == {"unsteered", "ctxdiff"}
        lists = [encode(tiny_llama, p) for p in prompts]
        vecs = contextual_difference(tiny_llama, lists, PAIR, LAYER)
        for p, (ids, vec) in enumerate(zip(lists, vecs)):
            for s in range(n):  # prompt p alone, steered by its own vector, the same seed
                gen = torch.Generator().manual_seed(sample_seed(seed, p, s))
                with steering(tiny_llama, [vec]):
                    (out,) = generate_tokens(
                        tiny_llama, [ids], [gen], max_new_tokens=4, sampling=sampling
                    )
                got = df[(df.arm == "ctxdiff") & (df.text_index == p) & (df["sample"] == s)]
                assert got.completion.item() == tiny_llama.tokenizer.decode(out)
    with pytest.raises(Exception, match="Unknown generation arms"):
        topic_rates(tiny_llama, [PAIR], LAYER, prompts, n_samples=1, seed=0,
                    max_new_tokens=1, arms=("ctx",))  # fmt: skip


def test_generation_arms_in_the_config_are_checked_and_passed_on():
    from actadd import ConfigError
    from actadd.studies.token_injection.config import GenerationTable

    g = GenerationTable.from_dict(dict(pairs=["w"], layer=2, arms=["ctxdiff", "actadd"]))
    assert g.arms == ("unsteered", "actadd", "ctxdiff")
    assert GenerationTable.from_dict(dict(pairs=["w"], layer=2)).arms == (
        "unsteered",
        "actadd",
        "inject_replace",
    )
    with pytest.raises(ConfigError, match=r"unknown arms \['ctx'\]; allowed"):
        GenerationTable.from_dict(dict(pairs=["w"], layer=2, arms=["ctx"]))


# ---------------------------------------------------------------------- claims


class _Run:
    """A run as the claims read it: a config and saved tables."""

    def __init__(self, **tables):
        self.config, self.out, self.tables = {"name": "token_injection_v2"}, None, tables

    def has_table(self, name):
        return name in self.tables

    def read_table(self, name, **_):
        return self.tables[name].copy()


def _results(ctx_js: float, act_js: float, n: int = 8):
    """A results table with ActAdd, the two contextual arms and the null at L0 and L2 over
    ``n`` prompts; JS to the tokens ``ctx_js`` for the arms, ``act_js`` for ActAdd."""
    import pandas as pd

    g = np.random.default_rng(0)
    rows = []
    for layer in (0, 2):
        noises = g.normal(0, 0.002, (4, n))
        noises -= noises.mean(1, keepdims=True)  # each condition's mean is exactly its value
        for i in range(n):
            for noise, (cond, js, tvc, rc) in zip(
                noises[:, i],
                (
                    ("actadd", act_js, 1.0, 0.5),
                    ("ctxdiff", ctx_js, 1.5, 0.6),
                    ("ctxdiff_normed", ctx_js, 1.2, 0.6),
                    ("null_residual", 0.2, 0.0, 0.1),
                ),
            ):
                same, noise = cond != "null_residual" and layer == 0, float(noise)
                rows.append(dict(
                    pair="w", layer=layer, condition=cond, prompt_index=i, prompt_kind="user",
                    js_replace=(act_js if same else js) + noise, js_replace_base=0.3,
                    target_vs_control=(1.0 if same else tvc) + noise, replace_corr=rc + noise,
                ))  # fmt: skip
    return pd.DataFrame(rows)


def test_contextual_claims_read_the_tables_and_can_fail():
    from actadd.lab.claims import adjust
    from actadd.studies.token_injection.claims import _contextual_claims

    closer = {c.id: c for c in _contextual_claims(_results(0.05, 0.10), "token_injection_v2")}
    assert set(closer) == {
        "ctx_closer:w:L2",
        "ctxn_closer:w:L2",
        "ctx_target:w:L2",
        "ctxn_like_tokens_beyond_null:w:L0",
        "ctxn_like_tokens_beyond_null:w:L2",
    }  # L0 against ActAdd is left out: there the arm is ActAdd
    c = closer["ctx_closer:w:L2"]
    assert math.isclose(c.estimate, 0.05, abs_tol=1e-9)  # ActAdd's JS minus the arm's
    assert "JS to the tokens 0.050 vs actadd 0.100 (unsteered 0.300)" == c.numbers
    assert math.isclose(closer["ctx_target:w:L2"].estimate, 0.5, abs_tol=1e-9)
    judged = {c.id: c for c in adjust(list(closer.values()))}
    assert judged["ctx_closer:w:L2"].verdict == "SUPPORTED"
    assert judged["ctx_closer:w:L2"].cite == "ti2.ctx_closer.L2"
    # planted: the arm FARTHER from the tokens than ActAdd -> the claim fails, sign flips
    farther = {c.id: c for c in _contextual_claims(_results(0.15, 0.10), "token_injection_v2")}
    f = adjust([farther["ctx_closer:w:L2"]])[0]
    assert f.estimate < 0 and f.verdict == "NOT SUPPORTED"


def test_a_run_without_the_arm_has_no_contextual_claims():
    from actadd.studies.token_injection.claims import _contextual_claims

    old = _results(0.05, 0.10)
    old = old[~old.condition.str.startswith("ctxdiff")].drop(columns="js_replace")
    assert _contextual_claims(old, "token_injection_v2") == []


def test_generation_claims_of_the_contextual_arm_are_their_own_family():
    import pandas as pd

    from actadd.studies.token_injection.claims import _generation_claims

    rows = [
        dict(
            pair="w",
            layer=2,
            arm=arm,
            text_index=p,
            sample=s,
            completion="",
            topic_any=float(arm == "ctxdiff" and s == 0),
        )  # fmt: skip
        for arm in ("unsteered", "actadd", "inject_replace", "ctxdiff")
        for p in range(2)
        for s in range(2)
    ]
    claims = _generation_claims(_Run(topic_rate=pd.DataFrame(rows)), "token_injection_v2")
    ctx = [c for c in claims if c.id.startswith("topic_rate:ctxdiff")]
    assert {c.id.split(":")[1] for c in ctx} == {
        "ctxdiff_vs_actadd",
        "ctxdiff_vs_inject_replace",
        "ctxdiff_vs_unsteered",
    }
    assert {c.family for c in ctx} == {"generation: contextual difference"}
    assert all(c.family == "generation: topic-word rate" for c in claims if c not in ctx)
