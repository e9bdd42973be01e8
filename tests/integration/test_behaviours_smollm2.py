"""The behaviours study's suffix forward on SmolLM2 (its chat template, grouped K/V heads,
prompts of different lengths left-padded): the shared prefix gives the numbers of
TransformerLens's own attention over the repeated cache and of a hand-written hook on the
whole prompt. Observed on the development machine: within 1e-5 of each other in p_match."""

from __future__ import annotations

import numpy as np
import torch

from actadd.studies.behaviours.data import load_behaviour
from actadd.studies.behaviours.protocol import Evaluator, Prompts, build_vectors

LAYERS = [0, 12, 29]


def test_the_shared_prefix_matches_transformerlens_and_a_hand_hook_on_smollm2(smollm2):
    data = load_behaviour("refusal")
    train, test = data.items[:4], data.items[4:9]
    v = build_vectors(smollm2, train, LAYERS, ["caa", "letter"])
    prompts = Prompts.build(smollm2, test)
    assert len({len(ids) for ids in prompts.ids}) > 1  # padding is exercised
    shared = Evaluator(smollm2, prompts, LAYERS, max_rows=8)
    repeat = Evaluator(smollm2, prompts, LAYERS, forward="suffix_repeat", max_rows=8)
    assert shared.batches[0].shared
    a, b = prompts.letter_ids
    for layer in LAYERS:
        cells = [(v.rows["caa"][layer], m, None) for m in (-2.0, 0.0, 1.0)]
        cells.append((v.rows["letter"][layer], 1.0, prompts.sign))
        p, ld = shared.run(layer, cells)
        q, le = repeat.run(layer, cells)
        np.testing.assert_allclose(p, q, atol=1e-5)
        np.testing.assert_allclose(ld, le, atol=1e-4)
        # the hand hook: the whole prompt, the vector on its last position
        row = 1.0 * v.rows["caa"][layer]
        for i, ids in enumerate(prompts.ids):

            def hook(resid, hook, row=row):
                resid = resid.clone()
                resid[0, -1] += row
                return resid

            logits = smollm2.run_with_hooks(
                torch.tensor([ids]), fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", hook)]
            )[0, -1]
            two = torch.softmax(torch.stack([logits[a], logits[b]]).double(), 0)
            assert abs(float(two[prompts.matching[i]]) - p[2, i]) < 1e-5
