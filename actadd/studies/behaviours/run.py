"""The ``behaviours`` kind's computation: every table of a run from its config and the model
(the protocol is :mod:`actadd.studies.behaviours.protocol`).

Per behaviour, in this order:

1. vectors of every method at every layer from the **train** split;
2. the layer choice on the **validation** split: at each coarse layer, CAA's
   ``mean p_match(+1) − mean p_match(−1)``; the chosen layer ``L*`` maximises it;
3. on the **test** split: the coarse scan (coarse layers × coarse multipliers, every method
   and ``random_draws`` random directions), the fine scan (``L* ± fine_window`` × every
   multiplier), ``claim_random_draws`` random directions at ``L*`` and ±1 (the rank claim),
   and CAA and the letter control on the test questions with the letters swapped (``(A)`` and
   ``(B)`` exchanged in the question, so the matching letter flips) at ``L*``.

Tables (every row carries ``model``): ``scan`` (one row per question and cell: ``p_match``,
``logit_diff``), ``choice`` (validation effect per coarse layer), ``draws`` (per draw and
question, ``p_match`` at −1, 0, +1 at ``L*``), ``steerability`` (per question: slope of the
logit difference on the multiplier, fine scan), ``reliability`` (its mean, variance and the
fraction anti-steerable), ``letter_cosine`` (each vector's cosine with the letter
difference's embedding, residual and unembedding directions), ``data`` (counts, A/B
balance, unsteered propensity on test) and ``results`` (means per behaviour, scan, layer,
method, multiplier).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from actadd.config import parse_layers
from actadd.studies.behaviours.config import BehavioursConfig
from actadd.studies.behaviours.data import Item, load_behaviour

__all__ = [
    "RANDOM",
    "UNIT_TABLES",
    "behaviour_tables",
    "results_table",
    "run_behaviours",
    "swap_letters",
]

RANDOM = "random"
# one behaviour's tables: a unit in the run's parts/ (the others are built from them)
UNIT_TABLES = ("scan", "choice", "draws", "letter_cosine", "data")


def swap_letters(item: Item) -> Item:
    """``item`` with ``(A)`` and ``(B)`` exchanged in its question: the matching letter flips."""
    q = item.question.replace("(A)", "\0").replace("(B)", "(A)").replace("\0", "(B)")
    return Item(q, item.other, item.matching)


def _frame(cols: dict, p: np.ndarray, ld: np.ndarray, mults, items, matching) -> pd.DataFrame:
    """Rows of one cell set: ``p``/``ld`` are [multipliers, questions]."""
    k, n = p.shape
    return pd.DataFrame(
        {
            **{c: [v] * (k * n) for c, v in cols.items()},
            "multiplier": np.repeat(np.asarray(mults, float), n),
            "item": np.tile(items, k),
            "matching": np.tile(np.where(matching == 0, "A", "B"), k),
            "p_match": p.reshape(-1),
            "logit_diff": ld.reshape(-1),
        }
    )


def _scan(ev, vec, layer, methods, draws, mults, base, cols, items, matching) -> list:
    """Every method and random draw at ``layer`` over ``mults`` (0 is ``base``, the
    unsteered (p, ld))."""
    steered = [m for m in mults if m != 0]
    arms = [(m, -1, vec.rows[m][layer], m in vec.signed) for m in methods]
    arms += [(RANDOM, j, vec.random(layer, j), False) for j in range(draws)]
    cells = [
        (row, m, ev.prompts.sign if signed else None) for _, _, row, signed in arms for m in steered
    ]
    p, ld = ev.run(layer, cells)
    out, s = [], len(steered)
    for a, (method, draw, _, _) in enumerate(arms):
        pa = np.vstack([p[a * s : (a + 1) * s], base[0][None]])
        la = np.vstack([ld[a * s : (a + 1) * s], base[1][None]])
        out.append(
            _frame(
                dict(cols, layer=layer, method=method, draw=draw),
                pa,
                la,
                [*steered, 0.0],
                items,
                matching,
            )
        )
    return out


def run_behaviours(spec: BehavioursConfig, model, run, progress: bool | None = None) -> None:
    """Compute every table of the kind into ``run``.

    Each behaviour is a resumable unit of the run store (:mod:`actadd.lab.runs.units`): its
    tables (:data:`UNIT_TABLES`) go to ``parts/<behaviour>.*`` as soon as it is done, so a
    run that is killed keeps its finished behaviours and ``actadd run --resume`` computes
    only the rest (every split and random direction is seeded from the config, so the
    tables equal an uninterrupted run's). The run's tables are built from the parts."""
    import torch

    from actadd.progress import bar as progress_bar
    from actadd.studies.behaviours.protocol import steerability

    n_layers = model.cfg.n_layers
    coarse = parse_layers(spec.coarse_layers, n_layers, "coarse_layers")
    # one step per vector build, per layer of the validation and test scans, the random
    # draws and the swapped-letter scan (the fine window is counted whole; clipped at the
    # model's edge, its missing steps are added when the behaviour ends)
    per_behaviour = 3 + 2 * len(coarse) + 2 * spec.fine_window + 1
    total = len(spec.behaviours) * per_behaviour
    with torch.no_grad(), progress_bar(total, "behaviours", "step", progress) as bar:
        for b in spec.behaviours:
            done = bar.n
            if not run.done(b, UNIT_TABLES):

                def step(what: str, b=b) -> None:
                    bar.set_postfix_str(f"{b}: {what}", refresh=False)
                    bar.update(1)

                run.write_part(b, behaviour_tables(spec, model, b, coarse, step))
            bar.update(done + per_behaviour - bar.n)
    parts = {
        t: pd.concat(
            [run.read_part(b, t, expected=True) for b in spec.behaviours], ignore_index=True
        )
        for t in UNIT_TABLES
    }
    scan = parts["scan"]
    run.write_table("scan", scan, ("parquet", "csv"))
    run.write_table("choice", parts["choice"])
    run.write_table("draws", parts["draws"], ("parquet",))
    run.write_table("letter_cosine", parts["letter_cosine"])
    run.write_table("data", parts["data"])
    steer = _steerability(scan[scan.scan == "fine"], steerability)
    run.write_table("steerability", steer, ("parquet", "csv"))
    run.write_table("reliability", _reliability(steer))
    run.write_table("results", results_table(scan))


def behaviour_tables(
    spec: BehavioursConfig, model, b: str, coarse: list[int], step: Callable[[str], None]
) -> dict[str, pd.DataFrame]:
    """One behaviour's tables (:data:`UNIT_TABLES`): vectors on train, the layer on
    validation, the scans, draws and swapped letters on test, the letter cosines and the
    data row. ``step(what)`` is called after each step of the progress bar."""
    import torch

    from actadd.studies.behaviours.protocol import Evaluator, Prompts, build_vectors

    n_layers = model.cfg.n_layers
    layers = list(range(n_layers))
    methods = list(spec.methods)
    chat, fwd, rows = bool(spec.chat), spec.forward, int(spec.batch_rows)
    scans, choice, cos = [], [], []
    data = load_behaviour(b)
    sp = spec.split_of(b, data)
    train, val, test = ([data.items[i] for i in idx] for idx in (sp.train, sp.val, sp.test))
    vec = build_vectors(
        model, train, layers, methods, actadd_pair=int(spec.actadd_pair), seed=int(spec.seed),
        chat=chat,
    )  # fmt: skip
    step("vectors")
    cols = dict(model=model.cfg.model_name, behaviour=b)
    # 2. the layer, on validation
    ev = Evaluator(
        model, Prompts.build(model, val, spec.positions, chat), coarse, forward=fwd, max_rows=rows
    )
    for layer in coarse:
        caa = vec.rows["caa"][layer]
        p, _ = ev.run(layer, [(caa, 1.0, None), (caa, -1.0, None)])
        choice.append(
            dict(cols, layer=layer, p_plus=p[0].mean(), p_minus=p[1].mean(),
                 effect=float((p[0] - p[1]).mean()), n_val=len(val))
        )  # fmt: skip
        step(f"validation L{layer}")
    del ev  # its prefix caches, before the test's are built
    eff = {c["layer"]: c["effect"] for c in choice}
    best = max(eff, key=lambda L: (eff[L], -L))
    fine = [L for L in range(best - spec.fine_window, best + spec.fine_window + 1)
            if 0 <= L < n_layers]  # fmt: skip
    # 3. test
    prompts = Prompts.build(model, test, spec.positions, chat)
    ev = Evaluator(model, prompts, sorted(set(coarse) | set(fine)), forward=fwd, max_rows=rows)
    items, matching = np.asarray(sp.test), prompts.matching
    base = {}
    for layer in sorted(set(coarse) | set(fine)):
        p, ld = ev.run(layer, [(vec.rows["caa"][layer], 0.0, None)])
        base[layer] = (p[0], ld[0])
    draws_n = int(spec.random_draws)
    for scan_name, scan_layers, mults in (
        ("coarse", coarse, spec.coarse_multipliers),
        ("fine", fine, spec.multipliers),
    ):
        for layer in scan_layers:
            scans += _scan(ev, vec, layer, methods, draws_n, mults, base[layer],
                           dict(cols, scan=scan_name), items, matching)  # fmt: skip
            step(f"{scan_name} L{layer}")
    d = int(spec.claim_random_draws)
    cells = [(vec.random(best, j), m, None) for j in range(d) for m in (-1.0, 1.0)]
    p, _ = ev.run(best, cells)
    draws = pd.DataFrame(
        {
            **cols,
            "layer": best,
            "draw": np.repeat(np.arange(d), len(items)),
            "item": np.tile(items, d),
            "p_minus": p[0::2].reshape(-1),
            "p_plus": p[1::2].reshape(-1),
            "p_zero": np.tile(base[best][0], d),
        }
    )
    step(f"random draws L{best}")
    del ev
    swapped = Prompts.build(model, [swap_letters(it) for it in test], spec.positions, chat)
    ev_s = Evaluator(model, swapped, [best], forward=fwd, max_rows=rows)
    p, ld = ev_s.run(best, [(vec.rows["caa"][best], 0.0, None)])
    keep = [m for m in ("caa", "letter") if m in methods]
    scans += _scan(ev_s, vec, best, keep, 0, spec.multipliers, (p[0], ld[0]),
                   dict(cols, scan="swapped"), items, swapped.matching)  # fmt: skip
    step(f"swapped L{best}")
    del ev_s
    # 4. the letter direction
    a, bb = prompts.letter_ids
    emb = (model.W_E[a] - model.W_E[bb]).double()
    unemb = vec.letter_unembedding.double().to(emb.device)

    def cosine(v, w):
        return float(torch.nn.functional.cosine_similarity(v, w.to(v), dim=0))

    for layer in layers:
        for m in methods:
            v = vec.rows[m][layer].double()
            cos.append(
                dict(cols, layer=layer, method=m, cos_embedding=cosine(v, emb),
                     cos_residual=cosine(v, vec.letter_residual[layer].double()),
                     cos_unembedding=cosine(v, unemb), norm=float(v.norm()))
            )  # fmt: skip
    data_row = dict(
        cols,
        n_ab=len(data.items),
        n_not_ab_left_out=data.n_not_ab,
        matching_A=data.balance["A"],
        matching_B=data.balance["B"],
        n_train=len(train),
        n_val=len(val),
        n_test=len(test),
        test_matching_A=int((matching == 0).sum()),
        chosen_layer=best,
        unsteered_p_match=float(base[best][0].mean()),
    )
    return dict(
        scan=pd.concat(scans, ignore_index=True),
        choice=pd.DataFrame(choice),
        draws=draws,
        letter_cosine=pd.DataFrame(cos),
        data=pd.DataFrame([data_row]),
    )


def _steerability(fine: pd.DataFrame, slope) -> pd.DataFrame:
    keys = ["model", "behaviour", "layer", "method", "draw"]
    out = []
    for key, d in fine.groupby(keys):
        wide = d.pivot(index="multiplier", columns="item", values="logit_diff").sort_index()
        s = slope(wide.index.to_numpy(), wide.to_numpy())
        out.append(pd.DataFrame({**dict(zip(keys, key)), "item": wide.columns, "steerability": s}))
    return pd.concat(out, ignore_index=True)


def _reliability(steer: pd.DataFrame) -> pd.DataFrame:
    """Tan et al.'s measures per (behaviour, layer, method): mean steerability, its
    variance over questions and the fraction of anti-steerable questions (slope < 0); the
    random draws are pooled."""
    g = steer.groupby(["model", "behaviour", "layer", "method"]).steerability
    return g.agg(
        mean="mean", variance="var", frac_anti=lambda s: float((s < 0).mean()), n="size"
    ).reset_index()


def results_table(scan: pd.DataFrame) -> pd.DataFrame:
    """Means per (model, behaviour, scan, layer, method, multiplier) over the questions; the
    random rows pool their draws and add the 5th and 95th percentile of the draws' means
    (the band)."""
    keys = ["model", "behaviour", "scan", "layer", "method", "multiplier"]
    per_draw = (
        scan.groupby([*keys, "draw"])
        .agg(p_match=("p_match", "mean"), logit_diff=("logit_diff", "mean"), n=("item", "size"))
        .reset_index()
    )
    g = per_draw.groupby(keys)
    out = g.agg(
        p_match=("p_match", "mean"),
        logit_diff=("logit_diff", "mean"),
        n=("n", "first"),
        draws=("draw", "size"),
    ).reset_index()
    out["p_lo"] = g.p_match.quantile(0.05).to_numpy()
    out["p_hi"] = g.p_match.quantile(0.95).to_numpy()
    return out
