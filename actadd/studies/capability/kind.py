"""Experiment kind ``capability``: is factual recall preserved under off-topic steering?

The paper checked ConceptNet cloze accuracy with and without an off-topic vector; here a
small hand-written factual cloze set (``actadd/data/cloze_facts.json``) plays that role.
For every item the model continues the prompt; it is scored on the first token of
``" " + answer``: its rank among the next-token logits (top-k accuracy), its
log-probability, and KL(steered ‖ unsteered) of the next-token distribution (so a vector
that changes nothing cannot pass for one that preserves knowledge).

The config is :class:`~actadd.studies.capability.config.CapabilityConfig`.

Tables: ``items.csv`` (the items and their answer tokens), ``results.parquet``/``.csv``
(one row per item × cell, unsteered rows have ``layer = -1``), ``summary.csv`` (per cell:
top-k accuracy with Wilson 95% CIs and the change from unsteered with Newcombe CIs, mean
log-prob change, mean KL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from actadd.core.metrics import kl_div, log_probs
from actadd.lab.stats import mcnemar_exact, paired_newcombe_interval, wilson_interval
from actadd.runtime.tokens import encode
from actadd.studies.capability.config import NAME, CapabilityConfig, load_cloze
from actadd.studies.capability.figures import capability_figure
from actadd.studies.common import ConfigKind

__all__ = [
    "KIND",
    "NAME",
    "PRESERVED_MARGIN",
    "UNSTEERED",
    "CapabilityKind",
    "claims",
    "evaluate",
    "items_table",
    "load_cloze",
    "paired_table",
    "parse",
    "summary",
]

UNSTEERED = "(unsteered)"


def parse(config: dict[str, Any]) -> CapabilityConfig:
    """Validate a capability config (a TOML table); defaults filled in."""
    return CapabilityConfig.from_dict(config)


def items_table(model, doc: dict[str, Any], limit: int) -> pd.DataFrame:
    items = doc["items"][:limit] if limit else doc["items"]
    rows = []
    for i, it in enumerate(items):
        ids = encode(model, " " + it["answer"], prepend_bos=False)
        rows.append(
            dict(
                item=i,
                category=it.get("category", ""),
                prompt=it["prompt"],
                answer=it["answer"],
                answer_token=model.tokenizer.decode([ids[0]]),
                answer_id=int(ids[0]),
                answer_n_tokens=len(ids),
            )
        )
    return pd.DataFrame(rows)


def _scores(logits: torch.Tensor, clean: torch.Tensor, answer: torch.Tensor) -> dict:
    """Per-row rank and log-prob of the answer token, KL vs clean, and the top-1 token."""
    lp = log_probs(logits)
    target = lp.gather(-1, answer[:, None])[:, 0]
    rank = (lp > target[:, None]).sum(-1)
    return dict(
        rank=rank.tolist(),
        logprob=target.tolist(),
        kl=kl_div(logits, clean).tolist(),
        top1_id=logits.argmax(-1).tolist(),
    )


@torch.no_grad()
def evaluate(model, config: CapabilityConfig, items: pd.DataFrame) -> pd.DataFrame:
    """Next-token scores of every item, unsteered and in every (pair, layer, coeff) cell.

    One :class:`~actadd.core.prefix.PrefixBatch` of the prompts, grouped by length (no padding):
    the clean residual stream is computed once, and every coefficient of a layer is a set of
    rows of one forward that starts at that layer.
    """
    from actadd.core.prefix import PrefixBatch
    from actadd.core.steering import Align, Placement
    from actadd.core.vectors import SteeringVector

    align = Align.parse(config.align)
    # by length, not left-padded: the items run 5-13 tokens, and padding every row to the
    # longest was ~45% of the forward's work; each row is then a plain forward of its prompt
    batch = PrefixBatch(
        model,
        [encode(model, p) for p in items.prompt],
        padding="by_length",
        max_rows=config.batch_rows,
    )
    answer = torch.tensor(items.answer_id.tolist(), device=batch.clean.device)
    n = len(items)
    clean = batch.clean
    rows = [dict(pair=UNSTEERED, layer=-1, coeff=0.0, item=i) for i in range(n)]
    scores = [_scores(clean, clean, answer)]
    layers, coeffs = list(config.layers), list(config.coeffs)
    batch.prefetch(layers)
    for pair in config.pairs:
        vectors = SteeringVector.from_pair_layers(
            model, pair.positive, pair.negative, layers, pad_token=pair.pad_token
        )
        for layer in layers:
            conditions = [Placement(vectors[layer] * c, align) for c in coeffs]
            for c, logits in zip(coeffs, batch.logits(conditions)):
                scores.append(_scores(logits, clean, answer))
                rows += [
                    dict(pair=pair.name, layer=layer, coeff=float(c), item=i) for i in range(n)
                ]
    df = pd.DataFrame(rows)
    for key in ("rank", "logprob", "kl", "top1_id"):
        df[key] = [v for s in scores for v in s[key]]
    df["top1"] = [model.tokenizer.decode([t]) for t in df.pop("top1_id")]
    return df.merge(items[["item", "category", "answer"]], on="item")


def summary(results: pd.DataFrame, topk: list[int]) -> pd.DataFrame:
    """Per cell: top-k accuracy (Wilson CI) and change from unsteered on the same items
    (paired: Newcombe's paired interval and the exact McNemar p-value), mean change in
    answer log-prob (± s.e.), mean KL."""
    base = results[results.layer < 0].set_index("item")
    r = results.assign(logprob_delta=results.logprob - results.item.map(base.logprob))
    out = []
    for (pair, layer, coeff), d in r.groupby(["pair", "layer", "coeff"], sort=False):
        row = dict(pair=pair, layer=layer, coeff=coeff, n=len(d))
        for k in topk:
            a, b, c, dd = paired_table(d, base, k)
            hits, bhits = a + b, a + c
            lo, hi = wilson_interval(hits, len(d))
            dlo, dhi = paired_newcombe_interval(a, b, c, dd)
            row.update(
                {
                    f"top{k}": hits / len(d),
                    f"top{k}_lo": lo,
                    f"top{k}_hi": hi,
                    f"top{k}_diff": hits / len(d) - bhits / len(base),
                    f"top{k}_diff_lo": dlo,
                    f"top{k}_diff_hi": dhi,
                    f"top{k}_mcnemar_p": mcnemar_exact(b, c),
                }
            )
        row["logprob_delta"] = d.logprob_delta.mean()
        row["logprob_delta_sem"] = d.logprob_delta.std(ddof=1) / np.sqrt(len(d))
        row["kl"] = d.kl.mean()
        row["kl_sem"] = d.kl.std(ddof=1) / np.sqrt(len(d))
        out.append(row)
    return pd.DataFrame(out)


def paired_table(cell: pd.DataFrame, base: pd.DataFrame, k: int) -> tuple[int, int, int, int]:
    """Items in the top ``k`` under both arms, steered only, unsteered only, neither
    (``base`` is indexed by item)."""
    s = cell.set_index("item")["rank"] < k
    u = (base["rank"] < k).reindex(s.index)
    return (int((s & u).sum()), int((s & ~u).sum()), int((~s & u).sum()), int((~s & ~u).sum()))


# capability "preserved": top-1 accuracy within this many points of unsteered (95% CI)
PRESERVED_MARGIN = 0.10


def claims(run) -> list:
    """Per (pair, layer, coeff): does steering lower top-1 accuracy (exact McNemar on the
    paired items, Benjamini–Hochberg over the cells), and is it preserved within
    ±PRESERVED_MARGIN (equivalence: the paired 95% interval inside the margin)?"""
    from actadd.lab.claims import Claim, cell_label

    results = run.read_table("results")
    base = results[results.layer < 0].set_index("item")
    exp = run.config.get("name") or run.out.name
    out = []
    for (pair, layer, coeff), d in results[results.layer >= 0].groupby(
        ["pair", "layer", "coeff"], sort=False
    ):
        a, b, c, dd = paired_table(d, base, 1)
        n = a + b + c + dd
        lo, hi = paired_newcombe_interval(a, b, c, dd)
        common = dict(
            experiment=exp,
            estimate=(b - c) / n,
            lo=lo,
            hi=hi,
            p=mcnemar_exact(b, c),
            test="exact McNemar (paired items)",
            n=f"{n} cloze items",
            numbers=f"top-1 {(a + b) / n:.0%} vs {(a + c) / n:.0%} unsteered; discordant {b}:{c}",
        )
        where = f"{pair} at {cell_label(int(layer), float(coeff))}"
        out.append(
            Claim(
                id=f"top1_drop:{pair}:L{layer}:c{coeff:g}",
                statement=f"{where} lowers top-1 cloze accuracy",
                sign=-1,
                family="scan top-1 change",
                **common,
            )
        )
        out.append(
            Claim(
                id=f"top1_preserved:{pair}:L{layer}:c{coeff:g}",
                statement=f"{where} preserves top-1 cloze accuracy within ±{PRESERVED_MARGIN:.0%}",
                margin=PRESERVED_MARGIN,
                family=f"preserved within ±{PRESERVED_MARGIN:.0%} (equivalence)",
                **common,
            )
        )
    return out


class CapabilityKind(ConfigKind):
    name = NAME
    description = "factual cloze accuracy with and without off-topic steering (knowledge kept?)"
    config_type = CapabilityConfig

    def run(self, spec: CapabilityConfig, model, run) -> None:
        doc = load_cloze(spec.dataset)
        items = items_table(model, doc, spec.limit)
        run.write_json(
            "dataset", {k: v for k, v in doc.items() if k != "items"} | {"n_items": len(items)}
        )
        run.write_table("items", items)
        results = evaluate(model, spec, items)
        run.write_table("results", results, ("parquet", "csv"))
        run.write_table("summary", summary(results, list(spec.topk)))

    def claims(self, run) -> list:
        return claims(run)

    def figures(self, run) -> list[Path]:
        topk = [int(k) for k in run.config.get("topk", [1, 5])]
        s = summary(run.read_table("results"), topk)
        return capability_figure(s, topk, run.figures)


KIND = CapabilityKind()
