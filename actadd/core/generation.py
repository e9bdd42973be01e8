"""Seeded, batched, optionally steered text generation, returned as tidy DataFrames.

:func:`generate` left-pads a batch of prompts, runs a KV-cached sampling loop of its own
(TransformerLens 3.9's ``generate`` rebuilds ``W_U.T.contiguous()`` every step and samples
from global RNG state), and returns one row per (prompt, sample). The loop runs the model's
blocks through :func:`actadd.runtime.fast.fast_path` (every hook point still fires, so steering
works unchanged); on SmolLM2 it generates faster than Hugging Face transformers on the same
weights (``benchmarks/bench_vs_hf.py``).

Randomness is explicit: every (prompt, sample) pair gets its own ``torch.Generator`` seeded
from ``(seed, prompt_index, sample_index)``, so a completion does not depend on the batch
size or on which other prompts share its batch (up to float rounding in batched matmuls).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from actadd.core.ablation import Ablation
from actadd.core.align import default_align

# the one sampling spec lives in the torch-free actadd.core.sampling; re-exported here
from actadd.core.sampling import GREEDY, PAPER_SAMPLING, Sampling  # noqa: F401
from actadd.core.steering import (
    Align,
    OnShort,
    Placement,
    as_placement,
    distinct_rows,
    prompt_is,
    rows_are,
    steering,
)
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError, Validated
from actadd.progress import bar as progress_bar
from actadd.runtime.backends import Model, backend_of
from actadd.runtime.fast import StaticKVCache, forward_mode
from actadd.runtime.forward import last_logits, left_pad
from actadd.runtime.modellock import exclusive
from actadd.runtime.tokens import encode

__all__ = [
    "GREEDY",
    "PAPER_SAMPLING",
    "TOP_P_PREFILTER",
    "Sampling",
    "compare",
    "generate",
    "generate_tokens",
    "next_tokens",
    "sample_seed",
]


def sample_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The generator seed of one (prompt, sample) pair."""
    return int(np.random.SeedSequence([seed, prompt_index, sample_index]).generate_state(1)[0])


def next_tokens(
    logits: Tensor, counts: Tensor, sampling: Sampling, generators: Sequence[torch.Generator]
) -> Tensor:
    """Pick one token per row from final-position ``logits`` [batch, vocab].

    ``counts`` [batch, vocab] holds how often each token was generated so far (for the
    frequency penalty). Top-p first looks at the ``TOP_P_PREFILTER`` most likely tokens
    only, and draws exactly what the sort of the whole vocabulary would draw (see
    :func:`_prefiltered`); rows it cannot settle go through the full sort.
    """
    logits = logits.float()
    # x * 1.0 and x / 1.0 are x exactly: the paper's settings skip those passes over the vocab
    if sampling.freq_penalty == 1.0:
        logits = logits - counts
    elif sampling.freq_penalty:
        logits = logits - sampling.freq_penalty * counts
    if sampling.greedy:
        return logits.argmax(-1)
    if sampling.temperature != 1.0:
        logits = logits / sampling.temperature
    probs = torch.softmax(logits, dim=-1)
    picks = torch.empty(len(probs), dtype=torch.long, device=probs.device)
    rows = list(range(len(probs)))
    if sampling.top_p < 1:
        rows = _prefiltered(probs, sampling.top_p, generators, picks)
    if rows:
        index = torch.tensor(rows, device=probs.device)
        picks[index] = _full_sort(probs[index], sampling.top_p, [generators[b] for b in rows])
    return picks


# How many of the most likely tokens the top-p prefilter looks at. The paper's top-p 0.3 on
# SmolLM2 keeps a handful of tokens; rows whose nucleus does not fit fall back to the sort.
TOP_P_PREFILTER = 64


def _full_sort(probs: Tensor, top_p: float, generators: Sequence[torch.Generator]) -> Tensor:
    """Top-p by sorting the whole vocabulary: the reference definition of a draw."""
    sorted_p, order = probs.sort(dim=-1, descending=True)
    if top_p < 1:
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
    sorted_p = sorted_p.cpu()
    picks = [
        int(torch.multinomial(sorted_p[b], 1, generator=generators[b]))
        for b in range(len(sorted_p))
    ]
    return order.gather(-1, torch.tensor(picks, device=order.device)[:, None])[:, 0]


def _prefiltered(
    probs: Tensor, top_p: float, generators: Sequence[torch.Generator], picks: Tensor
) -> list[int]:
    """Draw, into ``picks``, every row whose top-p nucleus lies inside its
    ``TOP_P_PREFILTER`` most likely tokens; return the other rows.

    Exactly :func:`_full_sort`'s draw, because for such a row:

    - ``topk`` gives the same first k probabilities as the sort, and the same tokens unless
      two of them tie (rows with a tie next to a kept token are left to the sort);
    - ``cumsum`` accumulates left to right, so the first k partial sums and the kept set
      are the same; the kept set ends inside the first k when the k-th token is dropped and
      the k partial sums exceed ``top_p`` by a margin larger than the rounding of
      ``cumsum - p`` (so no later token can be kept either);
    - ``torch.multinomial`` draws one exponential per entry and takes the argmax of p / q,
      so over the first k entries it picks what it picks over all of them (the rest are
      0), and :func:`_skip` then consumes the random numbers the remaining entries would
      have used. That is an implementation detail of torch, so
      :func:`_prefix_draws_match` checks it once per process; if it fails, every row
      goes to the sort.
    """
    batch, vocab = probs.shape
    k = TOP_P_PREFILTER
    if vocab <= k or not _prefix_draws_match(vocab, k):
        return list(range(batch))
    vals, idx = probs.topk(k, dim=-1)
    csum = vals.cumsum(-1)
    keep = (csum - vals) < top_p
    covered = ~keep[:, -1] & (csum[:, -1] >= top_p + 1e-6)
    tied = ((vals[:, 1:] == vals[:, :-1]) & (keep[:, 1:] | keep[:, :-1])).any(-1)
    ok = (covered & ~tied).tolist()
    kept = vals.masked_fill(~keep, 0.0).cpu()
    rows, chosen = [], []
    for b in range(batch):
        if ok[b]:
            rows.append(b)
            chosen.append(int(torch.multinomial(kept[b], 1, generator=generators[b])))
            _skip(generators[b], vocab - k)
    if rows:
        index = torch.tensor(rows, device=idx.device)
        picks[index] = idx[index, torch.tensor(chosen, device=idx.device)]
    return [b for b in range(batch) if not ok[b]]


def _skip(generator: torch.Generator, n: int) -> None:
    """Advance ``generator`` as drawing ``n`` more exponentials would (one 64-bit draw each)."""
    torch.empty(n, dtype=torch.int64).random_(generator=generator)


@functools.cache
def _prefix_draws_match(vocab: int, k: int) -> bool:
    """Whether ``multinomial`` over the first ``k`` entries of a length-``vocab`` vector
    whose other entries are 0, then :func:`_skip` of ``vocab - k``, picks the same index
    and leaves the generator in the same state as ``multinomial`` over the whole vector."""
    p = torch.zeros(vocab)
    p[: k // 2] = torch.linspace(1.0, 0.01, k // 2)
    for seed in range(3):
        whole, prefix = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(2):
            a = int(torch.multinomial(p, 1, generator=whole))
            b = int(torch.multinomial(p[:k].clone(), 1, generator=prefix))
            _skip(prefix, vocab - k)
            if a != b:
                return False
        if not torch.equal(whole.get_state(), prefix.get_state()):
            return False
    return True


@torch.no_grad()
def generate_tokens(
    model: Model,
    token_lists: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    *,
    max_new_tokens: int,
    sampling: Sampling = PAPER_SAMPLING,
    use_cache: bool = True,
    stop_ids: Sequence[int] = (),
    fast: bool = True,
) -> list[list[int]]:
    """Generate continuations of a batch of token lists (each with its leading token).

    Prompts are left-padded; each row is steered and sampled exactly as if it were alone.
    Any active :func:`actadd.steering` context applies, with the prompt pinned so that
    prompt alignments stay on the prompt with or without the KV cache.

    ``fast`` runs the blocks through :func:`actadd.runtime.fast.fast_path` (SDPA attention,
    hook points called only when hooked) with a preallocated KV cache, under
    ``torch.inference_mode``; ``fast=False`` is TransformerLens's own forward and cache
    under ``torch.no_grad``, for comparison. Both give the same tokens (the logits agree
    to float rounding, < 1e-4 on SmolLM2). Inside
    :func:`actadd.runtime.fast.transformerlens_forward`, ``fast`` is ``False``.
    """
    with (
        # holds the model's lock: the decoding loop pins the prompt on its steering contexts
        forward_mode(model, fast) as fast,
        torch.inference_mode() if fast else nullcontext(),
    ):
        return _decode(
            model,
            token_lists,
            generators,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            use_cache=use_cache,
            stop_ids=stop_ids,
            fast=fast,
        )


def _decode(
    model: Model,
    token_lists: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    *,
    max_new_tokens: int,
    sampling: Sampling,
    use_cache: bool,
    stop_ids: Sequence[int],
    fast: bool,
) -> list[list[int]]:
    backend = backend_of(model)
    tokens, mask = left_pad(model, token_lists)
    batch, device = tokens.shape[0], tokens.device
    counts = torch.zeros(batch, model.cfg.d_vocab_out, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    out: list[Tensor] = []
    if not use_cache:
        cache = None
    elif fast:
        capacity = tokens.shape[1] + max_new_tokens
        cache = StaticKVCache.allocate(model.cfg, device, batch, capacity)
    else:
        cache = backend.new_cache(model, batch)
    with prompt_is(model, mask):
        if isinstance(cache, StaticKVCache):
            logits, cache = _prompt_pass(model, tokens, mask, cache)
        elif cache is not None:
            logits = last_logits(
                model, tokens, attention_mask=mask, **backend.cache_kwargs(model, cache)
            )
        else:
            logits = last_logits(model, tokens, attention_mask=mask)
        for step in range(max_new_tokens):
            new = next_tokens(logits, counts, sampling, generators)
            out.append(torch.where(done, -1, new))
            counts[torch.arange(batch, device=device), new] += 1
            if len(stop):
                done |= torch.isin(new, stop)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(new[:, None])], dim=1)
            if use_cache:
                logits = last_logits(
                    model,
                    new[:, None],
                    attention_mask=backend.step_mask(mask, 1),
                    **backend.cache_kwargs(model, cache),
                )
            else:
                tokens = torch.cat([tokens, new[:, None]], dim=1)
                logits = last_logits(model, tokens, attention_mask=mask)
    if not out:
        return [[] for _ in range(batch)]
    gen = torch.stack(out, dim=1).tolist()
    return [[t for t in row if t >= 0] for row in gen]


def _prompt_pass(
    model: Model, tokens: Tensor, mask: Tensor, cache: StaticKVCache
) -> tuple[Tensor, StaticKVCache]:
    """The prompt's forward pass, once per distinct row: rows with the same tokens and the
    same steering (several samples of one prompt and setting) share it, and each copy gets
    its own rows of the filled cache. Returns the last position's logits [batch, vocab]
    and the cache."""
    rep = distinct_rows(model, tokens, mask)
    unique = sorted(set(rep))
    if len(unique) == len(rep):
        return last_logits(model, tokens, attention_mask=mask, past_kv_cache=cache), cache
    where = {b: i for i, b in enumerate(unique)}
    inverse = torch.tensor([where[r] for r in rep], device=tokens.device)
    index = torch.tensor(unique, device=tokens.device)
    capacity = cache.entries[0].capacity
    small = StaticKVCache.allocate(model.cfg, tokens.device, len(unique), capacity)
    with rows_are(model, index):
        logits = last_logits(model, tokens[index], attention_mask=mask[index], past_kv_cache=small)
    return logits.index_select(0, inverse), small.select_rows(inverse)


def _as_list(prompts: Validated[str | Sequence[str]]) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts) if isinstance(prompts, (list, tuple)) else prompts
    if not isinstance(prompts, list) or not prompts:
        raise SteeringError(f"No prompts given: a string or a non-empty list, got {prompts!r}.")
    if not all(isinstance(p, str) for p in prompts):
        raise SteeringError("prompts must be strings.")
    return prompts


def _vector_columns(vectors, align) -> dict:
    if vectors is None:
        return dict(steered=False, vector="", layer=pd.NA, coeff=pd.NA, align="")
    single = (SteeringVector, Placement, Ablation)
    items = [vectors] if isinstance(vectors, single) else vectors
    ablated = [v for v in items if isinstance(v, Ablation)]
    vecs = [as_placement(v).vector for v in items if not isinstance(v, Ablation)]
    coeffs = {v.provenance.get("coeff") for v in vecs}
    layers = {v.layer for v in vecs}
    return dict(
        steered=True,
        vector=" + ".join([a.describe() for a in ablated] + [v.describe() for v in vecs]),
        layer=layers.pop() if len(layers) == 1 else pd.NA,
        coeff=coeffs.pop() if len(coeffs) == 1 and None not in coeffs else pd.NA,
        align=", ".join(dict.fromkeys(str(a) for a in _aligns(items, align))),
    )


def _aligns(items, align) -> list[Align]:
    """The alignment each vector of ``items`` is placed with (``align``: the default; None:
    the vector's own, :func:`~actadd.core.align.default_align`)."""
    default = None if align is None else Align.parse(align)
    placed = [as_placement(v) for v in items if not isinstance(v, Ablation)]
    return [p.align or default or default_align(p.vector.k) for p in placed]


def generate(
    model: Model,
    prompts: str | Sequence[str],
    vectors: SteeringVector | Ablation | Sequence | None = None,
    align: Align | str | int | Sequence[int] | None = None,
    *,
    max_new_tokens: Validated[int] = 40,
    n_samples: Validated[int] = 1,
    seed: Validated[int] = 0,
    sampling: Sampling = PAPER_SAMPLING,
    batch_size: Validated[int] = 16,
    use_cache: bool = True,
    stop_at_eos: bool = False,
    on_short: OnShort = "error",
    progress: bool | None = None,
) -> pd.DataFrame:
    """Generate ``n_samples`` completions per prompt, steered by ``vectors`` if given.

    Returns one row per (prompt, sample) with columns ``prompt_index, prompt, sample, seed,
    completion, n_tokens, steered, vector, layer, coeff, align, sampling, model``.
    ``progress=None`` shows a bar only on a terminal.
    """
    prompts = _as_list(prompts)
    for name, value, least in (
        ("max_new_tokens", max_new_tokens, 0),
        ("n_samples", n_samples, 1),
        ("batch_size", batch_size, 1),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SteeringError(f"{name} must be an int >= {least}, got {value!r}.")
    jobs = [(i, s) for i in range(len(prompts)) for s in range(n_samples)]
    ids = [encode(model, p, prepend_bos=True, truncate=False) for p in prompts]
    longest = max(len(t) for t in ids)
    if longest + max_new_tokens > model.cfg.n_ctx:
        raise SteeringError(
            f"The longest prompt is {longest} tokens; with max_new_tokens={max_new_tokens} the "
            f"sequence would pass the model's context of {model.cfg.n_ctx} tokens. Shorten "
            "the prompt or generate fewer tokens."
        )
    stop_ids = [model.tokenizer.eos_token_id] if stop_at_eos and model.tokenizer else []
    completions: list[list[int]] = []
    steer_ctx = (
        steering(model, vectors, align, on_short=on_short) if vectors is not None else nullcontext()
    )
    with (
        exclusive(model),  # another thread's call on this model waits (actadd.runtime.modellock)
        steer_ctx,
        progress_bar(len(jobs), "generate", "seq", progress, leave=False) as bar,
    ):
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            gens = [torch.Generator().manual_seed(sample_seed(seed, i, s)) for i, s in chunk]
            completions += generate_tokens(
                model,
                [ids[i] for i, _ in chunk],
                gens,
                max_new_tokens=max_new_tokens,
                sampling=sampling,
                use_cache=use_cache,
                stop_ids=stop_ids,
            )
            bar.update(len(chunk))
    meta = _vector_columns(vectors, align)
    rows = []
    for (i, s), toks in zip(jobs, completions):
        text_toks = [t for t in toks if t not in stop_ids]
        rows.append(
            dict(
                prompt_index=i,
                prompt=prompts[i],
                sample=s,
                seed=sample_seed(seed, i, s),
                completion=model.tokenizer.decode(text_toks),
                n_tokens=len(toks),
                **meta,
                sampling=str(asdict(sampling)),
                model=model.cfg.model_name,
            )
        )
    return pd.DataFrame(rows)


def compare(
    model: Model,
    prompts: str | Sequence[str],
    vectors: SteeringVector | Sequence,
    align: Align | str | int | Sequence[int] | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Steered and unsteered completions side by side, same seeds: one row per
    (prompt, sample) with columns ``prompt, sample, unsteered, steered``."""
    base = generate(model, prompts, None, **kwargs)
    steered = generate(model, prompts, vectors, align, **kwargs)
    out = base[["prompt_index", "prompt", "sample"]].copy()
    out["unsteered"] = base["completion"].values
    out["steered"] = steered["completion"].values
    out.attrs["vector"] = steered["vector"].iloc[0]
    return out
