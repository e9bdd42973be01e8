"""Experiment kind ``pad_confound``: is the paper's ``" "`` pad a confound, and which pad instead?

For every pair of the config, every pad of the panel and every layer, the plain ActAdd vector
(``SteeringVector.from_pair_layers(..., pad_token=pad)``) steers the prompts at the front;
the *effect* is the next-token Δ log p of the pair's target words minus that of a control
word set (nats, against unsteered). Beside it: the residual norm of the pad row (the padded
side's pad positions at that layer) and the typical norm of ordinary positions. Surgery
keeps the reference pad but zeroes its massive dimensions, or replaces its row with the
mean ordinary residual, before the difference is taken. Attention: per layer and head, the
mass later positions put on a pad placed as a real token after the leading token (against
an ordinary token there), and on the pad row's position of a steered prompt with and without
ActAdd. An optional ``[generation]`` table counts topic words in sampled completions with
the sweep engine (:func:`actadd.sweeps.engine.generation_unit`, paired seeds).

Config (``experiments/pad_confound.toml``)::

    kind = "pad_confound"
    pads = [" ", " a", "\\n", ...]     # single tokens (strings) or token ids
    reference_pad = " "                # the paper's pad, which surgery and claims compare with
    layers = "all"
    prompts = [...]
    control_words = [...]              # single tokens each
    massive_ratio = 2.0                # a pad row is massive above this × the typical norm
    [[pairs]]                          # positive, negative, label, coeff, target_words
    [surgery]                          # pads, methods ("zero_massive", "mean_row")
    [attention]                        # pair (a label), pads, inject_layers
    [generation]                       # pair, pads, layers, coeff, prompts, n_samples, ...

Tables: ``effects`` (pair × pad × variant × layer × prompt), ``norms`` (pair × pad × variant
× layer), ``surgery`` (dimensions changed per pad row), ``attention_context`` and
``attention_actadd`` (prompt × layer × head), ``pad_ranking`` and ``recommendation.json``,
and with ``[generation]`` ``word_count`` / ``completions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.config import Pair, check_keys, check_layers, number_list, parse_layers, text_list
from actadd.config import words as word_list
from actadd.errors import ActAddError, ConfigError
from actadd.lab.kinds import BaseKind

NAME = "pad_confound"
KEYS = ("name", "description", "model", "pairs", "pads", "reference_pad", "layers", "prompts")
KEYS += ("control_words", "massive_ratio", "batch_rows", "surgery")
KEYS += ("attention", "generation")
PAIR_KEYS = ("positive", "negative", "label", "coeff", "target_words")
SURGERY_KEYS = ("pads", "methods")
ATTENTION_KEYS = ("pair", "pads", "inject_layers")
GENERATION_KEYS = ("pair", "pads", "layers", "coeff", "prompts", "n_samples", "max_new_tokens")
GENERATION_KEYS += ("seed", "temperature", "top_p", "freq_penalty", "topic_words")
UNSTEERED = "(unsteered)"
ORDINARY = "(ordinary token)"


@dataclass(frozen=True)
class PadPair:
    pair: Pair
    coeff: float
    target_words: tuple[str, ...] | str


@dataclass(frozen=True)
class Spec:
    config: dict[str, Any]
    pairs: tuple[PadPair, ...]
    pads: tuple[str | int, ...]
    reference: str | int
    layers: Any
    prompts: tuple[str, ...]
    control_words: tuple[str, ...]
    ratio: float
    batch_rows: int
    surgery_pads: tuple[str | int, ...]
    methods: tuple[str, ...]
    attention: dict[str, Any] | None
    generation: dict[str, Any] | None


def _pad_list(raw: Any, where: str) -> tuple[str | int, ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of single-token strings or ids.")
    for p in raw:
        if isinstance(p, bool) or not isinstance(p, (str, int)) or p == "":
            raise ConfigError(f"{where}: {p!r} is not a pad (a single-token string or an id).")
    reps = sorted({repr(p) for p in raw if list(raw).count(p) > 1})
    if reps:
        raise ConfigError(f"{where}: {reps} given more than once; list each pad once.")
    return tuple(raw)


def _number(raw: Any, where: str, minimum: float = 0.0) -> float:
    (x,) = number_list([raw], where)
    if x <= minimum:
        raise ConfigError(f"{where} must be > {minimum:g}, got {raw!r}.")
    return x


def _pairs(raw: Any) -> tuple[PadPair, ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError("pairs must be a non-empty list of tables {positive, negative, ...}.")
    out = []
    for i, t in enumerate(raw):
        where = f"pairs[{i}]"
        check_keys(t, PAIR_KEYS, where, required=("positive", "negative", "target_words"))
        t = dict(t)
        coeff = _number(t.pop("coeff", 1.0), f"{where} coeff", minimum=-1e300)
        tw = t.pop("target_words")
        word_list(tw, f"{where} target_words")
        try:
            pair = Pair.parse(t, where)
        except ActAddError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        out.append(PadPair(pair, coeff, tw if isinstance(tw, str) else tuple(tw)))
    names = [p.pair.name for p in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"pairs: two pairs share a name ({names}); give them labels.")
    return tuple(out)


def parse(config: dict[str, Any]) -> Spec:
    """Validate everything that needs no model."""
    check_keys(config, KEYS, f"{NAME} config", required=("pairs", "pads", "layers", "prompts"))
    c = dict(config)
    pairs = _pairs(c["pairs"])
    pads = _pad_list(c["pads"], "pads")
    reference = c.get("reference_pad", " ")
    if reference not in pads:
        raise ConfigError(f"reference_pad {reference!r} must be one of pads.")
    if isinstance(c["layers"], str):
        parse_layers(c["layers"], 10**6)
    else:
        number_list(c["layers"], "layers", integer=True)
    prompts = tuple(text_list(c["prompts"], "prompts"))
    if len(prompts) < 2:
        raise ConfigError("prompts: give at least 2 (claims are tested over prompts).")
    controls = word_list(c.get("control_words", []), "control_words")
    ratio = _number(c.get("massive_ratio", 2.0), "massive_ratio")
    (rows,) = number_list([c.get("batch_rows", 256)], "batch_rows", integer=True)
    if rows < 1:
        raise ConfigError("batch_rows must be >= 1.")
    surgery = c.get("surgery", {})
    check_keys(surgery, SURGERY_KEYS, "[surgery]")
    s_pads = _pad_list(surgery.get("pads", [reference]), "[surgery] pads")
    missing = [p for p in s_pads if p not in pads]
    if missing:
        raise ConfigError(f"[surgery] pads {missing!r} must also be in pads.")
    from actadd.studies.pad_confound.analysis import SURGERY_METHODS

    methods = tuple(surgery.get("methods", SURGERY_METHODS))
    bad = [m for m in methods if m not in SURGERY_METHODS]
    if bad or not methods:
        raise ConfigError(f"[surgery] methods {bad or methods!r}: allowed {SURGERY_METHODS}.")
    names = [p.pair.name for p in pairs]
    attention = c.get("attention")
    if attention is not None:
        check_keys(attention, ATTENTION_KEYS, "[attention]", required=("pair",))
        if attention["pair"] not in names:
            raise ConfigError(f"[attention] pair {attention['pair']!r} is not one of {names}.")
        _pad_list(attention.get("pads", [reference]), "[attention] pads")
        number_list(attention.get("inject_layers", [4]), "[attention] inject_layers", integer=True)
    generation = c.get("generation")
    if generation is not None:
        check_keys(generation, GENERATION_KEYS, "[generation]", required=("pair", "layers"))
        if generation["pair"] not in names:
            raise ConfigError(f"[generation] pair {generation['pair']!r} is not one of {names}.")
        gp = _pad_list(generation.get("pads", [reference]), "[generation] pads")
        if reference not in gp:
            raise ConfigError("[generation] pads must include the reference_pad (the comparison).")
        number_list(generation["layers"], "[generation] layers", integer=True)
        if "prompts" in generation:
            text_list(generation["prompts"], "[generation] prompts")
        _generation_spec(generation, pairs, reference)  # the sweep engine's own checks
    return Spec(
        c,
        pairs,
        pads,
        reference,
        c["layers"],
        prompts,
        controls,
        ratio,
        rows,
        s_pads,
        methods,
        attention,
        generation,
    )


def _generation_spec(g: dict[str, Any], pairs: tuple[PadPair, ...], reference):
    """The sweep spec whose pairs are the generation pair once per pad (label ``pad '...'``)."""
    from actadd.sweeps.spec import GenerationSpec, SweepSpec

    pp = next(p for p in pairs if p.pair.name == g["pair"])
    gkeys = ("n_samples", "max_new_tokens", "seed", "temperature", "top_p", "freq_penalty")
    gen = {k: g[k] for k in gkeys if k in g}
    topic = g.get("topic_words", pp.target_words)
    try:
        return SweepSpec(
            name="pad_word_count",
            pairs=tuple(
                Pair(pp.pair.positive, pp.pair.negative, pad_label(pad), pad)
                for pad in g.get("pads", [reference])
            ),
            layers=tuple(g["layers"]),
            coeffs=(float(g.get("coeff", pp.coeff)),),
            prompts=tuple(g.get("prompts", ())) or ("I went up to my friend and said",),
            target_words=pp.target_words,
            generation=GenerationSpec(
                **gen,
                topic_words=topic if isinstance(topic, str) else tuple(topic),
                sentiment=False,
            ),
            next_token=False,
            batch_rows=512,
        )
    except TypeError as exc:
        raise ConfigError(f"[generation]: {exc}") from None


def pad_label(pad: str | int) -> str:
    """A pad as it appears in tables: its ``repr`` (``"' '"``, ``"'\\n'"``), or ``id 0``."""
    return f"id {pad}" if isinstance(pad, int) else repr(pad)


# ---------------------------------------------------------------------- the run


def run_pad_confound(spec: Spec, model, run) -> None:
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
    ids = [encode(model, t) for t in spec.prompts]
    batch = PrefixBatch(model, ids, max_rows=spec.batch_rows)
    batch.prefetch(layers)
    stats = {layer: P.ordinary_stats(batch, layer) for layer in layers}
    controls = target_token_ids(model, spec.control_words, strict=True)
    effects, norms, surgery = [], [], []
    steps = len(spec.pairs) * len(layers)
    with torch.no_grad(), progress_bar(steps, "pad effects", "layer") as bar:
        for pp in spec.pairs:
            pair = pp.pair
            targets = target_token_ids(model, word_list(pp.target_words), strict=False)
            vectors, labels = {layer: [] for layer in layers}, []
            for pad in spec.pads:
                vs = SteeringVector.from_pair_layers(
                    model, pair.positive, pair.negative, layers, pp.coeff, pad_token=pad
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
                        model, pair, layers, pp.coeff, pad, method, stats, ratio=spec.ratio
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
    ranking = P.pad_ranking(
        effects_df, norms_df[norms_df.variant == P.PLAIN], massive_ratio=spec.ratio
    )
    run.write_table("pad_ranking", ranking)
    run.write_json(
        "recommendation",
        dict(
            rule="among pads whose row never exceeds massive_ratio × the typical norm (any pair,"
            " any layer), the largest mean effect over pairs, layers and prompts",
            massive_ratio=spec.ratio,
            recommended=P.recommend_pad(ranking),
            reference=pad_label(spec.reference),
        ),
    )
    if spec.attention:
        ctx, act = _attention(spec, model, ids, single_token_id)
        run.write_table("attention_context", ctx, ("parquet", "csv"))
        run.write_table("attention_actadd", act, ("parquet", "csv"))
    if spec.generation:
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


def _attention(spec: Spec, model, ids: list[list[int]], single_token_id):
    """``attention_context``: each pad as a real token at position 1 (and the plain prompt,
    whose position 1 is an ordinary token); ``attention_actadd``: the attention pair's
    pad-row position in the steered prompt, unsteered and under ActAdd per pad and layer."""
    from actadd.core.steering import Placement
    from actadd.core.vectors import SteeringVector
    from actadd.studies.pad_confound import analysis as P

    a = spec.attention
    pads = a.get("pads", [spec.reference])
    inject = a.get("inject_layers", [4])
    pp = next(p for p in spec.pairs if p.pair.name == a["pair"])
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

    pad_ids = [single_token_id(model, p) for p in spec.pads]
    vecs = {
        pad: SteeringVector.from_pair_layers(
            model, pp.pair.positive, pp.pair.negative, inject, pp.coeff, pad_token=pad
        )
        for pad in pads
    }
    for i, toks in enumerate(ids):
        m = P.attention_to(model, [toks[:1] + [pid] + toks[1:] for pid in pad_ids], 1)
        for j, pad in enumerate(spec.pads):
            one = {k: v[j : j + 1] for k, v in m.items()}
            tidy(ctx, dict(pad=pad_label(pad)), one, i)
        tidy(ctx, dict(pad=ORDINARY), P.attention_to(model, [toks], 1), i)
        # ActAdd: one row per condition, each steered on its own row only
        conds = [(UNSTEERED, -1, None)] + [(p, L, vecs[p][L]) for p in pads for L in inject]
        key = P.pair_tokens(model, pp.pair, spec.reference).pad_rows[0]
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


def _word_count(spec: Spec, model, P):
    """Topic words in sampled completions, one sweep-engine unit per (pad, layer) and the
    unsteered baseline, every arm on the same (prompt, sample) seeds."""
    from actadd.core.vectors import SteeringVector
    from actadd.sweeps.engine import Unit, generation_unit

    g = _generation_spec(spec.generation, spec.pairs, spec.reference)
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


# ---------------------------------------------------------------------- claims


def _t_claim(exp: str, cid: str, statement: str, x, y, numbers: str, family: str):
    """A claim that ``x`` exceeds ``y`` (paired over prompts, Student t)."""
    from actadd.lab.claims import paired_t_claim

    return paired_t_claim(
        x, y, experiment=exp, id=cid, statement=statement, numbers=numbers, family=family
    )


def claims(run) -> list:
    """The kind's findings (before Benjamini–Hochberg, which runs within each family):

    - *pad-row norm predicts the loss of steering*: the slope of the effect on log2 of the
      pad-row norm over the typical norm, within (pair, layer), over every pad, pooled and
      per layer (sign −1);
    - *surgery restores steering*: per (pair, method, layer), the surgered reference pad's
      effect exceeds the plain reference pad's (paired t over prompts);
    - *the reference pad is an attention sink*: per layer, mean attention (over heads) from
      later positions to the pad placed at position 1 exceeds that to an ordinary token
      there (paired t over prompts);
    - *ActAdd moves attention to the pad-row position*: per (pad, inject layer), the mean
      change over layers ≥ the inject layer and heads (paired t over prompts, two-sided);
    - *word count*: per (pad, layer), more completions with a topic word than with the
      reference pad (exact McNemar on the paired seeds), and the slope of the topic rate on
      the pad-row norm within layers.
    """
    from actadd.lab.claims import Claim, Paired, arm, binary_claim
    from actadd.studies.pad_confound.analysis import PLAIN, norm_regression

    exp = run.config.get("name") or run.out.name
    ref = pad_label(run.config.get("reference_pad", " "))
    out: list = []
    eff = run.read_table("effects", keep_default_na=False, na_values=[""])
    norms = run.read_table("norms", keep_default_na=False, na_values=[""])
    plain = eff[eff.variant == PLAIN]
    cells = plain.groupby(["pair", "layer", "pad"], as_index=False)[["effect"]].mean()
    cells = cells.merge(norms[norms.variant == PLAIN], on=["pair", "layer", "pad"])
    n_pads = cells.pad.nunique()

    def reg_claim(d, strata, cid, where, family, y="effect", unit_note="nats"):
        r = norm_regression(d, strata=strata, y=y)
        return Claim(
            experiment=exp,
            id=cid,
            statement=f"{where}: a larger pad-row norm predicts a smaller steering effect",
            estimate=r["slope"],
            lo=r["lo"],
            hi=r["hi"],
            p=r["p"],
            test="permutation of pads (within-stratum slope); bootstrap over pads",
            n=f"{r['n_cells']} cells: {r['n_units']} pads × {r['n_strata']} strata",
            numbers=f"slope {r['slope']:+.3f} {unit_note} per doubling of the pad-row norm; "
            f"partial r {r['r']:+.2f}",
            sign=-1,
            family=family,
        )

    if n_pads >= 3:
        out.append(
            reg_claim(
                cells,
                ["pair", "layer"],
                "norm_slope:pooled",
                "all pairs and layers",
                "pad-row norm → effect (pooled)",
            )
        )
        for layer, d in cells.groupby("layer"):
            if d.pad_norm.std() > 0:
                out.append(
                    reg_claim(
                        d,
                        ["pair"],
                        f"norm_slope:L{layer}",
                        f"L{layer}, all pairs",
                        "pad-row norm → effect, per layer",
                    )
                )
    keys = ["pair", "layer", "prompt_index"]
    base = plain[plain.pad == ref][keys + ["effect"]]
    for (pair, method, layer), d in eff[(eff.variant != PLAIN) & (eff.pad == ref)].groupby(
        ["pair", "variant", "layer"]
    ):
        m = d[keys + ["effect"]].merge(base, on=keys, suffixes=("_s", "_p"))
        out.append(
            _t_claim(
                exp,
                f"surgery:{method}:{pair}:L{layer}",
                f"{pair} at L{layer}: {method} on the {ref} pad row raises the steering "
                f"effect over the plain {ref} pad",
                m.effect_s,
                m.effect_p,
                f"effect {m.effect_s.mean():+.2f} vs {m.effect_p.mean():+.2f} nats",
                f"surgery {method} restores steering",
            )
        )
    if run.has_table("attention_context"):
        ctx = run.read_table("attention_context", keep_default_na=False, na_values=[""])
        per = ctx.groupby(["pad", "prompt_index", "layer"], as_index=False).mass_key.mean()
        a = per[per.pad == ref]
        b = per[per.pad == ORDINARY]
        for layer, d in a.merge(b, on=["prompt_index", "layer"], suffixes=("_p", "_o")).groupby(
            "layer"
        ):
            out.append(
                _t_claim(
                    exp,
                    f"sink:L{layer}",
                    f"L{layer}: later positions attend more to a {ref} token at position 1 "
                    "than to an ordinary token there (mean over heads)",
                    d.mass_key_p,
                    d.mass_key_o,
                    f"attention mass {d.mass_key_p.mean():.3f} vs {d.mass_key_o.mean():.3f}",
                    f"{ref} is an attention sink",
                )
            )
        act = run.read_table("attention_actadd", keep_default_na=False, na_values=[""])
        per = act.groupby(["pad", "inject_layer", "prompt_index", "layer"], as_index=False)
        per = per.mass_key.mean()
        un = per[per.inject_layer < 0][["prompt_index", "layer", "mass_key"]]
        for (pad, inj), d in per[per.inject_layer >= 0].groupby(["pad", "inject_layer"]):
            d = d[d.layer >= inj].merge(un, on=["prompt_index", "layer"], suffixes=("", "_u"))
            d = d.groupby("prompt_index")[["mass_key", "mass_key_u"]].mean()
            out.append(
                _t_claim(
                    exp,
                    f"actadd_attention:{pad}:L{inj}",
                    f"ActAdd at L{inj} (pad {pad}) raises the attention later positions pay "
                    "to the pad-row position (layers ≥ the injection)",
                    d.mass_key,
                    d.mass_key_u,
                    f"mass {d.mass_key.mean():.3f} vs {d.mass_key_u.mean():.3f} unsteered",
                    "ActAdd moves attention to the pad row",
                )
            )
    if run.has_table("word_count"):
        wc = run.read_table("word_count", keep_default_na=False, na_values=[""])
        wc = wc.assign(pad=wc.pair.str.removeprefix("pad "))
        steered = wc[wc.layer >= 0]
        for (pad, layer), d in steered.groupby(["pad", "layer"]):
            if pad == ref:
                continue
            refd = steered[(steered.pad == ref) & (steered.layer == layer)]
            pairs = Paired.join(arm(d, "topic_any"), arm(refd, "topic_any"))
            out.append(
                binary_claim(
                    pairs,
                    confirmatory=False,
                    experiment=exp,
                    id=f"word_count:{pad}:L{layer}",
                    statement=f"at L{layer}, padding with {pad} gives more completions with a "
                    f"topic word than padding with {ref}",
                    family=f"word count: pad vs {ref}",
                )
            )
        rate = steered[steered.metric == "topic_any"].groupby(["layer", "pad"], as_index=False)
        rate = rate.agg(rate=("value", "mean"), pad_norm=("pad_norm", "mean"))
        # within a layer, log2(norm / typical) and log2(norm) differ by a constant
        rate["log2_norm_ratio"] = np.log2(rate.pad_norm)
        if rate.pad.nunique() >= 3:
            out.append(
                reg_claim(
                    rate,
                    ["layer"],
                    "word_count_norm_slope",
                    "word count, all layers",
                    "pad-row norm → word count",
                    y="rate",
                    unit_note="(fraction)",
                )
            )
    return out


class PadConfoundKind(BaseKind):
    name = NAME
    description = "the pad confound: pad-row norm vs steering, surgery, attention, default pad"

    def parse(self, config: dict[str, Any]) -> Spec:
        return parse(config)

    def saved_config(self, spec: Spec) -> dict[str, Any]:
        return {**spec.config, "kind": NAME}

    def check(self, spec: Spec, model) -> None:
        from actadd.core.metrics import target_token_ids
        from actadd.runtime.tokens import encode, single_token_id

        n = model.cfg.n_layers
        check_layers(parse_layers(spec.layers, n), n, "layers")
        try:
            for p in spec.pads:
                single_token_id(model, p)
        except ActAddError as exc:
            raise ConfigError(f"pads: {exc}") from None
        from actadd.studies.pad_confound.analysis import pair_tokens

        for pp in spec.pairs:
            if pair_tokens(model, pp.pair, spec.reference).padded_side < 0:
                raise ConfigError(
                    f"pair {pp.pair.name} has prompts of one length: it has no pad row. "
                    "Use pairs whose sides differ in length."
                )
            if not target_token_ids(model, word_list(pp.target_words), strict=False):
                raise ConfigError(f"pair {pp.pair.name}: no target word is one token.")
        longest = max(
            len(pair_tokens(model, pp.pair, spec.reference).positive) for pp in spec.pairs
        )
        for text in spec.prompts:
            if len(encode(model, text)) < longest:
                raise ConfigError(
                    f"prompt {text!r} is {len(encode(model, text))} tokens (leading token "
                    f"included), shorter than the longest pair's {longest} rows: front "
                    "injection needs a prompt at least as long as the vector."
                )
        if spec.control_words:
            target_token_ids(model, spec.control_words, strict=True)
        else:
            raise ConfigError("control_words: give a list of single-token words.")
        if spec.attention:
            check_layers(
                spec.attention.get("inject_layers", [4]), n - 1, "[attention] inject_layers"
            )
        if spec.generation:
            g = _generation_spec(spec.generation, spec.pairs, spec.reference)
            g.validate(model)
            check_layers(spec.generation["layers"], n, "[generation] layers")

    def run(self, spec: Spec, model, run) -> None:
        run_pad_confound(spec, model, run)

    def claims(self, run) -> list:
        return claims(run)

    def figures(self, run) -> list[Path]:
        from actadd.studies.pad_confound.figures import pad_figures

        tables = {
            name: run.read_table(name, keep_default_na=False, na_values=[""])
            for name in ("effects", "norms", "attention_context", "attention_actadd", "word_count")
            if run.has_table(name)
        }
        return pad_figures(tables, run.config, run.figures)


KIND = PadConfoundKind()
