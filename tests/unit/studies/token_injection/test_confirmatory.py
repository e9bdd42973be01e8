"""Confirmatory cells of the token_injection kind: declared in the config, checked before any
compute (one line per problem), tested one-sided where the config says so, Benjamini–Hochberg
within the family ``confirmatory``, judged by REPORT.md's rule, cited by their alias."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actadd import ConfigError
from actadd.cli.preflight import check_file
from actadd.lab.cite import aliases
from actadd.lab.claims import NOT_SUPPORTED, SUPPORTED, adjust
from actadd.lab.runner import kind_of, read_config
from actadd.lab.stats import bh_adjust, sign_flip_test
from actadd.studies.token_injection.claims import claims_against_controls
from actadd.studies.token_injection.config import TokenInjectionConfig

ROOT = Path(__file__).resolve().parents[4]
V2 = ROOT / "experiments/token_injection_v2.toml"
EXP = "token_injection_v2"
CELLS = [
    dict(pair="love_hate", layer=4, family="target_vs_control", alternative="greater"),
    dict(pair="love_hate", layer=8, family="target_vs_control", alternative="greater"),
]


def _spec(config: dict):
    return kind_of(config).parse({k: v for k, v in config.items() if k != "kind"})


@pytest.mark.parametrize("quick", [False, True])
def test_the_shipped_cells_parse_and_every_pair_that_needs_a_pad_pads_with_a(quick):
    config = read_config(V2, quick)
    spec = _spec(config)
    assert [dict(c) for c in spec.confirmatory] == CELLS
    assert spec.to_dict()["confirmatory"] == tuple(CELLS)  # saved in config.json
    assert "love_hate" in {p.name for p in spec.run_pairs}
    assert {4, 8} <= set(spec.settings.layers)
    # no pair of the rerun falls back to the paper's " " (the pad-confound zone L3-L10)
    assert {p.name: p.pad_token for p in spec.all_pairs if p.pad_token != " a"} == {}


def _write(tmp_path, cells: str) -> Path:
    """A one-pair config (layers 2 and 4, control words, no injections) with ``cells``."""
    path = tmp_path / "ti.toml"
    head = """
        kind = "token_injection"
        [[pairs]]
        name = "love_hate"
        positive = "Love"
        negative = "Hate"
        pad_token = " a"
        coeff = 5.0
        target = "love"
        [settings]
        prompts = ["I went up to my friend and said"]
        layers = [2, 4]
        injections = []
        control_words = ["table", "window"]
        """
    path.write_text(textwrap.dedent(head) + textwrap.dedent(cells))
    return path


GOOD = """
[[confirmatory]]
pair = "love_hate"
layer = 4
family = "target_vs_control"
alternative = "greater"
"""


def test_a_good_cell_passes_the_preflight(tmp_path):
    raw = check_file(_write(tmp_path, GOOD))
    assert raw["confirmatory"] == [CELLS[0]]


@pytest.mark.parametrize(
    "cell, message",
    [
        ('pair = "hate_love"', "confirmatory[0]: pair 'hate_love' is not one the run computes"),
        ("layer = 8", "confirmatory[0]: layer 8 is not one of [settings] layers [2, 4]."),
        ('layer = "4"', "confirmatory[0]: layer '4' is not one of [settings] layers"),
        ('family = "target_up"', "confirmatory[0]: family 'target_up' unknown; allowed: "),
        ('alternative = "less"', "confirmatory[0]: alternative 'less' unknown; allowed: 'greater'"),
        (
            'family = "representation_gap"',
            "family 'representation_gap' needs 'patch' in [settings] injections.",
        ),
        (
            'family = "like_tokens_beyond_null"',
            "needs 'replace' in [settings] injections; residual null draws",
        ),
    ],
)
def test_a_bad_cell_is_one_line_naming_the_file_before_any_compute(tmp_path, cell, message):
    key = cell.split(" = ")[0]
    cells = "\n".join(line if not line.startswith(key) else cell for line in GOOD.splitlines())
    path = _write(tmp_path, cells)
    with pytest.raises(ConfigError) as err:
        check_file(path)
    lines = str(err.value).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and message in lines[0], lines


def test_missing_unknown_and_repeated_keys_are_one_line_each(tmp_path):
    twice = GOOD.replace('"greater"', '"two-sided"')
    cells = GOOD + twice + '\n[[confirmatory]]\npair = "love_hate"\nlayer = 4\nsided = "greater"\n'
    with pytest.raises(ConfigError) as err:
        check_file(_write(tmp_path, cells))
    lines = str(err.value).strip().splitlines()
    twice = (
        "confirmatory[1]: the cell target_vs_control:love_hate:L4 is given twice, with "
        "alternatives 'greater' and 'two-sided'; state one."
    )
    assert any(twice in x for x in lines)
    assert any("confirmatory[2]: unknown key(s) ['sided']" in x for x in lines)
    assert any("confirmatory[2]: missing keys ['family', 'alternative']" in x for x in lines)
    assert len(lines) == 3, lines
    # a table where a list of tables belongs
    with pytest.raises(ConfigError, match="confirmatory must be a list of tables"):
        TokenInjectionConfig.from_dict(
            {**read_config(_write(tmp_path, "")), "confirmatory": CELLS[0]}
        )


def test_a_cell_on_a_pair_that_only_pairs_leaves_out_is_refused(tmp_path):
    raw = read_config(_write(tmp_path, GOOD))
    bride = dict(name="bride", positive=" bride", negative="", pad_token=" a", coeff=1.0,
                 target="weddings")  # fmt: skip
    raw = {**raw, "pairs": [*raw["pairs"], bride], "only_pairs": ["bride"]}
    with pytest.raises(
        ConfigError, match=r"pair 'love_hate' is not one the run computes \['bride'\]"
    ):
        _spec(raw)


# ---------------------------------------------------------------------- planted tables


class _Run:
    """A run as the claims read it: its saved config and tables."""

    def __init__(self, results: pd.DataFrame, cells=CELLS):
        self.config = {"name": EXP, "confirmatory": [dict(c) for c in cells]}
        self.out, self.tables = None, {"results": results}

    def has_table(self, name):
        return name in self.tables

    def read_table(self, name, **_):
        return self.tables[name].copy()


def _results(values: dict[tuple[str, int], np.ndarray], null: dict | None = None) -> pd.DataFrame:
    """ActAdd's per-prompt target_vs_control (and replace_corr) for each (pair, layer)."""
    rows = []
    for (pair, layer), v in values.items():
        for i, x in enumerate(v):
            base = dict(pair=pair, layer=layer, prompt_index=i, prompt_kind="user")
            rows.append(dict(base, condition="actadd", target_vs_control=x, replace_corr=0.5))
            if null is not None:
                rows.append(
                    dict(base, condition="null_residual", target_vs_control=np.nan,
                         replace_corr=null[(pair, layer)][i])
                )  # fmt: skip
        rows.append(dict(pair=pair, layer=layer, prompt_index=-1, prompt_kind="mean",
                         condition="actadd", target_vs_control=9.9, replace_corr=0.5))  # fmt: skip
    return pd.DataFrame(rows)


def _planted(up: int, n: int = 50, seed: int = 0) -> np.ndarray:
    """``n`` per-prompt values, ``up`` of them positive (|x| ~ 0.2-1.5 nats)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.2, 1.5, n)
    sign = np.where(np.arange(n) < up, 1.0, -1.0)
    return rng.permutation(size * sign)


def _judged(results, cells=CELLS):
    return {c.id: c for c in adjust(claims_against_controls(_Run(results, cells)))}


def test_actadd_raising_the_target_on_40_of_50_prompts_is_a_supported_one_sided_claim():
    l4, l8 = _planted(40, seed=1), _planted(40, seed=2)
    other = _planted(25, seed=3)  # a scan cell: stays exploratory
    claims = _judged(_results({("love_hate", 4): l4, ("love_hate", 8): l8, ("weddings", 4): other}))
    c = claims["target_vs_control:love_hate:L4"]
    assert c.confirmatory and c.family == "confirmatory" and c.family_size == 2
    assert c.test.startswith(
        "sign-flip over prompts (Monte Carlo, 100,000 sign vectors, one-sided)"
    )
    assert c.p == pytest.approx(sign_flip_test(l4, "greater")) and c.p < 1e-3
    assert c.estimate == pytest.approx(l4.mean()) and c.lo > 0
    assert c.verdict == SUPPORTED and c.n == "50 pairs over 50 prompts" and c.clusters == 50
    assert "40 of 50 prompts up" in c.numbers and "vs 0 +0.000" in c.numbers
    # BH within the two confirmatory cells only (the scan cell is its own family)
    p8 = claims["target_vs_control:love_hate:L8"].p
    assert c.p_adj == pytest.approx(bh_adjust([c.p, p8])[0])
    # the confirmatory cells left their scan family: one claim per cell
    scan = claims["target_vs_control:weddings:L4"]
    assert not scan.confirmatory and scan.family == "ActAdd raises its target vs control"
    assert scan.family_size == 1
    # cited by the alias actadd.lab.cite gives the run's ids (the part every id shares,
    # target_vs_control here, is dropped; a full run has other families and keeps it)
    assert c.cite == aliases(EXP, claims)[c.id] == "ti2.love_hate.L4"


def test_actadd_lowering_the_target_is_not_supported_one_sided():
    down = -np.abs(_planted(40, seed=4))
    down[:10] *= -1  # 40 of 50 prompts down
    claims = _judged(_results({("love_hate", 4): down, ("love_hate", 8): _planted(40, seed=5)}))
    c = claims["target_vs_control:love_hate:L4"]
    assert c.verdict == NOT_SUPPORTED and c.estimate < 0 and c.p > 0.99
    assert c.p == pytest.approx(sign_flip_test(down, "greater"))
    # the same data two-sided would be "significant" the wrong way: one-sided is the point
    assert sign_flip_test(down) < 1e-3


def test_a_two_sided_cell_and_another_family_are_tested_as_declared():
    v = _planted(36, seed=6)
    null = {("love_hate", 4): np.full(50, 0.4)}  # ActAdd's replace_corr 0.5 beats it
    cells = [
        dict(pair="love_hate", layer=4, family="target_vs_control", alternative="two-sided"),
        dict(pair="love_hate", layer=4, family="like_tokens_beyond_null", alternative="greater"),
    ]
    claims = _judged(_results({("love_hate", 4): v}, null), cells)
    two = claims["target_vs_control:love_hate:L4"]
    assert "one-sided" not in two.test and two.p == pytest.approx(sign_flip_test(v))
    assert two.sensitivity_p_one_sided == pytest.approx(sign_flip_test(v, "greater"))
    like = claims["like_tokens_beyond_null:love_hate:L4"]
    assert like.confirmatory and like.estimate == pytest.approx(0.1)
    assert "similarity +0.500 vs null_residual +0.400; 50 of 50 prompts up" == like.numbers
    assert like.verdict == SUPPORTED


def test_cells_that_map_to_one_layer_on_a_shallower_model_are_one_cell():
    from actadd.lab.retarget import map_layer

    # SmolLM2's L4 and L8 are both L1 on a 4-block model (the tiny test models)
    assert [map_layer(c["layer"], 30, 4) for c in CELLS] == [1, 1]
    mapped = [{**c, "layer": 1} for c in CELLS]
    assert _spec({**read_config(V2), "confirmatory": mapped}).confirmatory == (mapped[0],)
    # the same cell written twice alike is one cell too
    twice = CELLS + CELLS[:1]
    assert _spec({**read_config(V2), "confirmatory": twice}).confirmatory == tuple(CELLS)
