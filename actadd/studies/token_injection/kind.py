"""Experiment kind ``token_injection``: is a steering vector "just injecting extra tokens"?

Runs the conditions of :mod:`actadd.studies.token_injection.conditions` for every pair of the
config,
compares them with ActAdd (:func:`actadd.studies.token_injection.comparison.compare_conditions`),
and adds
the vectors' diagnostics (norm ratios, embedding cosines, logit lens).

Config (``experiments/token_injection.toml``): ``[[pairs]]`` tables
(:func:`actadd.studies.token_injection.conditions.pairs_from_config`), ``[settings]``
(:class:`actadd.studies.token_injection.conditions.Settings`), optional ``[diagnostics]``
(``layers``,
``top_k``) and ``only_pairs`` (run a subset, e.g. for ``--quick``).

Tables: ``results.parquet`` (one row per pair × layer × condition × text), ``summary.csv``
(:func:`~actadd.studies.token_injection.summaries.layer_summary`), ``dose_summary.csv``,
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
from actadd.lab.kinds import BaseKind

KEYS = (
    "name",
    "description",
    "model",
    "pairs",
    "only_pairs",
    "settings",
    "diagnostics",
    "concepts",
    "specificity",
    "generation",
)
CONCEPT_KEYS = ("words", "coeff", "pad_token")
SPECIFICITY_KEYS = (
    "layers",
    "null_words",
    "null_draws",
    "null_draws_per_prompt",
    "null_coeff",
    "chunk",
)
GENERATION_KEYS = ("pairs", "layer", "prompts", "samples", "max_new_tokens", "seed")
DATA_PREFIX = "data:"


@dataclass(frozen=True)
class Spec:
    """A validated token-injection config."""

    config: dict[str, Any]
    pairs: list
    settings: Any  # actadd.studies.token_injection.conditions.Settings
    diag_layers: list[int]
    top_k: int
    specificity: dict[str, Any] | None = None
    generation: dict[str, Any] | None = None


def _prompts(raw: Any) -> Any:
    """``"data:<name>"`` names a prompt file shipped in ``actadd/data`` (its ``prompts``);
    ``"data:<name>:N"`` its first ``N`` prompts."""
    if not (isinstance(raw, str) and raw.startswith(DATA_PREFIX)):
        return raw
    import json
    from importlib import resources

    name, _, count = raw[len(DATA_PREFIX) :].partition(":")
    path = resources.files("actadd.data") / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"prompts = {raw!r}: no file actadd/data/{name}.json.")
    prompts = json.loads(path.read_text(encoding="utf-8"))["prompts"]
    if not count:
        return prompts
    if not count.isdigit() or not 1 <= int(count) <= len(prompts):
        raise ConfigError(
            f"prompts = {raw!r}: after the name, ':N' takes the first N prompts, "
            f"1 <= N <= {len(prompts)}."
        )
    return prompts[: int(count)]


def _int(table: dict, key: str, default: int, where: str, low: int = 0) -> int:
    (v,) = number_list([table.get(key, default)], f"{where} {key}", integer=True)
    if v < low:
        raise ConfigError(f"{where} {key} must be >= {low}, got {v}.")
    return int(v)


class TokenInjectionKind(BaseKind):
    name = "token_injection"
    description = "ActAdd vs token injection, embeddings, transplants and controls"

    def parse(self, config: dict[str, Any]) -> Spec:
        from actadd.studies.token_injection.conditions import Settings, pairs_from_config
        from actadd.studies.token_injection.specificity import concept_pairs

        check_keys(config, KEYS, "token_injection config", required=("settings",))
        if "pairs" not in config and "concepts" not in config:
            raise ConfigError("token_injection config needs [[pairs]] or [concepts].")
        pairs = pairs_from_config(config["pairs"]) if config.get("pairs") else []
        if "concepts" in config:
            c = dict(config["concepts"])
            check_keys(c, CONCEPT_KEYS, "[concepts]", required=("words", "coeff"))
            (coeff,) = number_list([c["coeff"]], "[concepts] coeff")
            pairs += concept_pairs(list(c["words"]), coeff, c.get("pad_token", " "))
        names = [p.name for p in pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"Pair and concept names must be unique, got {names}.")
        only = config.get("only_pairs")
        if only:
            missing = sorted(set(only) - set(names))
            if missing:
                raise ConfigError(f"only_pairs names unknown pairs {missing}.")
            pairs = [p for p in pairs if p.name in only]
            pairs = [
                p if p.sum_with in (None, *only) else dataclasses.replace(p, sum_with=None)
                for p in pairs
            ]
        raw = dict(config["settings"])
        if "prompts" in raw:
            raw["prompts"] = _prompts(raw["prompts"])
        settings = Settings.from_dict(raw)
        diag = dict(config.get("diagnostics", {}))
        check_keys(diag, ("layers", "top_k"), "[diagnostics]")
        if "layers" in diag:
            number_list(diag["layers"], "[diagnostics] layers", integer=True)
        (top_k,) = number_list([diag.get("top_k", 10)], "[diagnostics] top_k", integer=True)
        if top_k < 1:
            raise ConfigError(f"[diagnostics] top_k must be >= 1, got {top_k}.")
        layers = diag.get("layers") or list(settings.reference_layers())
        spec_t = self._specificity(config, pairs, settings)
        gen = self._generation(config, pairs, settings)
        return Spec(config, pairs, settings, layers, top_k, spec_t, gen)

    @staticmethod
    def _specificity(config, pairs, settings) -> dict[str, Any] | None:
        from actadd.studies.token_injection.conditions import check_null_draws

        if "specificity" not in config:
            return None
        t = dict(config["specificity"])
        where = "[specificity]"
        check_keys(t, SPECIFICITY_KEYS, where, required=("layers", "null_words"))
        layers = number_list(t["layers"], f"{where} layers", integer=True)
        words = [w for w in t["null_words"] if isinstance(w, str) and w.strip()]
        if len(words) != len(t["null_words"]) or not words:
            raise ConfigError(f"{where} null_words must be a non-empty list of words.")
        if not settings.control_words:
            raise ConfigError(f"{where} needs [settings] control_words (the control set).")
        targets = {w.strip().lower() for p in pairs for w in p.target_words}
        overlap = sorted({w.strip().lower() for w in words} & targets)
        if overlap:
            raise ConfigError(f"{where} null_words repeat concept target words: {overlap}.")
        if len(pairs) < 2:
            raise ConfigError(f"{where} needs at least 2 pairs or concepts.")
        concepts = config.get("concepts", {})
        (coeff,) = number_list([t.get("null_coeff", concepts.get("coeff", 1.0))], where)
        shared = _int(t, "null_draws", 0, where)
        per_prompt = _int(t, "null_draws_per_prompt", 0, where)
        check_null_draws(shared, per_prompt, where)
        return dict(
            layers=layers,
            null_words=words,
            null_draws=shared,
            null_draws_per_prompt=per_prompt,
            null_coeff=coeff,
            null_pad=concepts.get("pad_token", " "),
            chunk=_int(t, "chunk", 16, where, low=1),
        )

    @staticmethod
    def _generation(config, pairs, settings) -> dict[str, Any] | None:
        if "generation" not in config:
            return None
        t = dict(config["generation"])
        where = "[generation]"
        check_keys(t, GENERATION_KEYS, where, required=("pairs", "layer"))
        names = {p.name for p in pairs}
        unknown = sorted(set(t["pairs"]) - names)
        if unknown:
            raise ConfigError(f"{where} pairs names unknown pairs {unknown}.")
        n_prompts = _int(t, "prompts", len(settings.prompts), where, low=1)
        if n_prompts > len(settings.prompts):
            raise ConfigError(
                f"{where} prompts = {n_prompts}, but [settings] has {len(settings.prompts)}."
            )
        return dict(
            pairs=[p for p in pairs if p.name in t["pairs"]],
            layer=_int(t, "layer", 0, where),
            prompts=list(settings.prompts[:n_prompts]),
            n_samples=_int(t, "samples", 4, where, low=1),
            max_new_tokens=_int(t, "max_new_tokens", 30, where, low=1),
            seed=_int(t, "seed", 0, where),
        )

    def saved_config(self, spec: Spec) -> dict[str, Any]:
        return {**spec.config, "kind": self.name}

    def check(self, spec: Spec, model) -> None:
        spec.settings.check_model(model)
        check_layers(spec.diag_layers, model.cfg.n_layers, "[diagnostics] layers")
        if spec.specificity:
            check_layers(spec.specificity["layers"], model.cfg.n_layers, "[specificity] layers")
        if spec.generation:
            check_layers([spec.generation["layer"]], model.cfg.n_layers, "[generation] layer")

    def run(self, spec: Spec, model, run) -> None:
        import torch

        from actadd.core.diagnostics import logit_lens_across_layers, vector_diagnostics
        from actadd.studies.token_injection.comparison import compare_conditions
        from actadd.studies.token_injection.summaries import dose_response_summary, layer_summary

        pairs, settings, diag_layers = spec.pairs, spec.settings, spec.diag_layers
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
        tables.update(self._v2_tables(spec, model))
        for name, table in tables.items():
            if "model" not in table:
                table.insert(0, "model", model.cfg.model_name)
            run.write_table(name, table, ("parquet",) if name in LARGE_TABLES else ("csv",))

    @staticmethod
    def _v2_tables(spec: Spec, model) -> dict[str, pd.DataFrame]:
        """The specificity matrix with its nulls, and the generation-level comparison."""
        import torch

        from actadd.studies.token_injection.specificity import specificity_matrix
        from actadd.studies.token_injection.topic_rate import topic_rates

        out: dict[str, pd.DataFrame] = {}
        with torch.no_grad():
            if spec.specificity:
                t = spec.specificity
                res = specificity_matrix(
                    model,
                    spec.settings.prompts,
                    spec.pairs,
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
        if spec.generation:
            g = dict(spec.generation)
            out["topic_rate"] = topic_rates(model, g.pop("pairs"), g.pop("layer"), **g)
        return out

    def claims(self, run) -> list:
        from actadd.studies.token_injection.claims import v2_claims

        return claims(run) + v2_claims(run)

    def figures(self, run) -> list[Path]:
        from actadd.studies.token_injection.figures import experiment_figures

        diag = None
        if run.has_table("diagnostics"):
            diag = run.read_table("diagnostics", keep_default_na=False, na_values=[""])
        extra = {
            name: run.read_table(name)
            for name in ("null_draws", "specificity", "specificity_nulls")
            if run.has_table(name)
        }
        return experiment_figures(
            run.read_table("summary"), diag, run.config, run.figures, extra=extra
        )


# Per-row tables of a full v2 run run to tens of MB as CSV (results 14 MB, the specificity
# draws and nulls 9 MB each at 23 pairs × 50 prompts): written as Parquet only, so a
# reference run can be committed; the summaries stay CSV for reading in a browser.
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
    for (pair, layer), d in act_rows.groupby(["pair", "layer"], sort=False):
        v = d.target_logprob_delta.to_numpy(float)
        out.append(
            paired_t_claim(
                v,
                np.zeros_like(v),
                test="t over prompts",
                experiment=exp,
                id=f"target_up:{pair}:L{layer}",
                statement=f"{pair} at L{layer}: ActAdd raises the target log-probability",
                numbers=f"Δ log p(target) {v.mean():+.2f} nats",
                family="ActAdd raises its target",
            )
        )
    out += _pad_claims(run, act_rows, exp)
    dose = df[(df.condition == "coeff") & np.isclose(df.scale, -1.0)]
    for (pair, layer), d in dose.groupby(["pair", "layer"], sort=False):
        v = d.target_logprob_delta.to_numpy(float)
        out.append(
            paired_t_claim(
                v,
                np.zeros_like(v),
                test="t over prompts",
                experiment=exp,
                id=f"negative_multiple:{pair}:L{layer}",
                statement=f"{pair} at L{layer}, −1 × c lowers the target log-probability "
                "(the reverse of +1 × c)",
                numbers=f"Δ log p(target) {v.mean():+.2f} nats",
                sign=-1,
                family="negative multiples",
            )
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
