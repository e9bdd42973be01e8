"""Steering vectors as llama.cpp control vectors: GGUF export, import and inspection.

llama.cpp's ``--control-vector FILE`` / ``--control-vector-scaled FILE:S`` (and repeng,
EasySteer, ...) share one small GGUF format. What this module writes and accepts, as read
from llama.cpp (``common/common.cpp`` ``common_control_vector_load_one``,
``src/llama-adapter.cpp``, ``src/models/llama.cpp``, ``tools/cvector-generator``) and repeng
(``extract.py`` ``ControlVector.export_gguf`` / ``import_gguf``):

- keys ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the model's
  architecture name, e.g. ``"llama"``; repeng refuses a file without it) and
  ``controlvector.layer_count`` (ignored by llama.cpp);
- one tensor ``direction.N`` per layer, ``N >= 1``, F32, one-dimensional, ``n_embd`` floats.
  llama.cpp rejects the whole file on any other tensor, on ``direction.0``, on a non-F32 or
  non-1-D tensor, or on unequal lengths; ggml's GGUF reader rejects repeated tensor names.
  Several files are summed, each times its strength.

**Layers.** llama.cpp adds ``direction.N`` at every position to the *output* of block ``N``
(``build_cvec(cur, il)`` after the block's residual add), which is the residual stream
entering block ``N + 1``: TransformerLens ``blocks.{N+1}.hook_resid_pre``. So an actadd
vector at ``resid_pre`` layer ``L`` is written as ``direction.{L-1}``. ``L = 1`` would be
``direction.0`` (the output of block 0), which llama.cpp rejects, and ``L = 0`` (the
embeddings) has no slot at all; ``L = n_layers`` (after the last block) is
``direction.{n_layers-1}``.
repeng uses the same convention (``direction.i`` is the output of HF ``model.layers[i]``).
llama.cpp's own ``cvector-generator`` reads the output of block ``i`` but names it
``direction.{i+1}``, so its vectors are *applied one layer above where they were
measured*; importing one here follows the loader (``direction.N`` → ``resid_pre N+1``),
which is where llama.cpp adds it.

**The coefficient is baked in.** The tensor written is exactly what actadd adds
(``coeff · (h_L(p+) − h_L(p−))``, averaged to one row), so ``--control-vector FILE`` steers
like actadd at that coefficient, and ``--control-vector-scaled FILE:s`` scales it further.

**Provenance** (the actadd vector's record, model name, d_model, layer map) is a JSON string
under the extra key ``actadd.provenance``, which llama.cpp and repeng ignore; a file with it
imports back to the same vectors (bit-exact) with their provenance.

**The leading token.** actadd prepends ``<|endoftext|>`` (id 0) on SmolLM2; the GGUF sets
``add_bos_token = false``, so llama.cpp does not. All-position steering then lands on a
different first token. To reproduce actadd's numbers in llama.cpp, feed id 0 first (in
``llama-completion``, start the prompt with ``<|endoftext|>``: prompts are tokenized with
special tokens parsed). :mod:`actadd.interop.llamacpp` does this.

**Where it lives.** This module writes files (:func:`write_control_vector`) and loads them
as :class:`~actadd.core.vectors.SteeringVector` objects (:func:`load_control_vector`,
:func:`load_one`), and registers itself as the ``"gguf"`` vector format, which
``SteeringVector.to_gguf`` / ``.from_gguf`` use. The keys and the layer mapping are
:mod:`actadd.interop.gguf_names`; reading and validating a file is
:mod:`actadd.interop.gguf_read`. Every public name of the three is importable from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from actadd._io import atomic_write as _atomic
from actadd.core.sizes import reference_norms
from actadd.core.vector_files import register_format, write_error
from actadd.core.vector_labels import REFERENCE
from actadd.core.vectors import SteeringVector, check_compatible
from actadd.errors import SteeringError, VectorFileError
from actadd.interop import gguf_names, gguf_read
from actadd.interop.gguf_names import (
    ARCH,
    KEY_ARCH,  # noqa: F401 (re-exported)
    KEY_HINT,
    KEY_LAYER_COUNT,
    KEY_PROVENANCE,
    KNOWN_HINTS,
    LAYER_CONVENTION,
    PROVENANCE_FORMAT,
    PROVENANCE_VERSION,
    direction_for_layer,
    layer_for_direction,
    model_hint_for,
)
from actadd.interop.gguf_read import (
    ControlVectorFile,  # noqa: F401 (re-exported)
    describe_file,  # noqa: F401 (re-exported)
    read_control_vector,
)

# every public name of the keys/mapping and reading modules, and this module's own
__all__ = [
    *gguf_names.__all__,
    *gguf_read.__all__,
    "Vectors",
    "load_control_vector",
    "load_one",
    "write_control_vector",
]

Vectors = SteeringVector | Sequence[SteeringVector] | Mapping[int, SteeringVector]


# ---------------------------------------------------------------------- export


def _as_layer_map(vectors: Vectors) -> dict[int, SteeringVector]:
    if isinstance(vectors, SteeringVector):
        items = [vectors]
    elif isinstance(vectors, Mapping):
        for key, vec in vectors.items():
            if not isinstance(vec, SteeringVector):
                raise SteeringError(f"vectors[{key!r}] is a {type(vec).__name__}, not a vector.")
            if key != vec.layer:
                raise SteeringError(
                    f"vectors[{key!r}] holds a vector at resid_pre layer {vec.layer}; the keys "
                    "of a {layer: vector} set must be the vectors' layers."
                )
        items = list(vectors.values())
    else:
        items = list(vectors)
        bad = [type(v).__name__ for v in items if not isinstance(v, SteeringVector)]
        if bad:
            raise SteeringError(f"Expected SteeringVectors, got {bad}.")
    if not items:
        raise SteeringError("No vectors to write: give a vector, a list, or {layer: vector}.")
    out: dict[int, SteeringVector] = {}
    for vec in items:
        if vec.layer in out:
            raise SteeringError(
                f"Two vectors at resid_pre layer {vec.layer}; a control-vector file holds one "
                "direction per layer (ggml rejects repeated tensor names). Add them first "
                "(v1 + v2)."
            )
        out[vec.layer] = vec
    d = {v.d_model for v in out.values()}
    if len(d) > 1:
        raise SteeringError(f"The vectors have different d_model {sorted(d)}; one file, one model.")
    return dict(sorted(out.items()))


def _one_row(vec: SteeringVector) -> np.ndarray:
    if vec.k != 1:
        raise SteeringError(
            f"{vec.describe()} has {vec.k} rows, but a llama.cpp control vector is one "
            "d_model vector added at every position. Reduce it first: v.mean(skip_first=True) "
            "(mean without the leading-token row, which is ≈ 0 for a pair), v.mean(), or "
            "v.rows([i]) for one position."
        )
    return vec.tensor[0].detach().to("cpu", torch.float32).contiguous().numpy()


def write_control_vector(
    vectors: Vectors,
    path: str | Path,
    *,
    model=None,
    model_hint: str | None = None,
) -> Path:
    """Write one or more single-row vectors as a llama.cpp control-vector GGUF file.

    Args:
        vectors: a :class:`SteeringVector`, a list of them at distinct layers, or
            ``{layer: vector}``. Each must have one row (``[1, d_model]``) and a ``resid_pre``
            layer ``>= 2``; it is written as ``direction.{layer - 1}``, coefficient included.
        path: the ``.gguf`` file to write (atomically: temporary file, then rename).
        model: optional ``HookedTransformer`` to check the vectors against (d_model, layer
            range, model name) and to take ``model_hint`` from.
        model_hint: ``controlvector.model_hint``; default: the model's architecture
            (``"llama"`` for SmolLM2), as llama.cpp's cvector-generator and repeng write it.

    Returns the path written.
    """
    import gguf

    path = Path(path)
    if path.is_dir():
        raise VectorFileError(
            f"{path} is a directory; write the control vector to a file path inside it, "
            f"e.g. {path / 'vector.gguf'}."
        )
    layer_map = _as_layer_map(vectors)
    rows = {direction_for_layer(L): _one_row(v) for L, v in layer_map.items()}
    if model is not None:
        for vec in layer_map.values():
            check_compatible(vec, model)
    hint = model_hint if model_hint is not None else _default_hint(layer_map, model)
    if not isinstance(hint, str) or not hint:
        raise SteeringError(f"model_hint must be a non-empty string, got {hint!r}.")
    names = {v.model_name for v in layer_map.values()} - {None}
    record = {
        "format": PROVENANCE_FORMAT,
        "format_version": PROVENANCE_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "actadd_version": _actadd_version(),
        "model_name": names.pop() if len(names) == 1 else None,
        "d_model": next(iter(layer_map.values())).d_model,
        "layer_convention": LAYER_CONVENTION,
        "coefficient_baked_in": True,
        "leading_token": _leading_token(model),
        "vectors": {
            str(direction_for_layer(L)): {
                "layer": L,
                "model_name": v.model_name,
                "norm": float(v.norms()[0]),
                "resid_norm": v.resid_norm,
                "resid_norm_reference": REFERENCE if v.resid_norm is not None else None,
                "provenance": v.provenance,
            }
            for L, v in layer_map.items()
        },
    }

    def write(tmp: Path) -> None:
        writer = gguf.GGUFWriter(str(tmp), ARCH)  # also sets general.architecture
        try:
            writer.add_string(KEY_HINT, hint)
            writer.add_int32(KEY_LAYER_COUNT, len(rows))  # int32, as cvector-generator writes it
            writer.add_string(KEY_PROVENANCE, json.dumps(record, default=str))
            for index, row in rows.items():
                writer.add_tensor(f"direction.{index}", row)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()

    try:
        return _atomic(path, write)
    except OSError as exc:  # a full disk: gguf's writer says "N requested and M written"
        raise write_error("a control vector", path, exc) from None


def _default_hint(layer_map: dict[int, SteeringVector], model) -> str:
    if model is not None:
        return model_hint_for(model)
    names = {v.model_name for v in layer_map.values()}
    if len(names) == 1 and (name := names.pop()) in KNOWN_HINTS:
        return KNOWN_HINTS[name]
    raise SteeringError(
        f"Cannot choose controlvector.model_hint for vectors of {sorted(map(str, names))}: pass "
        "model_hint= (the architecture as llama.cpp names it, e.g. 'llama') or model=."
    )


def _leading_token(model) -> str | None:
    if model is None or model.tokenizer is None:
        return None
    return getattr(model.tokenizer, "bos_token", None)


def _actadd_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("actadd")
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------- import


def load_control_vector(
    path: str | Path, model=None, *, allow_other_model: bool = False
) -> dict[int, SteeringVector]:
    """Every ``direction.N`` of a control-vector file as ``{resid_pre layer N+1: vector}``.

    Each vector has one row (use ``align="all"``, llama.cpp's convention). With ``model``
    they are checked against it (n_embd = d_model; every ``N + 1 <= n_layers``, since
    llama.cpp silently ignores directions past the last block; the model name if actadd
    wrote the file, unless ``allow_other_model``) and put on its device. Files actadd wrote
    come back with their provenance; others get ``{"kind": "gguf", ...}`` (described as
    ``direction.N from FILE``). Each carries the typical residual norm at its layer
    (``resid_norm``, :mod:`actadd.core.sizes`): measured on ``model`` when given, else the one
    recorded in the file by actadd, else none.
    """
    cv = read_control_vector(path)
    if model is not None:
        d_model, n_layers = model.cfg.d_model, model.cfg.n_layers
        if cv.n_embd != d_model:
            raise VectorFileError(
                f"{cv.path}: directions have n_embd {cv.n_embd} but {model.cfg.model_name} has "
                f"d_model {d_model} (model_hint {cv.model_hint!r})."
            )
        past = [n for n in cv.directions if layer_for_direction(n) > n_layers]
        if past:
            raise VectorFileError(
                f"{cv.path}: direction.{past[0]} is past the last block of "
                f"{model.cfg.model_name} ({n_layers} blocks: direction.1..{n_layers - 1} "
                "allowed); llama.cpp would ignore it silently."
            )
    saved = (cv.provenance or {}).get("vectors", {})
    measured = reference_norms(model) if model is not None else {}
    out: dict[int, SteeringVector] = {}
    for n, row in cv.directions.items():
        layer = layer_for_direction(n)
        record = saved.get(str(n))
        resid_norm = measured.get(layer)
        if record is not None and record.get("resid_norm_reference") == REFERENCE:
            resid_norm = resid_norm or _positive(record.get("resid_norm"))
        if record is not None:
            name = record.get("model_name")
            prov = {**record.get("provenance", {}), "imported_from": str(cv.path)}
        else:
            name = model.cfg.model_name if model is not None else None
            prov = {
                "kind": "gguf",
                "file": str(cv.path),
                "direction": n,
                "model_hint": cv.model_hint,
                "norm": float(np.linalg.norm(row.astype(np.float64))),
            }
        vec = SteeringVector(torch.from_numpy(row.copy())[None], layer, name, prov, resid_norm)
        if model is not None:
            check_compatible(vec, model, allow_other_model=allow_other_model)
            vec = vec.to(model.cfg.device)
        out[layer] = vec
    return out


def _positive(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def load_one(
    path: str | Path,
    model=None,
    *,
    layer: int | None = None,
    allow_other_model: bool = False,
) -> SteeringVector:
    """The file's only direction, or the one added at ``resid_pre`` ``layer``."""
    vectors = load_control_vector(path, model, allow_other_model=allow_other_model)
    if layer is None:
        if len(vectors) == 1:
            return next(iter(vectors.values()))
        raise VectorFileError(
            f"{path} holds {len(vectors)} directions (resid_pre layers {sorted(vectors)}); "
            "pass layer= to pick one, or use actadd.interop.gguf.load_control_vector(path, "
            "model) for all of them."
        )
    if layer not in vectors:
        raise VectorFileError(
            f"{path} has no direction for resid_pre layer {layer} (direction.{layer - 1}); "
            f"it has resid_pre layers {sorted(vectors)}."
        )
    return vectors[layer]


# SteeringVector.to_gguf / from_gguf find these through core's format registry
register_format("gguf", write=write_control_vector, read=load_one)
