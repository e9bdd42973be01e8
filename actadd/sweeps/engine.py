"""The sweep engine: every grid cell's metrics, batched, from a shared clean prefix.

Two things make it fast without changing a number:

1. **Batching.** For one (pair, pad, layer), every (coefficient, alignment) cell × text is
   a row of one forward pass. Each row gets its own steering through
   ``steering(model, [(vector, align, rows), ...])``.
2. **Prefix reuse.** Below layer ``L`` a steered forward equals the unsteered one, so the
   clean residual stream is computed once for all layers; the steered pass starts at
   ``L`` (``start_at_layer``) instead of at the embedding.

:func:`naive_next_token` is the reference it is checked against: one full, hooked forward
per (cell, text), as the paper's code does it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from actadd.generate import Sampling, generate_tokens, left_pad, sample_seed
from actadd.metrics import kl_div, logprob_mass, sentiment, topic_counts
from actadd.steer import Align, steering
from actadd.sweeps.spec import SweepSpec
from actadd.vectors import SteeringVector, residuals_at

UNSTEERED = "(unsteered)"
METRIC_COLUMNS = [
    "pair",
    "pad",
    "layer",
    "coeff",
    "align",
    "text_kind",
    "text_index",
    "sample",
    "metric",
    "value",
]


@dataclass(frozen=True)
class Unit:
    """One resumable unit of work: a (pair, pad, layer) for one kind of metric."""

    kind: str  # "next_token" | "generation"
    pair: int  # index into spec.pairs; -1 for the unsteered baseline
    pad: str
    layer: int

    @property
    def key(self) -> str:
        if self.pair < 0:
            return f"{self.kind}-baseline"
        return f"{self.kind}-pair{self.pair}-{self.pad}-L{self.layer:03d}"


def units(spec: SweepSpec, n_layers: int) -> list[Unit]:
    out: list[Unit] = []
    kinds = (["next_token"] if spec.next_token else []) + (
        ["generation"] if spec.generation else []
    )
    for kind in kinds:
        out.append(Unit(kind, -1, "", -1))
        for p in range(len(spec.pairs)):
            for pad in spec.pads:
                out += [Unit(kind, p, pad, layer) for layer in spec.layer_list(n_layers)]
    return out


def cell_vector(v: SteeringVector, coeff: float, align: Align) -> SteeringVector:
    """The vector a cell adds: ``coeff · v``; for ``align="all"`` its mean over the rows after
    the leading token (one d_model vector for every position)."""
    base = v.mean(skip_first=True) if align.kind == "all" else v
    return base * coeff


class Texts:
    """The next-token texts of a sweep, tokenized once, with their clean activations."""

    def __init__(self, model: HookedTransformer, spec: SweepSpec) -> None:
        self.model = model
        self.kinds = ["prompt"] * len(spec.prompts) + ["neutral"] * len(spec.neutral_texts)
        self.index = list(range(len(spec.prompts))) + list(range(len(spec.neutral_texts)))
        ids = [model.to_tokens(t)[0].tolist() for t in (*spec.prompts, *spec.neutral_texts)]
        self.tokens, self.mask = left_pad(model, ids)
        self.is_prompt = torch.tensor([k == "prompt" for k in self.kinds])
        self.targets = spec.target_ids(model)
        self._resid: dict[int, Tensor] = {}
        with torch.no_grad():
            self.logits = model(self.tokens, attention_mask=self.mask)

    def resid(self, layer: int) -> Tensor:
        if layer not in self._resid:
            self._resid.update(
                residuals_at(self.model, self.tokens, [layer], attention_mask=self.mask)
            )
        return self._resid[layer]

    def prefetch(self, layers: list[int]) -> None:
        missing = [layer for layer in layers if layer not in self._resid]
        if missing:
            self._resid.update(
                residuals_at(self.model, self.tokens, missing, attention_mask=self.mask)
            )

    def metrics(self, logits: Tensor) -> list[tuple[int, str, float]]:
        """(row, metric, value) for steered ``logits`` of the rows [n_texts, pos, vocab]."""
        out = []
        clean = self.logits
        last_lp = logprob_mass(logits[:, -1], self.targets)
        clean_lp = logprob_mass(clean[:, -1], self.targets)
        kl_last = kl_div(logits[:, -1], clean[:, -1])
        # disruption on neutral texts: KL averaged over real positions after the first one
        kl_pos = kl_div(logits, clean)
        real = self.mask.bool().clone()
        first = real.float().argmax(-1)
        real[torch.arange(len(real)), first] = False
        kl_mean = (kl_pos * real).sum(-1) / real.sum(-1).clamp(min=1)
        for r, kind in enumerate(self.kinds):
            if kind == "prompt":
                out += [
                    (r, "target_logprob", float(last_lp[r])),
                    (r, "target_logprob_delta", float(last_lp[r] - clean_lp[r])),
                    (r, "kl_next_token", float(kl_last[r])),
                ]
            else:
                out.append((r, "kl_neutral", float(kl_mean[r])))
        return out

    def baseline(self) -> list[tuple[int, str, float]]:
        lp = logprob_mass(self.logits[:, -1], self.targets)
        return [
            (r, "target_logprob", float(lp[r])) for r, k in enumerate(self.kinds) if k == "prompt"
        ]


def _records(unit_cols: dict, texts: Texts, metrics, **cell) -> list[dict]:
    return [
        dict(
            **unit_cols,
            **cell,
            text_kind=texts.kinds[r],
            text_index=texts.index[r],
            sample=-1,
            metric=m,
            value=v,
        )
        for r, m, v in metrics
    ]


def _chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of at most ``size`` items (at least one item each)."""
    size = max(1, size)
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def next_token_unit(
    model: HookedTransformer,
    spec: SweepSpec,
    texts: Texts,
    unit: Unit,
    vectors: dict[int, SteeringVector] | None,
) -> pd.DataFrame:
    """Next-token metrics of every (coeff, align) cell of one (pair, pad, layer)."""
    if unit.pair < 0:
        rows = _records(
            dict(pair=UNSTEERED, pad="", layer=-1), texts, texts.baseline(), coeff=0.0, align="none"
        )
        return pd.DataFrame(rows, columns=METRIC_COLUMNS)
    pair = spec.pairs[unit.pair]
    v = vectors[unit.layer]
    cells = [(c, a) for c in spec.coeffs for a in spec.align_list()]
    n = len(texts.kinds)
    resid, mask = texts.resid(unit.layer), texts.mask
    records: list[dict] = []
    for chunk in _chunks(cells, spec.batch_rows // n):
        entries = [
            (cell_vector(v, c, a), a, range(i * n, (i + 1) * n)) for i, (c, a) in enumerate(chunk)
        ]
        with steering(model, entries):
            logits = model(
                resid.repeat(len(chunk), 1, 1),
                start_at_layer=unit.layer,
                attention_mask=mask.repeat(len(chunk), 1),
            )
        for i, (c, a) in enumerate(chunk):
            metrics = texts.metrics(logits[i * n : (i + 1) * n])
            records += _records(
                dict(pair=pair.name, pad=unit.pad, layer=unit.layer),
                texts,
                metrics,
                coeff=float(c),
                align=str(a),
            )
    return pd.DataFrame(records, columns=METRIC_COLUMNS)


@torch.no_grad()
def generation_unit(
    model: HookedTransformer,
    spec: SweepSpec,
    unit: Unit,
    vectors: dict[int, SteeringVector] | None,
    progress: bool | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sampled completions of every (coeff, align) cell of one (pair, pad, layer).

    Every cell uses the same per-(prompt, sample) seeds (common random numbers), so cell
    differences are not sampling noise in the seeds.
    """
    g = spec.generation
    sampling = Sampling(temperature=g.temperature, top_p=g.top_p, freq_penalty=g.freq_penalty)
    jobs = [(p, s) for p in range(len(spec.prompts)) for s in range(g.n_samples)]
    ids = [model.to_tokens(t)[0].tolist() for t in spec.prompts]
    if unit.pair < 0:
        cells: list[tuple[float, Align | None]] = [(0.0, None)]
        cols = dict(pair=UNSTEERED, pad="", layer=-1)
    else:
        cells = [(c, a) for c in spec.coeffs for a in spec.align_list()]
        cols = dict(pair=spec.pairs[unit.pair].name, pad=unit.pad, layer=unit.layer)
    rows: list[dict] = []
    comps: list[dict] = []
    for chunk in _chunks(cells, spec.batch_rows // len(jobs)):
        entries = [
            (cell_vector(vectors[unit.layer], c, a), a, range(i * len(jobs), (i + 1) * len(jobs)))
            for i, (c, a) in enumerate(chunk)
            if a is not None
        ]
        gens = [
            torch.Generator().manual_seed(sample_seed(g.seed, p, s)) for _ in chunk for p, s in jobs
        ]
        token_lists = [ids[p] for _ in chunk for p, _ in jobs]
        with steering(model, entries) if entries else nullcontext():
            out = generate_tokens(
                model, token_lists, gens, max_new_tokens=g.max_new_tokens, sampling=sampling
            )
        texts = [model.tokenizer.decode(t) for t in out]
        counts = topic_counts(texts, g.words)
        senti = sentiment(texts) if g.sentiment else None
        for j, text in enumerate(texts):
            c, a = chunk[j // len(jobs)]
            p, s = jobs[j % len(jobs)]
            cell = dict(**cols, coeff=float(c), align=str(a) if a else "none")
            comps.append(dict(**cell, text_index=p, sample=s, completion=text))
            base = dict(**cell, text_kind="prompt", text_index=p, sample=s)
            rows.append(dict(**base, metric="topic_any", value=float(counts[j] > 0)))
            rows.append(dict(**base, metric="topic_count", value=float(counts[j])))
            if senti is not None:
                rows.append(dict(**base, metric="sentiment", value=float(senti[j])))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS), pd.DataFrame(comps)


@torch.no_grad()
def naive_next_token(model: HookedTransformer, spec: SweepSpec) -> pd.DataFrame:
    """Reference: one full hooked forward per (cell, text), no batching, no prefix reuse.

    (The unsteered logits of each text are computed once, not per cell.)
    """
    texts = Texts(model, spec)
    singles = [texts.tokens[r][texts.mask[r].bool()][None] for r in range(len(texts.kinds))]
    cleans = [model(t)[0] for t in singles]
    records: list[dict] = []
    for pair in spec.pairs:
        for pad in spec.pads:
            for layer in spec.layer_list(model.cfg.n_layers):
                v = SteeringVector.from_pair(model, pair.positive, pair.negative, layer, pad=pad)
                for c in spec.coeffs:
                    for a in spec.align_list():
                        for r, (tokens, clean) in enumerate(zip(singles, cleans)):
                            with steering(model, cell_vector(v, c, a), a):
                                logits = model(tokens)[0]
                            if texts.kinds[r] == "prompt":
                                lp = logprob_mass(logits[-1], texts.targets)
                                cl = logprob_mass(clean[-1], texts.targets)
                                kl = kl_div(logits[-1], clean[-1])
                                metrics = [
                                    (r, "target_logprob", float(lp)),
                                    (r, "target_logprob_delta", float(lp - cl)),
                                    (r, "kl_next_token", float(kl)),
                                ]
                            else:
                                kl = kl_div(logits[1:], clean[1:]).mean()
                                metrics = [(r, "kl_neutral", float(kl))]
                            records += _records(
                                dict(pair=pair.name, pad=pad, layer=layer),
                                texts,
                                metrics,
                                coeff=float(c),
                                align=str(a),
                            )
    return pd.DataFrame(records, columns=METRIC_COLUMNS)


def sort_results(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["pair", "pad", "layer", "coeff", "align", "text_kind", "text_index", "sample", "metric"]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard error and count of each metric per grid cell."""
    keys = ["pair", "pad", "layer", "coeff", "align", "metric"]
    g = df.groupby(keys, dropna=False)["value"]
    out = g.agg(["mean", "count", "std"]).reset_index()
    out["sem"] = out["std"] / np.sqrt(out["count"].clip(lower=1))
    return out
