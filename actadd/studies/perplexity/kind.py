"""Experiment kind ``perplexity``: a topic vector's effect on the perplexity of texts, by
how much the texts are about the topic (the paper's perplexity experiment).

**The paper's protocol.** Held-out, human-written sentences (``texts = "austen_sentences"``:
sentences of Jane Austen's novels, packaged in ``actadd/data``, grouped into ``wedding``,
``adjacent`` and ``unrelated`` by their words; provenance and license in the file and in
``config.json``). The vector's rows sit on each sentence's first ``k`` positions (front
alignment, leading token included), and those ``k`` positions are *masked*: only tokens
``t ≥ k`` are scored, steered and unsteered alike, so a sentence is never scored on the
tokens the vector overwrites. The paper's prompting arm (``prompting = true``) prepends
``positive`` as text after the leading token and scores the same sentence tokens.

A secondary arm keeps the model-written essays of the first version: with a ``[corpus]``
table instead of ``texts``, the embedded model writes short essays on topics in groups
(recipe in ``config.json``, texts in ``corpus.csv``, reused on resume).

Tables: ``corpus.csv`` (the texts, their group and topic-word density), ``perplexity.csv``
(one row per text × arm/setting: mean scored NLL steered and unsteered, ``ratio`` =
exp(difference), the perplexity ratio on the scored tokens), ``summary.csv`` (per group and
setting: geometric-mean ratio with a 95% t interval; Spearman of density vs log ratio).

The config is :class:`~actadd.studies.perplexity.config.PerplexityConfig`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.config import Pair
from actadd.errors import ConfigError
from actadd.plots import WordLists, pair_title
from actadd.studies.common import ConfigKind, result_claim
from actadd.studies.perplexity.config import (
    NAME,
    CorpusRecipe,
    PerplexityConfig,
    text_set,
    text_set_source,
)
from actadd.studies.perplexity.figures import perplexity_by_layer_figure, perplexity_ratio_figure

__all__ = [
    "KIND",
    "NAME",
    "PerplexityKind",
    "claims",
    "measure",
    "parse",
    "read_text_set",
    "summary",
    "text_set_source",
    "write_corpus",
]


def parse(config: dict[str, Any]) -> PerplexityConfig:
    """Validate a perplexity config (a TOML table); defaults filled in."""
    return PerplexityConfig.from_dict(config)


def read_text_set(name: str, words, limit: int = 0) -> pd.DataFrame:
    """A packaged sentence set as a corpus table (one row per text); ``limit`` keeps the
    first ``limit`` texts of each group (0: all)."""
    from actadd.core.metrics import topic_counts

    doc = text_set(name)
    df = pd.DataFrame(doc["sentences"])
    if limit:
        df = df.groupby("group", sort=False).head(limit).reset_index(drop=True)
    df["n_words"] = [len(t.split()) for t in df.text]
    df["topic_words"] = topic_counts(df.text.tolist(), words)
    df["topic_density"] = 100 * df.topic_words / df.n_words.clip(lower=1)
    df["kept"] = True
    df.insert(0, "text_id", range(len(df)))
    return df


def write_corpus(model, corpus: CorpusRecipe, words) -> pd.DataFrame:
    """Have the model write the essays of the recipe; one row per text."""
    from actadd.core.generation import Sampling, generate
    from actadd.core.metrics import topic_counts

    jobs = [(g, t) for g, topics in corpus.topics.items() for t in topics]
    prompts = [corpus.template.format(topic=t) for _, t in jobs]
    sampling = Sampling(
        temperature=corpus.temperature,
        top_p=corpus.top_p,
        freq_penalty=corpus.freq_penalty,
    )
    gen = generate(
        model,
        prompts,
        n_samples=corpus.n_per_topic,
        max_new_tokens=corpus.max_new_tokens,
        seed=corpus.seed,
        sampling=sampling,
        stop_at_eos=True,
        batch_size=64,
    )
    texts = [t.strip() for t in gen.completion]
    df = pd.DataFrame(
        dict(
            group=[jobs[i][0] for i in gen.prompt_index],
            topic=[jobs[i][1] for i in gen.prompt_index],
            sample=gen["sample"],
            seed=gen["seed"],
            n_tokens=gen["n_tokens"],
            text=texts,
        )
    )
    df["n_words"] = [len(t.split()) for t in texts]
    df["topic_words"] = topic_counts(texts, words)
    df["topic_density"] = 100 * df.topic_words / df.n_words.clip(lower=1)
    df["kept"] = df.n_words >= corpus.min_words
    df.insert(0, "text_id", range(len(df)))
    return df


def measure(
    model, c: PerplexityConfig, corpus: pd.DataFrame, progress: bool | None = None
) -> pd.DataFrame:
    """Masked perplexity of every kept text: unsteered, with the vector at every (layer,
    coeff), and (``prompting``) with ``positive`` prepended as text; one progress step per
    arm (:func:`actadd.progress.bar`).

    The vector has ``k`` rows on the first ``k`` positions; tokens ``t ≥ k`` are scored in
    every arm (the prompting arm scores the same sentence tokens, shifted by its prefix).
    """
    from actadd.core.metrics import token_logprobs
    from actadd.core.steering import steering
    from actadd.core.vectors import SteeringVector
    from actadd.progress import bar as progress_bar
    from actadd.runtime.tokens import encode

    kept = corpus[corpus.kept].reset_index(drop=True)
    ids = [encode(model, t, prepend_bos=True) for t in kept.text]
    bs = int(c.batch_size)
    pair = c.pair
    layers = list(c.layers)
    vectors = SteeringVector.from_pair_layers(
        model, pair.positive, pair.negative, layers, pad_token=pair.pad_token
    )
    k = vectors[layers[0]].k
    short = [i for i, t in enumerate(ids) if len(t) <= k + 1]
    if short:
        raise ConfigError(
            f"{len(short)} texts have no token left to score after the {k} masked positions "
            f"(e.g. {kept.text[short[0]]!r}); use longer texts."
        )

    def nll(lps: list, shift: int = 0) -> np.ndarray:
        # lp[t - 1] scores token t; keep t >= k (+ shift for a prefix)
        return np.asarray([-lp[k - 1 + shift :].mean() for lp in lps])

    arms = 1 + len(layers) * len(c.coeffs) + bool(c.prompting)
    with progress_bar(arms, "perplexity", "arm", progress) as bar:
        base = nll(token_logprobs(model, ids, batch_size=bs))
        bar.update(1)
        cols = kept[["text_id", "group", "topic_words", "topic_density"]]
        n_scored = [len(t) - k for t in ids]

        def rows(arm: str, layer: int, coeff: float, steered: np.ndarray) -> pd.DataFrame:
            return cols.assign(
                arm=arm,
                layer=layer,
                coeff=coeff,
                n_scored=n_scored,
                nll_unsteered=base,
                nll=steered,
                ratio=np.exp(steered - base),
            )

        frames = []
        for layer in layers:
            for coeff in c.coeffs:
                with steering(model, vectors[layer] * coeff, c.align):
                    frames.append(
                        rows("actadd", layer, coeff, nll(token_logprobs(model, ids, batch_size=bs)))
                    )
                bar.update(1)
        if c.prompting:
            prefix = encode(model, pair.positive, prepend_bos=False)
            prompted = [t[:1] + prefix + t[1:] for t in ids]
            lps = token_logprobs(model, prompted, batch_size=bs)
            frames.append(rows("prompt", -1, 1.0, nll(lps, shift=len(prefix))))
            bar.update(1)
        return pd.concat(frames, ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, coeff, group) and over all texts: geometric-mean ratio with a 95% CI,
    and per setting the Spearman correlation of topic density with the log ratio."""
    t = table.assign(log_ratio=np.log(table.ratio))
    rows = []
    if "arm" not in t.columns:
        t = t.assign(arm="actadd")
    for (arm, layer, coeff), d in t.groupby(["arm", "layer", "coeff"], sort=False):
        rho = d[["topic_density", "log_ratio"]].corr(method="spearman").iloc[0, 1]
        for group, g in [*d.groupby("group", sort=False), ("all", d)]:
            m, sem = g.log_ratio.mean(), g.log_ratio.std(ddof=1) / np.sqrt(len(g))
            rows.append(
                dict(
                    arm=arm,
                    layer=layer,
                    coeff=coeff,
                    group=group,
                    n_texts=len(g),
                    mean_density=g.topic_density.mean(),
                    ratio_gmean=np.exp(m),
                    ratio_lo=np.exp(m - 1.96 * sem),
                    ratio_hi=np.exp(m + 1.96 * sem),
                    spearman_density_vs_log_ratio=rho,
                )
            )
    return pd.DataFrame(rows)


def claims(run) -> list:
    """Per arm and setting, on the scored (unmasked) tokens: does the vector lower the
    perplexity of wedding texts (paired t of per-text mean NLL, steered vs unsteered)? Does
    it raise perplexity less on wedding texts than on unrelated ones (Welch t of the log
    ratios)? Benjamini–Hochberg within each family over the settings."""
    from actadd.lab.claims import paired_t_claim
    from actadd.lab.stats import welch_t

    t = run.read_table("perplexity")
    if "arm" not in t.columns:
        t = t.assign(arm="actadd", nll=np.log(t.ppl), nll_unsteered=np.log(t.ppl_unsteered))
    t = t.assign(log_ratio=t.nll - t.nll_unsteered)
    exp = run.config.get("name") or run.out.name
    pad = Pair.parse(run.config["pair"]).pad_token if "pair" in run.config else " "
    padded = "" if pad == " " else f" (pad {pad!r})"
    out = []
    for (arm, layer, coeff), d in t.groupby(["arm", "layer", "coeff"], sort=False):
        what = (
            f"L{layer}, c = {coeff:g}{padded}"
            if arm == "actadd"
            else "prepending the positive text"
        )
        wed, unrel = d[d.group == "wedding"], d[d.group == "unrelated"]
        if len(wed) > 1:
            c = paired_t_claim(
                wed.nll,
                wed.nll_unsteered,
                unit="texts",
                test="paired t (per-text mean NLL)",
                experiment=exp,
                id=f"ppl_wedding:{arm}:L{layer}:c{coeff:g}",
                statement=f"{what} lowers the perplexity of wedding texts",
                sign=-1,
                family="wedding texts",
            )
            ratio = f"{np.exp(c.estimate):.3f} [{np.exp(c.lo):.3f}, {np.exp(c.hi):.3f}]"
            out.append(replace(c, numbers=f"perplexity ratio {ratio}"))
        if len(wed) > 1 and len(unrel) > 1:
            out.append(
                result_claim(
                    welch_t(wed.log_ratio, unrel.log_ratio),
                    "mean",
                    experiment=exp,
                    id=f"ppl_relative:{arm}:L{layer}:c{coeff:g}",
                    statement=f"{what} raises perplexity less on wedding texts than on "
                    "unrelated texts",
                    test="Welch t (log ratios)",
                    n=f"{len(wed)} vs {len(unrel)} texts",
                    numbers=f"ratio {np.exp(wed.log_ratio.mean()):.3f} vs "
                    f"{np.exp(unrel.log_ratio.mean()):.3f}",
                    sign=-1,
                    family="wedding vs unrelated",
                )
            )
    return out


class PerplexityKind(ConfigKind):
    name = NAME
    description = "masked perplexity ratio (steered/unsteered) of held-out texts vs topic relevance"
    config_type = PerplexityConfig

    def run(self, spec: PerplexityConfig, model, run) -> None:
        if spec.texts is not None:
            corpus = read_text_set(spec.texts, spec.words, spec.limit or 0)
            run.write_table("corpus", corpus)
        # a resumed run reuses the texts it wrote (the corpus is sampled, so it is kept)
        elif run.resumed and run.has_table("corpus"):
            corpus = run.read_table("corpus", keep_default_na=False)
        else:
            corpus = write_corpus(model, spec.corpus, spec.words)
            run.write_table("corpus", corpus)
        if not corpus.kept.any():
            raise ConfigError("No text passed corpus.min_words; lower it or raise max_new_tokens.")
        table = measure(model, spec, corpus)
        run.write_table("perplexity", table, ("parquet", "csv"))
        run.write_table("summary", summary(table))

    def claims(self, run) -> list:
        return claims(run)

    def figures(self, run) -> list[Path]:
        pair = Pair.parse(run.config["pair"])
        table = run.read_table("perplexity")
        steered = table[table.arm == "actadd"] if "arm" in table.columns else table
        vec = pair_title(pair.name)
        # the table's topic_words column is a count per text: the list is the config's
        words = WordLists.of(run.config)
        paths = perplexity_ratio_figure(steered, vec, run.figures, words)
        return paths + perplexity_by_layer_figure(summary(table), vec, run.figures, words)


KIND = PerplexityKind()
