"""Experiment kind ``perplexity``: a topic vector's effect on the perplexity of texts, by
how much the texts are about the topic (the paper's OpenWebText experiment, offline).

There is no OpenWebText here, so the text set is written by the embedded model itself:
short essays on topics in groups (e.g. weddings, topics next to weddings, unrelated topics
such as shipping — the paper used ChatGPT-written wedding and shipping essays). The recipe
(model, chat template, topics, seed, sampling, length, filter) is the ``[corpus]`` table
of the config, saved in ``config.json``; the texts are saved in ``corpus.csv`` with their
topic-word counts, and reused when the run is resumed.

Each text's perplexity (leading token prepended, not scored) is measured unsteered and
with ``coeff · (h_L(positive) − h_L(negative))`` added at each layer (front alignment: the
vector's rows sit on the text's first tokens, as in the paper). Tables: ``corpus.csv``,
``perplexity.csv``/``.parquet`` (one row per text × setting, with the ratio
steered / unsteered), ``summary.csv`` (per group and setting: geometric-mean ratio with
95% CI, and the Spearman correlation between topic density and log ratio).

Config::

    kind = "perplexity"
    pair = [" weddings", ""]          # or {positive, negative, label, pad_token}
    layers = [1, 4, 10, 16]
    coeffs = [1.0, 2.0]
    topic_words = "weddings"          # preset or list: topic density of each text
    [corpus]
    seed = 0
    n_per_topic = 3
    max_new_tokens = 100
    min_words = 30
    temperature = 0.7
    top_p = 0.9
    freq_penalty = 0.5
    template = "<|im_start|>user\\nWrite a short essay about {topic}.<|im_end|>\\n..."
    [corpus.topics]
    wedding = ["weddings", "..."]
    unrelated = ["container shipping", "..."]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.config import Pair, check_keys, check_layers, number_list, words
from actadd.errors import ConfigError
from actadd.kinds import BaseKind
from actadd.plots.perplexity import perplexity_by_layer_figure, perplexity_ratio_figure

NAME = "perplexity"
KEYS = {
    "name",
    "model",
    "pair",
    "layers",
    "coeffs",
    "align",
    "topic_words",
    "batch_size",
    "corpus",
}
CORPUS_KEYS = {
    "seed",
    "n_per_topic",
    "max_new_tokens",
    "min_words",
    "temperature",
    "top_p",
    "freq_penalty",
    "template",
    "topics",
}
DEFAULT_TEMPLATE = (
    "<|im_start|>user\nWrite a short essay about {topic}.<|im_end|>\n<|im_start|>assistant\n"
)
CORPUS_DEFAULTS = dict(
    seed=0,
    n_per_topic=3,
    max_new_tokens=100,
    min_words=30,
    temperature=0.7,
    top_p=0.9,
    freq_penalty=0.5,
    template=DEFAULT_TEMPLATE,
)


def parse(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a perplexity config; returns it with defaults filled in."""
    check_keys(config, KEYS, f"{NAME} config", required=("pair", "layers", "coeffs"))
    c = {"align": "front", "topic_words": "weddings", "batch_size": 8, **config}
    c["pair"] = Pair.parse(c["pair"], "pair")
    c["layers"] = number_list(c["layers"], "layers", integer=True)
    c["coeffs"] = number_list(c["coeffs"], "coeffs")
    c["words"] = words(c["topic_words"], "topic_words")
    corpus = c.get("corpus")
    if not isinstance(corpus, dict):
        raise ConfigError("perplexity config needs a [corpus] table (how the texts are made).")
    unknown = sorted(set(corpus) - CORPUS_KEYS)
    if unknown:
        raise ConfigError(f"[corpus]: unknown key(s) {unknown}; allowed: {sorted(CORPUS_KEYS)}.")
    corpus = {**CORPUS_DEFAULTS, **corpus}
    topics = corpus.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise ConfigError("[corpus.topics] must map group names to lists of topics.")
    for group, names in topics.items():
        if not isinstance(names, list) or not names or not all(isinstance(t, str) for t in names):
            raise ConfigError(f"[corpus.topics] {group!r} must be a non-empty list of strings.")
    if "{topic}" not in corpus["template"]:
        raise ConfigError("[corpus] template must contain '{topic}'.")
    for key in ("n_per_topic", "max_new_tokens"):
        if isinstance(corpus[key], bool) or not isinstance(corpus[key], int) or corpus[key] < 1:
            raise ConfigError(f"[corpus] {key} must be an int >= 1.")
    c["corpus"] = corpus
    return c


def write_corpus(model, corpus: dict[str, Any], words) -> pd.DataFrame:
    """Have the model write the essays of the recipe; one row per text."""
    from actadd.generation import Sampling, generate
    from actadd.metrics import topic_counts

    jobs = [(g, t) for g, topics in corpus["topics"].items() for t in topics]
    prompts = [corpus["template"].format(topic=t) for _, t in jobs]
    sampling = Sampling(
        temperature=corpus["temperature"],
        top_p=corpus["top_p"],
        freq_penalty=corpus["freq_penalty"],
    )
    gen = generate(
        model,
        prompts,
        n_samples=corpus["n_per_topic"],
        max_new_tokens=corpus["max_new_tokens"],
        seed=corpus["seed"],
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
    df["kept"] = df.n_words >= corpus["min_words"]
    df.insert(0, "text_id", range(len(df)))
    return df


def measure(model, c: dict[str, Any], corpus: pd.DataFrame) -> pd.DataFrame:
    """Perplexity of every kept text, unsteered and in every (layer, coeff) setting."""
    from actadd.metrics import perplexity
    from actadd.steer import steering
    from actadd.vectors import SteeringVector

    kept = corpus[corpus.kept].reset_index(drop=True)
    texts = kept.text.tolist()
    bs = int(c["batch_size"])
    base = perplexity(model, texts, batch_size=bs)
    pair = c["pair"]
    vectors = SteeringVector.from_pair_layers(
        model, pair.positive, pair.negative, c["layers"], pad_token=pair.pad_token
    )
    frames = []
    for layer in c["layers"]:
        for coeff in c["coeffs"]:
            with steering(model, vectors[layer] * coeff, c["align"]):
                ppl = perplexity(model, texts, batch_size=bs)
            frames.append(
                kept[["text_id", "group", "topic", "topic_words", "topic_density"]].assign(
                    layer=layer, coeff=coeff, ppl_unsteered=base, ppl=ppl, ratio=ppl / base
                )
            )
    return pd.concat(frames, ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, coeff, group) and over all texts: geometric-mean ratio with a 95% CI,
    and per setting the Spearman correlation of topic density with the log ratio."""
    t = table.assign(log_ratio=np.log(table.ratio))
    rows = []
    for (layer, coeff), d in t.groupby(["layer", "coeff"]):
        rho = d[["topic_density", "log_ratio"]].corr(method="spearman").iloc[0, 1]
        for group, g in [*d.groupby("group", sort=False), ("all", d)]:
            m, sem = g.log_ratio.mean(), g.log_ratio.std(ddof=1) / np.sqrt(len(g))
            rows.append(
                dict(
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


class PerplexityKind(BaseKind):
    name = NAME
    description = "perplexity ratio (steered/unsteered) of model-written texts vs topic relevance"

    def parse(self, config: dict[str, Any]) -> dict[str, Any]:
        return parse(config)

    def saved_config(self, spec: dict[str, Any]) -> dict[str, Any]:
        saved = {k: v for k, v in spec.items() if k != "words"}
        return {**saved, "pair": vars(spec["pair"]), "kind": NAME}

    def check(self, spec: dict[str, Any], model) -> None:
        check_layers(spec["layers"], model.cfg.n_layers)

    def run(self, spec: dict[str, Any], model, run) -> None:
        # a resumed run reuses the texts it wrote (the corpus is sampled, so it is kept)
        if run.resumed and run.has_table("corpus"):
            corpus = run.read_table("corpus", keep_default_na=False)
        else:
            corpus = write_corpus(model, spec["corpus"], spec["words"])
            run.write_table("corpus", corpus)
        if not corpus.kept.any():
            raise ConfigError("No text passed corpus.min_words; lower it or raise max_new_tokens.")
        table = measure(model, spec, corpus)
        run.write_table("perplexity", table, ("parquet", "csv"))
        run.write_table("summary", summary(table))

    def figures(self, run) -> list[Path]:
        pair = Pair.parse(run.config["pair"])
        table = run.read_table("perplexity")
        vec = f"{pair.positive!r}−{pair.negative!r}"
        paths = perplexity_ratio_figure(table, vec, run.figures)
        return paths + perplexity_by_layer_figure(summary(table), vec, run.figures)


KIND = PerplexityKind()
