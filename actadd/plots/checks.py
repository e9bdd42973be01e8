"""Checks of a drawn figure's text: no two text boxes overlap, none leaves the canvas.

:func:`text_problems` renders a figure and measures, with the renderer's
``get_window_extent``, every text a reader sees: titles (of axes, figures and subfigures),
axis labels, the tick labels inside the view, annotations and figure texts, and each legend
as one box. It returns one line per problem. :func:`save_figure
<actadd.plots.style.save_figure>` runs it on every figure it writes and warns
(:class:`FigureTextWarning`) when a figure has any.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure, SubFigure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from actadd.errors import FigureTextWarning

__all__ = ["FigureTextWarning", "TextBox", "text_boxes", "text_problems"]

# boxes may touch: an overlap must exceed this many pixels (at the figure's dpi) both ways
TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class TextBox:
    """One text a reader sees (or one legend): what it says, what it is, where it is."""

    text: str
    role: str
    bbox: Bbox


def _in_view(locs, interval) -> np.ndarray:
    lo, hi = sorted(interval)
    tol = 1e-9 * max(abs(hi - lo), 1e-300)
    locs = np.asarray(locs, dtype=float)
    return (locs >= lo - tol) & (locs <= hi + tol)


def _tick_labels(ax) -> list[tuple[Text, str]]:
    out = []
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        if not axis.get_visible():
            continue
        interval = axis.get_view_interval()
        for which in ("major", "minor"):
            locs = axis.get_majorticklocs() if which == "major" else axis.get_minorticklocs()
            ticks = axis.get_major_ticks(len(locs)) if which == "major" else None
            if ticks is None:
                ticks = axis.get_minor_ticks(len(locs))
            for tick, inside in zip(ticks, _in_view(locs, interval)):
                if inside:
                    for t in (tick.label1, tick.label2):
                        out.append((t, f"{name} tick label"))
    return out


def _figures(fig) -> list:
    out = [fig]
    for sub in getattr(fig, "subfigs", []):
        out += _figures(sub)
    return out


def _axes(fig) -> list:
    seen: dict[int, object] = {}
    for f in _figures(fig):
        for ax in f.axes:
            seen.setdefault(id(ax), ax)
    return list(seen.values())


def _shown(t: Text) -> bool:
    return t.get_visible() and bool(t.get_text().strip()) and t.get_alpha() != 0


def text_boxes(fig: Figure | SubFigure) -> list[TextBox]:
    """Every text of ``fig`` a reader sees, with its box in display pixels (the figure is
    drawn first). A legend is one box (its frame), not its entries."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    items: list[tuple[Text, str]] = []
    legends = []
    for f in _figures(fig):
        items += [(t, "figure text") for t in f.texts]
        if getattr(f, "_suptitle", None) is not None:
            items.append((f._suptitle, "figure title"))
        for attr in ("_supxlabel", "_supylabel"):
            if getattr(f, attr, None) is not None:
                items.append((getattr(f, attr), "figure label"))
        legends += list(f.legends)
    for ax in _axes(fig):
        if not ax.get_visible():
            continue
        items += [(t, "title") for t in (ax.title, ax._left_title, ax._right_title)]
        items += [(ax.xaxis.label, "x label"), (ax.yaxis.label, "y label")]
        items += [(t, "annotation") for t in ax.texts]
        items += _tick_labels(ax)
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    unique = {id(t): (t, role) for t, role in reversed(items)}  # a suptitle is in .texts too
    boxes = [
        TextBox(t.get_text(), role, t.get_window_extent(renderer))
        for t, role in reversed(unique.values())
        if _shown(t)
    ]
    for leg in legends:
        if leg.get_visible():
            title = leg.get_title().get_text()
            words = title or ", ".join(t.get_text() for t in leg.get_texts()[:2])
            boxes.append(TextBox(words, "legend", leg.get_window_extent(renderer)))
    return boxes


def _overlap(a: Bbox, b: Bbox) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return bool(w > TOLERANCE_PX and h > TOLERANCE_PX)


def _short(box: TextBox) -> str:
    text = " ".join(box.text.split())
    return f"{box.role} {text[:40] + ('…' if len(text) > 40 else '')!r}"


def text_problems(fig: Figure | SubFigure) -> list[str]:
    """One line per pair of overlapping text boxes and per box that leaves the canvas, [] for
    a clean figure (see :func:`text_boxes`)."""
    boxes = text_boxes(fig)
    canvas = fig.bbox
    problems = []
    for box in boxes:
        b = box.bbox
        if (
            b.x0 < canvas.x0 - TOLERANCE_PX
            or b.y0 < canvas.y0 - TOLERANCE_PX
            or b.x1 > canvas.x1 + TOLERANCE_PX
            or b.y1 > canvas.y1 + TOLERANCE_PX
        ):
            problems.append(f"{_short(box)} leaves the canvas")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if _overlap(a.bbox, b.bbox):
                problems.append(f"{_short(a)} overlaps {_short(b)}")
    return problems
