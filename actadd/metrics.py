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
from transformer_lens import HookedTransformer

from actadd.errors import ConfigError

WEDDING_WORDS: tuple[str, ...] = (
    "wedding",
    "weddings",
    "wed",
    "marry",
    "married",
    "marriage",
    "bride",
    "groom",
    "honeymoon",
)
ANGER_WORDS: tuple[str, ...] = (
    "anger",
    "angry",
    "furious",
    "rage",
    "hate",
    "mad",
    "outraged",
    "annoyed",
    "livid",
)
LOVE_WORDS: tuple[str, ...] = ("love", "loving", "loved", "adore", "affection", "care", "kind")
TOPIC_PRESETS: dict[str, tuple[str, ...]] = {
    "weddings": WEDDING_WORDS,
    "anger": ANGER_WORDS,
    "love": LOVE_WORDS,
}


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
    model: HookedTransformer,
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
    for word in words:
        variants = {word, word.capitalize()}
        if with_space:
            variants |= {" " + v for v in list(variants)}
        found = []
        for v in sorted(variants):
            toks = model.to_tokens(v, prepend_bos=False)[0]
            if len(toks) == 1:
                found.append(int(toks[0]))
        if not found and strict:
            raise ConfigError(
                f"Target word {word!r} is not a single token in {model.cfg.model_name} "
                f"(e.g. {model.to_str_tokens(' ' + word, prepend_bos=False)}); next-token "
                "metrics need single-token targets. Use another word or strict=False."
            )
        ids += [i for i in found if i not in ids]
    return ids


@torch.no_grad()
def perplexity(
    model: HookedTransformer, texts: Sequence[str], *, batch_size: int = 8
) -> np.ndarray:
    """Per-text perplexity (each text BOS-prefixed; the BOS itself is not scored).

    Any active :func:`actadd.steering` context applies (prompts are right-padded; the
    attention mask keeps padding out).
    """
    out: list[float] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        ids = [model.to_tokens(t, prepend_bos=True)[0] for t in chunk]
        n = max(len(i) for i in ids)
        pad = model.tokenizer.pad_token_id
        tokens = torch.full((len(ids), n), pad, dtype=torch.long, device=model.cfg.device)
        mask = torch.zeros_like(tokens)
        for r, i in enumerate(ids):
            tokens[r, : len(i)] = i
            mask[r, : len(i)] = 1
        lp = log_probs(model(tokens, attention_mask=mask, padding_side="right"))
        tok_lp = lp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        m = mask[:, 1:].float()
        nll = -(tok_lp * m).sum(-1) / m.sum(-1).clamp(min=1)
        out += torch.exp(nll).tolist()
    return np.asarray(out)


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


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (float(centre - half), float(centre + half))


def newcombe_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = 1.96
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for a difference of proportions ``p_a − p_b``.

    Built from the two Wilson intervals (Newcombe 1998, method 10); 95% by default. It stays
    inside [-1, 1] and behaves at 0 or n successes, where the Wald interval collapses.
    """
    if n_a == 0 or n_b == 0:
        return (float("nan"), float("nan"))
    pa, pb = successes_a / n_a, successes_b / n_b
    la, ua = wilson_interval(successes_a, n_a, z)
    lb, ub = wilson_interval(successes_b, n_b, z)
    d = pa - pb
    lo = d - np.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    hi = d + np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return (float(lo), float(hi))


def proportion_summary(
    df,
    metric: str = "topic_any",
    keys: Sequence[str] = ("pair", "pad", "layer", "coeff", "align"),
    z: float = 1.96,
):
    """Per-cell proportion of a 0/1 metric from a tidy sweep table, with confidence intervals.

    Returns one row per cell (``keys``) with ``successes, n, frac, lo, hi`` (Wilson) and,
    when the table has unsteered rows (``layer < 0``), ``diff, diff_lo, diff_hi``: the
    difference from the unsteered proportion with Newcombe's interval (95% by default).
    """
    import pandas as pd

    sel = df[df["metric"] == metric]
    if sel.empty:
        raise ConfigError(f"No rows for metric {metric!r}.")
    keys = [k for k in keys if k in sel.columns]
    g = sel.groupby(keys, dropna=False)["value"]
    out = pd.DataFrame({"successes": g.sum().round().astype(int), "n": g.count()}).reset_index()
    out["frac"] = out["successes"] / out["n"]
    ci = [wilson_interval(int(s), int(n), z) for s, n in zip(out["successes"], out["n"])]
    out["lo"], out["hi"] = [c[0] for c in ci], [c[1] for c in ci]
    base = out[out["layer"] < 0]
    if len(base):
        bs, bn = int(base["successes"].sum()), int(base["n"].sum())
        out["diff"] = out["frac"] - bs / bn
        diff = [newcombe_interval(int(s), int(n), bs, bn, z) for s, n in zip(out.successes, out.n)]
        out["diff_lo"], out["diff_hi"] = [d[0] for d in diff], [d[1] for d in diff]
    return out


# two-sided 95% Student-t quantiles by degrees of freedom (above 30: 1.96)
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def t95(dof: float) -> float:
    """Two-sided 95% Student-t quantile for ``dof`` degrees of freedom (table, rounded down)."""
    if not np.isfinite(dof) or dof < 1:
        return float("nan")
    if dof > 30:
        return 1.96
    return _T95[max(k for k in _T95 if k <= dof)]
