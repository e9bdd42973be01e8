"""Experiment kind ``token_injection``: is a steering vector "just injecting extra tokens"?

Runs the conditions of :mod:`actadd.studies.token_injection.conditions` for every pair of the
config, compares them with ActAdd
(:func:`actadd.studies.token_injection.comparison.compare_conditions`), and adds the vectors'
diagnostics (norm ratios, embedding cosines, logit lens).

The config is :class:`~actadd.studies.token_injection.config.TokenInjectionConfig`
(``experiments/token_injection*.toml``): ``[[pairs]]`` and ``[concepts]``, ``[settings]``
(:class:`~actadd.studies.token_injection.settings.Settings`), ``[diagnostics]``,
``[specificity]``, ``[generation]`` and ``only_pairs`` (run a subset, e.g. for ``--quick``).

Tables: ``results.parquet`` (one row per pair × layer × condition × text), ``summary.csv``
(:func:`~actadd.studies.token_injection.summaries.layer_summary`), ``dose_summary.csv``,
``diagnostics.csv``, ``logit_lens.csv``; figures in ``figures/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.studies.common import ConfigKind
from actadd.studies.token_injection.config import TokenInjectionConfig

__all__ = ["KIND", "LARGE_TABLES", "TokenInjectionKind", "claims", "parse"]


def parse(config: dict[str, Any]) -> TokenInjectionConfig:
    """Validate a token-injection config (a TOML table)."""
    return TokenInjectionConfig.from_dict(config)


class TokenInjectionKind(ConfigKind):
    name = "token_injection"
    description = "ActAdd vs token injection, embeddings, transplants and controls"
    config_type = TokenInjectionConfig

    def run(self, spec: TokenInjectionConfig, model, run) -> None:
        import torch

        from actadd.core.diagnostics import logit_lens_across_layers, vector_diagnostics
        from actadd.studies.token_injection.comparison import compare_conditions
        from actadd.studies.token_injection.summaries import dose_response_summary, layer_summary

        pairs, settings, diag_layers = spec.run_pairs, spec.settings, spec.diag_layers
        with torch.no_grad():
            df, nulls = compare_conditions(model, pairs, settings, return_nulls=True)
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
        if settings.null_draws or settings.null_draws_per_prompt:
            tables["null_draws"] = nulls
        tables.update(self._specificity_and_topic_rate_tables(spec, model))
        for name, table in tables.items():
            if "model" not in table:
                table.insert(0, "model", model.cfg.model_name)
            run.write_table(name, table, ("parquet",) if name in LARGE_TABLES else ("csv",))

    @staticmethod
    def _specificity_and_topic_rate_tables(
        spec: TokenInjectionConfig, model
    ) -> dict[str, pd.DataFrame]:
        """The specificity matrix with its nulls, and the generation-level comparison."""
        import torch

        from actadd.studies.token_injection.specificity import specificity_matrix
        from actadd.studies.token_injection.topic_rate import topic_rates

        out: dict[str, pd.DataFrame] = {}
        with torch.no_grad():
            t = spec.specificity_args()
            if t is not None:
                res = specificity_matrix(
                    model,
                    spec.settings.prompts,
                    spec.run_pairs,
                    t["layers"],
                    null_words=t["null_words"],
                    null_coeff=t["null_coeff"],
                    null_pad=t["null_pad"],
                    null_draws=t["null_draws"],
                    null_draws_per_prompt=t["null_draws_per_prompt"],
                    control_words=spec.settings.control_words,
                    seed=spec.settings.seed,
                    chunk=t["chunk"],
                )
                out.update(
                    specificity=res.matrix,
                    specificity_nulls=res.nulls,
                    specificity_draws=res.draws,
                )
        g = spec.generation_args()
        if g is not None:
            out["topic_rate"] = topic_rates(model, g.pop("pairs"), g.pop("layer"), **g)
        return out

    def claims(self, run) -> list:
        from actadd.studies.token_injection.claims import claims_against_controls

        return claims(run) + claims_against_controls(run)

    def figures(self, run) -> list[Path]:
        from actadd.studies.token_injection.figures import experiment_figures

        diag = None
        if run.has_table("diagnostics"):
            diag = run.read_table("diagnostics", keep_default_na=False, na_values=[""])
        extra = {
            name: run.read_table(name)
            for name in ("null_draws", "specificity", "specificity_nulls", "topic_rate")
            if run.has_table(name)
        }
        return experiment_figures(
            run.read_table("summary"), diag, run.config, run.figures, extra=extra
        )


# Per-row tables of a full run (token_injection_v2) come to tens of MB as CSV (results
# 14 MB, the specificity draws and nulls 9 MB each at 23 pairs × 50 prompts): written as
# Parquet only, so a reference run can be committed; the summaries stay CSV for reading in
# a browser.
LARGE_TABLES = frozenset({"results", "null_draws", "specificity_draws", "specificity_nulls"})


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
    from actadd.lab.claims import paired_t_claim

    df = run.read_table("results")
    df = df[df.prompt_kind == "user"] if "prompt_kind" in df else df
    exp = run.config.get("name") or run.out.name
    out = []
    act_rows = df[df.condition == "actadd"]
    out += _target_claims(
        act_rows,
        exp,
        "target_up",
        "{pair} at L{layer}: ActAdd raises the target log-probability",
        family="ActAdd raises its target",
    )
    out += _pad_claims(run, act_rows, exp)
    dose = df[(df.condition == "coeff") & np.isclose(df.scale, -1.0)]
    out += _target_claims(
        dose,
        exp,
        "negative_multiple",
        "{pair} at L{layer}, −1 × c lowers the target log-probability (the reverse of +1 × c)",
        family="negative multiples",
        sign=-1,
    )
    cols = ["pair", "layer", "prompt_index"]
    act = df[df.condition == "actadd"][cols + ["inject_corr"]]
    rnd = df[df.condition == "random"][cols + ["inject_corr"]]
    both = act.merge(rnd, on=cols, suffixes=("_actadd", "_random"))
    for (pair, layer), d in both.groupby(["pair", "layer"], sort=False):
        out.append(
            paired_t_claim(
                d.inject_corr_actadd,
                d.inject_corr_random,
                n_note=", one random draw",
                experiment=exp,
                id=f"like_prepend:{pair}:L{layer}",
                statement=f"{pair} at L{layer}: ActAdd's effect resembles prepending p+ more "
                "than a norm-matched random vector's does",
                numbers=f"similarity {d.inject_corr_actadd.mean():.2f} vs "
                f"{d.inject_corr_random.mean():.2f}",
                family="ActAdd ~ prepend beyond random",
            )
        )
    return out


def _target_claims(rows: pd.DataFrame, exp: str, cid: str, statement: str, **kw: Any) -> list:
    """Per (pair, layer) of ``rows``: the target log-probability moves (t over prompts
    against 0; up, or down with ``sign=-1``). ``statement`` has ``{pair}`` and ``{layer}``."""
    from actadd.lab.claims import paired_t_claim

    out = []
    for (pair, layer), d in rows.groupby(["pair", "layer"], sort=False):
        v = d.target_logprob_delta.to_numpy(float)
        out.append(
            paired_t_claim(
                v,
                np.zeros_like(v),
                test="t over prompts",
                experiment=exp,
                id=f"{cid}:{pair}:L{layer}",
                statement=statement.format(pair=pair, layer=layer),
                numbers=f"Δ log p(target) {v.mean():+.2f} nats",
                **kw,
            )
        )
    return out


def _pad_claims(run, act_rows: pd.DataFrame, exp: str) -> list:
    """Pairs that differ only in their pad token: the other pad against ``" "``."""
    from actadd.lab.claims import paired_t_claim

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
            out.append(
                paired_t_claim(
                    d.target_logprob_delta_a,
                    d.target_logprob_delta_b,
                    experiment=exp,
                    id=f"pad:{p['name']}:L{layer}",
                    statement=f"{p['name']} at L{layer}: padding with {p['pad_token']!r} raises "
                    f"the target more than padding with ' '",
                    numbers=f"Δ log p(target) {d.target_logprob_delta_a.mean():+.2f} vs "
                    f"{d.target_logprob_delta_b.mean():+.2f} nats",
                    family=f"pad {p['pad_token']!r} vs ' '",
                )
            )
    return out


KIND = TokenInjectionKind()
