"""The steering vector: a per-position residual-stream difference at one layer.

ActAdd (Turner et al. 2023) builds ``v = c · (h_L(p+) − h_L(p−))`` from two prompts that
share a leading token and are made the same length. ``v`` has shape ``[k, d_model]``: one
row per token position, not one ``d_model`` vector. :class:`SteeringVector` holds that
tensor, the ``resid_pre`` layer it belongs to, the model it was made for, and how it was
made (its provenance), and supports the linear algebra researchers do on vectors.

    >>> v = SteeringVector.from_pair(model, "Love", "Hate", layer=6, coeff=5)
    >>> w = 0.5 * v + SteeringVector.from_pair(model, "Happy", "Sad", layer=6)
    >>> with actadd.steering(model, w):
    ...     model.generate("I hate you because")

The difference itself is computed by :mod:`actadd.core.contrast`; ``save``/``load`` use the
file format of :mod:`actadd.core.vector_files`, and ``to_gguf``/``from_gguf`` the ``"gguf"``
format that :mod:`actadd.interop.gguf` registers there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.contrast import pair_differences
from actadd.core.sizes import check_coeff as _check_coeff
from actadd.core.sizes import check_coeff_mode, is_scalar, reference_norms
from actadd.core.vector_files import (
    FORMAT,
    FORMAT_VERSION,
    read_vector_file,
    vector_format,
    write_error,
    write_vector_file,
)
from actadd.core.vector_labels import describe as describe_provenance
from actadd.errors import SteeringError, Validated
from actadd.runtime.backends import Model
from actadd.runtime.hooks import check_layer
from actadd.runtime.tokens import equalize_rule

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SteeringVector",
    "check_compatible",
    "pad_rows",
    "write_error",
]


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """A steering vector of shape ``[k, d_model]`` for ``blocks.{layer}.hook_resid_pre``.

    Attributes:
        tensor: the addition, one row per position (row 0 lines up with the leading token
            when injected with ``align="front"``).
        layer: the ``resid_pre`` layer it is added at (0..n_layers).
        model_name: the model it was made for (``None``: not tied to a model).
        provenance: JSON-able record of how it was made (prompts, coefficient, pair
            alignment, algebra applied).
        resid_norm: the typical residual norm of its model at ``layer``
            (:mod:`actadd.core.sizes`: the median ``‖resid_pre‖`` over positions ≥ 1 of a
            shipped neutral text), recorded when the vector is built from a model and saved
            with it; ``None`` when unknown. :attr:`relative_norm` is :meth:`norm` over it.
    """

    # stored as [k, d_model]; [d_model] is one row. Validated: a non-tensor or a non-float
    # tensor gets __post_init__'s SteeringError, as a wrong shape does
    tensor: Validated[Float[Tensor, "*pos d_model"]]
    layer: int
    model_name: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    resid_norm: float | None = None

    # numpy scalars on the left (``np.float32(0.5) * v``) defer to ``__rmul__`` instead of
    # wrapping the vector in an object array, so both operand orders validate alike
    __array_ufunc__ = None

    def __post_init__(self) -> None:
        t = self.tensor
        if not isinstance(t, Tensor):
            raise SteeringError(f"tensor must be a torch.Tensor, got {type(t).__name__}.")
        if not t.is_floating_point():
            raise SteeringError(
                f"tensor must be floating point (float32, float64, float16 or bfloat16), got "
                f"{t.dtype}; convert it first, e.g. tensor.float()."
            )
        if t.ndim == 1:
            object.__setattr__(self, "tensor", t[None])
        elif t.ndim != 2:
            raise SteeringError(
                f"tensor must have shape [k, d_model] (or [d_model]), got {tuple(t.shape)}."
            )
        if self.tensor.shape[0] == 0:
            raise SteeringError("A steering vector needs at least one position (k >= 1).")
        if not torch.isfinite(self.tensor).all():
            raise SteeringError("Steering vector contains NaN or inf values.")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise SteeringError(f"layer must be a non-negative int, got {self.layer!r}.")
        r = self.resid_norm
        if r is not None:
            if isinstance(r, bool) or not is_scalar(r) or not _check_coeff(r) > 0:
                raise SteeringError(f"resid_norm must be a positive number or None, got {r!r}.")
            object.__setattr__(self, "resid_norm", _check_coeff(r))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_pair(
        cls,
        model: Model,
        positive: str,
        negative: str,
        layer: int,
        coeff: Validated[float] = 1.0,
        *,
        equalize: str = "right",
        pad_token: str | int = " ",
        pad: str | None = None,
        coeff_mode: str = "absolute",
    ) -> SteeringVector:
        """ActAdd's vector ``coeff · (h_L(positive) − h_L(negative))``, per position.

        ``coeff_mode="relative"`` makes ``coeff`` a size instead: the difference is scaled so
        that its :meth:`norm` is ``coeff ×`` the typical residual norm at ``layer`` (see
        :meth:`scaled_to`). Either way the vector records that norm (``resid_norm``).

        Both prompts are tokenized with the model's leading token and made the same length
        by ``equalize``:

        - ``"right"`` (the paper): pad the shorter prompt at the end with ``pad_token``
          (default ``" "``, the space token);
        - ``"left"``: pad right after the leading token, so the prompts' ends line up;
        - ``"truncate"``: cut the longer prompt to the shorter one's length.

        ``pad_token`` is a string that must be a single token, or a token id.
        One side may be ``""`` (e.g. ``" weddings" − ""``): it is then all padding.
        ``pad=`` is the deprecated former name of ``equalize=``.

        Note: on SmolLM2 a lone ``" "`` token becomes a massive-activation ("attention
        sink") position at layers 3–9 (residual norm ~900 vs ~100), so space-padded rows
        carry that sink into the difference. A word-like pad such as ``pad_token=" a"``
        avoids it (see experiments/README.md, "Token injection").
        """
        equalize = equalize_rule(equalize, pad)
        vectors = cls.from_pair_layers(
            model,
            positive,
            negative,
            [layer],
            coeff,
            equalize=equalize,
            pad_token=pad_token,
            coeff_mode=coeff_mode,
        )
        return vectors[layer]

    @classmethod
    def from_pair_layers(
        cls,
        model: Model,
        positive: str,
        negative: str,
        layers: Sequence[int],
        coeff: Validated[float] = 1.0,
        *,
        equalize: str = "right",
        pad_token: str | int = " ",
        pad: str | None = None,
        coeff_mode: str = "absolute",
    ) -> dict[int, SteeringVector]:
        """:meth:`from_pair` at several layers from one forward pass: ``{layer: vector}``."""
        equalize = equalize_rule(equalize, pad)
        coeff = _check_coeff(coeff)
        relative = check_coeff_mode(coeff_mode) == "relative"
        differences, provenance = pair_differences(
            model,
            positive,
            negative,
            layers,
            1.0 if relative else coeff,
            equalize=equalize,
            pad_token=pad_token,
        )
        norms = reference_norms(model, required=relative)
        out = {}
        for layer, difference in differences.items():
            vec = cls(difference, layer, model.cfg.model_name, dict(provenance), norms.get(layer))
            if relative:
                scaled = vec.scaled_to(coeff)
                prov = {**provenance, "coeff": coeff, "coeff_mode": "relative"}
                vec = cls(scaled.tensor, layer, vec.model_name, prov, vec.resid_norm)
            out[layer] = vec
        return out

    @classmethod
    def from_prompt(
        cls, model: Model, prompt: str, layer: int, coeff: float = 1.0, **kwargs
    ) -> SteeringVector:
        """``coeff · (h_L(prompt) − h_L(""))``: a one-sided vector such as ``" weddings" − ""``.

        The empty side is the leading token followed by padding (see :meth:`from_pair`).
        """
        return cls.from_pair(model, prompt, "", layer, coeff, **kwargs)

    @classmethod
    def from_tensor(
        cls,
        tensor: Tensor,
        layer: int,
        model_name: str | None = None,
        description: str = "tensor",
    ) -> SteeringVector:
        """Wrap a raw ``[k, d_model]`` (or ``[d_model]``) tensor, e.g. an embedding difference."""
        return cls(tensor.detach().clone(), layer, model_name, {"kind": description})

    # ------------------------------------------------------------------ shape and views

    @property
    def k(self) -> int:
        """Number of positions (rows)."""
        return self.tensor.shape[0]

    @property
    def d_model(self) -> int:
        return self.tensor.shape[1]

    def __len__(self) -> int:
        return self.k

    def norms(self) -> Float[Tensor, " pos"]:
        """L2 norm of each row."""
        return self.tensor.norm(dim=-1)

    def norm(self) -> float:
        """The vector's size: the root mean square of its row norms over the rows that steer,
        i.e. its one row, or for ``k > 1`` rows ``1..k-1`` (row 0 lines up with the leading
        token, ≈ 0 for a pair). What :attr:`relative_norm` and :meth:`scaled_to` measure."""
        rows = self.tensor[1:] if self.k > 1 else self.tensor
        return float(rows.double().norm(dim=-1).square().mean().sqrt())

    @property
    def relative_norm(self) -> float | None:
        """:meth:`norm` over the typical residual norm at the vector's layer
        (:mod:`actadd.core.sizes`), or ``None`` when that was not recorded (``resid_norm``)."""
        return None if self.resid_norm is None else self.norm() / self.resid_norm

    def scaled_to(self, relative: Validated[float], model: Model | None = None) -> SteeringVector:
        """This vector rescaled so that its :meth:`norm` is ``relative ×`` the typical
        residual norm at its layer: the recorded ``resid_norm``, else measured on ``model``.

        ``v.scaled_to(0.5)`` is as large as half a typical residual row at ``v.layer``,
        whatever the layer, method or model; a negative ``relative`` also flips the sign.
        """
        relative = _check_coeff(relative)
        reference = self.resid_norm
        if reference is None:
            if model is None:
                raise SteeringError(
                    f"{self.describe()} has no recorded typical residual norm: pass the model, "
                    "v.scaled_to(r, model), to measure it."
                )
            reference = reference_norms(model, required=True)[check_layer(model, self.layer)]
        current = self.norm()
        if current == 0:
            raise SteeringError(f"{self.describe()} is all zeros: it has no norm to rescale.")
        out = self.tensor.double() * (relative * reference / current)
        op = {"kind": "derived", "op": "scaled_to", "relative": relative, "of": self.provenance}
        return SteeringVector(out.to(self.tensor.dtype), self.layer, self.model_name, op, reference)

    def mean(self, skip_first: bool = False) -> SteeringVector:
        """Mean over positions: a single-row vector for ``align="all"``.

        ``skip_first=True`` leaves out row 0, which for a pair sharing a leading token is
        (close to) zero and would only dilute the mean.
        """
        rows = self.tensor[1:] if skip_first and self.k > 1 else self.tensor
        return self._derived(rows.mean(0, keepdim=True), {"op": "mean", "skip_first": skip_first})

    def rows(self, index: int | slice | Sequence[int]) -> SteeringVector:
        """A vector made of some rows, e.g. ``v.rows(slice(1, None))``."""
        t = self.tensor[index] if not isinstance(index, Sequence) else self.tensor[list(index)]
        return self._derived(t, {"op": "rows", "index": repr(index)})

    def at_layer(self, layer: int) -> SteeringVector:
        """The same tensor, to be added at another layer (a transplant)."""
        return SteeringVector(  # the residual norm differs by layer: not carried
            self.tensor, layer, self.model_name, {**self.provenance, "moved_to_layer": layer}
        )

    def to(self, *args, **kwargs) -> SteeringVector:
        tensor = self.tensor.to(*args, **kwargs)
        return SteeringVector(tensor, self.layer, self.model_name, self.provenance, self.resid_norm)

    # ------------------------------------------------------------------ algebra

    def _derived(self, tensor: Tensor, op: dict[str, Any]) -> SteeringVector:
        return SteeringVector(
            tensor,
            self.layer,
            self.model_name,
            {"kind": "derived", **op, "of": self.provenance},
            self.resid_norm,
        )

    def _combine(self, other: SteeringVector, sign: float) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if other.layer != self.layer:
            raise SteeringError(
                f"Cannot add vectors at different layers ({self.layer} and {other.layer}); "
                "pass both to actadd.steering(...) to apply them together."
            )
        if other.d_model != self.d_model:
            raise SteeringError(f"d_model differs: {self.d_model} vs {other.d_model}.")
        if self.model_name and other.model_name and self.model_name != other.model_name:
            raise SteeringError(
                f"Vectors come from different models: {self.model_name} vs {other.model_name}."
            )
        a, b = pad_rows(self.tensor, other.tensor)
        b = b.to(a.device, a.dtype)
        return SteeringVector(
            a + b if sign > 0 else a - b,
            self.layer,
            self.model_name or other.model_name,
            {
                "kind": "sum" if sign > 0 else "difference",
                "terms": [self.provenance, other.provenance],
            },
            self.resid_norm if self.resid_norm is not None else other.resid_norm,
        )

    def __add__(self, other: SteeringVector) -> SteeringVector:
        """Sum, zero-padding the shorter vector at the end (as summed additions do)."""
        return self._combine(other, +1.0)

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, -1.0)

    def __mul__(self, scale: Validated[float]) -> SteeringVector:
        """Scale by a real number (Python, numpy or one-element tensor), as ``coeff`` is."""
        if not is_scalar(scale):
            return NotImplemented
        scale = _check_coeff(scale)
        return self._derived(self.tensor * scale, {"op": "scale", "scale": scale})

    __rmul__ = __mul__

    def __truediv__(self, scale: Validated[float]) -> SteeringVector:
        if not is_scalar(scale):
            return NotImplemented
        scale = _check_coeff(scale)
        if scale == 0:
            raise SteeringError("Cannot divide a steering vector by zero.")
        return self * (1.0 / scale)

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    # ------------------------------------------------------------------ description

    def describe(self) -> str:
        """Short human-readable label, e.g. ``Love − Hate ×5 @L6`` or
        ``0.5·(Love − Hate) + (Calm − Angry) @L2`` (:mod:`actadd.core.vector_labels`)."""
        return f"{describe_provenance(self.provenance)} @L{self.layer}"

    def with_label(self, label: str) -> SteeringVector:
        prov = {**self.provenance, "label": label}
        return SteeringVector(self.tensor, self.layer, self.model_name, prov, self.resid_norm)

    def size(self) -> str:
        """``norm 12.1 = 0.42× resid`` (or ``norm 12.1`` with no recorded residual norm)."""
        rel = self.relative_norm
        return f"norm {self.norm():.3g}" + ("" if rel is None else f" = {rel:.2g}× resid")

    def __repr__(self) -> str:
        rows = f"{self.k} row" + ("s" if self.k != 1 else "")
        return (
            f"SteeringVector({self.describe()}, {rows}, {self.size()}, "
            f"d_model={self.d_model}, model={self.model_name!r})"
        )

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | Path) -> Path:
        """Write a ``.safetensors`` file with the tensor and JSON metadata.

        The metadata records the sha256 of the tensor data and the sha256 of the metadata
        itself (layer, k, provenance, ...: what gives the tensor its meaning), which
        :meth:`load` checks. The file is written beside ``path`` under a temporary name and
        renamed over it: ``path`` is never half-written, and a save that fails (a full disk)
        removes its temporary file and raises one :class:`VectorFileError` line. The format
        is :mod:`actadd.core.vector_files`.
        """
        return write_vector_file(
            path,
            self.tensor,
            self.layer,
            self.model_name,
            self.provenance,
            self.describe(),
            resid_norm=self.resid_norm,
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: Model | None = None,
        *,
        allow_other_model: bool = False,
    ) -> SteeringVector:
        """Read a vector saved by :meth:`save`.

        The file's checksums are verified: the tensor data (format 2 on) and the metadata
        (format 3 on). A format-1 file carries no checksum: it loads with a
        :class:`~actadd.errors.VectorFileWarning` (save it again to add one).

        With ``model``, the vector is checked against it (d_model always; the model name
        unless ``allow_other_model=True``), moved to its device, and given the model's typical
        residual norm at its layer when the file records none.
        """
        vec = cls(*read_vector_file(path))
        if model is not None:
            check_compatible(vec, model, allow_other_model=allow_other_model)
            resid_norm = vec.resid_norm or reference_norms(model).get(vec.layer)
            vec = cls(vec.tensor, vec.layer, vec.model_name, vec.provenance, resid_norm)
            vec = vec.to(model.cfg.device)
        return vec

    # ------------------------------------------------------------------ llama.cpp GGUF

    def to_gguf(self, path: str | Path, *, model_hint: str | None = None, model=None) -> Path:
        """Write this one-row vector as a llama.cpp control vector (``direction.{layer-1}``,
        coefficient baked in): :func:`actadd.interop.gguf.write_control_vector`."""
        write = vector_format("gguf").write
        return write(self, path, model=model, model_hint=model_hint)

    @classmethod
    def from_gguf(
        cls,
        path: str | Path,
        model: Model | None = None,
        *,
        layer: int | None = None,
        allow_other_model: bool = False,
    ) -> SteeringVector:
        """Read a llama.cpp control vector: the file's only direction, or the one added at
        ``resid_pre`` ``layer`` (``direction.{layer-1}``): :func:`actadd.interop.gguf.load_one`."""
        read = vector_format("gguf").read
        return read(path, model, layer=layer, allow_other_model=allow_other_model)


# ---------------------------------------------------------------------- helpers


def check_compatible(vec: SteeringVector, model: Model, *, allow_other_model: bool = False) -> None:
    """Raise unless ``vec`` can be added to ``model``'s residual stream."""
    if vec.d_model != model.cfg.d_model:
        raise SteeringError(
            f"Vector has d_model {vec.d_model} but {model.cfg.model_name} has "
            f"d_model {model.cfg.d_model}."
        )
    check_layer(model, vec.layer)
    if (
        not allow_other_model
        and vec.model_name is not None
        and vec.model_name != model.cfg.model_name
    ):
        raise SteeringError(
            f"Vector was made for {vec.model_name!r}, model is {model.cfg.model_name!r}. "
            "Pass allow_other_model=True to use it anyway (same d_model)."
        )


def pad_rows(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Zero-pad the shorter of two ``[k, d]`` tensors at the end to the longer's length."""
    k = max(a.shape[0], b.shape[0])

    def grow(t: Tensor) -> Tensor:
        if t.shape[0] == k:
            return t
        return torch.cat([t, t.new_zeros(k - t.shape[0], t.shape[1])])

    return grow(a), grow(b)
