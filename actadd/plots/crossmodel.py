"""Figures of the cross-model analyses (:mod:`actadd.lab.crossmodel`), one colour per model.

- :func:`profile_figure` — one layer-scanning experiment's effect against relative depth, a
  panel per (pair, coefficient), both models' lines with their 95% intervals;
- :func:`ratio_figure` — the vector-norm-to-residual ratio against the effect, per model, with
  each model's Spearman ρ and interval from its claim;
- :func:`massive_figure` — the leading token's residual norm and the pad rows of the vectors,
  against the layer's typical norm, by relative depth.

Each takes the tables the lab module computes and writes ``<stem>.png`` and ``<stem>.pdf``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from actadd.plots.style import dodge, interval_line, panels, paper_style, save_figure

__all__ = ["MODEL_COLOURS", "PROFILE_LABELS", "massive_figure", "profile_figure", "ratio_figure"]

#: the colour of the base model and of the other model, in every figure
MODEL_COLOURS = ("#1f77b4", "#d95f02")
#: the y label of each profiled experiment's effect
PROFILE_LABELS = {
    "wedding_sweep": "Δ fraction with a wedding word\n(steered − unsteered)",
    "wedding_word_count": "Δ fraction with a wedding word\n(steered − unsteered)",
    "sentiment": "Δ VADER sentiment\n(steered − unsteered)",
    "token_injection": "Δ log p(target tokens)\nvs unsteered [nats]",
}
DEPTH_LABEL = "relative depth L / n_layers"


def _models(table: pd.DataFrame) -> list[tuple[str, str, int, str]]:
    """(key, name, n_layers, colour) of each model in table order."""
    seen = table.drop_duplicates("model")[["model", "model_name", "n_layers"]]
    return [(k, nm, int(n), MODEL_COLOURS[i % 2]) for i, (k, nm, n) in enumerate(seen.to_numpy())]


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def _pad_text(pad: str) -> str:
    return "" if pad in ("", "right") else f" ({pad})"


def profile_figure(prof: pd.DataFrame, experiment: str, stem: str | Path) -> list[Path]:
    """The effect of ``experiment`` against relative depth on both models
    (:func:`actadd.lab.crossmodel.layer_profiles` rows): panels by pair (rows) and coefficient
    (columns) when every pair ran the same coefficients, else one panel per (pair,
    coefficient) in rows of up to five. Intervals as the table names them."""
    t = prof[prof.experiment == experiment]
    if t.empty:
        raise ValueError(f"no layer-profile rows for {experiment!r}")
    cells = t[["pair", "pad", "coeff"]].drop_duplicates().sort_values(["pair", "pad", "coeff"])
    keys = list(dict.fromkeys(map(tuple, cells[["pair", "pad"]].to_numpy())))
    coeffs = sorted(cells.coeff.unique())
    grid = all(len(cells[(cells.pair == p) & (cells.pad == d)]) == len(coeffs) for p, d in keys)
    layout = [(p, d, c) for p, d in keys for c in coeffs] if grid else list(
        map(tuple, cells.to_numpy()))  # fmt: skip
    ncols = len(coeffs) if grid else min(5, len(layout))
    nrows = -(-len(layout) // ncols)
    models = _models(t)
    with paper_style():
        fig, axes = panels(nrows, ncols, (1.9 * ncols + 0.6, 1.9 * nrows + 1.1), sharey=True,
                           sharex=True)  # fmt: skip
        for ax in axes.ravel()[len(layout) :]:
            ax.set_visible(False)
        for ax, (pair, pad, coeff) in zip(axes.ravel(), layout):
            ax.axhline(0, color="0.6", lw=0.7, zorder=0)
            for i, (key, name, n, colour) in enumerate(models):
                s = t[(t.model == key) & (t.pair == pair) & (t.pad == pad) & (t.coeff == coeff)]
                s = s.sort_values("depth")
                interval_line(ax, dodge(s.depth, i, 2, 0.006), s.estimate, s.lo, s.hi,
                              color=colour, ms=2.2, lw=0.9, elinewidth=0.5, capsize=0,
                              label=f"{name} ({n} layers)")  # fmt: skip
            ax.set_title(f"{pair}{_pad_text(pad)}, c = {coeff:g}", fontsize=7.5)
            ax.set_xlim(-0.03, 1.0)
        if experiment in ("wedding_sweep", "wedding_word_count"):
            axes[0, 0].set_ylim(-1.05, 1.05)
        for ax in axes[-1]:
            ax.set_xlabel(DEPTH_LABEL)
        for row in axes:
            row[0].set_ylabel(PROFILE_LABELS.get(experiment, "effect"))
        methods = "; ".join(sorted(t.interval.str.replace(r" \d+ prompts", " prompts",
                                                          regex=True).unique()))  # fmt: skip
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=2, frameon=False,
                   title=f"{experiment}: mean and 95% CI ({methods})",
                   title_fontsize=7.5)  # fmt: skip
    return save_figure(fig, stem)


def ratio_figure(cells: pd.DataFrame, claims: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Scatter of ``ratio_mean`` (log scale) against the target shift and the KL, one colour
    per model, each model's ρ, interval and adjusted p in the legend (``claims``: the rows
    of :func:`actadd.lab.crossmodel.ratio_claims` as a table)."""
    models = _models(cells)
    effects = [("target_logprob_delta", "Δ log p(target tokens)\nvs unsteered [nats]"),
               ("kl", "KL(steered ‖ unsteered),\nnext token [nats]")]  # fmt: skip
    with paper_style():
        fig, axes = panels(1, 2, (7.6, 3.6))
        for ax, (y, ylabel) in zip(axes[0], effects):
            for key, name, _n, colour in models:
                c = cells[cells.model == key]
                row = claims[claims.id == f"spearman:ratio_mean:{y}:{key}"]
                text = name
                if len(row):
                    r = row.iloc[0]
                    text += (f": ρ = {_signed(r.estimate)} [{_signed(r.lo)}, {_signed(r.hi)}], "
                             f"p (BH) {r.p_adj:.2g}")  # fmt: skip
                ax.scatter(c.ratio_mean, c[y], s=12, color=colour, alpha=0.8, lw=0, label=text)
            ax.set_xscale("log")
            if y == "kl":
                ax.set_yscale("log")
            else:
                ax.axhline(0, color="0.6", lw=0.7, zorder=0)
            ax.set_xlabel("vector row norm / typical residual norm\n(mean over the vector's rows)")
            ax.set_ylabel(ylabel)
            ax.legend(loc="best", frameon=False, fontsize=6)
        fig.suptitle("token_injection: one point per pair × layer (5 pairs; exploratory)",
                     fontsize=8)  # fmt: skip
    return save_figure(fig, stem)


def massive_figure(positions: pd.DataFrame, pads: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Left: the residual norm at the leading token (solid) and the first real token (mean
    over prompts; dotted) over the layer's typical norm. Right: the largest pad row of the
    vectors (``|h+ − h−| / (|c| · typical)``) over the median ordinary row, per pad token."""
    models = _models(positions)
    styles = {" ": "-", " a": "--"}
    with paper_style():
        fig, axes = panels(1, 2, (7.6, 3.4))
        left, right = axes[0]
        for key, name, _n, colour in models:
            p = positions[positions.model == key]
            for position, ls in (("leading token", "-"), ("first real token (mean)", ":")):
                s = p[p.position == position].sort_values("depth")
                token = s.token.iloc[0] if position == "leading token" else ""
                what = f"leading token {token}" if token else "first real token (mean)"
                left.plot(s.depth, s.ratio, ls=ls, marker="o", ms=2.5, lw=1, color=colour,
                          label=f"{name}: {what}")  # fmt: skip
            q = pads[pads.model == key]
            for pad, s in q.groupby("pad"):
                s = s.sort_values("depth")
                right.plot(s.depth, s.times_ordinary, ls=styles.get(pad, "-."), marker="o",
                           ms=2.5, lw=1, color=colour, label=f"{name}: pad {pad!r}")  # fmt: skip
        left.set_ylabel("residual norm at the position /\ntypical residual norm")
        right.set_ylabel("largest pad row / median ordinary row\n(|h+ − h−| / (|c| · typical))")
        for ax in (left, right):
            ax.set_yscale("log")
            ax.axhline(1, color="0.6", lw=0.7, zorder=0)
            ax.set_xlabel(DEPTH_LABEL)
            ax.set_xlim(-0.03, 1.0)
            ax.legend(loc="best", frameon=False, fontsize=6)
        fig.suptitle("Massive activations in the saved token-injection diagnostics", fontsize=8)
    return save_figure(fig, stem)
