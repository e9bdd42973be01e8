"""The token-injection claims module: its old function name still resolves, with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from actadd.studies.token_injection import claims

ROOT = Path(__file__).resolve().parents[4]


def test_the_old_name_of_claims_against_controls_warns_and_gives_the_function():
    with pytest.warns(DeprecationWarning, match="v2_claims is now claims_against_controls"):
        old = claims.v2_claims
    assert old is claims.claims_against_controls


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        claims.nope  # noqa: B018


class _Tables:
    """A run as the claims read it: a config and saved tables."""

    def __init__(self, **tables):
        self.config, self.out, self.tables = {"name": "ti"}, None, tables

    def has_table(self, name):
        return name in self.tables

    def read_table(self, name, **_):
        return self.tables[name].copy()


def test_generation_arms_are_paired_by_prompt_and_sample_not_by_row_order():
    import pandas as pd

    from actadd.studies.token_injection.claims import _generation_claims

    rows = []
    for arm, hits in (("actadd", {(0, 0), (1, 1)}), ("unsteered", set())):
        for p in range(2):
            for s in range(2):
                rows.append(dict(pair="w", layer=2, arm=arm, text_index=p, sample=s,
                                 topic_any=float((p, s) in hits), completion=""))  # fmt: skip
    g = pd.DataFrame(rows)
    # the unsteered arm stored in another order and missing (prompt 1, sample 0): sorting
    # and pairing by position would pair actadd's (1, 1) with nothing or the wrong seed
    g = pd.concat([g[g.arm == "actadd"], g[g.arm == "unsteered"].iloc[::-1]])
    g = g[~((g.arm == "unsteered") & (g.text_index == 1) & (g["sample"] == 0))]
    (c,) = _generation_claims(_Tables(topic_rate=g), "ti")
    assert c.id == "topic_rate:actadd_vs_unsteered:w:L2"
    assert c.n == "3 pairs over 2 prompts" and "2/3 vs 0/3" in c.numbers


def test_the_generation_arm_counts_a_topic_list_not_one_word():
    import tomllib

    from actadd import ConfigError
    from actadd.config import WEDDING_WORDS
    from actadd.lab.runner import kind_of, read_config

    config = read_config(ROOT / "experiments/token_injection_v2.toml")
    spec = kind_of(config).parse({k: v for k, v in config.items() if k != "kind"})
    topics = spec.generation_args()["topics"]
    assert topics["weddings"] == topics["bride_groom"] == WEDDING_WORDS
    assert {"dog", "dogs", "puppy"} <= set(topics["dog"]) and "songs" in topics["music"]
    spec.check_topics()  # every generation pair has a list
    # without the topics table, the one-word concept target is refused by the plan step
    raw = tomllib.loads((ROOT / "experiments/token_injection_v2.toml").read_text())
    del raw["generation"]["topics"]
    raw.pop("quick")
    bare = kind_of(raw).parse({k: v for k, v in raw.items() if k != "kind"})
    with pytest.raises(ConfigError, match="pair 'weddings' would be counted with the one word"):
        bare.check_topics()
