"""The top-p prefilter draws exactly what the full sort of the vocabulary draws.

``next_tokens`` looks at the ``TOP_P_PREFILTER`` most likely tokens first and only sorts
the whole vocabulary for rows whose nucleus does not fit. ``reference_next_tokens`` below is
the sampling code as it was before the prefilter, verbatim: same generators in, the same
tokens must come out, and the generators must be left in the same state (so every later
step draws the same too).
"""

from __future__ import annotations

import sys

import pytest
import torch

from actadd import Sampling
from actadd.core.generation import TOP_P_PREFILTER, next_tokens

generate_module = sys.modules["actadd.core.generation"]

VOCAB = 4096


def reference_next_tokens(logits, counts, sampling, generators):
    """actadd.generate.next_tokens before the prefilter (full sort of the vocabulary)."""
    logits = logits.float()
    if sampling.freq_penalty:
        logits = logits - sampling.freq_penalty * counts
    if sampling.greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    if sampling.top_p < 1:
        drop = (sorted_p.cumsum(-1) - sorted_p) >= sampling.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
    sorted_p = sorted_p.cpu()
    picks = [
        int(torch.multinomial(sorted_p[b], 1, generator=generators[b]))
        for b in range(len(sorted_p))
    ]
    return order.gather(-1, torch.tensor(picks, device=order.device)[:, None])[:, 0]


def logits_batch(seed: int) -> torch.Tensor:
    """Rows from peaked to flat, with exact ties in some rows (both paths get exercised)."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.tensor([8.0, 6.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.0])
    logits = torch.randn(len(scales), VOCAB, generator=gen) * scales[:, None]
    logits[1, :3] = logits[1].max() + 1  # a three-way tie at the top
    logits[2, [5, 9]] = logits[2].max() + 0.5  # a two-way tie
    return logits


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(),  # the paper: temperature 1, top-p 0.3, frequency penalty 1
        Sampling(top_p=0.9, temperature=0.7, freq_penalty=0.0),
        Sampling(top_p=0.02, freq_penalty=2.0),
        Sampling(top_p=1.0),
    ],
)
def test_prefilter_draws_what_the_full_sort_draws(sampling):
    for seed in range(4):
        logits = logits_batch(seed)
        counts = torch.zeros_like(logits)
        counts[:, torch.arange(0, VOCAB, 97)] = 1.0
        ours = [torch.Generator().manual_seed(100 * seed + b) for b in range(len(logits))]
        theirs = [torch.Generator().manual_seed(100 * seed + b) for b in range(len(logits))]
        for _ in range(4):  # later steps would diverge if a generator were left elsewhere
            expected = reference_next_tokens(logits, counts, sampling, theirs)
            got = next_tokens(logits, counts, sampling, ours)
            assert torch.equal(got, expected)
            counts[torch.arange(len(logits)), got] += 1
        for a, b in zip(ours, theirs):
            assert torch.equal(a.get_state(), b.get_state())


def test_prefilter_settles_peaked_rows_and_leaves_flat_and_tied_ones_to_the_sort():
    logits = logits_batch(0)
    probs = torch.softmax(logits, dim=-1)
    gens = [torch.Generator().manual_seed(b) for b in range(len(logits))]
    picks = torch.empty(len(logits), dtype=torch.long)
    left = generate_module._prefiltered(probs, 0.3, gens, picks)
    assert 0 not in left and 3 not in left  # peaked: drawn from the top tokens
    assert {1, 2} <= set(left)  # a tie next to a kept token
    assert len(logits) - 1 in left  # uniform: the nucleus is ~1229 tokens > TOP_P_PREFILTER
    assert TOP_P_PREFILTER < VOCAB


def test_the_torch_multinomial_property_the_prefilter_relies_on_holds():
    assert generate_module._prefix_draws_match(VOCAB, TOP_P_PREFILTER)
    assert generate_module._prefix_draws_match(49152, TOP_P_PREFILTER)


def test_prefilter_steps_aside_when_the_property_fails(monkeypatch):
    monkeypatch.setattr(generate_module, "_prefix_draws_match", lambda vocab, k: False)
    logits = logits_batch(1)
    gens = [torch.Generator().manual_seed(b) for b in range(len(logits))]
    picks = torch.empty(len(logits), dtype=torch.long)
    left = generate_module._prefiltered(torch.softmax(logits, -1), 0.3, gens, picks)
    assert left == list(range(len(logits)))


# ---------------------------------------------------------------------- the one sampling spec


def test_generation_sweeps_and_the_playground_share_one_sampling_spec():
    from actadd.core import generation, sampling
    from actadd.sweeps.spec import GenerationSpec
    from actadd.ui.settings import Settings

    assert generation.Sampling is sampling.Sampling is Sampling
    assert generation.GREEDY is sampling.GREEDY and generation.PAPER_SAMPLING == Sampling()
    g = GenerationSpec(temperature=0.7, top_p=0.9, freq_penalty=0.5)
    assert g.sampling == Sampling(temperature=0.7, top_p=0.9, freq_penalty=0.5)
    assert Settings(temperature=0.7, top_p=0.9, freq_penalty=0.5).sampling == g.sampling
    assert Settings(greedy=True).sampling is sampling.GREEDY


def test_a_sampling_table_names_the_key_and_the_bound():
    from actadd import ConfigError

    assert Sampling.from_dict({"top_p": 0.9}) == Sampling(top_p=0.9)
    assert Sampling.from_dict({}).to_dict() == Sampling().to_dict()
    with pytest.raises(ConfigError, match=r"corpus\.top_p must be a finite number > 0 and <= 1"):
        Sampling.from_dict({"top_p": 5}, "corpus")
    with pytest.raises(
        ConfigError, match=r"sampling\.temperature must be a finite number >= 1e-06"
    ):
        Sampling.from_dict({"temperature": 0})
    with pytest.raises(ConfigError, match=r"sampling: unknown key\(s\) \['seed'\]"):
        Sampling.from_dict({"seed": 1})  # the seed is an argument of the call, not the rule
    assert Sampling(temperature=1e-7).temperature == 1e-7  # the library takes any t > 0
