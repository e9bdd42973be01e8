"""Paper figures from results tables (matplotlib). No model needed.

Every function takes a tidy table (as written by the sweep runner, or its
:func:`actadd.sweeps.summarize`), draws on a given or new axes, and returns the figure.
:func:`save_figure` writes PNG and PDF side by side.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

METRIC_LABELS = {
    "target_logprob": "log p(target tokens) [nats]",
    "target_logprob_delta": "Δ log p(target tokens) vs unsteered [nats]",
    "kl_next_token": "KL(steered ‖ unsteered), next token [nats]",
    "kl_neutral": "KL(steered ‖ unsteered) on neutral text [nats/token]",
    "topic_any": "Completions with a topic word [fraction]",
    "topic_count": "Topic words per completion [count]",
    "sentiment": "VADER sentiment of completions [−1, 1]",
    "perplexity_ratio": "Perplexity ratio steered / unsteered",
}

PAPER_RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 110,
    "savefig.dpi": 220,
    "savefig.bbox": "tight",
}


def label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``; return their paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(f".{path.name}.tmp.{ext}")
        fig.savefig(tmp)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def _summary(df: pd.DataFrame) -> pd.DataFrame:
    if "mean" in df.columns:
        return df
    from actadd.sweeps import summarize

    return summarize(df)


def _axes(ax, size=(5.0, 3.2)):
    if ax is not None:
        return ax.figure, ax
    with plt.rc_context(PAPER_RC):
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    return fig, ax


def _select(s: pd.DataFrame, metric: str, pair: str | None, align: str | None, pad: str | None):
    sel = s[(s.metric == metric) & (s.layer >= 0)]
    for col, val in (("pair", pair), ("align", align), ("pad", pad)):
        if val is not None:
            sel = sel[sel[col] == val]
    if sel.empty:
        raise ValueError(f"No rows for metric={metric!r}, pair={pair!r}, align={align!r}.")
    return sel


def baseline_value(df: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    """Mean and standard error of the unsteered rows of ``metric``, if present."""
    s = _summary(df)
    b = s[(s.metric == metric) & (s.layer < 0)]
    if b.empty:
        return None
    return float(b["mean"].iloc[0]), float(b["sem"].fillna(0).iloc[0])


def layer_curve(
    df: pd.DataFrame,
    metric: str,
    *,
    pair: str | None = None,
    align: str | None = "front",
    pad: str | None = None,
    ax=None,
    title: str | None = None,
):
    """``metric`` against layer, one line per coefficient, ±1 s.e. bars, baseline dashed."""
    with plt.rc_context(PAPER_RC):
        s = _summary(df)
        sel = _select(s, metric, pair, align, pad)
        fig, ax = _axes(ax)
        coeffs = sorted(sel.coeff.unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(coeffs)))
        for c, color in zip(coeffs, colors):
            d = sel[sel.coeff == c].groupby("layer")[["mean", "sem"]].mean().reset_index()
            ax.errorbar(
                d.layer,
                d["mean"],
                yerr=d["sem"].fillna(0),
                color=color,
                marker="o",
                ms=3,
                lw=1.2,
                capsize=2,
                label=f"c = {c:g}",
            )
        base = baseline_value(df, metric)
        if base is not None:
            ax.axhline(base[0], color="0.3", ls="--", lw=1, label="unsteered")
            if base[1] > 0:
                ax.axhspan(base[0] - base[1], base[0] + base[1], color="0.8", alpha=0.5, lw=0)
        elif metric.endswith("_delta") or metric.startswith("kl"):
            ax.axhline(0, color="0.3", ls="--", lw=1, label="unsteered")
        ax.set_xlabel("Injection layer L (resid_pre)")
        ax.set_ylabel(label(metric))
        ax.set_title(title or f"{pair or ''} {align or ''}".strip())
        ax.legend(frameon=False, ncol=2)
    return fig


def heatmap(
    df: pd.DataFrame,
    metric: str,
    *,
    x: str = "layer",
    y: str = "coeff",
    pair: str | None = None,
    align: str | None = "front",
    pad: str | None = None,
    ax=None,
    title: str | None = None,
    center: float | None = None,
):
    """Mean ``metric`` over a ``y × x`` grid (default coefficient × layer)."""
    with plt.rc_context(PAPER_RC):
        s = _summary(df)
        sel = _select(s, metric, pair, align, pad)
        if x == "offset" or y == "offset":
            sel = sel.assign(offset=sel["align"].map(align_offset))
        grid = sel.pivot_table(index=y, columns=x, values="mean", aggfunc="mean").sort_index()
        fig, ax = _axes(ax, size=(6.0, 3.0))
        values = grid.values
        if center is not None:
            span = np.nanmax(np.abs(values - center)) or 1.0
            kw = dict(cmap="RdBu_r", vmin=center - span, vmax=center + span)
        else:
            kw = dict(cmap="viridis")
        im = ax.imshow(values, aspect="auto", origin="lower", interpolation="nearest", **kw)
        ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
        ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
        ax.set_xlabel(
            {
                "layer": "Injection layer L",
                "offset": "Injection offset s [tokens]",
                "coeff": "Coefficient c",
            }.get(x, x)
        )
        ax.set_ylabel(
            {
                "coeff": "Coefficient c",
                "layer": "Injection layer L",
                "offset": "Injection offset s [tokens]",
            }.get(y, y)
        )
        fig.colorbar(im, ax=ax, label=label(metric), shrink=0.9)
        ax.set_title(title or f"{pair or ''} {align or ''}".strip())
    return fig


def align_offset(align: str) -> float:
    """Numeric offset of an alignment label ("front" → 0, "offset:3" → 3), else NaN."""
    if align == "front":
        return 0.0
    if align.startswith("offset:"):
        return float(align.split(":")[1])
    return float("nan")


def sweep_figures(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """The default figures of a sweep: per pair, a layer curve and a coefficient × layer
    heatmap of each metric (front alignment), and an offset heatmap when offsets vary."""
    out_dir = Path(out_dir)
    s = _summary(df)
    written: list[Path] = []
    steered = s[s.layer >= 0]
    for pi, pair in enumerate(sorted(steered.pair.unique())):
        for metric in sorted(steered[steered.pair == pair].metric.unique()):
            sub = steered[(steered.pair == pair) & (steered.metric == metric)]
            align = "front" if "front" in set(sub["align"]) else sub["align"].iloc[0]
            center = 0.0 if metric.endswith("_delta") else None
            stem = out_dir / f"pair{pi}_{metric}"
            if sub.layer.nunique() > 1:
                written += save_figure(
                    layer_curve(df, metric, pair=pair, align=align, title=f"{pair} ({align})"),
                    f"{stem}_by_layer",
                )
                if sub.coeff.nunique() > 1:
                    written += save_figure(
                        heatmap(
                            s,
                            metric,
                            pair=pair,
                            align=align,
                            center=center,
                            title=f"{pair} ({align})",
                        ),
                        f"{stem}_heatmap",
                    )
            offsets = sub["align"].map(align_offset).dropna()
            if offsets.nunique() > 1:
                written += save_figure(
                    heatmap(
                        s,
                        metric,
                        x="offset",
                        y="layer",
                        pair=pair,
                        align=None,
                        center=center,
                        title=f"{pair}: offset × layer",
                    ),
                    f"{stem}_offsets",
                )
    return written
