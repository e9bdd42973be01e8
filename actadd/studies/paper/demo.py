"""Experiment kind ``demo``: steered vs unsteered completions of one pair, side by side.

The config is :class:`~actadd.studies.paper.config.DemoConfig`.

Table: ``completions.csv`` (prompt, sample, unsteered, steered; same seeds).
"""

from __future__ import annotations

from actadd.config import check_layers
from actadd.errors import ActAddError, ConfigError
from actadd.studies.common import ConfigKind
from actadd.studies.paper.config import DemoConfig

__all__ = ["KIND", "DemoKind"]


class DemoKind(ConfigKind):
    name = "demo"
    description = "steered vs unsteered completions for one pair, side by side"
    config_type = DemoConfig

    def check(self, spec: DemoConfig, model) -> None:
        """The layer's range, and the pair's vector fitting every prompt at ``align`` (from
        token counts: a front-aligned 5-row vector needs a prompt of 5 tokens)."""
        from actadd.core.placement import PHASE_KINDS, prompt_positions
        from actadd.core.steering import Align
        from actadd.runtime.tokens import pair_token_ids

        check_layers([spec.layer], model.cfg.n_layers, "layer")
        pair, align = spec.pair, Align.parse(spec.align)
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
        for prompt in spec.prompts:
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

    def run(self, spec: DemoConfig, model, run) -> None:
        import actadd

        pair = spec.pair
        v = actadd.SteeringVector.from_pair(
            model,
            pair.positive,
            pair.negative,
            spec.layer,
            spec.coeff,
            pad_token=pair.pad_token,
        )
        df = actadd.compare(
            model,
            list(spec.prompts),
            v,
            spec.align,
            n_samples=spec.n_samples,
            max_new_tokens=spec.max_new_tokens,
            seed=spec.seed,
        )
        run.write_table("completions", df)
        for _, row in df.iterrows():
            print(f"\n[{v.describe()}] {row.prompt!r} (sample {row['sample']})")
            print(f"  unsteered: {row.unsteered.strip()!r}")
            print(f"  steered:   {row.steered.strip()!r}")


KIND = DemoKind()
