"""Running experiment configs: TOML file → kind → run directory → tables and figures.

Each config file in ``experiments/`` names a ``kind`` (see :mod:`actadd.kinds`). A config
may carry a ``[quick]`` table: with ``--quick`` its keys replace the top-level ones (nested
tables merge), so the CI-sized run sits next to the full one.

Every kind goes through :func:`run_experiment` and so through one run-directory policy
(:class:`actadd.runs.RunDir`): the whole config is checked before the model loads and
before anything is written; a directory that holds a run is continued only with
``resume`` and the same config.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from actadd.config import read_toml
from actadd.errors import ConfigError
from actadd.kinds import KIND_MODULES, Kind, get_kind


def read_config(path: str | Path, quick: bool = False) -> dict[str, Any]:
    """A TOML config as a dict (``name`` defaults to the file's stem; ``[quick]`` merged in
    with ``quick``)."""
    path = Path(path)
    raw = read_toml(path)
    quick_table = raw.pop("quick", {})
    if quick:
        raw = merge(raw, quick_table)
    raw.setdefault("name", path.stem)
    if "kind" not in raw:
        raise ConfigError(f"{path}: missing 'kind'; known kinds: {sorted(KIND_MODULES)}.")
    return raw


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def kind_of(config: dict[str, Any]) -> Kind:
    """The kind a config names."""
    return get_kind(config.get("kind"))


def run_experiment(
    config: dict[str, Any], out: str | Path, *, resume: bool = False, model=None, backend=None
) -> Path:
    """Run ``config`` (a mapping with a ``kind``) into the run directory ``out``.

    Order: parse the config (no model) → check ``out`` (refuse an existing run without
    ``resume``, or with another config) → load the model (unless given) → model-dependent
    checks → write ``config.json`` and ``env.json`` → compute the tables → draw the figures.

    ``backend`` (e.g. :class:`actadd.sweeps.distributed.RayBackend`) computes the units of
    kinds whose work is sweep units (``kind.distributed``); other kinds run here. Either
    way this process holds the run directory's lock and writes every file.
    """
    from actadd.runs import RunDir

    kind = kind_of(config)
    spec = kind.parse({k: v for k, v in config.items() if k != "kind"})
    run = RunDir(out, kind.saved_config(spec), resume=resume)
    if model is None:
        from actadd.models import load_model

        model = load_model(config.get("model"))
    kind.check(spec, model)
    with run.start(model):  # the lock is held until the figures are drawn
        if backend is not None and kind.distributed:
            kind.run(spec, model, run, backend=backend)
        else:
            kind.run(spec, model, run)
        run.redraw(kind.figures)
    return Path(out)


def run_config(
    path: str | Path, out: str | Path, *, quick: bool = False, resume: bool = False, backend=None
) -> Path:
    """:func:`run_experiment` on a TOML config file."""
    return run_experiment(read_config(path, quick), out, resume=resume, backend=backend)


def figures_for(out: str | Path) -> list[Path]:
    """Redraw a run directory's figures from its saved tables (no model)."""
    from actadd.runs import RunDir

    run = RunDir.existing(out)
    return run.redraw(kind_of(run.config).figures)
