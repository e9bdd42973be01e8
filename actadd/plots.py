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


# ---------------------------------------------------------------------- paper figures
#
# The figures of the paper-reproduction experiments (experiments/README.md). Each takes a
# table already reduced to one row per cell (``actadd.metrics.proportion_summary`` for 0/1
# metrics, ``actadd.sweeps.summarize`` for means) and draws on a given or new axes.

CI_NOTE = "bars: 95% CI"
ALIGN_ORDER = ("front", "offset", "back", "all", "positions")


def _baseline_band(ax, centre: float, lo: float, hi: float, text: str = "unsteered") -> None:
    """The unsteered value as a dashed line, its confidence interval as a grey band."""
    ax.axhline(centre, color="0.25", ls="--", lw=1, label=text, zorder=1)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        ax.axhspan(lo, hi, color="0.8", alpha=0.6, lw=0, zorder=0)


def _yerr(centre, lo, hi) -> np.ndarray:
    centre, lo, hi = (np.asarray(x, dtype=float) for x in (centre, lo, hi))
    return np.vstack([centre - lo, hi - centre]).clip(min=0)


def align_sort_key(align: str) -> tuple[int, float]:
    """Order alignments front, offset:1, offset:2, ..., back, all."""
    kind = align.split(":")[0]
    rank = ALIGN_ORDER.index(kind) if kind in ALIGN_ORDER else len(ALIGN_ORDER)
    off = align_offset(align)
    return (rank, 0.0 if np.isnan(off) else off)


def mean_ci(summary: pd.DataFrame) -> pd.DataFrame:
    """Add ``lo``/``hi`` (mean ± t·s.e., a Student-t 95% interval) to a summarize() table."""
    from actadd.metrics import t95

    s = summary.copy()
    t = np.array([t95(n - 1) if n > 1 else 0.0 for n in s["count"]])
    half = t * s["sem"].fillna(0.0).to_numpy()
    s["lo"], s["hi"] = s["mean"] - half, s["mean"] + half
    return s


def proportion_by_layer(
    props: pd.DataFrame,
    *,
    pair: str | None = None,
    align: str | None = "front",
    ax=None,
    title: str | None = None,
    ylabel: str = "Completions with a topic word [fraction]",
):
    """Fraction of completions with a topic word against injection layer.

    One line per coefficient with Wilson 95% intervals; the unsteered fraction is the dashed
    line with its Wilson interval as a grey band. ``props`` is
    :func:`actadd.metrics.proportion_summary` output.
    """
    with plt.rc_context(PAPER_RC):
        fig, ax = _axes(ax)
        sel = props[props.layer >= 0]
        for col, val in (("pair", pair), ("align", align)):
            if val is not None and col in sel.columns:
                sel = sel[sel[col] == val]
        if sel.empty:
            raise ValueError(f"No steered rows for pair={pair!r}, align={align!r}.")
        base = props[props.layer < 0]
        if len(base):
            b = base.iloc[0]
            _baseline_band(ax, b.frac, b.lo, b.hi, f"unsteered (n = {int(b.n)})")
        coeffs = sorted(sel.coeff.unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(coeffs)))
        for i, (c, color) in enumerate(zip(coeffs, colors)):
            d = sel[sel.coeff == c].sort_values("layer")
            shift = (i - (len(coeffs) - 1) / 2) * 0.18  # keep the error bars apart
            bars = ax.errorbar(
                d.layer + shift,
                d.frac,
                yerr=_yerr(d.frac, d.lo, d.hi),
                color=color,
                marker="o",
                ms=3,
                lw=1.1,
                elinewidth=0.7,
                capsize=1.2,
                label=f"c = {c:g} (n = {int(d.n.iloc[0])})",
            )
            for part in (*bars[1], *bars[2]):  # caps and bars lighter than the line
                part.set_alpha(0.5)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("Injection layer L (resid_pre)")
        ax.set_ylabel(ylabel)
        ax.set_title(title or (pair or ""))
        ax.legend(frameon=False, ncol=2, loc="upper right")
        ax.text(0.01, 0.99, CI_NOTE + " (Wilson)", transform=ax.transAxes, va="top", fontsize=7)
    return fig


def mean_by(
    summary: pd.DataFrame,
    metric: str,
    *,
    x: str = "layer",
    lines: str = "coeff",
    pair: str | None = None,
    align: str | None = "front",
    ax=None,
    title: str | None = None,
    xlabel: str | None = None,
    log_x: bool = False,
):
    """Mean ``metric`` against ``x`` (``"layer"`` or ``"coeff"``), one line per value of
    ``lines``, with Student-t 95% intervals and the unsteered band.

    ``summary`` is :func:`actadd.sweeps.summarize` output (steered rows ``layer >= 0``,
    unsteered ``layer < 0``).
    """
    with plt.rc_context(PAPER_RC):
        fig, ax = _axes(ax)
        s = mean_ci(summary[summary.metric == metric])
        sel = s[s.layer >= 0]
        for col, val in (("pair", pair), ("align", align)):
            if val is not None:
                sel = sel[sel[col] == val]
        if sel.empty:
            raise ValueError(f"No steered rows for metric={metric!r}, pair={pair!r}.")
        base = s[s.layer < 0]
        if len(base):
            b = base.groupby("metric")[["mean", "lo", "hi", "count"]].mean().iloc[0]
            _baseline_band(ax, b["mean"], b["lo"], b["hi"], f"unsteered (n = {int(b['count'])})")
        elif metric.endswith("_delta") or metric.startswith("kl"):
            ax.axhline(0, color="0.25", ls="--", lw=1, label="unsteered")
        values = sorted(sel[lines].unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(values)))
        for i, (v, color) in enumerate(zip(values, colors)):
            d = sel[sel[lines] == v].groupby(x)[["mean", "lo", "hi"]].mean().reset_index()
            # spread the lines a little along x so that their error bars stay apart
            step = (i - (len(values) - 1) / 2) / max(len(values), 1)
            xs = d[x] * 2 ** (0.25 * step) if log_x else d[x] + 0.6 * step
            ax.errorbar(
                xs,
                d["mean"],
                yerr=_yerr(d["mean"], d["lo"], d["hi"]),
                color=color,
                marker="o",
                ms=3,
                lw=1.1,
                elinewidth=0.8,
                capsize=1.5,
                label=f"{'c' if lines == 'coeff' else 'L'} = {v:g}",
            )
        if log_x:
            ax.set_xscale("log", base=2)
            ticks = sorted(sel[x].unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(
            xlabel or {"layer": "Injection layer L (resid_pre)", "coeff": "Coefficient c"}.get(x, x)
        )
        ax.set_ylabel(label(metric))
        ax.set_title(title or (pair or ""))
        ax.legend(frameon=False, ncol=2, fontsize=6.5, loc="best")
    return fig


def cell_bars(
    table: pd.DataFrame,
    *,
    groups: str,
    bars: str,
    value: str = "frac",
    ax=None,
    baseline: tuple[float, float, float] | None = None,
    ylabel: str = "",
    title: str = "",
    order: list | None = None,
    bar_order: list | None = None,
    colors=None,
):
    """Grouped bars with 95% intervals: one group per value of ``groups`` (x axis), one bar
    per value of ``bars`` inside it. ``table`` has ``value``, ``lo`` and ``hi`` columns.
    ``baseline`` = (centre, lo, hi) of the unsteered value, drawn as a line and band;
    ``colors`` gives one colour per bar value (default: tab10)."""
    with plt.rc_context(PAPER_RC):
        fig, ax = _axes(ax, size=(6.0, 3.0))
        gvals = order or list(dict.fromkeys(table[groups]))
        bvals = bar_order or list(dict.fromkeys(table[bars]))
        width = 0.8 / max(len(bvals), 1)
        colors = plt.cm.tab10(np.arange(len(bvals)) % 10) if colors is None else colors
        if baseline is not None:
            _baseline_band(ax, *baseline)
        for j, (bv, color) in enumerate(zip(bvals, colors)):
            d = table[table[bars] == bv].set_index(groups).reindex(gvals)
            xs = np.arange(len(gvals)) + (j - (len(bvals) - 1) / 2) * width
            ax.bar(xs, d[value], width * 0.9, color=color, label=str(bv), zorder=2)
            ax.errorbar(
                xs,
                d[value],
                yerr=_yerr(d[value], d["lo"], d["hi"]),
                fmt="none",
                ecolor="0.15",
                elinewidth=0.8,
                capsize=1.5,
                zorder=3,
            )
        ax.set_xticks(np.arange(len(gvals)), [str(g) for g in gvals])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=7)
    return fig


def ratio_vs_relevance(
    table: pd.DataFrame,
    *,
    x: str = "topic_density",
    y: str = "ratio",
    ax=None,
    title: str = "",
    xlabel: str = "Wedding words per 100 words of the text",
    ylabel: str = "Perplexity ratio, steered / unsteered",
    bins: int = 4,
):
    """Per-text ratio against topic relevance (points coloured by text group), with binned
    means ±95% intervals; the line y = 1 is the unsteered model."""
    with plt.rc_context(PAPER_RC):
        fig, ax = _axes(ax)
        ax.axhline(1.0, color="0.25", ls="--", lw=1, label="unsteered (ratio 1)")
        groups = list(dict.fromkeys(table["group"])) if "group" in table else [None]
        colors = plt.cm.Set2(np.arange(len(groups)) % 8)
        for g, color in zip(groups, colors):
            d = table if g is None else table[table["group"] == g]
            ax.scatter(d[x], d[y], s=10, color=color, alpha=0.8, lw=0, label=g, zorder=2)
        edges = np.unique(np.quantile(table[x], np.linspace(0, 1, bins + 1)))
        if len(edges) > 2:
            which = np.clip(np.searchsorted(edges, table[x], side="right") - 1, 0, len(edges) - 2)
            g = table.assign(_bin=which).groupby("_bin")
            m = g[[x, y]].mean()
            sem = g[y].std().fillna(0) / np.sqrt(g[y].count())
            ax.errorbar(
                m[x],
                m[y],
                yerr=1.96 * sem,
                color="k",
                marker="s",
                ms=4,
                lw=1.2,
                capsize=2,
                label="binned mean ± 95% CI",
                zorder=3,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=7)
    return fig
