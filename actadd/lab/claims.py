"""Findings as code: a claim is a function of a run's saved tables.

Every experiment kind may declare ``claims(run) -> list[Claim]`` (see :mod:`actadd.lab.kinds`).
A :class:`Claim` carries its statement, the numbers behind it, a 95% interval, the test and
its p-value, the cells it was scanned with (its *family*) and, after
:func:`adjust`, the Benjamini–Hochberg adjusted p-value and the verdict. ``actadd report``
(:mod:`actadd.lab.report`) collects them into ``results/REPORT.md`` and ``results/claims.csv``.

Verdicts (:data:`DECISION_RULE` states them for the report):

- ``direction`` claims ("the vector raises X"): SUPPORTED when the adjusted p-value is below
  ``ALPHA``, the estimate has the stated sign, and the 95% interval (where there is one)
  excludes 0 on that side. The interval is clustered by prompt where the test is not (the
  scans' McNemar and paired t are conditional on the prompts), so a cell whose effect
  rests on one or two prompts fails here even when its test passes. Intervals over prompts
  are a cluster bootstrap from 5 prompts and a Student-t interval over 2–4 prompts
  (:func:`actadd.lab.stats.cluster_interval`). A claim on **one** prompt has no interval
  over prompts: when its test passes it reads :data:`CONDITIONAL` ("SUPPORTED (conditional
  on one prompt)"), never SUPPORTED;
- ``equivalence`` claims ("X is unchanged within ±margin"): SUPPORTED when the whole 95%
  interval lies inside ``[-margin, margin]`` (two one-sided tests at 2.5% each, read from
  the interval). Their p-value is the test of no difference, reported for completeness.
  On fewer than :data:`MIN_EQUIVALENCE_PROMPTS` prompts no verdict is given: ``NOT
  ASSESSED (2 prompts < 5)``.

A claim that the data does not support is kept and reported as NOT SUPPORTED: a negative
result is a result.

**Sensitivity: one-sided, not a verdict.** A confirmatory claim whose test was two-sided (a
choice fixed before its data) but whose hypothesis is directional also carries the exact
one-sided p-value of its stated direction on the same prompt means
(``sensitivity_p_one_sided``), its Benjamini–Hochberg value within the same family
(``sensitivity_p_one_sided_bh``) and whether the decision rule would be met with it
(``sensitivity_one_sided_rule``: ``"met"`` or ``"not met"``). They are reported beside the
verdict, never in it (:data:`SENSITIVITY`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from actadd.lab.cite import aliases, check_abbreviations
from actadd.lab.stats import (
    MIN_BOOT_CLUSTERS,
    bh_adjust,
    cluster_interval,
    mcnemar_exact,
    paired_t,
    rank_against_draws,
    sign_flip_method,
    sign_flip_test,
)

__all__ = [
    "ALPHA",
    "CONDITIONAL",
    "DECISION_RULE",
    "MIN_EQUIVALENCE_PROMPTS",
    "NOT_SUPPORTED",
    "SENSITIVITY",
    "SUPPORTED",
    "Claim",
    "Paired",
    "adjust",
    "arm",
    "binary_claim",
    "cell_label",
    "interval_note",
    "mean_claim",
    "paired_t_claim",
    "rank_claim",
    "table",
]

ALPHA = 0.05
SUPPORTED, NOT_SUPPORTED = "SUPPORTED", "NOT SUPPORTED"
#: the verdict of a direction claim on one prompt whose test passes
CONDITIONAL = "SUPPORTED (conditional on one prompt)"
#: the fewest prompts an equivalence verdict is given on
MIN_EQUIVALENCE_PROMPTS = MIN_BOOT_CLUSTERS

#: the rule :meth:`Claim.judged` applies, in words (REPORT.md's header)
DECISION_RULE = (
    f"A directional claim is SUPPORTED when (1) its Benjamini–Hochberg adjusted p-value "
    f"(within its family: the cells scanned together) is below {ALPHA}, (2) the estimate has "
    f"the stated sign, and (3) where the claim has a 95% interval, that interval excludes 0 "
    f"on the stated side. The interval is over prompts even where the test is conditional on "
    f"them (the scans' exact McNemar and paired t), so a scan cell that passes its test can "
    f"fail (3). Intervals over prompts are a cluster bootstrap (percentile) from "
    f"{MIN_BOOT_CLUSTERS} prompts and a Student-t interval on k − 1 degrees of freedom over "
    f"k = 2–4 prompts. A claim on one prompt has no interval over prompts: when it passes (1) "
    f"and (2) it reads {CONDITIONAL}, and says nothing beyond that prompt. An equivalence "
    f'claim ("within ±m") is SUPPORTED when its whole 95% interval lies inside ±m; on fewer '
    f"than {MIN_EQUIVALENCE_PROMPTS} prompts it gets no verdict (NOT ASSESSED). Everything "
    f"else is NOT SUPPORTED."
)

#: what the sensitivity columns are, in words (REPORT.md's sensitivity section)
SENSITIVITY = (
    "Sensitivity: one-sided, not a verdict. These confirmatory cells were tested two-sided, a "
    "choice fixed before their data, and their verdicts stand. As preregistered, their "
    "one-sided p-values are reported beside them as a sensitivity analysis only: the exact "
    "sign-flip test over prompts on the same per-prompt means, with the alternative the claim "
    'states ("raises": greater), and Benjamini–Hochberg within the same family. Where the '
    "estimate has the stated sign the one-sided p is half the two-sided one; against it, it is "
    "1 − p/2 plus the probability of the observed sum, which is large when many prompts have "
    'no hits. "Rule one-sided" says whether the decision rule would be met with the '
    "one-sided adjusted p in place of the two-sided one (sign and interval unchanged)."
)


@dataclass(frozen=True)
class Claim:
    """One finding and its evidence. ``sign`` is +1 ("raises"), −1 ("lowers"); ``margin``
    makes it an equivalence claim. ``family`` names the set of cells scanned together
    (Benjamini–Hochberg is applied within it); ``confirmatory`` marks a cell chosen before
    its data was collected. ``clusters`` is the number of prompts the evidence spans (None
    where the unit is not a prompt: cloze items, texts, pads). The ``sensitivity_*`` fields
    are the one-sided sensitivity analysis of a two-sided confirmatory claim (module
    docstring); NaN and ``""`` elsewhere."""

    experiment: str
    id: str
    statement: str
    estimate: float
    lo: float
    hi: float
    p: float
    test: str
    n: str
    family: str = ""
    sign: int = 1
    margin: float | None = None
    confirmatory: bool = False
    numbers: str = ""
    clusters: int | None = None
    p_adj: float = math.nan
    family_size: int = 1
    verdict: str = ""
    #: the short id prose cites (:mod:`actadd.lab.cite`), set by :func:`adjust`
    cite: str = ""
    #: sensitivity only: the exact one-sided p of the stated direction (two-sided claims)
    sensitivity_p_one_sided: float = math.nan
    #: sensitivity only: its Benjamini–Hochberg value within the family, set by :func:`adjust`
    sensitivity_p_one_sided_bh: float = math.nan
    #: sensitivity only: "met" or "not met" (the rule with the one-sided adjusted p)
    sensitivity_one_sided_rule: str = ""

    def judged(self) -> Claim:
        """This claim with its verdict, by :data:`DECISION_RULE`."""
        p = self.p_adj if math.isfinite(self.p_adj) else self.p
        k = self.clusters
        if self.margin is not None:
            if k is not None and k < MIN_EQUIVALENCE_PROMPTS:
                verdict = f"NOT ASSESSED ({k} prompts < {MIN_EQUIVALENCE_PROMPTS})"
                return replace(self, verdict=verdict)
            ok = math.isfinite(self.lo) and -self.margin <= self.lo and self.hi <= self.margin
        else:
            ok = self._direction_holds(p)
            if ok and k == 1:
                return replace(self, verdict=CONDITIONAL)
        rule = ""
        if math.isfinite(self.sensitivity_p_one_sided_bh):
            rule = "met" if self._direction_holds(self.sensitivity_p_one_sided_bh) else "not met"
        return replace(
            self, verdict=SUPPORTED if ok else NOT_SUPPORTED, sensitivity_one_sided_rule=rule
        )

    def _direction_holds(self, p: float) -> bool:
        """Conditions (1)–(3) of :data:`DECISION_RULE` for a directional claim with the
        adjusted p-value ``p``."""
        ok = math.isfinite(p) and p < ALPHA and self.estimate * self.sign > 0
        bound = self.lo if self.sign > 0 else self.hi
        if math.isfinite(bound):
            ok = ok and bound * self.sign > 0
        return ok

    def as_row(self) -> dict:
        return asdict(self)


def adjust(claims: Sequence[Claim]) -> list[Claim]:
    """Benjamini–Hochberg within each (experiment, family), the verdicts, and each claim's
    short id (:func:`actadd.lab.cite.aliases`). Claims with an empty family are their own
    family of one."""
    out = list(claims)
    by_exp: dict[str, list[int]] = {}
    for i, c in enumerate(out):
        by_exp.setdefault(c.experiment, []).append(i)
    check_abbreviations(by_exp)
    for exp, idx in by_exp.items():
        short = aliases(exp, [out[i].id for i in idx])
        for i in idx:
            out[i] = replace(out[i], cite=short[out[i].id])
    groups: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(out):
        key = (c.experiment, c.family or f"#{i}")
        groups.setdefault(key, []).append(i)
    for idx in groups.values():
        adj = bh_adjust([out[i].p for i in idx])
        for i, a in zip(idx, adj):
            out[i] = replace(out[i], p_adj=float(a), family_size=len(idx))
        # the sensitivity analysis: BH over the family's claims that carry a one-sided p
        sens = [i for i in idx if math.isfinite(out[i].sensitivity_p_one_sided)]
        if sens:
            adj = bh_adjust([out[i].sensitivity_p_one_sided for i in sens])
            for i, a in zip(sens, adj):
                out[i] = replace(out[i], sensitivity_p_one_sided_bh=float(a))
    return [c.judged() for c in out]


def table(claims: Sequence[Claim]) -> pd.DataFrame:
    cols = list(Claim.__dataclass_fields__)
    return pd.DataFrame([c.as_row() for c in claims], columns=cols)


# ---------------------------------------------------------------------- evidence builders


@dataclass(frozen=True)
class Paired:
    """Steered against unsteered (or arm A against arm B) on the same (prompt, sample)
    seeds: one row per pair with ``a``, ``b`` and the ``cluster`` (prompt)."""

    a: np.ndarray
    b: np.ndarray
    cluster: np.ndarray
    meta: dict = field(default_factory=dict)

    @classmethod
    def join(cls, arm_a: pd.DataFrame, arm_b: pd.DataFrame, on=("text_index", "sample")) -> Paired:
        """Rows of two arms of a tidy table matched on ``on`` (inner join; the arms of a
        sweep share seeds per (prompt, sample), so each match is one common-random-number
        pair). A key that occurs twice in one arm (two cells mixed into one arm, e.g. two
        pads) is a ValueError, not a silently doubled pair."""
        on = list(on)
        for name, side in (("A", arm_a), ("B", arm_b)):
            dup = side.duplicated(on)
            if dup.any():
                key = dict(zip(on, side.loc[dup, on].iloc[0].tolist()))
                raise ValueError(
                    f"arm {name} has {int(dup.sum())} rows that repeat a {tuple(on)} key (first "
                    f"{key}): it mixes several cells; select one cell per arm"
                )
        m = arm_a[on + ["value"]].merge(arm_b[on + ["value"]], on=on, suffixes=("_a", "_b"))
        if m.empty:
            raise ValueError("the two arms share no (prompt, sample) rows")
        return cls(m["value_a"].to_numpy(float), m["value_b"].to_numpy(float), m[on[0]].to_numpy())

    @property
    def n(self) -> int:
        return len(self.a)

    @property
    def k(self) -> int:
        return len(np.unique(self.cluster))

    def cluster_means(self) -> np.ndarray:
        d = pd.Series(self.a - self.b)
        return d.groupby(self.cluster).mean().to_numpy()


def binary_claim(pairs: Paired, *, confirmatory: bool, **kw) -> Claim:
    """A difference of paired proportions. Confirmatory: the test is the sign-flip test
    over prompts (clusters; exact to 40) and the interval a cluster bootstrap over prompts (a t
    interval over 2–4 prompts: :func:`actadd.lab.stats.cluster_interval`). Exploratory
    scans: exact McNemar (conditional on the prompts) and the same interval."""
    a, b = pairs.a.round().astype(int), pairs.b.round().astype(int)
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    boot = cluster_interval(a - b, pairs.cluster)
    hits_by_prompt = pd.Series(a).groupby(pairs.cluster).sum()
    prompts_with_hits = int((hits_by_prompt > 0).sum())
    numbers = (
        f"{a.sum()}/{pairs.n} vs {b.sum()}/{pairs.n}; discordant {only_a}:{only_b}; "
        f"hits in {prompts_with_hits} of {pairs.k} prompts"
    )
    return _over_prompts(
        pairs,
        float(a.mean() - b.mean()),
        boot,
        lambda: (mcnemar_exact(only_a, only_b), "exact McNemar (given the prompts)"),
        numbers=numbers,
        confirmatory=confirmatory,
        **kw,
    )


def mean_claim(pairs: Paired, *, confirmatory: bool, digits: int = 2, **kw) -> Claim:
    """A mean paired difference of a continuous metric (sentiment). Confirmatory: exact
    sign-flip test over prompts; scans: paired t (given the prompts). The interval is a
    cluster bootstrap over prompts (a t interval over 2–4 prompts)."""
    boot = cluster_interval(pairs.a - pairs.b, pairs.cluster)
    numbers = (
        f"mean {pairs.a.mean():.{digits}f} vs {pairs.b.mean():.{digits}f}; "
        f"{(pairs.cluster_means() > 0).sum()} of {pairs.k} prompts up"
    )
    return _over_prompts(
        pairs,
        float(boot["mean"]),
        boot,
        lambda: (paired_t(pairs.a, pairs.b)["p"], "paired t (given the prompts)"),
        numbers=numbers,
        confirmatory=confirmatory,
        **kw,
    )


def _over_prompts(
    pairs: Paired,
    estimate: float,
    boot: dict[str, float],
    scan_test: Callable[[], tuple[float, str]],
    *,
    confirmatory: bool,
    alternative: str = "two-sided",
    **kw,
) -> Claim:
    """A claim on paired arms with ``boot``'s interval (:func:`cluster_interval` over
    prompts; the test names it where it is not the bootstrap). Confirmatory: the sign-flip
    test over prompts (exact to 40 prompts, Monte Carlo above:
    :func:`~actadd.lab.stats.sign_flip_test`); scans: ``scan_test()``, a (p-value, test
    name) conditional on the prompts. ``alternative`` (confirmatory only): ``"two-sided"``
    or ``"greater"``, the one-sided test of a "raises" hypothesis stated before the run. A
    two-sided confirmatory claim also gets the one-sided p of its stated direction
    (``sign``) as a sensitivity analysis (module docstring); its verdict does not use it."""
    one_sided = math.nan
    if confirmatory:
        means = pairs.cluster_means()
        p = sign_flip_test(means, alternative)
        side = "" if alternative == "two-sided" else ", one-sided"
        test = f"sign-flip over prompts ({sign_flip_method(len(means))}{side})"
        if alternative == "two-sided":
            one_sided = sign_flip_test(means, "greater" if kw.get("sign", 1) > 0 else "less")
    else:
        p, test = scan_test()
    test += interval_note(boot)
    return Claim(
        estimate=estimate,
        lo=boot["lo"],
        hi=boot["hi"],
        p=p,
        test=test,
        n=f"{pairs.n} pairs over {pairs.k} prompts",
        confirmatory=confirmatory,
        clusters=pairs.k,
        sensitivity_p_one_sided=one_sided,
        **kw,
    )


def interval_note(result: dict) -> str:
    """What a claim's test text adds about a :func:`cluster_interval` result that is not a
    bootstrap: ``"; t interval over 3 prompts"``, ``"; no interval (one prompt)"``."""
    k = result["clusters"]
    if k >= MIN_BOOT_CLUSTERS:
        return ""
    return f"; t interval over {k} prompts" if k >= 2 else "; no interval (one prompt)"


def paired_t_claim(
    x, y, *, unit: str = "prompts", test: str = "paired t over prompts", n_note: str = "", **kw
) -> Claim:
    """A claim that ``x`` exceeds ``y`` (or falls below it, with ``sign=-1``) on paired
    values: estimate, interval and p from :func:`actadd.lab.stats.paired_t`; ``n`` counts the
    pairs in ``unit`` (the claim's ``clusters`` where the unit is prompts). A one-sample t
    against 0 is ``y = zeros``."""
    t = paired_t(x, y)
    return Claim(
        estimate=t["mean"],
        lo=t["lo"],
        hi=t["hi"],
        p=t["p"],
        test=test,
        n=f"{t['n']} {unit}{n_note}",
        clusters=int(t["n"]) if unit == "prompts" else None,
        **kw,
    )


def rank_claim(per_prompt, *, unit: str = "prompts", **kw) -> Claim:
    """A claim that an arm beats single random draws (column 0 of the prompts × (1 + N)
    array against columns 1..N; :func:`actadd.lab.stats.rank_against_draws`): estimate = the
    arm's mean minus the draws' median, prompt-bootstrap interval (none below 5 prompts),
    exact rank p-value."""
    r = rank_against_draws(per_prompt)
    return Claim(
        estimate=r["estimate"],
        lo=r["lo"],
        hi=r["hi"],
        p=r["p"],
        test=f"rank among {r['draws']} random draws (one-sided, exact)",
        n=f"{len(per_prompt)} {unit}, {r['draws']} draws",
        clusters=len(per_prompt) if unit == "prompts" else None,
        **kw,
    )


def arm(df: pd.DataFrame, metric: str, **cell) -> pd.DataFrame:
    """The rows of one arm (cell) of a tidy sweep table for ``metric``. ``layer=-1`` is the
    unsteered arm."""
    sel = df[df.metric == metric]
    for k, v in cell.items():
        sel = sel[np.isclose(sel[k], v)] if isinstance(v, float) else sel[sel[k] == v]
    return sel


def cell_label(layer: int, coeff: float) -> str:
    return f"L{layer}, c = {coeff:g}"
