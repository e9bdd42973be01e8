"""The sweep engine: every grid cell's metrics, batched, from a shared clean prefix.

Two things make it fast without changing a number:

1. **Batching.** For one (pair, pad, layer), every (coefficient, alignment) cell × text is
   a row of one forward pass, each row steered by its own placement.
2. **Prefix reuse.** Below layer ``L`` a steered forward equals the unsteered one, so the
   clean residual stream is computed once for all layers; the steered pass starts at
   ``L`` (``start_at_layer``) instead of at the embedding.

Both are :class:`actadd.core.prefix.PrefixBatch`; this module adds the grid and the metrics.

:func:`naive_next_token` is the reference it is checked against: one full, hooked forward
per (cell, text), as the paper's code does it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pandas as pd
import torch
from torch import Tensor

from actadd.core.generation import generate_tokens, sample_seed
from actadd.core.metrics import kl_div, logprob_mass, sentiment, topic_counts
from actadd.core.placement import ONE_ROW_KINDS
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Align, Placement, steering
from actadd.core.vectors import SteeringVector
from actadd.runtime.backends import Model
from actadd.runtime.forward import real_positions
from actadd.runtime.tokens import encode
from actadd.sweeps import plan, renamed
from actadd.sweeps import words as word_lists
from actadd.sweeps.method_vectors import MethodVectors
from actadd.sweeps.spec import PAIR_METHODS, SweepSpec

__all__ = [
    "DATASET",
    "Executor",
    "LocalExecutor",
    "METRIC_COLUMNS",
    "UNIT_TABLES",
    "UNSTEERED",
    "TextGroup",
    "Texts",
    "Unit",
    "UnitRunner",
    "annotate",
    "cell_vector",
    "generation_unit",
    "naive_next_token",
    "next_token_unit",
    "sort_results",
    "unit_tables",
    "units",
]
# the executors' names before they were told apart from the model backends (one release)
__getattr__ = renamed(__name__, {"Backend": "Executor", "LocalBackend": "LocalExecutor"})

UNSTEERED = "(unsteered)"
METRIC_COLUMNS = [
    "method",
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


# the tables each kind of unit writes: a unit is done only when its parts hold all of them
UNIT_TABLES: dict[str, tuple[str, ...]] = {
    "next_token": ("results",),
    "generation": ("completions", "results"),
}


def unit_tables(key: str) -> tuple[str, ...] | None:
    """The tables a unit must have, from its key (None for a key of no sweep unit)."""
    kind = key.partition("-")[0]
    return UNIT_TABLES.get(kind)


@dataclass(frozen=True)
class Unit:
    """One resumable unit of work: a (pair, pad, layer) for one kind of metric."""

    kind: str  # "next_token" | "generation"
    pair: int  # index into spec.pairs; -1 for the unsteered baseline; DATASET for the dataset
    pad: str
    layer: int
    method: str = "actadd"  # see actadd.sweeps.spec.METHODS (random draws: "random:i")

    @property
    def key(self) -> str:
        if self.pair == -1:
            return f"{self.kind}-baseline"
        # ActAdd units keep the keys they had before methods existed (resumable runs)
        method = "" if self.method == "actadd" else f"-{self.method.replace(':', '')}"
        pair = "dataset" if self.pair == DATASET else f"pair{self.pair}-{self.pad}"
        return f"{self.kind}-{pair}{method}-L{self.layer:03d}"

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables this unit writes (its full expected set)."""
        return UNIT_TABLES[self.kind]

    def columns(self, spec: SweepSpec) -> dict:
        """The unit's identifying columns in the results tables."""
        if self.pair == -1:
            return dict(method="none", pair=UNSTEERED, pad="", layer=-1)
        if self.pair == DATASET:
            return dict(method=self.method, pair=spec.dataset_label, pad="", layer=self.layer)
        return dict(
            method=self.method, pair=spec.pairs[self.pair].name, pad=self.pad, layer=self.layer
        )


DATASET = -2  # Unit.pair of the methods that use the dataset, not a sweep pair


def units(spec: SweepSpec, n_layers: int) -> list[Unit]:
    out: list[Unit] = []
    kinds = (["next_token"] if spec.next_token else []) + (
        ["generation"] if spec.generation else []
    )
    layers = spec.layer_list(n_layers)
    for kind in kinds:
        out.append(Unit(kind, -1, "", -1))
        for method in spec.method_list():
            if method in PAIR_METHODS:
                for p in range(len(spec.pairs)):
                    for pad in spec.equalize:
                        out += [Unit(kind, p, pad, layer, method) for layer in layers]
            else:
                out += [Unit(kind, DATASET, "", layer, method) for layer in layers]
    return out


def cell_vector(
    v: SteeringVector,
    coeff: float,
    align: Align,
    coeff_mode: str = "absolute",
    model: Model | None = None,
) -> SteeringVector:
    """The vector a cell adds: ``coeff · v``, or with ``coeff_mode="relative"`` ``v`` scaled
    to ``coeff ×`` the typical residual norm at its layer (:meth:`SteeringVector.scaled_to`,
    measured on ``model`` when ``v`` has none recorded); for ``align="all"`` its mean over
    the rows after the leading token first (one d_model vector for every position), and the
    same for a per-position vector under the other one-row alignments (a turn's span,
    generated)."""
    one_row = align.kind == "all" or (align.kind in ONE_ROW_KINDS and v.k > 1)
    base = v.mean(skip_first=True) if one_row else v
    return base.scaled_to(coeff, model) if coeff_mode == "relative" else base * coeff


class TextGroup:
    """Texts of one kind as a :class:`~actadd.core.prefix.PrefixBatch` (left-padded, clean
    residuals computed once).

    ``kind="prompt"``: metrics at the last position only (target log-prob, next-token KL),
    so only that position is unembedded. ``kind="neutral"``: KL at every real position.
    """

    def __init__(
        self,
        model: Model,
        kind: str,
        texts: tuple[str, ...],
        targets: list[int],
        max_rows: int,
    ) -> None:
        self.kind, self.targets = kind, targets
        self.index = list(range(len(texts)))
        self.batch = PrefixBatch(
            model,
            [encode(model, t) for t in texts],
            positions="last" if kind == "prompt" else "all",
            max_rows=max_rows,
        )

    def __len__(self) -> int:
        return len(self.index)

    def metrics(self, logits: Tensor) -> list[tuple[int, str, float]]:
        """(row, metric, value) for steered ``logits`` of this group's rows."""
        clean = self.batch.clean
        if self.kind == "prompt":
            lp = logprob_mass(logits, self.targets)
            clean_lp = logprob_mass(clean, self.targets)
            kl = kl_div(logits, clean)
            return [
                m
                for r in self.index
                for m in (
                    (r, "target_logprob", float(lp[r])),
                    (r, "target_logprob_delta", float(lp[r] - clean_lp[r])),
                    (r, "kl_next_token", float(kl[r])),
                )
            ]
        # disruption: KL averaged over real positions after the first (leading) one
        kl_pos = kl_div(logits, clean)
        real = real_positions(self.batch.mask, skip_leading=True)
        kl_mean = (kl_pos * real).sum(-1) / real.sum(-1).clamp(min=1)
        return [(r, "kl_neutral", float(kl_mean[r])) for r in self.index]

    def baseline(self) -> list[tuple[int, str, float]]:
        if self.kind != "prompt":
            return []
        lp = logprob_mass(self.batch.clean, self.targets)
        return [(r, "target_logprob", float(lp[r])) for r in self.index]

    def records(self, unit_cols: dict, metrics, **cell) -> list[dict]:
        return [
            dict(
                **unit_cols, **cell, text_kind=self.kind, text_index=r, sample=-1, metric=m, value=v
            )
            for r, m, v in metrics
        ]


class Texts:
    """The sweep's next-token texts: a prompt group and a neutral-text group."""

    def __init__(self, model: Model, spec: SweepSpec) -> None:
        targets = plan.target_ids(spec, model)
        prompts, neutral = plan.texts(spec, model)  # rendered through the chat template for turn
        self.groups = [
            TextGroup(model, kind, texts, targets, spec.batch_rows)
            for kind, texts in (("prompt", prompts), ("neutral", neutral))
            if texts
        ]

    def prefetch(self, layers: list[int]) -> None:
        for g in self.groups:
            g.batch.prefetch(layers)


def _chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of at most ``size`` items (at least one item each)."""
    size = max(1, size)
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def next_token_unit(
    model: Model,
    spec: SweepSpec,
    texts: Texts,
    unit: Unit,
    vectors: dict[int, SteeringVector] | None,
) -> pd.DataFrame:
    """Next-token metrics of every (coeff, align) cell of one (pair, pad, layer)."""
    records: list[dict] = []
    cols = unit.columns(spec)
    if unit.pair == -1:
        for g in texts.groups:
            records += g.records(cols, g.baseline(), coeff=0.0, align="none")
        return pd.DataFrame(records, columns=METRIC_COLUMNS)
    v = vectors[unit.layer]
    cells = [(c, *la) for c in spec.coeffs for la in plan.cell_aligns(spec, unit.method, model)]
    conditions = [Placement(cell_vector(v, c, a, spec.coeff_mode, model), a) for c, _, a in cells]
    for g in texts.groups:
        for (c, label, _), logits in zip(cells, g.batch.logits(conditions)):
            records += g.records(cols, g.metrics(logits), coeff=float(c), align=label)
    return pd.DataFrame(records, columns=METRIC_COLUMNS)


@torch.no_grad()
def generation_unit(
    model: Model,
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
    sampling = g.sampling
    jobs = [(p, s) for p in range(len(spec.prompts)) for s in range(g.n_samples)]
    ids = [encode(model, t) for t in plan.texts(spec, model)[0]]
    cols = unit.columns(spec)
    if unit.pair == -1:
        cells: list[tuple[float, str, Align | None]] = [(0.0, "none", None)]
    else:
        cells = [(c, *la) for c in spec.coeffs for la in plan.cell_aligns(spec, unit.method, model)]
    rows: list[dict] = []
    comps: list[dict] = []
    for chunk in _chunks(cells, spec.batch_rows // len(jobs)):
        entries = [
            (
                cell_vector(vectors[unit.layer], c, a, spec.coeff_mode, model),
                a,
                range(i * len(jobs), (i + 1) * len(jobs)),
            )
            for i, (c, _, a) in enumerate(chunk)
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
            c, label, _ = chunk[j // len(jobs)]
            p, s = jobs[j % len(jobs)]
            cell = dict(**cols, coeff=float(c), align=label)
            comps.append(dict(**cell, text_index=p, sample=s, completion=text))
            base = dict(**cell, text_kind="prompt", text_index=p, sample=s)
            rows.append(dict(**base, metric="topic_any", value=float(counts[j] > 0)))
            rows.append(dict(**base, metric="topic_count", value=float(counts[j])))
            if senti is not None:
                rows.append(dict(**base, metric="sentiment", value=float(senti[j])))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS), pd.DataFrame(comps)


class UnitRunner:
    """Computes units of one sweep on one model: ``runner(unit) -> {table: DataFrame}``.

    The steering vectors of a (method, pair, pad) are taken for every layer at once
    (:class:`~actadd.sweeps.method_vectors.MethodVectors`) and the
    next-token texts' clean residuals once, on first use, and reused by later units. Every
    executor computes a unit through this class (here, or on a Ray actor), so a unit's
    numbers do not depend on where it ran.
    """

    def __init__(self, spec: SweepSpec, model: Model) -> None:
        self.spec, self.model = spec, model
        self.layers = spec.layer_list(model.cfg.n_layers)
        self._texts: Texts | None = None
        self._vectors = MethodVectors(model, spec)

    def vectors(self, unit: Unit) -> dict[int, SteeringVector] | None:
        if unit.pair == -1:  # the unsteered baseline (dataset methods have pair DATASET)
            return None
        return self._vectors.vectors(unit.method, unit.pair, unit.pad)

    def texts(self) -> Texts:
        if self._texts is None:
            self._texts = Texts(self.model, self.spec)
            self._texts.prefetch(self.layers)
        return self._texts

    def __call__(self, unit: Unit) -> dict[str, pd.DataFrame]:
        vecs = self.vectors(unit)
        if unit.kind == "next_token":
            return {"results": next_token_unit(self.model, self.spec, self.texts(), unit, vecs)}
        metrics, comps = generation_unit(self.model, self.spec, unit, vecs)
        return {"results": metrics, "completions": comps}


@runtime_checkable
class Executor(Protocol):
    """Where a sweep's units are computed. ``map`` yields ``(unit, tables)`` for every unit
    of ``todo`` exactly once, in any order; the caller writes them (the run store)."""

    def map(
        self, spec: SweepSpec, model: Model, todo: list[Unit]
    ) -> Iterator[tuple[Unit, dict[str, pd.DataFrame]]]: ...


class LocalExecutor:
    """Every unit in this process, in order, on the caller's model."""

    def map(
        self, spec: SweepSpec, model: Model, todo: list[Unit]
    ) -> Iterator[tuple[Unit, dict[str, pd.DataFrame]]]:
        runner = UnitRunner(spec, model)
        for unit in todo:
            yield unit, runner(unit)


@torch.no_grad()
def naive_next_token(model: Model, spec: SweepSpec) -> pd.DataFrame:
    """Reference: one full hooked forward per (cell, text), no batching, no prefix reuse.

    (The unsteered logits of each text are computed once, not per cell.)
    """
    targets = plan.target_ids(spec, model)
    texts = [
        (kind, i, torch.tensor([encode(model, t)], device=model.cfg.device))
        for kind, group in (("prompt", spec.prompts), ("neutral", spec.neutral_texts))
        for i, t in enumerate(group)
    ]
    cleans = [model(t)[0] for _, _, t in texts]
    records: list[dict] = []
    for pair in spec.pairs:
        for pad in spec.equalize:
            for layer in spec.layer_list(model.cfg.n_layers):
                v = SteeringVector.from_pair(
                    model,
                    pair.positive,
                    pair.negative,
                    layer,
                    equalize=pad,
                    pad_token=pair.pad_token,
                )
                for c in spec.coeffs:
                    for a in spec.align_list():
                        for (kind, r, tokens), clean in zip(texts, cleans):
                            added = cell_vector(v, c, a, spec.coeff_mode, model)
                            with steering(model, added, a):
                                logits = model(tokens)[0]
                            if kind == "prompt":
                                lp = logprob_mass(logits[-1], targets)
                                cl = logprob_mass(clean[-1], targets)
                                kl = kl_div(logits[-1], clean[-1])
                                metrics = [
                                    (r, "target_logprob", float(lp)),
                                    (r, "target_logprob_delta", float(lp - cl)),
                                    (r, "kl_next_token", float(kl)),
                                ]
                            else:
                                kl = kl_div(logits[1:], clean[1:]).mean()
                                metrics = [(r, "kl_neutral", float(kl))]
                            records += [
                                dict(
                                    method="actadd",
                                    pair=pair.name,
                                    pad=pad,
                                    layer=layer,
                                    coeff=float(c),
                                    align=str(a),
                                    text_kind=kind,
                                    text_index=r,
                                    sample=-1,
                                    metric=m,
                                    value=val,
                                )
                                for r, m, val in metrics
                            ]
    return annotate(spec, "results", pd.DataFrame(records, columns=METRIC_COLUMNS))


def annotate(spec: SweepSpec, table: str, df: pd.DataFrame) -> pd.DataFrame:
    """A sweep's final ``results`` or ``completions`` table with the run's own columns:
    the text of each row beside ``text_index`` (``text`` in results: the prompt or neutral
    text as the config gives it, by ``text_kind``; ``prompt`` in completions) and the word
    lists measured (``target_words`` when there are next-token metrics, ``topic_words``
    when completions are sampled: a preset's name or the words comma-joined, one value
    for the whole table). The units' parts stay as computed, so runs resume unchanged."""
    df = df.copy()
    at = df.columns.get_loc("text_index") + 1
    if table == "completions":
        df.insert(at, "prompt", [spec.prompts[i] for i in df.text_index])
    else:
        texts = {"prompt": spec.prompts, "neutral": spec.neutral_texts}
        df.insert(at, "text", [texts[k][i] for k, i in zip(df.text_kind, df.text_index)])
    if table == "results" and spec.next_token:
        df["target_words"] = word_lists.label(spec.target_words)
    if spec.generation is not None:
        df["topic_words"] = word_lists.label(spec.generation.topic_words)
    return df


def sort_results(df: pd.DataFrame) -> pd.DataFrame:
    # every identifying column (tables written before the method column lack it)
    keys = [c for c in METRIC_COLUMNS if c != "value" and c in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)
