"""Generic chart helpers and the house style. No model needed; nothing here imports a study.

- :mod:`actadd.plots.style` — the house style: :data:`PAPER_RC`, :func:`save_figure` (PNG and
  PDF side by side), metric labels, and the interval helpers :func:`baseline_band`, :func:`yerr`;
- :mod:`actadd.plots.charts` — charts of a sweep's cell tables: :func:`proportion_by_layer`,
  :func:`mean_by`, :func:`cell_bars`, :func:`ratio_vs_relevance`;
- :mod:`actadd.plots.sweep` — layer curves, heatmaps and the default figures of a sweep;
- :mod:`actadd.plots.text` — the words on a figure: :func:`pair_title`, :func:`align_words`,
  :func:`ci_note`, and the run's word lists (:class:`WordLists`);
- :mod:`actadd.plots.checks` — :func:`text_problems`: overlapping or clipped text.

Importing this package leaves matplotlib's backend alone, so figures display in Jupyter;
scripts without a display get matplotlib's own default (Agg), and the ``actadd`` command
chooses Agg at its entry point.

Each study draws its own figures in ``actadd/studies/<name>/figures.py`` with these helpers.
Every drawing function takes tables (DataFrames); those that write files take the output
directory and return the paths written.
"""

from actadd.plots.charts import (
    cell_bars,
    mean_by,
    proportion_by_layer,
    ratio_vs_relevance,
)
from actadd.plots.checks import FigureTextWarning, text_problems
from actadd.plots.style import (
    CI_NOTE,
    METRIC_LABELS,
    PAPER_RC,
    baseline_band,
    figure_axes,
    label,
    save_figure,
    yerr,
)
from actadd.plots.sweep import (
    ALIGN_ORDER,
    align_offset,
    align_sort_key,
    baseline_value,
    heatmap,
    layer_curve,
    sweep_figures,
)
from actadd.plots.text import WordLists, align_words, ci_note, pair_title

__all__ = [
    "ALIGN_ORDER",
    "CI_NOTE",
    "FigureTextWarning",
    "METRIC_LABELS",
    "PAPER_RC",
    "WordLists",
    "align_offset",
    "align_sort_key",
    "align_words",
    "baseline_band",
    "baseline_value",
    "cell_bars",
    "ci_note",
    "figure_axes",
    "heatmap",
    "label",
    "layer_curve",
    "mean_by",
    "pair_title",
    "proportion_by_layer",
    "ratio_vs_relevance",
    "save_figure",
    "sweep_figures",
    "text_problems",
    "yerr",
]
