"""actadd.lab.stats against published values and independent computations (numpy, pandas).

Wilson and Newcombe values are from Newcombe (1998), Stat. Med. 17: "Two-sided confidence
intervals for the single proportion" (Table I, method 3) and "Interval estimation for the
difference between independent proportions" (Table II, method 10).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from actadd import ConfigError
from actadd.lab.stats import (
    mean_ci,
    mean_diffs,
    newcombe_interval,
    pearson,
    proportion_summary,
    range_table,
    ranks,
    spearman,
    t95,
    wilson_interval,
)

# ---------------------------------------------------------------------- Wilson, Newcombe


@pytest.mark.parametrize(
    "successes, n, lo, hi",
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe 1998a, Table I
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(successes, n, lo, hi):
    got = wilson_interval(successes, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_interval_closed_form_at_zero_and_n_successes():
    # with 0 successes the upper bound is z²/(n + z²); with n, the lower bound is n/(n + z²)
    z2 = 1.96**2
    assert wilson_interval(0, 10)[1] == pytest.approx(z2 / (10 + z2), rel=1e-12)
    assert wilson_interval(10, 10)[0] == pytest.approx(10 / (10 + z2), rel=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)


def test_wilson_interval_narrows_with_n_and_widens_with_z():
    w = [np.subtract(*wilson_interval(n // 2, n)[::-1]) for n in (10, 100, 1000)]
    assert w[0] > w[1] > w[2]
    assert np.subtract(*wilson_interval(5, 10, z=2.576)[::-1]) > w[0]


def test_wilson_interval_of_an_empty_sample_is_nan():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


@pytest.mark.parametrize(
    "a, n_a, b, n_b, lo, hi",
    [
        (56, 70, 48, 80, 0.0524, 0.3339),  # Newcombe 1998b, Table II (a)-(h)
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
        (10, 10, 0, 10, 0.6075, 1.0),
    ],
)
def test_newcombe_interval_matches_published_values(a, n_a, b, n_b, lo, hi):
    assert newcombe_interval(a, n_a, b, n_b) == pytest.approx((lo, hi), abs=5e-5)


def test_newcombe_interval_is_antisymmetric_and_nan_for_an_empty_sample():
    lo, hi = newcombe_interval(56, 70, 48, 80)
    assert newcombe_interval(48, 80, 56, 70) == pytest.approx((-hi, -lo), abs=1e-12)
    assert all(math.isnan(x) for x in newcombe_interval(3, 10, 0, 0))
    assert all(math.isnan(x) for x in newcombe_interval(0, 0, 3, 10))


# ---------------------------------------------------------------------- proportion_summary


def _tidy(cells: dict[tuple[str, int, float], list[float]], metric="topic_any") -> pd.DataFrame:
    rows = [
        dict(pair=p, pad="right", layer=layer, coeff=c, align="front", metric=metric, value=v)
        for (p, layer, c), values in cells.items()
        for v in values
    ]
    return pd.DataFrame(rows)


def test_proportion_summary_pools_the_unsteered_rows_for_the_difference():
    df = _tidy(
        {
            ("(unsteered)", -1, 0.0): [0, 1, 0, 0],
            ("(unsteered)", -2, 0.0): [1, 0, 0, 0],  # a second unsteered cell: pooled, 2/8
            ("p", 2, 4.0): [1, 1, 1, 0, 1],
        }
    )
    s = proportion_summary(df).set_index("layer")
    assert s.loc[2, ["successes", "n"]].tolist() == [4, 5]
    assert s.loc[2, "frac"] == 0.8
    assert (s.loc[2, "lo"], s.loc[2, "hi"]) == pytest.approx(wilson_interval(4, 5))
    assert s.loc[2, "diff"] == pytest.approx(0.8 - 2 / 8)
    assert (s.loc[2, "diff_lo"], s.loc[2, "diff_hi"]) == pytest.approx(
        newcombe_interval(4, 5, 2, 8)
    )


def test_proportion_summary_without_unsteered_rows_has_no_difference_columns():
    s = proportion_summary(_tidy({("p", 1, 1.0): [0, 1]}))
    assert "diff" not in s and s["frac"].tolist() == [0.5]


def test_proportion_summary_of_a_missing_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="No rows for metric 'sentiment'"):
        proportion_summary(_tidy({("p", 1, 1.0): [0, 1]}), "sentiment")


# ---------------------------------------------------------------------- t95


def _t_cdf(q: float, dof: int) -> float:
    """Student-t CDF at q > 0 by Simpson integration of the density (independent of t95)."""
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    x = np.linspace(0.0, q, 200_001)
    pdf = np.exp(log_c - (dof + 1) / 2 * np.log1p(x**2 / dof))
    h = x[1] - x[0]
    integral = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return 0.5 + float(integral)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 7, 11, 17, 30, 31, 45, 60, 120, 1000])
def test_t95_is_the_exact_975_quantile_at_every_dof(dof):
    # checked against an independent Simpson integration of the t density
    assert _t_cdf(t95(dof), dof) == pytest.approx(0.975, abs=2e-7)


def test_t95_known_quantiles_and_no_jump_to_the_normal_above_30():
    assert t95(1) == pytest.approx(12.7062, abs=1e-4)
    assert t95(10) == pytest.approx(2.2281, abs=1e-4)
    assert t95(30) == pytest.approx(2.0423, abs=1e-4)
    # the old table returned 1.96 for every dof > 30: t(31) is 2.0395, t(60) 2.0003
    assert t95(31) == pytest.approx(2.0395, abs=1e-4) and t95(60) == pytest.approx(2.0003, abs=1e-4)
    assert t95(1e6) == pytest.approx(1.95997, abs=1e-4)


def test_t95_takes_non_integer_dof_between_its_neighbours():
    # Welch degrees of freedom are not integers: the quantile falls between the neighbours'
    assert t95(2) < t95(1.5) < t95(1)
    assert t95(30) < t95(29.9) < t95(29)


@pytest.mark.parametrize("dof", [0, -1, float("nan"), float("inf")])
def test_t95_is_nan_at_no_degree_of_freedom_or_when_not_finite(dof):
    assert math.isnan(t95(dof))


# ---------------------------------------------------------------------- means


def _t_quantile(dof: float) -> float:
    """The 0.975 quantile by bisection on the Simpson CDF (independent of t95 and scipy)."""
    lo, hi = 1.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, dof) < 0.975 else (lo, mid)
    return (lo + hi) / 2


def _summary(cells: dict[tuple[int, float], list[float]], metric="sentiment") -> pd.DataFrame:
    """The shape of actadd.sweeps.summarize output, built here with pandas."""
    rows = []
    for (layer, coeff), values in cells.items():
        v = pd.Series(values, dtype=float)
        rows.append(
            dict(
                pair="p" if layer >= 0 else "(unsteered)",
                pad="right",
                layer=layer,
                coeff=coeff,
                align="front",
                metric=metric,
                mean=v.mean(),
                count=len(v),
                std=v.std(),
                sem=v.std() / np.sqrt(len(v)),
            )
        )
    return pd.DataFrame(rows)


def test_mean_ci_is_mean_plus_minus_t_times_sem():
    s = mean_ci(_summary({(1, 1.0): [1.0, 2.0, 3.0, 4.0, 5.0], (2, 1.0): [7.0]}))
    half = 2.7764451 * np.sqrt(2.5 / 5)  # t(4) · s.e.
    assert (s["lo"][0], s["hi"][0]) == pytest.approx((3 - half, 3 + half), rel=1e-7)
    assert s["lo"][1] == s["hi"][1] == 7.0  # one value: a zero-width interval


def test_mean_ci_uses_the_t_quantile_above_30_values_too():
    values = list(np.linspace(-1, 1, 40))
    s = mean_ci(_summary({(1, 1.0): values}))
    sem = np.std(values, ddof=1) / np.sqrt(40)
    assert s["hi"][0] - s["mean"][0] == pytest.approx(2.0226910 * sem, rel=1e-7)  # t(39)


def test_mean_diffs_welch_interval_matches_a_direct_computation():
    cell = [0.2, 0.9, 0.4, 0.8, 0.7, 0.1]
    base = [0.1, 0.0, 0.2, 0.1, 0.3, 0.0, 0.2, 0.1]
    s = mean_diffs(_summary({(-1, 0.0): base, (3, 2.0): cell}), "sentiment")
    row = s[s.layer == 3].iloc[0]

    v1, v2 = np.var(cell, ddof=1) / len(cell), np.var(base, ddof=1) / len(base)
    dof = (v1 + v2) ** 2 / (v1**2 / (len(cell) - 1) + v2**2 / (len(base) - 1))
    assert 5 <= dof < 6
    half = _t_quantile(dof) * np.sqrt(v1 + v2)
    diff = np.mean(cell) - np.mean(base)
    assert row["diff"] == pytest.approx(diff, rel=1e-12)
    assert (row["diff_lo"], row["diff_hi"]) == pytest.approx((diff - half, diff + half), rel=1e-12)
    t5 = 2.5705818 * np.sqrt(v1)
    assert (row["lo"], row["hi"]) == pytest.approx((np.mean(cell) - t5, np.mean(cell) + t5))
    assert "std" not in s.columns


def test_mean_diffs_zero_spread_gives_a_zero_width_difference():
    s = mean_diffs(_summary({(-1, 0.0): [0.5, 0.5, 0.5], (1, 1.0): [0.75, 0.75]}), "sentiment")
    row = s[s.layer == 1].iloc[0]
    assert row["diff_lo"] == row["diff"] == row["diff_hi"] == 0.25


def test_mean_diffs_of_a_single_value_cell_uses_the_baseline_dof():
    base = [0.0, 1.0, 0.0, 1.0]
    s = mean_diffs(_summary({(-1, 0.0): base, (1, 1.0): [2.0]}), "sentiment")
    row = s[s.layer == 1].iloc[0]
    b_sem = np.std(base, ddof=1) / 2
    assert row["hi"] == row["lo"] == 2.0
    assert row["diff_hi"] - row["diff"] == pytest.approx(t95(3) * b_sem, rel=1e-12)


def test_mean_diffs_without_unsteered_rows_or_metric():
    s = mean_diffs(_summary({(1, 1.0): [1.0, 2.0]}), "sentiment")
    assert "diff" not in s.columns
    with pytest.raises(ConfigError, match="No rows for metric 'kl'"):
        mean_diffs(_summary({(1, 1.0): [1.0, 2.0]}), "kl")


def test_range_table_is_the_spread_over_texts():
    df = _tidy({("p", 1, 1.0): [3.0, -1.0, 2.0], ("p", 2, 1.0): [5.0]}, metric="kl_neutral")
    df = pd.concat([df, _tidy({("p", 1, 1.0): [99.0]}, metric="other")])
    r = range_table(df, "kl_neutral").set_index("layer")
    assert r.loc[1, ["mean", "lo", "hi", "count"]].tolist() == [4 / 3, -1.0, 3.0, 3]
    assert r.loc[2, ["lo", "hi"]].tolist() == [5.0, 5.0]
    assert set(r["metric"]) == {"kl_neutral"}


# ---------------------------------------------------------------------- correlations


def test_pearson_matches_numpy_row_by_row_in_float64():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 50, generator=g)
    b = 0.5 * a + torch.randn(4, 50, generator=g)
    r = pearson(a, b)
    assert r.dtype == torch.float64 and r.shape == (4,)
    want = [np.corrcoef(a[i].double().numpy(), b[i].double().numpy())[0, 1] for i in range(4)]
    np.testing.assert_allclose(r.numpy(), want, rtol=1e-12)
    assert float(pearson(a[0], -3 * a[0] + 1)) == pytest.approx(-1.0, abs=1e-12)


def test_pearson_of_a_constant_is_nan():
    r = pearson(torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([1.0, 2.0, 4.0]))
    assert math.isnan(float(r[0])) and not math.isnan(float(r[1]))


def test_ranks_average_ties():
    assert ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_matches_pandas_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, 30).astype(float)
    y = x + rng.normal(size=30)
    want = pd.DataFrame({"x": x, "y": y}).corr(method="spearman").loc["x", "y"]
    assert spearman(x, y) == pytest.approx(want, rel=1e-12)
    assert spearman([1, 2, 3], [3, 1, 2]) == pytest.approx(-0.5)


@pytest.mark.parametrize("x, y", [([], []), ([1.0], [2.0]), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])])
def test_spearman_is_nan_with_fewer_than_two_values_or_a_constant(x, y):
    assert math.isnan(spearman(np.array(x), np.array(y)))


# ---------------------------------------------------------------------- paired designs
# Textbook values: each is computed by hand in the comment, or quoted from a classic source.


def test_mcnemar_exact_textbook():
    from actadd.lab.stats import mcnemar_exact

    # 2 vs 8 discordant: 2·P[Bin(10, .5) ≤ 2] = 2·(1 + 10 + 45)/1024 = 112/1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    # 0 vs 6: 2·(1/64)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_paired_t_student_sleep_data():
    """Student's (1908) sleep data, as in R's ``t.test(extra ~ group, sleep, paired=TRUE)``:
    mean difference 1.58, t = 4.0621, df 9, p = 0.002833, 95% CI [0.7001, 2.4599]."""
    from actadd.lab.stats import paired_t

    g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    r = paired_t(g2, g1)
    assert r["mean"] == pytest.approx(1.58)
    assert r["t"] == pytest.approx(4.0621, abs=1e-4)
    assert r["p"] == pytest.approx(0.002833, abs=1e-6)
    assert (r["lo"], r["hi"]) == pytest.approx((0.7001142, 2.4598858), abs=1e-6)
    assert paired_t([1, 2, 3], [1, 2, 3])["p"] == 1.0


def test_bh_adjust_textbook():
    from actadd.lab.stats import bh_adjust

    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") -> 0.02 0.04 0.04 0.02
    assert bh_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # Benjamini & Hochberg (1995), section 4: 15 p-values, 4 rejected at q = 0.05
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
         0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000]  # fmt: skip
    assert int((bh_adjust(p) <= 0.05).sum()) == 4
    out = bh_adjust([0.2, float("nan"), 0.01])
    assert np.isnan(out[1]) and out[2] == pytest.approx(0.02) and out[0] == pytest.approx(0.2)


def test_paired_newcombe_reduces_to_unpaired_when_uncorrelated():
    from actadd.lab.stats import newcombe_interval, paired_newcombe_interval

    # a·d = b·c: phi = 0, so the paired interval is the unpaired one on the same margins
    assert paired_newcombe_interval(4, 4, 2, 2) == pytest.approx(newcombe_interval(8, 12, 6, 12))
    # positive correlation narrows it (the same margins, more concordant pairs)
    lo0, hi0 = newcombe_interval(30, 50, 20, 50)
    lo, hi = paired_newcombe_interval(18, 12, 2, 18)
    assert hi - lo < hi0 - lo0 and lo < 0.2 < hi
    # every pair a success under both: no difference, and the interval contains only 0
    lo, hi = paired_newcombe_interval(10, 0, 0, 0)
    assert lo <= 0 <= hi and hi - lo < 0.6


def test_cluster_bootstrap_behaviour():
    from actadd.lab.stats import cluster_bootstrap

    # a constant difference has a zero-width interval
    r = cluster_bootstrap([0.5] * 15, [i // 3 for i in range(15)])
    assert (r["mean"], r["lo"], r["hi"]) == pytest.approx((0.5, 0.5, 0.5))
    assert r["p"] < 0.001 and r["clusters"] == 5
    # all the signal in one of five prompts: the clustered interval reaches 0, the
    # per-observation one does not
    values = [1.0] * 8 + [0.0] * 32
    clustered = cluster_bootstrap(values, [i // 8 for i in range(40)], seed=1)
    iid = cluster_bootstrap(values, list(range(40)), seed=1)
    assert clustered["lo"] == 0.0 and iid["lo"] > 0.05
    assert clustered["p"] > 0.05 > iid["p"]
    # reproducible
    assert cluster_bootstrap(values, [i // 8 for i in range(40)], seed=1) == clustered


@pytest.mark.parametrize("k", [1, 2, 4])
def test_cluster_bootstrap_refuses_fewer_than_five_clusters(k):
    from actadd.lab.stats import cluster_bootstrap

    with pytest.raises(ValueError, match=f"at least 5 clusters, got {k}"):
        cluster_bootstrap(np.arange(3.0 * k), np.repeat(np.arange(k), 3))


def test_two_clusters_get_a_t_interval_not_their_range():
    # the Love-alone case: two prompts whose mean differences are -0.166 and -0.081. A
    # bootstrap over 2 clusters gives (about) their range, [-0.166, -0.081]; the t interval
    # on 1 degree of freedom is mean ± 12.706 · sd/sqrt(2)
    from actadd.lab.stats import cluster_interval

    values = np.r_[np.full(8, -0.166), np.full(8, -0.081)]
    r = cluster_interval(values, np.repeat([0, 1], 8))
    mean, sd = -0.1235, np.std([-0.166, -0.081], ddof=1)
    half = 12.7062047 * sd / np.sqrt(2)
    assert r["interval"] == "t over 2 clusters" and r["clusters"] == 2
    assert r["mean"] == pytest.approx(mean)
    assert (r["lo"], r["hi"]) == pytest.approx((mean - half, mean + half), rel=1e-6)
    assert r["hi"] - r["lo"] > 1.0 > 0.166 - 0.081  # about 1.08 wide, not 0.085
    assert r["lo"] < 0 < r["hi"]


def test_cluster_t_is_the_t_interval_of_cluster_means_when_clusters_are_equal():
    from scipy import stats as st

    from actadd.lab.stats import cluster_t

    rng = np.random.default_rng(3)
    values, clusters = rng.normal(0.3, 1, size=12), np.repeat(np.arange(4), 3)
    means = pd.Series(values).groupby(clusters).mean()
    r = cluster_t(values, clusters)
    direct = st.ttest_1samp(means, 0.0)
    half = t95(3) * means.std(ddof=1) / 2
    assert r["mean"] == pytest.approx(means.mean())
    assert (r["lo"], r["hi"]) == pytest.approx((means.mean() - half, means.mean() + half))
    assert r["p"] == pytest.approx(direct.pvalue)
    # unequal sizes: the pooled mean, with the cluster-robust standard error
    values2 = np.r_[values, [5.0, 5.0, 5.0]]
    r2 = cluster_t(values2, np.r_[clusters, [3, 3, 3]])
    assert r2["mean"] == pytest.approx(values2.mean())


def test_cluster_interval_picks_the_method_by_the_number_of_clusters():
    from actadd.lab.stats import cluster_interval

    v = np.arange(30.0)
    assert cluster_interval(v, np.repeat(np.arange(5), 6))["interval"] == "cluster bootstrap"
    assert cluster_interval(v, np.repeat(np.arange(3), 10))["interval"] == "t over 3 clusters"
    one = cluster_interval(v, np.zeros(30))
    assert one["interval"] == "none (one cluster)" and math.isnan(one["lo"])


def test_sign_flip_test_exact():
    from actadd.lab.stats import sign_flip_test

    assert sign_flip_test([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    assert sign_flip_test([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)
    # [3, -1, 1, 1]: |sum| = 4; flips reaching |sum| >= 4: ±(3,-1,1,1), ±(3,1,-1,1),
    # ±(3,1,1,-1), ±(3,1,1,1) = 8 of 16
    assert sign_flip_test([3, -1, 1, 1]) == pytest.approx(8 / 16)


def _sign_flip_brute(m, alternative):
    import itertools

    m = np.asarray(m, float)
    s = np.array(list(itertools.product((1.0, -1.0), repeat=len(m)))) @ m
    obs = m.sum()
    if alternative == "greater":
        return float(np.mean(s >= obs - 1e-9))
    if alternative == "less":
        return float(np.mean(s <= obs + 1e-9))
    return float(np.mean(np.abs(s) >= abs(obs) - 1e-9))


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_sign_flip_test_meet_in_the_middle_equals_brute_force(alternative):
    from actadd.lab.stats import sign_flip_test

    rng = np.random.default_rng(0)
    for k in (1, 2, 5, 9, 12):
        for _ in range(20):
            # ties and zeros on purpose: values on a coarse grid
            m = rng.integers(-3, 4, size=k) / 4.0
            assert sign_flip_test(m, alternative) == pytest.approx(
                _sign_flip_brute(m, alternative)
            ), (k, m)


def test_sign_flip_test_one_sided_by_hand_and_large_k():
    from actadd.lab.stats import sign_flip_test

    # all 5 clusters up: one-sided p = 1/32 (the all-plus assignment), two-sided 2/32
    assert sign_flip_test([1, 2, 3, 4, 5], "greater") == pytest.approx(1 / 32)
    assert sign_flip_test([1, 2, 3, 4, 5], "less") == pytest.approx(1.0)
    assert sign_flip_test([-1, -2, -3], "less") == pytest.approx(1 / 8)
    # 32 clusters, all equal and positive: the one-sided floor 2^-32 (exact, not sampled)
    assert sign_flip_test([0.5] * 32, "greater") == pytest.approx(2.0**-32)
    assert sign_flip_test([0.5] * 32) == pytest.approx(2.0**-31)
    # one-sided on data pointing the stated way is half the two-sided value (symmetry)
    m = np.linspace(-0.3, 1.0, 24)
    assert sign_flip_test(m, "greater") == pytest.approx(sign_flip_test(m) / 2)
    with pytest.raises(ValueError, match="alternative 'up' unknown"):
        sign_flip_test([1.0], "up")
    with pytest.raises(ValueError, match="at least one cluster"):
        sign_flip_test([])


def test_welch_t_by_hand():
    from actadd.lab.stats import welch_t

    # x: mean 2, var 1 (n 3); y: mean 5, var 2 (n 6): se² = 1/3 + 2/6 = 2/3
    # dof = (2/3)² / ((1/3)²/2 + (1/3)²/5) = 40/7 = 5.714
    r = welch_t([1, 2, 3], [3, 4, 5, 5, 6, 7])
    assert r["mean"] == pytest.approx(-3.0)
    assert r["t"] == pytest.approx(-3.0 / math.sqrt(2 / 3))
    assert r["dof"] == pytest.approx(40 / 7)
    # t = -3.674 on 5.714 dof: two-sided p = 0.01134 (R: t.test(x, y)$p.value)
    assert r["p"] == pytest.approx(0.011343, abs=2e-6)
    assert r["lo"] < -3.0 < r["hi"] < 0


def test_rank_against_draws_is_the_exact_rank_p_value():
    from actadd.lab.stats import rank_against_draws

    # 5 prompts; the arm's mean 2.0; draw means 0, 1, 3, 4 -> 2 draws >= it: p = 3/5
    m = np.array([[2.0, 0.0, 1.0, 3.0, 4.0]] * 5)
    r = rank_against_draws(m)
    assert r["p"] == pytest.approx(3 / 5) and r["above"] == 2 and r["draws"] == 4
    assert r["estimate"] == pytest.approx(2.0 - 2.0)  # median of 0, 1, 3, 4 is 2
    # identical prompts: every bootstrap resample gives the same statistic
    assert r["lo"] == pytest.approx(0.0) and r["hi"] == pytest.approx(0.0)
    top = np.array([[9.0, 0.0, 1.0, 3.0, 4.0], [7.0, 1.0, 0.0, 2.0, 3.0]] * 3)
    assert rank_against_draws(top)["p"] == pytest.approx(1 / 5)
    assert rank_against_draws(top)["lo"] > 0
    # two prompts: the rank p stands (it is exact); no bootstrap interval from 2 prompts
    two = rank_against_draws(top[:2])
    assert two["p"] == pytest.approx(1 / 5) and math.isnan(two["lo"]) and math.isnan(two["hi"])
    with pytest.raises(ValueError, match="draws"):
        rank_against_draws(np.array([[1.0], [2.0]]))


def _sign_flip_integer_exact(m, alternative):
    """The exact sign-flip p of integer ``m`` by convolution: the distribution of Σ s·m
    over all 2^k sign vectors, counted on the integers (any k)."""
    m = np.asarray(m, int)
    total = int(np.abs(m).sum())
    counts = np.zeros(2 * total + 1, dtype=object)  # exact integers: 2^50 overflows nothing
    counts[total] = 1
    for v in np.abs(m):
        shifted = np.zeros_like(counts)
        if v == 0:
            shifted = counts * 2
        else:
            shifted[v:] += counts[:-v]
            shifted[:-v] += counts[v:]
        counts = shifted
    sums = np.arange(-total, total + 1)
    obs = int(m.sum())
    if alternative == "greater":
        hit = sums >= obs
    elif alternative == "less":
        hit = sums <= obs
    else:
        hit = np.abs(sums) >= abs(obs)
    return float(counts[hit].sum() / 2 ** len(m))


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_sign_flip_test_above_40_clusters_is_monte_carlo_within_its_error_of_exact(alternative):
    from actadd.lab.stats import SIGN_FLIP_DRAWS, sign_flip_method, sign_flip_test

    rng = np.random.default_rng(5)
    for k in (41, 50, 64):
        m = rng.integers(-4, 5, size=k)
        # raised one prompt at a time until the one-sided p is near the 0.05 boundary, where
        # the Monte Carlo error matters (the two-sided p is then near 0.1, "less" near 1)
        while _sign_flip_integer_exact(m, "greater") > 0.06:
            m[rng.integers(k)] += 1
        exact = _sign_flip_integer_exact(m, alternative)
        p = sign_flip_test(m.astype(float), alternative)
        se = math.sqrt(exact * (1 - exact) / SIGN_FLIP_DRAWS) + 1 / SIGN_FLIP_DRAWS
        assert abs(p - exact) < 5 * se, (k, alternative, p, exact)
        # reproducible: the same seed gives the same p; another seed a (slightly) different one
        assert sign_flip_test(m.astype(float), alternative) == p
    assert sign_flip_method(40) == "exact"
    assert sign_flip_method(50) == "Monte Carlo, 100,000 sign vectors"


def test_the_monte_carlo_sign_flip_p_is_never_zero_and_the_integer_check_can_fail():
    from actadd.lab.stats import sign_flip_test

    up = np.arange(1.0, 51.0)  # every prompt up: exact p = 2^-50, Monte Carlo at its floor
    assert sign_flip_test(up, "greater", draws=999) == pytest.approx(1 / 1000)
    assert sign_flip_test(up, "less", draws=999) == 1.0
    # the exact reference distinguishes what the Monte Carlo test must match: a planted
    # wrong observed sum (one prompt's sign flipped) moves the exact p far outside the error
    m = np.random.default_rng(5).integers(-4, 6, size=50)
    flipped = m.copy()
    flipped[np.argmax(m)] *= -1
    assert abs(_sign_flip_integer_exact(flipped, "greater") - sign_flip_test(m.astype(float),
               "greater")) > 0.01  # fmt: skip
    # brute force agrees with the convolution where both run (k = 12)
    small = np.random.default_rng(6).integers(-3, 4, size=12)
    for alt in ("two-sided", "greater", "less"):
        assert _sign_flip_integer_exact(small, alt) == pytest.approx(_sign_flip_brute(small, alt))
