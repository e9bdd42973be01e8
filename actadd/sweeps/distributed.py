"""Sweep units on a Ray cluster: actors that each load the model once.

>>> with RayExecutor(RayOptions(address="auto", num_cpus=4)) as ray_executor:
...     df = run_sweep(spec, out="results/big", backend=ray_executor)

How it works:

- The driver (this process) keeps the run directory: it opens it, takes the lock, skips
  finished units on resume, writes every part (atomic, with checksums) as results come back,
  and builds the final tables. Actors only compute; they never touch the run directory, so
  the run store's rules are the same for a local and a Ray run, and either can resume the
  other's directory.
- Each actor loads the model once from its description (the sweep's ``model``: a name, a
  ``.gguf`` path that exists on every node, ``"tiny-llama"``), then computes units with
  :class:`actadd.sweeps.engine.UnitRunner`, the code the local run uses. Before any unit is
  sent, every actor's model is compared with the driver's (a fingerprint of the config,
  some weights and the tokenizer), so a node with another model file is refused.
- One unit is in flight per actor. When an actor dies (its process is killed, its node
  goes away), its unit goes back to the queue and a replacement actor is started; after
  ``max_retries`` losses of the same unit the sweep stops with the finished units saved.
  An exception raised by the unit's code is not retried: it is raised here.

Ray is an optional dependency (``pip install 'actadd[ray]'``); nothing here imports it
until :meth:`RayExecutor.connect`.

Known limits: the driver still loads the model once (``run_experiment`` validates the
config against it and writes ``env.json`` from it), which for a 7B model means the
driver's machine needs its memory too; loading only the config and tokenizer there is the
next step. The GPU path (``num_gpus > 0`` puts each actor's model on ``cuda``) has not
been run on a GPU yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from actadd.errors import ActAddError, ConfigError
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode
from actadd.sweeps import renamed
from actadd.sweeps.engine import Unit, UnitRunner
from actadd.sweeps.spec import SweepSpec

__all__ = [
    "ADDRESS_HELP",
    "DistributedError",
    "RayExecutor",
    "RayOptions",
    "UnitWorker",
    "model_fingerprint",
]
# the executor's name before it was told apart from the model backends (one release)
__getattr__ = renamed(__name__, {"RayBackend": "RayExecutor"})

ADDRESS_HELP = (
    "--ray takes no address (start a local Ray cluster here), 'auto' (join the cluster "
    "started on this machine with `ray start --head`), HOST:PORT (a head node's GCS port, "
    "6379 by default) or ray://HOST:10001 (Ray Client; needs pip install 'ray[client]')"
)


class DistributedError(ActAddError, RuntimeError):
    """A distributed sweep could not finish (workers kept dying, none could start)."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how the units run on Ray.

    Args:
        address: ``None`` starts a local cluster; ``"auto"``, ``"HOST:PORT"`` or
            ``"ray://HOST:PORT"`` join an existing one.
        workers: number of actors; default, as many as the cluster's resources hold
            (``CPUs / num_cpus``, or ``GPUs / num_gpus`` for GPU actors).
        num_cpus, num_gpus: Ray resources reserved by each actor.
        device: where each actor puts its model; default ``"cuda"`` when ``num_gpus > 0``.
        threads: torch CPU threads per actor; default ``max(1, int(num_cpus))``.
        max_retries: how often one unit may lose its worker before the sweep stops.
        local_cpus: CPUs a started local cluster offers (default: this machine's).
        start_timeout: seconds to wait for an actor to load its model.
    """

    address: str | None = None
    workers: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    device: str | None = None
    threads: int | None = None
    max_retries: int = 3
    local_cpus: int | None = None
    start_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ConfigError(
                f"Ray workers (--ray-workers) must be a whole number >= 1, got {self.workers!r}."
            )
        if self.num_cpus < 0 or self.num_gpus < 0 or (self.num_cpus == 0 and self.num_gpus == 0):
            raise ConfigError(
                "Ray actors need resources (--ray-cpus, --ray-gpus): num_cpus >= 0 and "
                "num_gpus >= 0, not both 0 "
                f"(got num_cpus={self.num_cpus}, num_gpus={self.num_gpus})."
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads per actor must be >= 1, got {self.threads}.")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}.")
        if self.address is not None and not isinstance(self.address, str):
            raise ConfigError(f"Ray address {self.address!r} is not a string. {ADDRESS_HELP}.")
        if self.address is not None and self.address != "auto":
            _host_port(self.address)  # raises on a malformed address

    @property
    def actor_device(self) -> str:
        return self.device or ("cuda" if self.num_gpus > 0 else "cpu")

    @property
    def actor_threads(self) -> int:
        return self.threads or max(1, int(self.num_cpus))


def _host_port(address: str) -> tuple[str, int]:
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT. {ADDRESS_HELP}.")
    return host, int(port)


def model_fingerprint(model: Model) -> str:
    """A short hash of what makes two loaded models compute the same numbers: the config's
    shape, a slice of the embedding, unembedding and last block, and the tokenizer."""
    import torch

    cfg = model.cfg
    h = hashlib.sha256(
        json.dumps(
            [cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_vocab, cfg.normalization_type],
            default=str,
        ).encode()
    )
    with torch.no_grad():
        for t in (model.W_E[:16], model.W_U[:, :16], model.blocks[-1].mlp.W_out[:16]):
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    if model.tokenizer is not None:
        h.update(str(encode(model, "Fingerprint: 12 weddings!")).encode())
    return h.hexdigest()[:16]


class UnitWorker:
    """The actor: loads the model once, then computes units (see the module docstring)."""

    def __init__(self, model_name: str | None, device: str, threads: int) -> None:
        import torch

        from actadd.models import load_model

        torch.set_num_threads(threads)
        self.model = load_model(model_name, device=device)
        self.fingerprint = model_fingerprint(self.model)
        self._spec_key: str | None = None
        self._runner: UnitRunner | None = None

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "model": self.fingerprint}

    def run(self, sweep: str, spec: SweepSpec, unit: Unit) -> dict[str, pd.DataFrame]:
        """Compute ``unit`` of ``spec``; ``sweep`` names the sweep (one ``map`` call), whose
        vectors and clean prefixes the actor caches until the next sweep."""
        import torch

        if sweep != self._spec_key:  # a new sweep (the suite reuses actors): fresh caches
            self._spec_key, self._runner = sweep, UnitRunner(spec, self.model)
        with torch.no_grad():
            return self._runner(unit)


@dataclass(eq=False)  # compared by identity: one slot per actor
class _Slot:
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)


class RayExecutor:
    """Compute sweep units on Ray actors (a :class:`actadd.sweeps.engine.Executor`).

    Use as a context manager, or call :meth:`connect` before and :meth:`close` after: the
    actors are kept between sweeps of the same model (``actadd suite``) and killed on close;
    a local cluster this object started is shut down. ``pids`` maps each live actor to its
    process id; ``retried`` lists the units that were recomputed after losing their worker,
    ``computed`` the units computed, ``done_by`` how many each actor process computed.
    """

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self._ray: Any = None
        self._started_cluster = False
        self._pools: dict[str, list[_Slot]] = {}
        self.retried: list[str] = []  # units recomputed after their worker died
        self.computed: list[str] = []  # units whose results came back, in arrival order
        self.done_by: Counter[int] = Counter()  # units per actor process id

    # ------------------------------------------------------------------ cluster

    def connect(self) -> RayExecutor:
        """Import Ray and connect to (or start) the cluster; a clear ConfigError otherwise.
        Joins a connection this process already has (``ray.init`` called before)."""
        if self._ray is not None:
            return self
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--ray needs Ray, an optional extra that is not installed here: "
                "pip install 'actadd[ray]' (or `make setup-ray`), or run without --ray."
            ) from None
        address = self.options.address
        if address not in (None, "auto"):
            self._check_reachable(address)
        if not ray.is_initialized():
            if address is None:
                self._check_local_gpus()  # before a cluster starts that could not hold one
                ray.init(
                    num_cpus=self.options.local_cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    log_to_driver=False,
                )
                self._started_cluster = True
            else:
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise ConfigError(
                        f"Could not join the Ray cluster at {address!r} ({first}). {ADDRESS_HELP}."
                    ) from None
        self._ray = ray
        try:
            self._check_resources()
        except ConfigError:
            self.close()
            raise
        return self

    def _check_local_gpus(self) -> None:
        """``num_gpus > 0`` on a local cluster needs a CUDA device here."""
        need = self.options.num_gpus
        if need <= 0:
            return
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < need:
            raise ConfigError(
                f"--ray-gpus {need:g} asks for GPUs per actor, but torch sees {have} CUDA "
                "device(s) here for the local Ray cluster; use --ray-gpus 0 (CPU actors) or "
                "join a cluster with GPUs (--ray ADDRESS)."
            )

    def _check_resources(self) -> None:
        """One actor's resources must fit the cluster, or no actor would ever start."""
        total = self._ray.cluster_resources()
        for flag, need, key in (
            ("--ray-gpus", self.options.num_gpus, "GPU"),
            ("--ray-cpus", self.options.num_cpus, "CPU"),
        ):
            have = float(total.get(key, 0))
            if need > have:
                raise ConfigError(
                    f"{flag} {need:g} asks for more than the Ray cluster has ({have:g} {key}s "
                    f"in all): no actor could start; lower {flag}."
                )

    @staticmethod
    def _check_reachable(address: str, timeout: float = 3.0) -> None:
        host, port = _host_port(address)
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            raise ConfigError(
                f"No Ray cluster answers at {address} ({exc.strerror or exc}). {ADDRESS_HELP}."
            ) from None

    def close(self) -> None:
        """Kill this executor's actors; shut down the local cluster if it started one."""
        if self._ray is None:
            return
        for slots in self._pools.values():
            for slot in slots:
                self._ray.kill(slot.actor)
        self._pools.clear()
        if self._started_cluster:
            self._ray.shutdown()
            self._started_cluster = False
        self._ray = None

    def __enter__(self) -> RayExecutor:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> dict[int, int]:
        """{actor number: process id} of the live actors."""
        return {
            i: s.info["pid"]
            for slots in self._pools.values()
            for i, s in enumerate(slots)
            if "pid" in s.info
        }

    def default_workers(self) -> int:
        res = self._ray.cluster_resources()
        o = self.options
        if o.num_gpus > 0:
            n = int(res.get("GPU", 0) // o.num_gpus)
        else:
            n = int(res.get("CPU", 0) // o.num_cpus)
        if n < 1:
            raise ConfigError(
                f"The Ray cluster offers {res.get('CPU', 0)} CPUs and {res.get('GPU', 0)} GPUs: "
                f"not enough for one actor of num_cpus={o.num_cpus}, num_gpus={o.num_gpus}."
            )
        return n

    # ------------------------------------------------------------------ actors

    def _new_actor(self, model_name: str | None) -> _Slot:
        ray, o = self._ray, self.options
        cls = ray.remote(UnitWorker).options(num_cpus=o.num_cpus, num_gpus=o.num_gpus)
        return _Slot(cls.remote(model_name, o.actor_device, o.actor_threads))

    def _pool(self, model_name: str | None, model: Model, n: int) -> list[_Slot]:
        """``n`` actors holding ``model_name``, started (or reused) and checked against the
        driver's ``model``."""
        key = json.dumps(model_name)
        slots = self._pools.setdefault(key, [])
        slots.extend(self._new_actor(model_name) for _ in range(max(0, n - len(slots))))
        expected = model_fingerprint(model)
        for slot in slots:
            if not slot.info:
                slot.info = self._ready(slot, model_name)
            if slot.info["model"] != expected:
                raise ConfigError(
                    f"The Ray actor on {slot.info['host']} loaded {model_name or 'smollm2'!r} "
                    "as a different model than this process did (weights or tokenizer "
                    "differ): install the same model file on every node."
                )
        return slots

    def _ready(self, slot: _Slot, model_name: str | None) -> dict[str, Any]:
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        try:
            return self._ray.get(slot.actor.ready.remote(), timeout=self.options.start_timeout)
        except GetTimeoutError:
            raise DistributedError(
                f"No Ray actor started within {self.options.start_timeout:.0f} s: the cluster "
                "may lack the resources asked for (num_cpus, num_gpus per actor)."
            ) from None
        except (RayActorError, RayTaskError) as exc:
            raise DistributedError(
                f"A Ray actor could not load the model {model_name or 'smollm2'!r}: {_cause(exc)}"
            ) from None

    # ------------------------------------------------------------------ the loop

    def map(
        self, spec: SweepSpec, model: Model, todo: list[Unit]
    ) -> Iterator[tuple[Unit, dict[str, pd.DataFrame]]]:
        """Yield ``(unit, tables)`` for each unit of ``todo`` as the actors finish them."""
        if not todo:
            return
        self.connect()
        ray = self._ray
        from ray.exceptions import RayActorError, RayTaskError

        n = min(len(todo), self.options.workers or self.default_workers())
        slots = self._pool(spec.model, model, n)
        key = json.dumps(spec.model)
        idle: deque[_Slot] = deque(slots[:n])
        queue: deque[Unit] = deque(todo)
        inflight: dict[Any, tuple[_Slot, Unit]] = {}
        starting: dict[Any, tuple[_Slot, float]] = {}
        losses: Counter[str] = Counter()
        sweep = uuid.uuid4().hex
        while queue or inflight:
            while queue and idle:
                slot, unit = idle.popleft(), queue.popleft()
                inflight[slot.actor.run.remote(sweep, spec, unit)] = (slot, unit)
            if not inflight and not starting:
                raise DistributedError("Every Ray actor is gone and none could be restarted.")
            ready, _ = ray.wait([*inflight, *starting], num_returns=1, timeout=5.0)
            if not ready:
                self._check_start_timeouts(starting)
                continue
            ref = ready[0]
            if ref in starting:
                slot, _since = starting.pop(ref)
                try:
                    slot.info = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    self._forget(key, slot)
                    raise DistributedError(
                        f"A replacement Ray actor could not load the model: {_cause(exc)}"
                    ) from None
                idle.append(slot)
                continue
            slot, unit = inflight.pop(ref)
            try:
                tables = ray.get(ref)
            except RayTaskError as exc:  # the unit's own code raised: not a worker loss
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, ActAddError) else exc) from None
            except RayActorError as exc:
                losses[unit.key] += 1
                self.retried.append(unit.key)
                if losses[unit.key] > self.options.max_retries:
                    raise DistributedError(
                        f"Unit {unit.key} lost its Ray worker {losses[unit.key]} times "
                        f"(last: {_cause(exc)}). Finished units are saved: rerun with --resume."
                    ) from None
                queue.appendleft(unit)
                self._forget(key, slot)
                new = self._new_actor(spec.model)
                self._pools[key].append(new)
                starting[new.actor.ready.remote()] = (new, time.monotonic())
                continue
            idle.append(slot)
            self.computed.append(unit.key)
            self.done_by[slot.info.get("pid", -1)] += 1
            yield unit, tables

    def _forget(self, key: str, slot: _Slot) -> None:
        if slot in self._pools.get(key, []):
            self._pools[key].remove(slot)
        try:
            self._ray.kill(slot.actor)
        except Exception:  # already gone
            pass

    def _check_start_timeouts(self, starting: dict[Any, tuple[_Slot, float]]) -> None:
        now = time.monotonic()
        if any(now - since > self.options.start_timeout for _, since in starting.values()):
            raise DistributedError(
                f"A replacement Ray actor did not start within {self.options.start_timeout:.0f}"
                " s (the cluster may have lost the resources for it). Finished units are "
                "saved: rerun with --resume."
            )


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return next((line for line in reversed(text) if line.strip()), type(exc).__name__)
