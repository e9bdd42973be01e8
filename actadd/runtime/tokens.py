"""Tokens of a contrast pair: both prompts with the model's leading token, made the same
length by the pair-length rule (``equalize``), padded with a single-token ``pad_token``.

:func:`pair_token_ids` is exactly what :meth:`actadd.core.vectors.SteeringVector.from_pair` takes
the residual difference of; the token-injection analysis and the diagnostics read it too.

:func:`encode` is how actadd turns text into token ids everywhere: what
``model.to_tokens(text)`` gives, without its side effect. TransformerLens's ``to_tokens``
(and ``to_str_tokens``) set ``model.cfg.default_prepend_bos`` and the tokenizer's
``padding_side`` for the duration of the call and then put back what they saw on entry; two
threads doing that at once can leave the model's default changed for good (every later
``model(text)`` then silently drops the leading token). :func:`encode` only reads the model.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Literal

import torch
from torch import Tensor
from transformer_lens.utilities.tokenize_utils import get_input_with_manually_prepended_bos

from actadd.config import EQUALIZE_RULES
from actadd.errors import SteeringError
from actadd.runtime.backends import Model, is_bridge

__all__ = [
    "EQUALIZE_RULES",
    "Equalize",
    "align_pair",
    "encode",
    "encode_batch",
    "equalize_rule",
    "pair_token_ids",
    "pieces",
    "single_token_id",
]

# How the two prompts of a pair are made the same length (``equalize=``).
# (EQUALIZE_RULES, the same three names, lives in the torch-free actadd.config)
Equalize = Literal["right", "left", "truncate"]


def equalize_rule(equalize: str, pad: str | None) -> Equalize:
    """``equalize``, or the deprecated ``pad=`` keyword's value, checked."""
    if pad is not None:
        warnings.warn(
            "SteeringVector.from_pair(pad=...) is deprecated: the pair-length rule is now "
            "called equalize= (pad_token= is still the padding token).",
            DeprecationWarning,
            stacklevel=3,
        )
        equalize = pad
    if equalize not in EQUALIZE_RULES:
        raise SteeringError(
            f"Unknown pair-length rule equalize={equalize!r}; allowed: {EQUALIZE_RULES} "
            "(pad the shorter prompt on the right or left, or truncate the longer)."
        )
    return equalize


# one lock per tokenizer: a Hugging Face fast tokenizer changes its own truncation and
# padding settings inside a call, which another thread's call must not see half-done
_TOKENIZER_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def _tokenizer_lock(tokenizer) -> threading.Lock:
    with _GUARD:
        lock = _TOKENIZER_LOCKS.get(tokenizer)
        if lock is None:
            lock = _TOKENIZER_LOCKS[tokenizer] = threading.Lock()
        return lock


def encode(
    model: Model, text: str, *, prepend_bos: bool | None = None, truncate: bool = True
) -> list[int]:
    """The token ids of ``text``: ``model.to_tokens(text, prepend_bos=..., truncate=...)[0]``
    as a list, computed without writing anything on the model (see the module docstring).

    ``prepend_bos=None`` follows ``model.cfg.default_prepend_bos``; ``truncate`` keeps the
    first ``n_ctx`` tokens, as ``to_tokens`` does by default.
    """
    if not isinstance(text, str):
        raise SteeringError(f"Text to tokenize must be a string, got {type(text).__name__}.")
    tok, cfg = model.tokenizer, model.cfg
    if tok is None:
        raise SteeringError(f"Model {cfg.model_name} has no tokenizer: pass token ids.")
    with _tokenizer_lock(tok):
        if is_bridge(model):  # the bridge's to_tokens takes its defaults without setting them
            ids = model.to_tokens(text, prepend_bos=prepend_bos, truncate=truncate)
            return ids[0].tolist()
        prepend = cfg.default_prepend_bos if prepend_bos is None else bool(prepend_bos)
        tokenizer_prepends = bool(cfg.tokenizer_prepends_bos)
        if prepend and not tokenizer_prepends:
            text = get_input_with_manually_prepended_bos(tok.bos_token, text)
        ids = list(tok(text)["input_ids"])
    if truncate:
        ids = ids[: cfg.n_ctx]
    if not prepend and tokenizer_prepends and tok.bos_token_id is not None:
        ids = ids[1:]
    return ids


def encode_batch(
    model: Model, texts: str | list[str], prepend_bos: object = None, padding_side: object = None
) -> Tensor:
    """The [batch, pos] tokens a forward call makes of text input (``model(texts,
    prepend_bos=..., padding_side=...)``), padded on ``padding_side`` (default: the
    tokenizer's), without setting the model's defaults. ``None`` or TransformerLens's
    ``USE_DEFAULT_VALUE`` means the model's default."""
    prepend = prepend_bos if isinstance(prepend_bos, bool) else None
    side = padding_side if padding_side in ("left", "right") else model.tokenizer.padding_side
    texts = [texts] if isinstance(texts, str) else list(texts)
    if is_bridge(model):
        with _tokenizer_lock(model.tokenizer):
            return model.to_tokens(texts, prepend_bos=prepend, padding_side=side)
    rows = [encode(model, t, prepend_bos=prepend) for t in texts]
    n = max(len(r) for r in rows)
    out = torch.full((len(rows), n), model.tokenizer.pad_token_id or 0, dtype=torch.long)
    for i, r in enumerate(rows):
        at = slice(n - len(r), n) if side == "left" else slice(0, len(r))
        out[i, at] = torch.tensor(r, dtype=torch.long)
    return out.to(model.cfg.device)


def pieces(model: Model, ids: list[int]) -> list[str]:
    """Each token of ``ids`` as a string (what ``model.to_str_tokens`` shows)."""
    return [model.tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in ids]


def _prompt_ids(model: Model, prompt: str) -> list[int]:
    """Token ids of ``prompt`` with the model's leading token (BOS) first."""
    if not isinstance(prompt, str):
        raise SteeringError(f"prompts must be strings, got {type(prompt).__name__}.")
    return encode(model, prompt, prepend_bos=True, truncate=False)


def single_token_id(
    model: Model,
    token: str | int,
    what: str = "pad_token",
    rule: str = "it must be exactly one token (or pass a token id)",
) -> int:
    """The id of a string that must be exactly one token (or a token id, checked against
    the vocabulary). A string of several tokens raises, naming it as ``what`` with its
    pieces and then ``rule`` (what the caller allows)."""
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < model.cfg.d_vocab:
            raise SteeringError(
                f"{what} id {token} outside the vocabulary 0..{model.cfg.d_vocab - 1}."
            )
        return token
    ids = encode(model, token, prepend_bos=False)
    if len(ids) != 1:
        raise SteeringError(
            f"{what} {token!r} is {len(ids)} tokens ({pieces(model, ids)}); {rule}."
        )
    return ids[0]


def align_pair(
    pos_ids: list[int], neg_ids: list[int], equalize: Equalize, pad_id: int
) -> tuple[list[int], list[int]]:
    """Make two BOS-prefixed token lists the same length (see ``SteeringVector.from_pair``)."""
    n = max(len(pos_ids), len(neg_ids))
    if equalize == "truncate":
        m = min(len(pos_ids), len(neg_ids))
        return pos_ids[:m], neg_ids[:m]

    def padded(ids: list[int]) -> list[int]:
        fill = [pad_id] * (n - len(ids))
        return ids + fill if equalize == "right" else ids[:1] + fill + ids[1:]

    return padded(pos_ids), padded(neg_ids)


def pair_token_ids(
    model: Model,
    positive: str,
    negative: str,
    equalize: str = "right",
    pad_token: str | int = " ",
) -> tuple[list[int], list[int]]:
    """The two aligned, leading-token-prefixed id lists that :meth:`SteeringVector.from_pair`
    takes the difference of."""
    if not isinstance(positive, str) or not isinstance(negative, str):
        raise SteeringError("The two sides of a pair must be strings.")
    if not positive and not negative:
        raise SteeringError("Both prompts are empty; at least one side needs text.")
    equalize = equalize_rule(equalize, None)
    pad_id = single_token_id(model, pad_token)
    pos_ids, neg_ids = (_prompt_ids(model, p) for p in (positive, negative))
    longest = max(len(pos_ids), len(neg_ids))
    if longest > model.cfg.n_ctx:
        raise SteeringError(
            f"A prompt of the pair is {longest} tokens, past the model's context of "
            f"{model.cfg.n_ctx}: shorten it."
        )
    return align_pair(pos_ids, neg_ids, equalize, pad_id)
