"""Figures of the ``pad_confound`` kind (:mod:`actadd.studies.pad_confound.kind`), from its tables.

- ``norm_vs_effect``: the pad-row norm (× the typical norm) against the steering effect,
  one panel per pair, one point per (pad, layer);
- ``effect_by_layer``: the effect by layer for the paper's pad, the recommended pad, the
  surgered paper's pad and the rest of the panel;
- ``attention_by_layer``: attention mass on a pad at position 1 (against an ordinary
  token), the residual norm there, and the mass on the pad-row position with and without
  ActAdd;
- ``attention_heads``: that mass per layer and head for the paper's pad minus the ordinary
  token's;
- ``word_count`` (with ``[generation]``): completions with a topic word by layer and pad.

Every legend entry names one meaning: colour is the pad, line style the injection layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from actadd.lab.stats import t95, wilson_interval
from actadd.plots.style import (
    baseline_band,
    interval_line,
    panels,
    paper_style,
    save_figure,
)
from actadd.plots.text import WordLists, ci_note, pair_title, words_text

__all__ = [
    "attention_by_layer",
    "attention_heads",
    "effect_by_layer",
    "norm_vs_effect",
    "pad_figures",
    "word_count",
]

REF_COLOR, BEST_COLOR, OTHER_COLOR, ORDINARY_COLOR = "#c0392b", "#1f5fbf", "0.72", "0.1"
SURGERY_STYLE = {
    "zero_massive": dict(color="#e67e22", marker="^", ls="--", name="massive dims zeroed"),
    "mean_row": dict(color="#8e44ad", marker="s", ls=":", name="row = mean ordinary residual"),
}


def _ref_best(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> tuple[str, str]:
    from actadd.studies.pad_confound.analysis import PLAIN, pad_ranking, recommend_pad
    from actadd.studies.pad_confound.config import pad_label

    ref = pad_label(config.get("reference_pad", " "))
    norms = tables["norms"]
    ranking = pad_ranking(
        tables["effects"],
        norms[norms.variant == PLAIN],
        massive_ratio=float(config.get("massive_ratio", 2.0)),
    )
    try:
        best = recommend_pad(ranking)
    except ValueError:
        best = ""
    return ref, best


def _ci(d: pd.DataFrame, by: str, col: str) -> pd.DataFrame:
    """Per ``by``: mean of ``col`` and ``half``, the half-width of its Student-t 95%
    interval over the rows (prompts)."""
    g = d.groupby(by)[col]
    n = g.count()
    out = pd.DataFrame({"mean": g.mean(), "sem": g.std(ddof=1) / np.sqrt(n)})
    out["half"] = out["sem"].fillna(0) * [t95(k - 1) if k > 1 else 0.0 for k in n]
    return out.reset_index()


def _panel_title(pair: str, config: dict[str, Any]) -> str:
    """The pair in words, and on a second line its target word list (from the config)."""
    target = None
    for item in config.get("pairs", []):
        if isinstance(item, dict) and pair in (item.get("label"), item.get("name")):
            target = words_text(item.get("target_words"))
    return f"{pair_title(pair)}\n(target: {target or 'word list not recorded'})"


_EFFECT = "steering effect [nats]:\nΔ log p(target words)\n− Δ log p(control words)"


def norm_vs_effect(tables, config, out: Path) -> list[Path]:
    from actadd.studies.pad_confound.analysis import PLAIN

    ref, best = _ref_best(tables, config)
    eff, norms = tables["effects"], tables["norms"]
    cells = eff.groupby(["pair", "pad", "variant", "layer"], as_index=False)[["effect"]].mean()
    cells = cells.merge(norms, on=["pair", "pad", "variant", "layer"])
    cells["ratio"] = cells.pad_norm / cells.typical_norm
    pairs = list(dict.fromkeys(eff.pair))
    with paper_style():
        # the legend below needs about 7 inches, whatever the number of pairs
        fig, axes = panels(1, len(pairs), (max(3.3 * len(pairs), 7.0), 3.0), sharey=True)
        vmax = max(cells.layer.max(), 1)
        for ax, pair in zip(axes[0], pairs):
            d = cells[cells.pair == pair]
            other = d[(d.variant == PLAIN) & (d.pad != ref)]
            sc = ax.scatter(
                other.ratio,
                other.effect,
                c=other.layer,
                cmap="viridis",
                vmin=0,
                vmax=vmax,
                s=10,
                alpha=0.75,
                lw=0,
            )
            r = d[(d.variant == PLAIN) & (d.pad == ref)]
            ax.scatter(r.ratio, r.effect, marker="X", s=30, color=REF_COLOR, lw=0.3, ec="k")
            for method, st in SURGERY_STYLE.items():
                s = d[d.variant == method]
                ax.scatter(s.ratio, s.effect, marker=st["marker"], s=16, color=st["color"])
            ax.axhline(0, color="0.4", lw=0.7, ls="--")
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(_panel_title(pair, config))
            ax.set_xlabel("pad-row residual norm / typical norm")
        axes[0, 0].set_ylabel(_EFFECT)
        handles = [
            Line2D([], [], marker="o", ls="", color="0.5", label="other pads (colour: layer)"),
            Line2D([], [], marker="X", ls="", color=REF_COLOR, label=f"pad {ref} (the paper's)"),
        ] + [
            Line2D(
                [], [], marker=st["marker"], ls="", color=st["color"], label=f"{ref}, {st['name']}"
            )
            for st in SURGERY_STYLE.values()
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        fig.colorbar(sc, ax=axes[0, -1], label="layer")
        return save_figure(fig, out / "norm_vs_effect")


def effect_by_layer(tables, config, out: Path) -> list[Path]:
    from actadd.studies.pad_confound.analysis import PLAIN

    ref, best = _ref_best(tables, config)
    eff = tables["effects"]
    pairs = list(dict.fromkeys(eff.pair))
    with paper_style():
        fig, axes = panels(1, len(pairs), (max(3.3 * len(pairs), 7.0), 2.9), sharey=True)
        for ax, pair in zip(axes[0], pairs):
            d = eff[eff.pair == pair]
            plain = d[d.variant == PLAIN]
            for pad, e in plain.groupby("pad"):
                if pad in (ref, best):
                    continue
                m = e.groupby("layer").effect.mean()
                ax.plot(m.index, m.values, color=OTHER_COLOR, lw=0.7, zorder=1)
            for pad, color in ((ref, REF_COLOR), (best, BEST_COLOR)):
                c = _ci(plain[plain.pad == pad], "layer", "effect")
                if len(c):
                    interval_line(ax, c.layer, c["mean"], err=c["half"], color=color, zorder=3)
            for method, st in SURGERY_STYLE.items():
                c = _ci(d[(d.variant == method) & (d.pad == ref)], "layer", "effect")
                if len(c):
                    interval_line(
                        ax,
                        c.layer,
                        c["mean"],
                        err=c["half"],
                        color=st["color"],
                        marker=st["marker"],
                        ls=st["ls"],
                        zorder=2,
                    )
            ax.axhline(0, color="0.4", lw=0.7, ls="--")
            ax.set_title(_panel_title(pair, config))
            ax.set_xlabel("layer")
        axes[0, 0].set_ylabel(f"{_EFFECT}\n(mean over prompts,\n{ci_note('Student t')})")
        handles = [
            Line2D([], [], color=REF_COLOR, marker="o", label=f"pad {ref} (the paper's)"),
            Line2D([], [], color=BEST_COLOR, marker="o", label=f"pad {best} (recommended)"),
            Line2D([], [], color=OTHER_COLOR, label="other pads"),
        ] + [
            Line2D(
                [],
                [],
                color=st["color"],
                marker=st["marker"],
                ls=st["ls"],
                label=f"{ref}, {st['name']}",
            )
            for st in SURGERY_STYLE.values()
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
        return save_figure(fig, out / "effect_by_layer")


def attention_by_layer(tables, config, out: Path) -> list[Path]:
    from actadd.studies.pad_confound.run import ORDINARY

    ref, best = _ref_best(tables, config)
    ctx, act = tables["attention_context"], tables["attention_actadd"]
    heads = ctx.groupby(["pad", "prompt_index", "layer"], as_index=False)[
        ["mass_key", "key_norm"]
    ].mean()
    with paper_style():
        fig, axes = panels(1, 3, (10.0, 3.6))
        for col, ax in zip(("mass_key", "key_norm"), axes[0, :2]):
            for pad, e in heads.groupby("pad"):
                if pad in (ref, best, ORDINARY):
                    continue
                m = e.groupby("layer")[col].mean()
                ax.plot(m.index, m.values, color=OTHER_COLOR, lw=0.7, zorder=1)
            for pad, color in ((ref, REF_COLOR), (best, BEST_COLOR), (ORDINARY, ORDINARY_COLOR)):
                c = _ci(heads[heads.pad == pad], "layer", col)
                if len(c):
                    interval_line(ax, c.layer, c["mean"], err=c["half"], color=color, zorder=3)
            ax.set_xlabel("layer")
        axes[0, 0].set_ylabel(
            "attention mass on position 1\n(mean over heads, later queries;\n"
            + ci_note("Student t")
            + ")"
        )
        axes[0, 0].set_title("a token at position 1")
        axes[0, 1].set_ylabel("residual norm at position 1")
        axes[0, 1].set_yscale("log")
        axes[0, 1].set_title("its residual norm")
        ax = axes[0, 2]
        per = act.groupby(["pad", "inject_layer", "prompt_index", "layer"], as_index=False)
        per = per.mass_key.mean()
        styles = ["-", "--", ":", "-."]
        injects = sorted(x for x in per.inject_layer.unique() if x >= 0)
        pad_colors = {ref: REF_COLOR, best: BEST_COLOR}
        extra = iter(plt.cm.tab10.colors)
        c = _ci(per[per.inject_layer < 0], "layer", "mass_key")
        ax.plot(c.layer, c["mean"], color=ORDINARY_COLOR, lw=1.4, label="unsteered")
        for pad, e in per[per.inject_layer >= 0].groupby("pad"):
            color = pad_colors.setdefault(pad, next(extra))
            for inj, ls in zip(injects, styles):
                c = _ci(e[e.inject_layer == inj], "layer", "mass_key")
                ax.plot(c.layer, c["mean"], color=color, ls=ls, lw=1.1)
        key = int(act.key.iloc[0]) if "key" in act else 1
        ax.set_title(f"ActAdd: mass on the pad-row position {key}")
        ax.set_xlabel("layer")
        ax.set_ylabel("attention mass\n(mean over heads, prompts)")
        handles = [
            Line2D([], [], color=REF_COLOR, marker="o", label=f"pad {ref} (the paper's)"),
            Line2D([], [], color=BEST_COLOR, marker="o", label=f"pad {best} (recommended)"),
            Line2D([], [], color=ORDINARY_COLOR, marker="o", label=f"{ORDINARY} / unsteered"),
            Line2D([], [], color=OTHER_COLOR, label="other pads"),
        ]
        handles += [
            Line2D([], [], color=color, label=f"ActAdd, pad {pad}")
            for pad, color in pad_colors.items()
            if pad not in (ref, best)
        ]
        handles += [
            Line2D([], [], color="0.3", ls=ls, label=f"ActAdd at L{inj}")
            for inj, ls in zip(injects, styles)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
        return save_figure(fig, out / "attention_by_layer")


def attention_heads(tables, config, out: Path) -> list[Path]:
    from actadd.studies.pad_confound.run import ORDINARY

    ref, _ = _ref_best(tables, config)
    ctx = tables["attention_context"]
    m = ctx.groupby(["pad", "layer", "head"]).mass_key.mean()
    diff = (m.loc[ref] - m.loc[ORDINARY]).unstack("head")
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.2, 4.0), layout="constrained")
        lim = float(np.nanmax(np.abs(diff.to_numpy()))) or 1.0
        im = ax.imshow(diff.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(diff.shape[1]))
        ax.set_title(f"attention mass on position 1: pad {ref} − ordinary token")
        fig.colorbar(im, ax=ax, label="Δ attention mass")
        return save_figure(fig, out / "attention_heads")


def word_count(tables, config, out: Path) -> list[Path]:
    ref, best = _ref_best(tables, config)
    wc = tables["word_count"]
    wc = wc[wc.metric == "topic_any"].assign(pad=lambda d: d.pair.str.removeprefix("pad "))
    base = wc[wc.layer < 0].value
    lo, hi = wilson_interval(int(base.sum()), len(base))
    pads = [p for p in dict.fromkeys(wc[wc.layer >= 0].pad)]
    colors = iter(plt.cm.tab10.colors)
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.6, 3.1), layout="constrained")
        baseline_band(ax, base.mean(), lo, hi, f"unsteered (n = {len(base)})")
        for j, pad in enumerate(pads):
            d = wc[(wc.pad == pad) & (wc.layer >= 0)]
            g = d.groupby("layer").value.agg(["sum", "count", "mean"]).reset_index()
            ci = np.array([wilson_interval(int(s), int(n)) for s, n in zip(g["sum"], g["count"])])
            color = {ref: REF_COLOR, best: BEST_COLOR}.get(pad) or next(colors)
            interval_line(
                ax,
                g.layer + 0.12 * (j - len(pads) / 2),
                g["mean"],
                ci[:, 0],
                ci[:, 1],
                color=color,
                label=f"pad {pad}" + (" (the paper's)" if pad == ref else ""),
            )
        ax.set_xlabel("layer")
        topic = WordLists.of(config.get("generation") or {}).describe("topic")
        ax.set_ylabel(f"completions with a topic word [fraction]\n({topic}; {ci_note('Wilson')})")
        ax.legend(frameon=False)
        return save_figure(fig, out / "word_count")


def pad_figures(tables: dict[str, pd.DataFrame], config: dict[str, Any], out: Path) -> list[Path]:
    """Every figure the saved tables allow."""
    out = Path(out)
    paths = norm_vs_effect(tables, config, out) + effect_by_layer(tables, config, out)
    if "attention_context" in tables and "attention_actadd" in tables:
        paths += attention_by_layer(tables, config, out) + attention_heads(tables, config, out)
    if "word_count" in tables:
        paths += word_count(tables, config, out)
    return paths
