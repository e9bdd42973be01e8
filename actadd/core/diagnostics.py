"""Diagnostics of a steering vector: how big it is, whether it still looks like its tokens,
and what it says through the logit lens.

All functions read a :class:`~actadd.core.vectors.SteeringVector` (shape ``[k, d_model]`` at a
``resid_pre`` layer) against the model it was made for, and return tidy DataFrames:

- :func:`typical_norm` — the typical residual-stream norm at a layer (leading token excluded);
- :func:`residuals` — texts as a :class:`~actadd.core.prefix.PrefixBatch` with clean residuals;
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
from torch import Tensor

from actadd.config import text_list
from actadd.core.prefix import PrefixBatch
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError, SteeringError
from actadd.runtime.backends import Model
from actadd.runtime.hooks import check_layer
from actadd.runtime.tokens import Equalize, encode, pair_token_ids

__all__ = [
    "embedding_cosines",
    "logit_lens",
    "logit_lens_across_layers",
    "norm_ratios",
    "residuals",
    "typical_norm",
    "vector_diagnostics",
]

# ---------------------------------------------------------------------- norms


def residuals(
    model: Model, texts: Sequence[str], layers: Sequence[int]
) -> tuple[PrefixBatch, list[int]]:
    """The texts as a left-padded :class:`~actadd.core.prefix.PrefixBatch` with their clean
    residual streams at ``layers`` computed (one forward pass), and the checked layers."""
    texts = text_list(texts, "texts")
    layers = sorted({check_layer(model, int(layer)) for layer in layers})
    if not layers:
        raise ConfigError("No layers given.")
    batch = PrefixBatch(model, [encode(model, t) for t in texts])
    batch.prefetch(layers)
    return batch, layers


def typical_norm(model: Model, texts: Sequence[str], layer: int) -> float:
    """Typical residual norm at ``resid_pre`` of ``layer`` over ``texts`` (see
    :func:`actadd.runtime.forward.typical_norm`)."""
    batch, _ = residuals(model, texts, [layer])
    return batch.typical_norm(layer)


@torch.no_grad()
def norm_ratios(model: Model, vector: SteeringVector, prompts: Sequence[str]) -> pd.DataFrame:
    """Per-row norm of ``vector`` against the prompts' residual norms where the row lands.

    Row ``j`` is added at prompt position ``j`` (front alignment), so its norm is compared
    with the mean norm of position ``j`` over the prompts that have one. Columns: ``row,
    vec_norm, prompt_norm, norm_ratio, typical_norm, typical_ratio`` (``typical_*``: against
    the mean norm of all non-leading positions, see :func:`typical_norm_of`).
    """
    batch, (layer,) = residuals(model, text_list(prompts, "prompts"), [vector.layer])
    return _norm_table(vector, batch, layer)


def _norm_table(vector: SteeringVector, batch: PrefixBatch, layer: int) -> pd.DataFrame:
    mask = batch.mask.bool()
    (resid,) = batch.resid(layer)
    typical = batch.typical_norm(layer)
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
    model: Model,
    vector: SteeringVector,
    positive: str,
    negative: str,
    *,
    equalize: Equalize = "right",
    pad_token: str | int = " ",
) -> pd.DataFrame:
    """Cosine similarity of each row of ``vector`` to the token embeddings of the pair.

    Row ``j`` is compared with the embeddings ``W_E`` of the ``j``-th (aligned) tokens of
    p+ and p−, and with their difference; ``pos_token_rank`` is the rank (0 = most similar)
    of the p+ token among the whole vocabulary by cosine with the row. Rows beyond the pair's
    length (e.g. after algebra) get NaN. Columns: ``row, token_pos, token_neg, cos_pos,
    cos_neg, cos_diff, pos_token_rank``.
    """
    pos_ids, neg_ids = pair_token_ids(model, positive, negative, equalize, pad_token)
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
    model: Model, vector: SteeringVector, k: int = 10, *, rows: str = "sum"
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
    model: Model,
    positive: str,
    negative: str,
    layers: Sequence[int],
    prompts: Sequence[str],
    *,
    coeff: float = 1.0,
    equalize: Equalize = "right",
    pad_token: str | int = " ",
) -> pd.DataFrame:
    """Norm ratios and embedding cosines of the pair's vector at each of ``layers``.

    One row per (layer, vector row), columns of :func:`norm_ratios` and
    :func:`embedding_cosines` plus ``layer``, ``coeff`` and ``d_model``. Two forward passes.
    """
    batch, layers = residuals(model, text_list(prompts, "prompts"), layers)
    vecs = SteeringVector.from_pair_layers(
        model, positive, negative, layers, coeff, equalize=equalize, pad_token=pad_token
    )
    frames = []
    for layer in layers:
        norms = _norm_table(vecs[layer], batch, layer)
        cos = embedding_cosines(
            model, vecs[layer], positive, negative, equalize=equalize, pad_token=pad_token
        )
        df = norms.merge(cos, on="row")
        df.insert(0, "layer", layer)
        df.insert(1, "coeff", float(coeff))
        df["d_model"] = model.cfg.d_model
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def logit_lens_across_layers(
    model: Model,
    positive: str,
    negative: str,
    layers: Sequence[int],
    k: int = 10,
    *,
    equalize: Equalize = "right",
    pad_token: str | int = " ",
) -> pd.DataFrame:
    """:func:`logit_lens` (``rows="sum"``) of the pair's vector at each of ``layers``."""
    layers = sorted({int(layer) for layer in layers})
    if not layers:
        raise ConfigError("No layers given.")
    vecs = SteeringVector.from_pair_layers(
        model, positive, negative, layers, equalize=equalize, pad_token=pad_token
    )
    frames = []
    for layer in layers:
        df = logit_lens(model, vecs[layer], k)
        df.insert(0, "layer", layer)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
