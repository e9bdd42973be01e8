"""Experiment kind ``demo``: steered vs unsteered completions of one pair, side by side.

Config::

    kind = "demo"
    pair = ["Love", "Hate"]      # or {positive, negative, label, pad_token}
    layer = 2
    coeff = 5.0
    align = "front"
    prompts = ["I hate you because"]
    n_samples = 3
    max_new_tokens = 40
    seed = 0

Table: ``completions.csv`` (prompt, sample, unsteered, steered; same seeds).
"""

from __future__ import annotations

from typing import Any

from actadd.config import Pair, check_keys, check_layers, coefficients, integer, text_list
from actadd.errors import ActAddError, ConfigError
from actadd.lab.kinds import BaseKind
from actadd.sweeps.spec import MAX_SAMPLES

KEYS = ("name", "model", "pair", "layer", "coeff", "align")
KEYS += ("prompts", "n_samples", "max_new_tokens", "seed")


class DemoKind(BaseKind):
    name = "demo"
    description = "steered vs unsteered completions for one pair, side by side"

    def parse(self, config: dict[str, Any]) -> dict[str, Any]:
        check_keys(config, KEYS, "demo config", required=("pair", "layer", "coeff", "prompts"))
        c = {"align": "front", "n_samples": 3, "max_new_tokens": 40, "seed": 0, **config}
        pair = Pair.parse(c["pair"], "pair")
        c["layer"] = integer(c["layer"], "layer", low=0)
        (c["coeff"],) = coefficients([c["coeff"]], "coeff")
        c["prompts"] = text_list(c["prompts"], "prompts")
        why = "completions per prompt"
        c["n_samples"] = integer(c["n_samples"], "n_samples", low=1, high=MAX_SAMPLES, why=why)
        c["max_new_tokens"] = integer(c["max_new_tokens"], "max_new_tokens", low=1)
        c["seed"] = integer(c["seed"], "seed", low=0)
        from actadd.core.steering import Align

        try:
            Align.parse(c["align"])
        except ActAddError as exc:
            raise ConfigError(f"align {c['align']!r}: {exc}") from None
        c["pair"] = vars(pair)
        return c

    def check(self, spec: dict[str, Any], model) -> None:
        """The layer's range, and the pair's vector fitting every prompt at ``align`` (from
        token counts: a front-aligned 5-row vector needs a prompt of 5 tokens)."""
        from actadd.core.placement import PHASE_KINDS, prompt_positions
        from actadd.core.steering import Align
        from actadd.runtime.tokens import pair_token_ids

        check_layers([spec["layer"]], model.cfg.n_layers, "layer")
        pair, align = Pair(**spec["pair"]), Align.parse(spec["align"])
        try:
            k = len(pair_token_ids(model, pair.positive, pair.negative, "right", pair.pad_token)[0])
        except ActAddError as exc:
            raise ConfigError(f"pair {pair.name}: {exc}") from None
        if align.kind in PHASE_KINDS:
            if k > 1:
                raise ConfigError(
                    f"align {align} adds one row at each position, but pair {pair.name} gives a "
                    f"{k}-row vector; use front, back or offset:<s>."
                )
            return
        for prompt in spec["prompts"]:
            n = model.to_tokens(prompt, truncate=False).shape[1]
            try:
                prompt_positions(align, k, n)
            except ActAddError as exc:
                if align.kind == "positions":  # a count that does not match the rows
                    raise ConfigError(f"align {align}, pair {pair.name}: {exc}") from None
                raise ConfigError(
                    f"prompt {prompt[:40]!r} is {n} tokens (leading token included), too short "
                    f"for the {k}-row vector of pair {pair.name} at align {align}; use a longer "
                    "prompt, a shorter pair or another align."
                ) from None

    def run(self, spec: dict[str, Any], model, run) -> None:
        import actadd

        pair = Pair(**spec["pair"])
        v = actadd.SteeringVector.from_pair(
            model,
            pair.positive,
            pair.negative,
            spec["layer"],
            spec["coeff"],
            pad_token=pair.pad_token,
        )
        df = actadd.compare(
            model,
            spec["prompts"],
            v,
            spec["align"],
            n_samples=spec["n_samples"],
            max_new_tokens=spec["max_new_tokens"],
            seed=spec["seed"],
        )
        run.write_table("completions", df)
        for _, row in df.iterrows():
            print(f"\n[{v.describe()}] {row.prompt!r} (sample {row['sample']})")
            print(f"  unsteered: {row.unsteered.strip()!r}")
            print(f"  steered:   {row.steered.strip()!r}")


KIND = DemoKind()
