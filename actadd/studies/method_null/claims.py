"""The ``method_null`` claims: each cell's arm against its KL-matched random draws.

One claim per cell, ``rank:<arm>:L<layer>``: the arm raises the metric (target minus control
words, nats) more than single random directions matched to it in row norms and in KL on
neutral text do. The p-value is the sequential Monte Carlo rank p
(:func:`actadd.lab.stats.sequential_rank_p`, one-sided); the estimate is the arm's mean minus
the median of the draws' means, with a prompt-bootstrap interval
(:func:`actadd.lab.stats.rank_against_draws` over the draws the test used).

Families (Benjamini–Hochberg within each): ``positive control`` (the per-position front
ActAdd cells: the design can detect a method that works only if they pass),
``confirmatory`` (the config's declared method cells) and ``exploratory`` (the rest).
"""

from __future__ import annotations

import numpy as np

from actadd.lab.claims import Claim
from actadd.lab.stats import rank_against_draws
from actadd.studies.method_null.config import CONTROL_ARM

__all__ = ["claims", "family_of"]


def family_of(arm: str, layer: int, confirmatory: set[tuple[str, int]]) -> str:
    if arm == CONTROL_ARM:
        return "positive control"
    return "confirmatory" if (arm, layer) in confirmatory else "exploratory"


def _describe(arm: str, config: dict) -> str:
    pair = config["pair"]
    name = f"{pair['positive']} − {pair['negative']}"
    if arm == CONTROL_ARM:
        return f"ActAdd {name} per position at the front, c = {config['control_coeff']:g}"
    if arm == "actadd_mean":
        return f"the mean row of ActAdd {name}, at every position"
    method, _, position = arm.partition(":")
    return f"{method} ({position} token{'s' if position == 'mean' else ''}), at every position"


def claims(run) -> list[Claim]:
    config = run.config
    cells = run.read_table("cells")
    values = run.read_table("draw_values")
    arms = run.read_table("arms")
    chosen = {(c["arm"], int(c["layer"])) for c in config.get("confirmatory") or ()}
    exp = config.get("name", run.out.name)
    out = []
    for row in cells.itertuples(index=False):
        arm, layer = row.arm, int(row.layer)
        a = arms[(arms.arm == arm) & (arms.layer == layer)].sort_values("text_index")
        dv = values[(values.arm == arm) & (values.layer == layer)]
        draws = dv.pivot(index="text_index", columns="draw", values="value").reindex(a.text_index)
        matrix = np.column_stack([a.value.to_numpy(), draws.to_numpy()])
        r = rank_against_draws(matrix)
        family = family_of(arm, layer, chosen)
        size = "" if arm == CONTROL_ARM else f" (size {config['coeff']:g} × residual norm)"
        stop = "stopped early" if row.stopped else f"all {int(row.draws_used)}"
        out.append(
            Claim(
                experiment=exp,
                id=f"rank:{arm}:L{layer}",
                statement=(
                    f"{_describe(arm, config)}{size} at L{layer} raises the next-token log-prob "
                    "of the target words minus the control words more than single random "
                    "directions matched to it in row norms and in KL on neutral text"
                ),
                estimate=r["estimate"],
                lo=r["lo"],
                hi=r["hi"],
                p=float(row.p),
                test=(
                    f"sequential rank among KL-matched random draws (one-sided, Besag–Clifford, "
                    f"stop at {config['stop_after']} draws >= the arm, at most "
                    f"{config['random_draws']})"
                ),
                n=f"{len(a)} prompts, {int(row.draws_used)} draws",
                family=family,
                confirmatory=family != "exploratory",
                clusters=len(a),
                numbers=(
                    f"mean {row.mean:+.3f}; draws' means median "
                    f"{float(draws.mean().median()):+.3f}; {int(row.exceed)} of "
                    f"{int(row.draws_used)} draws >= it ({stop}); neutral KL {row.kl_neutral:.3f}, "
                    f"draws' median scale {row.median_scale:.2f}, {int(row.not_converged)} not "
                    "within the KL tolerance"
                ),
            )
        )
    return out
