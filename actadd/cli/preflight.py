"""Config files checked before torch is imported.

A kind's module pulls in torch and TransformerLens (seconds), but its config class is pure
data: :func:`check_file` reads a config file and builds that class (:data:`CONFIG_TYPES`),
so every problem that needs no model is reported at once, one line each naming the file,
before ``actadd run``, ``sweep`` or ``suite`` imports anything heavy. The kind's own
``parse`` runs again after the import (a kind may check more, e.g. a table it needs), and
what needs the model (layer ranges, single tokens, lengths) is checked after loading it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from actadd.config import Config
from actadd.errors import ConfigError, problems_of, raise_all, suggest
from actadd.lab.kinds import KIND_MODULES, read_config
from actadd.lab.retarget import (
    MODELS_KEY,
    RULE_KEY,
    for_model,
    override_models,
    without_overrides,
)
from actadd.studies.behaviours.config import BehavioursConfig
from actadd.studies.capability.config import CapabilityConfig
from actadd.studies.method_null.config import MethodNullConfig
from actadd.studies.pad_confound.config import PadConfoundConfig
from actadd.studies.paper.config import DemoConfig
from actadd.studies.perplexity.config import PerplexityConfig
from actadd.studies.token_injection.config import TokenInjectionConfig
from actadd.sweeps.spec import SweepSpec

__all__ = ["CONFIG_TYPES", "check_file", "check_files", "read_suite"]

#: the config class each kind parses its table with (tests/unit/cli checks that it is the
#: one the kind uses)
CONFIG_TYPES: dict[str, type[Config]] = {
    "sweep": SweepSpec,
    "word_count": SweepSpec,
    "sentiment": SweepSpec,
    "failures": SweepSpec,
    "alignment": SweepSpec,
    "demo": DemoConfig,
    "perplexity": PerplexityConfig,
    "capability": CapabilityConfig,
    "token_injection": TokenInjectionConfig,
    "pad_confound": PadConfoundConfig,
    "behaviours": BehavioursConfig,
    "method_null": MethodNullConfig,
}


def check_file(path: str | Path, quick: bool = False) -> dict[str, Any]:
    """The config in ``path`` (as :func:`actadd.lab.kinds.read_config` reads it), after
    building its kind's config class: every problem is raised at once, each line starting
    with the file's name (:class:`~actadd.errors.ConfigErrors`)."""
    path = Path(path)
    raw = read_config(path, quick)
    kind = raw["kind"]
    if kind not in KIND_MODULES:
        raise ConfigError(
            f"{path}: unknown kind {kind!r}{suggest(kind, KIND_MODULES)}; known: "
            f"{sorted(KIND_MODULES)}."
        )
    # the config as written, then as each of its per-model tables makes it (a misspelt key
    # there fails here, not after that model loads)
    problems: list[str] = []
    for model in (None, *override_models(raw, str(path))):
        where = f"{path}" if model is None else f"{path} [{MODELS_KEY}.{model!r}]"
        with warnings.catch_warnings():  # an old key's warning comes from the kind's own parse
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                config = for_model(raw, model, str(path))
                CONFIG_TYPES[kind].from_dict({k: v for k, v in config.items() if k != RULE_KEY})
            except ConfigError as exc:
                problems += [f"{where}: {line}" for line in problems_of(exc)]
    raise_all(problems)
    return without_overrides(raw)


def check_files(paths: Iterable[str | Path], quick: bool = False) -> None:
    """:func:`check_file` on every file; the problems of all of them raised together."""
    problems: list[str] = []
    for path in paths:
        try:
            check_file(path, quick)
        except ConfigError as exc:
            problems += problems_of(exc)
    raise_all(problems)


def read_suite(path: Path) -> list[Path]:
    """The config files a suite file lists (``experiments = ["name", ...]``, each
    ``<name>.toml`` beside it), read like every config (:func:`actadd.config.read_toml`)."""
    from actadd.config import read_toml

    if not path.is_file():
        raise ConfigError(f"No suite file at {path} (run from the repository root).")
    names = read_toml(path, "suite file").get("experiments")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise ConfigError(
            f"{path}: 'experiments' must be a non-empty list of config names (strings), e.g. "
            f'experiments = ["wedding_sweep"]; got {names!r}.'
        )
    configs = [path.parent / f"{name}.toml" for name in names]
    missing = [str(c) for c in configs if not c.is_file()]
    if missing:
        raise ConfigError(f"{path}: config files not found: {missing}")
    return configs
