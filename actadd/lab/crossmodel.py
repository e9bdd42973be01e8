"""Cross-model analyses from the committed tables: the same experiments on two models, read
side by side. Nothing here loads a model, runs an experiment or imports torch at import time.

``results/`` holds the base model's runs (SmolLM2-135M-Instruct, 30 layers) and
``results/<model>/`` the same configs run with ``--model <model>`` (layers mapped by relative
depth, coefficients unchanged: :mod:`actadd.lab.retarget`). From their saved tables:

- :func:`layer_profiles` — the effect of each layer-scanning experiment against **relative
  depth** ``L / n_layers`` (:func:`relative_depth`; 0 is the embedding, the last block is
  ``(n − 1) / n``), per model, at the coefficients both models ran (:data:`PROFILES`). Sampled
  metrics are steered − unsteered on the same (prompt, sample) seeds, with the interval over
  prompts that their number allows (:func:`actadd.lab.stats.cluster_interval`: a cluster
  bootstrap from 5 prompts, a t interval over 2–4); a one-prompt experiment keeps its table's
  own interval (Newcombe over its samples, conditional on that prompt), and ``token_injection``
  its table's mean ± t·SEM over prompts. Each row names its interval.
- :func:`ratio_cells` and :func:`ratio_claims` — the vector-norm-to-residual ratio of each
  token-injection pair × layer (``diagnostics.csv``: the mean and the largest of the vector's
  per-row ``typical_ratio``) against the effect at the same cell (``summary.csv``'s ActAdd
  row), and one exploratory claim per model and effect: Spearman's ρ (:func:`rank_association`).
- :func:`massive_rows` — the leading token's residual norm and the pad rows of each vector,
  against the layer's typical norm, by layer; :data:`NOT_SAVED` says what the tables lack.

**Dependence.** The cells of a pair share one vector and the cells of a layer one residual
scale, and both the ratio and the effect drift with depth, so a pooled ρ over pair × layer cells
mixes a depth trend with the association between pairs. :func:`rank_association` therefore
tests it by permuting **whole pairs' effect profiles** among the pairs (the same permutation at
every layer; exact over the ``k!`` orders up to 8 pairs): the null keeps each layer's effects
and each pair's dependence across layers, and breaks only which pair's ratio goes with which
pair's effect. The interval resamples whole pairs. With 5 pairs the smallest p is 1/120.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from actadd.errors import ConfigError

__all__ = [
    "EXPERIMENT",
    "FAMILY",
    "NOT_SAVED",
    "PROFILES",
    "RATIO_EFFECTS",
    "check_tables",
    "layer_profiles",
    "massive_rows",
    "model_of",
    "pad_summary",
    "rank_association",
    "ratio_cells",
    "ratio_claims",
    "relative_depth",
    "required_tables",
]

#: the claims' experiment name (cited ``[cm.…]``) and family
EXPERIMENT = "cross_model"
FAMILY = "ratio vs effect (exploratory)"

#: layer-scanning experiments: name -> (table, metric, how the interval is made)
PROFILES: dict[str, tuple[str, str, str]] = {
    "wedding_sweep": ("results.csv", "topic_any", "paired"),
    "wedding_word_count": ("summary.csv", "topic_any", "table"),
    "sentiment": ("results.csv", "sentiment", "paired"),
    "token_injection": ("summary.csv", "target_logprob_delta", "sem"),
}
#: the effects the norm ratio is related to (summary.csv columns of the ActAdd rows)
RATIO_EFFECTS = ("target_logprob_delta", "kl")
#: what the saved tables cannot show about massive activations, in words
NOT_SAVED = (
    "Not in the saved tables: (1) the residual norm of each pair prompt's own tokens "
    "(diagnostics.csv keeps the norm of the difference h(p+) − h(p−) per row, so a massive pad "
    "row shows as a large difference, and the side that carries it is inferred from the other "
    "side being an ordinary token); (2) punctuation positions: no token-injection pair "
    "contains punctuation, and the prompts' norms are saved as a mean per position over "
    "prompts with different tokens there, so only position 0 (the shared leading token) is "
    "one token; (3) attention to these positions (sinks): attention masses are saved only by "
    "the pad_confound experiment (attention_context.csv), which has no run on the second "
    "model."
)


def relative_depth(layer, n_layers: int):
    """``layer / n_layers``: a ``resid_pre`` layer's relative depth (0 = the embeddings, the
    last block ``(n − 1) / n``). A layer outside ``0..n_layers − 1`` is a ValueError."""
    arr = np.asarray(layer, dtype=float)
    if n_layers < 1 or np.any(arr < 0) or np.any(arr > n_layers - 1) or np.any(arr % 1):
        raise ValueError(f"layers must be integers in 0..{n_layers - 1} of {n_layers}, got {layer}")
    out = arr / n_layers
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------- inputs


def _folders(results: Path, model: str) -> dict[str, Path]:
    return {"base": results, "other": results / model}


def required_tables(results: str | Path, model: str) -> list[Path]:
    """Every saved file the analyses read, for the base model and ``model``."""
    files = []
    for folder in _folders(Path(results), model).values():
        for exp, (table, *_rest) in PROFILES.items():
            files += [folder / exp / "env.json", folder / exp / table]
            if table == "results.csv":
                files.append(folder / exp / "config.json")
        files += [folder / "token_injection" / n for n in ("diagnostics.csv", "config.json")]
    return list(dict.fromkeys(files))


def check_tables(results: str | Path, model: str) -> None:
    """One ConfigError line naming the saved tables that are missing (before any compute)."""
    missing = [str(p) for p in required_tables(results, model) if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise ConfigError(
            f"cross-model analyses read saved tables only, and {len(missing)} are missing: "
            f"{shown}; run those experiments on both models first (actadd run "
            f"experiments/<name>.toml, and again with --model {model})."
        )


def model_of(run: str | Path) -> tuple[str, str, int]:
    """``(key, name, n_layers)`` of the model a run used, from its ``env.json`` (``key`` is
    the name ``--model`` knows it by where it is one: ``smollm2``, ``gemma3-270m``)."""
    from actadd.lab.retarget import canonical_model

    env = json.loads((Path(run) / "env.json").read_text())
    info = env.get("model") if isinstance(env.get("model"), dict) else {}
    name, n = info.get("name"), info.get("n_layers")
    if not name or not isinstance(n, int):
        raise ConfigError(f"{run}/env.json names no model with n_layers; cannot place its layers.")
    try:
        key = canonical_model(name)
    except ConfigError:
        key = name
    return key, name, n


def _pair_keys(frames: list[pd.DataFrame]) -> dict[str, str]:
    """{label: shared display label}: labels that make one slug are one pair (the spelling
    changed between revisions: ``' weddings'-''`` and ``' weddings' − ''``); the last frame's
    spelling wins."""
    from actadd.lab.cite import slug

    by_slug: dict[str, str] = {}
    for df in frames:
        for p in df["pair"].dropna().unique():
            by_slug[slug(p)] = p
    return {p: by_slug[slug(p)] for df in frames for p in df["pair"].dropna().unique()}


# ---------------------------------------------------------------------- layer profiles


def _paired_profile(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Steered − unsteered per cell, paired on (prompt, sample), with the interval over prompts."""
    from actadd.lab.claims import Paired
    from actadd.lab.stats import cluster_interval

    m = df[df.metric == metric]
    base = m[m.layer == -1]
    rows = []
    steered = m[(m.layer >= 0) & (m.method == "actadd")]
    for (pair, pad, coeff, layer), cell in steered.groupby(
        ["pair", "pad", "coeff", "layer"], dropna=False
    ):
        pairs = Paired.join(cell, base)
        r = cluster_interval(pairs.a - pairs.b, pairs.cluster)
        rows.append(dict(pair=pair, pad=pad, coeff=coeff, layer=int(layer), estimate=r["mean"],
                         lo=r["lo"], hi=r["hi"], interval=_over_prompts(r), prompts=pairs.k,
                         n=pairs.n))  # fmt: skip
    return pd.DataFrame(rows)


def _over_prompts(r: dict) -> str:
    k = r["clusters"]
    if k >= 5:
        return f"cluster bootstrap over {k} prompts"
    return f"t over {k} prompts" if k >= 2 else "none (one prompt)"


def _table_profile(summary: pd.DataFrame, how: str, metric: str) -> pd.DataFrame:
    from actadd.lab.stats import t95

    s = summary[summary.layer >= 0]
    if how == "table":  # one prompt: the table's Newcombe interval over its samples
        return pd.DataFrame(dict(
            pair=s.pair, pad=s.pad, coeff=s.coeff, layer=s.layer.astype(int), estimate=s["diff"],
            lo=s.diff_lo, hi=s.diff_hi, prompts=1, n=s.n,
            interval="Newcombe over samples of one prompt (conditional on it)"))  # fmt: skip
    s = s[s.condition == "actadd"]
    half = s[f"{metric}_sem"] * s.n_prompts.map(lambda k: t95(k - 1))
    return pd.DataFrame(dict(
        pair=s.pair, pad=np.nan, coeff=s.coeff, layer=s.layer.astype(int), estimate=s[metric],
        lo=s[metric] - half, hi=s[metric] + half, prompts=s.n_prompts, n=s.n_prompts,
        interval=[f"t over {k} prompts (table SEM)" for k in s.n_prompts]))  # fmt: skip


def layer_profiles(results: str | Path, model: str) -> pd.DataFrame:
    """The effect by relative depth of every :data:`PROFILES` experiment on both models, at
    the (pair, pad, coefficient) cells both ran. Columns: ``experiment, metric, pair, pad,
    coeff, model, model_name, n_layers, layer, depth, estimate, lo, hi, interval, prompts, n``."""
    results = Path(results)
    check_tables(results, model)
    out = []
    for exp, (table, metric, how) in PROFILES.items():
        frames, infos = [], []
        for folder in _folders(results, model).values():
            df = pd.read_csv(folder / exp / table)
            prof = (
                _paired_profile(df, metric) if how == "paired" else _table_profile(df, how, metric)
            )
            frames.append(prof)
            infos.append(model_of(folder / exp))
        labels = _pair_keys(frames)
        for prof, (key, name, n) in zip(frames, infos):
            prof["pair"] = prof.pair.map(labels)
            prof["pad"] = prof["pad"].astype(object).where(prof["pad"].notna(), "").astype(str)
            prof["model"], prof["model_name"], prof["n_layers"] = key, name, n
            prof["depth"] = relative_depth(prof.layer.to_numpy(), n)
        cells = [set(map(tuple, f[["pair", "pad", "coeff"]].to_numpy())) for f in frames]
        both = cells[0] & cells[1]
        for prof in frames:
            keep = [tuple(r) in both for r in prof[["pair", "pad", "coeff"]].to_numpy()]
            out.append(prof[keep].assign(experiment=exp, metric=metric))
    cols = ["experiment", "metric", "pair", "pad", "coeff", "model", "model_name", "n_layers",
            "layer", "depth", "estimate", "lo", "hi", "interval", "prompts", "n"]  # fmt: skip
    return pd.concat(out, ignore_index=True)[cols]


# ---------------------------------------------------------------------- norm ratio vs effect


def ratio_cells(results: str | Path, model: str) -> pd.DataFrame:
    """One row per model × token-injection pair × layer that both ``diagnostics.csv`` and the
    ActAdd rows of ``summary.csv`` hold: ``ratio_mean`` (the mean of ``typical_ratio`` over
    the vector's rows, zero rows included: what is added, on average, per position),
    ``ratio_max`` (its largest row) and that row's tokens, beside the effects
    (:data:`RATIO_EFFECTS`, with the target shift's SEM) and the coefficient."""
    results = Path(results)
    check_tables(results, model)
    out = []
    for folder in _folders(results, model).values():
        run = folder / "token_injection"
        key, name, n = model_of(run)
        diag = pd.read_csv(run / "diagnostics.csv")
        summ = pd.read_csv(run / "summary.csv")
        summ = summ[summ.condition == "actadd"]
        top = diag.loc[diag.groupby(["pair", "layer"]).typical_ratio.idxmax()]
        agg = diag.groupby(["pair", "layer"], as_index=False).agg(
            coeff=("coeff", "first"), rows=("row", "size"), ratio_mean=("typical_ratio", "mean"),
            ratio_max=("typical_ratio", "max"), typical_norm=("typical_norm", "first"))  # fmt: skip
        agg = agg.merge(top[["pair", "layer", "row", "token_pos", "token_neg"]].rename(
            columns={"row": "max_row", "token_pos": "max_token_pos", "token_neg": "max_token_neg"}),
            on=["pair", "layer"])  # fmt: skip
        eff = summ[["pair", "layer", *RATIO_EFFECTS, "target_logprob_delta_sem", "n_prompts"]]
        cells = agg.merge(eff, on=["pair", "layer"], how="inner")
        cells.insert(0, "model", key)
        cells.insert(1, "model_name", name)
        cells.insert(2, "n_layers", n)
        cells["depth"] = relative_depth(cells.layer.to_numpy(), n)
        out.append(cells)
    return pd.concat(out, ignore_index=True)


def _avg_ranks(a: np.ndarray) -> np.ndarray:
    return pd.Series(a.ravel()).rank(method="average").to_numpy().reshape(a.shape)


def _rho(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``rx`` with each row of ``ry`` (``[..., n]``), NaN if constant."""
    x = rx - rx.mean()
    y = ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((x * x).sum()) * np.sqrt((y * y).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (y * x).sum(-1) / den, np.nan)


def rank_association(
    cells: pd.DataFrame,
    x: str,
    y: str,
    *,
    group: str = "pair",
    stratum: str = "layer",
    n_boot: int = 4000,
    draws: int = 20_000,
    seed: int = 0,
) -> dict:
    """Spearman's ρ of ``x`` and ``y`` over the cells, with a test and an interval that
    respect the dependence of cells sharing a group (pair) or a stratum (layer).

    Only strata that every group has are used (a balanced groups × strata grid). ``p``: the
    two-sided permutation test that moves whole groups' ``y`` profiles among the groups (the
    same permutation in every stratum), exact over all ``k!`` orders for ``k ≤ 8`` groups,
    else ``draws`` random orders (``default_rng(seed)``; ``p = (1 + hits) / (1 + draws)``).
    ``lo, hi``: the 95% percentile interval of ρ from resampling whole groups ``n_boot``
    times, only from 5 groups (NaN below). Also ``null_mean``: the mean ρ under the
    permutations (the part of ρ the depth trend alone gives). Returns ``{"rho", "lo", "hi",
    "p", "null_mean", "groups", "strata", "cells", "dropped", "method"}``.
    """
    grid_x = cells.pivot_table(index=group, columns=stratum, values=x, aggfunc="first")
    grid_y = cells.pivot_table(index=group, columns=stratum, values=y, aggfunc="first")
    full = grid_x.notna().all() & grid_y.notna().all()
    dropped = int((~full).sum())
    gx, gy = grid_x.loc[:, full].to_numpy(float), grid_y.loc[:, full].to_numpy(float)
    k, s = gx.shape
    nan = float("nan")
    if k < 2 or s < 1:
        raise ValueError(f"rank_association needs 2 groups with a common stratum; got {k} × {s}")
    rx, ry = _avg_ranks(gx), _avg_ranks(gy)
    rho = float(_rho(rx.ravel(), ry.ravel()[None])[0])
    if k <= 8:
        orders = np.array(list(itertools.permutations(range(k))))
        method = f"exact over {len(orders)} orders"
    else:
        rng = np.random.default_rng(seed)
        orders = np.array([rng.permutation(k) for _ in range(draws)])
        method = f"Monte Carlo, {draws:,} orders"
    null = _rho(rx.ravel(), ry[orders].reshape(len(orders), -1))
    tol = 1e-12
    hits = int(np.sum(np.abs(null) >= abs(rho) - tol))
    p = hits / len(orders) if k <= 8 else (1 + hits) / (1 + draws)
    lo = hi = nan
    if k >= 5:
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, k, size=(n_boot, k))
        boot = np.array([_rho(_avg_ranks(gx[i]).ravel(), _avg_ranks(gy[i]).ravel()[None])[0]
                         for i in pick])  # fmt: skip
        lo, hi = (float(q) for q in np.nanquantile(boot, [0.025, 0.975]))
    return dict(rho=rho, lo=lo, hi=hi, p=float(p), null_mean=float(np.nanmean(null)), groups=k,
                strata=s, cells=k * s, dropped=dropped, method=method)  # fmt: skip


def ratio_claims(cells: pd.DataFrame, x: str = "ratio_mean") -> list:
    """One exploratory claim per model and effect (:data:`RATIO_EFFECTS`): "a larger norm
    ratio goes with a larger effect", Spearman's ρ over the pair × layer cells with
    :func:`rank_association`'s test and interval, Benjamini–Hochberg over the family
    (:data:`FAMILY`), judged by :data:`actadd.lab.claims.DECISION_RULE`."""
    from actadd.lab.claims import Claim, adjust

    what = {"target_logprob_delta": "target-token log-prob shift",
            "kl": "next-token KL from unsteered"}  # fmt: skip
    claims = []
    for (key, name), c in cells.groupby(["model", "model_name"], sort=False):
        for y in RATIO_EFFECTS:
            r = rank_association(c, x, y)
            claims.append(Claim(
                experiment=EXPERIMENT,
                id=f"spearman:{x}:{y}:{key}",
                statement=(f"Exploratory: on {name}, token-injection cells whose vector has a "
                           f"larger {x} (vector row norm / typical residual norm) show a "
                           f"larger {what.get(y, y)}"),
                estimate=r["rho"], lo=r["lo"], hi=r["hi"], p=r["p"],
                test=(f"Spearman rho over pair x layer cells; permutation of whole pairs' "
                      f"effect profiles within layers ({r['method']}); interval: bootstrap "
                      f"over pairs"),
                n=f"{r['cells']} cells: {r['groups']} pairs x {r['strata']} layers",
                family=FAMILY,
                numbers=(f"rho {r['rho']:.2f}; under the permutation null mean rho "
                         f"{r['null_mean']:.2f} (the depth trend alone)"
                         + (f"; {r['dropped']} layers dropped (not every pair)" if r["dropped"]
                            else "")),
            ))  # fmt: skip
    return adjust(claims)


# ---------------------------------------------------------------------- massive rows


def _pads(config: dict) -> dict[str, str]:
    """{pair name: its pad token} of a token-injection config (the paper's " " by default)."""
    return {p["name"]: p.get("pad_token", " ") for p in config.get("pairs", [])}


def massive_rows(results: str | Path, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What ``token_injection/diagnostics.csv`` shows of massive activations, per model and
    layer: ``(positions, rows)``.

    ``positions``: the leading token (position 0 of every prompt, one token) and the first
    real token (position 1, a mean over the prompts' different tokens), as the mean residual
    norm there over the layer's typical norm (``prompt_norm / typical_norm``).
    ``rows``: every non-zero vector row as ``|h+ − h−| / (|c| · typical norm)`` (the
    coefficient divided out), labelled ``pad`` where one side is the pair's pad token and the
    other an ordinary token, else ``ordinary``. A pad row far above the ordinary rows means
    the pad position carries a massive activation (the ordinary side cannot: it is an
    ordinary row elsewhere). See :data:`NOT_SAVED` for what these tables cannot show."""
    results = Path(results)
    check_tables(results, model)
    positions, rows = [], []
    for folder in _folders(results, model).values():
        run = folder / "token_injection"
        key, name, n = model_of(run)
        pads = _pads(json.loads((run / "config.json").read_text()))
        d = pd.read_csv(run / "diagnostics.csv", keep_default_na=False, na_values=[""])
        d["token_pos"], d["token_neg"] = d.token_pos.fillna(""), d.token_neg.fillna("")
        first = d[d.row <= 1].groupby(["layer", "row"], as_index=False).agg(
            token=("token_pos", lambda t: t.iloc[0] if t.nunique() == 1 else "mixed"),
            ratio=("prompt_norm", "mean"), typical=("typical_norm", "first"))  # fmt: skip
        first["ratio"] = first.ratio / first.typical
        first["position"] = np.where(first.row == 0, "leading token", "first real token (mean)")
        positions.append(first.assign(model=key, model_name=name, n_layers=n))
        v = d[d.vec_norm > 0].copy()
        v["pad"] = v.pair.map(pads)
        is_pad = (v.token_pos == v.pad) ^ (v.token_neg == v.pad)
        v["kind"] = np.where(is_pad, "pad", "ordinary")
        v["ratio"] = v.vec_norm / (v.coeff.abs() * v.typical_norm)
        keep = ["pair", "layer", "row", "token_pos", "token_neg", "pad", "kind", "coeff", "ratio"]
        rows.append(v[keep].assign(model=key, model_name=name, n_layers=n))
    pos, rws = pd.concat(positions, ignore_index=True), pd.concat(rows, ignore_index=True)
    for t in (pos, rws):
        t["depth"] = [relative_depth(L, n) for L, n in zip(t.layer, t.n_layers)]
    pos = pos[["model", "model_name", "n_layers", "layer", "depth", "position", "token", "ratio"]]
    lead = ["model", "model_name", "n_layers", "layer", "depth"]
    return pos, rws[lead + [c for c in rws.columns if c not in lead]]


def pad_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model, layer and pad token: the largest pad row ratio and the median ordinary row
    ratio (:func:`massive_rows`' ``rows``) and their quotient."""
    keys = ["model", "n_layers", "layer", "depth"]
    pad = rows[rows.kind == "pad"].groupby(keys + ["pad"], as_index=False).ratio.max()
    ordinary = rows[rows.kind == "ordinary"].groupby(keys, as_index=False).ratio.median()
    out = pad.merge(ordinary.rename(columns={"ratio": "ordinary_median"}), on=keys)
    out["times_ordinary"] = out.ratio / out.ordinary_median
    return out.rename(columns={"ratio": "pad_max"})
