"""The ``capability`` kind's config (:class:`CapabilityConfig`) and its cloze sets
(:func:`load_cloze`). Pure data: imports no model code (the ``align`` check imports the
steering library when a config is built, not when this module is imported).

Config::

    kind = "capability"
    dataset = "cloze_facts"        # packaged set, or a path to a JSON file of that form
    pairs = [[" weddings", ""], ["Love", "Hate"]]
    layers = [1, 2, 4, 8, 16]
    coeffs = [1.0, 2.0, 4.0, 8.0]
    align = "front"
    topk = [1, 5]
    limit = 0                      # use the first N items (0: all)
    batch_rows = 256               # rows per forward

``config.json`` holds every key with its default filled in (``name`` and ``model`` only
when given).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from actadd.config import (
    Config,
    Pair,
    check_layers,
    coefficients,
    integer,
    number_list,
    parse_pairs,
    read_text,
)
from actadd.errors import ConfigError, Validated

__all__ = ["NAME", "CapabilityConfig", "load_cloze"]

NAME = "capability"


def load_cloze(dataset: str = "cloze_facts") -> dict[str, Any]:
    """A cloze set: the packaged ``actadd/data/<name>.json`` or a JSON file path."""
    path = Path(dataset)
    if path.suffix == ".json" and path.is_file():
        text = read_text(path, "cloze set")  # a leading byte-order mark dropped
    else:
        res = resources.files("actadd.data") / f"{dataset}.json"
        if not res.is_file():
            raise ConfigError(
                f"No cloze set {dataset!r}: give a packaged name (cloze_facts) or a .json path."
            )
        text = res.read_text()
    doc = json.loads(text)
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"Cloze set {dataset!r} has no 'items' list.")
    for it in items:
        if not (isinstance(it, dict) and it.get("prompt") and it.get("answer")):
            raise ConfigError(f"Cloze item {it!r} needs a 'prompt' and an 'answer'.")
    return doc


@dataclass(frozen=True)
class CapabilityConfig(Config):
    """Factual cloze accuracy under off-topic steering: every (pair, layer, coeff) cell
    against the unsteered model, on the items of ``dataset`` (the first ``limit``; 0: all),
    scored at top-``k`` for each ``k`` of ``topk``. The cloze set is read and checked here,
    so a missing one fails before the model loads."""

    WHERE = f"{NAME} config"
    REQUIRED = ("pairs", "layers", "coeffs")
    LEFT_OUT_AT_DEFAULT = ("name", "model")

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    pairs: Validated[tuple[Pair, ...]]
    layers: Validated[tuple[int, ...]]
    coeffs: Validated[tuple[float, ...]]
    name: str | None = None
    model: str | None = None
    dataset: str = "cloze_facts"
    align: Validated[str] = "front"
    topk: Validated[tuple[int, ...]] = (1, 5)
    limit: Validated[int] = 0
    batch_rows: Validated[int] = 256

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("pairs", parse_pairs(self.pairs, "pairs"))
        set_("layers", tuple(number_list(self.layers, "layers", integer=True)))
        set_("coeffs", tuple(coefficients(self.coeffs, "coeffs")))
        set_("topk", tuple(number_list(self.topk, "topk", integer=True)))
        if min(self.topk) < 1:
            raise ConfigError("topk values must be >= 1.")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ConfigError("limit must be an int >= 0 (0: all items).")
        integer(self.batch_rows, "batch_rows", low=1)
        from actadd.core.steering import Align

        try:
            align = Align.parse(self.align)
        except Exception as exc:  # a wrong type is a config error too
            raise ConfigError(f"align {self.align!r}: {exc}") from None
        if align.kind == "all":
            raise ConfigError("align 'all' is not supported here; use front, back or offset:s.")
        load_cloze(self.dataset)

    def check_model(self, model) -> None:
        """The plan step: every layer in range for ``model``."""
        check_layers(list(self.layers), model.cfg.n_layers)
