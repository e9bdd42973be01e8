"""The simulated power of the confirmatory sign-flip test (actadd.lab.stats.power)."""

from __future__ import annotations

import numpy as np
import pytest

from actadd.lab.stats import (
    binary_effect,
    mean_effect,
    power_statement,
    sign_flip_power,
    smallest_design,
)


def test_no_effect_rejects_at_most_alpha():
    # the exact test is valid: with delta = 0 the rejection rate stays near or below alpha
    # (binary data has ties, so the test is conservative)
    null = mean_effect(0.0, sd_within=1.0, sd_between=0.5)
    rate = sign_flip_power(null, 10, 4, alpha=0.05, sims=1000, seed=1)
    assert rate <= 0.05 + 3 * (0.05 * 0.95 / 1000) ** 0.5
    assert sign_flip_power(binary_effect(0.2, 0.0), 10, 4, sims=500, seed=2) <= 0.07


def test_power_grows_with_prompts_and_effect():
    eff = mean_effect(0.5, sd_within=1.0, sd_between=0.3)
    small, large = (sign_flip_power(eff, k, 4, sims=400, seed=3) for k in (6, 14))
    assert small < large
    assert sign_flip_power(mean_effect(1.5, 1.0, 0.3), 6, 4, sims=400, seed=3) > small
    # the wrong direction is never detected by a one-sided test for "raises"
    assert sign_flip_power(mean_effect(-0.5, 1.0, 0.3), 14, 4, sims=200, seed=3) == 0.0


def test_simulators_have_the_stated_means():
    rng = np.random.default_rng(0)
    d = binary_effect(0.1, 0.2, concentration=5.0).simulate(rng, 20000, 4)
    assert d.mean() == pytest.approx(0.2, abs=0.01)
    m = mean_effect(0.3, 0.5, 0.2).simulate(rng, 20000, 4)
    # per-prompt mean: sd = sqrt(0.2² + 0.5²/4)
    assert m.mean() == pytest.approx(0.3, abs=0.01)
    assert m.std() == pytest.approx((0.2**2 + 0.5**2 / 4) ** 0.5, abs=0.01)


def test_smallest_design_and_statement():
    eff = mean_effect(1.0, sd_within=1.0, sd_between=0.2)
    k, powers = smallest_design(eff, prompts=(4, 8, 12), samples=4, sims=200, seed=4)
    # 4 prompts cannot reach p < 0.05 one-sided (floor 1/16 = 0.0625): power exactly 0
    assert powers[4] == 0.0
    assert k == 8 and powers[8] >= 0.8 and 12 not in powers
    line = power_statement(eff, 8, 4, sims=200, seed=4)
    assert line.startswith("8 prompts x 4 samples per arm") and "power" in line
    none, _ = smallest_design(mean_effect(0.01, 1.0, 1.0), prompts=(4, 6), sims=50)
    assert none is None


def test_bad_effect_is_one_line():
    with pytest.raises(ValueError, match="need 0 < p0 < 1"):
        binary_effect(0.9, 0.2)
    with pytest.raises(ValueError, match="standard deviations"):
        mean_effect(0.1, -1.0, 0.0)


def test_empirical_effect_keeps_the_planning_spread_and_shifts_it():
    from actadd.lab.stats import empirical_effect

    skewed = np.r_[np.zeros(40), np.full(10, 4.0)]  # mean 0.8, s.d. 1.62, long right tail
    eff = empirical_effect(0.5, skewed, label="a planted table")
    d = eff.simulate(np.random.default_rng(0), 100_000, 1)
    assert d.mean() == pytest.approx(0.5, abs=0.02)
    assert d.std() == pytest.approx(skewed.std(), abs=0.02)
    assert set(np.round(np.unique(d), 6)) == {-0.3, 3.7}  # resampled, not a normal
    assert "a planted table" in eff.describe and "s.d. 1.616" in eff.describe
    # valid: no effect rejects at most alpha (one-sided, Monte Carlo sign-flip above 40)
    null = empirical_effect(0.0, np.random.default_rng(1).normal(size=50))
    assert (
        sign_flip_power(null, 50, 1, alpha=0.05, sims=300, seed=2)
        <= 0.05 + 3 * (0.05 * 0.95 / 300) ** 0.5
    )
    assert sign_flip_power(empirical_effect(1.0, skewed), 50, 1, sims=100, seed=2) > 0.9
    with pytest.raises(ValueError, match="one value per prompt"):
        eff.simulate(np.random.default_rng(0), 10, 4)
    with pytest.raises(ValueError, match="at least 2 finite numbers"):
        empirical_effect(0.5, [1.0])
    line = power_statement(empirical_effect(1.0, skewed), 50, 1, sims=50)
    assert "Monte Carlo, 100,000 sign vectors" in line
