"""The steering proofs again on the real model, plus the README example as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import actadd
from actadd import GREEDY, SteeringVector, steering
from actadd.core.metrics import WEDDING_WORDS, logprob_mass, target_token_ids
from actadd.errors import LeadingTokenWarning
from actadd.runtime.hooks import resid_pre

PROMPT = "I hate you because"


@pytest.fixture(scope="module")
def love(smollm2):
    return SteeringVector.from_pair(smollm2, "Love", "Hate", layer=6, coeff=5)


def test_exact_addition_on_smollm2(smollm2, love):
    tokens = smollm2.to_tokens(PROMPT)
    names = lambda n: n.endswith("hook_resid_pre")  # noqa: E731
    _, clean = smollm2.run_with_cache(tokens, names_filter=names)
    with steering(smollm2, love):
        _, steered = smollm2.run_with_cache(tokens, names_filter=names)
    k = love.k
    a, b = clean[resid_pre(smollm2, 6)][0], steered[resid_pre(smollm2, 6)][0]
    assert torch.equal(b[:k], a[:k] + love.tensor)
    assert torch.equal(b[k:], a[k:])
    for layer in range(6):
        assert torch.equal(clean[resid_pre(smollm2, layer)], steered[resid_pre(smollm2, layer)])
    assert love.norms()[0] == 0  # the shared leading token


@pytest.mark.parametrize("align", ["front", "back", "offset:1", "all"])
def test_kv_cache_matches_no_cache_on_smollm2(smollm2, love, align):
    v = love.mean(skip_first=True) if align == "all" else love
    prompts = [PROMPT, "The weather today"]
    kw = dict(sampling=GREEDY, max_new_tokens=20)
    cached = actadd.generate(smollm2, prompts, v, align, use_cache=True, **kw)
    uncached = actadd.generate(smollm2, prompts, v, align, use_cache=False, **kw)
    assert cached.completion.tolist() == uncached.completion.tolist()


def test_left_padded_batch_matches_single_prompts_on_smollm2(smollm2, love):
    prompts = [PROMPT, "Hi", "My favourite thing to do on a rainy afternoon is"]
    kw = dict(sampling=GREEDY, max_new_tokens=16, on_short="clip")
    batch = actadd.generate(smollm2, prompts, love, **kw).completion.tolist()
    alone = [actadd.generate(smollm2, p, love, **kw).completion[0] for p in prompts]
    assert batch == alone


def test_one_token_prompt_is_steered_on_smollm2(smollm2):
    weddings = SteeringVector.from_prompt(smollm2, " weddings", layer=2, coeff=4).rows([1])
    kw = dict(sampling=GREEDY, max_new_tokens=12, align=[0])
    plain = actadd.generate(smollm2, "", **{k: v for k, v in kw.items() if k != "align"})
    # the one prompt position is the leading token, so the context warns that everything lands
    # there; the generated tokens still feel it through the cached keys and values
    with pytest.warns(LeadingTokenWarning, match="leading token"):
        cached = actadd.generate(smollm2, "", weddings, use_cache=True, **kw)
    with pytest.warns(LeadingTokenWarning, match="leading token"):
        uncached = actadd.generate(smollm2, "", weddings, use_cache=False, **kw)
    assert cached.completion[0] == uncached.completion[0] != plain.completion[0]


def test_steering_moves_the_next_token_toward_the_concept(smollm2):
    prompt = smollm2.to_tokens("I went up to my friend and said")
    targets = target_token_ids(smollm2, WEDDING_WORDS, strict=False)
    weddings = SteeringVector.from_prompt(smollm2, " weddings", layer=1, coeff=1)
    before = logprob_mass(smollm2(prompt)[0, -1], targets)
    with steering(smollm2, weddings):
        after = logprob_mass(smollm2(prompt)[0, -1], targets)
    assert after - before > 1.0, (float(before), float(after))  # measured: about +1.8 nats


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "unsteered" in out and "steered" in out
    v = SteeringVector.load(tmp_path / "love_hate.safetensors")
    assert v.layer == 2 and v.provenance["positive"] == "Love"
