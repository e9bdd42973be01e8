"""Generic chart helpers and the house style. No model needed; nothing here imports a study.

- :mod:`actadd.plots.style` — the house style: :data:`PAPER_RC`, :func:`save_figure` (PNG and
  PDF side by side), metric labels, and the interval helpers :func:`baseline_band`, :func:`yerr`;
- :mod:`actadd.plots.charts` — charts of a sweep's cell tables: :func:`proportion_by_layer`,
  :func:`mean_by`, :func:`cell_bars`, :func:`ratio_vs_relevance`;
- :mod:`actadd.plots.sweep` — layer curves, heatmaps and the default figures of a sweep.

Each study draws its own figures in ``actadd/studies/<name>/figures.py`` with these helpers.
Every drawing function takes tables (DataFrames); those that write files take the output
directory and return the paths written.
"""

import matplotlib

matplotlib.use("Agg", force=False)

from actadd.plots.charts import (  # noqa: E402
    cell_bars,
    mean_by,
    proportion_by_layer,
    ratio_vs_relevance,
)
from actadd.plots.style import (  # noqa: E402
    CI_NOTE,
    METRIC_LABELS,
    PAPER_RC,
    baseline_band,
    figure_axes,
    label,
    save_figure,
    yerr,
)
from actadd.plots.sweep import (  # noqa: E402
    ALIGN_ORDER,
    align_offset,
    align_sort_key,
    baseline_value,
    heatmap,
    layer_curve,
    sweep_figures,
)

__all__ = [
    "ALIGN_ORDER",
    "CI_NOTE",
    "METRIC_LABELS",
    "PAPER_RC",
    "align_offset",
    "align_sort_key",
    "baseline_band",
    "baseline_value",
    "cell_bars",
    "figure_axes",
    "heatmap",
    "label",
    "layer_curve",
    "mean_by",
    "proportion_by_layer",
    "ratio_vs_relevance",
    "save_figure",
    "sweep_figures",
    "yerr",
]
