"""A config written for one model, run on another (``--model``): the relative-depth rule.

Every config in ``experiments/`` is written for SmolLM2-135M-Instruct (30 layers) unless it
names a ``model``. ``actadd suite --model NAME`` and ``actadd run CONFIG --model NAME`` run it
on another model with one rule:

- **Layers by relative depth.** A ``resid_pre`` layer ``L`` of the config's model (``D``
  blocks) becomes ``round(L * n / D)`` on a model of ``n`` blocks, rounded half up: the
  residual stream after the same fraction of the blocks (``L = D``, the final residual
  stream, maps to ``n``). SmolLM2 → Gemma 3 270M: 1, 2, 4, 6, 8, 10, 16, 20, 24, 29 →
  1, 1, 2, 4, 5, 6, 10, 12, 14, 17. A list keeps its order and loses repeats (two layers
  that map to one are one cell); ``"all"`` stays ``"all"``; a range ``"a:b:s"`` is expanded
  on the config's model first. Every layer field of every kind is mapped
  (:data:`LAYER_PATHS`), confirmatory cells included.
- **Coefficients unchanged.** An ActAdd coefficient multiplies a difference of the model's
  own activations at the (mapped) layer (the paper's definition), so its size follows that
  model's residual scale; methods with ``norm = "match"`` are scaled to that vector. Not in
  the same proportion on every model: Love − Hate is 0.24–0.61 of the median residual norm
  on Gemma 3 270M (L2–L17) and 0.63–0.95 on SmolLM2 (L2–L29), so a coefficient is about
  half the push on Gemma (README, "The suite on Gemma 3 270M").
- **Prompt format.** The behaviours benchmark renders its questions with the model's chat
  template (``chat = true``); on a model without one (Gemma 3 270M is the base model) it
  runs them as plain text (``chat = false``: the question, a newline, ``"("``), and the
  rule's record says so (:data:`CHAT`).
- **Per-model overrides.** Where the rule cannot carry a value over (a prompt too short in
  the other model's tokens, say), the config says what to use instead in a table named for
  the model, ``[models."gemma3-270m"]``: its keys replace the config's after the layers are
  mapped (nested tables merge, like ``[quick]``; a layer written there is the target
  model's own, not mapped), and the rule's record lists each one, ``"overrides"``, before
  and after. The table applies only with ``--model`` that model; a run as written ignores
  it, and it names only models ``--model`` takes, not the config's own.

The config that runs holds the mapped layers and ``model``; :data:`RULE_KEY` records the rule,
both models' depths and every field before and after, and goes into ``config.json`` beside
them, so a run says how its layers were chosen and resumes only with the same ones.
A model whose depth is not known without loading it, or a layer outside the config's model,
is one :class:`ConfigError` line before any model loads.
"""

from __future__ import annotations

import copy
from typing import Any

from actadd.config import parse_layers
from actadd.errors import ConfigError
from actadd.lab.kinds import merge
from actadd.models.names import GEMMA3_ALIASES, TINY_MODELS, TINY_SHAPE, is_smollm2

__all__ = [
    "CHAT",
    "CHAT_KINDS",
    "DEPTHS",
    "GEMMA3",
    "LAYER_PATHS",
    "MODELS_KEY",
    "RULE",
    "RULE_KEY",
    "SMOLLM2",
    "canonical_model",
    "for_model",
    "map_layer",
    "model_slug",
    "override_models",
    "without_overrides",
]

SMOLLM2 = "smollm2"
GEMMA3 = "gemma3-270m"
#: blocks of each model ``--model`` takes, known without loading it (the integration tests
#: check the loaded models against it)
DEPTHS: dict[str, int] = {
    SMOLLM2: 30,
    GEMMA3: 18,
    **{name: TINY_SHAPE["n_layers"] for name in TINY_MODELS},
}
#: whether each model renders prompts with a chat template (its GGUF carries one): Gemma 3
#: 270M is the base model, without one. A kind in :data:`CHAT_KINDS` whose config asks for the
#: template (``chat = true``, their default) runs as plain text on a model without one, and
#: the rule's record says so (``"chat"``); a model not listed here is left as written.
CHAT: dict[str, bool] = {SMOLLM2: True, GEMMA3: False}
CHAT_KINDS = ("behaviours",)
#: the key of the rule's record in a config (and ``config.json``); no kind reads it
RULE_KEY = "model_rule"
#: the config table of per-model overrides (``[models."gemma3-270m"]``); no kind reads it
MODELS_KEY = "models"
RULE = (
    "relative depth: resid_pre layer L of a D-block model -> round(L * n / D), half up, "
    "on an n-block model; coefficients unchanged"
)
#: every field that holds a layer or layers, as dotted paths (``*``: each item of a list)
LAYER_PATHS = (
    "layer",
    "layers",
    "confirmatory.*.layer",
    "settings.layers",
    "settings.transplant_sources",
    "settings.sweep_targets",
    "settings.sweep_sources",
    "settings.dose_layers",
    "diagnostics.layers",
    "specificity.layers",
    "generation.layer",
    "generation.layers",
    "attention.inject_layers",
    "coarse_layers",
    "control_layers",
)


def canonical_model(name: Any) -> str:
    """The name ``--model`` knows ``name`` by (``smollm2``, ``gemma3-270m``, a tiny model);
    anything else is one ConfigError line listing them."""
    if name is None or (isinstance(name, str) and is_smollm2(name)):
        return SMOLLM2
    if isinstance(name, str) and name.lower() in GEMMA3_ALIASES:
        return GEMMA3
    if isinstance(name, str) and name in TINY_MODELS:
        return name
    raise ConfigError(f"unknown model {name!r}: --model takes one of {sorted(DEPTHS)}.")


def model_slug(name: str | None) -> str | None:
    """The results sub-folder of a ``--model`` run (None for SmolLM2: results/ itself)."""
    model = canonical_model(name)
    return None if model == SMOLLM2 else model


def map_layer(layer: int, depth: int, n_layers: int) -> int:
    """``round(layer * n_layers / depth)``, half up, in integers."""
    return (2 * layer * n_layers + depth) // (2 * depth)


def for_model(config: dict[str, Any], model: str | None, where: str = "config") -> dict[str, Any]:
    """``config`` to run on ``model`` (``None``: as written). The same model as the config's
    returns ``config`` itself (its layers range-checked, SmolLM2's left to the kind); another
    gets ``model``, the mapped layers and :data:`RULE_KEY`."""
    tables = _override_tables(config, where)
    config = without_overrides(config)
    if model is None:
        return config
    source, target = canonical_model(config.get("model")), canonical_model(model)
    depth, n_layers = DEPTHS[source], DEPTHS[target]
    if source == target:
        if target != SMOLLM2:  # SmolLM2's configs run as before; another's are range-checked
            for path in LAYER_PATHS:
                for dotted, _, _, value in _find(config, path.split(".")):
                    _map_value(value, depth, n_layers, f"{where}: {dotted}", source, target)
        return config
    out = copy.deepcopy(config)
    mapped: dict[str, dict[str, Any]] = {}
    for path in LAYER_PATHS:
        for dotted, holder, key, value in _find(out, path.split(".")):
            new = _map_value(value, depth, n_layers, f"{where}: {dotted}", source, target)
            holder[key] = new
            mapped[dotted] = {"from": value, "to": new}
    out["model"] = target
    out[RULE_KEY] = {
        "rule": RULE,
        "from": {"model": source, "n_layers": depth},
        "to": {"model": target, "n_layers": n_layers},
        "layers": mapped,
    }
    if (
        out.get("kind") in CHAT_KINDS
        and out.get("chat", True) is True
        and not CHAT.get(target, True)
    ):
        out["chat"] = False
        out[RULE_KEY]["chat"] = {"from": True, "to": False, "why": f"{target} has no chat template"}
    if target in tables:
        overrides = {}
        for dotted, value in _leaves(tables[target]):
            found = [v for *_, v in _find(out, dotted.split("."))]
            overrides[dotted] = {"from": found[0] if found else _MISSING, "to": value}
        out = merge(out, tables[target])
        out[RULE_KEY]["overrides"] = overrides
        for path in LAYER_PATHS:  # a layer the table sets is the target's own: in range there
            for dotted, _, _, value in _find(out, path.split(".")):
                _map_value(value, n_layers, n_layers, f"{where}: {dotted}", target, target)
    return out


def override_models(config: dict[str, Any], where: str = "config") -> list[str]:
    """The models ``config`` has a per-model table for (:data:`MODELS_KEY`), checked."""
    return list(_override_tables(config, where))


def without_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without its per-model table (:data:`MODELS_KEY`): what its kind parses."""
    if MODELS_KEY not in config:
        return config
    return {k: v for k, v in config.items() if k != MODELS_KEY}


_MISSING = "(not set)"


def _override_tables(config: dict[str, Any], where: str) -> dict[str, dict]:
    """The config's per-model tables by canonical model name; a table for an unknown model,
    for the config's own, not a table, or one that sets what the rule owns is a ConfigError."""
    raw = config.get(MODELS_KEY)
    if raw is None:
        return {}
    try:
        source = canonical_model(config.get("model"))
    except ConfigError:  # a model --model does not know (a path, a hub name) is its own
        source = config.get("model")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: [{MODELS_KEY}] must be a table of per-model tables, e.g. "
            f'[{MODELS_KEY}."{GEMMA3}"], got {type(raw).__name__}.'
        )
    out: dict[str, dict] = {}
    for name, table in raw.items():
        try:
            model = canonical_model(name)
        except ConfigError:
            raise ConfigError(
                f"{where}: [{MODELS_KEY}.{name!r}]: unknown model; --model takes one of "
                f"{sorted(DEPTHS)}."
            ) from None
        if model == source:
            raise ConfigError(
                f"{where}: [{MODELS_KEY}.{name!r}] is the config's own model ({source}): write "
                "those values in the config itself."
            )
        if not isinstance(table, dict) or not table:
            raise ConfigError(
                f"{where}: [{MODELS_KEY}.{name!r}] must be a non-empty table of the config's "
                f"keys to replace on {model}, got {table!r}."
            )
        owned = sorted({"kind", "model", "name", RULE_KEY, MODELS_KEY, "quick"} & set(table))
        if owned:
            raise ConfigError(
                f"{where}: [{MODELS_KEY}.{name!r}] sets {owned}: a per-model table may not "
                "change the kind, the model, the run's name, [quick] or the rule's record."
            )
        out[model] = table
    return out


def _leaves(table: dict[str, Any], prefix: str = ""):
    """(dotted key, value) of every non-table value of ``table`` (tables merge key by key)."""
    for key, value in table.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _find(node: Any, parts: list[str], prefix: str = ""):
    """(dotted path, the dict or list holding it, its key there, value) for every match of
    ``parts``."""
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = list(enumerate(node)) if isinstance(node, list) else []
    else:
        items = [(head, node[head])] if isinstance(node, dict) and head in node else []
    for key, value in items:
        dotted = f"{prefix}{key}"
        if rest:
            yield from _find(value, rest, dotted + ".")
        else:
            yield dotted, node, key, value


def _map_value(value: Any, depth: int, n_layers: int, where: str, source: str, target: str):
    if isinstance(value, str) and value.strip().lower() == "all":
        return value
    if isinstance(value, (list, tuple)) and not value:  # an empty list ("none") stays empty
        return []
    single = isinstance(value, int) and not isinstance(value, bool)
    layers = [value] if single else parse_layers(value, depth, where)
    bad = [x for x in layers if not 0 <= x <= depth]
    if bad:
        mapping = (
            ""
            if source == target
            else (f", so past {target}'s {n_layers} after mapping (resid_pre 0..{n_layers})")
        )
        raise ConfigError(
            f"{where} {bad}: past {source}'s {depth} layers (resid_pre 0..{depth}){mapping}."
        )
    new = list(dict.fromkeys(map_layer(x, depth, n_layers) for x in layers))
    return new[0] if single else new
