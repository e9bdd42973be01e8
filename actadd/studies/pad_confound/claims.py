"""The ``pad_confound`` kind's claims, computed from a run's saved tables alone (see
:func:`claims`)."""

from __future__ import annotations

import numpy as np

from actadd.studies.common import result_claim
from actadd.studies.pad_confound.config import pad_label
from actadd.studies.pad_confound.run import ORDINARY

__all__ = ["claims"]


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
    from actadd.lab.claims import Paired, arm, binary_claim
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
        return result_claim(
            r,
            "slope",
            experiment=exp,
            id=cid,
            statement=f"{where}: a larger pad-row norm predicts a smaller steering effect",
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
