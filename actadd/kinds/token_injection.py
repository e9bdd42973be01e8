"""Experiment kind ``token_injection``: is a steering vector "just injecting extra tokens"?

Runs the conditions of :mod:`actadd.analysis.conditions` for every pair of the config,
compares them with ActAdd (:func:`actadd.analysis.comparison.compare_conditions`), and adds
the vectors' diagnostics (norm ratios, embedding cosines, logit lens).

Config (``experiments/token_injection.toml``): ``[[pairs]]`` tables
(:func:`actadd.analysis.conditions.pairs_from_config`), ``[settings]``
(:class:`actadd.analysis.conditions.Settings`), optional ``[diagnostics]`` (``layers``,
``top_k``) and ``only_pairs`` (run a subset, e.g. for ``--quick``).

Tables: ``results.csv`` (one row per pair × layer × condition × text), ``summary.csv``
(:func:`~actadd.analysis.summaries.layer_summary`), ``dose_summary.csv``,
``diagnostics.csv``, ``logit_lens.csv``; figures in ``figures/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.config import check_keys, check_layers, number_list
from actadd.errors import ConfigError
from actadd.kinds import BaseKind

KEYS = ("name", "description", "model", "pairs", "only_pairs", "settings", "diagnostics")


@dataclass(frozen=True)
class Spec:
    """A validated token-injection config."""

    config: dict[str, Any]
    pairs: list
    settings: Any  # actadd.analysis.conditions.Settings
    diag_layers: list[int]
    top_k: int


class TokenInjectionKind(BaseKind):
    name = "token_injection"
    description = "ActAdd vs token injection, embeddings, transplants and controls"

    def parse(self, config: dict[str, Any]) -> Spec:
        from actadd.analysis.conditions import Settings, pairs_from_config

        check_keys(config, KEYS, "token_injection config", required=("pairs", "settings"))
        pairs = pairs_from_config(config["pairs"])
        only = config.get("only_pairs")
        if only:
            missing = sorted(set(only) - {p.name for p in pairs})
            if missing:
                raise ConfigError(f"only_pairs names unknown pairs {missing}.")
            pairs = [p for p in pairs if p.name in only]
            pairs = [
                p if p.sum_with in (None, *only) else dataclasses.replace(p, sum_with=None)
                for p in pairs
            ]
        settings = Settings.from_dict(dict(config["settings"]))
        diag = dict(config.get("diagnostics", {}))
        check_keys(diag, ("layers", "top_k"), "[diagnostics]")
        if "layers" in diag:
            number_list(diag["layers"], "[diagnostics] layers", integer=True)
        (top_k,) = number_list([diag.get("top_k", 10)], "[diagnostics] top_k", integer=True)
        if top_k < 1:
            raise ConfigError(f"[diagnostics] top_k must be >= 1, got {top_k}.")
        layers = diag.get("layers") or list(settings.reference_layers())
        return Spec(config, pairs, settings, layers, top_k)

    def saved_config(self, spec: Spec) -> dict[str, Any]:
        return {**spec.config, "kind": self.name}

    def check(self, spec: Spec, model) -> None:
        spec.settings.check_model(model)
        check_layers(spec.diag_layers, model.cfg.n_layers, "[diagnostics] layers")

    def run(self, spec: Spec, model, run) -> None:
        import torch

        from actadd.analysis.comparison import compare_conditions
        from actadd.analysis.diagnostics import logit_lens_across_layers, vector_diagnostics
        from actadd.analysis.summaries import dose_response_summary, layer_summary

        pairs, settings, diag_layers = spec.pairs, spec.settings, spec.diag_layers
        with torch.no_grad():
            df = compare_conditions(model, pairs, settings)
            diag, lens = [], []
            for p in pairs:
                kw = dict(equalize=p.equalize, pad_token=p.pad_token)
                d = vector_diagnostics(
                    model,
                    p.positive,
                    p.negative,
                    diag_layers,
                    settings.prompts,
                    coeff=p.coeff,
                    **kw,
                )
                lens_p = logit_lens_across_layers(
                    model, p.positive, p.negative, diag_layers, spec.top_k, **kw
                )
                for t in (d, lens_p):
                    t.insert(0, "pair", p.name)
                diag.append(d)
                lens.append(lens_p)
        tables = {
            "results": df,
            "summary": layer_summary(df),
            "dose_summary": dose_response_summary(df),
            "diagnostics": pd.concat(diag, ignore_index=True),
            "logit_lens": pd.concat(lens, ignore_index=True),
        }
        for name, table in tables.items():
            if "model" not in table:
                table.insert(0, "model", model.cfg.model_name)
            run.write_table(name, table)

    def claims(self, run) -> list:
        return claims(run)

    def figures(self, run) -> list[Path]:
        from actadd.plots.token_injection import experiment_figures

        diag = None
        if run.has_table("diagnostics"):
            diag = run.read_table("diagnostics", keep_default_na=False, na_values=[""])
        return experiment_figures(run.read_table("summary"), diag, run.config, run.figures)


def claims(run) -> list:
    """Families of claims, each tested over the prompts (t, Benjamini–Hochberg within the
    family):

    - *ActAdd raises its target*: per pair and layer, the target log-probability rises;
    - *a different pad*: per layer, a pair padded with another pad token (``pad_token``)
      raises its target more than the same pair padded with the default ``" "``;

    - *negative multiples reverse the effect*: at −1 × c (the dose layers) the target
      log-probability falls, per pair;
    - *ActAdd resembles prepending p+ beyond a random vector*: per pair and layer, the
      effect similarity of ActAdd to prepending p+ exceeds that of the random vector with
      ActAdd's per-position norms (same prompts).
    """
    from actadd.claims import Claim
    from actadd.stats import paired_t

    df = run.read_table("results")
    df = df[df.prompt_kind == "user"] if "prompt_kind" in df else df
    exp = run.config.get("name") or run.out.name
    out = []
    act_rows = df[df.condition == "actadd"]
    for (pair, layer), d in act_rows.groupby(["pair", "layer"], sort=False):
        v = d.target_logprob_delta.to_numpy(float)
        t = paired_t(v, np.zeros_like(v))
        out.append(
            Claim(
                experiment=exp,
                id=f"target_up:{pair}:L{layer}",
                statement=f"{pair} at L{layer}: ActAdd raises the target log-probability",
                estimate=t["mean"],
                lo=t["lo"],
                hi=t["hi"],
                p=t["p"],
                test="t over prompts",
                n=f"{t['n']} prompts",
                numbers=f"Δ log p(target) {t['mean']:+.2f} nats",
                family="ActAdd raises its target",
            )
        )
    out += _pad_claims(run, act_rows, exp)
    dose = df[(df.condition == "coeff") & np.isclose(df.scale, -1.0)]
    for (pair, layer), d in dose.groupby(["pair", "layer"], sort=False):
        v = d.target_logprob_delta.to_numpy(float)
        t = paired_t(v, np.zeros_like(v))
        out.append(
            Claim(
                experiment=exp,
                id=f"negative_multiple:{pair}:L{layer}",
                statement=f"{pair} at L{layer}, −1 × c lowers the target log-probability "
                "(the reverse of +1 × c)",
                estimate=t["mean"],
                lo=t["lo"],
                hi=t["hi"],
                p=t["p"],
                test="t over prompts",
                n=f"{t['n']} prompts",
                numbers=f"Δ log p(target) {t['mean']:+.2f} nats",
                sign=-1,
                family="negative multiples",
            )
        )
    cols = ["pair", "layer", "prompt_index"]
    act = df[df.condition == "actadd"][cols + ["inject_corr"]]
    rnd = df[df.condition == "random"][cols + ["inject_corr"]]
    both = act.merge(rnd, on=cols, suffixes=("_actadd", "_random"))
    for (pair, layer), d in both.groupby(["pair", "layer"], sort=False):
        t = paired_t(d.inject_corr_actadd, d.inject_corr_random)
        out.append(
            Claim(
                experiment=exp,
                id=f"like_prepend:{pair}:L{layer}",
                statement=f"{pair} at L{layer}: ActAdd's effect resembles prepending p+ more "
                "than a norm-matched random vector's does",
                estimate=t["mean"],
                lo=t["lo"],
                hi=t["hi"],
                p=t["p"],
                test="paired t over prompts",
                n=f"{t['n']} prompts, one random draw",
                numbers=f"similarity {d.inject_corr_actadd.mean():.2f} vs "
                f"{d.inject_corr_random.mean():.2f}",
                family="ActAdd ~ prepend beyond random",
            )
        )
    return out


def _pad_claims(run, act_rows: pd.DataFrame, exp: str) -> list:
    """Pairs that differ only in their pad token: the other pad against ``" "``."""
    from actadd.claims import Claim
    from actadd.stats import paired_t

    pairs = run.config.get("pairs", [])
    out = []
    for p in pairs:
        if not p.get("pad_token"):
            continue
        twin = next(
            (
                q
                for q in pairs
                if not q.get("pad_token")
                and (q["positive"], q["negative"]) == (p["positive"], p["negative"])
            ),
            None,
        )
        if twin is None:
            continue
        a = act_rows[act_rows.pair == p["name"]]
        b = act_rows[act_rows.pair == twin["name"]]
        m = a.merge(b, on=["layer", "prompt_index"], suffixes=("_a", "_b"))
        for layer, d in m.groupby("layer"):
            t = paired_t(d.target_logprob_delta_a, d.target_logprob_delta_b)
            out.append(
                Claim(
                    experiment=exp,
                    id=f"pad:{p['name']}:L{layer}",
                    statement=f"{p['name']} at L{layer}: padding with {p['pad_token']!r} raises "
                    f"the target more than padding with ' '",
                    estimate=t["mean"],
                    lo=t["lo"],
                    hi=t["hi"],
                    p=t["p"],
                    test="paired t over prompts",
                    n=f"{t['n']} prompts",
                    numbers=f"Δ log p(target) {d.target_logprob_delta_a.mean():+.2f} vs "
                    f"{d.target_logprob_delta_b.mean():+.2f} nats",
                    family=f"pad {p['pad_token']!r} vs ' '",
                )
            )
    return out


KIND = TokenInjectionKind()
