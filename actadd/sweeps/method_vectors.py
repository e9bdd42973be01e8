"""The vectors of a sweep's ``method`` dimension, per layer, built once and cached.

See :mod:`actadd.sweeps.spec` for the methods and the norm rule. The reference norm at a
layer is the norm of the CAA vector over the spec's dataset (``norm = "match"`` rescales
every method to it); the random null is always drawn at that norm.
"""

from __future__ import annotations

import torch

from actadd.backends import Model
from actadd.generation import sample_seed
from actadd.methods import dataset_vectors, with_norm
from actadd.sweeps.spec import SweepSpec
from actadd.vectors import SteeringVector


class MethodVectors:
    """``vectors(method, pair, pad)`` → ``{layer: SteeringVector}`` for one sweep."""

    def __init__(self, model: Model, spec: SweepSpec) -> None:
        self.model, self.spec = model, spec
        self.layers = spec.layer_list(model.cfg.n_layers)
        self._cache: dict[tuple, dict[int, SteeringVector]] = {}

    def _memo(self, key: tuple, build) -> dict[int, SteeringVector]:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _dataset(self, method: str) -> dict[int, SteeringVector]:
        spec = self.spec
        return self._memo(
            ("dataset", method),
            lambda: dataset_vectors(
                self.model, spec.dataset_pairs(), self.layers, method, position=spec.position
            ),
        )

    def reference_norm(self, layer: int) -> float:
        return float(self._dataset("caa")[layer].norms()[0])

    def _raw(self, method: str, pair: int, pad: str) -> dict[int, SteeringVector]:
        spec, model = self.spec, self.model
        if method in ("actadd", "actadd_mean"):
            p = spec.pairs[pair]
            per_position = self._memo(
                ("actadd", pair, pad),
                lambda: SteeringVector.from_pair_layers(
                    model, p.positive, p.negative, self.layers, equalize=pad, pad_token=p.pad_token
                ),
            )
            if method == "actadd":
                return per_position
            return {L: v.mean(skip_first=True) for L, v in per_position.items()}
        if method.startswith("random:"):
            draw = int(method.partition(":")[2])
            out = {}
            for layer in self.layers:
                g = torch.Generator().manual_seed(sample_seed(spec.random_seed, layer, draw))
                direction = torch.randn(model.cfg.d_model, generator=g)
                direction = direction / direction.norm() * self.reference_norm(layer)
                out[layer] = SteeringVector.from_tensor(
                    direction.to(model.cfg.device, model.cfg.dtype),
                    layer,
                    model.cfg.model_name,
                    f"random direction {draw} at the CAA norm",
                )
            return out
        return self._dataset(method)

    def vectors(self, method: str, pair: int, pad: str) -> dict[int, SteeringVector]:
        raw = self._raw(method, pair, pad)
        if self.spec.norm != "match":
            return raw
        return {L: with_norm(v, self.reference_norm(L)) for L, v in raw.items()}
