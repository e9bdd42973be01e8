"""The CAA A/B protocol (Rimsky et al. 2023), exactly as this study runs it.

**Prompts.** Each item's question (the shared text with its final answer removed,
:class:`~actadd.studies.behaviours.data.Item`) is rendered as one user turn with the model's
chat template and its generation prompt (:func:`actadd.core.chat.render_prompt`; SmolLM2's
template adds its default system turn), then the assistant turn is opened with ``"("``:

- *evaluation prompt*: ``render(question) + "("``; the next token is the answer letter;
- *vector prompts*: ``render(question) + "(A"`` and ``+ "(B"``, the letter as the last token
  (checked: appending the letter adds exactly one token).

With ``chat = False`` the rendering is the question, a newline, and ``"("``.

**Vectors** (train split only; one ``d_model`` row per layer, ``resid_pre``), from the
residual at the letter position of the vector prompts, ``h⁺_i`` on the behaviour-matching
letter and ``h⁻_i`` on the other:

- ``caa``: ``mean_i (h⁺_i − h⁻_i)`` (the paper's vector; its multiplier is the paper's);
- ``pca_diff``, ``pca_center``: repeng's first principal directions
  (:func:`actadd.core.methods.pca_direction`), scaled to the CAA norm at the layer;
- ``actadd``: one pair (train item ``actadd_pair``): ActAdd's per-position vector of its two
  vector prompts, reduced to one row as the methods study does (mean over rows after the
  leading token), scaled to the CAA norm;
- ``letter`` (the positive control): the *unembedding* letter direction
  ``g = w_ln ⊙ (W_U[:, A] − W_U[:, B])`` (``w_ln`` the final norm's weight, where it has
  one), scaled to the CAA norm, added with the sign of each test question's matching letter
  (towards A where A matches, towards B where B does). It raises ``P(matching letter)`` by
  construction where it reaches the output: on the final residual ``x``, the logit
  difference is ``g · x / ‖x‖`` up to constants (RMSNorm; LayerNorm's centring gives the
  same with ``x``, ``g`` centred), and adding ``α g`` (α > 0) raises the cosine of ``x + α g``
  with ``g``, so it raises the difference for every question, at every α. Added at
  ``resid_pre`` of an earlier layer, the skip path carries ``α g`` to the final residual
  unchanged; only the later blocks' reaction to it can undo that, which is what the control
  tests. (The *residual* letter direction ``mean_i (h_i(A) − h_i(B))`` at the letter
  position, an earlier choice, fails as a control: it is read after the model has seen the
  letter, and on some behaviours adding it at ``"("`` pushes the next token *away* from that
  letter. It is kept, as :attr:`Vectors.letter_residual`, for the cosines
  ("is CAA just the letter?"), never added);
- ``caa_balanced``: CAA over a letter-balanced subset of train (as many A- as B-matching
  items, the first of each in split order), so a pure letter component cancels;
- ``random:<j>``: a direction drawn from ``N(0, Σ̂)``, Σ̂ the covariance of the train vector
  prompts' letter-position residuals (both sides) at the layer, scaled to the CAA norm;
  draw ``j`` at layer ``L`` is seeded by ``sample_seed(seed, L, j)``.

**Evaluation.** The vector ``m · v`` is added at ``resid_pre`` of one layer at every
position after the question: with ``positions = "answer"`` (default, the paper's "after the
end of the instruction") the tokens after the assistant header, here the single ``"("``;
with ``"after_question"`` also the template's tail between the question and ``"("``
(``<|im_end|>``, newline, ``<|im_start|>assistant``, newline on SmolLM2). The measure is
``p_match = P(matching letter) / (P(A) + P(B))`` at the next-token position, and the logit
difference ``logit(matching) − logit(other)``. Every (question, cell) is one row of one
batched forward that restarts at the layer from the clean residual and recomputes only the
steered positions over the unsteered prefix, computed once
(:class:`~actadd.studies.behaviours.suffix.SuffixBatch`); multiplier 0 is the unsteered
forward.

**Reliability** (Tan et al. 2024): a question's *steerability* is the least-squares slope of
its logit difference on the multiplier; it is *anti-steerable* when that slope is below 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from actadd.core.chat import render_prompt
from actadd.core.generation import sample_seed
from actadd.core.methods import pair_activations, pca_direction
from actadd.core.placement import Placement
from actadd.core.prefix import PrefixBatch
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode
from actadd.studies.behaviours.data import Item
from actadd.studies.behaviours.suffix import SuffixBatch

__all__ = [
    "LETTERS",
    "Prompts",
    "Vectors",
    "Evaluator",
    "build_vectors",
    "letter_unembedding",
    "question_text",
    "steerability",
]

LETTERS = ("A", "B")


def question_text(model: Model, question: str, chat: bool = True) -> str:
    """The evaluation prompt's text up to (not including) the opening ``"("``."""
    return render_prompt(model, question) if chat else f"{question}\n"


@dataclass
class Prompts:
    """The token ids of a list of items' evaluation prompts and what scoring needs: the
    letter ids (A, B), each item's matching index (0 for A, 1 for B), its sign (+1 / −1)
    and how many final positions the vector covers (``n_steer``)."""

    ids: list[list[int]]
    letter_ids: tuple[int, int]
    matching: np.ndarray
    n_steer: np.ndarray

    @property
    def sign(self) -> np.ndarray:
        return np.where(self.matching == 0, 1.0, -1.0)

    @classmethod
    def build(
        cls, model: Model, items: Sequence[Item], positions: str = "answer", chat: bool = True
    ) -> Prompts:
        ids, n_steer, letters = [], [], set()
        for it in items:
            head = question_text(model, it.question, chat)
            full = encode(model, head + "(", truncate=False)
            if positions == "answer":
                before = encode(model, head, truncate=False)
            else:
                i = head.rfind(it.question)
                before = encode(model, head[: i + len(it.question)], truncate=False)
            if full[: len(before)] != before or len(full) == len(before):
                raise ConfigError(
                    f"the prompt of {it.question[-40:]!r} does not tokenize apart at the end of "
                    "the question: the steered positions are not well defined."
                )
            for x in LETTERS:
                with_letter = encode(model, head + "(" + x, truncate=False)
                if len(with_letter) != len(full) + 1 or with_letter[: len(full)] != full:
                    raise ConfigError(
                        f"the answer letter {x!r} after '(' is not one token of its own: "
                        "the A/B protocol needs it to be."
                    )
                letters.add((x, with_letter[-1]))
            if len(full) > model.cfg.n_ctx:
                raise ConfigError(
                    f"a prompt is {len(full)} tokens, past the context {model.cfg.n_ctx}."
                )
            ids.append(full)
            n_steer.append(len(full) - len(before))
        by_letter = dict(letters)
        if len(by_letter) != 2 or len(letters) != 2:
            raise ConfigError("the answer letters tokenize differently in different prompts.")
        return cls(
            ids,
            (by_letter["A"], by_letter["B"]),
            np.array([LETTERS.index(it.matching) for it in items]),
            np.array(n_steer),
        )


@dataclass
class Vectors:
    """Per method, ``{layer: unit-free d_model row}`` (float32, on the model's device);
    ``caa_norm[layer]`` is the norm every non-CAA vector was scaled to; ``signed`` names the
    methods added with each question's matching sign (the letter control);
    ``letter_residual[layer]`` is the residual letter direction ``mean_i (h_i(A) − h_i(B))``
    (for the cosines only) and ``letter_unembedding`` the unscaled ``g`` of the control."""

    rows: dict[str, dict[int, Tensor]]
    caa_norm: dict[int, float]
    residual: dict[int, Tensor]  # centred, / sqrt(n − 1): z @ x ~ N(0, Σ̂)
    seed: int
    letter_residual: dict[int, Tensor]
    letter_unembedding: Tensor
    signed: tuple[str, ...] = ("letter",)

    def random(self, layer: int, draw: int) -> Tensor:
        """Random direction ``draw`` at ``layer`` (see the module docstring)."""
        x = self.residual[layer]
        g = torch.Generator().manual_seed(sample_seed(self.seed, layer, draw))
        z = torch.randn(x.shape[0], generator=g, dtype=torch.float64)
        d = z @ x
        return (d / d.norm() * self.caa_norm[layer]).float().to(self.rows["caa"][layer].device)


def letter_unembedding(model: Model, letter_ids: tuple[int, int]) -> Tensor:
    """``g = w_ln ⊙ (W_U[:, A] − W_U[:, B])``: the final-residual direction along which the
    logit difference A − B grows (module docstring); ``w_ln`` is the final norm's weight
    where the model has one (folded into ``W_U`` otherwise)."""
    a, b = letter_ids
    g = (model.W_U[:, a] - model.W_U[:, b]).detach().float()
    w = getattr(model.ln_final, "w", None)
    return g * w.detach().float() if w is not None else g


def build_vectors(
    model: Model,
    items: Sequence[Item],
    layers: Sequence[int],
    methods: Sequence[str],
    *,
    actadd_pair: int = 0,
    seed: int = 0,
    chat: bool = True,
    batch_size: int = 32,
) -> Vectors:
    """The vectors of ``methods`` at ``layers`` from the train ``items`` (module docstring)."""
    heads = [question_text(model, it.question, chat) + "(" for it in items]
    match = [(h + it.matching, h + it.other) for h, it in zip(heads, items)]
    acts = pair_activations(model, match, list(layers), position="last", batch_size=batch_size)
    is_a = torch.tensor([it.matching == "A" for it in items])
    a_rows = [i for i, it in enumerate(items) if it.matching == "A"]
    b_rows = [i for i, it in enumerate(items) if it.matching == "B"]
    k = min(len(a_rows), len(b_rows))
    if "caa_balanced" in methods and k == 0:
        raise ConfigError("caa_balanced needs train items with each letter matching.")
    unembed = letter_unembedding(model, Prompts.build(model, items, "answer", chat).letter_ids)
    rows: dict[str, dict[int, Tensor]] = {m: {} for m in methods}
    norms, residual, letter_residual = {}, {}, {}
    for layer, (h_pos, h_neg) in acts.items():
        caa = (h_pos - h_neg).mean(0)
        norm = float(caa.norm())
        norms[layer] = norm

        def scaled(v: Tensor, norm: float = norm) -> Tensor:
            return v / v.norm() * norm

        both = torch.cat([h_pos, h_neg]).double()
        residual[layer] = ((both - both.mean(0)) / (len(both) - 1) ** 0.5).cpu()
        s = torch.where(is_a, 1.0, -1.0).to(h_pos.dtype)[:, None]
        letter_residual[layer] = (s * (h_pos - h_neg)).mean(0)
        for m in methods:
            if m == "caa":
                rows[m][layer] = caa
            elif m in ("pca_diff", "pca_center"):
                rows[m][layer] = scaled(pca_direction(h_pos, h_neg, m))
            elif m == "letter":
                rows[m][layer] = scaled(unembed.to(h_pos))
            elif m == "caa_balanced":
                keep = a_rows[:k] + b_rows[:k]
                rows[m][layer] = (h_pos[keep] - h_neg[keep]).mean(0)
    if "actadd" in methods:
        pos, neg = match[actadd_pair]
        per_position = SteeringVector.from_pair_layers(model, pos, neg, list(layers))
        for layer, v in per_position.items():
            row = v.mean(skip_first=True).tensor[0]
            rows["actadd"][layer] = row / row.norm() * norms[layer]
    return Vectors(rows, norms, residual, seed, letter_residual, unembed)


def _condition(prompts: Prompts, layer: int, row: Tensor, multiplier: float, signs) -> list:
    """The placements of one cell: ``multiplier · sign · row`` on the last ``n_steer``
    positions of each prompt (one placement per (n_steer, sign) group of rows)."""
    if multiplier == 0:
        return []
    signs = np.ones(len(prompts.ids)) if signs is None else signs
    out = []
    for k in np.unique(prompts.n_steer):
        for s in (1.0, -1.0):
            which = np.flatnonzero((prompts.n_steer == k) & (signs == s))
            if len(which):
                t = (multiplier * s * row).expand(int(k), -1).contiguous()
                v = SteeringVector.from_tensor(t, layer, description="behaviour cell")
                out.append(Placement(v, "back", tuple(int(i) for i in which)))
    return out


def _scores(both: Tensor, matching: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p_match, logit_diff)`` from letter logits [cells, questions, 2]."""
    both = both.double()
    idx = torch.as_tensor(matching)
    rows = torch.arange(len(idx))
    match, other = both[:, rows, idx], both[:, rows, 1 - idx]
    p = torch.softmax(both, -1)[:, rows, idx]
    return p.cpu().numpy(), (match - other).cpu().numpy()


class Evaluator:
    """The evaluation of one set of prompts (module docstring): ``run(layer, cells)`` for
    cells ``(row, multiplier, signs)``, ``signs`` None or ±1 per question. ``forward``:
    ``"suffix"`` (:class:`SuffixBatch`, the default) or ``"prefix"``
    (:class:`actadd.core.prefix.PrefixBatch` with ``"back"`` placements: a full steered
    forward per row from the layer on, the reference) or ``"suffix_repeat"`` (the suffix
    forward through TransformerLens's own attention over a prefix cache repeated per cell,
    the slower reference; :mod:`actadd.studies.behaviours.suffix`)."""

    def __init__(
        self,
        model: Model,
        prompts: Prompts,
        layers: Sequence[int],
        *,
        forward: str = "suffix",
        max_rows: int = 256,
    ) -> None:
        self.model, self.prompts, self.forward = model, prompts, forward
        self.groups = [np.flatnonzero(prompts.n_steer == k) for k in np.unique(prompts.n_steer)]
        if forward in ("suffix", "suffix_repeat"):
            self.batches = [
                SuffixBatch(
                    model,
                    [prompts.ids[i] for i in g],
                    int(prompts.n_steer[g[0]]),
                    layers,
                    max_rows=max_rows,
                    shared=forward == "suffix",
                )
                for g in self.groups
            ]
        elif forward == "prefix":
            self.batch = PrefixBatch(model, prompts.ids, max_rows=max_rows)
        else:
            raise ConfigError(
                f"forward {forward!r} unknown; allowed: suffix, suffix_repeat, prefix."
            )

    def run(self, layer: int, cells: Sequence[tuple[Tensor, float, np.ndarray | None]]):
        """``(p_match, logit_diff)``, each [cells, questions]: one row per (question, cell)."""
        pr = self.prompts
        if self.forward == "prefix":
            conds = [_condition(pr, layer, row, m, s) for row, m, s in cells]
            logits = self.batch.logits(conds)
            a, b = pr.letter_ids
            both = torch.stack([torch.stack([lg[:, a], lg[:, b]], -1) for lg in logits])
            return _scores(both, pr.matching)
        n = len(pr.ids)
        both = torch.empty((len(cells), n, 2), dtype=torch.float64)
        for g, batch in zip(self.groups, self.batches):
            d = cells[0][0].shape[-1] if cells else 0
            add = torch.zeros(
                (len(cells), len(g), d),
                dtype=batch.resid[layer].dtype,
                device=batch.resid[layer].device,
            )
            for c, (row, m, s) in enumerate(cells):
                sign = (
                    torch.ones(len(g)) if s is None else torch.as_tensor(s[g], dtype=torch.float32)
                )
                add[c] = float(m) * sign.to(add)[:, None] * row.to(add)[None]
            both[:, g] = batch.logits(layer, add, pr.letter_ids).double().cpu()
        return _scores(both, pr.matching)


def steerability(multipliers: Sequence[float] | np.ndarray, logit_diff: np.ndarray) -> np.ndarray:
    """Per question, the least-squares slope of the logit difference on the multiplier
    (``logit_diff`` is [multipliers, questions])."""
    x = np.asarray(multipliers, float)
    y = np.asarray(logit_diff, float)
    xc = x - x.mean()
    return (xc[:, None] * (y - y.mean(0))).sum(0) / (xc**2).sum()
