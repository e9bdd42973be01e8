"""Experiment kind ``sweep``: a layers × coefficients × alignments grid (see actadd.sweeps).

:class:`SweepKind` is also the base of the paper kinds whose config is a sweep config
(word count, sentiment, failure cases, alignment): they differ only in the summary table
and the figures drawn from the results.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.errors import ConfigError, FigureSubsetWarning
from actadd.lab.kinds import BaseKind
from actadd.plots import WordLists, sweep_figures
from actadd.sweeps.words import WORD_COLUMNS

__all__ = [
    "EFFECTS",
    "FIGURE_COEFFS",
    "KIND",
    "NULL_EFFECTS",
    "NULL_METRICS",
    "ClaimsFn",
    "Draw",
    "Summary",
    "SweepKind",
    "cell_claim",
    "cell_summary",
    "figure_coeffs",
    "figure_rows",
    "null_claims",
    "sweep_claims",
]

# figures draw at most this many coefficients: one line per coefficient stays readable (and
# 3,000 took over 5 minutes to draw); the tables keep every coefficient
FIGURE_COEFFS = 12

Summary = Callable[[pd.DataFrame], pd.DataFrame]
ClaimsFn = Callable[[Any], list]
# draw(results table, figures directory, pairs in config order, the run's word lists)
# -> figure files
Draw = Callable[[pd.DataFrame, Path, list[str], WordLists], list[Path]]


def cell_summary(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (pair, cell, metric) with ``mean, lo, hi, count`` and, against the
    unsteered rows, ``diff, diff_lo, diff_hi``: Wilson / Newcombe intervals for
    ``topic_any``, paired cluster-bootstrap intervals of the difference for ``sentiment``,
    the range over the texts for the deterministic next-token metrics (see
    :mod:`actadd.lab.stats`)."""
    from actadd.lab.stats import paired_diffs, proportion_summary, range_table, summarize

    s = summarize(df)
    frames = []
    for metric in metrics:
        if metric == "topic_any" and (df.metric == metric).any():
            p = proportion_summary(df, metric).rename(columns={"frac": "mean", "n": "count"})
            frames.append(p.assign(metric=metric))
        elif metric != "topic_any" and (s.metric == metric).any():
            frames.append(
                paired_diffs(df, metric) if metric == "sentiment" else range_table(df, metric)
            )
    out = pd.concat(frames, ignore_index=True)
    cols = ["pair", "pad", "layer", "coeff", "align", "metric", "mean", "lo", "hi", "count"]
    extra = [c for c in ("diff", "diff_lo", "diff_hi", "successes") if c in out.columns]
    return out[cols + extra]


class SweepKind(BaseKind):
    """A kind whose config is a sweep config; the paper kinds differ from the plain
    ``sweep`` only in the sampled metric they need, their summary table and figures."""

    def __init__(
        self,
        name: str = "sweep",
        description: str = (
            "layers × coefficients × alignments grid with next-token and sampled metrics"
        ),
        *,
        needs: str | None = None,
        summary: Summary | Sequence[str] | None = None,
        draw: Draw | None = None,
        draw_from: str = "results",
        scans: Sequence[str] = (),
        claims: ClaimsFn | None = None,
    ) -> None:
        """``summary`` is a function of the results table, or metric names for
        :func:`cell_summary`; ``draw`` gets the results table (``draw_from="results"``) or
        the summary (``"summary"``), the figures directory, the pairs in config order and
        the run's word lists (:class:`actadd.plots.WordLists`)."""
        self.name, self.description = name, description
        # the sampled metric the kind is about ("topic_any", "sentiment"); None: any sweep
        self.needs = needs
        if summary is not None and not callable(summary):
            metrics = tuple(summary)
            summary = lambda df: cell_summary(df, metrics)  # noqa: E731
        self._summary, self._draw, self._draw_from = summary, draw, draw_from
        # sampled metrics whose every cell is tested against unsteered (exploratory scans)
        self.scans = tuple(scans)
        self._claims = claims

    def parse(self, config: dict[str, Any]):
        from actadd.sweeps import SweepSpec

        if self.needs is not None:
            gen = config.get("generation")
            if not isinstance(gen, dict):
                raise ConfigError(
                    f"kind {self.name!r} needs a [generation] table (sampled completions)."
                )
            if self.needs == "sentiment" and gen.get("sentiment") is False:
                raise ConfigError(f"kind {self.name!r} needs generation.sentiment = true.")
        return SweepSpec.from_dict(config)

    def saved_config(self, spec) -> dict[str, Any]:
        return {"kind": self.name, **spec.to_dict()}

    def check(self, spec, model) -> None:
        from actadd.sweeps.plan import check

        check(spec, model)

    distributed = True  # its units can run on Ray actors (actadd.sweeps.distributed)

    def run(self, spec, model, run, backend=None) -> None:
        from actadd.sweeps import execute

        df = execute(spec, model, run, backend=backend)
        table = self.summary(df)
        if table is not None:
            run.write_table("summary", table)

    @staticmethod
    def part_tables(key: str) -> tuple[str, ...] | None:
        """The tables the unit ``key`` must have in ``parts/`` (``actadd verify``)."""
        from actadd.sweeps.engine import unit_tables

        return unit_tables(key)

    def summary(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """The kind's summary table (``summary.csv``), or None; it names the word lists
        measured in the columns the results table has (``target_words``, ``topic_words``)."""
        if self._summary is None:
            return None
        table = self._summary(df)
        for col in WORD_COLUMNS:
            if col in df.columns and len(df) and col not in table.columns:
                table[col] = df[col].iloc[0]
        return table

    def figures(self, run) -> list[Path]:
        df = figure_rows(run, run.read_table("results"))
        # the word lists the figures name: the table's columns, else the run's config
        words = WordLists.of(run.config, df)
        if self._draw is None:
            return sweep_figures(df, run.figures, words)
        pairs = self.pair_order(run, df[df.layer >= 0].pair)
        table = self.summary(df) if self._draw_from == "summary" else df
        return self._draw(table, run.figures, pairs, words)

    def claims(self, run) -> list:
        """The run's claims: every confirmatory cell of the config, every cell of the
        scanned metrics (Benjamini–Hochberg within each scan), every method against the
        random null where the sweep drew one (:func:`null_claims`), and the kind's own."""
        claims = sweep_claims(run, self.scans) + null_claims(run)
        return claims + (self._claims(run) if self._claims is not None else [])

    @staticmethod
    def pair_order(run, present) -> list[str]:
        """The pairs of a run in config order (their names, as in the tables), then any
        others present."""
        from actadd.config import parse_pairs

        names = [p.name for p in parse_pairs(run.config.get("pairs", []))]
        present = list(dict.fromkeys(present))
        return [n for n in names if n in present] + [n for n in present if n not in names]


KIND = SweepKind(scans=("topic_any",))


def figure_coeffs(coeffs: Sequence[float], keep: Sequence[float] = ()) -> list[float]:
    """The coefficients the figures draw: all of them up to :data:`FIGURE_COEFFS`, else
    that many evenly spaced through the sorted list (the smallest and largest included),
    plus those in ``keep`` (the confirmatory cells')."""
    coeffs = sorted(set(coeffs))
    if len(coeffs) <= FIGURE_COEFFS:
        return coeffs
    picks = np.linspace(0, len(coeffs) - 1, FIGURE_COEFFS).round().astype(int)
    return sorted({coeffs[i] for i in picks} | {c for c in keep if c in coeffs})


def figure_rows(run, df: pd.DataFrame) -> pd.DataFrame:
    """The rows the figures draw: the unsteered ones and those of :func:`figure_coeffs`,
    with a :class:`~actadd.errors.FigureSubsetWarning` (one line) when that leaves some out."""
    steered = df.layer >= 0
    coeffs = [float(c) for c in df.loc[steered, "coeff"].unique()]
    keep = [float(c["coeff"]) for c in run.config.get("confirmatory") or () if "coeff" in c]
    shown = figure_coeffs(coeffs, keep)
    if len(shown) == len(coeffs):
        return df
    warnings.warn(
        FigureSubsetWarning(
            f"{run.out}: the figures draw {len(shown)} of {len(coeffs)} coefficients "
            f"({', '.join(f'{c:g}' for c in shown)}); the tables hold every one."
        ),
        stacklevel=2,
    )
    return df[~steered | df.coeff.isin(shown)]


# ---------------------------------------------------------------------- claims

EFFECTS = {
    "topic_any": "raises the fraction of completions with a word from the {topic} list",
    "sentiment": "raises the VADER sentiment of the completions",
}


def _topic(config: dict) -> str:
    words = (config.get("generation") or {}).get("topic_words", "topic")
    return words if isinstance(words, str) else "/".join(words[:3])


def _experiment(run) -> str:
    return run.config.get("name") or run.out.name


def _rules(config: dict) -> list[str]:
    """The sweep's pair-length rules (the results' ``pad`` column), config key ``equalize``
    (``pads`` in run directories written before it was renamed)."""
    return list(config.get("equalize") or config.get("pads") or ("right",))


def _pad_tag(config: dict, pad: str) -> tuple[str, str]:
    """What a cell's id and label add for its pair-length rule: nothing when the sweep has
    one rule (the ids of existing runs stay), ``(":left", ", equalize left")`` otherwise."""
    if len(_rules(config)) < 2 or not pad:
        return "", ""
    return f":{pad}", f", equalize {pad}"


def cell_claim(
    run,
    df: pd.DataFrame,
    cell: dict,
    metric: str,
    *,
    confirmatory: bool,
    family: str,
    alternative: str = "two-sided",
):
    """One cell (pair, pad, layer, coeff, align[, method]) against unsteered on the same
    (prompt, sample) seeds. ``alternative``: the confirmatory test's sidedness, as the
    config stated it before the run (``"greater"``: one-sided, "raises")."""
    from actadd.lab.claims import Paired, arm, binary_claim, cell_label, mean_claim

    base = arm(df, metric, layer=-1)
    steered = arm(df, metric, **cell)
    if steered.empty or base.empty:
        return None
    pairs = Paired.join(steered, base)
    id_tag, label_tag = _pad_tag(run.config, cell.get("pad", ""))
    where = cell_label(cell["layer"], cell["coeff"]) + label_tag
    if cell["align"] != "front":
        where += f", align {cell['align']}"
    method = cell.get("method", "actadd")
    if method != "actadd":
        where += f", method {method}"
    effect = EFFECTS[metric].format(topic=_topic(run.config))
    make = binary_claim if metric == "topic_any" else mean_claim
    return make(
        pairs,
        confirmatory=confirmatory,
        experiment=_experiment(run),
        id=f"{metric}:{cell['pair']}:L{cell['layer']}:c{cell['coeff']:g}:{cell['align']}"
        + ("" if method == "actadd" else f":{method}")
        + id_tag,
        statement=f"{cell['pair']} at {where} {effect}",
        family=family,
        alternative=alternative,
    )


def sweep_claims(run, scans: Sequence[str]) -> list:

    df = run.read_table("results")
    claims = []
    chosen = set()
    # a cell is one pair-length rule too: two rules mixed would pair each seed twice
    keys = ["pair", "pad", "layer", "coeff", "align"]
    keys += ["method"] if "method" in df.columns else []
    turn = run.config.get("turn")
    default_align = f"turn:{turn}" if turn else "front"  # a turn sweep has one align
    for c in run.config.get("confirmatory") or ():
        if c.get("against", "unsteered") != "unsteered":
            continue  # against the random null: null_claims
        cell = dict(pair=_cell_pair(run.config, c, df), pad=_cell_pad(run.config, c),
                    layer=c["layer"], coeff=float(c["coeff"]),
                    align=c.get("align", default_align))  # fmt: skip
        if "method" in keys:
            cell["method"] = c.get("method", "actadd")
        metric = c.get("metric", "topic_any")
        chosen.add((metric, *cell.values()))
        claim = cell_claim(
            run, df, cell, metric, confirmatory=True, family="confirmatory",
            alternative=c.get("alternative", "two-sided"),
        )  # fmt: skip
        if claim is not None:
            claims.append(claim)
    steered = df[df.layer >= 0]
    for metric in scans:
        sel = steered[steered.metric == metric]
        cells = sel[keys].drop_duplicates()
        for cell in cells.to_dict("records"):
            cell["layer"], cell["coeff"] = int(cell["layer"]), float(cell["coeff"])
            if (metric, *cell.values()) in chosen:
                continue
            claim = cell_claim(run, df, cell, metric, confirmatory=False, family=f"scan {metric}")
            if claim is not None:
                claims.append(claim)
    return claims


def _cell_pad(config: dict, cell: dict) -> str:
    """The ``pad`` column of a confirmatory cell: its ``equalize`` rule (or the sweep's only
    one) for the ActAdd methods, ``""`` for the dataset methods."""
    from actadd.sweeps.spec import PAIR_METHODS

    if cell.get("method", "actadd") not in PAIR_METHODS:
        return ""
    return cell.get("equalize", _rules(config)[0])


def _cell_pair(config: dict, cell: dict, df: pd.DataFrame | None = None) -> str:
    """The ``pair`` column of a confirmatory cell: the named (or first) sweep pair for the
    ActAdd methods, the dataset's label for the dataset methods and the null.

    An unlabelled pair's name is :func:`actadd.config.pair_label`; tables written before
    that rule name it ``'Love'-'Hate'`` (the sides' reprs joined by an ASCII hyphen). With the
    run's table ``df``, the name its ``pair`` column actually holds is returned."""
    from actadd.config import parse_pairs
    from actadd.sweeps.spec import PAIR_METHODS

    if cell.get("method", "actadd") not in PAIR_METHODS:
        return config.get("dataset") or "sweep pairs"
    pairs = parse_pairs(config.get("pairs", []))
    name = cell.get("pair", pairs[0].name)
    if df is not None and "pair" in df.columns and name not in set(df["pair"]):
        old = {p.name: f"{p.positive!r}-{p.negative!r}" for p in pairs if not p.label}
        if old.get(name) in set(df["pair"]):
            return old[name]
    return name


# metrics a method should raise more than the null does: the next-token log-prob of the
# target words and the sampled ones (KL is not directional: random directions move it too)
NULL_METRICS = ("target_logprob_delta", "topic_any", "sentiment")
NULL_EFFECTS = {
    "target_logprob_delta": "raises the next-token log-prob of the target words",
    "topic_any": "raises the fraction of completions with a word from the {topic} list",
    "sentiment": "raises the VADER sentiment of the completions",
}


def null_claims(run) -> list:
    """Every method against the norm-matched random null, cell by cell.

    For each non-random method and cell (pair, layer, coeff, align) where the sweep drew
    random directions ``random:i`` at the same (layer, coeff, align): the method's value
    minus the mean over the draws, on the same (prompt, sample) rows. The unit of evidence
    is the prompt: per-prompt means of that difference give the estimate, its 95% t
    interval and the paired t-test over prompts (:func:`actadd.lab.claims.paired_t_claim`), so
    samples that share a prompt count once. Benjamini–Hochberg runs within each metric's
    family ("method vs null <metric>"); config cells with ``against = "random"`` are
    confirmatory. ``numbers`` also gives how many draws' means the method's mean exceeds.

    The claim is against the draws' *mean*. Random directions can lower a metric on average
    (disruption) while single draws raise it, so read the percentile too: a method that
    beats the mean but sits among the draws does not beat random directions one by one.
    """
    from actadd.lab.claims import Paired, cell_label, paired_t_claim, rank_claim

    df = run.read_table("results")
    if "method" not in df.columns:
        return []
    df = df[(df.layer >= 0) & (df.text_kind == "prompt") & df.metric.isin(NULL_METRICS)]
    is_random = df.method.str.startswith("random:")
    draws, methods = df[is_random], df[~is_random]
    if draws.empty or methods.empty:
        return []
    turn = run.config.get("turn")
    default_align = f"turn:{turn}" if turn else "all"
    chosen = set()
    for c in run.config.get("confirmatory") or ():
        if c.get("against") == "random":
            metric, method = c.get("metric", "topic_any"), c.get("method", "actadd")
            pair, align = _cell_pair(run.config, c, df), c.get("align", default_align)
            pad = _cell_pad(run.config, c)
            chosen.add((metric, method, pair, pad, int(c["layer"]), float(c["coeff"]), align))
    cell_keys = ["layer", "coeff", "align"]
    row_keys = ["text_index", "sample"]
    claims = []
    for metric, m_draws in draws.groupby("metric"):
        null = m_draws.groupby(cell_keys + row_keys).value.mean()
        per_draw = m_draws.groupby(cell_keys + ["method"]).value.mean()
        # each draw's per-prompt means, for the rank test against single draws
        per_prompt = m_draws.groupby(cell_keys + ["text_index", "method"]).value.mean()
        n_draws = m_draws.method.nunique()
        arms = methods[methods.metric == metric]
        # the null's draws have no pair and no pad: they serve every (pair, pad) of a cell
        for (method, pair, pad, layer, coeff, align), a in arms.groupby(
            ["method", "pair", "pad"] + cell_keys, sort=False
        ):
            cell = (layer, coeff, align)
            if cell not in per_draw.index.droplevel("method"):
                continue
            b = null.loc[cell].rename("value").reset_index()
            pairs = Paired.join(a, b, on=row_keys)
            x = pd.Series(pairs.a).groupby(pairs.cluster).mean()
            y = pd.Series(pairs.b).groupby(pairs.cluster).mean()
            if len(x) < 2:
                continue  # one prompt: no prompt-level test
            above = int((per_draw.loc[cell].to_numpy() < pairs.a.mean()).sum())
            key = (metric, method, pair, pad, int(layer), float(coeff), align)
            confirmatory = key in chosen
            id_tag, label_tag = _pad_tag(run.config, pad)
            where = f"{cell_label(int(layer), float(coeff))}, align {align}{label_tag}"
            effect = NULL_EFFECTS[metric].format(topic=_topic(run.config))
            cell_id = f"{metric}:{method}:{pair}:L{int(layer)}:c{float(coeff):g}:{align}{id_tag}"
            # the strict test: the method against single draws (its rank among them)
            one_by_one = per_prompt.loc[cell].unstack("method").reindex(x.index)
            claims.append(
                rank_claim(
                    np.column_stack([x.to_numpy(), one_by_one.to_numpy()]),
                    experiment=_experiment(run),
                    id=f"rank:{cell_id}",
                    statement=(
                        f"{method} ({pair}) at {where} {effect} more than single "
                        f"norm-matched random directions do"
                    ),
                    family="confirmatory" if confirmatory else f"method vs random draws {metric}",
                    confirmatory=confirmatory,
                    numbers=(
                        f"mean {pairs.a.mean():.3f}; draws' means median "
                        f"{np.median(per_draw.loc[cell].to_numpy()):.3f}, max "
                        f"{per_draw.loc[cell].max():.3f}; above {above} of {n_draws}"
                    ),
                )
            )
            claims.append(
                paired_t_claim(
                    x.to_numpy(),
                    y.to_numpy(),
                    n_note=f" ({pairs.n} rows; null: mean of {n_draws} draws)",
                    experiment=_experiment(run),
                    id=f"null:{cell_id}",
                    statement=(
                        f"{method} ({pair}) at {where} {effect} more than the mean of "
                        f"{n_draws} norm-matched random directions"
                    ),
                    family=f"method vs null mean {metric}",
                    confirmatory=False,
                    numbers=(
                        f"mean {pairs.a.mean():.3f} vs null {pairs.b.mean():.3f}; above "
                        f"{above} of {n_draws} draws' means (percentile "
                        f"{100 * above / n_draws:.0f}); {(x > y).sum()} of {len(x)} prompts up"
                    ),
                )
            )
    return claims
