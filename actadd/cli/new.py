"""``actadd new sweep [PATH]``: write a commented template sweep config that runs as written.

The template is a small, complete sweep on the embedded SmolLM2 (one pair, two layers, two
coefficients, next-token metrics and a few sampled completions; about a minute on a laptop
CPU) whose comments name every key a sweep takes, so a new study starts from a file that
already works: edit the pair, the words and the grid, then ``actadd sweep PATH``. The
configuration reference of the documentation lists every key with its type and default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from actadd.errors import ConfigError

__all__ = ["SWEEP_TEMPLATE", "add_new_parser", "write_template"]

SWEEP_TEMPLATE = """\
# A sweep: pairs × layers × coefficients × alignments, measured on your prompts.
# Run it:      actadd sweep {path}
# Results in:  results/<name>/ (results.parquet, completions.parquet, figures/, config.json)
# Every key, its type and default: the documentation's configuration reference.
kind = "sweep"
name = "my_sweep"                  # the run directory: results/my_sweep/
# model = "smollm2"                # default: the embedded SmolLM2; or "gemma3-270m", a .gguf

# Where to steer: resid_pre layers (a list, "all", or "a:b[:step]") and coefficients.
layers = [2, 6]
coeffs = [1.0, 4.0]
aligns = ["front"]                 # front (the paper), back, all, offset:s, offset:a:b
equalize = ["right"]               # pad the shorter prompt on the right (the paper), left, truncate

# What to measure at the next token: the log-probability of these words (a preset name:
# weddings, anger, love; or your own single-token words, e.g. [" cat", " cats", " kitten"]).
target_words = "love"
prompts = [
    "I hate you because",
    "Yesterday after work I",
]
# neutral_texts = ["..."]          # texts for the KL disruption metric (default: two built in)

# The contrast pair: the vector is h(positive) − h(negative) at each layer, times coeff.
[[pairs]]
positive = "Love"
negative = "Hate"
# label = "Love − Hate"            # the name in tables and figures
# pad_token = " "                  # pads the shorter prompt (the paper's); e.g. " a"

# Sampled completions (optional: delete the table for next-token metrics only).
[generation]
n_samples = 4                      # completions per prompt and cell, same seeds steered/unsteered
max_new_tokens = 20
seed = 0
topic_words = "love"               # counted in completions (topic_any)
sentiment = true                   # VADER sentiment of each completion
# temperature = 1.0                # the paper's sampling: temperature 1, top-p 0.3,
# top_p = 0.3                      # frequency penalty 1
# freq_penalty = 1.0

# Cells fixed before the run, tested as claims by `actadd report` (optional):
# confirmatory = [{{ layer = 6, coeff = 4.0, metric = "sentiment" }}]

# Smaller sizes for `actadd sweep {path} --quick`:
[quick]
layers = [2]
coeffs = [4.0]
[quick.generation]
n_samples = 2
max_new_tokens = 8
"""

TEMPLATES = {"sweep": SWEEP_TEMPLATE}


def write_template(kind: str, path: str | Path, *, force: bool = False) -> Path:
    """Write the ``kind`` template to ``path`` (atomically); refuse to overwrite a file
    unless ``force``."""
    from actadd._io import atomic_write

    if kind not in TEMPLATES:
        raise ConfigError(f"no template {kind!r}; allowed: {', '.join(TEMPLATES)}.")
    path = Path(path)
    if path.suffix != ".toml":
        raise ConfigError(f"{path}: a config file ends in .toml.")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it, or give another path.")
    if not path.parent.is_dir():
        raise ConfigError(f"{path.parent}: no such directory.")
    text = TEMPLATES[kind].format(path=path)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def cmd_new(args: argparse.Namespace) -> int:
    path = write_template(args.template, args.path, force=args.force)
    print(f"wrote {path}; run it with: actadd sweep {path}")
    return 0


def add_new_parser(sub) -> None:
    """Register ``new`` on the ``actadd`` parser's subparsers."""
    n = sub.add_parser(
        "new",
        help="write a commented template config that runs as written",
        description="Write a commented template config (every key named, small sizes) that "
        "runs as written; edit it, then run it.",
    )
    n.add_argument("template", choices=sorted(TEMPLATES), help="what to write: sweep")
    n.add_argument(
        "path", nargs="?", default="my_sweep.toml", help="the file (default my_sweep.toml)"
    )
    n.add_argument("--force", action="store_true", help="overwrite an existing file")
    n.set_defaults(func=cmd_new)
