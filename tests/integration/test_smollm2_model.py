"""The embedded SmolLM2-135M-Instruct, loaded from its Q4_1 GGUF, is the model it claims to be.

- Logits match an independent implementation (``transformers.LlamaForCausalLM``) of the same
  dequantized weights, single prompts and a left-padded batch.
- The Q/K un-permutation is proved a second way: the raw llama.cpp layout with adjacent-pair
  rotary gives the same logits as our un-permuted layout with half-split rotary.
- The rebuilt tokenizer round-trips text, splits digits, knows the chat specials, and always
  leads with ``<|endoftext|>`` (the BOS policy in ``actadd/models/tokenizer.py``).
- The model behaves like a language model (greedy "Paris", sane perplexity, BOS helps).
- ``load_model()`` has the right config and serves warm loads from its cache.

Measured on the development machine (CPU, float32): parity max |diff| 1.6e-4 (single
prompts) and 2.3e-4 (left-padded batch); adjacent-pair model 1.0e-4 (raw layout under
half-split rotary: 18); perplexity of PARAGRAPH 18.1 with the BOS, 18.6 without (same
targets); single-token re-encode 99.15% (the 17 failures are partial UTF-8 byte tokens);
cold load 9.3 s, warm 1.6 s.
"""

from __future__ import annotations

import copy
import gc
import math
import random
import time

import einops
import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer

import actadd
from actadd.models import gguf_llama, smollm2_path, sources

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "I went up to my friend and said hello, and she smiled back at me.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "Water boils at 100 degrees Celsius at sea level.",
]

# Max |logit diff| measured against transformers' LlamaForCausalLM: 1.6e-4 on these sentences,
# 2.3e-4 left-padded (logits reach about 38 in magnitude); about 10x headroom for other BLAS.
PARITY_TOL = 2e-3

PARAGRAPH = (
    "The village sits at the edge of a wide river, where fishermen set out before dawn and "
    "return in the late afternoon with their catch. In the summer, children swim near the old "
    "stone bridge, and their parents sit in the shade of the willow trees, talking about the "
    "weather and the price of bread. Every Saturday there is a small market in the square, "
    "where farmers sell fresh vegetables, cheese, honey and flowers. Visitors often say that "
    "the village feels peaceful, as if time moves more slowly there than in the city."
)
# measured 18.1 with the BOS
PERPLEXITY_BOUND = 40.0

ENDOFTEXT, IM_START, IM_END = 0, 1, 2


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gguf_reader():
    path = smollm2_path()
    reader = gguf_llama.open_reader(path)
    return reader, gguf_llama.read_hparams(reader, path)


@pytest.fixture(scope="module")
def reference_logits(gguf_reader, smollm2):
    """Logits of transformers' Llama, built from a local config and holding the file's
    dequantized weights, for each of SENTENCES (BOS-prefixed by our tokenizer).

    The ~600 MB reference model is freed as soon as the logits are computed.
    """
    import transformers

    reader, hp = gguf_reader
    config = transformers.LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        hidden_act="silu",
        rope_theta=100000.0,
        rms_norm_eps=hp.eps,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config)
    state = gguf_llama.hf_state_dict(reader, hp)
    missing, unexpected = model.load_state_dict(state, strict=False)
    del state
    assert not missing and not unexpected, (missing, unexpected)
    model.eval()
    with torch.no_grad():
        logits = {s: model(input_ids=smollm2.to_tokens(s)).logits[0] for s in SENTENCES}
    del model
    gc.collect()
    return logits


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("sentence", SENTENCES)
def test_logits_match_transformers_llama_on_the_same_weights(smollm2, reference_logits, sentence):
    tokens = smollm2.to_tokens(sentence)
    assert tokens[0, 0].item() == ENDOFTEXT
    ours = smollm2(tokens)[0]
    reference = reference_logits[sentence]
    assert ours.shape == reference.shape == (tokens.shape[1], 49152)
    diff = (ours - reference).abs().max().item()
    print(f"parity max|diff| = {diff:.3g} over {tokens.shape[1]} tokens ({sentence[:30]}...)")
    assert diff < PARITY_TOL


def test_left_padded_batch_matches_transformers_llama_run_unpadded(smollm2, reference_logits):
    tokens = smollm2.to_tokens(SENTENCES, padding_side="left")
    lengths = [smollm2.to_tokens(s).shape[1] for s in SENTENCES]
    assert len(set(lengths)) > 1, "the batch must actually need padding"
    positions = torch.arange(tokens.shape[1])
    mask = (positions[None, :] >= tokens.shape[1] - torch.tensor(lengths)[:, None]).long()

    ours_explicit = smollm2(tokens, attention_mask=mask)
    # the path users take: TransformerLens builds the mask itself from the pad token
    ours_auto = smollm2(SENTENCES, padding_side="left")

    worst = 0.0
    for i, sentence in enumerate(SENTENCES):
        n = lengths[i]
        assert tokens[i, -n].item() == ENDOFTEXT
        for ours in (ours_explicit, ours_auto):
            worst = max(worst, (ours[i, -n:] - reference_logits[sentence]).abs().max().item())
    print(f"left-padded batch parity max|diff| = {worst:.3g}")
    assert worst < PARITY_TOL


# --------------------------------------------------------------------------- Q/K layout


def _raw_gguf_qk(reader) -> dict[str, torch.Tensor]:
    """attn_q / attn_k exactly as stored (llama.cpp's adjacent-pair row order), dequantized."""
    from gguf.quants import dequantize

    return {
        t.name: torch.from_numpy(np.array(dequantize(t.data, t.tensor_type), dtype=np.float32))
        for t in reader.tensors
        if t.name.endswith(("attn_q.weight", "attn_k.weight"))
    }


def _repermute(w: torch.Tensor) -> torch.Tensor:
    """llama.cpp's permutation on a TransformerLens [heads, d_model, d_head] weight.

    Per head, HF rows (2, d_head/2) become (d_head/2, 2): the two rotary halves interleave.
    """
    n, m, h = w.shape
    return w.reshape(n, m, 2, h // 2).transpose(-1, -2).reshape(n, m, h)


def test_raw_gguf_qk_with_adjacent_pair_rotary_matches_our_unpermuted_model(smollm2, gguf_reader):
    reader, hp = gguf_reader
    raw = _raw_gguf_qk(reader)
    params = {name: p.detach().clone() for name, p in smollm2.named_parameters()}
    for i in range(hp.n_layers):
        q = einops.rearrange(raw[f"blk.{i}.attn_q.weight"], "(n h) m -> n m h", n=hp.n_heads)
        k = einops.rearrange(raw[f"blk.{i}.attn_k.weight"], "(n h) m -> n m h", n=hp.n_kv_heads)
        # our un-permutation is exactly the inverse of llama.cpp's permutation
        assert torch.equal(_repermute(params[f"blocks.{i}.attn.W_Q"]), q)
        assert torch.equal(_repermute(params[f"blocks.{i}.attn._W_K"]), k)
        params[f"blocks.{i}.attn.W_Q"] = q
        params[f"blocks.{i}.attn._W_K"] = k

    def build(adjacent: bool) -> HookedTransformer:
        cfg = copy.deepcopy(smollm2.cfg)
        cfg.rotary_adjacent_pairs = adjacent
        model = HookedTransformer(cfg, tokenizer=smollm2.tokenizer, move_to_device=False)
        # parameters only: the rotary sin/cos buffers depend on rotary_adjacent_pairs
        missing, unexpected = model.load_state_dict(params, strict=False)
        assert not unexpected and not (set(missing) & set(params))
        return model.eval()

    tokens = smollm2.to_tokens(SENTENCES[1])
    ours = smollm2(tokens)
    adjacent = build(adjacent=True)
    diff = (adjacent(tokens) - ours).abs().max().item()
    del adjacent
    # control: the raw layout under half-split rotary is a different (broken) model
    wrong = build(adjacent=False)
    wrong_diff = (wrong(tokens) - ours).abs().max().item()
    del wrong
    gc.collect()
    print(f"adjacent-pair model max|diff| = {diff:.3g}; raw layout, half-split: {wrong_diff:.3g}")
    assert diff < PARITY_TOL
    assert wrong_diff > 1.0


# --------------------------------------------------------------------------- tokenizer

ROUND_TRIP = [
    "12345 and 3.14159",
    "naïve café — 東京 🙂",
    "   indented",
    "a\n\nb\tc",
    "<|im_start|>user\nhi<|im_end|>",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_tokenizer_round_trips_text_exactly(smollm2, text):
    tok = smollm2.tokenizer
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert (len(ids) == 0) == (text == "")


def test_tokenizer_splits_every_digit_into_its_own_token(smollm2):
    text = "12345 and 3.14159"
    ids = smollm2.tokenizer.encode(text, add_special_tokens=False)
    pieces = [smollm2.tokenizer.decode([i]) for i in ids]
    with_digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert with_digits == [c for c in text if c.isdigit()]


@pytest.mark.parametrize(
    ("special", "token_id"),
    [("<|endoftext|>", ENDOFTEXT), ("<|im_start|>", IM_START), ("<|im_end|>", IM_END)],
)
def test_special_tokens_are_single_ids(smollm2, special, token_id):
    tok = smollm2.tokenizer
    assert tok.encode(special, add_special_tokens=False) == [token_id]
    assert tok.encode(f"x{special}y", add_special_tokens=False).count(token_id) == 1


def test_chat_markup_tokenizes_to_the_chat_special_ids(smollm2):
    ids = smollm2.tokenizer.encode("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False)
    assert ids[0] == IM_START and ids[-1] == IM_END
    assert ids.count(IM_START) == 1 and ids.count(IM_END) == 1


def test_every_tokenization_path_leads_with_endoftext(smollm2):
    assert smollm2.to_tokens("Hello")[0, 0].item() == ENDOFTEXT
    assert smollm2.tokenizer("Hello")["input_ids"][0] == ENDOFTEXT
    batch = smollm2.to_tokens(["Hi", "Hello there, friend"])
    assert (batch[:, 0] == ENDOFTEXT).all()
    assert smollm2.tokenizer.bos_token_id == ENDOFTEXT


def test_to_tokens_without_bos_has_no_leading_endoftext(smollm2):
    with_bos = smollm2.to_tokens("Hello")
    without = smollm2.to_tokens("Hello", prepend_bos=False)
    assert ENDOFTEXT not in without[0].tolist()
    assert torch.equal(without, with_bos[:, 1:])


def test_single_vocab_ids_survive_decode_then_encode(smollm2):
    tok = smollm2.tokenizer
    special = set(tok.all_special_ids) | set(tok.added_tokens_decoder)
    ordinary = [i for i in range(smollm2.cfg.d_vocab) if i not in special]
    sample = random.Random(0).sample(ordinary, 2000)
    failures = [i for i in sample if tok.encode(tok.decode([i]), add_special_tokens=False) != [i]]
    fraction = 1 - len(failures) / len(sample)
    print(f"single-token re-encode fraction: {fraction:.4f} ({len(failures)} of {len(sample)})")
    assert fraction >= 0.99
    # the only acceptable failures are tokens holding part of a multi-byte UTF-8 character,
    # which cannot decode to text on their own
    assert all("\ufffd" in tok.decode([i]) for i in failures), [
        tok.convert_ids_to_tokens(i) for i in failures
    ]


# --------------------------------------------------------------------------- behaviour


def test_greedy_continuation_names_paris(smollm2):
    start = time.perf_counter()
    out = smollm2.generate(
        "The capital of France is", do_sample=False, max_new_tokens=8, verbose=False
    )
    print(f"greedy continuation {out!r} in {time.perf_counter() - start:.1f} s")
    assert isinstance(out, str) and out.startswith("The capital of France is")
    assert "Paris" in out[len("The capital of France is") :]


def test_perplexity_is_sane_and_lower_with_the_leading_endoftext(smollm2):
    with_bos = smollm2.to_tokens(PARAGRAPH)
    without = smollm2.to_tokens(PARAGRAPH, prepend_bos=False)
    assert with_bos[0, 0].item() == ENDOFTEXT and torch.equal(with_bos[:, 1:], without)
    loss_with = smollm2(with_bos, return_type="loss", loss_per_token=True)[0]
    loss_without = smollm2(without, return_type="loss", loss_per_token=True)[0]
    # score the same targets (text tokens 2..n) in both, so only the context differs
    ppl_with = math.exp(loss_with[1:].mean().item())
    ppl_without = math.exp(loss_without.mean().item())
    ppl_with_all = math.exp(loss_with.mean().item())
    print(
        f"perplexity with BOS {ppl_with:.2f} (incl. first text token {ppl_with_all:.2f}), "
        f"without BOS {ppl_without:.2f}, {without.shape[1]} text tokens"
    )
    assert ppl_with < PERPLEXITY_BOUND
    assert ppl_with < ppl_without


# --------------------------------------------------------------------------- loading


def test_load_model_config_describes_smollm2(smollm2):
    cfg = smollm2.cfg
    assert cfg.model_name == "SmolLM2-135M-Instruct"
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads) == (30, 576, 9, 3)
    assert (cfg.d_vocab, cfg.d_head, cfg.d_mlp) == (49152, 64, 1536)
    assert cfg.normalization_type == "RMS" and cfg.final_rms and cfg.gated_mlp
    assert cfg.positional_embedding_type == "rotary" and cfg.rotary_base == 100000
    assert not cfg.rotary_adjacent_pairs
    assert cfg.n_ctx == 2048


def test_warm_load_is_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(tmp_path))
    start = time.perf_counter()
    cold = actadd.load_model()
    cold_s = time.perf_counter() - start
    entries = list((tmp_path / "gguf").iterdir())
    assert len(entries) == 1 and (entries[0] / "weights.safetensors").exists()

    def no_conversion(*args, **kwargs):
        raise AssertionError("a warm load converted the GGUF again")

    monkeypatch.setattr(sources, "_convert_gguf", no_conversion)
    start = time.perf_counter()
    warm = actadd.load_model()
    warm_s = time.perf_counter() - start
    print(f"cold load {cold_s:.1f} s, warm load {warm_s:.1f} s")

    cold_sd, warm_sd = cold.state_dict(), warm.state_dict()
    for name in ("embed.W_E", "blocks.0.attn.W_Q", "blocks.17.attn._W_K", "unembed.W_U"):
        assert torch.equal(cold_sd[name], warm_sd[name]), name
    assert warm_s < cold_s
    del cold, warm, cold_sd, warm_sd
    gc.collect()
