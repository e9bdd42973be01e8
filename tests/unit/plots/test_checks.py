"""Every figure the committed runs draw has no overlapping text and none off its canvas.

Each run under results/ is redrawn from its committed tables (no model) into a temporary
directory; :func:`actadd.plots.save_figure` checks every figure it writes
(:func:`actadd.plots.text_problems`) and warns, and warnings are errors here. A planted
overlap and a planted off-canvas label show the checker catches both.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from actadd.errors import FigureSubsetWarning, FigureTextWarning
from actadd.lab.runner import kind_of
from actadd.lab.runs import RunDir
from actadd.plots import heatmap, layer_curve, save_figure, text_problems
from actadd.plots.style import PAPER_RC

RESULTS = Path(__file__).resolve().parents[3] / "results"
RUNS = sorted(p.parent for p in RESULTS.glob("*/config.json"))


def _clean_figure():
    with plt.rc_context(PAPER_RC):
        fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_title("a title")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(loc="lower right")
    return fig, ax


def test_a_clean_figure_has_no_text_problems():
    fig, _ = _clean_figure()
    assert text_problems(fig) == []
    plt.close(fig)


def test_a_planted_overlap_is_caught():
    fig, ax = _clean_figure()
    ax.text(0.5, 0.5, "planted over the tick labels", transform=ax.transAxes)
    ax.text(0.52, 0.5, "planted over the tick labels", transform=ax.transAxes)
    problems = text_problems(fig)
    assert any("overlaps" in p and "planted" in p for p in problems), problems
    plt.close(fig)


def test_a_planted_label_off_the_canvas_is_caught():
    fig, ax = _clean_figure()
    fig.text(0.98, 0.5, "a caption that runs off the right edge")
    problems = text_problems(fig)
    assert problems == ["figure text 'a caption that runs off the right edge' leaves the canvas"]
    plt.close(fig)


def test_a_title_over_a_legend_is_caught():
    fig, ax = _clean_figure()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 1.12))
    problems = text_problems(fig)
    assert any("title 'a title' overlaps legend" in p for p in problems), problems
    plt.close(fig)


def test_save_figure_warns_on_a_planted_overlap(tmp_path):
    fig, ax = _clean_figure()
    ax.set_title("a title that is far too long for a panel four inches wide " * 2)
    ax.set_ylabel("a y label that is far too long to fit beside a three-inch-high axes " * 2)
    with pytest.warns(FigureTextWarning, match="leaves the canvas"):
        paths = save_figure(fig, tmp_path / "bad")
    assert [p.name for p in paths] == ["bad.png", "bad.pdf"]  # still written


def _tidy() -> pd.DataFrame:
    rows = [("(unsteered)", -1, 0.0, "none", i, 0.2 + 0.01 * i) for i in range(8)]
    for layer in range(12):
        for coeff in (1.0, 2.0, 4.0):
            rows += [
                ("' cats' − ''", layer, coeff, "front", i, 0.1 * coeff + 0.01 * i) for i in range(8)
            ]
    df = pd.DataFrame(rows, columns=["pair", "layer", "coeff", "align", "text_index", "value"])
    return df.assign(pad="right", metric="target_logprob", target_words="cats, kitten, purr")


def test_sweep_figures_name_the_pair_alignment_interval_and_word_list():
    df = _tidy()
    fig = layer_curve(df, "target_logprob", pair="' cats' − ''", words=None)
    ax = fig.axes[0]
    assert ax.get_title() == "cats − (empty), front-aligned"
    assert ax.get_legend().get_title().get_text() == "95% CI, Student t"
    assert text_problems(fig) == []
    plt.close(fig)
    from actadd.plots import WordLists

    words = WordLists.of({"target_words": "weddings"}, df)  # the table's column wins
    fig = heatmap(df, "target_logprob", pair="' cats' − ''", words=words)
    ax = fig.axes[0]
    title = ax.get_title()
    assert title.startswith("cats − (empty), front-aligned\nunsteered 0.24 (n = 8")
    assert "n = 8 per cell" in title
    assert len(ax.texts) == 12 * 3  # every cell's value written in it
    cbar = fig.axes[1]
    assert "words: cats, kitten, purr" in cbar.get_ylabel()
    lo, hi = cbar.get_ylim()
    assert lo < 0.235 < hi and abs((lo + hi) / 2 - 0.235) < 1e-9  # centred on unsteered
    assert text_problems(fig) == []
    plt.close(fig)


@pytest.mark.slow
@pytest.mark.parametrize("out", RUNS, ids=[p.name for p in RUNS])
def test_every_committed_figure_has_no_overlapping_or_clipped_text(out, tmp_path):
    run = RunDir.existing(out)
    run.figures = tmp_path / "figures"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FigureSubsetWarning)  # said once per run; not text
        paths = kind_of(run.config).figures(run)
    assert all(p.is_relative_to(tmp_path) for p in paths)
