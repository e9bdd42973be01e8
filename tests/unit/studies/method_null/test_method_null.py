"""The method_null kind: the config's one-line refusals, the null's per-row norms and
positions, the KL matching on tiny-llama, and the sequential rank p-value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from actadd.errors import ConfigError
from actadd.lab.stats import sequential_rank_p
from actadd.studies.method_null.config import CONTROL_ARM, MethodNullConfig
from actadd.studies.method_null.draws import draw_rows, match_kl, residual_basis
from actadd.studies.method_null.run import Cell, Texts, arm_vector

BASE = dict(
    pair={"positive": "ab", "negative": "c", "pad_token": "e"},
    prompts=["a b c d e", "b c d e a", "c d e a b"],
    neutral_texts=["d e a b c", "e a b c d"],
    target_words=["w", "e"],
    control_words=["a", "b"],
    dataset=None,
    methods=["actadd_mean"],
    layers=[1],
    control_layers=[0],
    coeff=0.5,
    random_draws=6,
    stop_after=2,
    batch_rows=64,
)


def spec(**over):
    raw = {**BASE, **over}
    if raw["dataset"] is None:
        del raw["dataset"]
    return MethodNullConfig.from_dict(raw)


def test_the_experiment_config_parses_with_its_confirmatory_cells():
    from actadd.cli.preflight import check_file

    raw = check_file("experiments/methods_confirm.toml")
    s = MethodNullConfig.from_dict(raw)
    assert s.random_draws >= 500 and s.alternative == "greater"
    assert s.confirmatory_cells() <= set(s.cells())
    assert {L for a, L in s.cells() if a == CONTROL_ARM} == {0, 1, 2}
    check_file("experiments/methods_confirm.toml", quick=True)


@pytest.mark.parametrize(
    "over, says",
    [
        ({"random_draws": 0}, "random_draws"),
        ({"methods": ["caa:middle"]}, "position 'middle' unknown"),
        ({"methods": ["steer:last"]}, "is not a method"),
        ({"alternative": "two-sided"}, "one-sided"),
        ({"kl_rtol": 0.0}, "kl_rtol"),
        ({"stop_after": 7}, "stop_after"),
        ({"confirmatory": [{"arm": "caa:last", "layer": 1}]}, "is not a cell"),
        ({"confirmatory": [{"arm": "actadd_mean", "layer": 9}]}, "is not a cell"),
        ({"prompts": ["one"]}, "at least 2"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(over, says):
    with pytest.raises(ConfigError) as e:
        spec(**over)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_draw_rows_match_the_arm_row_norms_and_keep_a_zero_row_zero():
    basis = residual_basis(torch.randn(40, 8, dtype=torch.float64))
    norms = torch.tensor([0.0, 3.0, 150.0], dtype=torch.float64)
    d = draw_rows(basis, norms, seed=1, layer=2, draw=5)
    assert torch.allclose(d.norm(dim=-1), norms)
    assert torch.equal(d, draw_rows(basis, norms, seed=1, layer=2, draw=5))  # seeded
    assert not torch.allclose(d, draw_rows(basis, norms, seed=1, layer=2, draw=6))


def test_the_control_null_sits_at_the_arm_positions_with_its_row_norms(tiny_llama):
    s = spec()
    v = arm_vector(s, tiny_llama, CONTROL_ARM, 0)
    cell = Cell(s, tiny_llama, CONTROL_ARM, 0, v, Texts(s, tiny_llama))
    basis = residual_basis(torch.randn(30, tiny_llama.cfg.d_model, dtype=torch.float64))
    draw = draw_rows(basis, cell.tensor.norm(dim=-1), 0, 0, 0)
    arm_p, null_p = cell._placements([cell.tensor, draw])
    assert arm_p.align == null_p.align and str(arm_p.align) == "front"
    assert null_p.vector.k == arm_p.vector.k == v.k
    assert torch.allclose(null_p.vector.norms(), arm_p.vector.norms(), rtol=1e-5, atol=1e-5)
    # a one-row method arm and its null go to every position
    m = Cell(s, tiny_llama, "actadd_mean", 1, arm_vector(s, tiny_llama, "actadd_mean", 1),
             cell.texts)  # fmt: skip
    assert str(m._placements([m.tensor])[0].align) == "all"


def test_a_kl_matched_draw_has_the_arm_kl_within_tolerance(tiny_llama):
    s = spec()
    v = arm_vector(s, tiny_llama, "actadd_mean", 1)
    cell = Cell(s, tiny_llama, "actadd_mean", 1, v, Texts(s, tiny_llama))
    target = float(cell.neutral_kl([cell.tensor])[0])
    basis = residual_basis(torch.randn(30, tiny_llama.cfg.d_model, dtype=torch.float64))
    rows = [draw_rows(basis, cell.tensor.norm(dim=-1), 0, 1, j) for j in range(4)]
    m = match_kl(lambda idx, sc: cell.neutral_kl([rows[i] * float(x) for i, x in zip(idx, sc)]),
                 4, target, rtol=0.02, max_iter=30)  # fmt: skip
    assert m["converged"].all()
    # measured again, independently, at the returned scales
    again = cell.neutral_kl([r * float(x) for r, x in zip(rows, m["scale"])])
    assert np.all(np.abs(again / target - 1) <= 0.02 + 1e-6)
    assert not np.allclose(m["scale"], 1.0)  # the draws needed rescaling: the test bites


def test_match_kl_reports_a_draw_it_could_not_match():
    # a planted error: a KL that never reaches the target is flagged, not passed off
    m = match_kl(lambda idx, sc: np.full(len(idx), 0.01), 3, 1.0, max_iter=5)
    assert not m["converged"].any() and (m["iterations"] == 5).all()
    exact = match_kl(lambda idx, sc: 0.5 * np.asarray(sc) ** 2, 3, 2.0, rtol=1e-3)
    assert exact["converged"].all() and np.allclose(exact["scale"], 2.0, rtol=1e-3)
    with pytest.raises(Exception, match="positive target"):
        match_kl(lambda idx, sc: sc, 1, 0.0)


def test_sequential_rank_p_stops_early_and_keeps_the_fixed_minimum():
    top = sequential_rank_p(10.0, np.arange(500.0) / 1000, stop_after=10, max_draws=500)
    assert top == dict(p=1 / 501, used=500, exceed=0, stopped=False, complete=True)
    mid = sequential_rank_p(0.5, [0.1, 0.9, 0.2, 0.8, 0.7], stop_after=3, max_draws=500)
    assert mid["stopped"] and mid["used"] == 5 and math.isclose(mid["p"], 3 / 5)
    partial = sequential_rank_p(0.5, [0.1, 0.9], stop_after=3, max_draws=500)
    assert not partial["complete"]
    fixed = sequential_rank_p(0.5, [0.1, 0.9, 0.6], stop_after=0, max_draws=3)
    assert fixed["complete"] and math.isclose(fixed["p"], 3 / 4)


def test_a_run_writes_cells_that_the_claims_read(tiny_llama, tmp_path):
    from actadd.lab.runs import RunDir
    from actadd.studies.method_null.claims import claims
    from actadd.studies.method_null.kind import KIND

    s = spec(confirmatory=[{"arm": "actadd_mean", "layer": 1}])
    KIND.check(s, tiny_llama)
    run = RunDir(tmp_path / "mn", KIND.saved_config(s))
    with run.start(tiny_llama):
        KIND.run(s, tiny_llama, run)
        run.mark_complete()
    cells = run.read_table("cells")
    assert len(cells) == 2 and (cells.draws_used <= 6).all()
    out = {c.id: c for c in claims(run)}
    assert set(out) == {f"rank:{CONTROL_ARM}:L0", "rank:actadd_mean:L1"}
    assert out["rank:actadd_mean:L1"].family == "confirmatory"
    assert out[f"rank:{CONTROL_ARM}:L0"].family == "positive control"
    assert all(1 / 7 - 1e-9 <= c.p <= 1 for c in out.values())


def test_a_killed_run_keeps_its_finished_cells_and_resumes_to_the_same_tables(
    tiny_llama, tmp_path, monkeypatch
):
    """Each cell is a unit in parts/: a run killed in its second cell keeps the first, and
    --resume computes only the second; the tables equal an uninterrupted run's."""
    import actadd.studies.method_null.run as mn
    from actadd.lab.runner import verify_run
    from actadd.lab.runs import RunDir
    from actadd.studies.method_null.kind import KIND

    s = spec()
    KIND.check(s, tiny_llama)

    def run_into(out, resume=False):
        run = RunDir(out, KIND.saved_config(s), resume=resume)
        with run.start(tiny_llama):
            KIND.run(s, tiny_llama, run)
            run.mark_complete()
        return run

    whole = run_into(tmp_path / "whole")
    real, computed = mn.run_cell, []

    def dies_in_the_second_cell(cell, basis):
        computed.append((cell.arm, cell.layer))
        if len(computed) == 2:
            raise KeyboardInterrupt
        return real(cell, basis)

    monkeypatch.setattr(mn, "run_cell", dies_in_the_second_cell)
    with pytest.raises(KeyboardInterrupt):
        run_into(tmp_path / "killed")
    assert sorted(p.name for p in (tmp_path / "killed" / "parts").glob("*.sha256")) == [
        f"{CONTROL_ARM}.L0.sha256"
    ]
    kept = pd.read_parquet(tmp_path / "killed" / "parts" / f"{CONTROL_ARM}.L0.draw_values.parquet")
    computed.clear()
    monkeypatch.setattr(mn, "run_cell", lambda cell, basis: computed.append(1) or real(cell, basis))
    resumed = run_into(tmp_path / "killed", resume=True)
    assert computed == [1]  # only the cell the kill lost
    for name in mn.TABLES:
        # another run of the same config: equal up to the last float bits (BLAS threads)
        pd.testing.assert_frame_equal(
            resumed.read_table(name), whole.read_table(name), rtol=1e-4, atol=1e-6
        )
    # the kept cell is the killed run's part, bit for bit
    values = resumed.read_table("draw_values")
    pd.testing.assert_frame_equal(
        values[values.arm == CONTROL_ARM].reset_index(drop=True), kept, check_exact=True
    )
    assert verify_run(tmp_path / "killed") == []
    # a damaged part is found by actadd verify, which names the unit's table
    part = next((tmp_path / "killed" / "parts").glob("actadd_mean.L1.draws.parquet"))
    part.write_bytes(part.read_bytes()[:-8])
    assert any("actadd_mean.L1.draws.parquet" in p for p in verify_run(tmp_path / "killed"))
