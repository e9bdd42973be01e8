"""Power of the confirmatory test, by simulation: how many prompts a cell needs.

A confirmatory cell is tested with the sign-flip test over prompts
(:func:`~actadd.lab.stats.hypothesis_tests.sign_flip_test`: exact to 40 prompts, Monte Carlo
above) on the per-prompt mean of
steered − unsteered, ``samples`` completions per prompt and arm. Its power for a stated
effect has no closed form (the test is a permutation test, the outcome may be binary), so it
is simulated from a stated generative model with the same test the claim will use:

- :func:`binary_effect` — "the fraction of completions with a topic word": each prompt has
  its own unsteered rate, drawn from a Beta with mean ``p0`` and ``concentration`` (small =
  prompts differ a lot, as they do: most prompts never produce a wedding word unsteered);
  steering adds ``delta`` to it (clipped to [0, 1]); the two arms are drawn independently
  (conservative: common random numbers can only correlate them and raise power);
- :func:`mean_effect` — a continuous score (VADER sentiment): each pair's difference is
  ``delta + b_prompt + e``, ``b ~ N(0, sd_between)``, ``e ~ N(0, sd_within)``;
- :func:`empirical_effect` — one deterministic value per prompt (a next-token metric): the
  planning run's own per-prompt values, centred, resampled and shifted by ``delta`` (their
  skew and tails kept, not assumed normal).

:func:`sign_flip_power` is the fraction of simulated experiments whose p-value is below
``alpha``; :func:`smallest_design` the fewest prompts that reach the target power;
:func:`power_statement` one line for a preregistration entry. Planning values (``p0``, the
spreads) come from earlier runs' tables, which is what they are for; the effect size is a
choice, stated before the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from actadd.lab.stats.hypothesis_tests import sign_flip_method, sign_flip_test

__all__ = [
    "Effect",
    "binary_effect",
    "empirical_effect",
    "mean_effect",
    "power_statement",
    "sign_flip_power",
    "smallest_design",
]

# (rng, prompts, samples) -> the per-prompt mean differences of one simulated experiment
Simulator = Callable[[np.random.Generator, int, int], np.ndarray]


@dataclass(frozen=True)
class Effect:
    """A stated effect and the generative model that simulates it (``describe`` says both)."""

    describe: str
    simulate: Simulator


def binary_effect(p0: float, delta: float, concentration: float = 2.0) -> Effect:
    """A binary outcome (did a completion use a topic word?) raised by ``delta`` from a
    prompt-specific unsteered rate ``~ Beta(p0·c, (1 − p0)·c)``; both arms sampled
    independently per completion."""
    if not (0.0 < p0 < 1.0 and 0.0 < p0 + delta <= 1.0 and concentration > 0):
        raise ValueError(
            f"binary_effect: need 0 < p0 < 1, 0 < p0 + delta <= 1, concentration > 0; got "
            f"p0={p0}, delta={delta}, concentration={concentration}"
        )
    a, b = p0 * concentration, (1.0 - p0) * concentration

    def simulate(rng: np.random.Generator, prompts: int, samples: int) -> np.ndarray:
        base = rng.beta(a, b, size=prompts)
        steered = np.clip(base + delta, 0.0, 1.0)
        x = rng.random((prompts, samples)) < steered[:, None]
        y = rng.random((prompts, samples)) < base[:, None]
        return (x.astype(float) - y.astype(float)).mean(axis=1)

    return Effect(
        f"binary outcome, unsteered rate {p0:.3f} (prompt rates ~ Beta, concentration "
        f"{concentration:g}), steered +{delta:.2f}",
        simulate,
    )


def mean_effect(delta: float, sd_within: float, sd_between: float) -> Effect:
    """A continuous paired difference ``delta + b_prompt + e`` with ``b ~ N(0, sd_between)``
    per prompt and ``e ~ N(0, sd_within)`` per completion pair."""
    if sd_within < 0 or sd_between < 0:
        raise ValueError("mean_effect: standard deviations must be >= 0")

    def simulate(rng: np.random.Generator, prompts: int, samples: int) -> np.ndarray:
        b = rng.normal(0.0, sd_between, size=prompts)
        e = rng.normal(0.0, sd_within, size=(prompts, samples)).mean(axis=1)
        return delta + b + e

    return Effect(
        f"paired difference {delta:+.3f} (per-pair sd {sd_within:g} within prompts, "
        f"{sd_between:g} between prompts)",
        simulate,
    )


def empirical_effect(delta: float, values, label: str = "planning values") -> Effect:
    """One value per prompt (``samples`` must be 1), drawn with replacement from ``values``
    (a planning run's per-prompt values, e.g. its ``target_vs_control`` at a cell) after
    centring them on 0, plus ``delta``: the stated effect with the planning values' spread,
    skew and tails. ``label`` names them in :attr:`Effect.describe`."""
    v = np.asarray(values, float)
    if v.ndim != 1 or len(v) < 2 or not np.isfinite(v).all():
        raise ValueError(
            f"empirical_effect: values must be at least 2 finite numbers, got shape {v.shape}"
        )
    centred = v - v.mean()

    def simulate(rng: np.random.Generator, prompts: int, samples: int) -> np.ndarray:
        if samples != 1:
            raise ValueError(
                f"empirical_effect: one value per prompt (samples = 1), got samples = {samples}"
            )
        return delta + rng.choice(centred, size=prompts, replace=True)

    return Effect(
        f"per-prompt shift {delta:+.3f} with the spread of {label} (resampled, centred; "
        f"n {len(v)}, s.d. {v.std(ddof=1):.3f})",
        simulate,
    )


def sign_flip_power(
    effect: Effect,
    prompts: int,
    samples: int,
    *,
    alpha: float = 0.05,
    alternative: str = "greater",
    sims: int = 2000,
    seed: int = 0,
) -> float:
    """The fraction of ``sims`` simulated experiments (``prompts`` × ``samples`` per arm)
    whose sign-flip p-value (``alternative``) is below ``alpha``."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(sims):
        means = effect.simulate(rng, prompts, samples)
        hits += sign_flip_test(means, alternative) < alpha
    return hits / sims


def smallest_design(
    effect: Effect,
    *,
    prompts: Sequence[int] = (8, 16, 24, 32, 40),
    samples: int = 4,
    target: float = 0.8,
    alpha: float = 0.05,
    alternative: str = "greater",
    sims: int = 2000,
    seed: int = 0,
) -> tuple[int | None, dict[int, float]]:
    """The fewest ``prompts`` (of those given, ascending) whose power reaches ``target``, and
    the power of every design tried (``None`` when none reaches it)."""
    powers: dict[int, float] = {}
    for k in sorted(prompts):
        powers[k] = sign_flip_power(
            effect, k, samples, alpha=alpha, alternative=alternative, sims=sims, seed=seed
        )
        if powers[k] >= target:
            return k, powers
    return None, powers


def power_statement(
    effect: Effect,
    prompts: int,
    samples: int,
    *,
    alpha: float = 0.05,
    alternative: str = "greater",
    sims: int = 2000,
    seed: int = 0,
) -> str:
    """One line for a preregistration entry: the design, the test, the effect and its
    simulated power (with the simulation's own standard error)."""
    pw = sign_flip_power(
        effect, prompts, samples, alpha=alpha, alternative=alternative, sims=sims, seed=seed
    )
    se = (pw * (1.0 - pw) / sims) ** 0.5
    return (
        f"{prompts} prompts x {samples} samples per arm, sign-flip test over prompts "
        f"({sign_flip_method(prompts)}; "
        f"{alternative}, alpha {alpha:g}): power {pw:.2f} (simulation s.e. {se:.2f}, "
        f"{sims} runs, seed {seed}) to detect a {effect.describe}"
    )
