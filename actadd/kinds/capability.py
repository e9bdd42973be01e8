"""Experiment kind ``capability``: is factual recall preserved under off-topic steering?

The paper checked ConceptNet cloze accuracy with and without an off-topic vector; here a
small hand-written factual cloze set (``actadd/data/cloze_facts.json``) plays that role.
For every item the model continues the prompt; it is scored on the first token of
``" " + answer``: its rank among the next-token logits (top-k accuracy), its
log-probability, and KL(steered ‖ unsteered) of the next-token distribution (so a vector
that changes nothing cannot pass for one that preserves knowledge).

Config::

    kind = "capability"
    dataset = "cloze_facts"        # packaged set, or a path to a JSON file of that form
    pairs = [[" weddings", ""], ["Love", "Hate"]]
    layers = [1, 2, 4, 8, 16]
    coeffs = [1.0, 2.0, 4.0, 8.0]
    align = "front"
    topk = [1, 5]
    limit = 0                      # use the first N items (0: all)

Tables: ``items.csv`` (the items and their answer tokens), ``results.parquet``/``.csv``
(one row per item × cell, unsteered rows have ``layer = -1``), ``summary.csv`` (per cell:
top-k accuracy with Wilson 95% CIs and the change from unsteered with Newcombe CIs, mean
log-prob change, mean KL).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from actadd.errors import ConfigError
from actadd.experiments import register
from actadd.kinds._config import check_keys, check_layers, number_list, parse_pairs
from actadd.metrics import kl_div, log_probs, newcombe_interval, wilson_interval
from actadd.plots import PAPER_RC, _baseline_band, _yerr, save_figure
from actadd.runinfo import env_info, write_json, write_table

NAME = "capability"
KEYS = {"model", "dataset", "pairs", "layers", "coeffs", "align", "topk", "limit", "batch_rows"}
UNSTEERED = "(unsteered)"


def load_cloze(dataset: str = "cloze_facts") -> dict[str, Any]:
    """A cloze set: the packaged ``actadd/data/<name>.json`` or a JSON file path."""
    path = Path(dataset)
    if path.suffix == ".json" and path.is_file():
        text = path.read_text()
    else:
        res = resources.files("actadd.data") / f"{dataset}.json"
        if not res.is_file():
            raise ConfigError(
                f"No cloze set {dataset!r}: give a packaged name (cloze_facts) or a .json path."
            )
        text = res.read_text()
    doc = json.loads(text)
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"Cloze set {dataset!r} has no 'items' list.")
    for it in items:
        if not (isinstance(it, dict) and it.get("prompt") and it.get("answer")):
            raise ConfigError(f"Cloze item {it!r} needs a 'prompt' and an 'answer'.")
    return doc


def parse(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a capability config; returns it with defaults filled in."""
    check_keys(config, KEYS, NAME)
    c = {
        "dataset": "cloze_facts",
        "align": "front",
        "topk": [1, 5],
        "limit": 0,
        "batch_rows": 256,
        **config,
    }
    c["pairs"] = parse_pairs(c.get("pairs"), "pairs")
    c["layers"] = number_list(c.get("layers"), "layers", integer=True)
    c["coeffs"] = number_list(c.get("coeffs"), "coeffs")
    c["topk"] = number_list(c["topk"], "topk", integer=True)
    if min(c["topk"]) < 1:
        raise ConfigError("topk values must be >= 1.")
    if isinstance(c["limit"], bool) or not isinstance(c["limit"], int) or c["limit"] < 0:
        raise ConfigError("limit must be an int >= 0 (0: all items).")
    from actadd.steer import Align

    try:
        align = Align.parse(c["align"])
    except Exception as exc:
        raise ConfigError(f"align {c['align']!r}: {exc}") from None
    if align.kind == "all":
        raise ConfigError("align 'all' is not supported here; use front, back or offset:s.")
    return c


def items_table(model, doc: dict[str, Any], limit: int) -> pd.DataFrame:
    items = doc["items"][:limit] if limit else doc["items"]
    rows = []
    for i, it in enumerate(items):
        ids = model.to_tokens(" " + it["answer"], prepend_bos=False)[0].tolist()
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
def evaluate(model, config: dict[str, Any], items: pd.DataFrame) -> pd.DataFrame:
    """Next-token scores of every item, unsteered and in every (pair, layer, coeff) cell.

    The clean residual stream at each layer is computed once; steered rows start there
    (``start_at_layer``), every coefficient of a layer batched into one forward.
    """
    from actadd.generate import last_logits, left_pad
    from actadd.steer import Align, steering
    from actadd.vectors import SteeringVector, residuals_at

    align = Align.parse(config["align"])
    ids = [model.to_tokens(p)[0].tolist() for p in items.prompt]
    tokens, mask = left_pad(model, ids)
    answer = torch.tensor(items.answer_id.tolist(), device=tokens.device)
    n = len(ids)
    clean = last_logits(model, tokens, attention_mask=mask)
    rows = [dict(pair=UNSTEERED, layer=-1, coeff=0.0, item=i) for i in range(n)]
    scores = [_scores(clean, clean, answer)]
    layers = config["layers"]
    resid = residuals_at(model, tokens, layers, attention_mask=mask)
    per_chunk = max(1, config["batch_rows"] // n)
    for pos, neg, name in config["pairs"]:
        vectors = SteeringVector.from_pair_layers(model, pos, neg, layers)
        for layer in layers:
            coeffs = config["coeffs"]
            for start in range(0, len(coeffs), per_chunk):
                chunk = coeffs[start : start + per_chunk]
                entries = [
                    (vectors[layer] * c, align, range(j * n, (j + 1) * n))
                    for j, c in enumerate(chunk)
                ]
                with steering(model, entries):
                    logits = last_logits(
                        model,
                        resid[layer].repeat(len(chunk), 1, 1),
                        start_at_layer=layer,
                        attention_mask=mask.repeat(len(chunk), 1),
                    )
                scores.append(
                    _scores(logits, clean.repeat(len(chunk), 1), answer.repeat(len(chunk)))
                )
                rows += [
                    dict(pair=name, layer=layer, coeff=float(c), item=i)
                    for c in chunk
                    for i in range(n)
                ]
    df = pd.DataFrame(rows)
    for key in ("rank", "logprob", "kl", "top1_id"):
        df[key] = [v for s in scores for v in s[key]]
    df["top1"] = [model.tokenizer.decode([t]) for t in df.pop("top1_id")]
    return df.merge(items[["item", "category", "answer"]], on="item")


def summary(results: pd.DataFrame, topk: list[int]) -> pd.DataFrame:
    """Per cell: top-k accuracy (Wilson CI) and change from unsteered (Newcombe CI),
    mean change in answer log-prob (± s.e.), mean KL."""
    base = results[results.layer < 0].set_index("item")
    r = results.assign(logprob_delta=results.logprob - results.item.map(base.logprob))
    out = []
    for (pair, layer, coeff), d in r.groupby(["pair", "layer", "coeff"], sort=False):
        row = dict(pair=pair, layer=layer, coeff=coeff, n=len(d))
        for k in topk:
            hits = int((d["rank"] < k).sum())
            bhits = int((base["rank"] < k).sum())
            lo, hi = wilson_interval(hits, len(d))
            dlo, dhi = newcombe_interval(hits, len(d), bhits, len(base))
            row.update(
                {
                    f"top{k}": hits / len(d),
                    f"top{k}_lo": lo,
                    f"top{k}_hi": hi,
                    f"top{k}_diff": hits / len(d) - bhits / len(base),
                    f"top{k}_diff_lo": dlo,
                    f"top{k}_diff_hi": dhi,
                }
            )
        row["logprob_delta"] = d.logprob_delta.mean()
        row["logprob_delta_sem"] = d.logprob_delta.std(ddof=1) / np.sqrt(len(d))
        row["kl"] = d.kl.mean()
        row["kl_sem"] = d.kl.std(ddof=1) / np.sqrt(len(d))
        out.append(row)
    return pd.DataFrame(out)


@register(NAME, "factual cloze accuracy with and without off-topic steering (knowledge kept?)")
class CapabilityKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        from actadd.models import load_model

        c = parse(config)
        doc = load_cloze(c["dataset"])
        out = Path(out)
        if (out / "config.json").exists() and not resume:
            raise ConfigError(f"{out} already holds a run; pass --resume or another --out.")
        model = load_model(c.get("model"))
        check_layers(c["layers"], model.cfg.n_layers)
        items = items_table(model, doc, c["limit"])
        write_json(out / "config.json", {**config, "kind": NAME})
        write_json(out / "env.json", env_info(model))
        write_json(
            out / "dataset.json",
            {k: v for k, v in doc.items() if k != "items"} | {"n_items": len(items)},
        )
        write_table(out / "items.csv", items)
        results = evaluate(model, c, items)
        write_table(out / "results.parquet", results)
        write_table(out / "results.csv", results)
        CapabilityKind.figures(out)

    @staticmethod
    def figures(out: Path) -> list[Path]:
        out = Path(out)
        config = json.loads((out / "config.json").read_text())
        topk = [int(k) for k in config.get("topk", [1, 5])]
        results = pd.read_parquet(out / "results.parquet")
        s = summary(results, topk)
        write_table(out / "summary.csv", s)  # derived: kept in step with the figure
        base = s[s.layer < 0].iloc[0]
        steered = s[s.layer >= 0]
        pairs = list(dict.fromkeys(steered.pair))
        ncol = len(topk) + 1
        with plt.rc_context(PAPER_RC):
            fig, axes = plt.subplots(
                len(pairs),
                ncol,
                figsize=(3.4 * ncol, 2.9 * len(pairs)),
                layout="constrained",
                squeeze=False,
            )
            for r, pair in enumerate(pairs):
                d = steered[steered.pair == pair]
                layers = sorted(d.layer.unique())
                colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(layers)))
                for col in range(ncol):
                    ax = axes[r, col]
                    if col < len(topk):
                        k = topk[col]
                        _baseline_band(
                            ax,
                            base[f"top{k}"],
                            base[f"top{k}_lo"],
                            base[f"top{k}_hi"],
                            f"unsteered (n = {int(base.n)})",
                        )
                        ax.set_ylabel(f"Top-{k} accuracy [fraction of items]")
                        ax.set_ylim(-0.02, 1.02)
                    else:
                        ax.axhline(0, color="0.25", ls="--", lw=1, label="unsteered")
                        ax.set_ylabel("KL(steered ‖ unsteered), next token [nats]")
                    for layer, color in zip(layers, colors):
                        e = d[d.layer == layer].sort_values("coeff")
                        if col < len(topk):
                            y, lo, hi = e[f"top{k}"], e[f"top{k}_lo"], e[f"top{k}_hi"]
                        else:
                            y = e["kl"]
                            lo, hi = y - 1.96 * e["kl_sem"], y + 1.96 * e["kl_sem"]
                        ax.errorbar(
                            e.coeff,
                            y,
                            yerr=_yerr(y, lo, hi),
                            color=color,
                            marker="o",
                            ms=3,
                            lw=1.1,
                            elinewidth=0.8,
                            capsize=1.5,
                            label=f"L = {layer}",
                        )
                    if (d.coeff > 0).all():
                        ax.set_xscale("log", base=2)
                        ticks = sorted(d.coeff.unique())
                        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                    ax.set_xlabel("Coefficient c")
                    what = f"top-{topk[col]} accuracy" if col < len(topk) else "disruption"
                    ax.set_title(f"{pair}: {what} (bars: 95% CI)")
                    if col == 0:
                        ax.legend(frameon=False, fontsize=6.5, ncol=2, loc="best")
        return save_figure(fig, out / "figures" / "capability")
