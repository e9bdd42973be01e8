"""Method-vs-null claims of sweeps with random draws (actadd.studies.sweep.kind.null_claims), on
synthetic results tables: every number is recomputed here by a direct route."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actadd import ConfigError
from actadd.lab.claims import NOT_SUPPORTED, SUPPORTED, adjust
from actadd.lab.stats import paired_t
from actadd.studies.sweep.kind import null_claims
from actadd.sweeps import SweepSpec
from actadd.sweeps.engine import METRIC_COLUMNS

N_PROMPTS, N_DRAWS = 12, 20
CONFIG = dict(
    kind="sweep",
    name="nulls",
    pairs=[{"positive": "Love", "negative": "Hate"}],
    layers=[3],
    coeffs=[1.0],
    aligns=["all"],
    prompts=[f"prompt {i}" for i in range(N_PROMPTS)],
    target_words=["love"],
    methods=["caa", "pca_diff", "random"],
    dataset="builtin:sentiment",
    random_draws=N_DRAWS,
)


class Run:
    """The two things a kind's claims read from a run directory."""

    def __init__(self, df: pd.DataFrame, config: dict) -> None:
        self.df, self.config, self.out = df, config, Path("nulls")

    def read_table(self, name: str) -> pd.DataFrame:
        assert name == "results"
        return self.df


def rows(method: str, values, pair="builtin:sentiment", samples=1) -> list[dict]:
    """One next-token row per prompt (sample -1), or ``samples`` sampled rows per prompt."""
    metric = "target_logprob_delta" if samples == 1 else "sentiment"
    return [
        dict(
            method=method,
            pair=pair,
            pad="",
            layer=3,
            coeff=1.0,
            align="all",
            text_kind="prompt",
            text_index=i // samples,
            sample=-1 if samples == 1 else i % samples,
            metric=metric,
            value=float(v),
        )  # fmt: skip
        for i, v in enumerate(values)
    ]


def table(samples: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = N_PROMPTS * samples
    prompt = np.repeat(rng.normal(size=N_PROMPTS), samples)  # shared by every arm
    draws = [prompt + rng.normal(scale=0.5, size=n) for _ in range(N_DRAWS)]
    recs = [r for d, x in enumerate(draws) for r in rows(f"random:{d}", x, samples=samples)]
    recs += rows("caa", prompt + 1.0 + rng.normal(scale=0.3, size=n), samples=samples)  # beats it
    recs += rows("pca_diff", prompt + rng.normal(scale=0.5, size=n), samples=samples)  # a draw
    return pd.DataFrame(recs, columns=METRIC_COLUMNS), np.mean(draws, axis=0)


def by_method(claims, kind="null"):
    """The claims of one kind ("null": against the draws' mean; "rank": against single
    draws), by method."""
    return {c.id.split(":")[2]: c for c in adjust(claims) if c.id.startswith(kind + ":")}


def test_a_method_that_beats_the_null_is_supported_and_one_that_does_not_is_not():
    df, null = table()
    claims = by_method(null_claims(Run(df, CONFIG)))
    assert sorted(claims) == ["caa", "pca_diff"]
    caa, pca = claims["caa"], claims["pca_diff"]
    assert caa.verdict == SUPPORTED and pca.verdict == NOT_SUPPORTED
    x = df[df.method == "caa"].sort_values("text_index").value.to_numpy()
    t = paired_t(x, null)  # one value per prompt: the prompt-level paired t
    assert (caa.estimate, caa.lo, caa.hi, caa.p) == pytest.approx(
        (t["mean"], t["lo"], t["hi"], t["p"])
    )
    assert caa.family == "method vs null mean target_logprob_delta" and caa.family_size == 2
    assert f"above {N_DRAWS} of {N_DRAWS} draws' means (percentile 100)" in caa.numbers
    assert "12 prompts" in caa.n and not caa.confirmatory


def test_sampled_rows_are_clustered_by_prompt():
    """Four samples per prompt: the test and interval run over the 12 prompt means."""
    df, null = table(samples=4)
    caa = by_method(null_claims(Run(df, CONFIG)))["caa"]
    x = df[df.method == "caa"].sort_values(["text_index", "sample"]).value.to_numpy()
    t = paired_t(x.reshape(N_PROMPTS, 4).mean(1), null.reshape(N_PROMPTS, 4).mean(1))
    assert (caa.estimate, caa.p) == pytest.approx((t["mean"], t["p"]))
    assert caa.n.startswith("12 prompts (48 rows")


def test_cells_named_against_random_are_confirmatory():
    df, _ = table()
    config = CONFIG | dict(
        confirmatory=[
            dict(method="caa", layer=3, coeff=1.0, metric="target_logprob_delta", against="random")
        ]  # fmt: skip
    )
    claims = by_method(null_claims(Run(df, config)), "rank")
    assert claims["caa"].confirmatory and claims["caa"].family == "confirmatory"
    assert not claims["pca_diff"].confirmatory
    # the confirmatory test is the strict one; the comparison with the draws' mean is a scan
    assert not by_method(null_claims(Run(df, config)))["caa"].confirmatory


def test_no_random_draws_no_null_claims():
    df, _ = table()
    assert null_claims(Run(df[~df.method.str.startswith("random")], CONFIG)) == []


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (dict(method="caa", against="chance"), "against 'chance' unknown"),
        (dict(method="random", against="random"), "not one of the sweep's non-random methods"),
        (dict(method="caa", against="random", align="front"), "has no random null"),
        (dict(method="caa", against="random", metric="kl_next_token"), "metric must be one of"),
        (dict(method="caa", against="random", pair="'Love'-'Hate'"), "drop pair"),
        (dict(method="caa", align="front"), "not one of the method's aligns"),
    ],
)
def test_bad_null_cells_fail_before_any_compute(cell, message):
    config = {k: v for k, v in CONFIG.items() if k != "kind"}
    config |= dict(aligns=["front", "all"], methods=["actadd", "caa", "random"])
    with pytest.raises(ConfigError, match=message) as err:
        SweepSpec.from_dict(config | dict(confirmatory=[dict(layer=3, coeff=1.0) | cell]))
    assert "\n" not in str(err.value)


def test_the_methods_experiment_is_sized_for_method_vs_null_claims():
    """experiments/methods.toml keeps what shared/SCIENCE.md asks of it: >= 50 random draws
    at matched norms, >= 64 prompts, and confirmatory cells against the null for every
    non-random method; its quick version stays small."""
    from actadd.lab.runner import read_config

    path = Path(__file__).resolve().parents[4] / "experiments" / "methods.toml"
    spec = SweepSpec.from_dict(read_config(path))
    assert spec.random_draws >= 50 and spec.norm == "match" and len(spec.prompts) >= 64
    chosen = {c["method"] for c in spec.confirmatory if c.get("against") == "random"}
    assert chosen == set(spec.methods) - {"random"}
    quick = SweepSpec.from_dict(read_config(path, quick=True))
    assert quick.random_draws * len(quick.prompts) * len(quick.coeffs) <= 8


def test_a_tiny_methods_run_gets_its_null_claims_from_the_saved_table(tiny_llama, tmp_path):
    from actadd.lab.kinds import get_kind
    from actadd.lab.runs import RunDir
    from actadd.sweeps import run_sweep

    config = {k: v for k, v in CONFIG.items() if k != "kind"} | dict(
        model="tiny-llama",
        prompts=["I went up to my friend and said", "Hello there", "The cat sat"],
        target_words=["w", "e"],
        dataset=None,
        pairs=[{"positive": "Love", "negative": "Hate"}, {"positive": "Kind", "negative": "Mean"}],
        random_draws=3,
        confirmatory=[
            dict(method="caa", layer=3, coeff=1.0, metric="target_logprob_delta", against="random")
        ],
    )
    run_sweep(SweepSpec.from_dict(config), tiny_llama, out=tmp_path / "run", progress=False)
    run = RunDir.existing(tmp_path / "run")
    claims = [c for c in get_kind("sweep").claims(run) if c.id.startswith("null:")]
    assert sorted(c.id.split(":")[2] for c in claims) == ["caa", "pca_diff"]
    (caa,) = [c for c in claims if ":caa:" in c.id]
    assert caa.n.startswith("3 prompts") and "of 3 draws" in caa.numbers
    claims = get_kind("sweep").claims(run)
    (rank,) = [c for c in claims if c.id.startswith("rank:") and ":caa:" in c.id]
    assert rank.confirmatory and rank.n == "3 prompts, 3 draws"
    df = run.read_table("results")
    rows = df[(df.metric == "target_logprob_delta") & (df.layer == 3)].set_index("text_index")
    null = rows[rows.method.str.startswith("random:")].groupby(level=0).value.mean()
    assert caa.estimate == pytest.approx((rows[rows.method == "caa"].value - null).mean())


def test_beating_the_draws_mean_is_not_beating_single_draws():
    """Random directions that lower the metric on average but vary widely: a method above
    their mean yet in the middle of them passes the mean test and fails the rank test; a
    method above every draw passes both. The rank p is the exact (1 + #draws ≥ it) / (N + 1)."""
    rng = np.random.default_rng(1)
    prompt = rng.normal(size=N_PROMPTS)
    n_draws = 60  # the smallest rank p is 1/61: it survives BH over the family of two
    offsets = np.linspace(-3.0, 2.0, n_draws)  # draw means: median -0.5, mean -0.5
    recs = [
        r
        for d, o in enumerate(offsets)
        for r in rows(f"random:{d}", prompt + o + rng.normal(scale=0.05, size=N_PROMPTS))
    ]
    recs += rows("caa", prompt + 0.5 + rng.normal(scale=0.05, size=N_PROMPTS))  # mid-pack
    recs += rows("pca_diff", prompt + 3.0 + rng.normal(scale=0.05, size=N_PROMPTS))  # above all
    df = pd.DataFrame(recs, columns=METRIC_COLUMNS)
    mean, rank = (
        by_method(null_claims(Run(df, CONFIG))),
        by_method(null_claims(Run(df, CONFIG)), "rank"),
    )
    assert mean["caa"].verdict == SUPPORTED and rank["caa"].verdict == NOT_SUPPORTED
    assert mean["pca_diff"].verdict == SUPPORTED and rank["pca_diff"].verdict == SUPPORTED
    draw_means = offsets + prompt.mean()
    caa_mean = df[df.method == "caa"].value.mean()
    above = int((draw_means < caa_mean).sum())
    assert rank["caa"].p == pytest.approx((1 + n_draws - above) / (n_draws + 1), abs=1e-12)
    assert rank["pca_diff"].p == pytest.approx(1 / (n_draws + 1))
    assert rank["pca_diff"].lo > 0 and rank["caa"].estimate == pytest.approx(
        caa_mean - np.median(df[df.method.str.startswith("random")].groupby("method").value.mean()),
        abs=1e-9,
    )
    assert rank["caa"].family == "method vs random draws target_logprob_delta"
