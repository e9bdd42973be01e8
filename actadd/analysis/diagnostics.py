"""Diagnostics of a steering vector: how big it is, whether it still looks like its tokens,
and what it says through the logit lens.

All functions read a :class:`~actadd.vectors.SteeringVector` (shape ``[k, d_model]`` at a
``resid_pre`` layer) against the model it was made for, and return tidy DataFrames:

- :func:`typical_norm` — the typical residual-stream norm at a layer (leading token excluded);
- :func:`norm_ratios` — per-row norm of the vector relative to the prompt's residual norms at
  the positions the row lands on (front alignment);
- :func:`embedding_cosines` — cosine of each row to the token embeddings of p+ / p− at that
  position, to their difference, and the rank of the p+ token among the whole vocabulary;
- :func:`logit_lens` — top tokens of each row (and of the sum of the rows after the leading
  one) after the final norm and the unembedding;
- :func:`vector_diagnostics` / :func:`logit_lens_across_layers` — the above for a pair's
  vector at every layer in a list.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from actadd.errors import ConfigError, SteeringError
from actadd.generate import left_pad
from actadd.hooks import check_layer, resid_pre
from actadd.vectors import PAIR_ALIGNS, SteeringVector, align_pair

# ---------------------------------------------------------------------- tokens of a pair


def pad_token_id(model: HookedTransformer, pad_token: str | int = " ") -> int:
    """The id of a single-token pad string (or a token id, checked against the vocabulary)."""
    if isinstance(pad_token, int) and not isinstance(pad_token, bool):
        if not 0 <= pad_token < model.cfg.d_vocab:
            raise SteeringError(
                f"pad token id {pad_token} outside the vocabulary 0..{model.cfg.d_vocab - 1}."
            )
        return pad_token
    ids = model.to_tokens(pad_token, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        raise SteeringError(f"pad_token {pad_token!r} must be exactly one token, got {len(ids)}.")
    return ids[0]


def pair_token_ids(
    model: HookedTransformer,
    positive: str,
    negative: str,
    pad: str = "right",
    pad_token: str | int = " ",
) -> tuple[list[int], list[int]]:
    """The two aligned, leading-token-prefixed id lists that ``SteeringVector.from_pair``
    takes the difference of (same padding rules)."""
    if not isinstance(positive, str) or not isinstance(negative, str):
        raise SteeringError("The two sides of a pair must be strings.")
    if not positive and not negative:
        raise SteeringError("Both prompts of the pair are empty; at least one side needs text.")
    if pad not in PAIR_ALIGNS:
        raise SteeringError(f"Unknown pair alignment {pad!r}; allowed: {PAIR_ALIGNS}.")
    pos = model.to_tokens(positive, prepend_bos=True)[0].tolist()
    neg = model.to_tokens(negative, prepend_bos=True)[0].tolist()
    return align_pair(pos, neg, pad, pad_token_id(model, pad_token))


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """A non-empty list of non-empty strings, or a ConfigError naming ``what``."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ConfigError(f"No {what} given: at least one non-empty string is needed.")
    bad = [t for t in texts if not isinstance(t, str) or not t]
    if bad:
        raise ConfigError(f"{what} must be non-empty strings; got {bad[:3]!r}.")
    return texts


# ---------------------------------------------------------------------- norms


@torch.no_grad()
def residual_stack(
    model: HookedTransformer,
    tokens: Tensor,
    layers: Sequence[int],
    attention_mask: Tensor | None = None,
) -> dict[int, Float[Tensor, "batch pos d_model"]]:
    """Unsteered ``resid_pre`` of ``tokens`` [batch, pos] at ``layers``: ``{layer: resid}``.

    One forward pass, stopped after the deepest layer asked for (never unembedded).
    """
    layers = sorted({check_layer(model, int(layer)) for layer in layers})
    if not layers:
        raise ConfigError("No layers given.")
    names = {resid_pre(model, layer): layer for layer in layers}
    stop = min(max(layers) + 1, model.cfg.n_layers)
    _, cache = model.run_with_cache(
        tokens, attention_mask=attention_mask, names_filter=list(names), stop_at_layer=stop
    )
    return {layer: cache[name] for name, layer in names.items()}


def residuals(
    model: HookedTransformer, texts: Sequence[str], layers: Sequence[int]
) -> tuple[dict[int, Float[Tensor, "batch pos d_model"]], Tensor]:
    """Unsteered residual streams of ``texts`` (left-padded batch) at ``layers``.

    Returns ``({layer: resid [batch, pos, d_model]}, attention_mask [batch, pos])``.
    """
    texts = check_texts(texts)
    tokens, mask = left_pad(model, [model.to_tokens(t)[0].tolist() for t in texts])
    return residual_stack(model, tokens, layers, mask), mask


def typical_norm_of(resid: Float[Tensor, "batch pos d_model"], mask: Tensor) -> float:
    """Mean L2 norm of the real (unpadded) positions of ``resid``, leading token left out.

    The leading token's residual is an outlier ("attention sink") on most models, and a
    pair's vector is ≈ 0 there anyway. Falls back to every real position if the texts are
    one token long.
    """
    real = mask.bool().clone()
    first = real.int().argmax(-1)  # first real position of each row
    without_lead = real.clone()
    without_lead[torch.arange(len(real)), first] = False
    use = without_lead if bool(without_lead.any()) else real
    return float(resid.norm(dim=-1)[use.to(resid.device)].mean())


def typical_norm(model: HookedTransformer, texts: Sequence[str], layer: int) -> float:
    """Typical residual norm at ``resid_pre`` of ``layer`` over ``texts`` (see
    :func:`typical_norm_of`)."""
    res, mask = residuals(model, texts, [layer])
    return typical_norm_of(res[layer], mask)


@torch.no_grad()
def norm_ratios(
    model: HookedTransformer, vector: SteeringVector, prompts: Sequence[str]
) -> pd.DataFrame:
    """Per-row norm of ``vector`` against the prompts' residual norms where the row lands.

    Row ``j`` is added at prompt position ``j`` (front alignment), so its norm is compared
    with the mean norm of position ``j`` over the prompts that have one. Columns: ``row,
    vec_norm, prompt_norm, norm_ratio, typical_norm, typical_ratio`` (``typical_*``: against
    the mean norm of all non-leading positions, see :func:`typical_norm_of`).
    """
    prompts = check_texts(prompts, "prompts")
    layer = check_layer(model, vector.layer)
    res, mask = residuals(model, prompts, [layer])
    return _norm_table(vector, res[layer], mask)


def _norm_table(vector: SteeringVector, resid: Tensor, mask: Tensor) -> pd.DataFrame:
    mask = mask.bool()
    typical = typical_norm_of(resid, mask)
    norms = vector.norms().cpu()
    records = []
    for j in range(vector.k):
        at_j = []
        for b in range(resid.shape[0]):
            real = torch.nonzero(mask[b], as_tuple=True)[0]
            if j < len(real):
                at_j.append(float(resid[b, real[j]].norm()))
        prompt_norm = sum(at_j) / len(at_j) if at_j else float("nan")
        records.append(
            dict(
                row=j,
                vec_norm=float(norms[j]),
                prompt_norm=prompt_norm,
                norm_ratio=float(norms[j]) / prompt_norm if at_j else float("nan"),
                typical_norm=typical,
                typical_ratio=float(norms[j]) / typical,
            )
        )
    return pd.DataFrame(records)


# ---------------------------------------------------------------------- embeddings


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-12)


@torch.no_grad()
def embedding_cosines(
    model: HookedTransformer,
    vector: SteeringVector,
    positive: str,
    negative: str,
    *,
    pad: str = "right",
    pad_token: str | int = " ",
) -> pd.DataFrame:
    """Cosine similarity of each row of ``vector`` to the token embeddings of the pair.

    Row ``j`` is compared with the embeddings ``W_E`` of the ``j``-th (aligned) tokens of
    p+ and p−, and with their difference; ``pos_token_rank`` is the rank (0 = most similar)
    of the p+ token among the whole vocabulary by cosine with the row. Rows beyond the pair's
    length (e.g. after algebra) get NaN. Columns: ``row, token_pos, token_neg, cos_pos,
    cos_neg, cos_diff, pos_token_rank``.
    """
    pos_ids, neg_ids = pair_token_ids(model, positive, negative, pad, pad_token)
    W_E = model.W_E.detach().float()
    t = vector.tensor.to(W_E.device).float()
    unit = lambda x: x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # noqa: E731
    cos_all = unit(t) @ unit(W_E).T  # [k, d_vocab]
    records = []
    for j in range(vector.k):
        rec = dict(row=j, token_pos="", token_neg="", cos_pos=float("nan"))
        rec.update(cos_neg=float("nan"), cos_diff=float("nan"), pos_token_rank=-1)
        if j < len(pos_ids):
            p, n = pos_ids[j], neg_ids[j]
            row = t[j]
            rec.update(
                token_pos=model.to_string([p]),
                token_neg=model.to_string([n]),
                cos_pos=float(_cos(row, W_E[p])),
                cos_neg=float(_cos(row, W_E[n])),
                cos_diff=float(_cos(row, W_E[p] - W_E[n])) if p != n else float("nan"),
                pos_token_rank=int((cos_all[j] > cos_all[j, p]).sum()),
            )
        records.append(rec)
    return pd.DataFrame(records)


# ---------------------------------------------------------------------- logit lens


@torch.no_grad()
def logit_lens(
    model: HookedTransformer, vector: SteeringVector, k: int = 10, *, rows: str = "sum"
) -> pd.DataFrame:
    """Top-``k`` tokens of the vector read through the final norm and the unembedding.

    ``rows="sum"`` reads the sum of the rows after the leading one (row 0 is ≈ 0 for a pair
    that shares its leading token; a 1-row vector reads its only row); ``rows="each"`` reads
    every row. Columns: ``row`` (an int, or ``"sum"``), ``rank, token, token_id, logit``.
    """
    if k < 1:
        raise SteeringError(f"k must be >= 1, got {k}.")
    if rows not in ("sum", "each"):
        raise SteeringError(f"rows must be 'sum' or 'each', got {rows!r}.")
    t = vector.tensor.to(model.cfg.device, model.cfg.dtype)
    if rows == "sum":
        reads = [("sum", t[1:].sum(0) if vector.k > 1 else t[0])]
    else:
        reads = list(enumerate(t))
    x = torch.stack([r for _, r in reads])[None]  # [1, n, d_model]
    logits = model.unembed(model.ln_final(x))[0].float()
    top = logits.topk(min(k, logits.shape[-1]), dim=-1)
    records = []
    for i, (label, _) in enumerate(reads):
        for rank, (tid, val) in enumerate(zip(top.indices[i].tolist(), top.values[i].tolist())):
            records.append(
                dict(row=label, rank=rank, token=model.to_string([tid]), token_id=tid, logit=val)
            )
    return pd.DataFrame(records)


# ---------------------------------------------------------------------- across layers


def vector_diagnostics(
    model: HookedTransformer,
    positive: str,
    negative: str,
    layers: Sequence[int],
    prompts: Sequence[str],
    *,
    coeff: float = 1.0,
    pad: str = "right",
    pad_token: str | int = " ",
) -> pd.DataFrame:
    """Norm ratios and embedding cosines of the pair's vector at each of ``layers``.

    One row per (layer, vector row), columns of :func:`norm_ratios` and
    :func:`embedding_cosines` plus ``layer``, ``coeff`` and ``d_model``. Two forward passes.
    """
    prompts = check_texts(prompts, "prompts")
    layers = sorted({int(layer) for layer in layers})
    if not layers:
        raise ConfigError("No layers given.")
    vecs = SteeringVector.from_pair_layers(
        model, positive, negative, layers, coeff, pad=pad, pad_token=pad_token
    )
    res, mask = residuals(model, prompts, layers)
    frames = []
    for layer in layers:
        norms = _norm_table(vecs[layer], res[layer], mask)
        cos = embedding_cosines(
            model, vecs[layer], positive, negative, pad=pad, pad_token=pad_token
        )
        df = norms.merge(cos, on="row")
        df.insert(0, "layer", layer)
        df.insert(1, "coeff", float(coeff))
        df["d_model"] = model.cfg.d_model
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def logit_lens_across_layers(
    model: HookedTransformer,
    positive: str,
    negative: str,
    layers: Sequence[int],
    k: int = 10,
    *,
    pad: str = "right",
    pad_token: str | int = " ",
) -> pd.DataFrame:
    """:func:`logit_lens` (``rows="sum"``) of the pair's vector at each of ``layers``."""
    layers = sorted({int(layer) for layer in layers})
    if not layers:
        raise ConfigError("No layers given.")
    vecs = SteeringVector.from_pair_layers(
        model, positive, negative, layers, pad=pad, pad_token=pad_token
    )
    frames = []
    for layer in layers:
        df = logit_lens(model, vecs[layer], k)
        df.insert(0, "layer", layer)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
