"""Token injection's claims against controls and nulls, as functions of the saved tables
(the kind's other claims, :func:`actadd.studies.token_injection.kind.claims`, test ActAdd
against no change and against one random vector).

Every test is over prompts (one value per prompt, or a per-prompt mean over null draws —
with ``null_draws_per_prompt`` each prompt's own independent draws, so the spread over
prompts includes the draw-to-draw spread):
the interval is over prompts (:func:`actadd.lab.stats.cluster_interval`: a cluster bootstrap
from 5 prompts, a t interval below), the p-value a paired t over prompts, and
Benjamini–Hochberg runs within each family (all pairs × layers of one question). Families:

- *ActAdd raises its target against a control set*: ``target_vs_control`` of ActAdd > 0;
- *ActAdd ~ same-position tokens beyond the residual null*: ActAdd's ``replace_corr``
  (similarity to p+'s tokens at the vector's positions) exceeds the per-prompt mean over
  the residual-distribution draws (norm-matched per row);
- *representation gap*: the contextual patch raises the target (vs control) more than
  ActAdd — replacing the residual by the token's own, instead of adding a difference;
- *early-layer visibility gap*: the tokens at every layer raise the target more than the
  same tokens visible only from ``L`` on;
- *specificity*: in the matrix, ActAdd(wᵢ)'s similarity to injecting wᵢ exceeds that of
  each null — ActAdd of unrelated words, residual draws, embedding-difference draws — and
  the mean over the other concepts' ActAdd (off-diagonal);
- *generation*: topic-word rate under ActAdd against the same-position injection (exact
  McNemar, common random numbers joined on (prompt, sample); interval over prompts);
- *the contextual difference* (:mod:`actadd.studies.token_injection.contextual`: ActAdd's
  difference read after the prompt, added at ActAdd's rows, no token replaced), per pair and
  layer (:func:`_contextual_claims`): its next-token distribution is closer to p+'s tokens
  at the same positions than ActAdd's (Jensen–Shannon divergence, ``js_replace``), raw and
  at ActAdd's row norms (``ctxdiff_normed``); it raises the target vs control more than
  ActAdd; at ActAdd's row norms it resembles the tokens beyond the residual null (which is
  norm-matched to ActAdd too); and in sampled text its topic-word rate against ActAdd's,
  the tokens' and the unsteered one's. All exploratory (no preregistration).

*Confirmatory cells* (:mod:`actadd.studies.token_injection.confirmatory`): the cells the
config's ``[[confirmatory]]`` tables fixed before the run leave their scan family and form the
family ``confirmatory``, each tested with the sign-flip test over prompts and the sidedness
the config states (:func:`confirmatory_claims`).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from actadd.lab.claims import Claim, Paired, binary_claim, interval_note, mean_claim
from actadd.lab.stats import cluster_interval, paired_t
from actadd.studies.token_injection.confirmatory import FAMILIES, cell_id

__all__ = ["claims_against_controls", "confirmatory_claims"]


def _claim(exp: str, cid: str, statement: str, a, b, cluster, family: str, what: str) -> Claim:
    a, b = np.asarray(a, float), np.asarray(b, float)
    boot = cluster_interval(a - b, cluster)
    t = paired_t(a, b)
    return Claim(
        experiment=exp,
        id=cid,
        statement=statement,
        estimate=float(boot["mean"]),
        lo=boot["lo"],
        hi=boot["hi"],
        p=t["p"],
        test="paired t over prompts; "
        + (interval_note(boot)[2:] or "bootstrap interval over prompts"),
        n=f"{len(a)} prompts",
        clusters=int(boot["clusters"]),
        numbers=f"{what} {a.mean():+.3f} vs {b.mean():+.3f}",
        family=family,
    )


def claims_against_controls(run) -> list[Claim]:
    """Every family of the module docstring that ``run``'s tables allow: the ``results``
    table's target-vs-control, gap and residual-null claims, then the specificity matrix's
    (``specificity``, ``specificity_nulls``) and the topic-word rate's (``topic_rate``);
    the config's confirmatory cells (:func:`confirmatory_claims`) in place of their scan
    claims."""
    exp = run.config.get("name") or run.out.name
    df = run.read_table("results")
    user = df[df.prompt_kind == "user"]
    cells = run.config.get("confirmatory") or ()
    chosen = {cell_id(c) for c in cells}
    scans = [c for c in _scan_claims(run, user, exp) if c.id not in chosen]
    return confirmatory_claims(user, exp, cells) + scans


def confirmatory_claims(user: pd.DataFrame, exp: str, cells) -> list[Claim]:
    """One claim per confirmatory cell (``[[confirmatory]]`` tables, checked by
    :func:`~actadd.studies.token_injection.confirmatory.check_cells`) from the ``results``
    table's user-prompt rows ``user``: the family's condition against its other arm (or 0),
    per prompt, joined on the prompt; the sign-flip test over prompts with the cell's
    ``alternative``; a cluster-bootstrap interval over prompts; family ``confirmatory``
    (Benjamini–Hochberg within it). A cell with no rows (a run cut short) gives no claim."""
    keys = ["pair", "layer", "prompt_index"]
    out = []
    for cell in cells:
        fam = FAMILIES[cell["family"]]
        here = user[(user.pair == cell["pair"]) & (user.layer == cell["layer"])]
        # one value per prompt and arm (a null with several draws: their per-prompt mean)
        arms = here.groupby(["condition", *keys], as_index=False)[fam.column].mean()
        a = arms[arms.condition == fam.condition][keys + [fam.column]]
        if fam.other is None:
            b = a.assign(**{fam.column: 0.0})
        else:
            b = arms[arms.condition == fam.other][keys + [fam.column]]
        m = a.merge(b, on=keys, suffixes=("", "_other")).dropna()
        if m.empty:
            continue
        x, y = m[fam.column].to_numpy(float), m[f"{fam.column}_other"].to_numpy(float)
        pairs = Paired(x, y, m.prompt_index.to_numpy())
        claim = mean_claim(
            pairs,
            confirmatory=True,
            alternative=cell["alternative"],
            experiment=exp,
            id=cell_id(cell),
            statement=f"{cell['pair']} at L{cell['layer']}: {fam.statement}",
            family="confirmatory",
        )
        vs = "0" if fam.other is None else fam.other
        out.append(
            replace(
                claim,
                numbers=f"{fam.what} {x.mean():+.3f} vs {vs} {y.mean():+.3f}; "
                f"{int((x > y).sum())} of {pairs.k} prompts up",
            )
        )
    return out


def _scan_claims(run, user: pd.DataFrame, exp: str) -> list[Claim]:
    """The exploratory families of the module docstring (every pair × layer)."""
    out: list[Claim] = []
    keys = ["pair", "layer", "prompt_index"]

    def arm(cond: str, col: str) -> pd.DataFrame:
        return user[user.condition == cond][keys + [col]].rename(columns={col: cond})

    if "target_vs_control" in user and user.target_vs_control.notna().any():
        a = arm("actadd", "target_vs_control")
        for (pair, layer), d in a.groupby(["pair", "layer"], sort=False):
            out.append(
                _claim(
                    exp,
                    f"target_vs_control:{pair}:L{layer}",
                    f"{pair} at L{layer}: ActAdd raises the target words' log-probability "
                    "more than the control words'",
                    d.actadd,
                    np.zeros(len(d)),
                    d.prompt_index,
                    "ActAdd raises its target vs control",
                    "Δ target − Δ control (nats)",
                )
            )
        for cond, other, fam, text in (
            (
                "patch",
                "actadd",
                "representation gap: contextual patch vs ActAdd",
                "the contextual patch (the tokens' own layer-L residual) raises the target vs "
                "control more than ActAdd",
            ),
            (
                "inject_replace",
                "visible_replace",
                "early-layer visibility gap",
                "p+'s tokens visible at every layer raise the target vs control more than the "
                "same tokens visible only from L on",
            ),
        ):
            m = arm(cond, "target_vs_control").merge(arm(other, "target_vs_control"), on=keys)
            for (pair, layer), d in m.groupby(["pair", "layer"], sort=False):
                if layer == 0 and cond == "inject_replace":
                    continue  # identical by construction at L0
                out.append(
                    _claim(
                        exp,
                        f"{fam.split(':')[0].replace(' ', '_')}:{pair}:L{layer}",
                        f"{pair} at L{layer}: {text}",
                        d[cond],
                        d[other],
                        d.prompt_index,
                        fam,
                        "Δ target − Δ control (nats)",
                    )
                )
    if (user.condition == "null_residual").any():
        m = arm("actadd", "replace_corr").merge(arm("null_residual", "replace_corr"), on=keys)
        info = user[user.condition == "null_residual"].groupby(["pair", "layer"]).first()
        for (pair, layer), d in m.groupby(["pair", "layer"], sort=False):
            out.append(
                _claim(
                    exp,
                    f"like_tokens_beyond_null:{pair}:L{layer}",
                    f"{pair} at L{layer}: ActAdd's effect resembles p+'s tokens at the same "
                    "positions more than residual-distribution random vectors (norm-matched "
                    f"per row{_draws_text(info.loc[(pair, layer)])}) do",
                    d.actadd,
                    d.null_residual,
                    d.prompt_index,
                    "ActAdd ~ same-position tokens beyond the residual null",
                    "similarity",
                )
            )
    out += _contextual_claims(user, exp)
    out += _specificity_claims(run, exp)
    out += _generation_claims(run, exp)
    return out


# (id prefix, condition, the condition it is compared with, column, family, statement)
_CONTEXTUAL = (
    (
        "ctx_closer",
        "ctxdiff",
        "actadd",
        "js_replace",
        "contextual difference closer to the tokens than ActAdd (JS)",
        "the contextual difference's next-token distribution is closer (Jensen–Shannon) to "
        "that of p+'s tokens at the same positions than ActAdd's",
    ),
    (
        "ctxn_closer",
        "ctxdiff_normed",
        "actadd",
        "js_replace",
        "contextual difference at ActAdd's norms closer to the tokens than ActAdd (JS)",
        "the contextual difference at ActAdd's row norms is closer (Jensen–Shannon) to p+'s "
        "tokens at the same positions than ActAdd",
    ),
    (
        "ctx_target",
        "ctxdiff",
        "actadd",
        "target_vs_control",
        "contextual difference raises the target more than ActAdd",
        "the contextual difference raises the target vs control more than ActAdd",
    ),
    (
        "ctxn_like_tokens_beyond_null",
        "ctxdiff_normed",
        "null_residual",
        "replace_corr",
        "contextual difference ~ same-position tokens beyond the residual null",
        "the contextual difference at ActAdd's row norms resembles p+'s tokens at the same "
        "positions more than residual-distribution random vectors (norm-matched per row to "
        "ActAdd) do",
    ),
)


def _contextual_claims(user: pd.DataFrame, exp: str) -> list[Claim]:
    """The contextual difference against ActAdd and the residual null (module docstring);
    nothing for a run without the ``ctxdiff`` conditions. Each a paired t over prompts;
    for the Jensen–Shannon families the difference is ActAdd's distance minus the arm's
    (positive: the arm is closer to the tokens)."""
    keys = ["pair", "layer", "prompt_index"]
    out: list[Claim] = []
    for cid, cond, other, col, family, text in _CONTEXTUAL:
        if col not in user or not (user.condition == cond).any():
            continue
        cols = keys + [col] + (["js_replace_base"] if col == "js_replace" else [])
        a = user[user.condition == cond][cols]
        b = user[user.condition == other][keys + [col]]
        m = a.merge(b, on=keys, suffixes=("", "_other"))
        for (pair, layer), d in m.groupby(["pair", "layer"], sort=False):
            if layer == 0 and other == "actadd":
                continue  # resid_pre of L0 is the embedding: no context, the arm is ActAdd
            x, y = d[col], d[f"{col}_other"]
            what = "Δ target − Δ control (nats)" if col == "target_vs_control" else "similarity"
            if col == "js_replace":  # smaller is closer: the claim is other − cond > 0
                x, y = -x, -y
                what = "JS to the tokens (nats, negated)"
            c = _claim(
                exp,
                f"{cid}:{pair}:L{layer}",
                f"{pair} at L{layer}: {text}",
                x,
                y,
                d.prompt_index,
                family,
                what,
            )
            if col == "js_replace":
                c = replace(
                    c,
                    numbers=f"JS to the tokens {d[col].mean():.3f} vs {other} "
                    f"{d[f'{col}_other'].mean():.3f} (unsteered {d.js_replace_base.mean():.3f})",
                )
            out.append(c)
    return out


def _draws_text(row) -> str:
    """``", 60 draws, 1 per prompt"`` from a null row's ``draws`` / ``draws_per_prompt``."""
    draws = row.get("draws")
    if draws is None or pd.isna(draws):
        return ""
    per = row.get("draws_per_prompt")
    if per is None or pd.isna(per) or int(per) == int(draws):
        return f", {int(draws)} draws on every prompt"
    return f", {int(draws)} draws, {int(per)} per prompt"


def _specificity_claims(run, exp: str) -> list[Claim]:
    if not run.has_table("specificity"):
        return []
    mat = run.read_table("specificity", keep_default_na=False, na_values=[""])
    nulls = run.read_table("specificity_nulls", keep_default_na=False, na_values=[""])
    out = []
    diag = mat[mat.actadd == mat.inject]
    off = (
        mat[mat.actadd != mat.inject]
        .groupby(["layer", "inject", "prompt_index"], as_index=False)
        .effect_corr.mean()
    )
    for (layer, concept), d in diag.groupby(["layer", "inject"], sort=False):
        d = d.sort_values("prompt_index")
        refs = {"off-diagonal": off[(off.layer == layer) & (off.inject == concept)]}
        for kind in ("words", "residual", "embedding"):
            sel = nulls[(nulls.layer == layer) & (nulls.null == kind) & (nulls.inject == concept)]
            if kind != "words":
                sel = sel[sel.actadd == concept]
            refs[kind] = sel
        for kind, ref in refs.items():
            if ref.empty:
                continue
            m = d.merge(ref, on="prompt_index", suffixes=("", "_null"))
            draws = _draws_text(ref.iloc[0]) if "draws" in ref else ""
            out.append(
                _claim(
                    exp,
                    f"specific:{kind}:{concept}:L{layer}",
                    f"{concept} at L{layer}: ActAdd({concept}) resembles injecting "
                    f"{concept} at the same positions more than the {kind} null does"
                    f"{draws}",
                    m.effect_corr,
                    m.effect_corr_null,
                    m.prompt_index,
                    f"specificity vs {kind} null",
                    "similarity",
                )
            )
    return out


def _generation_claims(run, exp: str) -> list[Claim]:
    if not run.has_table("topic_rate"):
        return []
    g = run.read_table("topic_rate", keep_default_na=False, na_values=[""])
    out = []
    for (pair, layer), d in g.groupby(["pair", "layer"], sort=False):
        arms = {a: x.rename(columns={"topic_any": "value"}) for a, x in d.groupby("arm")}
        for a, b in (
            ("actadd", "inject_replace"),
            ("actadd", "unsteered"),
            ("inject_replace", "unsteered"),
            ("ctxdiff", "actadd"),
            ("ctxdiff", "inject_replace"),
            ("ctxdiff", "unsteered"),
            ("ctxdiff_normed", "actadd"),
        ):
            if a not in arms or b not in arms:
                continue
            family = "generation: topic-word rate"
            if a.startswith("ctxdiff"):
                family = "generation: contextual difference"
            # common random numbers: the same (prompt, sample) seed in both arms, by a join
            pairs = Paired.join(arms[a], arms[b], on=("text_index", "sample"))
            out.append(
                binary_claim(
                    pairs,
                    confirmatory=False,
                    experiment=exp,
                    id=f"topic_rate:{a}_vs_{b}:{pair}:L{layer}",
                    statement=f"{pair} at L{layer}: the topic-word rate is higher under {a} "
                    f"than under {b}",
                    family=family,
                )
            )
    return out


def __getattr__(name: str):
    # the function's name before it said what it is, kept one release for old imports
    if name == "v2_claims":
        warnings.warn(
            f"{__name__}.v2_claims is now claims_against_controls",
            DeprecationWarning,
            stacklevel=2,
        )
        return claims_against_controls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
