"""Coefficients for another model: each confirmatory cell keeps its push relative to the
residual stream (``actadd coeffs CONFIG --model NAME``).

The ``--model`` rule (:mod:`actadd.lab.retarget`) maps layers by relative depth and leaves
coefficients as written, but a coefficient multiplies a difference of the model's own
activations, and that difference is not the same fraction of the residual stream on every
model (Love − Hate is about half as large, relative to it, on Gemma 3 270M as on SmolLM2).
This module maps the coefficient of every confirmatory cell so that the cell adds a vector
of the same relative size on the target model:

    c' = c × r_source(L) / r_target(L'),   L' = the layer the --model rule maps L to,

where on each model, with the same definitions on both:

- **the vector's norm** is :meth:`SteeringVector.norm
  <actadd.core.vectors.SteeringVector.norm>` of the vector the cell adds at unit
  coefficient (:func:`actadd.sweeps.engine.cell_vector` with ``coeff = 1``): the sweep's
  own vector for the cell's method, pair and pair-length rule (the pair's ``pad_token``;
  :class:`actadd.sweeps.method_vectors.MethodVectors`), reduced to its mean row where the
  cell's alignment adds one row. The norm is the root mean square of the row norms over
  the rows that steer (rows after the leading-token row, which is ≈ 0 for a pair; a
  one-row vector's one row). The root mean square, not the mean of the row norms or the
  norm of the mean row: it is the library's one size of a vector (the one relative
  coefficients and ``scaled_to`` use), so ``c × r`` is what ``coeff_mode = "relative"``
  would call the cell's size; it counts every row the cell adds, by its energy, so one
  large row (a massive-activation pad row, say) weighs as much as it pushes, where the norm
  of the mean row would let opposite rows cancel; and it does not grow with the number of
  rows, which differs between tokenizers (``"Hate"`` is two tokens on SmolLM2, one on
  Gemma 3).
- **the typical residual norm** at ``resid_pre`` ``L`` is the median of ``‖h_L‖`` (the
  unsteered residual stream entering block ``L``, L2 over ``d_model``) over every token
  position after the leading one of the config's prompts (as the model reads them: with
  the leading token, through the chat template for ``turn``), each prompt in a forward of
  its own (no padding). The prompts, not a shipped reference text: they are what the cell
  steers. The leading token is left out (a massive-activation sink, and the vector is ≈ 0
  there); the median, because a few sink positions would pull a mean.
- ``r(L)`` is the first over the second.

The rule writes (``--write``, :func:`actadd.sweeps.coeff_table.write_table`) the config's
``[models."<target>"]`` table: ``confirmatory`` (each cell at its mapped layer, the target's
own, and its mapped coefficient) and ``coeffs``, which **replaces the whole list** with the
mapped coefficients: the config's own coefficients are the wrong size on the target (the
point of the rule), and in a confirmatory config they are there only because the grid is
layers × coefficients. The grid keeps its shape, every coefficient the target runs is one
the rule chose for a cell, and the extra cells of the grid are exploratory as before. A
scan that should mean the same on every model is better written with
``coeff_mode = "relative"`` (refused here: its coefficients need no mapping).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch

from actadd.errors import ConfigError
from actadd.runtime.backends import Model
from actadd.runtime.forward import residuals
from actadd.runtime.tokens import encode
from actadd.sweeps import plan as sweep_plan
from actadd.sweeps.coeff_plan import CellMap, CoeffPlan, Ratio
from actadd.sweeps.engine import cell_vector
from actadd.sweeps.method_vectors import MethodVectors
from actadd.sweeps.spec import PAIR_METHODS, SweepSpec

__all__ = ["cell_ratios", "map_coeffs", "prompt_resid_norms"]


@torch.no_grad()
def prompt_resid_norms(
    model: Model, texts: Sequence[str], layers: Sequence[int]
) -> dict[int, float]:
    """``{layer: the median ‖resid_pre‖ over the positions after the leading token of
    texts}``, each text with the model's leading token, in a forward of its own."""
    norms: dict[int, list[float]] = {layer: [] for layer in layers}
    for text in texts:
        ids = encode(model, text, prepend_bos=True)
        acts = residuals(model, torch.tensor([ids], device=model.cfg.device), list(layers))
        for layer, a in acts.items():
            norms[layer] += a[0, 1:].double().norm(dim=-1).tolist()
    if not all(norms.values()):
        raise ConfigError(
            f"the prompts are all one token on {model.cfg.model_name}: no position after the "
            "leading token to measure the residual norm at."
        )
    return {layer: statistics.median(v) for layer, v in norms.items()}


def cell_ratios(model: Model, spec: SweepSpec) -> list[Ratio]:
    """Each confirmatory cell of ``spec`` on ``model``: the norm of the vector it adds at
    ``coeff = 1`` against the typical residual norm of ``spec``'s prompts at its layer."""
    sweep_plan.check(spec, model)  # the layers, texts and vectors fit the model
    cells = spec.confirmatory
    prompts, _ = sweep_plan.texts(spec, model)
    resid = prompt_resid_norms(model, prompts, sorted({c["layer"] for c in cells}))
    vectors = MethodVectors(model, spec)
    names = [p.name for p in spec.pairs]
    out = []
    for cell in cells:
        method = cell.get("method", "actadd")
        if method in PAIR_METHODS:
            pair, pad = (
                names.index(cell.get("pair", names[0])),
                cell.get("equalize", spec.equalize[0]),
            )
        else:
            pair, pad = -1, ""
        aligns = dict(sweep_plan.cell_aligns(spec, method, model))
        label = cell.get("align", _default_align(spec, cell))
        if label not in aligns:
            raise ConfigError(
                f"confirmatory cell {cell}: align {label!r} is not one of the cells' aligns "
                f"{list(aligns)}; name it (align = ...)."
            )
        v = vectors.vectors(method, pair, pad)[cell["layer"]]
        added = cell_vector(v, 1.0, aligns[label], "absolute", model)
        out.append(Ratio(cell["layer"], added.norm(), resid[cell["layer"]]))
    return out


def map_coeffs(plan: CoeffPlan, source_model: Model, target_model: Model) -> list[CellMap]:
    """Every confirmatory cell of ``plan``'s config mapped to its target model (module
    docstring): ``source_model`` must be the config's model, ``target_model`` the target."""
    source = cell_ratios(source_model, plan.source_spec)
    target = cell_ratios(target_model, plan.target_spec)
    out = []
    for cell, s, t in zip(plan.source_spec.confirmatory, source, target):
        label = _label(plan.source_spec, cell)
        if s.vector_norm == 0 or t.vector_norm == 0:
            model = plan.source if s.vector_norm == 0 else plan.target
            raise ConfigError(
                f"{plan.where}: cell {label} L{s.layer}: its vector is all zeros on {model}; "
                "its coefficient has nothing to scale."
            )
        out.append(CellMap(dict(cell), label, s, t))
    return out


def _default_align(spec: SweepSpec, cell: dict) -> str:
    """The align a cell without one is read at (as the sweep's claims read it): the turn,
    else ``front`` against unsteered and ``all`` against the random null."""
    if spec.turn is not None:
        return f"turn:{spec.turn}"
    return "all" if cell.get("against", "unsteered") == "random" else "front"


def _label(spec: SweepSpec, cell: dict) -> str:
    method = cell.get("method", "actadd")
    if method not in PAIR_METHODS:
        return f"{method} ({spec.dataset_label})"
    name = cell.get("pair", spec.pairs[0].name)
    return name if method == "actadd" else f"{name} [{method}]"
