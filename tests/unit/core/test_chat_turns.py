"""Steering one chat turn: the ``span`` alignment and the sweep option ``turn``.

Tiny models have byte-level tokenizers (one token per byte after the leading token), so the
user message's positions can be counted by hand from the rendered text.
"""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import GREEDY, Align, ConfigError, SteeringError, SteeringVector, steering
from actadd.core.chat import render_prompt, user_turn_span
from actadd.core.generation import generate_tokens
from actadd.core.metrics import kl_div
from actadd.errors import ChatTemplateError
from actadd.runtime.hooks import resid_pre
from actadd.sweeps import SweepSpec, run_sweep
from actadd.sweeps.method_vectors import MethodVectors

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
HEAD, TAIL = len("[user]"), len("\n[assistant]")  # template bytes around the user message
PROMPTS = ["I hate you because", "Hi there", "A much longer prompt than the others here"]


@pytest.fixture
def templated(tiny_model, monkeypatch):
    monkeypatch.setattr(tiny_model.tokenizer, "chat_template", TEMPLATE, raising=False)
    return tiny_model


@pytest.fixture
def templated_llama(tiny_llama, monkeypatch):
    monkeypatch.setattr(tiny_llama.tokenizer, "chat_template", TEMPLATE, raising=False)
    return tiny_llama


def one_row(model, layer=2, coeff=6.0):
    return SteeringVector.from_pair(model, "Love", "Hate", layer=layer, coeff=coeff).mean(
        skip_first=True
    )


def user_positions(prompt: str) -> list[int]:
    return list(range(1 + HEAD, 1 + HEAD + len(prompt)))


def layer_resid(model, tokens, layer):
    name = resid_pre(model, layer)
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name][0]


# ---------------------------------------------------------------------- the span alignment


def test_user_turn_span_counts_the_template_tokens_around_the_message(templated):
    assert user_turn_span(templated, PROMPTS) == (1 + HEAD, TAIL)


def test_span_additions_land_exactly_on_the_user_message(templated):
    prompt = render_prompt(templated, PROMPTS[0])
    tokens = templated.to_tokens(prompt)
    v = one_row(templated)
    clean = layer_resid(templated, tokens, 2)
    with steering(templated, v, Align.span(*user_turn_span(templated, PROMPTS))):
        steered = layer_resid(templated, tokens, 2)
    on = torch.zeros(tokens.shape[1], dtype=torch.bool)
    on[user_positions(PROMPTS[0])] = True
    assert templated.to_string(tokens[0, on]) == PROMPTS[0]
    assert torch.equal(steered[on], clean[on] + v.tensor[0])
    assert torch.equal(steered[~on], clean[~on])  # bit for bit elsewhere


@pytest.mark.parametrize("fast", [True, False])
def test_span_cache_equals_no_cache(templated, fast):
    ids = [templated.to_tokens(render_prompt(templated, p))[0].tolist() for p in PROMPTS]
    align = Align.span(*user_turn_span(templated, PROMPTS))

    def run(use_cache):
        gens = [torch.Generator().manual_seed(i) for i in range(len(ids))]
        return generate_tokens(
            templated, ids, gens, max_new_tokens=12, sampling=GREEDY, use_cache=use_cache, fast=fast
        )

    with steering(templated, one_row(templated, coeff=20.0), align):
        cached, uncached = run(True), run(False)
    assert cached == uncached
    assert cached != run(True)  # the steering changed something


def test_span_left_padded_batch_equals_each_prompt_alone(templated):
    prompts = [render_prompt(templated, p) for p in PROMPTS]
    align = Align.span(*user_turn_span(templated, PROMPTS))
    v = one_row(templated, coeff=20.0)
    gen = lambda p: (
        actadd.generate(  # noqa: E731
            templated, p, v, align, sampling=GREEDY, max_new_tokens=12
        ).completion
    )
    assert gen(prompts).tolist() == [gen(p)[0] for p in prompts]


def test_span_parses_prints_and_refuses_bad_input(tiny_llama):
    assert Align.parse("span:3:2") == Align.span(3, 2)
    assert str(Align.span(3, 2)) == "span:3:2" and str(Align.parse("span:4")) == "span:4:0"
    with pytest.raises(SteeringError, match="span:<a>:<b> needs ints a, b >= 0"):
        Align.span(-1, 0)
    with pytest.raises(SteeringError, match="adds one d_model vector"):
        steering(tiny_llama, SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1), "span:1:1")
    tokens = tiny_llama.to_tokens("Hi")
    for span in ("span:2:1", "span:3:2"):  # empty, and start past the end (no bare error)
        with steering(tiny_llama, one_row(tiny_llama), span):
            with pytest.raises(SteeringError, match="the span is empty"):
                tiny_llama(tokens)


def test_user_turn_span_refuses_a_template_that_rewrites_the_message(tiny_llama, monkeypatch):
    upper = TEMPLATE.replace("m['content']", "m['content'] | upper")
    monkeypatch.setattr(tiny_llama.tokenizer, "chat_template", upper, raising=False)
    with pytest.raises(ChatTemplateError, match="does not keep the user message") as err:
        user_turn_span(tiny_llama, ["hi"])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("prompts", [[], (), "Hi there", None])
def test_user_turn_span_of_no_prompts_is_one_line(templated, prompts):
    with pytest.raises(ChatTemplateError, match="takes a non-empty list of prompt") as err:
        user_turn_span(templated, prompts)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- the sweep option

SWEEP = dict(
    name="turns",
    model="tiny-llama",
    pairs=[{"positive": "Love", "negative": "Hate"}],
    layers=[2],
    coeffs=[4.0],
    prompts=PROMPTS[:2],
    neutral_texts=["The museum opens at nine."],
    target_words=["w", "e"],
)


@pytest.mark.parametrize("method", ["actadd", "caa"])
def test_user_turn_cells_equal_steering_the_message_positions_by_hand(templated_llama, method):
    model = templated_llama
    spec = SweepSpec.from_dict(SWEEP | dict(turn="user", methods=[method]))
    df = run_sweep(spec, model, progress=False)
    steered = df[(df.layer == 2) & (df.metric == "kl_next_token")]
    assert set(steered["align"]) == {"turn:user"}
    v = 4.0 * MethodVectors(model, spec).vectors(method, 0, "right")[2]
    if v.k > 1:
        v = v.mean(skip_first=True)
    for i, prompt in enumerate(PROMPTS[:2]):
        tokens = model.to_tokens(render_prompt(model, prompt))
        clean = model(tokens)[0, -1]
        with steering(model, v, user_positions(prompt)):  # positions counted by hand
            by_hand = model(tokens)[0, -1]
        got = steered[steered.text_index == i].value.item()
        assert got == pytest.approx(float(kl_div(by_hand, clean)), rel=1e-4, abs=1e-7)
        assert got > 0


def test_assistant_turn_steers_only_the_generated_tokens(templated_llama):
    model = templated_llama
    gen = dict(n_samples=2, max_new_tokens=10, seed=3, topic_words=["w"], sentiment=False)
    spec = SweepSpec.from_dict(SWEEP | dict(turn="assistant", coeffs=[20.0], generation=gen))
    out = run_sweep(spec, model, progress=False)
    nt = out[(out.layer == 2) & (out.metric == "kl_next_token")]
    assert set(nt["align"]) == {"turn:assistant"} and (nt.value == 0).all()  # prompt untouched
    from actadd.sweeps.engine import UnitRunner, units

    unit = next(
        u for u in units(spec, model.cfg.n_layers) if u.kind == "generation" and u.layer == 2
    )
    comps = UnitRunner(spec, model)(unit)["completions"]
    v = 20.0 * SteeringVector.from_pair(model, "Love", "Hate", 2).mean(skip_first=True)
    sampling = actadd.core.generation.Sampling(temperature=1.0, top_p=0.3, freq_penalty=1.0)
    for row in comps.itertuples():
        ids = model.to_tokens(render_prompt(model, PROMPTS[row.text_index]))[0].tolist()
        g = torch.Generator().manual_seed(
            actadd.core.generation.sample_seed(3, row.text_index, row.sample)
        )
        with steering(model, v, "generated"):
            toks = generate_tokens(model, [ids], [g], max_new_tokens=10, sampling=sampling)[0]
        assert row.completion == model.tokenizer.decode(toks)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (dict(turn="system"), "turn 'system' unknown; allowed: user"),
        (dict(turn="user", aligns=["all"]), "leave aligns out"),
        (dict(turn="assistant"), r"add a \[generation\] table"),
        (dict(turn="user", confirmatory=[dict(layer=2, coeff=4.0, align="all")]), "turn:user"),
    ],
)
def test_bad_turn_configs_are_one_line(over, message):
    with pytest.raises(ConfigError, match=message) as err:
        SweepSpec.from_dict(SWEEP | over)
    assert "\n" not in str(err.value)


def test_a_model_without_a_template_is_refused_before_compute(tiny_llama):
    spec = SweepSpec.from_dict(SWEEP | dict(turn="user"))
    with pytest.raises(ConfigError, match="turn = 'user': Model .* has no chat template") as err:
        run_sweep(spec, tiny_llama, progress=False)
    assert "\n" not in str(err.value)


def test_turn_round_trips_through_the_saved_config(templated_llama):
    spec = SweepSpec.from_dict(SWEEP | dict(turn="user"))
    d = spec.to_dict()
    assert d["turn"] == "user" and "aligns" not in d
    assert SweepSpec.from_dict(d) == spec
    assert "turn" not in SweepSpec.from_dict(SWEEP).to_dict()  # old configs keep their dict
