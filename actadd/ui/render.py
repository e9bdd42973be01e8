"""The playground's outputs as HTML strings (no widgets: the panel sets them, tests read them).

Every text from the model goes through :func:`visible`: HTML-escaped, with control
characters shown as their Unicode control pictures (``\\n`` as ``␊``), so what a
completion holds is what the page shows.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from actadd.core.vectors import SteeringVector
    from actadd.ui.settings import Settings

__all__ = [
    "STEERED_CLASS",
    "UNSTEERED_CLASS",
    "METHOD_NAMES",
    "completions_html",
    "describe_vector",
    "diverging",
    "lens_html",
    "shift_html",
    "stale_html",
    "status_line",
    "strip_html",
    "vector_size",
    "visible",
]

# CSS classes the page's elements carry (the browser test finds them by these)
STEERED_CLASS = "actadd-steered"
UNSTEERED_CLASS = "actadd-unsteered"
STALE_CLASS = "actadd-stale"

# how the status line names a dataset method of actadd.core.methods, and where it reads
METHOD_NAMES = {
    "caa": "CAA (mean difference)",
    "pca_diff": "PCA of the differences",
    "pca_center": "PCA of the centred activations",
}
POSITION_NAMES = {"last": "last token", "mean": "mean over tokens"}


def visible(text: str) -> str:
    """``text`` HTML-escaped, control characters (C0 and DEL) as control pictures."""
    shown = "".join(
        chr(0x2400 + ord(c)) if ord(c) < 0x20 else "\u2421" if ord(c) == 0x7F else c for c in text
    )
    return html.escape(shown)


def _table(head: list[str], rows: list[list[str]], style: str = "") -> str:
    th = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px;{style}'>{c}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table style='border-collapse:collapse'><tr>{th}</tr>{body}</table>"


def completions_html(df: pd.DataFrame, prompt: str) -> str:
    """Unsteered and steered completions side by side, one row per sample (same seed)."""
    cell = "vertical-align:top;white-space:pre-wrap;max-width:420px;border-top:1px solid #ddd"
    rows = "".join(
        f"<tr><td style='{cell}'>{int(r.sample)}</td>"
        f"<td class='{UNSTEERED_CLASS}' style='{cell}'>{visible(r.unsteered)}</td>"
        f"<td class='{STEERED_CLASS}' style='{cell}'>{visible(r.steered)}</td></tr>"
        for r in df.itertuples()
    )
    head = "<tr><th>sample</th><th>unsteered</th><th>steered</th></tr>"
    return (
        f"<div><b>prompt</b>: <code>{visible(prompt)}</code></div>"
        f"<table style='border-collapse:collapse'>{head}{rows}</table>"
    )


def strip_html(strip: pd.DataFrame, phase: pd.DataFrame, layer: int) -> str:
    """The prompt's tokens, shaded by the norm added at each (hover for the number), and the
    additions placed during generation."""
    top = max([float(n) for n in strip.norm] + [1e-12])
    spans = []
    for r in strip.itertuples():
        alpha = 0.85 * float(r.norm) / top
        spans.append(
            f"<span title='position {int(r.position)}: norm {float(r.norm):.3g}' "
            f"style='background:rgba(214,39,40,{alpha:.3f});border:1px solid #ccc;"
            f"padding:1px 3px;margin:1px;white-space:pre;display:inline-block'>"
            f"{visible(r.token)}<sub style='color:#555'>{float(r.norm):.2g}</sub></span>"
        )
    later = "".join(
        f"<div>+ {visible(str(r.kind))}: norm {float(r.norm):.3g} at every such position "
        "during generation</div>"
        for r in phase.itertuples()
        if str(r.kind) != "all"
    )
    return f"<div>resid_pre {layer}: " + "".join(spans) + f"</div>{later}"


def shift_html(shift: pd.DataFrame, kl: float) -> str:
    rows = [
        [
            f"<code>{visible(r.token)}</code>",
            f"{r.p_unsteered:.4f}",
            f"{r.p_steered:.4f}",
            f"{r.delta_logp:+.3f}",
        ]
        for r in shift.itertuples()
    ]
    return f"<div>KL(steered ‖ unsteered) = {kl:.4f}</div>" + _table(
        ["token", "p unsteered", "p steered", "Δ log p"], rows
    )


def lens_html(lens: pd.DataFrame) -> str:
    rows = [
        [str(r.row), str(int(r.rank)), f"<code>{visible(r.token)}</code>", f"{r.logit:.3f}"]
        for r in lens.itertuples()
    ]
    return _table(["row", "rank", "token", "logit"], rows)


def diverging(value: float, scale: float) -> str:
    """A colour for ``value`` on a blue (negative) – white – red (positive) scale."""
    if not math.isfinite(value) or scale <= 0:
        return "#dddddd"
    t = max(-1.0, min(1.0, value / scale))
    if t >= 0:
        return f"#ff{int(255 * (1 - t)):02x}{int(255 * (1 - t)):02x}"
    return f"#{int(255 * (1 + t)):02x}{int(255 * (1 + t)):02x}ff"


def describe_vector(s: Settings) -> str:
    """What the vector of ``s`` is, in words: the method and its pair or dataset, the
    coefficient and the layer, e.g. ``CAA (mean difference) of builtin:sentiment at the last
    token, × 3 at layer 16``."""
    from actadd.ui.settings import pad_shown

    if s.source == "pair":
        if s.equalize == "truncate":
            rule = "truncated to the shorter"
        else:
            rule = f"padded on the {s.equalize} with {pad_shown(s.pad_token)}"
        what = f"ActAdd {s.positive!r} − {s.negative!r} ({rule})"
        if s.one_row_align:
            what += ", mean over its rows after the first"
    else:
        method = METHOD_NAMES.get(s.source, s.source)
        what = f"{method} of {s.dataset} at the {POSITION_NAMES.get(s.position, s.position)}"
    return f"{what}, × {s.coeff:g} at layer {s.layer}"


def vector_size(vector: SteeringVector) -> str:
    """The vector's size: its norm and, where the vector recorded it, that norm relative to
    the typical residual norm at its layer (``‖v‖ 4.53 = 0.21× resid``; see
    :meth:`actadd.core.vectors.SteeringVector.norm`), plus the row norms of a few-row vector."""
    rel = vector.relative_norm
    size = f"‖v‖ {vector.norm():.3g}" + ("" if rel is None else f" = {rel:.2g}× resid")
    norms = [float(n) for n in vector.norms()]
    if len(norms) == 1:
        return size
    shown = ", ".join(f"{n:.3g}" for n in norms[:6]) + (", …" if len(norms) > 6 else "")
    return f"{size} (row norms {shown})"


def status_line(s: Settings, vector: SteeringVector) -> str:
    """The status after a run: what the vector is, where it went, and its size."""
    return f"done: {describe_vector(s)}, align {s.align} · {vector_size(vector)}"


def stale_html(what: str, settings: Settings | None) -> str:
    """The note over results that no longer answer the current inputs (a newer request
    failed): which request they do answer."""
    source = f" ({describe_vector(settings)}, align {settings.align})" if settings else ""
    return (
        f"<div class='{STALE_CLASS}-note' style='color:#8a6d00;background:#fff8e0;"
        f"padding:2px 6px'>Stale: the {what} below are from an earlier request{visible(source)}; "
        "the last request failed (see the error above).</div>"
    )
