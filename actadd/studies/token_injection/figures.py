"""Figures of the ``token_injection`` experiment (:mod:`actadd.studies.token_injection.kind`).

Each ``plot_*`` function takes a table the experiment wrote (``summary.csv`` is
:func:`actadd.studies.token_injection.layer_summary` output, ``diagnostics.csv`` is
:func:`actadd.studies.token_injection.vector_diagnostics` output) and returns a figure a text
width wide; :func:`experiment_figures` redraws them all from a run directory, without a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.lab.stats import t95
from actadd.plots.style import panels, paper_style, save_figure
from actadd.plots.text import ci_note, pair_title, words_text

__all__ = [
    "BOTTOM_ROW",
    "CONDITION_STYLE",
    "FIGURE_WIDTH",
    "NULL_STYLE",
    "SAME_POSITION",
    "TOP_ROW",
    "experiment_figures",
    "plot_dose_response",
    "plot_similarity_by_layer",
    "plot_similarity_vs_layer",
    "plot_specificity",
    "plot_transplants",
    "plot_vector_diagnostics",
]

FIGURE_WIDTH = 7.0  # inches: a two-column paper's full text width


# every band and bar of these figures: a mean over the prompts with this interval
BANDS = ci_note("Student t over prompts")
# the similarity of two conditions' effects on the next token, as the axes say it
SIMILARITY = "Pearson r over the vocabulary of Δ log p"
SIM_LABEL = "similarity to {what}\n(Pearson r of Δ log p\nover the vocabulary)"


def _pair_labels(config: dict[str, Any] | None) -> dict[str, str]:
    """Panel titles: a pair's ``label`` from the config, else ``'p+' − 'p−'``, in words
    (:func:`actadd.plots.text.pair_title`); then ``c`` and the target word list."""
    labels = {}
    for item in (config or {}).get("pairs", []):
        text = pair_title(item.get("label") or f"{item['positive']!r} − {item['negative']!r}")
        pad = item.get("pad_token", " ")
        extra = "" if pad == " " else f", pad {pad!r}"
        target = words_text(item.get("target"))
        extra += f"\ntarget: {target}" if target else ""
        labels[item["name"]] = f"{text}\nc = {item['coeff']:g}{extra}"
    return labels


# pairs per row of panels: more would squeeze each panel's title below its width
PAIRS_PER_ROW = 4


def _grid(n_pairs: int, height: float):
    """``(fig, axes)`` with two rows of panels (top and bottom metric) for every
    :data:`PAIRS_PER_ROW` pairs; ``axes[:, j]`` are pair ``j``'s panels (top, bottom), and
    ``axes[:, 0]`` start a row. Panels left over are hidden."""
    ncols = max(1, min(n_pairs, PAIRS_PER_ROW))
    blocks = max(1, -(-n_pairs // ncols))
    fig, grid = panels(
        2 * blocks, ncols, (FIGURE_WIDTH, height * blocks + 0.6), sharex=True, sharey="row"
    )
    cells = [(2 * (j // ncols), j % ncols) for j in range(n_pairs)]
    axes = np.array([[grid[r, c] for r, c in cells], [grid[r + 1, c] for r, c in cells]])
    for r in range(2 * blocks):
        for c in range(ncols):
            if (r - r % 2, c) not in cells:
                grid[r, c].set_visible(False)
    return fig, axes, grid


def _short(label: str) -> str:
    """A panel title's first line (the pair), for legends."""
    return label.split("\n")[0]


def _legend_below(fig, axes_row, ncol: int = 3, title: str | None = f"bands: {BANDS}") -> None:
    """One legend for a row of panels, under the figure (collected from every panel)."""
    seen: dict[str, Any] = {}
    for ax in axes_row:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    if seen:
        fig.legend(
            seen.values(),
            seen.keys(),
            loc="outside lower center",
            ncol=ncol,
            frameon=False,
            title=title,
            title_fontsize=6.5,
        )


def _by(summary: pd.DataFrame, pair: str, condition: str) -> pd.DataFrame:
    sel = summary[(summary["pair"] == pair) & (summary["condition"] == condition)]
    return sel.sort_values("layer")


def _band(ax, x, mean, sem, n=None, **kw) -> None:
    """A line of means with its Student-t 95% interval as a band (``sem`` over ``n``
    prompts, per point); no band where ``sem`` is None or has no finite value."""
    line = ax.plot(x, mean, **kw)[0]
    if sem is not None and np.isfinite(np.asarray(sem, float)).any():
        sem = np.nan_to_num(np.asarray(sem, float))
        n = np.broadcast_to(np.asarray(n if n is not None else 2, float), sem.shape)
        half = sem * np.array([t95(k - 1) if k > 1 else 0.0 for k in n])
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.15, lw=0)


# One style per condition, shared by both rows of plot_similarity_vs_layer (one legend entry
# per meaning); the rows list (condition, with its ± SEM band or not).
CONDITION_STYLE = {
    "actadd": dict(marker="o", ms=3, color="C0", label="ActAdd"),
    "inject_replace": dict(
        marker="s", ms=3, color="C1", label="p+ tokens replacing the first tokens"
    ),
    "embedding_l0": dict(marker="^", ms=3, color="C2", label="embedding difference at L0"),
    "random": dict(ls="--", color="0.5", label="random (same row norms)"),
    "slice": dict(marker=".", color="C3", label="ActAdd, first 70% of dims"),
}
TOP_ROW = (("actadd", True), ("inject_replace", True), ("embedding_l0", True), ("random", True))
BOTTOM_ROW = (("actadd", True), ("slice", False), ("random", False))


def _curves(ax, summary: pd.DataFrame, pair: str, rows, column: str) -> None:
    """``column`` by layer for each (condition, band) of ``rows`` that the summary has."""
    for condition, band in rows:
        sel = _by(summary, pair, condition)
        if len(sel):
            sem = sel[f"{column}_sem"] if band else None
            _band(
                ax, sel.layer, sel[column], sem, sel.get("n_prompts"), **CONDITION_STYLE[condition]
            )


def plot_similarity_vs_layer(summary: pd.DataFrame, labels: dict[str, str] | None = None):
    """Top: how similar each condition's effect is to prepending p+ as tokens; bottom: the
    target-token log-prob change. One legend entry per condition: a condition has the same
    colour, marker and label in both rows, and no two conditions share a style."""
    pairs = list(dict.fromkeys(summary["pair"]))
    labels = labels or {}
    with paper_style():
        fig, axes, grid = _grid(len(pairs), 4.4)
        for j, pair in enumerate(pairs):
            top, bottom = axes[0, j], axes[1, j]
            _curves(top, summary, pair, TOP_ROW, "inject_corr")
            top.axhline(0, color="k", lw=0.6)
            top.set_ylim(-0.3, 1.05)
            top.set_title(labels.get(pair, pair), fontsize=7)
            _curves(bottom, summary, pair, BOTTOM_ROW, "target_logprob_delta")
            inj = _by(summary, pair, "inject_prepend")
            if len(inj):
                bottom.axhline(
                    inj.target_logprob_delta.iloc[0],
                    color="C4",
                    ls=":",
                    label="p+ prepended as tokens",
                )
            bottom.axhline(0, color="k", lw=0.6)
            bottom.set_xlabel("layer L (resid_pre)")
        for r in range(0, grid.shape[0], 2):
            grid[r, 0].set_ylabel(SIM_LABEL.format(what="p+ prepended"), fontsize=7.5)
            grid[r + 1, 0].set_ylabel("Δ log p(target words)\nvs unsteered [nats]")
        _legend_below(fig, axes.ravel())
    return fig


def plot_transplants(summary: pd.DataFrame, labels: dict[str, str] | None = None):
    """The pair's difference taken at source layer S and added at target layer T (rescaled
    by typical norms), against S: target-word change and similarity to ActAdd at T."""
    t = summary[summary["condition"] == "transplant"]
    counts = t.groupby(["pair", "layer"]).size()
    targets = sorted({layer for (_, layer), n in counts.items() if n > 3})
    pairs = list(dict.fromkeys(t["pair"]))
    labels = labels or {}
    with paper_style():
        fig, axes, grid = _grid(len(pairs), 4.4)
        for j, pair in enumerate(pairs):
            for k, target in enumerate(targets):
                sel = t[(t.pair == pair) & (t.layer == target)].sort_values("source_layer")
                rnd = summary[
                    (summary.pair == pair)
                    & (summary.layer == target)
                    & (summary.condition == "random")
                ]
                rnd_text = f"random @ {target}"
                # per row: the column drawn, the transplant's label, the random control's
                rows = (
                    ("target_logprob_delta", f"transplant S → {target}", rnd_text),
                    ("effect_corr", f"S → {target} vs ActAdd@{target}", f"{rnd_text} vs ActAdd"),
                )
                for ax, (column, text, _) in zip(axes[:, j], rows):
                    _band(
                        ax,
                        sel.source_layer,
                        sel[column],
                        sel[f"{column}_sem"],
                        sel.get("n_prompts"),
                        marker="o",
                        ms=3,
                        color=f"C{k}",
                        label=text,
                    )
                if len(rnd):
                    for ax, (column, _, text) in zip(axes[:, j], rows):
                        ax.axhline(rnd[column].iloc[0], color=f"C{k}", ls="--", lw=0.8, label=text)
            for ax in axes[:, j]:
                ax.axhline(0, color="k", lw=0.6)
            axes[0, j].set_title(labels.get(pair, pair), fontsize=7)
            axes[1, j].set_xlabel("source layer S")
        for r in range(0, grid.shape[0], 2):
            grid[r, 0].set_ylabel("Δ log p(target words)\nvs unsteered [nats]")
            grid[r + 1, 0].set_ylabel(SIM_LABEL.format(what="ActAdd at T"), fontsize=7.5)
        _legend_below(fig, axes.ravel())
    return fig


def plot_dose_response(summary: pd.DataFrame, labels: dict[str, str] | None = None):
    """Target-word change and KL against the coefficient (as a multiple of each pair's c)."""
    d = summary[summary["condition"] == "coeff"]
    labels = labels or {}
    with paper_style():
        fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 3.2), layout="constrained")
        for k, ((pair, layer), g) in enumerate(d.groupby(["pair", "layer"], sort=False)):
            g = g.sort_values("scale")
            name = f"{_short(labels.get(pair, pair))}, layer {layer}"
            _band(
                axes[0],
                g.scale,
                g.target_logprob_delta,
                g.target_logprob_delta_sem,
                g.get("n_prompts"),
                marker="o",
                ms=3,
                color=f"C{k}",
                label=name,
            )
            axes[1].plot(g.scale, g.kl, marker="o", ms=3, color=f"C{k}")
        for ax in axes:
            ax.axvline(0, color="k", lw=0.6)
            ax.set_xlabel("coefficient as a multiple of the pair's c")
        axes[0].axhline(0, color="k", lw=0.6)
        axes[0].set_ylabel("Δ log p(target words) [nats]")
        axes[1].set_ylabel("KL(steered ‖ unsteered) [nats]")
        axes[0].set_title("negative and fractional multiples have no token analogue", fontsize=7.5)
        _legend_below(fig, axes)
    return fig


def plot_vector_diagnostics(diag: pd.DataFrame, labels: dict[str, str] | None = None):
    """Is the vector still its tokens? Cosine of its rows with the pair's token-embedding
    difference, and its size relative to the prompt's residual stream, across layers."""
    labels = labels or {}
    rows = diag[diag["token_pos"] != diag["token_neg"]]
    g = rows.groupby(["pair", "layer"], sort=False)[["cos_diff", "norm_ratio"]].mean()
    legend_rows = -(-rows["pair"].nunique() // 5)  # the legend below grows with the pairs
    with paper_style():
        fig, axes = plt.subplots(
            1, 2, figsize=(FIGURE_WIDTH, 3.0 + 0.18 * legend_rows), layout="constrained"
        )
        for k, pair in enumerate(dict.fromkeys(rows["pair"])):
            s = g.loc[pair].sort_index()
            axes[0].plot(
                s.index,
                s.cos_diff,
                marker="o",
                ms=3,
                color=f"C{k}",
                label=_short(labels.get(pair, pair)),
            )
            axes[1].plot(s.index, s.norm_ratio, marker="o", ms=3, color=f"C{k}")
        d_model = None if "d_model" not in diag else int(diag["d_model"].iloc[0])
        if d_model:
            axes[0].axhspan(
                -2 / d_model**0.5, 2 / d_model**0.5, color="0.85", label="random direction (±2/√d)"
            )
        axes[0].set_ylabel("cos(row, W_E[p+] − W_E[p−])")
        axes[1].set_ylabel("‖c · row‖ / ‖prompt residual‖")
        axes[1].set_yscale("log")
        axes[1].axhline(1, color="k", lw=0.6)
        for ax in axes:
            ax.set_xlabel("layer L")
        _legend_below(fig, axes, ncol=4, title=None)
    return fig


NULL_STYLE = {
    "residual": ("0.55", "residual-distribution null"),
    "embedding": ("tan", "embedding-difference null"),
}
SAME_POSITION = (
    ("actadd", "C0", "o", "ActAdd"),
    ("patch", "C1", "s", "contextual patch (token's own residual at L)"),
    ("visible_replace", "C2", "^", "tokens visible only from L on"),
    ("ctxdiff_normed", "C4", "d", "contextual difference at ActAdd's row norms"),
)


def _null_band(d: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the 95% band (``lo``, ``hi``) of a null's mean ``replace_corr`` over the
    prompts (see :func:`plot_similarity_by_layer`)."""
    if "prompt_index" not in d or (d.prompt_index < 0).all():
        q = d.groupby("layer").replace_corr.quantile([0.025, 0.975]).unstack()
        return q.rename(columns={0.025: "lo", 0.975: "hi"})
    per = d.groupby(["layer", "prompt_index"]).replace_corr.mean().groupby("layer")
    mean, se = per.mean(), per.std(ddof=1) / np.sqrt(per.count())
    return pd.DataFrame({"lo": mean - 1.96 * se.fillna(0), "hi": mean + 1.96 * se.fillna(0)})


def plot_similarity_by_layer(
    summary: pd.DataFrame,
    null_draws: pd.DataFrame | None,
    labels: dict[str, str] | None = None,
    *,
    ncols: int = 4,
):
    """Per pair: similarity of each same-position condition's effect to p+'s tokens at the
    vector's positions (``replace_corr``) against the layer, with the nulls' 95% bands
    (vectors norm-matched per row to ActAdd): with draws on every prompt, 2.5–97.5% over
    draws of the mean over prompts; with each prompt's own draws (``prompt_index`` ≥ 0), the
    mean over prompts ± 1.96 standard errors (a null's value for a set of prompts this size).
    """
    pairs = list(dict.fromkeys(summary["pair"]))
    labels = labels or {}
    nrows = int(np.ceil(len(pairs) / ncols))
    with paper_style():
        fig, axes = panels(
            nrows,
            min(ncols, len(pairs)),
            (FIGURE_WIDTH, 1.9 * nrows + 1.0),
            sharex=True,
            sharey=True,
        )
        for ax, pair in zip(axes.ravel(), pairs):
            if null_draws is not None and len(null_draws):
                for kind, (color, text) in NULL_STYLE.items():
                    d = null_draws[(null_draws.pair == pair) & (null_draws.null == kind)]
                    if d.empty:
                        continue
                    q = _null_band(d)
                    ax.fill_between(
                        q.index,
                        q["lo"],
                        q["hi"],
                        color=color,
                        alpha=0.35,
                        lw=0,
                        label=text + " (95% band)",
                    )
            for cond, color, marker, text in SAME_POSITION:
                a = _by(summary, pair, cond)
                if len(a):
                    _band(
                        ax,
                        a.layer,
                        a.replace_corr,
                        a.get("replace_corr_sem"),
                        a.get("n_prompts"),
                        color=color,
                        marker=marker,
                        ms=2.5,
                        lw=1,
                        label=text,
                    )
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(labels.get(pair, pair), fontsize=7)
        for ax in axes.ravel()[len(pairs) :]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("layer L")
        for ax in axes[:, 0]:
            ax.set_ylabel(SIM_LABEL.format(what="p+ tokens\nat the same positions"), fontsize=7)
        _legend_below(fig, axes.ravel(), ncol=2)
    return fig


def plot_specificity(matrix: pd.DataFrame, layer: int):
    """Heatmap of the mean over prompts of the similarity of ActAdd(row concept) to injecting
    the column concept at the same positions, at ``layer``."""
    m = matrix[matrix.layer == layer].groupby(["actadd", "inject"]).effect_corr.mean().unstack()
    order = list(dict.fromkeys(matrix.actadd))
    m = m.reindex(index=order, columns=order)
    with paper_style():
        fig, ax = plt.subplots(
            figsize=(FIGURE_WIDTH * 0.75, FIGURE_WIDTH * 0.7), layout="constrained"
        )
        lim = float(np.nanmax(np.abs(m.to_numpy()))) or 1.0
        im = ax.imshow(m.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xticks(range(len(order)), order, rotation=90, fontsize=6)
        ax.set_yticks(range(len(order)), order, fontsize=6)
        ax.set_xlabel("tokens injected at the same positions")
        ax.set_ylabel("ActAdd vector")
        ax.set_title(f"Effect similarity at L{layer}: {SIMILARITY},\nmean over prompts", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8, label=SIMILARITY)
    return fig


def experiment_figures(
    summary: pd.DataFrame,
    diag: pd.DataFrame | None,
    config: dict[str, Any],
    fig_dir: str | Path,
    *,
    extra: dict[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """The token-injection figures from its ``summary`` and ``diagnostics`` tables (and, in
    ``extra``, ``null_draws``, ``specificity`` and ``topic_rate``), into ``fig_dir`` (pair
    labels from the run's ``config``)."""
    labels = _pair_labels(config)
    extra = extra or {}
    fig_dir = Path(fig_dir)
    paths = save_figure(plot_similarity_vs_layer(summary, labels), fig_dir / "similarity_vs_layer")
    if (summary["condition"] == "patch").any():
        fig = plot_similarity_by_layer(summary, extra.get("null_draws"), labels)
        paths += save_figure(fig, fig_dir / "similarity_by_layer_nulls")
    if (summary["condition"] == "ctxdiff").any():
        from actadd.studies.token_injection.contextual_figures import plot_contextual

        fig = plot_contextual(summary, extra.get("topic_rate"))
        paths += save_figure(fig, fig_dir / "contextual_difference")
    if "specificity" in extra:
        for layer in sorted(set(extra["specificity"].layer)):
            fig = plot_specificity(extra["specificity"], int(layer))
            paths += save_figure(fig, fig_dir / f"specificity_L{int(layer)}")
    if (summary["condition"] == "transplant").any():
        paths += save_figure(plot_transplants(summary, labels), fig_dir / "transplant_vs_source")
    if (summary["condition"] == "coeff").any():
        paths += save_figure(plot_dose_response(summary, labels), fig_dir / "dose_response")
    if diag is not None:
        paths += save_figure(plot_vector_diagnostics(diag, labels), fig_dir / "vector_diagnostics")
    return paths
