"""The house style of every figure: rc settings, axis labels, saving, and interval drawing.

:func:`save_figure` writes PNG and PDF side by side, after checking that no two text boxes
overlap and none leaves the canvas (:func:`actadd.plots.checks.text_problems`).
:func:`baseline_band` and :func:`yerr` draw 95% intervals the same way in every figure.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from actadd.plots.checks import FigureTextWarning, text_problems

__all__ = [
    "CI_NOTE",
    "METRIC_LABELS",
    "METRIC_WORDS",
    "PAPER_RC",
    "baseline_band",
    "dodge",
    "figure_axes",
    "interval_line",
    "label",
    "panels",
    "paper_style",
    "save_figure",
    "yerr",
]

METRIC_LABELS = {
    "target_logprob": "log p(target tokens) [nats]",
    "target_logprob_delta": "Δ log p(target tokens)\nvs unsteered [nats]",
    "kl_next_token": "KL(steered ‖ unsteered),\nnext token [nats]",
    "kl_neutral": "KL(steered ‖ unsteered)\non neutral text [nats/token]",
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

CI_NOTE = "95% CI"


# the word list each word-based metric is measured with (a WordLists attribute)
METRIC_WORDS = {
    "target_logprob": "target",
    "target_logprob_delta": "target",
    "topic_any": "topic",
    "topic_count": "topic",
}


@contextmanager
def paper_style() -> Iterator[None]:
    """The house style (:data:`PAPER_RC`) for the figures made inside; on exit the settings
    it changed are put back, and no others. (``plt.rc_context`` restores every setting: the
    first figure of a Jupyter session loads the inline backend, which turns ``interactive``
    on, and ``rc_context`` would turn it off again, so no later figure would display.)"""
    saved = {key: matplotlib.rcParams[key] for key in PAPER_RC}
    try:
        matplotlib.rcParams.update(PAPER_RC)
        yield
    finally:
        matplotlib.rcParams.update(saved)


def label(metric: str, words=None) -> str:
    """The axis label of a metric (its name when it has none); for a word-based metric and
    ``words`` (:class:`actadd.plots.text.WordLists`), a second line names its word list."""
    text = METRIC_LABELS.get(metric, metric)
    which = METRIC_WORDS.get(metric)
    if words is None or which is None:
        return text
    return f"{text}\n({words.describe(which)})"


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``; return their paths. A figure with overlapping
    text or text off its canvas is still written, with one :class:`FigureTextWarning`
    listing the problems (an error in the tests)."""
    stem = Path(stem)
    problems = text_problems(fig)
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        warnings.warn(FigureTextWarning(f"{stem.name}: {shown}"), stacklevel=2)
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


def figure_axes(ax=None, size: tuple[float, float] = (5.0, 3.2)):
    """``(figure, axes)``: those of ``ax`` when given, else a new figure of ``size`` inches."""
    if ax is not None:
        return ax.figure, ax
    with paper_style():
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    return fig, ax


def baseline_band(ax, centre: float, lo: float, hi: float, text: str = "unsteered") -> None:
    """The unsteered value as a dashed line, its confidence interval as a grey band."""
    ax.axhline(centre, color="0.25", ls="--", lw=1, label=text, zorder=1)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        ax.axhspan(lo, hi, color="0.8", alpha=0.6, lw=0, zorder=0)


def yerr(centre, lo, hi) -> np.ndarray:
    """Matplotlib ``yerr`` ``[2, n]`` (distances below and above ``centre``) of intervals
    ``[lo, hi]``; negative distances (a centre outside its interval) are clipped to 0."""
    centre, lo, hi = (np.asarray(x, dtype=float) for x in (centre, lo, hi))
    return np.vstack([centre - lo, hi - centre]).clip(min=0)


def dodge(x, i: int, n: int, step: float):
    """``x`` moved for the ``i``-th of ``n`` series drawn side by side, so that their error
    bars stay apart: by ``(i − (n − 1) / 2) · step``, centred on ``x``."""
    return x + (i - (n - 1) / 2) * step


def interval_line(ax, x, y, lo=None, hi=None, *, err=None, **style):
    """One series of points with error bars in the house style: ``[lo, hi]`` intervals
    around ``y`` (or a symmetric ``err``); ``style`` overrides the defaults (marker, sizes,
    colour, label, ...). Returns matplotlib's ``ErrorbarContainer``."""
    bars = yerr(y, lo, hi) if err is None else err
    kw = dict(marker="o", ms=3, lw=1.1, elinewidth=0.8, capsize=1.5) | style
    return ax.errorbar(x, y, yerr=bars, **kw)


def panels(nrows: int, ncols: int, figsize: tuple[float, float], **kw):
    """``(fig, axes)`` of an ``nrows × ncols`` grid in the house style (constrained layout,
    ``axes`` always 2-D); ``kw`` go to ``plt.subplots`` (``sharey``, ...). Call it inside
    ``paper_style()``."""
    return plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", squeeze=False, **kw)
