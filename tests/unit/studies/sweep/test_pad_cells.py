"""A sweep cell is one pair-length rule: with several ``equalize`` rules the claims keep the
rules apart (the results' ``pad`` column), never pairing one seed with two steered rows."""

from __future__ import annotations

import pytest

from actadd import ConfigError
from actadd.lab.claims import adjust
from actadd.lab.kinds import get_kind
from actadd.lab.runner import run_experiment
from actadd.lab.runs import RunDir

SWEEP = dict(
    kind="word_count",
    name="pads",
    model="tiny-llama",
    layers=[1],
    coeffs=[2.0],
    equalize=["right", "left"],
    prompts=["I went up to my friend and said", "The cat sat on the"],
    target_words=["w", "e"],
    pairs=[{"positive": " wedding day", "negative": ""}],
    generation=dict(n_samples=3, max_new_tokens=4, topic_words=["we", "a"]),
)


def test_each_pair_length_rule_is_its_own_cell(tmp_path):
    config = dict(SWEEP, confirmatory=[{"layer": 1, "coeff": 2.0, "equalize": "left"}])
    run_experiment(config, tmp_path / "r")
    claims = adjust(get_kind("word_count").claims(RunDir.existing(tmp_path / "r")))
    ids = sorted(c.id for c in claims)
    assert ids == ["topic_any:' wedding day' − '':L1:c2:front:left",
                   "topic_any:' wedding day' − '':L1:c2:front:right"]  # fmt: skip
    for c in claims:
        assert c.n == "6 pairs over 2 prompts"  # not 12: each seed paired once
        assert ("equalize left" in c.statement) == c.id.endswith(":left")
    (conf,) = [c for c in claims if c.confirmatory]
    assert conf.id.endswith(":left")


def test_a_confirmatory_cell_of_a_sweep_with_several_rules_names_one():
    from actadd.sweeps.spec import SweepSpec

    raw = {k: v for k, v in SWEEP.items() if k != "kind"}
    with pytest.raises(ConfigError, match=r"name the pair-length rule \(equalize"):
        SweepSpec.from_dict({**raw, "confirmatory": [{"layer": 1, "coeff": 2.0}]})
    with pytest.raises(ConfigError, match="equalize 'truncate' is not one of"):
        SweepSpec.from_dict(
            {**raw, "confirmatory": [{"layer": 1, "coeff": 2.0, "equalize": "truncate"}]}
        )
