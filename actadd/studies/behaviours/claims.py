"""The ``behaviours`` kind's claims, computed from a run's saved tables alone.

Pre-registered (stated here and in ``experiments/behaviours.toml`` before the first full
run). For each behaviour, at the layer ``L*`` chosen on the validation split (CAA's
``p(+1) − p(−1)``, :mod:`actadd.studies.behaviours.run`), on the test questions (the unit;
one deterministic value per question and cell):

- ``caa_plus:<b>``: CAA at multiplier +1 raises the matching-letter probability over
  unsteered (paired t over questions, one-sided, sign +1); family: BH over behaviours;
- ``caa_minus:<b>``: CAA at −1 lowers it (one-sided, sign −1); BH over behaviours;
- ``caa_vs_random:<b>``: CAA's ``p(+1) − p(−1)`` beats single norm-matched random directions
  (rank among ``claim_random_draws`` draws, exact one-sided; with N draws p ≥ 1/(N+1): see
  :func:`design` for when the family can pass; the full config uses 500);
- ``letter_control:<b>`` (the **positive control**, must pass): the unembedding letter
  direction ``w_ln ⊙ (W_U[:, A] − W_U[:, B])`` at the CAA norm, signed towards each
  question's matching letter, at +1, raises the matching-letter probability (one-sided).
  It raises it by construction wherever it reaches the output
  (:mod:`actadd.studies.behaviours.protocol`), so where it fails the pipeline, not the
  behaviour, is in question;
- ``caa_swapped:<b>`` and ``caa_balanced:<b>`` ("just the answer letter?"): CAA's
  ``p(+1) − p(−1)`` on the test questions with the letters swapped, and that of the CAA
  vector from letter-balanced train pairs, are above 0 (one-sided). A vector that only
  pushes a letter would reverse under the swap and vanish when balanced.

**Uninformative** (stated before the run): the benchmark says nothing about a behaviour on
this model when its positive control is NOT SUPPORTED, or when the unsteered propensity is
within 0.05 of 0.5 and no method (the control included) moves the mean matching-letter
probability by more than 0.02 at ±1 at ``L*``. :func:`verdicts` applies the rule.

**What a size can decide** (:func:`design`, checked against both configs by a test). The
claims are confirmatory only at the size the standards ask of a claim (at least
:data:`MIN_CONFIRMATORY` test questions per arm; a question is its own prompt), else they
are reported as exploratory. A rank claim's p-value is at least ``1/(N+1)`` with N draws,
and a verdict needs the BH-adjusted p below α: with B behaviours in the family it can pass
on its own only when ``B/(N+1) < α`` (N ≥ 140 for seven), only when every behaviour ranks
first when ``1/(N+1) < α ≤ B/(N+1)``, and never when ``1/(N+1) ≥ α``: such a claim says so
in its statement, and its NOT SUPPORTED is no evidence against CAA.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MIN_CONFIRMATORY", "claims", "design", "one_sided_t_claim", "verdicts"]

#: the fewest test questions (one per prompt) at which the claims are confirmatory
MIN_CONFIRMATORY = 64


def design(test: int, claim_random_draws: int, behaviours: int) -> dict[str, str]:
    """What a run of this size can decide, per claim kind: ``confirmatory`` ("yes" or why
    not) and ``rank`` ("can pass alone", "only if every behaviour ranks first" or "cannot
    pass"), from the rank floor ``1/(N+1)`` against BH over ``behaviours`` (docstring)."""
    from fractions import Fraction

    from actadd.lab.claims import ALPHA

    exact_floor, alpha = Fraction(1, int(claim_random_draws) + 1), Fraction(str(ALPHA))
    floor = float(exact_floor)
    if exact_floor * behaviours < alpha:
        rank = "can pass alone"
    elif exact_floor < alpha:
        rank = (
            f"only if every behaviour ranks first (p >= 1/{claim_random_draws + 1} = "
            f"{floor:.3f}; alone it needs {behaviours}/(N+1) < {ALPHA})"
        )
    else:
        rank = f"cannot pass (p >= 1/{claim_random_draws + 1} = {floor:.3f}, not below {ALPHA})"
    conf = (
        "yes"
        if test >= MIN_CONFIRMATORY
        else f"no: {test} test questions < {MIN_CONFIRMATORY} (exploratory)"
    )
    return {"confirmatory": conf, "rank": rank}


def one_sided_t_claim(x, y, *, sign: int, **kw):
    """A claim that ``x − y`` has ``sign`` on paired values: the paired t's mean and 95%
    interval, and its one-sided p-value in the stated direction."""
    from actadd.lab.claims import Claim
    from actadd.lab.stats import paired_t

    t = paired_t(x, y)
    p2 = t["p"]
    right = t["mean"] * sign > 0
    p = p2 / 2 if right else 1 - p2 / 2
    return Claim(
        estimate=t["mean"],
        lo=t["lo"],
        hi=t["hi"],
        p=float(p),
        sign=sign,
        test="paired t over questions (one-sided)",
        n=f"{t['n']} questions",
        **kw,
    )


def _arm(scan: pd.DataFrame, method: str, layer: int, multiplier: float, which: str = "fine"):
    d = scan[
        (scan.scan == which)
        & (scan.method == method)
        & (scan.layer == layer)
        & np.isclose(scan.multiplier, multiplier)
    ]
    return d.sort_values("item").set_index("item").p_match


def claims(run) -> list:
    """The claims of the module docstring, one set per behaviour."""
    from actadd.lab.claims import rank_claim

    exp = run.config.get("name") or run.out.name
    scan = run.read_table("scan")
    draws = run.read_table("draws")
    data = run.read_table("data")
    size = design(int(data.n_test.min()), int(draws.draw.nunique()), int(data.behaviour.nunique()))
    rank_note = (
        "" if size["rank"] == "can pass alone" else f" [at this size the rank {size['rank']}]"
    )
    out = []
    for _, row in data.iterrows():
        b, L = row.behaviour, int(row.chosen_layer)
        s = scan[scan.behaviour == b]
        base = _arm(s, "caa", L, 0.0)
        plus, minus = _arm(s, "caa", L, 1.0), _arm(s, "caa", L, -1.0)
        where = f"{b}, {row.model}, L{L} (chosen on validation), {len(base)} test questions"
        common = dict(experiment=exp, confirmatory=size["confirmatory"] == "yes")
        out.append(
            one_sided_t_claim(
                plus,
                base,
                sign=1,
                id=f"caa_plus:{b}",
                family="CAA +1 raises the matching letter",
                statement=f"{where}: CAA at +1 raises the matching-letter probability",
                numbers=f"p {plus.mean():.3f} vs {base.mean():.3f} unsteered",
                **common,
            )
        )
        out.append(
            one_sided_t_claim(
                minus,
                base,
                sign=-1,
                id=f"caa_minus:{b}",
                family="CAA −1 lowers the matching letter",
                statement=f"{where}: CAA at −1 lowers the matching-letter probability",
                numbers=f"p {minus.mean():.3f} vs {base.mean():.3f} unsteered",
                **common,
            )
        )
        dr = draws[draws.behaviour == b]
        eff = (dr.p_plus - dr.p_minus).to_numpy()
        wide = (
            pd.DataFrame({"draw": dr.draw, "item": dr.item, "e": eff})
            .pivot(index="item", columns="draw", values="e")
            .sort_index()
        )
        caa_eff = (plus - minus).reindex(wide.index)
        arr = np.column_stack([caa_eff.to_numpy(), wide.to_numpy()])
        out.append(
            rank_claim(
                arr,
                unit="questions",
                id=f"caa_vs_random:{b}",
                family="CAA beats random directions",
                statement=f"{where}: CAA's p(+1) − p(−1) beats norm-matched random "
                f"directions{rank_note}",
                numbers=f"CAA {caa_eff.mean():+.3f} vs draws' median "
                f"{np.median(arr[:, 1:].mean(0)):+.3f}",
                **common,
            )
        )
        if (s.method == "letter").any():
            lp = _arm(s, "letter", L, 1.0)
            out.append(
                one_sided_t_claim(
                    lp,
                    base,
                    sign=1,
                    id=f"letter_control:{b}",
                    family="positive control: the unembedding letter direction",
                    statement=f"{where}: the unembedding letter direction towards the matching "
                    "letter, at +1, raises its probability (positive control)",
                    numbers=f"p {lp.mean():.3f} vs {base.mean():.3f}",
                    **common,
                )
            )
        sw = s[s.scan == "swapped"]
        if len(sw):
            sp, sm = _arm(sw, "caa", L, 1.0, "swapped"), _arm(sw, "caa", L, -1.0, "swapped")
            out.append(
                one_sided_t_claim(
                    sp,
                    sm,
                    sign=1,
                    id=f"caa_swapped:{b}",
                    family="CAA survives the letter swap",
                    statement=f"{where}: with (A) and (B) swapped in the questions, CAA still "
                    "moves the (new) matching letter: p(+1) > p(−1)",
                    numbers=f"p {sp.mean():.3f} at +1 vs {sm.mean():.3f} at −1",
                    **common,
                )
            )
        if (s.method == "caa_balanced").any():
            bp, bm = _arm(s, "caa_balanced", L, 1.0), _arm(s, "caa_balanced", L, -1.0)
            out.append(
                one_sided_t_claim(
                    bp,
                    bm,
                    sign=1,
                    id=f"caa_balanced:{b}",
                    family="letter-balanced CAA steers",
                    statement=f"{where}: CAA from letter-balanced train pairs moves the matching "
                    "letter: p(+1) > p(−1)",
                    numbers=f"p {bp.mean():.3f} at +1 vs {bm.mean():.3f} at −1",
                    **common,
                )
            )
    return out


def verdicts(results: pd.DataFrame, data: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """The behaviour × method table at ``L*`` (fine scan): mean ``p(+1) − p(−1)``, and per
    behaviour whether the benchmark is informative (module docstring). ``judged`` is the
    claims table after :func:`actadd.lab.claims.adjust`."""
    rows = []
    for _, d in data.iterrows():
        b, L = d.behaviour, int(d.chosen_layer)
        r = results[(results.behaviour == b) & (results.scan == "fine") & (results.layer == L)]
        ctrl = judged[judged.id == f"letter_control:{b}"]
        control_ok = bool(len(ctrl)) and ctrl.verdict.iloc[0] == "SUPPORTED"
        moves = {}
        for m, g in r.groupby("method"):
            at = g.set_index("multiplier").p_match
            moves[m] = float(at.get(1.0, np.nan) - at.get(-1.0, np.nan))
        still = abs(d.unsteered_p_match - 0.5) < 0.05 and all(
            abs(v) / 2 <= 0.02 for v in moves.values() if np.isfinite(v)
        )
        for m, v in moves.items():
            ids = {
                "caa": [f"caa_plus:{b}", f"caa_minus:{b}", f"caa_vs_random:{b}"],
                "letter": [f"letter_control:{b}"],
                "caa_balanced": [f"caa_balanced:{b}"],
            }
            j = judged[judged.id.isin(ids.get(m, []))]
            rows.append(
                dict(
                    model=d.model,
                    behaviour=b,
                    layer=L,
                    method=m,
                    effect_pm1=v,
                    verdict=" / ".join(j.verdict) if len(j) else "(scan only)",
                    informative=control_ok and not still,
                )
            )
    return pd.DataFrame(rows)
