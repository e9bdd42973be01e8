"""The ``behaviours`` kind end to end on the tiny random Llama: tables, claims, figures."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from actadd.lab.claims import adjust
from actadd.lab.runner import figures_for, run_experiment
from actadd.lab.runs import RunDir
from actadd.progress import bar as progress_bar
from actadd.studies.behaviours import data
from actadd.studies.behaviours.kind import KIND

CONFIG = dict(
    kind="behaviours",
    name="tiny_behaviours",
    model="tiny-llama",
    behaviours=["refusal", "myopic-reward"],
    train=6,
    val=4,
    test=6,
    chat=False,
    multipliers=[-2, -1, -0.5, 0, 0.5, 1, 2],
    coarse_layers=[1, 3],
    random_draws=2,
    claim_random_draws=5,
    batch_rows=64,
)


#: the progress bars of the fixture's run
BARS: list = []


def short_files(root):
    """Short synthetic questions for the two behaviours (the tiny model's byte-level context
    of 256 tokens is shorter than most real questions)."""
    files = {}
    for b, word in (("refusal", "refuse"), ("myopic-reward", "wait")):
        doc = []
        for i in range(20):
            q = f"Q{i}: {word}?\n(A) yes {i}\n(B) no {i}\n"
            m, o = ("A", "B") if i % 3 else ("B", "A")
            doc.append({"positive": f"{q}({m})", "negative": f"{q}({o})"})
        files[b] = root / f"{b}.json"
        files[b].write_text(json.dumps(doc))
    return files


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviours")
    files = short_files(root)
    bars = []

    def recorded(total, desc, unit, progress=None, **kw):
        bars.append(progress_bar(total, desc, unit, progress=True, file=io.StringIO(), **kw))
        bars[-1].labels = []
        update = bars[-1].set_postfix_str
        bars[-1].set_postfix_str = lambda s, **k: (bars[-1].labels.append(s), update(s, **k))
        return bars[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "behaviour_file", lambda name: files[data._check_name(name)])
        mp.setattr("actadd.progress.bar", recorded)
        run_experiment(dict(CONFIG), root / "run")
    BARS[:] = bars
    return root / "run"


def test_the_progress_bar_counts_every_layer_scan_and_ends_full(tiny_run):
    (bar,) = BARS
    # per behaviour: vectors, 2 validation layers, 2 coarse + 3 fine test layers (the fine
    # window clipped at the edge still counts 3), the random draws, the swapped scan
    assert bar.total == 2 * (3 + 2 * 2 + 3) and bar.n == bar.total
    assert bar.labels[0] == "refusal: vectors" and bar.labels[-1].startswith("myopic-reward: ")
    assert {"refusal: validation L1", "refusal: coarse L3"} <= set(bar.labels)


def test_the_kind_writes_every_table_with_a_model_column(tiny_run):
    import pandas as pd

    scan = pd.read_parquet(tiny_run / "scan.parquet")
    assert set(scan.scan) == {"coarse", "fine", "swapped"} and set(scan.model) == {"tiny-llama"}
    fine = scan[scan.scan == "fine"]
    assert set(fine.multiplier) == {-2, -1, -0.5, 0, 0.5, 1, 2}
    # one chosen layer per behaviour, within the coarse layers; fine = it ± 1
    data = pd.read_csv(tiny_run / "data.csv")
    assert set(data.chosen_layer) <= {1, 3} and list(data.n_test) == [6, 6]
    for b, L in zip(data.behaviour, data.chosen_layer):
        assert set(fine[fine.behaviour == b].layer) == {L - 1, L, L + 1} & set(range(4))
    rel = pd.read_csv(tiny_run / "reliability.csv")
    assert {"mean", "variance", "frac_anti"} <= set(rel.columns)


def test_a_killed_run_keeps_its_finished_behaviours_and_resumes_to_the_same_tables(
    tiny_run, tmp_path, monkeypatch
):
    """Each behaviour is a unit in parts/: a run killed in its second behaviour keeps the
    first, and --resume computes only the second; every table equals the uninterrupted
    run's, and actadd verify passes."""
    import actadd.studies.behaviours.run as br
    from actadd.lab.runner import verify_run

    monkeypatch.setattr(data, "behaviour_file", lambda name: short_files(tmp_path)[name])
    real, computed = br.behaviour_tables, []

    def dies_in_the_second(spec, model, b, *a):
        computed.append(b)
        if len(computed) == 2:
            raise KeyboardInterrupt
        return real(spec, model, b, *a)

    monkeypatch.setattr(br, "behaviour_tables", dies_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(dict(CONFIG), tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run" / "parts").glob("*.sha256")) == [
        "refusal.sha256"
    ]
    kept = pd.read_parquet(tmp_path / "run" / "parts" / "refusal.scan.parquet")
    computed.clear()
    monkeypatch.setattr(br, "behaviour_tables", lambda spec, model, b, *a: (
        computed.append(b), real(spec, model, b, *a))[1])  # fmt: skip
    run_experiment(dict(CONFIG), tmp_path / "run", resume=True)
    assert computed == ["myopic-reward"]
    whole, resumed = RunDir.existing(tiny_run), RunDir.existing(tmp_path / "run")
    for name in ("scan", "choice", "draws", "letter_cosine", "data", "steerability", "results"):
        # another run of the same config: equal up to the last float32 bits (BLAS threads)
        pd.testing.assert_frame_equal(
            resumed.read_table(name), whole.read_table(name), rtol=1e-4, atol=1e-6
        )
    # the kept behaviour is the killed run's part, bit for bit
    scan = resumed.read_table("scan")
    pd.testing.assert_frame_equal(
        scan[scan.behaviour == "refusal"].reset_index(drop=True), kept, check_exact=True
    )
    assert verify_run(tmp_path / "run") == []


def test_the_claims_and_figures_come_from_the_saved_tables(tiny_run):
    claims = adjust(KIND.claims(RunDir.existing(tiny_run)))
    ids = {c.id.split(":")[0] for c in claims}
    assert ids == {
        "caa_plus",
        "caa_minus",
        "caa_vs_random",
        "letter_control",
        "caa_swapped",
        "caa_balanced",
    }
    assert all(c.verdict in ("SUPPORTED", "NOT SUPPORTED") for c in claims)
    rank = [c for c in claims if c.id.startswith("caa_vs_random")]
    assert all(c.p >= 1 / 6 for c in rank)  # 5 draws: p is at least 1/6
    # ... so the rank claim says it cannot pass, and 6 test questions are exploratory
    assert all("rank cannot pass (p >= 1/6" in c.statement for c in rank)
    assert not any(c.confirmatory for c in claims)
    # the positive control passes on the tiny model too (it knows the answer)
    control = [c for c in claims if c.id.startswith("letter_control")]
    assert len(control) == 2 and all(c.verdict == "SUPPORTED" for c in control)
    paths = figures_for(tiny_run)
    names = {p.stem for p in paths}
    assert {"multiplier", "layers", "steerability", "verdicts"} <= names


def test_the_design_says_what_each_config_can_decide():
    """The small config is exploratory and its rank claims cannot pass (19 draws: p >= 1/20);
    the full config is confirmatory and a lone behaviour can pass BH over seven (500 draws).
    Planted: 139 draws (7/140 = 0.05, not below it) cannot pass alone; 19 draws with 140
    test questions are confirmatory yet the rank still cannot pass."""
    import tomllib
    from pathlib import Path

    from actadd.studies.behaviours.claims import design

    root = Path(__file__).resolve().parents[4]

    def of(name):
        raw = tomllib.loads((root / "experiments" / name).read_text())
        return design(raw["test"], raw["claim_random_draws"], len(data.BEHAVIOURS))

    small, full = of("behaviours.toml"), of("behaviours_full.toml")
    assert small["confirmatory"].startswith("no: 24 test questions < 64")
    assert small["rank"].startswith("cannot pass (p >= 1/20 = 0.050")
    assert full == {"confirmatory": "yes", "rank": "can pass alone"}
    assert design(128, 139, 7)["rank"].startswith("only if every behaviour ranks first")
    assert design(128, 140, 7)["rank"] == "can pass alone"
    assert design(140, 19, 7) == {
        "confirmatory": "yes",
        "rank": "cannot pass (p >= 1/20 = 0.050, not below 0.05)",
    }
