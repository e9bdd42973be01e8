"""Figures from results tables (matplotlib, Agg backend). No model needed.

- :mod:`actadd.plots.style` — the house style: :data:`PAPER_RC`, :func:`save_figure` (PNG and
  PDF side by side), metric labels, and the interval helpers :func:`baseline_band`, :func:`yerr`;
- :mod:`actadd.plots.sweep` — layer curves, heatmaps and the default figures of a sweep;
- :mod:`actadd.plots.paper` — the paper-reproduction figures and those of the sweep-based kinds;
- :mod:`actadd.plots.perplexity`, :mod:`actadd.plots.capability`,
  :mod:`actadd.plots.token_injection` — the figures of those experiments.

Every drawing function takes tables (DataFrames); those that write files take the output
directory and return the paths written.
"""

import matplotlib

matplotlib.use("Agg", force=False)

from actadd.plots.capability import capability_figure  # noqa: E402
from actadd.plots.paper import (  # noqa: E402
    BARS,
    alignment_figures,
    cell_bars,
    cell_label,
    failures_figure,
    family_colors,
    mean_by,
    proportion_by_layer,
    ratio_vs_relevance,
    sentiment_figure,
    word_count_figures,
)
from actadd.plots.perplexity import (  # noqa: E402
    perplexity_by_layer_figure,
    perplexity_ratio_figure,
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
from actadd.plots.token_injection import (  # noqa: E402
    FIGURE_WIDTH,
    experiment_figures,
    plot_dose_response,
    plot_similarity_vs_layer,
    plot_transplants,
    plot_vector_diagnostics,
)

__all__ = [
    "ALIGN_ORDER",
    "BARS",
    "CI_NOTE",
    "FIGURE_WIDTH",
    "METRIC_LABELS",
    "PAPER_RC",
    "align_offset",
    "align_sort_key",
    "alignment_figures",
    "baseline_band",
    "baseline_value",
    "capability_figure",
    "cell_bars",
    "cell_label",
    "experiment_figures",
    "failures_figure",
    "family_colors",
    "figure_axes",
    "heatmap",
    "label",
    "layer_curve",
    "mean_by",
    "perplexity_by_layer_figure",
    "perplexity_ratio_figure",
    "plot_dose_response",
    "plot_similarity_vs_layer",
    "plot_transplants",
    "plot_vector_diagnostics",
    "proportion_by_layer",
    "ratio_vs_relevance",
    "save_figure",
    "sentiment_figure",
    "sweep_figures",
    "word_count_figures",
    "yerr",
]
