"""The ``pad_confound`` kind's computation: every table of a run from its config
(:class:`~actadd.studies.pad_confound.config.PadConfoundConfig`) and the model, with the
instruments of :mod:`actadd.studies.pad_confound.analysis`.

Tables: ``effects`` (pair × pad × variant × layer × prompt), ``norms`` (pair × pad × variant
× layer), ``surgery`` (dimensions changed per pad row), ``attention_context`` and
``attention_actadd`` (prompt × layer × head), ``pad_ranking`` and ``recommendation.json``,
and with ``[generation]`` ``word_count`` / ``completions`` (the sweep engine's
:func:`actadd.sweeps.engine.generation_unit`, paired seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from actadd.config import parse_layers
from actadd.config import words as word_list
from actadd.errors import ConfigError
from actadd.studies.pad_confound.config import PadConfoundConfig, pad_label

__all__ = ["ORDINARY", "UNSTEERED", "run_pad_confound"]

UNSTEERED = "(unsteered)"
ORDINARY = "(ordinary token)"


def run_pad_confound(spec: PadConfoundConfig, model, run) -> None:
    """Compute every table of the kind into ``run``."""
    import torch

    from actadd.core.metrics import target_token_ids
    from actadd.core.prefix import PrefixBatch
    from actadd.core.vectors import SteeringVector
    from actadd.progress import bar as progress_bar
    from actadd.runtime.tokens import encode, single_token_id
    from actadd.studies.pad_confound import analysis as P

    n = model.cfg.n_layers
    layers = parse_layers(spec.layers, n)
    ratio = float(spec.massive_ratio)
    ids = [encode(model, t) for t in spec.prompts]
    batch = PrefixBatch(model, ids, max_rows=int(spec.batch_rows))
    batch.prefetch(layers)
    stats = {layer: P.ordinary_stats(batch, layer) for layer in layers}
    controls = target_token_ids(model, spec.controls, strict=True)
    effects, norms, surgery = [], [], []
    steps = len(spec.pairs) * len(layers)
    with torch.no_grad(), progress_bar(steps, "pad effects", "layer") as bar:
        for pp in spec.pairs:
            pair, coeff = pp.pair, float(pp.coeff)
            targets = target_token_ids(model, word_list(pp.target_words), strict=False)
            vectors, labels = {layer: [] for layer in layers}, []
            for pad in spec.pad_tokens:
                vs = SteeringVector.from_pair_layers(
                    model, pair.positive, pair.negative, layers, coeff, pad_token=pad
                )
                tokens = P.pair_tokens(model, pair, pad)
                acts = P.pair_residuals(model, tokens, layers)
                rows = list(tokens.pad_rows)
                for layer in layers:
                    vectors[layer].append(vs[layer])
                    pad_norm = float(acts[layer][tokens.padded_side, rows].norm(dim=-1).mean())
                    norms.append(_norm_row(pair, pad, P.PLAIN, layer, pad_norm, vs[layer], rows))
                labels.append((pad, P.PLAIN))
            for pad in spec.surgery_pads:
                for method in spec.methods:
                    vs, info = P.surgery_vectors(
                        model, pair, layers, coeff, pad, method, stats, ratio=ratio
                    )
                    info.insert(0, "pad", pad_label(pad))
                    info.insert(0, "pair", pair.name)
                    surgery.append(info)
                    rows = list(P.pair_tokens(model, pair, pad).pad_rows)
                    for layer in layers:
                        vectors[layer].append(vs[layer])
                        after = info[info.layer == layer].norm_after.mean()
                        norms.append(_norm_row(pair, pad, method, layer, after, vs[layer], rows))
                    labels.append((pad, method))
            for layer in layers:
                for r in P.effect_rows(batch, vectors[layer], targets, controls):
                    pad, variant = labels[r.pop("condition")]
                    effects.append(
                        dict(pair=pair.name, pad=pad_label(pad), variant=variant, layer=layer, **r)
                    )
                bar.update(1)
    norms_df = pd.DataFrame(norms)
    norms_df["typical_norm"] = norms_df.layer.map({k: v.norm for k, v in stats.items()})
    norms_df["log2_norm_ratio"] = np.log2(norms_df.pad_norm / norms_df.typical_norm)
    effects_df = pd.DataFrame(effects)
    run.write_table("effects", effects_df, ("parquet", "csv"))
    run.write_table("norms", norms_df)
    run.write_table("surgery", pd.concat(surgery, ignore_index=True))
    ranking = P.pad_ranking(effects_df, norms_df[norms_df.variant == P.PLAIN], massive_ratio=ratio)
    run.write_table("pad_ranking", ranking)
    run.write_json(
        "recommendation",
        dict(
            rule="among pads whose row never exceeds massive_ratio × the typical norm (any pair,"
            " any layer), the largest mean effect over pairs, layers and prompts",
            massive_ratio=ratio,
            recommended=P.recommend_pad(ranking),
            reference=pad_label(spec.reference_pad),
        ),
    )
    if spec.attention is not None:
        ctx, act = _attention(spec, model, ids, single_token_id)
        run.write_table("attention_context", ctx, ("parquet", "csv"))
        run.write_table("attention_actadd", act, ("parquet", "csv"))
    if spec.generation is not None:
        wc, comps = _word_count(spec, model, P)
        run.write_table("word_count", wc, ("parquet", "csv"))
        run.write_table("completions", comps, ("parquet",))


def _norm_row(pair, pad, variant: str, layer: int, pad_norm: float, v, rows) -> dict:
    return dict(
        pair=pair.name,
        pad=pad_label(pad),
        variant=variant,
        layer=layer,
        pad_norm=pad_norm,
        vec_norm=float(v.tensor.norm()),
        pad_vec_norm=float(v.tensor[rows].norm(dim=-1).mean()),
    )


def _attention(spec: PadConfoundConfig, model, ids: list[list[int]], single_token_id):
    """``attention_context``: each pad as a real token at position 1 (and the plain prompt,
    whose position 1 is an ordinary token); ``attention_actadd``: the attention pair's
    pad-row position in the steered prompt, unsteered and under ActAdd per pad and layer."""
    from actadd.core.steering import Placement
    from actadd.core.vectors import SteeringVector
    from actadd.studies.pad_confound import analysis as P

    pads = spec.attention_pads
    inject = list(spec.attention.inject_layers)
    pp = spec.pair_named(spec.attention.pair)
    ctx, act = [], []

    def tidy(out, cols, masses, i, norms=True):
        b, nl, nh = masses["key"].shape
        for layer in range(nl):
            for h in range(nh):
                out.append(
                    dict(
                        **cols,
                        prompt_index=i,
                        layer=layer,
                        head=h,
                        mass_key=float(masses["key"][0, layer, h]),
                        mass_first=float(masses["first"][0, layer, h]),
                        key_norm=float(masses["key_norm"][0, layer]) if norms else np.nan,
                    )
                )

    pad_ids = [single_token_id(model, p) for p in spec.pad_tokens]
    vecs = {
        pad: SteeringVector.from_pair_layers(
            model, pp.pair.positive, pp.pair.negative, inject, float(pp.coeff), pad_token=pad
        )
        for pad in pads
    }
    for i, toks in enumerate(ids):
        m = P.attention_to(model, [toks[:1] + [pid] + toks[1:] for pid in pad_ids], 1)
        for j, pad in enumerate(spec.pad_tokens):
            one = {k: v[j : j + 1] for k, v in m.items()}
            tidy(ctx, dict(pad=pad_label(pad)), one, i)
        tidy(ctx, dict(pad=ORDINARY), P.attention_to(model, [toks], 1), i)
        # ActAdd: one row per condition, each steered on its own row only
        conds = [(UNSTEERED, -1, None)] + [(p, L, vecs[p][L]) for p in pads for L in inject]
        key = P.pair_tokens(model, pp.pair, spec.reference_pad).pad_rows[0]
        if len(toks) <= key + 1:
            raise ConfigError(f"prompt {spec.prompts[i]!r} is too short for the pad row {key}.")
        placements = [
            Placement(v, "front", (r,)) for r, (_, _, v) in enumerate(conds) if v is not None
        ]
        m = P.attention_to(model, [toks] * len(conds), key, placements)
        for r, (pad, layer, _) in enumerate(conds):
            one = {k: v[r : r + 1] for k, v in m.items()}
            label = pad if pad == UNSTEERED else pad_label(pad)
            tidy(act, dict(pad=label, inject_layer=layer, key=key), one, i)
    return pd.DataFrame(ctx), pd.DataFrame(act)


def _word_count(spec: PadConfoundConfig, model, P):
    """Topic words in sampled completions, one sweep-engine unit per (pad, layer) and the
    unsteered baseline, every arm on the same (prompt, sample) seeds."""
    from actadd.core.vectors import SteeringVector
    from actadd.sweeps.engine import Unit, generation_unit

    g = spec.generation_sweep()
    layers = g.layer_list(model.cfg.n_layers)
    frames, comps = [], []
    df, c = generation_unit(model, g, Unit("generation", -1, "", -1), None)
    frames.append(df)
    comps.append(c)
    for i, pair in enumerate(g.pairs):
        vs = SteeringVector.from_pair_layers(
            model, pair.positive, pair.negative, layers, pad_token=pair.pad_token
        )
        norms = P.pad_row_norms(model, pair, pair.pad_token, layers)
        for layer in layers:
            df, c = generation_unit(model, g, Unit("generation", i, "right", layer), vs)
            frames.append(df.assign(pad_norm=norms[layer]))
            comps.append(c)
    return pd.concat(frames, ignore_index=True), pd.concat(comps, ignore_index=True)
