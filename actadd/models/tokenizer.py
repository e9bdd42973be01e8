"""Tokenizers built locally, with no model hub.

- :func:`tokenizer_from_gguf` rebuilds a GGUF file's byte-level BPE tokenizer.
- :func:`byte_tokenizer` makes a tiny byte-level tokenizer for the random test models.

Both are saved to a directory and reloaded from it as a ``PreTrainedTokenizerFast``:
TransformerLens reloads tokenizers by ``name_or_path``, so an in-memory tokenizer breaks.

**Leading-token (BOS) policy.** ActAdd needs a shared first token: without one, position 0
of every prompt carries the huge "attention sink" activations, and an addition there is
either swamped or wrecks the output. Our tokenizers therefore *always* prepend a BOS token
through their post-processor, so every path (TransformerLens ``to_tokens``, ``model.generate``,
the workbench's own batching, plain ``tokenizer(...)``) sees the same first token. For the
SmolLM2 GGUF, whose file sets no BOS to add, the leading token is ``<|endoftext|>`` (id 0):
the document separator the model was pre-trained with, so it is what a document start looks
like to the model (see ``tests/integration/test_smollm2_model.py`` for the measured perplexities).
"""

from __future__ import annotations

import json
from pathlib import Path

from actadd.errors import ModelLoadError
from actadd.models.gguf_llama import GGUFVocab

__all__ = [
    "BYTE_SPECIALS",
    "SMOLLM2_BOS",
    "byte_tokenizer",
    "load_fast_tokenizer",
    "save_fast_tokenizer",
    "tokenizer_from_gguf",
]

# GGUF token types (llama.cpp's llama_token_type)
_CONTROL, _USER_DEFINED = 3, 4
SMOLLM2_BOS = "<|endoftext|>"


def _byte_level_parts(pre: str):
    from tokenizers import decoders, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "qwen2"):
        # these split every digit on its own before byte-level BPE
        pre_tok = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    elif pre in ("gpt2", "default", ""):
        pre_tok = byte_level
    else:
        raise ModelLoadError(
            f"Unsupported GGUF pre-tokenizer {pre!r}. Supported: smollm, starcoder, qwen2, "
            "gpt2/default (byte-level BPE)."
        )
    return pre_tok, decoders.ByteLevel()


def save_fast_tokenizer(
    tok, directory: Path, *, bos: str, eos: str, pad: str, unk: str | None = None
) -> None:
    """Attach the always-prepend-BOS post-processor and save as PreTrainedTokenizerFast."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bos_id = tok.token_to_id(bos)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, bos_id)]
    )
    specials = {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, **specials, add_bos_token=True, padding_side="right",
        clean_up_tokenization_spaces=False,
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))


def load_fast_tokenizer(directory: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(directory))


def tokenizer_from_gguf(vocab: GGUFVocab, directory: Path, bos: str | None = None) -> None:
    """Rebuild the GGUF's tokenizer and save it to ``directory``."""
    from tokenizers import AddedToken, Tokenizer, models

    if vocab.model != "gpt2":
        raise ModelLoadError(
            f"Unsupported GGUF tokenizer model {vocab.model!r}: actadd rebuilds byte-level BPE "
            "('gpt2') tokenizers, as used by SmolLM2, Qwen2 and GPT-2 style models."
        )
    pre_tok, decoder = _byte_level_parts(vocab.pre)
    token_to_id = {t: i for i, t in enumerate(vocab.tokens)}
    merges = [tuple(m.split(" ", 1)) for m in vocab.merges]
    tok = Tokenizer(models.BPE(vocab=token_to_id, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoder
    special = [
        AddedToken(vocab.tokens[i], special=True, normalized=False)
        for i, kind in enumerate(vocab.token_types)
        if kind in (_CONTROL, _USER_DEFINED)
    ]
    tok.add_special_tokens(special)

    def name(i: int | None, fallback: str) -> str:
        return vocab.tokens[i] if i is not None and 0 <= i < len(vocab.tokens) else fallback

    bos = bos or (SMOLLM2_BOS if SMOLLM2_BOS in token_to_id else name(vocab.bos_id, ""))
    if bos not in token_to_id:
        raise ModelLoadError(f"Leading token {bos!r} is not in the GGUF vocabulary.")
    eos = name(vocab.eos_id, bos)
    save_fast_tokenizer(tok, directory, bos=bos, eos=eos, pad=name(vocab.pad_id, eos))
    (directory / "actadd_tokenizer.json").write_text(
        json.dumps({"source": "gguf", "pre": vocab.pre, "bos": bos}, indent=2)
    )


BYTE_SPECIALS = ("<|bos|>", "<|eos|>", "<|pad|>")


def byte_tokenizer(directory: Path) -> None:
    """A 259-token byte-level tokenizer (256 bytes + BOS/EOS/PAD) for tiny test models.

    Byte-level means every string tokenizes, one token per UTF-8 byte, so token counts in
    tests are predictable: ``"Love"`` is 4 tokens plus the BOS.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    alphabet.sort()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in BYTE_SPECIALS])
    bos, eos, pad = BYTE_SPECIALS
    save_fast_tokenizer(tok, directory, bos=bos, eos=eos, pad=pad)
