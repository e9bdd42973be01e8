"""Where the default suite's time goes, before (TransformerLens's forward) and after (the
fast path), measured in one process on the embedded SmolLM2.

For each experiment of ``experiments/suite.toml`` at its full (not ``--quick``) size, one
representative slice of each kind of work — a sweep unit's sampled completions, a sweep
unit's next-token metrics, a perplexity batch, one capability layer, one token-injection
pair — runs twice: inside :func:`actadd.runtime.fast.transformerlens_forward` (every forward on
TransformerLens, as before the fast path) and on the fast path. Each slice's seconds times
how often that work recurs in the full experiment estimates the experiment's time; work the
slices leave out (loading, tables, figures) is not counted. ``x4 sampling`` multiplies the
sampled parts by four (four times the samples per cell).

The machine may be shared, and wall time then grows with the other jobs' load (printed
with the results). The process's CPU time does much less: with one thread it is close to
the wall time of a quiet machine, so the estimates are given in both.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_suite.py [--only NAME ...] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

import actadd
from actadd.cli.commands import read_suite
from actadd.lab.runner import kind_of, read_config
from actadd.runtime.fast import fast_allowed, transformerlens_forward

SUITE = Path("experiments/suite.toml")


@dataclass
class Slice:
    """Work that recurs ``reps`` times in the full experiment (``sampled``: text sampling)."""

    label: str
    run: Callable[[], object]
    reps: float
    sampled: bool


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


# ------------------------------------------------------------------ slices per kind


def sweep_slices(model, spec) -> list[Slice]:
    from actadd.core.vectors import SteeringVector
    from actadd.sweeps.engine import Texts, generation_unit, next_token_unit, units

    layers = spec.layer_list(model.cfg.n_layers)
    todo = units(spec, model.cfg.n_layers)
    mid = layers[len(layers) // 2]
    pair = spec.pairs[0]
    vecs = SteeringVector.from_pair_layers(
        model,
        pair.positive,
        pair.negative,
        [mid],
        equalize=spec.equalize[0],
        pad_token=pair.pad_token,
    )
    out = []
    if spec.next_token:
        unit = next(u for u in todo if u.kind == "next_token" and u.layer == mid)
        n = sum(u.kind == "next_token" and u.pair >= 0 for u in todo)
        texts = {}  # per path: the clean prefix each unit starts from

        def prefix():
            texts[fast_allowed(model)] = t = Texts(model, spec)
            t.prefetch(layers)

        def next_token():
            next_token_unit(model, spec, texts[fast_allowed(model)], unit, vecs)

        out.append(
            Slice(f"clean prefix of the next-token texts, {len(layers)} layers", prefix, 1, False)
        )
        out.append(Slice(f"next-token unit L{mid}", next_token, n, False))
    if spec.generation:
        unit = next(u for u in todo if u.kind == "generation" and u.layer == mid)
        n_cells = len(spec.coeffs) * len(spec.align_list())
        n = sum(u.kind == "generation" and u.pair >= 0 for u in todo) + 1 / n_cells
        g = spec.generation
        label = (
            f"sampling unit L{mid}: {n_cells} cells x {len(spec.prompts)} prompts x "
            f"{g.n_samples} samples x {g.max_new_tokens} tokens"
        )
        out.append(Slice(label, lambda: generation_unit(model, spec, unit, vecs), n, True))
    return out


def perplexity_slices(model, spec) -> list[Slice]:
    from actadd.core.metrics import perplexity
    from actadd.core.steering import steering
    from actadd.core.vectors import SteeringVector
    from actadd.studies.perplexity.kind import write_corpus

    corpus = dict(spec["corpus"])
    tokens = corpus["max_new_tokens"]
    short = max(1, tokens // 4)
    n_texts = sum(len(t) for t in corpus["topics"].values()) * corpus["n_per_topic"]
    saved = Path("results/wedding_perplexity/corpus.csv")
    if saved.is_file():
        texts = pd.read_csv(saved, keep_default_na=False).query("kept").text.tolist()
    else:
        texts = write_corpus(model, {**corpus, "max_new_tokens": tokens}, spec["words"]).text
        texts = list(texts)
    pair, layer = spec["pair"], spec["layers"][0]
    v = SteeringVector.from_pair(model, pair.positive, pair.negative, layer, spec["coeffs"][0])
    bs = int(spec["batch_size"])
    chunk = texts[: 2 * bs]
    settings = len(spec["layers"]) * len(spec["coeffs"]) + 1

    def measure():
        with steering(model, v, spec["align"]):
            perplexity(model, chunk, batch_size=bs)

    return [
        Slice(
            f"corpus: {n_texts} essays x {short} of {tokens} tokens",
            lambda: write_corpus(model, {**corpus, "max_new_tokens": short}, spec["words"]),
            tokens / short,
            True,
        ),
        Slice(
            f"perplexity: {len(chunk)} of {len(texts)} texts, one setting of {settings}",
            measure,
            settings * len(texts) / len(chunk),
            False,
        ),
    ]


def capability_slices(model, spec) -> list[Slice]:
    from actadd.studies.capability.kind import evaluate, items_table

    items = items_table(model, spec["doc"], spec["limit"])
    one = {**spec, "pairs": spec["pairs"][:1], "layers": spec["layers"][:1]}
    reps = len(spec["pairs"]) * len(spec["layers"])
    label = f"{len(items)} items x {len(spec['coeffs'])} coefficients, one pair and layer"
    return [Slice(label, lambda: evaluate(model, one, items), reps, False)]


def token_injection_slices(model, spec) -> list[Slice]:
    import dataclasses

    from actadd.studies.token_injection.comparison import compare_conditions

    first = dataclasses.replace(spec.pairs[0], sum_with=None)
    label = f"every condition of one pair of {len(spec.pairs)}"
    run = lambda: compare_conditions(model, [first], spec.settings, progress=False)  # noqa: E731
    return [Slice(label, run, len(spec.pairs), False)]


def demo_slices(model, spec) -> list[Slice]:
    from actadd.config import Pair

    pair = Pair(**spec["pair"])
    v = actadd.SteeringVector.from_pair(
        model, pair.positive, pair.negative, spec["layer"], spec["coeff"]
    )
    kw = dict(n_samples=spec["n_samples"], max_new_tokens=spec["max_new_tokens"], seed=0)
    run = lambda: actadd.compare(model, spec["prompts"], v, spec["align"], **kw)  # noqa: E731
    return [Slice("the whole demo (steered and unsteered)", run, 1, True)]


def slices_for(model, config: dict) -> list[Slice]:
    kind = kind_of(config)
    spec = kind.parse({k: v for k, v in config.items() if k != "kind"})
    name = kind.name
    if name == "perplexity":
        return perplexity_slices(model, spec)
    if name == "capability":
        return capability_slices(model, spec)
    if name == "token_injection":
        return token_injection_slices(model, spec)
    if name == "demo":
        return demo_slices(model, spec)
    return sweep_slices(model, spec)


# ------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="experiment names (default: the whole suite)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = actadd.load_model()
    actadd.generate(model, "Warm up", max_new_tokens=4)  # first-call allocations
    rows = []
    for path in read_suite(SUITE):
        if args.only and path.stem not in args.only:
            continue
        config = read_config(path)
        for s in slices_for(model, config):
            with transformerlens_forward(model):
                before, before_cpu = _timed(s.run)
            after, after_cpu = _timed(s.run)
            rows.append(
                dict(
                    experiment=path.stem,
                    slice=s.label,
                    reps=round(s.reps, 2),
                    sampled=s.sampled,
                    before_s=before,
                    after_s=after,
                    before_cpu=before_cpu,
                    after_cpu=after_cpu,
                )
            )
            print(
                f"{path.stem:<19} {s.label:<64} wall {before:6.1f} -> {after:6.1f} s "
                f"({before / after:4.2f}x)  cpu {before_cpu:6.1f} -> {after_cpu:6.1f} s "
                f"({before_cpu / after_cpu:4.2f}x)  x{s.reps:.4g}",
                flush=True,
            )
    df = pd.DataFrame(rows)
    four = df.sampled.map({True: 4, False: 1})
    cols = {}
    for clock in ("s", "cpu"):
        cols[f"before_{clock}"] = df[f"before_{clock}"] * df.reps
        cols[f"after_{clock}"] = df[f"after_{clock}"] * df.reps
        cols[f"after_x4_sampling_{clock}"] = cols[f"after_{clock}"] * four
    est = pd.DataFrame(cols).assign(experiment=df.experiment)
    per = est.groupby("experiment", sort=False).sum()
    per.loc["total"] = per.sum()
    per["ratio_cpu"] = per.before_cpu / per.after_cpu
    pd.set_option("display.width", 200)
    print(f"\ntorch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    print("estimated full-experiment seconds, wall (_s) and CPU (_cpu): slices x their repeats")
    print("(model loading, tables and figures not counted)")
    print(per.round(1).to_string())


if __name__ == "__main__":
    main()
