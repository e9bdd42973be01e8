"""Cross-model analyses on hand-made tables: the relative-depth axis, the rank association of
the norm ratio with the effect (a planted monotone relation passes; a shuffled one and a
depth-only trend do not), the pad rows, and missing tables as one line before any output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actadd.errors import ConfigError
from actadd.lab import crossmodel as xm

ROOT = Path(__file__).resolve().parents[3]


def test_relative_depth_puts_two_depths_on_one_axis():
    assert xm.relative_depth(16, 30) == pytest.approx(16 / 30)
    assert xm.relative_depth(10, 18) == pytest.approx(10 / 18)
    # the same relative depth the layer mapping uses: L16 of 30 -> L10 of 18 (0.533 vs 0.556)
    assert abs(xm.relative_depth(16, 30) - xm.relative_depth(10, 18)) < 0.5 / 18
    np.testing.assert_allclose(xm.relative_depth(np.array([0, 29]), 30), [0.0, 29 / 30])
    for bad in (30, -1, 2.5):
        with pytest.raises(ValueError, match="0..29"):
            xm.relative_depth(bad, 30)


def cells(effect: np.ndarray, ratio: np.ndarray, model: str = "m") -> pd.DataFrame:
    """A pairs × layers grid as ratio_cells rows."""
    k, s = ratio.shape
    return pd.DataFrame(
        [dict(model=model, model_name=model.upper(), pair=f"p{i}", layer=layer,
              ratio_mean=ratio[i, j], target_logprob_delta=effect[i, j], kl=effect[i, j])
         for i in range(k) for j, layer in enumerate(range(0, 2 * s, 2))]
    )  # fmt: skip


RATIO = np.outer([0.5, 1.0, 2.0, 4.0, 8.0], np.linspace(1.0, 3.0, 6))  # 5 pairs × 6 layers


def test_a_planted_monotone_relation_is_supported():
    rng = np.random.default_rng(1)
    effect = np.log(RATIO) + rng.normal(0, 0.01, RATIO.shape)
    r = xm.rank_association(cells(effect, RATIO), "ratio_mean", "target_logprob_delta")
    assert r["rho"] > 0.95 and r["lo"] > 0.5
    assert r["p"] == pytest.approx(1 / 120)  # exact: only the identity order reaches it
    assert (r["groups"], r["strata"], r["cells"]) == (5, 6, 30)
    claims = xm.ratio_claims(cells(effect, RATIO))
    assert [c.verdict for c in claims] == ["SUPPORTED", "SUPPORTED"]
    assert all(c.id.startswith("spearman:ratio_mean:") and c.cite.startswith("cm.") for c in claims)
    assert all(not c.confirmatory and "Exploratory" in c.statement for c in claims)


def test_a_shuffled_relation_is_not_supported():
    rng = np.random.default_rng(0)
    effect = rng.permutation((np.log(RATIO)).ravel()).reshape(RATIO.shape)
    claims = xm.ratio_claims(cells(effect, RATIO))
    assert [c.verdict for c in claims] == ["NOT SUPPORTED", "NOT SUPPORTED"]


def test_a_depth_trend_alone_is_not_counted_as_association():
    # ratio and effect both grow with the layer, but within a layer the pairs' effects follow
    # their ratios at half the layers and run against them at the other half: no association
    # beyond depth. The pooled rho is high; the permutation of whole pairs keeps the trend
    depth = np.arange(6.0)
    pair = np.arange(5.0)[:, None]
    ratio = depth[None, :] * 10 + pair
    effect = depth[None, :] * 10 + pair * np.array([1, -1, 1, -1, 1, -1])[None, :]
    r = xm.rank_association(cells(effect, ratio), "ratio_mean", "target_logprob_delta")
    assert r["rho"] > 0.9 and r["null_mean"] == pytest.approx(r["rho"])
    assert r["p"] == 1.0
    assert [c.verdict for c in xm.ratio_claims(cells(effect, ratio))] == ["NOT SUPPORTED"] * 2


def test_layers_that_not_every_pair_has_are_dropped_and_counted():
    t = cells(np.log(RATIO), RATIO)
    t = t[~((t.pair == "p0") & (t.layer == 10))]
    r = xm.rank_association(t, "ratio_mean", "target_logprob_delta")
    assert (r["strata"], r["dropped"]) == (5, 1)


def test_fewer_than_five_pairs_get_no_interval():
    r = xm.rank_association(cells(np.log(RATIO[:4]), RATIO[:4]), "ratio_mean", "kl")
    assert np.isnan(r["lo"]) and np.isnan(r["hi"]) and r["p"] >= 1 / 24


def write_run(folder: Path, name: str, diag: pd.DataFrame, pairs: list[dict]) -> None:
    run = folder / "token_injection"
    run.mkdir(parents=True)
    (run / "env.json").write_text(json.dumps({"model": {"name": name, "n_layers": 4}}))
    (run / "config.json").write_text(json.dumps({"pairs": pairs}))
    diag.to_csv(run / "diagnostics.csv", index=False)


def test_pad_rows_are_told_from_ordinary_rows(tmp_path, monkeypatch):
    # a pair padded with " ": row 2 pairs "x" with the pad; row 1 two ordinary tokens
    diag = pd.DataFrame(dict(
        pair="p", layer=[1, 1, 1], coeff=2.0, row=[0, 1, 2], vec_norm=[0.0, 10.0, 160.0],
        prompt_norm=[90.0, 11.0, 10.0], typical_norm=10.0, typical_ratio=[0, 1.0, 16.0],
        token_pos=["<bos>", "a", "x"], token_neg=["<bos>", "b", " "]))  # fmt: skip
    for folder, name in ((tmp_path, "tiny-llama"), (tmp_path / "other", "tiny-gpt2")):
        write_run(folder, name, diag, [{"name": "p", "positive": "ax", "negative": "b"}])
    monkeypatch.setattr(xm, "check_tables", lambda *a: None)
    positions, rows = xm.massive_rows(tmp_path, "other")
    assert sorted(rows.model.unique()) == ["tiny-gpt2", "tiny-llama"]
    r = rows[rows.model == "tiny-llama"].set_index("row")
    assert r.loc[2, "kind"] == "pad" and r.loc[1, "kind"] == "ordinary"
    assert r.loc[2, "ratio"] == pytest.approx(160 / (2 * 10)) and 0 not in r.index
    lead = positions[(positions.position == "leading token") & (positions.model == "tiny-gpt2")]
    lead = lead.iloc[0]
    assert (lead.token, lead.ratio, lead.depth) == ("<bos>", pytest.approx(9.0), 0.25)
    pads = xm.pad_summary(rows)
    assert pads.times_ordinary.iloc[0] == pytest.approx(8.0 / 0.5)  # pad row vs ordinary row


def test_missing_tables_are_one_line_before_any_output(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(ConfigError) as err:
        xm.check_tables(tmp_path / "results", "gemma3-270m")
    text = str(err.value)
    assert "\n" not in text and "missing" in text and "--model gemma3-270m" in text
    assert "wedding_sweep" in text and "more" in text
    code = (
        "import sys; from actadd.cli.commands import main; "
        f"rc = main(['crossmodel', '--results', {str(tmp_path / 'results')!r}]); "
        "print('TORCH', 'torch' in sys.modules); sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT)  # fmt: skip
    assert run.returncode == 2, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("actadd: error:")]
    assert len(errors) == 1 and "missing" in errors[0], run.stderr
    assert "TORCH False" in run.stdout  # refused before torch was imported
    assert list((tmp_path / "results").iterdir()) == []  # nothing written


def test_the_output_folder_is_neither_a_model_nor_a_run():
    # actadd report treats a folder with claims.csv as another model's report and one with
    # run files as a run: results/crossmodel must be neither
    from actadd.lab.replication import other_models
    from actadd.lab.runs import run_dirs

    out = ROOT / "results" / "crossmodel"
    if not out.is_dir():
        pytest.skip("no committed cross-model outputs")
    assert out not in other_models(ROOT / "results") and out not in run_dirs(ROOT / "results")
