"""The ``method_null`` run: every cell's arm and its KL-matched random draws, and the tables.

For each cell (arm, layer) of :meth:`MethodNullConfig.cells`: the arm's vector, its mean
next-token KL on the neutral texts (the target of the matching) and its per-prompt metric;
then draws of the null (:mod:`actadd.studies.method_null.draws`) in batches, until the
sequential rank test (:func:`actadd.lab.stats.sequential_rank_p`) has decided. The metric
of a prompt is the next-token log-probability mass of the target words minus that of the
control words, steered minus unsteered (nats): a direction that moves every content word
alike scores 0.

Every forward is a batched, steered forward from the clean residual at the cell's layer
(:class:`actadd.core.prefix.PrefixBatch`, the sweep engine's next-token path).

Tables: ``cells`` (one row per cell: the arm's norm and KL, draws used, exceedances, the
sequential p), ``arms`` (per cell and prompt: the arm's metric and next-token KL),
``draws`` (per draw: its scale, norm, neutral KL, whether the matching converged, and
whether the test used it) and ``draw_values`` (per used draw and prompt: the metric).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from actadd.core.align import Align
from actadd.core.methods import dataset_vectors
from actadd.core.metrics import kl_div, logprob_mass, target_token_ids
from actadd.core.placement import Placement
from actadd.core.prefix import PrefixBatch
from actadd.core.vectors import SteeringVector
from actadd.lab.stats import sequential_rank_p
from actadd.runtime.forward import left_pad, real_positions, residuals
from actadd.runtime.tokens import encode
from actadd.studies.method_null.config import CONTROL_ARM, MethodNullConfig, split_arm
from actadd.studies.method_null.draws import draw_rows, match_kl, residual_basis

__all__ = ["TABLES", "Cell", "arm_vector", "cell_key", "run_method_null"]

# the tables of a run, each also one part per cell
TABLES = ("cells", "arms", "draws", "draw_values")


class Cell:
    """One (arm, layer): its vector, where it goes and the forwards it is measured with."""

    def __init__(self, spec: MethodNullConfig, model, arm: str, layer: int, vector, texts):
        self.spec, self.model, self.arm, self.layer = spec, model, arm, layer
        self.align = Align.parse("front" if arm == CONTROL_ARM else "all")
        self.tensor = vector.tensor.detach().double().cpu()  # [k, d_model]
        self.texts = texts

    def _placements(self, tensors) -> list[Placement]:
        m = self.model
        return [
            Placement(
                SteeringVector.from_tensor(
                    t.to(m.cfg.device, m.cfg.dtype), self.layer, m.cfg.model_name, "method_null"
                ),  # fmt: skip
                self.align,
            )
            for t in tensors
        ]

    def neutral_kl(self, tensors) -> np.ndarray:
        """Mean next-token KL over the neutral texts, one value per tensor."""
        batch = self.texts.neutral
        logits = batch.logits(self._placements(tensors))
        return np.array([float(kl_div(lg, batch.clean).mean()) for lg in logits])

    def prompt_metrics(self, tensors) -> tuple[np.ndarray, np.ndarray]:
        """(metric, next-token KL) per tensor and prompt: two [len(tensors), n_prompts]."""
        t = self.texts
        logits = t.prompts.logits(self._placements(tensors))
        value = np.stack([(t.contrast(lg) - t.clean_contrast).cpu().numpy() for lg in logits])
        kl = np.stack([kl_div(lg, t.prompts.clean).cpu().numpy() for lg in logits])
        return value, kl


class Texts:
    """The prompts and neutral texts as prefix batches, and the metric's word ids."""

    def __init__(self, spec: MethodNullConfig, model) -> None:
        rows = spec.batch_rows
        self.prompt_ids = [encode(model, t) for t in spec.prompts]
        self.prompts = PrefixBatch(model, self.prompt_ids, positions="last", max_rows=rows)
        self.neutral = PrefixBatch(
            model, [encode(model, t) for t in spec.neutral_texts], positions="last", max_rows=rows
        )
        self.target = target_token_ids(model, spec.target_list)
        self.control = target_token_ids(model, spec.control_words)
        self.clean_contrast = self.contrast(self.prompts.clean)

    def contrast(self, logits):
        return logprob_mass(logits, self.target) - logprob_mass(logits, self.control)


def arm_vector(spec: MethodNullConfig, model, arm: str, layer: int) -> SteeringVector:
    """The vector an arm adds at ``layer``: the control's per-position ActAdd vector × the
    control coefficient, or a one-row method vector scaled to ``coeff ×`` the typical
    residual norm at the layer."""
    p = spec.pair
    if arm == CONTROL_ARM:
        return SteeringVector.from_pair(
            model, p.positive, p.negative, layer, spec.control_coeff, pad_token=p.pad_token
        )
    method, position = split_arm(arm)
    if method == "actadd_mean":
        v = SteeringVector.from_pair(model, p.positive, p.negative, layer, pad_token=p.pad_token)
        v = v.mean(skip_first=True)
    else:
        v = dataset_vectors(model, spec.dataset, [layer], method, position=position)[layer]
    return v.scaled_to(spec.coeff, model)


@torch.no_grad()
def _bases(spec: MethodNullConfig, model, texts: Texts) -> dict[int, torch.Tensor]:
    tokens, mask = left_pad(model, texts.prompt_ids)
    acts = residuals(model, tokens, spec.all_layers, attention_mask=mask)
    keep = real_positions(mask, skip_leading=True)
    return {layer: residual_basis(a[keep]) for layer, a in acts.items()}


@torch.no_grad()
def run_cell(cell: Cell, basis: torch.Tensor) -> dict[str, pd.DataFrame | dict]:
    """The arm, then draws in batches until the sequential rank test has decided."""
    spec = cell.spec
    ids = dict(arm=cell.arm, layer=cell.layer)
    target = float(cell.neutral_kl([cell.tensor])[0])
    value, kl = cell.prompt_metrics([cell.tensor])
    arm_mean = float(value[0].mean())
    norms = cell.tensor.norm(dim=-1)
    n_prompts = value.shape[1]
    batch = max(1, spec.batch_rows // max(n_prompts, len(spec.neutral_texts)))
    draws: list[dict] = []
    values: list[np.ndarray] = []
    while True:
        means = [float(v.mean()) for v in values]
        res = sequential_rank_p(
            arm_mean, means, stop_after=spec.stop_after, max_draws=spec.random_draws
        )
        if res["complete"]:
            break
        first = len(values)
        size = min(batch if first else min(batch, 2 * max(spec.stop_after, 4)),
                   spec.random_draws - first)  # fmt: skip
        rows = [draw_rows(basis, norms, spec.random_seed, cell.layer, first + j)
                for j in range(size)]  # fmt: skip

        def kl_of(idx, scales, rows=rows):
            return cell.neutral_kl([rows[i] * float(x) for i, x in zip(idx, scales)])

        m = match_kl(
            kl_of,
            size, target, rtol=spec.kl_rtol, max_iter=spec.max_iter,
            start=float(np.median([d["scale"] for d in draws if d["converged"]] or [1.0])),
        )  # fmt: skip
        v, _ = cell.prompt_metrics([r * float(s) for r, s in zip(rows, m["scale"])])
        values += list(v)
        for j in range(size):
            scale = float(m["scale"][j])
            draws.append(
                dict(
                    **ids,
                    draw=first + j,
                    scale=scale,
                    norm=float(rows[j].norm()) * scale,
                    kl_neutral=float(m["kl"][j]),
                    converged=bool(m["converged"][j]),
                    iterations=int(m["iterations"][j]),
                    mean=float(v[j].mean()),
                )
            )
    used = res["used"]
    for d in draws:
        d["used"] = d["draw"] < used
    arms = pd.DataFrame(
        dict(**ids, text_index=range(n_prompts), value=value[0], kl_next_token=kl[0])
    )
    dv = pd.DataFrame(
        [dict(**ids, draw=j, text_index=i, value=float(values[j][i]))
         for j in range(used) for i in range(n_prompts)]
    )  # fmt: skip
    d = pd.DataFrame(draws)
    summary = dict(**ids, k=int(cell.tensor.shape[0]), norm=float(cell.tensor.norm()),
                   kl_neutral=target, mean=arm_mean, draws_used=used, exceed=res["exceed"],
                   stopped=res["stopped"], p=res["p"],
                   not_converged=int((~d.converged[d.used]).sum()),
                   median_scale=float(d.scale[d.used].median()))  # fmt: skip
    return dict(cells=summary, arms=arms, draws=d, draw_values=dv)


def cell_key(arm: str, layer: int) -> str:
    """The run-store unit of a cell: ``parts/<arm>.L<layer>.*`` (``:`` is written ``_``)."""
    return f"{arm}.L{layer}"


def run_method_null(spec: MethodNullConfig, model, run, progress: bool | None = None) -> None:
    """Every cell of ``spec`` on ``model``; the four tables into ``run``.

    Each cell is a resumable unit of the run store (:mod:`actadd.lab.runs.units`): its
    tables are written to ``parts/`` as soon as it is done, so a run that is killed keeps
    its finished cells and ``actadd run --resume`` computes only the rest (a cell's draws
    are seeded from ``(random_seed, layer, draw)`` alone, so a resumed run's tables equal
    an uninterrupted one's). The final tables are the parts in :meth:`~MethodNullConfig.cells`
    order."""
    from actadd.progress import bar as progress_bar

    texts = Texts(spec, model)
    bases = _bases(spec, model, texts)
    cells = spec.cells()
    keys = [cell_key(arm, layer) for arm, layer in cells]
    with progress_bar(len(cells), spec.name, "cell", progress) as bar:
        for (arm, layer), key in zip(cells, keys):
            bar.set_postfix_str(f"{arm} L{layer}", refresh=False)
            if run.done(key, TABLES):
                s = run.read_part(key, "cells").iloc[0].to_dict()
                kept = " (finished earlier, kept)"
            else:
                cell = Cell(spec, model, arm, layer, arm_vector(spec, model, arm, layer), texts)
                tables = run_cell(cell, bases[layer])
                s = tables["cells"]
                run.write_part(key, {**tables, "cells": pd.DataFrame([s])})
                kept = ""
            if progress is not False:
                bar.write(f"{spec.name}: {arm} L{layer}: mean {s['mean']:+.3f}, "
                          f"KL {s['kl_neutral']:.3f}, {s['exceed']} of {s['draws_used']} draws "
                          f">= it, p {s['p']:.4f}{kept}", file=sys.stderr)  # fmt: skip
            bar.update(1)
    for name in TABLES:
        df = pd.concat([run.read_part(k, name, expected=True) for k in keys], ignore_index=True)
        run.write_table(name, df, ("csv",) if name == "cells" else ("parquet",))
