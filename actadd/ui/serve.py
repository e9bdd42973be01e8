"""Serving the playground as a page: Voila's command line, with idle kernels culled.

Voila starts one kernel per page load, and each kernel loads its own model (about 1.4 GB of
resident memory for SmolLM2-135M). Voila shuts a page's kernel down when its tab closes (the
page sends a beacon on ``beforeunload``), but a load whose beacon never comes (a browser that
crashed or was killed, a dropped connection, a page fetched without JavaScript) used to keep
its kernel, and its model, until the server stopped.

So the server culls kernels (jupyter_server's ``MappingKernelManager``): a kernel that no page
is connected to and that has been idle for :data:`CULL_IDLE_TIMEOUT_S` is shut down, checked
every :data:`CULL_INTERVAL_S`. A kernel with an open page is never culled
(``cull_connected=False``): a user who leaves a tab open for an hour still has their panel.
The models are not shared between kernels; each open page holds one.

``python -m actadd.ui.serve`` (``make playground``) runs the server;
:func:`voila_argv` is the command line, which the browser test and
``benchmarks/bench_playground_memory.py`` use too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = [
    "CULL_IDLE_TIMEOUT_S",
    "CULL_INTERVAL_S",
    "DEFAULT_PORT",
    "NOTEBOOK",
    "main",
    "voila_argv",
]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_playground.ipynb"
DEFAULT_PORT = 8866
# a kernel no page is connected to is shut down after this long without activity
CULL_IDLE_TIMEOUT_S = 300
CULL_INTERVAL_S = 30


def voila_argv(
    port: int = DEFAULT_PORT,
    *,
    notebook: Path = NOTEBOOK,
    cull_idle_timeout: int = CULL_IDLE_TIMEOUT_S,
    cull_interval: int = CULL_INTERVAL_S,
    voila: str | Path | None = None,
) -> list[str]:
    """The Voila command that serves ``notebook`` on 127.0.0.1:``port``, culling kernels
    that no page is connected to after ``cull_idle_timeout`` idle seconds (0: never, Voila's
    own default). ``voila`` is the executable (default: the one beside this interpreter)."""
    for name, value, least in (
        ("port", port, 1),
        ("cull idle timeout", cull_idle_timeout, 0),
        ("cull interval", cull_interval, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(
                f"{name} must be an int >= {least} (seconds for the culler), got {value!r}."
            )
    exe = Path(voila) if voila is not None else Path(sys.executable).parent / "voila"
    return [
        str(exe),
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
        "--MappingKernelManager.cull_connected=False",
        "--MappingKernelManager.cull_busy=False",
    ]


def main(argv: list[str] | None = None) -> None:
    """``python -m actadd.ui.serve [--port N] [--cull-idle-timeout S] [--cull-interval S]``."""
    ap = argparse.ArgumentParser(
        prog="python -m actadd.ui.serve",
        description="Serve the steering playground on localhost (Voila); kernels that no page "
        "is connected to are shut down after an idle timeout.",
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="the port on 127.0.0.1")
    ap.add_argument(
        "--cull-idle-timeout",
        type=int,
        default=CULL_IDLE_TIMEOUT_S,
        help="seconds a kernel with no page connected may stay idle before it is shut "
        "down (0: never)",
    )
    ap.add_argument(
        "--cull-interval",
        type=int,
        default=CULL_INTERVAL_S,
        help="seconds between checks for idle kernels",
    )
    args = ap.parse_args(argv)
    try:
        cmd = voila_argv(
            args.port, cull_idle_timeout=args.cull_idle_timeout, cull_interval=args.cull_interval
        )
    except ValueError as exc:
        ap.error(str(exc))
    if not Path(cmd[0]).exists():
        ap.error(f"Voila is not installed beside {sys.executable}: run `make setup-playground`.")
    if not NOTEBOOK.exists():
        ap.error(f"The playground notebook {NOTEBOOK} is missing (a source checkout has it).")
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
