"""The playground (actadd.ui): settings, compute, the newest-wins worker and the widgets,
driven from Python on tiny-llama. The panel's outputs must be the library's own."""

from __future__ import annotations

import re
import threading

import pytest
from model_state import changes, snapshot
from playground_settings import BASE

import actadd
from actadd import SteeringVector
from actadd.core.diagnostics import logit_lens
from actadd.core.methods import dataset_vectors
from actadd.core.metrics import logprob_mass, target_token_ids
from actadd.errors import ActAddError
from actadd.sweeps import execute
from actadd.ui import compute
from actadd.ui.render import STEERED_CLASS, completions_html, visible
from actadd.ui.settings import Settings
from actadd.ui.worker import LatestWorker, Superseded

pytest.importorskip("ipywidgets", reason="the playground extra: pip install -e '.[playground]'")


# ---------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(align="sideways"), "Unknown alignment"),
        (dict(source="caa", align="front"), "one-row vector"),
        (dict(n_samples=0), "n_samples must be an int >= 1"),
        (dict(top_p=0.0), "top_p must be in"),
        (dict(prompt=""), "prompt is empty"),
        (dict(equalize="middle"), "Pair-length rule"),
        (dict(positive="", negative=""), "two empty prompts"),
        (dict(coeff=float("nan")), "coeff must be a finite number"),
        (dict(freq_penalty=float("inf")), "freq_penalty must be a finite number"),
        (dict(map_coeffs=(1.0, float("nan"))), "map coefficients must be finite"),
        (dict(coeff=1e39), r"coeff 1e\+39 is too large: allowed -1e\+06\.\.1e\+06"),
        (dict(map_coeffs=(1.0, -2e6)), "map coefficients .* too large"),
    ],
)
def test_bad_settings_are_one_line_errors(change, message):
    with pytest.raises(ActAddError, match=message) as info:
        Settings(**{**BASE, **change})
    assert "\n" not in str(info.value)


def test_model_checks_come_before_compute(tiny_llama):
    with pytest.raises(ActAddError, match=r"allowed 0\.\.3"):
        Settings(**{**BASE, "layer": 4}).check(tiny_llama)
    with pytest.raises(ActAddError, match="context"):
        Settings(**{**BASE, "max_new_tokens": 300}).check(tiny_llama)
    with pytest.raises(ActAddError, match="not a single token"):
        Settings(**{**BASE, "target_words": "hello"}).check_map(tiny_llama)
    with pytest.raises(ActAddError, match="comma-separated words"):
        Settings(**{**BASE, "target_words": " , "}).check_map(tiny_llama)
    Settings(**{**BASE, "target_words": ""}).check(tiny_llama)  # a run needs no targets
    with pytest.raises(ActAddError, match="align offset:9999 does not fit the prompt"):
        Settings(**{**BASE, "align": "offset:9999"}).check(tiny_llama)
    with pytest.raises(ActAddError, match="align back does not fit the prompt"):
        Settings(**{**BASE, "prompt": "a", "align": "back"}).check(tiny_llama)
    with pytest.raises(ActAddError, match="align span:5:8 does not fit the prompt"):
        Settings(**{**BASE, "align": "span:5:8"}).check(tiny_llama)
    Settings(**{**BASE, "align": "span:1:1"}).check(tiny_llama)  # a pair's mean: one row


# ---------------------------------------------------------------------- compute


def test_run_equals_the_library_calls(tiny_llama):
    s = Settings(**BASE)
    r = compute.run(tiny_llama, s)
    v = SteeringVector.from_pair(tiny_llama, "ab", "cd", 1, 3.0)
    want = actadd.compare(tiny_llama, "hello there", v, "front", n_samples=2, max_new_tokens=6)
    assert r.completions[["unsteered", "steered"]].equals(want[["unsteered", "steered"]])
    assert (r.completions.steered != r.completions.unsteered).any()  # the vector does something
    assert r.lens.equals(logit_lens(tiny_llama, v, s.table_rows))
    # the strip: the vector's row norms on the front positions, nothing elsewhere
    k = v.k
    assert r.strip.norm[:k].tolist() == pytest.approx(v.norms().tolist())
    assert (r.strip.norm[k:] == 0).all()
    assert r.strip.token.tolist() == [
        tiny_llama.to_string([t]) for t in tiny_llama.to_tokens(s.prompt)[0]
    ]


def test_generation_phase_align_reduces_the_pair_and_lists_the_addition(tiny_llama):
    s = Settings(**{**BASE, "align": "generated:3"})
    r = compute.run(tiny_llama, s)
    v = SteeringVector.from_pair(tiny_llama, "ab", "cd", 1, 3.0).mean(skip_first=True)
    want = actadd.compare(
        tiny_llama, "hello there", v, "generated:3", n_samples=2, max_new_tokens=6
    )
    assert r.completions.steered.tolist() == want.steered.tolist()
    assert (r.strip.norm == 0).all()  # nothing on the prompt
    assert r.phase.kind.tolist() == ["generated:3"]
    assert r.phase.norm[0] == pytest.approx(float(v.norms()[0]))
    assert r.kl == pytest.approx(0.0, abs=1e-6)  # the first token comes from the prompt
    with pytest.raises(ActAddError, match="next token"):
        compute.quick_map(tiny_llama, s)


def test_from_marker_strip_starts_at_the_marker(tiny_llama):
    s = Settings(**{**BASE, "align": "from:t"})
    r = compute.run(tiny_llama, s)
    first = r.strip.token.tolist().index("t")
    assert (r.strip.norm[:first] == 0).all() and (r.strip.norm[first:] > 0).all()
    with pytest.raises(ActAddError, match="cannot place from:<token>"):
        compute.map_spec(s, tiny_llama.cfg.n_layers)  # before compute, not deep in the engine


def test_next_token_shift_is_the_steered_minus_clean_log_prob(tiny_llama):
    s = Settings(**BASE)
    r = compute.run(tiny_llama, s)
    tokens = tiny_llama.to_tokens(s.prompt)
    clean = tiny_llama(tokens)[0, -1].log_softmax(-1)
    with actadd.steering(tiny_llama, SteeringVector.from_pair(tiny_llama, "ab", "cd", 1, 3.0)):
        steered = tiny_llama(tokens)[0, -1].log_softmax(-1)
    delta = (steered - clean)[r.shift.token_id.tolist()]
    assert r.shift.delta_logp.tolist() == pytest.approx(delta.tolist(), abs=1e-4)
    assert r.shift.delta_logp.iloc[0] > 0 > r.shift.delta_logp.iloc[-1]


def test_quick_map_is_the_sweep_engine_next_token_delta(tiny_llama):
    s = Settings(**BASE)
    grid = compute.quick_map(tiny_llama, s)
    assert list(grid.index) == [0, 1, 2, 3] and list(grid.columns) == [-2.0, 2.0]
    df = execute(compute.map_spec(s, 4), tiny_llama, progress=False)
    one = df[(df.metric == "target_logprob_delta") & (df.layer == 2) & (df.coeff == 2.0)]
    assert grid.loc[2, 2.0] == pytest.approx(float(one.value.iloc[0]))
    # and that number is the plain steered-minus-clean log-prob mass of the targets
    ids = target_token_ids(tiny_llama, ("a", "e"), strict=True)
    tokens = tiny_llama.to_tokens(s.prompt)
    clean = logprob_mass(tiny_llama(tokens)[0, -1], ids)
    v = SteeringVector.from_pair(tiny_llama, "ab", "cd", 2, 2.0)
    with actadd.steering(tiny_llama, v):
        steered = logprob_mass(tiny_llama(tokens)[0, -1], ids)
    assert grid.loc[2, 2.0] == pytest.approx(float(steered - clean), abs=1e-4)


def test_dataset_method_vectors_are_cached_and_scaled(tiny_llama, monkeypatch):
    s = Settings(**{**BASE, "source": "caa", "dataset": "builtin:sentiment", "align": "all"})
    cache = compute.VectorCache()
    built = []
    monkeypatch.setattr(
        compute, "dataset_vectors", lambda *a, **k: built.append(a) or dataset_vectors(*a, **k)
    )
    v = compute.steering_vector(tiny_llama, s, cache)
    want = actadd.core.methods.dataset_vectors(
        tiny_llama, "builtin:sentiment", [1], "caa", coeff=3.0
    )
    assert v.tensor.allclose(want[1].tensor, atol=1e-6)
    again = compute.steering_vector(tiny_llama, s.with_(coeff=-1.0), cache)
    assert again.tensor.allclose(-v.tensor / 3, atol=1e-6)
    assert len(built) == 1  # the second coefficient reused the first build


# ---------------------------------------------------------------------- worker


class FakeSlowJobs:
    """Jobs that block until released, in a fixed order: no sleeps, no timing."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = {}
        self.entered = {}

    def job(self, name: str, obey_checkpoint: bool = True):
        self.release[name] = threading.Event()
        self.entered[name] = threading.Event()

        def run(checkpoint):
            self.started.append(name)
            self.entered[name].set()
            assert self.release[name].wait(30)
            if obey_checkpoint:
                checkpoint()
            return name

        return run


@pytest.mark.parametrize("obey", [True, False], ids=["checkpointed", "ignores-checkpoint"])
def test_a_newer_request_supersedes_and_a_stale_result_is_never_shown(obey):
    shown, errors = [], []
    worker = LatestWorker(lambda ch, t, r: shown.append(r), lambda ch, t, e: errors.append(e))
    jobs = FakeSlowJobs()
    worker.submit(jobs.job("A", obey))
    assert jobs.entered["A"].wait(30)  # A is running
    worker.submit(jobs.job("B"))  # queued behind A
    worker.submit(jobs.job("C"))  # supersedes B before it starts
    jobs.release["A"].set()  # A ends after C was asked for: stale
    assert jobs.entered["C"].wait(30)
    jobs.release["C"].set()
    assert worker.wait(30)
    assert shown == ["C"] and not errors
    assert jobs.started == ["A", "C"]  # B never ran


def test_channels_do_not_supersede_each_other_and_errors_reach_the_newest():
    shown, errors = [], []
    worker = LatestWorker(
        lambda ch, t, r: shown.append((ch, r)), lambda ch, t, e: errors.append((ch, str(e)))
    )
    jobs = FakeSlowJobs()
    worker.submit(jobs.job("run1"), "run")
    assert jobs.entered["run1"].wait(30)
    worker.submit(jobs.job("map1"), "map")

    def boom(checkpoint):
        raise ValueError("bad")

    worker.submit(boom, "run")  # supersedes run1
    jobs.release["run1"].set()
    jobs.release["map1"].set()
    assert worker.wait(30)
    assert shown == [("map", "map1")] and errors == [("run", "bad")]


def test_a_failing_callback_is_an_error_and_never_stops_the_worker():
    errors, busy = [], []

    def on_result(ch, t, r):
        if r == "bad":
            raise ValueError("cannot show bad")
        busy.append(("shown", r))

    worker = LatestWorker(
        on_result, lambda ch, t, e: errors.append(str(e)), lambda c, b: busy.append(b)
    )
    worker.submit(lambda checkpoint: "bad")
    assert worker.wait(30)  # not blocked by the dead thread of a failed callback
    assert errors == ["cannot show bad"] and busy[-1] is False
    worker.submit(lambda checkpoint: "good")
    assert worker.wait(30)
    assert busy[-2:] == [("shown", "good"), False]


def test_superseded_run_stops_at_its_next_stage(tiny_llama):
    stages = []
    calls = iter([None, Superseded("newer")])

    def checkpoint():
        nxt = next(calls)
        if nxt is not None:
            raise nxt

    with pytest.raises(Superseded):
        compute.run(
            tiny_llama,
            Settings(**BASE),
            checkpoint=checkpoint,
            progress=lambda s, i: stages.append(s),
        )
    assert stages == ["vector"]  # stopped before the completions


# ---------------------------------------------------------------------- widgets


def test_panel_run_matches_compare_with_the_same_seeds(panel, tiny_llama):
    panel.layer.value = 3
    panel.set_coeff(-4.5)
    panel.seed.value = 7
    panel.n_samples.value = 3
    panel.run_button.click()
    assert panel.wait(60)
    assert panel.error.value == ""
    v = SteeringVector.from_pair(tiny_llama, "ab", "cd", 3, -4.5)
    want = actadd.compare(
        tiny_llama, "hello there", v, "front", n_samples=3, seed=7, max_new_tokens=6
    )
    got = panel.result.completions
    assert got.steered.tolist() == want.steered.tolist()
    assert got.unsteered.tolist() == want.unsteered.tolist()
    assert panel.completions.value == completions_html(want, "hello there")
    for text in want.steered:
        assert (
            f"class='{STEERED_CLASS}'" in panel.completions.value
            and visible(text) in panel.completions.value
        )
    assert panel.progress.layout.visibility == "hidden" and panel.status.value.startswith("done")


def test_panel_greedy_sampling_and_log_coefficient(panel, tiny_llama):
    panel.log.value = True
    panel.set_coeff(-0.3)
    panel.greedy.value = True
    panel.align.value = "back"
    panel.run_button.click()
    assert panel.wait(60)
    v = SteeringVector.from_pair(tiny_llama, "ab", "cd", 1, panel.coeff_value)
    assert panel.coeff_value == pytest.approx(-0.3)
    want = actadd.generate(
        tiny_llama, "hello there", v, "back", n_samples=2, max_new_tokens=6, sampling=actadd.GREEDY
    )
    assert panel.result.completions.steered.tolist() == want.completion.tolist()


def test_bad_input_shows_one_line_and_computes_nothing(panel):
    panel.align.value = "from:hello"  # not one token in a byte-level vocabulary
    panel.run_button.click()
    assert panel.wait(60)
    assert "marker token" in panel.error.value and panel.result is None
    panel.align.value = "front"
    panel.map_coeffs.value = "1, two"
    assert panel.quick_map() is None  # nothing submitted
    assert panel.wait(60)
    assert "comma-separated numbers" in panel.error.value and panel.map_grid is None
    panel.map_coeffs.value = "1, 2"
    panel.temperature.value = 0.0  # refused with one line, not clamped to a small temperature
    panel.run_button.click()
    assert panel.wait(60)
    assert "temperature" in panel.error.value and panel.result is None
    assert "\n" not in panel.error.value


def test_map_click_sets_the_sliders(panel):
    panel.map_button.click()
    assert panel.wait(60)
    assert panel.map_grid.shape == (4, 2)
    panel.map_cell(2, -2.0).click()
    assert panel.layer.value == 2 and panel.coeff_value == -2.0
    panel.log.value = True
    panel.map_cell(3, 2.0).click()
    assert panel.layer.value == 3 and panel.coeff_value == pytest.approx(2.0)
    panel.log.value = False
    panel._pick(1, -35.0)  # past the linear slider's range: it widens, never clips
    assert panel.coeff_value == -35.0


def test_newest_click_wins_in_the_panel(panel, tiny_llama):
    # the first run is held inside its completions stage until the second click, so it is
    # superseded mid-run (no timing); a queue that ran both would show layer 0, then 2
    entered, release, shown = threading.Event(), threading.Event(), []
    progress = panel._progress

    def held(stage, i):
        if stage == "completions" and not entered.is_set():
            entered.set()
            assert release.wait(30)
        progress(stage, i)

    panel._progress = held
    panel.completions.observe(lambda _: shown.append(panel.result.settings.layer), "value")
    panel.layer.value = 0
    panel.run_button.click()
    assert entered.wait(30)
    panel.layer.value = 2
    panel.run_button.click()
    release.set()
    assert panel.wait(60)
    assert shown == [2] and panel.result.settings.layer == 2


@pytest.mark.parametrize(
    "set_input, kept, message",
    [
        (
            lambda p: setattr(p.layer, "value", 99),
            lambda p: p.layer.value == 99,
            r"layer \[99\] out of range for tiny-llama: allowed 0\.\.3",
        ),
        (
            lambda p: (setattr(p.log, "value", True), p.set_coeff(0.0)),
            lambda p: p.coeff_value == 0.0,
            "coefficient of 0 is not on the log scale",
        ),
        (
            lambda p: setattr(p.align, "value", "offset:9999"),
            lambda p: p.align.value == "offset:9999",
            "align offset:9999 does not fit the prompt",
        ),
        (
            lambda p: p.set_coeff(1e39),
            lambda p: p.coeff_value == 1e39,
            r"coeff 1e\+39 is too large",
        ),
        (
            lambda p: setattr(p.coeff, "value", 1e39),  # the slider itself, past its range
            lambda p: p.coeff_value == 1e39,
            r"coeff 1e\+39 is too large",
        ),
        (
            lambda p: (setattr(p.log, "value", True), p.set_coeff(1e39)),
            lambda p: p.coeff_value == 1e39,
            r"coeff 1e\+39 is too large",
        ),
    ],
    ids=[
        "layer-99",
        "log-coefficient-0",
        "offset-9999",
        "coefficient-1e39",
        "slider-1e39",
        "log-1e39",
    ],
)
def test_out_of_range_inputs_are_kept_and_refused_in_one_line_before_any_compute(
    panel, set_input, kept, message
):
    set_input(panel)
    assert kept(panel)  # never clamped to what the widget can show
    assert panel.run() is None and not panel.worker.busy()  # nothing submitted
    assert panel.result is None
    assert re.search(message, panel.error.value) and "\n" not in panel.error.value


def test_a_layer_past_the_model_given_at_start_is_refused_not_clamped(tiny_llama):
    p = actadd.playground(tiny_llama, **{**BASE, "layer": 99})
    assert p.layer.value == 99
    assert p.run() is None and "layer [99] out of range" in p.error.value
    p.layer.value = 2  # back in range: the slider narrows to the model's layers again
    assert (p.layer.min, p.layer.max) == (0, 3)
    assert p.run() is not None and p.wait(60) and p.error.value == ""


def test_a_log_coefficient_of_0_is_refused_until_a_magnitude_is_picked(panel):
    panel.log.value = True
    panel.set_coeff(0.0)
    assert panel.run() is None and "log scale" in panel.error.value
    panel.magnitude.value = 0.5
    assert panel.coeff_value == 0.5
    panel.set_coeff(0.0)
    panel.log.value = False  # 0 is fine on the linear slider
    assert panel.coeff_value == 0.0 and panel.run() is not None
    assert panel.wait(60) and panel.error.value == ""


def test_pressing_run_three_times_quickly_never_changes_the_model(panel, tiny_llama):
    """The issue's case: quick clicks used to leave ``default_prepend_bos`` False for good
    (the click's settings check tokenized while the worker did); every later
    ``model(text)`` then dropped the leading token."""
    n_hello = len("hello") + 1
    assert len(tiny_llama.to_tokens("hello")[0]) == n_hello
    before = snapshot(tiny_llama)
    for i in range(6):
        panel.layer.value = i % 4
        for _ in range(3):
            panel.run_button.click()
    assert panel.wait(120)
    assert panel.error.value == "" and panel.result.settings.layer == 1
    assert changes(before, snapshot(tiny_llama)) == []
    assert len(tiny_llama.to_tokens("hello")[0]) == n_hello
    assert tiny_llama("hello").shape[1] == n_hello
