"""Steering-vector files: actadd's ``.safetensors`` format, and the registry of other formats.

A vector file holds one float32 tensor ``"vector"`` of shape ``[k, d_model]`` and, under the
metadata key ``"actadd"``, a JSON record: the ``resid_pre`` layer, the model name, the shape,
the provenance, the sha256 of the tensor data and the sha256 of the record itself (both
checked on load), and, when known, ``resid_norm``: the typical residual norm of the model at
that layer, with ``resid_norm_reference`` naming how it was measured
(:mod:`actadd.core.sizes`), so ``actadd vector show`` prints the vector's relative size
without loading the model. :meth:`SteeringVector.save <actadd.core.vectors.SteeringVector.save>` and
``.load`` call :func:`write_vector_file` and :func:`read_vector_file`.

Other tools' formats plug in through :func:`register_format` (``SteeringVector.to_gguf`` /
``.from_gguf`` look up ``"gguf"``, which :mod:`actadd.interop.gguf` registers), so the vector
never imports the tier above it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.vector_labels import REFERENCE
from actadd.errors import VectorFileError, VectorFileWarning

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PROVIDERS",
    "VectorFormat",
    "read_vector_file",
    "register_format",
    "vector_format",
    "write_error",
    "write_vector_file",
]

# 3: the metadata also carries "metadata_sha256", the sha256 of the rest of the metadata
#    (layer, k, coeff, provenance, ... and the tensor's "sha256"), checked on load
# 2: the metadata carries "sha256" of the tensor data, checked on load
# 1: no checksum (the data is float32, as since)
FORMAT_VERSION = 3
FORMAT = "actadd.steering_vector"


def write_vector_file(
    path: str | Path,
    tensor: Float[Tensor, "pos d_model"],
    layer: int,
    model_name: str | None,
    provenance: dict[str, Any],
    label: str,
    *,
    resid_norm: float | None = None,
) -> Path:
    """Write a vector file atomically (see :meth:`SteeringVector.save`); ``label`` names the
    vector in the error for a provenance that is not JSON-able."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_dir():
        raise VectorFileError(
            f"{path} is a directory; save the vector to a file path inside it, "
            f"e.g. {path / 'vector.safetensors'}."
        )
    data = tensor.detach().to("cpu", torch.float32).contiguous()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layer": layer,
        "model_name": model_name,
        "d_model": data.shape[1],
        "k": data.shape[0],
        "dtype": "float32",
        "sha256": _tensor_sha256(data),
        "provenance": provenance,
    }
    if resid_norm is not None:
        meta |= {"resid_norm": float(resid_norm), "resid_norm_reference": REFERENCE}
    try:
        # as load() will see it (e.g. int dict keys become strings), then hashed
        meta = json.loads(json.dumps(meta))
    except (TypeError, ValueError) as exc:
        raise VectorFileError(
            f"Cannot save {label}: its provenance is not JSON-able ({exc})."
        ) from None
    meta["metadata_sha256"] = _metadata_sha256(meta)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error("a steering vector", path, exc) from None
    os.close(fd)
    try:
        save_file({"vector": data}, tmp, metadata={"actadd": json.dumps(meta)})
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; vectors are for sharing
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error("a steering vector", path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_vector_file(
    path: str | Path,
) -> tuple[Tensor, int, str | None, dict[str, Any], float | None]:
    """``(tensor, layer, model_name, provenance, resid_norm)`` of a vector file whose metadata
    and checksums are sound; one :class:`VectorFileError` line naming the file otherwise.
    ``resid_norm`` is ``None`` for a file without one, or one measured on another version of
    the reference text (:data:`actadd.core.sizes.REFERENCE`)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise VectorFileError(f"No steering-vector file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["actadd"])
            tensor = f.get_tensor("vector")
    except Exception as exc:
        raise VectorFileError(
            f"{path} is not a readable actadd steering-vector file "
            f"({type(exc).__name__}: {exc}). Files are written by SteeringVector.save()."
        ) from exc
    layer, model_name, provenance = _check_metadata(path, meta, tensor)
    return tensor, layer, model_name, provenance, _resid_norm(path, meta)


def _resid_norm(path: Path, meta: dict[str, Any]) -> float | None:
    value = meta.get("resid_norm")
    if value is None or meta.get("resid_norm_reference") != REFERENCE:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise VectorFileError(f"{path}: metadata 'resid_norm' is {value!r}; it must be > 0.")
    return float(value)


def _metadata_sha256(meta: dict[str, Any]) -> str:
    """sha256 of a vector file's metadata, its own ``metadata_sha256`` left out: canonical
    JSON (sorted keys, no spaces), so it does not depend on how the header was written."""
    rest = {key: value for key, value in meta.items() if key != "metadata_sha256"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_metadata(
    path: Path, meta: Any, tensor: Tensor
) -> tuple[int, str | None, dict[str, Any]]:
    """``(layer, model_name, provenance)`` of a vector file whose metadata and checksums are
    sound; one :class:`VectorFileError` line naming the file otherwise."""
    if not isinstance(meta, dict):
        raise VectorFileError(
            f"{path}: metadata is a JSON {type(meta).__name__}, not an actadd steering "
            "vector's record (a JSON object)."
        )
    if meta.get("format") != FORMAT:
        raise VectorFileError(f"{path}: metadata is not an actadd steering vector.")
    version = meta.get("format_version", 1)
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= FORMAT_VERSION
    ):
        raise VectorFileError(
            f"{path}: format version {version!r} is not one this actadd reads "
            f"(1..{FORMAT_VERSION}); it may come from a newer actadd."
        )
    corrupt = "(the file is corrupt or was edited); save the vector again"
    if version >= 3 and meta.get("metadata_sha256") != _metadata_sha256(meta):
        raise VectorFileError(
            f"{path}: the metadata (layer, k, provenance, ...) does not match the sha256 "
            f"recorded in the file {corrupt}."
        )
    for key, least in (("layer", 0), ("k", 1), ("d_model", 1)):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            what = "is missing" if key not in meta else f"is {value!r}"
            raise VectorFileError(f"{path}: metadata {key!r} {what}; it must be an int >= {least}.")
    model_name = meta.get("model_name")
    if model_name is not None and not isinstance(model_name, str):
        raise VectorFileError(
            f"{path}: metadata 'model_name' is {model_name!r}; it must be a string or null."
        )
    provenance = meta.get("provenance", {})
    if not isinstance(provenance, dict):
        raise VectorFileError(
            f"{path}: metadata 'provenance' is a {type(provenance).__name__}; it must be a "
            "JSON object."
        )
    if tuple(tensor.shape) != (meta["k"], meta["d_model"]):
        raise VectorFileError(
            f"{path}: tensor shape {tuple(tensor.shape)} disagrees with its metadata "
            f"({meta['k']}, {meta['d_model']})."
        )
    if tensor.dtype != torch.float32:
        raise VectorFileError(
            f"{path}: the tensor is {tensor.dtype}, but vector files hold float32 {corrupt}."
        )
    expected = meta.get("sha256")
    if (version >= 2 or expected is not None) and _tensor_sha256(tensor) != expected:
        raise VectorFileError(
            f"{path}: the tensor data does not match the sha256 recorded in the file {corrupt}."
        )
    if expected is None:
        warnings.warn(
            f"{path} is a format-{version} vector file with no checksum, so its data cannot "
            "be verified; load and save it again to add one.",
            VectorFileWarning,
            stacklevel=4,  # the caller of SteeringVector.load
        )
    return meta["layer"], model_name, provenance


def write_error(what: str, path: Path, exc: BaseException) -> VectorFileError:
    """One line for a write that failed (a full disk, no permission), with the free space."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    try:
        free = f"; {shutil.disk_usage(path.parent).free:,} bytes free there"
    except OSError:
        free = ""
    return VectorFileError(f"Cannot write {what} to {path}: {reason}{free}. Nothing was written.")


def _tensor_sha256(tensor: Tensor) -> str:
    """sha256 of a CPU tensor's raw bytes (C order)."""
    return hashlib.sha256(tensor.detach().to("cpu").contiguous().numpy().tobytes()).hexdigest()


# ---------------------------------------------------------------------- other formats


@dataclass(frozen=True)
class VectorFormat:
    """Another tool's vector file format: ``write(vector, path, **options) -> Path`` and
    ``read(path, model, **options) -> SteeringVector``."""

    name: str
    write: Callable[..., Path]
    read: Callable[..., Any]


_FORMATS: dict[str, VectorFormat] = {}

#: format -> the module that registers it when imported. A format is looked up by name, so
#: the vector (core) does not import the tier that implements it (interop); the module is
#: imported on first use, for a caller who has not imported it yet.
PROVIDERS: dict[str, str] = {"gguf": "actadd.interop.gguf"}


def register_format(name: str, *, write: Callable[..., Path], read: Callable[..., Any]) -> None:
    """Make ``name`` a file format of :class:`SteeringVector` (the provider module calls this)."""
    _FORMATS[name] = VectorFormat(name, write, read)


def vector_format(name: str) -> VectorFormat:
    """The registered format ``name``, importing its provider module on first use."""
    if name not in _FORMATS and name in PROVIDERS:
        importlib.import_module(PROVIDERS[name])
    if name not in _FORMATS:
        known = sorted(_FORMATS.keys() | PROVIDERS.keys())
        raise VectorFileError(f"No steering-vector file format {name!r}; known: {known}.")
    return _FORMATS[name]
