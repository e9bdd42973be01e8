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
    positive = " weddings"
    negative = ""
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

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.errors import ConfigError
from actadd.experiments import register
from actadd.kinds._config import check_keys, check_layers, number_list
from actadd.plots import PAPER_RC, _yerr, ratio_vs_relevance, save_figure
from actadd.runinfo import env_info, write_json, write_table

NAME = "perplexity"
KEYS = {
    "model",
    "positive",
    "negative",
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
    from actadd.sweeps.spec import _words

    check_keys(config, KEYS, NAME)
    c = {"negative": "", "align": "front", "topic_words": "weddings", "batch_size": 8, **config}
    if not isinstance(c.get("positive"), str) or not isinstance(c["negative"], str):
        raise ConfigError("perplexity config needs 'positive' (and optional 'negative') strings.")
    if not c["positive"] and not c["negative"]:
        raise ConfigError("positive and negative are both empty.")
    c["layers"] = number_list(c.get("layers"), "layers", integer=True)
    c["coeffs"] = number_list(c.get("coeffs"), "coeffs")
    c["words"] = _words(c["topic_words"], "topic_words")
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
    from actadd.generate import Sampling, generate
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
    vectors = SteeringVector.from_pair_layers(model, c["positive"], c["negative"], c["layers"])
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


@register(NAME, "perplexity ratio (steered/unsteered) of model-written texts vs topic relevance")
class PerplexityKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        from actadd.models import load_model

        c = parse(config)
        out = Path(out)
        saved = {**config, "kind": NAME}
        if (out / "config.json").exists():
            previous = json.loads((out / "config.json").read_text())
            if not resume:
                raise ConfigError(f"{out} already holds a run; pass --resume or another --out.")
            if json.dumps(previous, sort_keys=True) != json.dumps(saved, sort_keys=True):
                raise ConfigError(f"{out} holds a run of a different config; choose another --out.")
        model = load_model(c.get("model"))
        check_layers(c["layers"], model.cfg.n_layers)
        write_json(out / "config.json", saved)
        write_json(out / "env.json", env_info(model))
        corpus_path = out / "corpus.csv"
        if resume and corpus_path.is_file():
            corpus = pd.read_csv(corpus_path, keep_default_na=False)
        else:
            corpus = write_corpus(model, c["corpus"], c["words"])
            write_table(corpus_path, corpus)
        if not corpus.kept.any():
            raise ConfigError("No text passed corpus.min_words; lower it or raise max_new_tokens.")
        table = measure(model, c, corpus)
        write_table(out / "perplexity.parquet", table)
        write_table(out / "perplexity.csv", table)
        PerplexityKind.figures(out)

    @staticmethod
    def figures(out: Path) -> list[Path]:
        out = Path(out)
        config = json.loads((out / "config.json").read_text())
        table = pd.read_parquet(out / "perplexity.parquet")
        vec = f"{config['positive']!r}−{config.get('negative', '')!r}"
        settings = table[["layer", "coeff"]].drop_duplicates().sort_values(["coeff", "layer"])
        n = len(settings)
        ncol = min(n, 4)
        nrow = int(np.ceil(n / ncol))
        with plt.rc_context(PAPER_RC):
            fig, axes = plt.subplots(
                nrow,
                ncol,
                figsize=(3.3 * ncol, 2.9 * nrow),
                layout="constrained",
                squeeze=False,
                sharey=True,
            )
        for ax, (layer, coeff) in zip(axes.flat, settings.itertuples(index=False)):
            d = table[(table.layer == layer) & (table.coeff == coeff)]
            ratio_vs_relevance(d, ax=ax, title=f"{vec} ×{coeff:g} @L{layer}")
            if ax is not axes[0, 0]:
                ax.get_legend().remove()
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        paths = save_figure(fig, out / "figures" / "perplexity_ratio")

        s = summary(table)
        write_table(out / "summary.csv", s)  # derived: kept in step with the figures
        groups = [g for g in dict.fromkeys(s.group) if g != "all"]
        coeffs = sorted(s.coeff.unique())
        with plt.rc_context(PAPER_RC):
            fig, axes = plt.subplots(
                1,
                len(coeffs),
                figsize=(4.2 * len(coeffs), 3.2),
                layout="constrained",
                squeeze=False,
                sharey=True,
            )
            for ax, coeff in zip(axes[0], coeffs):
                ax.axhline(1.0, color="0.25", ls="--", lw=1, label="unsteered (ratio 1)")
                colors = plt.cm.Set2(np.arange(len(groups)) % 8)
                for i, (group, color) in enumerate(zip(groups, colors)):
                    d = s[(s.coeff == coeff) & (s.group == group)].sort_values("layer")
                    dens = d.mean_density.mean()
                    ax.errorbar(
                        d.layer + (i - (len(groups) - 1) / 2) * 0.25,
                        d.ratio_gmean,
                        yerr=_yerr(d.ratio_gmean, d.ratio_lo, d.ratio_hi),
                        color=color,
                        marker="o",
                        ms=3.5,
                        lw=1.2,
                        capsize=2,
                        label=f"{group} ({dens:.1f} topic words/100)",
                    )
                ax.set_xlabel("Injection layer L (resid_pre)")
                ax.set_ylabel("Perplexity ratio, steered / unsteered\n(geometric mean, 95% CI)")
                ax.set_title(f"{vec} ×{coeff:g}, by text group")
                ax.legend(frameon=False, fontsize=7)
        return paths + save_figure(fig, out / "figures" / "perplexity_by_layer")
