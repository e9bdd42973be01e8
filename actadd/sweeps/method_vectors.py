"""The vectors of a sweep's ``method`` dimension, per layer, built once and cached.

See :mod:`actadd.sweeps.spec` for the methods and the norm rule. The reference norm at a
layer is the norm of the CAA vector over the spec's dataset (``norm = "match"`` rescales
every method to it); the random null is always drawn at that norm. ``random_null =
"residual"`` (the default) draws each direction from the residual distribution at the layer,
``N(0, Σ̂)`` over the sweep's prompts (positions after the leading token), as
:func:`actadd.studies.token_injection.conditions.residual_random_like` does; ``"isotropic"`` draws a
Gaussian direction in R^d.
"""

from __future__ import annotations

import torch

from actadd.core.generation import sample_seed
from actadd.core.methods import dataset_vectors, with_norm
from actadd.core.vectors import SteeringVector
from actadd.runtime.backends import Model
from actadd.runtime.forward import left_pad, real_positions, residuals
from actadd.runtime.tokens import encode
from actadd.sweeps.spec import SweepSpec

__all__ = ["MethodVectors"]


class MethodVectors:
    """``vectors(method, pair, pad)`` → ``{layer: SteeringVector}`` for one sweep."""

    def __init__(self, model: Model, spec: SweepSpec) -> None:
        self.model, self.spec = model, spec
        self.layers = spec.layer_list(model.cfg.n_layers)
        self._cache: dict[tuple, dict[int, SteeringVector]] = {}
        self._rows: dict[int, torch.Tensor] | None = None

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
                if spec.random_null == "residual":
                    x = self._residual_rows()[layer]  # centred and scaled: z @ x ~ N(0, Σ̂)
                    z = torch.randn(x.shape[0], generator=g, dtype=torch.float64)
                    direction = (z @ x).float()
                else:
                    direction = torch.randn(model.cfg.d_model, generator=g)
                direction = direction / direction.norm() * self.reference_norm(layer)
                out[layer] = SteeringVector.from_tensor(
                    direction.to(model.cfg.device, model.cfg.dtype),
                    layer,
                    model.cfg.model_name,
                    f"random {spec.random_null} direction {draw} at the CAA norm",
                )
            return out
        return self._dataset(method)

    def _residual_rows(self) -> dict[int, torch.Tensor]:
        """Per layer, the residual rows of the sweep's prompts (every position after the
        leading token), centred and divided by sqrt(n − 1), in float64: ``z @ rows`` with
        ``z ~ N(0, I_n)`` is exactly ``N(0, Σ̂)``, the residual stream's empirical covariance."""

        def build() -> dict[int, torch.Tensor]:
            ids = [encode(self.model, t) for t in self.spec.prompts]
            tokens, mask = left_pad(self.model, ids)
            with torch.no_grad():
                acts = residuals(self.model, tokens, self.layers, attention_mask=mask)
            keep = real_positions(mask, skip_leading=True)
            out = {}
            for layer, a in acts.items():
                x = a[keep].detach().double().cpu()
                if x.shape[0] < 2:
                    raise ValueError("the residual null needs >= 2 prompt positions")
                out[layer] = (x - x.mean(0)) / (x.shape[0] - 1) ** 0.5
            return out

        if self._rows is None:
            self._rows = build()
        return self._rows

    def vectors(self, method: str, pair: int, pad: str) -> dict[int, SteeringVector]:
        raw = self._raw(method, pair, pad)
        if self.spec.norm != "match":
            return raw
        return {L: with_norm(v, self.reference_norm(L)) for L, v in raw.items()}
