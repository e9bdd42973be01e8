"""No public entry point leaves the model changed or steers the wrong caller: after an
exception raised mid-way, a KeyboardInterrupt mid-run, or a second thread on the same model,
every module's hooks, every patched attribute, every ``cfg`` field and the tokenizer are as
they were (:func:`model_state.snapshot`), and each caller gets what it gets alone.

Real threads on tiny-llama; nothing is mocked except the failures injected on purpose.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from model_state import changes, snapshot

import actadd
from actadd import GREEDY, Align, SteeringError, SteeringVector, steering
from actadd.core.chat import render_prompt, user_turn_span
from actadd.core.generation import generate_tokens
from actadd.core.metrics import target_token_ids
from actadd.core.prefix import PrefixBatch
from actadd.runtime.forward import last_logits
from actadd.runtime.modellock import model_lock
from actadd.runtime.tokens import encode, single_token_id
from actadd.ui import compute
from actadd.ui.settings import Settings

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
PLAY = dict(
    prompt="hello there",
    positive="ab",
    negative="cd",
    layer=1,
    coeff=6.0,
    target_words="a, e",
    max_new_tokens=4,
    n_samples=1,
    map_layers="0:4:2",
    map_coeffs=(-2.0, 2.0),
)


def _vector(model, coeff=8.0) -> SteeringVector:
    return SteeringVector.from_pair(model, "Love", "Hate", 1, coeff)


# ---------------------------------------------------------------------- the entry points
# each takes the model and returns something comparable (lists, tensors as lists)


def _steering(model):
    tokens = torch.tensor([encode(model, "I hate you because")])
    with steering(model, _vector(model)):
        return last_logits(model, tokens).tolist()


def _generate(model):
    df = actadd.generate(
        model, ["I hate you because", "Hi there"], _vector(model), max_new_tokens=5, n_samples=2
    )
    return df.completion.tolist()


def _compare(model):
    df = actadd.compare(model, "I hate you because", _vector(model), max_new_tokens=5)
    return df[["unsteered", "steered"]].values.tolist()


def _next_token_sweep(model):
    """The sweep engine's batched next-token path (execute), as the quick map runs it."""
    return compute.quick_map(model, Settings(**PLAY)).values.tolist()


def _prefix_batch(model):
    batch = PrefixBatch(model, [encode(model, t) for t in ("I hate you", "Hi there", "a")])
    v = _vector(model).rows([0])
    return [t.tolist() for t in batch.logits([None, v, [(v, "back")]])]


def _chat(model):
    prompts = ["I hate you because", "Hi there"]
    span = Align.span(*user_turn_span(model, prompts))
    rendered = [render_prompt(model, p) for p in prompts]
    df = actadd.generate(model, rendered, _vector(model).mean(), span, max_new_tokens=4)
    return df.completion.tolist()


def _playground_run(model):
    r = compute.run(model, Settings(**PLAY))
    return r.completions[["unsteered", "steered"]].values.tolist() + r.strip.norm.tolist()


ENTRY_POINTS = {
    "steering": _steering,
    "generate": _generate,
    "compare": _compare,
    "sweep next-token path": _next_token_sweep,
    "prefix batch": _prefix_batch,
    "chat helpers": _chat,
    "playground run": _playground_run,
}


@pytest.fixture
def model(tiny_llama, monkeypatch):
    monkeypatch.setattr(tiny_llama.tokenizer, "chat_template", TEMPLATE, raising=False)
    return tiny_llama


class _Fail:
    """A forward hook on the output of block 0 that raises ``exc`` at its ``at``-th call (so
    the failure comes from inside a forward pass, mid-way through an entry point)."""

    def __init__(self, model, exc: BaseException | None, at: int = 0) -> None:
        self.exc, self.at, self.calls = exc, at, 0
        self.handle = model.hook_dict["blocks.0.hook_resid_post"].register_forward_hook(self)

    def __call__(self, module, args, out):
        self.calls += 1
        if self.exc is not None and self.calls == self.at:
            raise self.exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _forwards(model, run) -> int:
    """How many forward passes ``run`` makes (its block-0 outputs)."""
    with _Fail(model, None) as count:
        run(model)
    return count.calls


# ---------------------------------------------------------------------- failures mid-way


@pytest.mark.parametrize(
    "failure, when",
    [(RuntimeError("injected"), "last"), (KeyboardInterrupt(), "middle")],
    ids=["exception-in-the-last-forward", "interrupt-mid-way"],
)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_failure_mid_way_leaves_the_model_unchanged(model, entry, failure, when):
    run = ENTRY_POINTS[entry]
    alone = run(model)
    calls = _forwards(model, run)  # the last one is steered in every entry point
    at = calls if when == "last" else math.ceil(calls / 2)
    before = snapshot(model, weights=True)
    with pytest.raises(type(failure)), _Fail(model, failure, at=at):
        run(model)
    assert changes(before, snapshot(model, weights=True)) == []
    assert run(model) == alone  # and the next call computes what it computed before


def test_bad_input_found_mid_generate_leaves_the_model_unchanged(model):
    # the second prompt is too short for a back-aligned 3-row vector: found in its forward
    v = SteeringVector.from_pair(model, "ab", "cd", 1, 4.0)
    before = snapshot(model)
    with pytest.raises(SteeringError, match="needs positions"):
        actadd.generate(model, ["hello there", "a"], v, "back", max_new_tokens=3, batch_size=1)
    assert changes(before, snapshot(model)) == []


def test_an_exception_inside_steering_leaves_the_model_unchanged(any_model):
    before = snapshot(any_model)
    with pytest.raises(ValueError, match="mine"), steering(any_model, _vector(any_model)):
        any_model(torch.tensor([encode(any_model, "Hi there")]))
        raise ValueError("mine")
    assert changes(before, snapshot(any_model)) == []


# ---------------------------------------------------------------------- concurrent callers


def _in_threads(*jobs) -> list:
    """Run each job on its own thread, all started together; their results (an exception
    is re-raised here)."""
    out: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))
    # OpenMP's thread count is per thread: a new thread starts at the machine's default, and
    # another count sums in another order; run each job on the test's count, as alone
    threads_each = torch.get_num_threads()

    def work(i, job):
        torch.set_num_threads(threads_each)
        start.wait()
        try:
            out[i] = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            out[i] = exc

    threads = [threading.Thread(target=work, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a thread never finished"
    for r in out:
        if isinstance(r, BaseException):
            raise r
    return out


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_concurrent_callers_each_get_what_they_get_alone(model, entry):
    run = ENTRY_POINTS[entry]
    alone = run(model)
    plain = actadd.generate(model, "I hate you because", max_new_tokens=5, sampling=GREEDY)
    before = snapshot(model, weights=True)

    def unsteered():
        return [
            actadd.generate(
                model, "I hate you because", max_new_tokens=5, sampling=GREEDY
            ).completion.tolist()
            for _ in range(3)
        ]

    got, others = _in_threads(lambda: [run(model) for _ in range(2)], unsteered)
    assert got == [alone, alone]
    assert others == [plain.completion.tolist()] * 3  # never steered by the other thread
    assert changes(before, snapshot(model, weights=True)) == []


def test_two_threads_generating_steered_and_unsteered_never_mix(tiny_llama):
    """The issue's case: thread A generates steered five times, thread B unsteered greedy ten
    times on the same model. B's outputs used to come out steered and A crashed on B's
    prompt; each now gets exactly its single-threaded output."""
    v = _vector(tiny_llama, 20.0)
    a_prompt, b_prompt = "Hi there", "I hate you because, as I said"

    def a():
        return actadd.generate(tiny_llama, a_prompt, v, max_new_tokens=8).completion.tolist()

    def b():
        df = actadd.generate(tiny_llama, b_prompt, max_new_tokens=8, sampling=GREEDY)
        return df.completion.tolist()

    want_a, want_b = a(), b()
    steered_b = actadd.generate(tiny_llama, b_prompt, v, max_new_tokens=8, sampling=GREEDY)
    assert steered_b.completion.tolist() != want_b  # so a steered B would be seen
    got_a, got_b = _in_threads(lambda: [a() for _ in range(5)], lambda: [b() for _ in range(10)])
    assert got_a == [want_a] * 5 and got_b == [want_b] * 10


def test_a_direct_forward_from_another_thread_is_refused_while_steered(tiny_llama):
    tokens = torch.tensor([encode(tiny_llama, "I hate you because")])
    clean = last_logits(tiny_llama, tokens)
    errors, finished = [], threading.Event()

    def direct():
        try:
            tiny_llama(tokens)
        except SteeringError as exc:
            errors.append(str(exc))

    def through_actadd():
        out = last_logits(tiny_llama, tokens)  # waits for the context to be left
        finished.set()
        return out

    with steering(tiny_llama, _vector(tiny_llama)):
        t = threading.Thread(target=direct)
        t.start()
        t.join(30)
        waiter_out = []
        w = threading.Thread(target=lambda: waiter_out.append(through_actadd()))
        w.start()
        time.sleep(0.3)
        assert not finished.is_set()  # waiting its turn, not steered
        steered = last_logits(tiny_llama, tokens)
    w.join(30)
    assert len(errors) == 1 and "being steered by another thread" in errors[0]
    assert "\n" not in errors[0]
    assert torch.equal(waiter_out[0], clean) and not torch.equal(steered, clean)


def test_a_model_held_by_a_thread_that_ended_is_one_error_line(tiny_llama):
    before = snapshot(tiny_llama)
    ctx = steering(tiny_llama, _vector(tiny_llama))
    t = threading.Thread(target=ctx.__enter__, name="left-open")
    t.start()
    t.join(30)
    try:
        with pytest.raises(SteeringError, match="'left-open', which ended") as info:
            actadd.generate(tiny_llama, "Hi", max_new_tokens=2)
        assert "\n" not in str(info.value)
    finally:
        ctx.__exit__(None, None, None)  # from another thread: gives back the ended thread's hold
    assert changes(before, snapshot(tiny_llama)) == []
    actadd.generate(tiny_llama, "Hi", max_new_tokens=2)  # usable again


def test_one_thread_nests_steering_and_generation_freely(tiny_llama):
    v = _vector(tiny_llama)
    with steering(tiny_llama, v), steering(tiny_llama, v.rows([0])):
        lists = [encode(tiny_llama, "Hi there")]
        generate_tokens(tiny_llama, lists, [torch.Generator()], max_new_tokens=2)
        assert model_lock(tiny_llama).owner is threading.current_thread()
    assert model_lock(tiny_llama).owner is None


# ---------------------------------------------------------------------- tokenization


def test_encode_is_to_tokens_without_touching_the_model(any_model):
    before = snapshot(any_model)
    for text in ("", "hello", " a b", "x" * 300):
        for prepend in (None, True, False):
            for truncate in (True, False):
                kw = {} if prepend is None else dict(prepend_bos=prepend)
                want = any_model.to_tokens(text, truncate=truncate, **kw)[0].tolist()
                got = encode(any_model, text, prepend_bos=prepend, truncate=truncate)
                assert got == want, (text[:8], prepend, truncate)
    assert changes(before, snapshot(any_model)) == []


def test_tokenizing_on_one_thread_while_another_computes_never_flips_prepend_bos(tiny_llama):
    """The playground's Run button used to leave ``default_prepend_bos`` False for good: its
    settings check tokenized with ``prepend_bos=False`` on the panel's thread while the
    worker tokenized and ran forwards, and TransformerLens saves and restores the default
    without a lock. actadd's own tokenization now never writes it, so a watcher sees it
    unchanged at every moment, and every later ``model(text)`` keeps its leading token."""
    cfg, tok = tiny_llama.cfg, tiny_llama.tokenizer
    want = (cfg.default_prepend_bos, tok.padding_side)
    n_hello = len(tiny_llama.to_tokens("hello")[0])
    s = Settings(**PLAY)
    done, seen = threading.Event(), set()

    def watch():
        while not done.is_set():
            seen.add((cfg.default_prepend_bos, tok.padding_side))
            time.sleep(0)  # let the others run

    def checks():  # what the panel runs on its own thread at every click
        for _ in range(40):
            s.check(tiny_llama)
            single_token_id(tiny_llama, " ")
            target_token_ids(tiny_llama, ["a", "e"], strict=False)

    def work():  # what the worker runs meanwhile
        for _ in range(4):
            compute.steering_vector(tiny_llama, s)
            actadd.generate(tiny_llama, ["hello", "hi there"], max_new_tokens=3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _in_threads(checks, work)
    finally:
        done.set()
        watcher.join(10)
    assert seen == {want}
    assert (cfg.default_prepend_bos, tok.padding_side) == want
    assert len(tiny_llama.to_tokens("hello")[0]) == n_hello == len("hello") + 1
    assert tiny_llama(["hello"]).shape[1] == n_hello
