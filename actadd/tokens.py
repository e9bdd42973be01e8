"""Tokens of a contrast pair: both prompts with the model's leading token, made the same
length by the pair-length rule (``equalize``), padded with a single-token ``pad_token``.

:func:`pair_token_ids` is exactly what :meth:`actadd.vectors.SteeringVector.from_pair` takes
the residual difference of; the token-injection analysis and the diagnostics read it too.
"""

from __future__ import annotations

import warnings
from typing import Literal

from actadd.backends import Model
from actadd.errors import SteeringError

# How the two prompts of a pair are made the same length (``equalize=``).
Equalize = Literal["right", "left", "truncate"]
EQUALIZE_RULES: tuple[str, ...] = ("right", "left", "truncate")


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


def _prompt_ids(model: Model, prompt: str) -> list[int]:
    """Token ids of ``prompt`` with the model's leading token (BOS) first."""
    if not isinstance(prompt, str):
        raise SteeringError(f"prompts must be strings, got {type(prompt).__name__}.")
    return model.to_tokens(prompt, prepend_bos=True, truncate=False)[0].tolist()


def single_token_id(model: Model, token: str | int, what: str = "pad_token") -> int:
    """The id of a string that must be exactly one token (or a token id, checked against
    the vocabulary)."""
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < model.cfg.d_vocab:
            raise SteeringError(
                f"{what} id {token} outside the vocabulary 0..{model.cfg.d_vocab - 1}."
            )
        return token
    ids = model.to_tokens(token, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        pieces = model.to_str_tokens(token, prepend_bos=False)
        raise SteeringError(
            f"{what} {token!r} is {len(ids)} tokens ({pieces}); it must be exactly one "
            "token (or pass a token id)."
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
