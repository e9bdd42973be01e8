"""Metrics of steering effects. Pure functions on tensors and texts, each tested.

Next-token metrics (no sampling), on logits ``[..., d_vocab]``:

- :func:`logprob_mass` — log of the probability mass on a set of target tokens;
- :func:`kl_div` — KL(steered ‖ unsteered) per position ("disruption");
- :func:`perplexity` — of given texts under the model (steering applies if active).

Generation metrics, on completion strings:

- :func:`topic_counts` / :func:`topic_fraction` — word-boundary matches of topic words
  (the paper's wedding list is :data:`WEDDING_WORDS`);
- :func:`sentiment` — VADER compound score in [-1, 1] (``vaderSentiment`` ships its lexicon).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.config import WEDDING_WORDS
from actadd.errors import ConfigError
from actadd.runtime.backends import Model
from actadd.runtime.fast import forward_mode
from actadd.runtime.tokens import encode, pieces

__all__ = [
    "kl_div",
    "log_probs",
    "logprob_mass",
    "perplexity",
    "sentiment",
    "target_token_ids",
    "token_logprobs",
    "topic_counts",
    "topic_fraction",
    "topk_overlap",
]

# ---------------------------------------------------------------------- next-token metrics


def log_probs(logits: Float[Tensor, "... d_vocab"]) -> Float[Tensor, "... d_vocab"]:
    return torch.log_softmax(logits.float(), dim=-1)


def logprob_mass(
    logits: Float[Tensor, "... d_vocab"], token_ids: Sequence[int] | Tensor
) -> Float[Tensor, "..."]:
    """``log Σ_{t ∈ token_ids} p(t)``: log-probability mass on a target set."""
    ids = torch.as_tensor(
        list(token_ids) if not isinstance(token_ids, Tensor) else token_ids,
        device=logits.device,
        dtype=torch.long,
    )
    if ids.numel() == 0:
        raise ConfigError("logprob_mass needs at least one target token.")
    return torch.logsumexp(log_probs(logits)[..., ids], dim=-1)


def kl_div(
    logits_p: Float[Tensor, "... d_vocab"], logits_q: Float[Tensor, "... d_vocab"]
) -> Float[Tensor, "..."]:
    """KL(p ‖ q) in nats, per position: with p steered and q unsteered, the disruption."""
    lp, lq = log_probs(logits_p), log_probs(logits_q)
    return (lp.exp() * (lp - lq)).sum(-1)


def topk_overlap(
    logits_a: Float[Tensor, "... d_vocab"], logits_b: Float[Tensor, "... d_vocab"], k: int = 10
) -> Float[Tensor, "..."]:
    """Fraction of shared tokens between the top-k of two distributions."""
    ta = logits_a.topk(k, dim=-1).indices
    tb = logits_b.topk(k, dim=-1).indices
    return (ta[..., :, None] == tb[..., None, :]).any(-1).float().mean(-1)


def target_token_ids(
    model: Model,
    words: Iterable[str],
    *,
    with_space: bool = True,
    strict: bool = True,
) -> list[int]:
    """Token ids of ``words`` for next-token metrics.

    Each word is looked up as written and, with ``with_space``, with a leading space and
    capitalised (``" wedding"``, ``" Wedding"``, ``"wedding"``, ...). Variants that are more
    than one token are skipped. ``strict`` raises when a word has no single-token variant.
    """
    ids: list[int] = []
    missing: list[str] = []
    for word in words:
        variants = {word, word.capitalize()}
        if with_space:
            variants |= {" " + v for v in list(variants)}
        found = []
        for v in sorted(variants):
            toks = encode(model, v, prepend_bos=False)
            if len(toks) == 1:
                found.append(toks[0])
        if not found:
            missing.append(word)
        ids += [i for i in found if i not in ids]
    if missing and strict:  # every such word at once, not one per try
        as_pieces = lambda w: pieces(model, encode(model, " " + w, prepend_bos=False))  # noqa: E731
        split = "; ".join(f"{w!r} is not a single token {as_pieces(w)}" for w in missing[:5])
        raise ConfigError(
            f"Target word(s) in {model.cfg.model_name}: {split}; next-token metrics need "
            "single-token targets: use other words (in Python, strict=False skips them)."
        )
    return ids


@torch.no_grad()
def token_logprobs(
    model: Model,
    token_lists: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    fast: bool = True,
) -> list[np.ndarray]:
    """``lp[t - 1] = log p(token_t | tokens_<t)`` for ``t = 1 .. T-1`` of each token list.

    Any active :func:`actadd.steering` context applies. Rows are right-padded and the
    attention mask keeps the padding out, so each list's numbers are those of its own
    forward (front steering sits on the first positions, which padding never moves).
    ``fast`` runs the blocks through :func:`actadd.runtime.fast.fast_path` (the same logits as
    TransformerLens's forward, which ``fast=False`` runs).
    """
    out: list[np.ndarray] = []
    for start in range(0, len(token_lists), batch_size):
        chunk = [list(t) for t in token_lists[start : start + batch_size]]
        n = max(len(i) for i in chunk)
        pad = model.tokenizer.pad_token_id
        tokens = torch.full((len(chunk), n), pad, dtype=torch.long, device=model.cfg.device)
        mask = torch.zeros_like(tokens)
        for r, i in enumerate(chunk):
            tokens[r, : len(i)] = torch.tensor(i)
            mask[r, : len(i)] = 1
        with forward_mode(model, fast):
            logits = model(tokens, attention_mask=mask)
        tok_lp = log_probs(logits)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        out += [tok_lp[r, : len(i) - 1].double().cpu().numpy() for r, i in enumerate(chunk)]
    return out


def perplexity(
    model: Model, texts: Sequence[str], *, batch_size: int = 8, fast: bool = True
) -> np.ndarray:
    """Per-text perplexity (each text BOS-prefixed; the BOS itself is not scored).

    Any active :func:`actadd.steering` context applies (prompts are right-padded; the
    attention mask keeps padding out). ``fast`` runs the blocks through
    :func:`actadd.runtime.fast.fast_path` (the same logits as TransformerLens's forward, which
    ``fast=False`` runs).
    """
    ids = [encode(model, t, prepend_bos=True) for t in texts]
    lps = token_logprobs(model, ids, batch_size=batch_size, fast=fast)
    return np.asarray([float(np.exp(-lp.mean())) for lp in lps])


# ---------------------------------------------------------------------- text metrics


@lru_cache(maxsize=64)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern:
    if not words:
        raise ConfigError("Topic word list is empty.")
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def topic_counts(texts: Iterable[str], words: Sequence[str] = WEDDING_WORDS) -> np.ndarray:
    """Number of whole-word, case-insensitive matches of ``words`` in each text."""
    pattern = _word_pattern(tuple(words))
    return np.asarray([len(pattern.findall(t)) for t in texts], dtype=int)


def topic_fraction(texts: Iterable[str], words: Sequence[str] = WEDDING_WORDS) -> float:
    """Fraction of texts with at least one topic word (the paper's word-count metric)."""
    counts = topic_counts(texts, words)
    return float((counts > 0).mean()) if len(counts) else float("nan")


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(texts: Iterable[str]) -> np.ndarray:
    """VADER compound sentiment of each text, in [-1, 1] (negative to positive)."""
    analyzer = _vader()
    return np.asarray([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=float)
