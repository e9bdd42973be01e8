"""The coefficient rule's plan: the config and ``--model`` checked, before any model loads.

:mod:`actadd.sweeps.coeffmap` maps each confirmatory cell's coefficient to another model
(the rule is stated there); :mod:`actadd.sweeps.coeff_table` writes the result into the
config. This module is pure data (no torch):

- :func:`plan_coeffs` checks the config and ``--model`` (one :class:`ConfigError` line
  each: no confirmatory cells, relative coefficients, an unknown model, the config's own
  model) and builds the two specs the ratios are measured with: the config as written, and
  the config on the target model by the ``--model`` rule (:func:`actadd.lab.retarget.for_model`;
  the target's per-model table applies, less the ``coeffs`` and ``confirmatory`` this rule
  writes there);
- :class:`Ratio` and :class:`CellMap` hold what was measured, :func:`mapped_table` what
  the rule writes: ``coeffs`` and ``confirmatory`` for ``[models."<target>"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from actadd.errors import ConfigError
from actadd.lab.retarget import DEPTHS, MODELS_KEY, RULE_KEY, canonical_model, for_model
from actadd.sweeps.spec import SweepSpec

__all__ = [
    "COEFF_RULE",
    "MAPPED_KEYS",
    "SIGNIFICANT",
    "CellMap",
    "CoeffPlan",
    "Ratio",
    "mapped_table",
    "plan_coeffs",
    "spec_keys",
    "without_mapped",
]

#: significant digits of a written coefficient (the ratios are not known better than that)
SIGNIFICANT = 3
#: the keys the rule writes into the target's per-model table
MAPPED_KEYS = ("coeffs", "confirmatory")
#: the rule, as the comment above a written table states it
COEFF_RULE = (
    "c' = c * r_source(L) / r_target(L'), L' = the layer the --model rule maps L to, where",
    "r(L) = RMS row norm of the vector the cell adds at c = 1 (rows after the leading token)",
    "       / median |resid_pre L| over the config's prompts (positions after the leading token)",
)


@dataclass(frozen=True)
class CoeffPlan:
    """A config and the model its coefficients are mapped to, checked (no model loaded)."""

    where: str
    config: dict[str, Any]  # as read (per-model tables included)
    source: str  # the config's model, as --model knows it
    target: str
    source_spec: SweepSpec
    target_spec: SweepSpec  # the config on the target by the --model rule


@dataclass(frozen=True)
class Ratio:
    """A cell's vector against the residual stream on one model, at one layer."""

    layer: int
    vector_norm: float  # RMS row norm of what the cell adds at c = 1
    resid_norm: float  # median |resid_pre| over the prompts' positions after the leading token

    @property
    def r(self) -> float:
        return self.vector_norm / self.resid_norm


@dataclass(frozen=True)
class CellMap:
    """One confirmatory cell on both models: ``coeff × source.r / target.r``."""

    cell: dict[str, Any]  # as the config writes it
    label: str  # the pair (or the method)
    source: Ratio
    target: Ratio

    @property
    def coeff(self) -> float:
        return float(self.cell["coeff"])

    @property
    def exact(self) -> float:
        return self.coeff * self.source.r / self.target.r

    @property
    def target_coeff(self) -> float:
        """:attr:`exact` to :data:`SIGNIFICANT` significant digits: the value written."""
        return float(f"{self.exact:.{SIGNIFICANT}g}")

    def line(self, source: str, target: str) -> str:
        s, t = self.source, self.target
        return (
            f"{self.label}  L{s.layer} -> L{t.layer}  r {s.r:.4f} on {source} "
            f"({s.vector_norm:.4g}/{s.resid_norm:.4g}), {t.r:.4f} on {target} "
            f"({t.vector_norm:.4g}/{t.resid_norm:.4g})  c {self.coeff:g} -> "
            f"{self.target_coeff:g}"
        )


def plan_coeffs(config: dict[str, Any], model: Any, where: str = "config") -> CoeffPlan:
    """The checked plan of mapping ``config``'s confirmatory coefficients to ``model``."""
    target = canonical_model(model)
    try:
        source = canonical_model(config.get("model"))
    except ConfigError:
        raise ConfigError(
            f"{where}: model {config.get('model')!r} is not one --model knows "
            f"({sorted(DEPTHS)}), so its cells cannot be mapped by the rule."
        ) from None
    if source == target:
        others = sorted(m for m in DEPTHS if m != source)
        raise ConfigError(
            f"{where} is written for {source}: --model must name another model, one of {others}."
        )
    spec = SweepSpec.from_dict(spec_keys(config))
    if not spec.confirmatory:
        raise ConfigError(
            f"{where} has no confirmatory cells (confirmatory = [{{layer, coeff, ...}}]): "
            "nothing to map."
        )
    if spec.coeff_mode != "absolute":
        raise ConfigError(
            f"{where}: coeff_mode = {spec.coeff_mode!r}: its coefficients are already sizes "
            "relative to the residual norm, the same on every model; nothing to map."
        )
    on_target = for_model(without_mapped(config, target), target, where)
    target_spec = SweepSpec.from_dict(spec_keys(on_target))
    return CoeffPlan(where, config, source, target, spec, target_spec)


def mapped_table(cells: list[CellMap]) -> dict[str, Any]:
    """``coeffs`` (the written coefficients, sorted, each once) and ``confirmatory`` (each
    cell at its target layer and coefficient, every other key as written; a cell identical
    to an earlier one once): the keys of ``[models."<target>"]``."""
    out: list[dict[str, Any]] = []
    for c in cells:
        cell = {**c.cell, "layer": c.target.layer, "coeff": c.target_coeff}
        if cell not in out:
            out.append(cell)
    return {"coeffs": sorted({c["coeff"] for c in out}), "confirmatory": out}


def spec_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The keys a sweep spec parses (not the kind, the rule's record or per-model tables)."""
    return {k: v for k, v in config.items() if k not in ("kind", RULE_KEY, MODELS_KEY)}


def _target_tables(config: dict[str, Any], target: str) -> list[str]:
    """The names of ``config``'s per-model tables for ``target`` (any alias)."""
    out = []
    for name in config.get(MODELS_KEY) or {}:
        try:
            if canonical_model(name) == target:
                out.append(name)
        except ConfigError:
            pass  # for_model names an unknown model in one line
    return out


def without_mapped(config: dict[str, Any], target: str) -> dict[str, Any]:
    """``config`` without the keys this rule writes in its tables for ``target`` (an
    emptied table, and an emptied ``[models]``, left out)."""
    out = copy.deepcopy(config)
    tables = out.get(MODELS_KEY)
    for name in _target_tables(out, target):
        if isinstance(tables[name], dict):
            for key in MAPPED_KEYS:
                tables[name].pop(key, None)
            if not tables[name]:
                del tables[name]
    if isinstance(tables, dict) and not tables:
        del out[MODELS_KEY]
    return out
