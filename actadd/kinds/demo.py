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

from actadd.config import Pair, check_keys, check_layers, number_list, text_list
from actadd.errors import ActAddError, ConfigError
from actadd.kinds import BaseKind

KEYS = ("name", "model", "pair", "layer", "coeff", "align")
KEYS += ("prompts", "n_samples", "max_new_tokens", "seed")


class DemoKind(BaseKind):
    name = "demo"
    description = "steered vs unsteered completions for one pair, side by side"

    def parse(self, config: dict[str, Any]) -> dict[str, Any]:
        check_keys(config, KEYS, "demo config", required=("pair", "layer", "coeff", "prompts"))
        c = {"align": "front", "n_samples": 3, "max_new_tokens": 40, "seed": 0, **config}
        pair = Pair.parse(c["pair"], "pair")
        (c["layer"],) = number_list([c["layer"]], "layer", integer=True)
        (c["coeff"],) = number_list([c["coeff"]], "coeff")
        c["prompts"] = text_list(c["prompts"], "prompts")
        for key in ("n_samples", "max_new_tokens", "seed"):
            (value,) = number_list([c[key]], key, integer=True)
            if value < (0 if key == "seed" else 1):
                raise ConfigError(f"{key} must be >= {0 if key == 'seed' else 1}, got {value}.")
        from actadd.steer import Align

        try:
            Align.parse(c["align"])
        except ActAddError as exc:
            raise ConfigError(f"align {c['align']!r}: {exc}") from None
        c["pair"] = vars(pair)
        return c

    def check(self, spec: dict[str, Any], model) -> None:
        check_layers([spec["layer"]], model.cfg.n_layers, "layer")

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
