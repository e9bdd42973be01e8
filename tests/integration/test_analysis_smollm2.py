"""The token-injection findings that experiments/README.md states, at small scale on SmolLM2.

Measured on the development machine (2 prompts, " weddings" − "" padded with " a", c=1):
L2 ActAdd Δlog p(wedding words) +3.48, prepend " weddings" +3.07, equal-norm random +1.20;
similarity to prepending: ActAdd 0.64, random 0.33. At L20: transplant 0→20 similarity to
ActAdd −0.05 (Δ −0.10), 16→20 0.95. A lone " " at layer 4 has norm 965 vs a typical 116.
"""

from __future__ import annotations

import pytest
import torch

from actadd.config import Pair
from actadd.core.vectors import SteeringVector
from actadd.studies.token_injection import (
    PairSetting,
    PromptBatch,
    Settings,
    compare_conditions,
    layer_summary,
    next_token_logprobs,
    typical_norm,
)

PROMPTS = ["I went up to my friend and said", "When I got home last night, I"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: several times faster than two when the 2-core machine is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def row(summary, layer, condition, source=None):
    sel = summary[(summary.layer == layer) & (summary.condition == condition)]
    if source is not None:
        sel = sel[sel.source_layer == source]
    assert len(sel) == 1, (layer, condition, source)
    return sel.iloc[0]


@pytest.fixture(scope="module")
def summary(smollm2, _one_thread):
    pair = PairSetting("w", Pair(" weddings", "", pad_token=" a"), 1.0, "weddings")
    settings = Settings(
        prompts=PROMPTS,
        neutral=[],
        layers=[2, 20],
        injections=["prepend"],
        transplant_sources=[0, 16],
        slice_frac=None,
        embedding=False,
    )
    with torch.no_grad():
        df = compare_conditions(smollm2, [pair], settings, progress=False)
    return layer_summary(df)


def test_early_actadd_acts_like_prepending_the_token_and_unlike_a_random_vector(summary):
    actadd, random = row(summary, 2, "actadd"), row(summary, 2, "random")
    prepend = row(summary, 2, "inject_prepend")
    assert actadd.target_logprob_delta > 2 and prepend.target_logprob_delta > 2
    assert random.target_logprob_delta < 0.5 * actadd.target_logprob_delta
    assert actadd.inject_corr > random.inject_corr + 0.15


def test_embedding_layer_difference_moved_to_layer_20_does_nothing_but_layer_16_does(summary):
    from_0 = row(summary, 20, "transplant", 0)
    from_16 = row(summary, 20, "transplant", 16)
    actadd = row(summary, 20, "actadd")
    assert abs(from_0.effect_corr) < 0.3 and from_0.target_logprob_delta < 0.3
    assert from_16.effect_corr > 0.8 and actadd.target_logprob_delta > 0.5


def test_a_lone_space_token_is_a_massive_activation_at_layer_4(smollm2):
    # why the paper's " " padding contaminates vectors at layers 3-9 on this model
    tokens = smollm2.to_tokens(PROMPTS[0] + " ")
    assert smollm2.to_str_tokens(tokens)[-1] == " "
    with torch.no_grad():
        norms = smollm2(tokens, stop_at_layer=4)[0].norm(dim=-1)
    assert norms[-1] > 5 * typical_norm(smollm2, PROMPTS, 4)


def test_cached_prefix_batches_match_plain_forwards_on_smollm2(smollm2):
    batch = PromptBatch(smollm2, PROMPTS)
    vec = SteeringVector.from_pair(smollm2, "Love", "Hate", 6, 5.0)
    torch.testing.assert_close(
        batch.logprobs(vec), next_token_logprobs(smollm2, batch.token_lists, vec), atol=2e-3, rtol=0
    )
