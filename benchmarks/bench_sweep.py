"""Sweep engine vs a naive per-cell ``run_with_hooks`` loop, same numbers, one process.

The naive loop is written here from scratch (one hooked forward per cell and prompt, the
way the paper's code sweeps), independent of actadd's steering code, so the agreement check
is also a cross-implementation check. Prints both times, the ratio and the max difference.

    .venv/bin/python benchmarks/bench_sweep.py [--layers all] [--coeffs 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import actadd
from actadd.core.metrics import kl_div, logprob_mass
from actadd.runtime.hooks import resid_pre
from actadd.sweeps import UNSTEERED, SweepSpec, plan, run_sweep, sort_results

PROMPTS = [
    "I went up to my friend and said",
    "Yesterday after work I",
    "The best thing about the weekend is",
]
NEUTRAL = ["The museum opens at nine in the morning and closes at five in the afternoon."]


def naive(model, spec: SweepSpec) -> dict[tuple, float]:
    """{(layer, coeff, text_kind, text_index, metric): value} from a plain hooked loop."""
    targets = plan.target_ids(spec, model)
    texts = [("prompt", i, t) for i, t in enumerate(spec.prompts)] + [
        ("neutral", i, t) for i, t in enumerate(spec.neutral_texts)
    ]
    tokens = {t: model.to_tokens(t) for _, _, t in texts}
    clean = {t: model(tok)[0] for t, tok in tokens.items()}
    pair = spec.pairs[0]
    out = {}
    for layer in spec.layer_list(model.cfg.n_layers):
        v = actadd.SteeringVector.from_pair(model, pair.positive, pair.negative, layer).tensor
        for c in spec.coeffs:
            delta = c * v

            def hook(act, hook, delta=delta):
                act = act.clone()
                act[:, : delta.shape[0]] += delta
                return act

            for kind, i, text in texts:
                logits = model.run_with_hooks(
                    tokens[text], fwd_hooks=[(resid_pre(model, layer), hook)]
                )[0]
                base = clean[text]
                if kind == "prompt":
                    lp = logprob_mass(logits[-1], targets) - logprob_mass(base[-1], targets)
                    out[(layer, c, kind, i, "target_logprob_delta")] = float(lp)
                    out[(layer, c, kind, i, "kl_next_token")] = float(kl_div(logits[-1], base[-1]))
                else:
                    kl = kl_div(logits[1:], base[1:]).mean()
                    out[(layer, c, kind, i, "kl_neutral")] = float(kl)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="all")
    ap.add_argument("--coeffs", type=int, default=8)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = actadd.load_model()
    coeffs = [float(c) for c in np.geomspace(0.25, 32, args.coeffs)]
    spec = SweepSpec(
        name="bench",
        pairs=(actadd.sweeps.Pair(" weddings", ""),),
        layers=args.layers,
        coeffs=tuple(coeffs),
        prompts=tuple(PROMPTS),
        neutral_texts=tuple(NEUTRAL),
        target_words="weddings",
        batch_rows=128,
    )
    n_cells = len(spec.layer_list(model.cfg.n_layers)) * len(coeffs)
    print(
        f"{model.cfg.model_name}: {n_cells} cells (layers {args.layers} x {len(coeffs)} "
        f"coefficients) x {len(PROMPTS)} prompts + {len(NEUTRAL)} neutral text"
    )

    t0 = time.perf_counter()
    reference = naive(model, spec)
    t_naive = time.perf_counter() - t0

    t0 = time.perf_counter()
    df = run_sweep(spec, model, progress=False)
    t_engine = time.perf_counter() - t0

    df = sort_results(df[df.pair != UNSTEERED])
    df = df[df.metric.isin(["target_logprob_delta", "kl_next_token", "kl_neutral"])]
    ours = {
        (r.layer, r.coeff, r.text_kind, r.text_index, r.metric): r.value for r in df.itertuples()
    }
    assert ours.keys() == reference.keys(), "the two runs cover different cells"
    diff = max(abs(ours[k] - reference[k]) for k in ours)
    rel = max(abs(ours[k] - reference[k]) / max(abs(reference[k]), 1e-3) for k in ours)
    print(f"naive run_with_hooks loop: {t_naive:8.1f} s")
    print(f"actadd sweep engine:       {t_engine:8.1f} s")
    print(
        f"speed-up: {t_naive / t_engine:.1f}x; {len(ours)} numbers agree to max abs diff "
        f"{diff:.2e} (max rel {rel:.2e})"
    )
    assert diff < 1e-3, "engine and naive loop disagree"


if __name__ == "__main__":
    main()
