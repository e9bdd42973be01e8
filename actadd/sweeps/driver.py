"""Running a sweep: :func:`run_sweep` (check, then compute into a resumable run directory),
:func:`execute` (the loop over the units, on an executor) and :func:`load_results`."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from actadd.lab.runner import resumable_config
from actadd.lab.runs import RunDir
from actadd.models import load_model
from actadd.progress import bar as progress_bar
from actadd.runtime.backends import Model
from actadd.sweeps import plan
from actadd.sweeps import words as word_lists
from actadd.sweeps.engine import Executor, LocalExecutor, annotate, units
from actadd.sweeps.spec import SweepSpec

__all__ = ["execute", "load_results", "run_sweep"]


def run_sweep(
    spec: SweepSpec,
    model: Model | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    kind: str = "sweep",
    backend: Executor | None = None,
) -> pd.DataFrame:
    """Evaluate every cell of ``spec``; return the tidy metrics table.

    With ``out``, results go to a resumable run directory (:class:`actadd.lab.runs.RunDir`):
    ``resume=True`` skips finished units. Completions, when the spec samples, are in
    ``df.attrs["completions"]`` and ``<out>/completions.parquet``. The word lists measured
    are printed (stderr) at the start, unless ``progress=False``, and named in the tables
    (:func:`actadd.sweeps.engine.annotate`). All validation happens before any compute
    (:func:`actadd.sweeps.plan.check`). ``backend`` (an executor) computes the units elsewhere (e.g.
    :class:`actadd.sweeps.distributed.RayExecutor`); the results are the same.
    """
    config = {"kind": kind, **spec.to_dict()}
    if out and resume:  # a run written with an old key (pads) resumes under its config.json
        config = resumable_config(
            config, out, lambda c: {"kind": kind, **SweepSpec.from_dict(c).to_dict()}
        )
    run = RunDir(out, config, resume=resume) if out else None
    model = model if model is not None else load_model(spec.model)
    plan.check(spec, model)
    if run is None:
        return execute(spec, model, None, progress=progress, backend=backend)
    with run.start(model):
        df = execute(spec, model, run, progress=progress, backend=backend)
        run.mark_complete()
        return df


def execute(
    spec: SweepSpec,
    model: Model,
    run: RunDir | None = None,
    *,
    progress: bool | None = None,
    backend: Executor | None = None,
) -> pd.DataFrame:
    """The sweep loop over resumable units (``spec`` already validated against ``model``).

    With ``run``, each finished unit is written as a part and skipped when resumed, and the
    run's ``results``/``completions`` tables are rebuilt from the parts. ``backend`` says
    where the units are computed: here, on ``model`` (the default), or on Ray actors
    (:class:`actadd.sweeps.distributed.RayExecutor`); either way the parts are written here,
    by this process, through ``run``, so a run directory can be resumed by either.
    """
    if progress is not False:  # the word lists measured, named before any compute
        for line in word_lists.lines(spec):
            print(f"{spec.name}: {line}", file=sys.stderr, flush=True)
    todo = units(spec, model.cfg.n_layers)
    results: dict[str, dict[str, pd.DataFrame]] = {}
    with progress_bar(len(todo), f"sweep {spec.name}", "unit", progress) as bar:
        pending = []
        for unit in todo:
            if run is not None and run.done(unit.key, unit.tables):
                bar.update(1)
            else:
                pending.append(unit)
        computed = (
            LocalExecutor().map(spec, model, pending)
            if backend is None
            else backend.map(spec, model, pending)
        )
        for unit, tables in computed:
            if run is not None:
                run.write_part(unit.key, tables)
            else:
                results[unit.key] = tables
            bar.set_postfix_str(unit.key)
            bar.update(1)
    keys = [u.key for u in todo]
    if run is not None:
        expected = {u.key: u.tables for u in todo}
        final = run.finalize(
            keys, ("results", "completions"), expected, lambda t, df: annotate(spec, t, df)
        )
    else:
        final = {
            t: annotate(
                spec,
                t,
                pd.concat([results[k][t] for k in keys if t in results[k]], ignore_index=True),
            )
            for t in ("results", "completions")
            if any(t in results[k] for k in keys)
        }
    df = final["results"]
    if "completions" in final:
        df.attrs["completions"] = final["completions"]
    return df


def load_results(out: str | Path) -> pd.DataFrame:
    """Read a finished run's metrics table."""
    return pd.read_parquet(Path(out) / "results.parquet")
