"""The run store: the run directory, the one place every experiment writes to.

Layout::

    <out>/config.json            the full config (and the experiment kind)
    <out>/env.json               model, package versions, git revision, device, time
    <out>/<table>.parquet|.csv   the run's tables, at the top
    <out>/tables.json            the manifest: every file's sha256 (checked on read)
    <out>/parts/<key>.<table>.parquet   finished units of work (resumable kinds)
    <out>/parts/<key>.sha256     a unit's checksums and the model it was computed with
    <out>/figures/               figures (PNG + PDF), redrawn from the tables alone

The manifest ``tables.json`` (format 2) records each table's rows, columns and sha256, the
sha256 of ``config.json``, ``env.json`` and every other JSON file of the run, the model the
run was made with (:func:`actadd.lab.runinfo.model_identity`) and whether the run finished
writing its tables (``complete``). Runs made before format 2 (a flat ``{file: entry}``
manifest, no ``run_format`` in ``env.json``) are read as *legacy*: their tables are checked,
their config and env files cannot be. A run with no manifest at all can be read (with an
:class:`~actadd.errors.UncheckedRunWarning`) but does not pass :meth:`RunDir.problems`.

Rules, the same for every kind:

- Opening a directory that already holds a run needs ``resume=True``, and the config must be
  the one it was started with (and ``config.json`` the file it wrote; a directory with a
  run's files but no ``config.json`` is refused); otherwise a :class:`ConfigError` says so
  before any compute.
- A resume must use the model the run was made with (name, backend, shape, file sha256,
  weights): another model is refused before anything is written, and each finished unit
  records the model that computed it, so no table mixes two models.
- Nothing is written until :meth:`RunDir.start` (after the config and the model have been
  validated), so a rejected config leaves no trace.
- One writer at a time: :meth:`RunDir.start` (and redrawing figures) takes an exclusive lock
  (``<out>/.lock``: the writer's pid, host and phase). A second writer is refused with a
  clear error, or waits while the holder is only drawing figures; a lock left by a killed
  process on this host is detected (its pid is gone) and taken over.
- Every file is written atomically (temp file + rename): a run killed at any moment leaves
  no half-written file, and a full disk is one :class:`DiskFullError` line. A unit is done
  only once *all* its expected part files and their checksums (``<key>.sha256``, written
  last) are on disk and agree, so resuming skips finished units, recomputes a missing,
  truncated or corrupted one, and rebuilds the final tables from the parts — nothing is lost
  or duplicated.
- :meth:`RunDir.problems` checks every recorded file (``actadd verify``); ``actadd figures``
  and ``actadd report`` refuse a run that does not pass (:meth:`RunDir.check`).

The modules: :mod:`~actadd.lab.runs.rundir` (:class:`RunDir`: opening, starting, writing,
reading), :mod:`~actadd.lab.runs.manifest` (``tables.json`` and checksums),
:mod:`~actadd.lab.runs.lock` (the lock), :mod:`~actadd.lab.runs.units` (resumable units) and
:mod:`~actadd.lab.runs.verify` (``actadd verify``).
"""

from actadd.lab.runs.lock import FIGURES_WAIT, LOCK
from actadd.lab.runs.manifest import MANIFEST, RUN_FORMAT
from actadd.lab.runs.rundir import FIGURES, TABLE_FORMATS, RunDir, run_dirs
from actadd.lab.runs.units import PartTables

__all__ = [
    "FIGURES",
    "FIGURES_WAIT",
    "LOCK",
    "MANIFEST",
    "RUN_FORMAT",
    "TABLE_FORMATS",
    "PartTables",
    "RunDir",
    "run_dirs",
]
