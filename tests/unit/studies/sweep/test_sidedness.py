"""A confirmatory cell's sidedness is stated in the config before the run: ``alternative =
"greater"`` gets the one-sided exact sign-flip test, and the claim says so."""

from __future__ import annotations

import pytest

from actadd import ConfigError
from actadd.lab.claims import adjust
from actadd.lab.kinds import get_kind
from actadd.lab.runner import run_experiment
from actadd.lab.runs import RunDir
from actadd.lab.stats import sign_flip_test

SWEEP = dict(
    kind="sentiment",
    name="sides",
    model="tiny-llama",
    layers=[1],
    coeffs=[8.0],
    equalize=["right"],
    prompts=["I hate this because", "The day was awful and", "My boss said", "I feel"],
    target_words=["w", "e"],
    pairs=[{"positive": "Love", "negative": "Hate", "pad_token": "a"}],
    generation=dict(n_samples=2, max_new_tokens=4, topic_words=["we", "a"], sentiment=True),
)


def _confirmatory(tmp_path, alternative):
    cell = {"layer": 1, "coeff": 8.0, "metric": "sentiment"}
    if alternative:
        cell["alternative"] = alternative
    out = tmp_path / (alternative or "default")
    run_experiment(dict(SWEEP, confirmatory=[cell]), out)
    claims = adjust(get_kind("sentiment").claims(RunDir.existing(out)))
    (conf,) = [c for c in claims if c.confirmatory]
    return conf


def test_one_sided_cell_gets_the_one_sided_test(tmp_path):
    two = _confirmatory(tmp_path, None)
    one = _confirmatory(tmp_path, "greater")
    assert two.test.startswith("sign-flip over prompts (exact)")
    assert one.test.startswith("sign-flip over prompts (exact, one-sided)")
    # same data (same seeds): the one-sided p is the upper tail of the same statistic
    assert one.estimate == two.estimate
    assert two.p == pytest.approx(min(1.0, 2 * one.p)) if one.estimate > 0 else one.p >= 0.5
    assert _confirmatory(tmp_path, "two-sided").p == two.p


def test_bad_alternative_is_one_line():
    from actadd.sweeps.spec import SweepSpec

    raw = {k: v for k, v in SWEEP.items() if k != "kind"}
    cell = {"layer": 1, "coeff": 8.0, "alternative": "less"}
    with pytest.raises(ConfigError, match=r"alternative: 'two-sided' or 'greater'"):
        SweepSpec.from_dict({**raw, "confirmatory": [cell]})
    assert sign_flip_test([1.0, 2.0], "greater") == 0.25
