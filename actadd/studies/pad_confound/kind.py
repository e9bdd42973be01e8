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

The study's modules: the config (:mod:`actadd.studies.pad_confound.config`, the TOML form),
the instruments (:mod:`~actadd.studies.pad_confound.analysis`), the run
(:mod:`~actadd.studies.pad_confound.run`, the tables), the claims
(:mod:`~actadd.studies.pad_confound.claims`) and the figures
(:mod:`~actadd.studies.pad_confound.figures`). This module is the kind that ties them
together (:data:`KIND`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actadd.config import check_layers, parse_layers
from actadd.config import words as word_list
from actadd.errors import ActAddError, ConfigError
from actadd.studies.common import ConfigKind
from actadd.studies.pad_confound.claims import claims
from actadd.studies.pad_confound.config import NAME, PadConfoundConfig, PadPair, pad_label
from actadd.studies.pad_confound.run import ORDINARY, UNSTEERED, run_pad_confound

__all__ = [
    "KIND",
    "NAME",
    "ORDINARY",
    "UNSTEERED",
    "PadConfoundKind",
    "PadPair",
    "claims",
    "pad_label",
    "parse",
    "run_pad_confound",
]


def parse(config: dict[str, Any]) -> PadConfoundConfig:
    """Validate everything that needs no model (a TOML table; ``pads`` is read as
    ``pad_tokens``, with a DeprecationWarning)."""
    return PadConfoundConfig.from_dict(config)


class PadConfoundKind(ConfigKind):
    name = NAME
    description = "the pad confound: pad-row norm vs steering, surgery, attention, default pad"
    config_type = PadConfoundConfig

    def check(self, spec: PadConfoundConfig, model) -> None:
        """The plan step: layer ranges, single-token pads and control words, pairs with a
        pad row and a one-token target word, prompts as long as the longest vector."""
        from actadd.core.metrics import target_token_ids
        from actadd.runtime.tokens import encode, single_token_id
        from actadd.studies.pad_confound.analysis import pair_tokens

        n = model.cfg.n_layers
        check_layers(parse_layers(spec.layers, n), n, "layers")
        try:
            for p in spec.pad_tokens:
                single_token_id(model, p)
        except ActAddError as exc:
            raise ConfigError(f"pad_tokens: {exc}") from None
        reference = spec.reference_pad
        for pp in spec.pairs:
            if pair_tokens(model, pp.pair, reference).padded_side < 0:
                raise ConfigError(
                    f"pair {pp.pair.name} has prompts of one length: it has no pad row. "
                    "Use pairs whose sides differ in length."
                )
            if not target_token_ids(model, word_list(pp.target_words), strict=False):
                raise ConfigError(f"pair {pp.pair.name}: no target word is one token.")
        longest = max(len(pair_tokens(model, pp.pair, reference).positive) for pp in spec.pairs)
        for text in spec.prompts:
            if len(encode(model, text)) < longest:
                raise ConfigError(
                    f"prompt {text!r} is {len(encode(model, text))} tokens (leading token "
                    f"included), shorter than the longest pair's {longest} rows: front "
                    "injection needs a prompt at least as long as the vector."
                )
        if spec.controls:
            target_token_ids(model, spec.controls, strict=True, where="control_words")
        else:
            raise ConfigError("control_words: give a list of single-token words.")
        if spec.attention is not None:
            check_layers(list(spec.attention.inject_layers), n - 1, "[attention] inject_layers")
        if spec.generation is not None:
            spec.generation_sweep().validate(model)
            check_layers(list(spec.generation.layers), n, "[generation] layers")

    def run(self, spec: PadConfoundConfig, model, run) -> None:
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
