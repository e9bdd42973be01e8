"""Reading llama.cpp control-vector GGUF files: :func:`read_control_vector` validates a file as
llama.cpp's loader would and returns a :class:`ControlVectorFile`; :func:`describe_file`
summarizes one (``actadd vector show``).

Anything llama.cpp would reject (another tensor name, ``direction.0``, a non-F32 or non-1-D
tensor, unequal lengths, a repeated name) or repeng would (no ``controlvector.model_hint``)
is one :class:`~actadd.errors.VectorFileError` line naming the file. Turning the directions
into steering vectors is :func:`actadd.interop.gguf.load_control_vector`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actadd.core.vector_labels import NO_RESID_NORM, REFERENCE, describe
from actadd.errors import VectorFileError
from actadd.interop.gguf_names import (
    ARCH,
    KEY_ARCH,
    KEY_HINT,
    KEY_LAYER_COUNT,
    KEY_PROVENANCE,
    PROVENANCE_FORMAT,
    layer_for_direction,
)

__all__ = ["ControlVectorFile", "describe_file", "read_control_vector"]

_DIRECTION = re.compile(r"direction\.(\d+)")


@dataclass(frozen=True)
class ControlVectorFile:
    """A control-vector GGUF file, validated as llama.cpp's loader would.

    Attributes:
        path: where it was read from.
        model_hint: ``controlvector.model_hint``.
        layer_count: ``controlvector.layer_count`` if present (llama.cpp ignores it).
        directions: ``{N: float32 array [n_embd]}`` for each ``direction.N``, sorted by N.
        provenance: actadd's record (``actadd.provenance``) if actadd wrote the file.
    """

    path: Path
    model_hint: str
    layer_count: int | None
    directions: dict[int, np.ndarray]
    provenance: dict[str, Any] | None = field(default=None)

    @property
    def n_embd(self) -> int:
        return len(next(iter(self.directions.values())))

    @property
    def layers(self) -> dict[int, int]:
        """``{resid_pre layer: N}``: where actadd adds each ``direction.N``."""
        return {layer_for_direction(n): n for n in self.directions}

    def table(self) -> list[dict[str, Any]]:
        """One record per direction: ``direction, resid_pre, norm`` (and, for a file actadd
        wrote, ``relative_norm``, the norm over the typical residual norm at that layer
        recorded in the file (:mod:`actadd.core.sizes`), and the actadd label)."""
        saved = (self.provenance or {}).get("vectors", {})
        out = []
        for n, row in self.directions.items():
            rec = {"direction": n, "resid_pre": layer_for_direction(n)}
            rec["norm"] = float(np.linalg.norm(row.astype(np.float64)))
            record = saved.get(str(n), {})
            resid = record.get("resid_norm")
            if record.get("resid_norm_reference") == REFERENCE and isinstance(resid, (int, float)):
                rec["relative_norm"] = rec["norm"] / resid if resid > 0 else math.nan
            if record.get("provenance"):
                rec["made_by_actadd"] = describe(record["provenance"])
            out.append(rec)
        return out


def _field_value(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    return f.contents()


def read_control_vector(path: str | Path) -> ControlVectorFile:
    """Read and validate a control-vector file; raise :class:`VectorFileError` on anything
    llama.cpp would reject (or repeng: a missing ``model_hint``)."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise VectorFileError(f"No control-vector file at {path}.")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise VectorFileError(
            f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})."
        ) from exc
    arch = _field_value(reader, KEY_ARCH)
    if arch != ARCH:
        what = "has no general.architecture" if arch is None else f"is a {arch!r} file"
        raise VectorFileError(
            f"{path} {what}, not a control vector (general.architecture = {ARCH!r})."
            + (" Is it the model itself?" if arch not in (None, ARCH) else "")
        )
    hint = _field_value(reader, KEY_HINT)
    if hint is None:
        raise VectorFileError(
            f"{path} has no {KEY_HINT}: control-vector files carry the model's architecture "
            "there (llama.cpp's cvector-generator and repeng write it; repeng refuses files "
            "without it). Rewrite it with model_hint=..."
        )
    if not isinstance(hint, str):
        raise VectorFileError(f"{path}: {KEY_HINT} must be a string, got {hint!r}.")
    count = _field_value(reader, KEY_LAYER_COUNT)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise VectorFileError(f"{path}: {KEY_LAYER_COUNT} must be an integer, got {count!r}.")
    directions = _read_directions(reader, path)
    provenance = None
    raw = _field_value(reader, KEY_PROVENANCE)
    if raw is not None:
        try:
            provenance = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise VectorFileError(f"{path}: {KEY_PROVENANCE} is not valid JSON ({exc}).") from exc
        if not isinstance(provenance, dict) or provenance.get("format") != PROVENANCE_FORMAT:
            raise VectorFileError(f"{path}: {KEY_PROVENANCE} is not an actadd record.")
        _check_provenance(path, provenance, directions)
    return ControlVectorFile(path, hint, count, directions, provenance)


def _check_provenance(path: Path, record: dict[str, Any], directions: dict[int, Any]) -> None:
    """One error line unless ``actadd.provenance`` has the shape :func:`write_control_vector`
    writes: ``{"vectors": {"N": {"layer": N+1, "model_name": str|null, "provenance": {}}}}``."""
    bad = f"{path}: {KEY_PROVENANCE} is malformed:"
    _check_name_and_object(record, "vectors", bad, ' {"N": record} keyed by direction index')
    vectors = record.get("vectors", {})
    for key, entry in vectors.items():
        where = f"{bad} 'vectors'[{key!r}]"
        if not key.isdigit() or int(key) not in directions:
            raise VectorFileError(
                f"{where} names no direction of the file (it has direction."
                f"{', direction.'.join(map(str, directions))})."
            )
        if not isinstance(entry, dict):
            raise VectorFileError(f"{where} is a JSON {type(entry).__name__}, not an object.")
        layer = entry.get("layer", layer_for_direction(int(key)))
        if layer != layer_for_direction(int(key)) or isinstance(layer, bool):
            raise VectorFileError(
                f"{where} says resid_pre layer {layer!r}, but direction.{key} is added at "
                f"resid_pre {layer_for_direction(int(key))}."
            )
        _check_name_and_object(entry, "provenance", f"{where}:")


def _check_name_and_object(record: dict[str, Any], key: str, bad: str, what: str = "") -> None:
    """One error line, starting ``bad``, unless ``record``'s ``"model_name"`` is a string or
    null and its ``key`` (absent: ``{}``) is a JSON object; ``what`` ends the message,
    saying what the object holds."""
    name = record.get("model_name")
    if name is not None and not isinstance(name, str):
        raise VectorFileError(f"{bad} 'model_name' is {name!r}, not a string or null.")
    value = record.get(key, {})
    if not isinstance(value, dict):
        raise VectorFileError(
            f"{bad} {key!r} is a JSON {type(value).__name__}, not an object{what}."
        )


def _read_directions(reader, path: Path) -> dict[int, np.ndarray]:
    import gguf

    if not reader.tensors:
        raise VectorFileError(f"{path} has no direction tensors (direction.N, N >= 1).")
    out: dict[int, np.ndarray] = {}
    n_embd = None
    for t in reader.tensors:
        m = _DIRECTION.fullmatch(t.name)
        if m is None:
            raise VectorFileError(
                f"{path}: tensor {t.name!r} is not named direction.N; llama.cpp rejects the "
                "whole file (only direction.1, direction.2, ... are allowed)."
            )
        n = int(m.group(1))
        if n == 0:
            raise VectorFileError(
                f"{path}: direction.0 is not allowed (llama.cpp rejects the file: direction.N "
                "is added to the output of block N, and N starts at 1 = actadd resid_pre 2)."
            )
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise VectorFileError(
                f"{path}: {t.name} is {t.tensor_type.name}, but direction tensors must be F32 "
                "(llama.cpp rejects other types)."
            )
        ne = [int(x) for x in t.shape]  # ggml order: ne[0] is the contiguous dimension
        if any(x != 1 for x in ne[1:]):
            raise VectorFileError(
                f"{path}: {t.name} has shape {ne} (ggml order); direction tensors must be "
                "one-dimensional, n_embd floats."
            )
        row = np.array(t.data, dtype=np.float32).reshape(-1)
        if n_embd is None:
            n_embd = row.size
        elif row.size != n_embd:
            raise VectorFileError(
                f"{path}: {t.name} has {row.size} floats but earlier directions have {n_embd}; "
                "all must have the model's n_embd."
            )
        if not np.isfinite(row).all():
            raise VectorFileError(f"{path}: {t.name} contains NaN or inf.")
        if n in out:
            raise VectorFileError(f"{path}: {t.name} appears twice.")
        out[n] = row
    return dict(sorted(out.items()))


def describe_file(path: str | Path) -> str:
    """A human-readable summary of a control-vector file (``actadd vector show``)."""
    cv = read_control_vector(path)
    prov = cv.provenance or {}
    lines = [
        f"{cv.path}",
        f"  model_hint: {cv.model_hint}   n_embd: {cv.n_embd}   directions: {len(cv.directions)}"
        + (f"   layer_count: {cv.layer_count}" if cv.layer_count is not None else ""),
    ]
    if prov:
        lines.append(
            f"  written by actadd {prov.get('actadd_version')} for {prov.get('model_name')} "
            f"(coefficient baked in: {prov.get('coefficient_baked_in')})"
        )
    else:
        lines.append("  not written by actadd (no actadd.provenance)")
    lines.append("  direction  resid_pre      norm  × resid  made by actadd")
    table = cv.table()
    for rec in table:
        label = rec.get("made_by_actadd", "")
        norm, rel = rec["norm"], rec.get("relative_norm")
        shown = f"{norm:9.4g}" if math.isfinite(norm) else "      nan"
        rel_shown = f"{rel:7.2g}" if rel is not None else "      ?"
        lines.append(
            f"  {rec['direction']:>9}  {rec['resid_pre']:>9}  {shown}  {rel_shown}  {label}"
        )
    if any("relative_norm" not in rec for rec in table):
        lines.append(f"  × resid ?: {NO_RESID_NORM}")
    return "\n".join(lines)
