"""Running experiment configs: TOML file → kind → run directory → tables and figures.

Each config file in ``experiments/`` names a ``kind`` (see :mod:`actadd.lab.kinds`). A config
may carry a ``[quick]`` table: with ``--quick`` its keys replace the top-level ones (nested
tables merge), so the CI-sized run sits next to the full one.

Every kind goes through :func:`run_experiment` and so through one run-directory policy
(:class:`actadd.lab.runs.RunDir`): the whole config is checked before the model loads and
before anything is written; a directory that holds a run is continued only with
``resume`` and the same config. A config run on a model other than its own (``--model``)
has its layers mapped by relative depth first (:mod:`actadd.lab.retarget`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actadd.errors import ActAddError, ConfigError
from actadd.lab.kinds import Kind, get_kind, merge, read_config
from actadd.lab.retarget import RULE_KEY, for_model

__all__ = [
    "check_run",
    "figures_for",
    "kind_of",
    "merge",
    "read_config",
    "run_config",
    "run_experiment",
    "verify_run",
]


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

    ``backend`` (an executor, e.g. :class:`actadd.sweeps.distributed.RayExecutor`) computes
    the units of kinds whose work is sweep units (``kind.distributed``); other kinds run
    here. Either way this process holds the run directory's lock and writes every file.
    """
    from actadd.lab.runs import RunDir

    kind = kind_of(config)
    spec = kind.parse(_kind_keys(config))
    saved = kind.saved_config(spec)
    if RULE_KEY in config:  # a config mapped to another model says how (lab.retarget)
        saved = {**saved, RULE_KEY: config[RULE_KEY]}
    if resume:
        saved = resumable_config(
            saved, out, lambda c: {**kind.saved_config(kind.parse(_kind_keys(c))), **_rule(c)}
        )
    run = RunDir(out, saved, resume=resume)
    if model is None:
        from actadd.models import load_model

        model = load_model(config.get("model"))
    kind.check(spec, model)
    with run.start(model):  # the lock is held until the figures are drawn
        if backend is not None and kind.distributed:
            kind.run(spec, model, run, backend=backend)
        else:
            kind.run(spec, model, run)
        run.mark_complete()
        run.set_phase("figures")  # `actadd figures` on this run now waits, not fails
        run.redraw(kind.figures)
    return Path(out)


def _kind_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The keys a kind parses: all but ``kind`` and the model rule's record."""
    return {k: v for k, v in config.items() if k not in ("kind", RULE_KEY)}


def _rule(config: dict[str, Any]) -> dict[str, Any]:
    return {RULE_KEY: config[RULE_KEY]} if RULE_KEY in config else {}


def resumable_config(
    config: dict[str, Any], out: str | Path, reread: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The config to resume ``out`` with: ``config``, or the ``config.json`` the run there
    was started with when ``reread`` (parse, then save again) makes it ``config``.

    A run directory written before a config key was renamed (``pads``, now ``equalize``)
    holds the old spelling; read through today's config class it is the same spec, so the
    run resumes and its ``config.json`` stays as the run wrote it (its checksum too). Any
    other difference is left to :class:`actadd.lab.runs.RunDir`, which refuses it.
    """
    try:
        stored = json.loads((Path(out) / "config.json").read_bytes())
    except (OSError, ValueError):
        return config
    if not isinstance(stored, dict) or stored.get("kind") != config.get("kind"):
        return config
    with warnings.catch_warnings():
        # an old key in a stored config is the run's record, not the user's to change
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            same = reread({k: v for k, v in stored.items() if k != "kind"}) == config
        except ActAddError:
            return config
    return stored if same else config


def run_config(
    path: str | Path,
    out: str | Path,
    *,
    quick: bool = False,
    resume: bool = False,
    backend=None,
    model_name: str | None = None,
) -> Path:
    """:func:`run_experiment` on a TOML config file; ``model_name`` runs it on that model
    (layers by relative depth: :func:`actadd.lab.retarget.for_model`)."""
    config = for_model(read_config(path, quick), model_name, str(path))
    return run_experiment(config, out, resume=resume, backend=backend)


def figures_for(out: str | Path, *, wait: float | None = None) -> list[Path]:
    """Redraw a run directory's figures from its saved tables (no model), after checking
    the run (:func:`check_run`). The run's lock is held while drawing; a writer that is
    drawing the run's figures is waited for (up to ``wait`` seconds), any other refused."""
    from actadd.lab.runs import FIGURES_WAIT, RunDir

    run = RunDir.existing(out)
    kind = kind_of(run.config)
    with run.hold("figures", FIGURES_WAIT if wait is None else wait):
        check_run(run)
        return run.redraw(kind.figures)


def _part_tables(run):
    return getattr(kind_of(run.config), "part_tables", None)


def check_run(run) -> None:
    """Refuse a run (a :class:`actadd.lab.runs.RunDir`) that ``actadd verify`` would not pass:
    one ConfigError line naming the first damaged, missing or unrecorded file."""
    run.check(_part_tables(run))


def verify_run(out: str | Path) -> list[str]:
    """Every problem of the run directory ``out`` (``actadd verify``), one line each naming
    the file and the repair; [] for a sound run."""
    from actadd.lab.runs import RunDir

    try:
        run = RunDir.existing(out)
        part_tables = _part_tables(run)
    except ConfigError as exc:
        return [str(exc)]
    return run.problems(part_tables)
