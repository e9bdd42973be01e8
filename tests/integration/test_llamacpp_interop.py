"""Exported control vectors in real llama.cpp, on the same SmolLM2 GGUF file.

llama.cpp (llama-cpp-python, built by ``make setup-interop``, which ``make test`` runs) loads
the Q4_1 file actadd converts, gets the control vector through ``llama_set_adapter_cvec``,
and is fed the same token ids actadd uses (``<|endoftext|>``, id 0, first: the GGUF sets
``add_bos_token = false``). Its next-token log-prob *shifts* (steered − unsteered) are
compared with actadd's ``align="all"`` at ``resid_pre N+1`` for ``direction.N``; its logits
themselves differ from fp32 because llama.cpp quantizes activations.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from actadd import SteeringError, SteeringVector
from actadd.interop.gguf import load_control_vector, write_control_vector

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed; `make setup-interop` (run by `make test`) builds it",
)

from actadd.interop.llamacpp import (  # noqa: E402
    LlamaCpp,
    _actadd_logprobs,
    compare_completions,
    compare_shifts,
    control_vector_data,
)

PROMPTS = [
    "I hate you because",
    "I went up to my friend and said",
    "The weather today is",
    "My favourite food is",
]
MIN_CORR = 0.95


@pytest.fixture(scope="module")
def llm():
    handle = LlamaCpp(n_threads=1)
    yield handle
    handle.close()


@pytest.fixture(scope="module")
def love(smollm2):
    """Love−Hate, mean of the rows after the leading token, at resid_pre 2, 12, 20 and 30."""
    vecs = SteeringVector.from_pair_layers(smollm2, "Love", "Hate", [2, 12, 20, 30])
    return {layer: v.mean(skip_first=True) for layer, v in vecs.items()}


def ids_of(model, prompt):
    return model.to_tokens(prompt, prepend_bos=True)[0].tolist()


def corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------------- same model, same ids


def test_llama_cpp_runs_the_same_model_on_the_same_token_ids(smollm2, llm):
    assert (llm.n_layer, llm.n_embd, llm.n_vocab) == (30, 576, 49152)
    assert llm.adds_bos is False  # the GGUF's add_bos_token = false
    for prompt in PROMPTS:
        ids = ids_of(smollm2, prompt)
        assert ids[0] == 0  # actadd's leading <|endoftext|>
        assert llm.tokenize(prompt) == ids[1:]  # llama.cpp adds nothing ...
        assert llm.tokenize("<|endoftext|>" + prompt) == ids  # ... unless told
        a = _actadd_logprobs(smollm2, ids, None)
        b = llm.next_token_logprobs(ids)
        assert corr(a, b) > 0.999 and a.argmax() == b.argmax()


def test_feeding_the_leading_token_is_what_lines_the_positions_up(smollm2, llm, love, tmp_path):
    path = (5 * love[12]).to_gguf(tmp_path / "v.gguf")
    for prompt in PROMPTS:
        ids = ids_of(smollm2, prompt)
        actadd_shift = _actadd_logprobs(smollm2, ids, [5 * love[12]]) - _actadd_logprobs(
            smollm2, ids, None
        )
        shifts = {}
        for name, feed in (("same ids", ids), ("llama.cpp's own", ids[1:])):
            llm.clear_control_vector()
            base = llm.next_token_logprobs(feed)
            llm.set_control_vector(path)
            shifts[name] = llm.next_token_logprobs(feed) - base
        llm.clear_control_vector()
        with_id0, without = (
            corr(actadd_shift, shifts["same ids"]),
            corr(actadd_shift, shifts["llama.cpp's own"]),
        )
        assert with_id0 > 0.99 and with_id0 > without + 0.01, (prompt, with_id0, without)


# ---------------------------------------------------------------------- the steering effect


@pytest.mark.parametrize("layer", [2, 12, 20, 30])
@pytest.mark.parametrize("coeff", [2.0, 8.0])
def test_llama_cpp_shifts_match_actadd_all_positions(smollm2, llm, love, tmp_path, layer, coeff):
    path = (coeff * love[layer]).to_gguf(tmp_path / "v.gguf")
    df = compare_shifts(smollm2, llm, path, PROMPTS)
    print(f"\nresid_pre {layer} (direction.{layer - 1}) x{coeff:g}:\n{df.to_string()}")
    assert (df["corr_shift"] >= MIN_CORR).all(), df
    assert df["slope"].between(0.9, 1.1).all(), df  # same size, not only the same direction
    assert (df["max_shift_actadd"] > 1.0).all()  # a real effect, not noise


@pytest.mark.parametrize("layer", [2, 12, 20, 30])
def test_the_layer_mapping_is_not_off_by_one(smollm2, llm, love, tmp_path, layer):
    """direction.{L-1} in llama.cpp matches actadd at resid_pre L better than at L-1 (where
    the vector would go if direction.N meant resid_pre N, as cvector-generator reads it)."""
    v = 5 * love[layer]
    path = v.to_gguf(tmp_path / "v.gguf")
    for prompt in PROMPTS:
        ids = ids_of(smollm2, prompt)
        base = _actadd_logprobs(smollm2, ids, None)
        right = _actadd_logprobs(smollm2, ids, [v]) - base
        wrong = _actadd_logprobs(smollm2, ids, [v.at_layer(layer - 1)]) - base
        llm.clear_control_vector()
        b0 = llm.next_token_logprobs(ids)
        llm.set_control_vector(path)
        shift = llm.next_token_logprobs(ids) - b0
        llm.clear_control_vector()
        err_right = np.linalg.norm(shift - right) / np.linalg.norm(right)
        err_wrong = np.linalg.norm(shift - wrong) / np.linalg.norm(wrong)
        assert err_right < 0.6 * err_wrong, (prompt, err_right, err_wrong)


def test_a_multi_layer_file_steers_like_the_set(smollm2, llm, love, tmp_path):
    path = write_control_vector({2: 2 * love[2], 20: 4 * love[20]}, tmp_path / "set.gguf")
    df = compare_shifts(smollm2, llm, path, PROMPTS)
    assert (df["corr_shift"] >= MIN_CORR).all(), df


def test_the_coefficient_is_baked_in_and_strength_scales_it(smollm2, llm, love, tmp_path):
    ids = ids_of(smollm2, PROMPTS[0])
    unit = love[12].to_gguf(tmp_path / "x1.gguf")
    five = (5 * love[12]).to_gguf(tmp_path / "x5.gguf")
    llm.set_control_vector(five)  # --control-vector x5.gguf
    a = llm.next_token_logprobs(ids)
    llm.set_control_vector(unit, scale=5)  # --control-vector-scaled x1.gguf:5
    b = llm.next_token_logprobs(ids)
    llm.set_control_vector(unit)
    c = llm.next_token_logprobs(ids)
    llm.clear_control_vector()
    assert np.abs(a - b).max() < 1e-3
    assert np.abs(a - c).max() > 1.0


def test_setting_a_vector_replaces_every_layer_of_the_previous_one(smollm2, llm, love, tmp_path):
    """llama_set_adapter_cvec copies only the layers its buffer covers; a short vector set
    after a long one must not inherit the long one's upper layers."""
    ids = ids_of(smollm2, PROMPTS[1])
    low = (5 * love[2]).to_gguf(tmp_path / "low.gguf")
    high = (8 * love[30]).to_gguf(tmp_path / "high.gguf")
    base = llm.next_token_logprobs(ids)
    llm.set_control_vector(low)
    fresh = llm.next_token_logprobs(ids)
    llm.set_control_vector(high)
    llm.set_control_vector(low)
    after = llm.next_token_logprobs(ids)
    llm.clear_control_vector()
    assert np.array_equal(after, fresh)
    assert np.array_equal(llm.next_token_logprobs(ids), base)
    data, n_embd = control_vector_data(low, llm.n_layer)
    assert data.size == n_embd * 29 and not data[n_embd:].any()


def test_greedy_completions_side_by_side(smollm2, llm, love, tmp_path):
    path = (8 * love[2]).to_gguf(tmp_path / "v.gguf")
    df = compare_completions(smollm2, llm, path, PROMPTS[:2], max_new_tokens=8)
    print("\n" + df.to_string())
    assert list(df.columns) == [
        "prompt",
        "actadd",
        "actadd_steered",
        "llamacpp",
        "llamacpp_steered",
    ]
    assert (df["actadd_steered"] != df["actadd"]).all()
    assert (df["llamacpp_steered"] != df["llamacpp"]).all()


def test_word_log_probs_side_by_side(smollm2, llm, love, tmp_path):
    path = (0.5 * love[2]).to_gguf(tmp_path / "v.gguf")
    df = compare_shifts(smollm2, llm, path, PROMPTS[:2], tokens=[" love", " hate"])
    assert len(df) == 4 and set(df["token"]) == {" love", " hate"}
    assert np.allclose(df["shift_actadd"], df["actadd_steered"] - df["actadd"])
    assert (df["shift_actadd"] - df["shift_llamacpp"]).abs().max() < 0.5
    assert (df.query("token == ' love'")["shift_actadd"] > 1.0).all()
    with pytest.raises(SteeringError, match="single tokens"):
        compare_shifts(smollm2, llm, path, PROMPTS[:1], tokens=[" lovely day"])


# ---------------------------------------------------------------------- files from others


def test_a_repeng_file_steers_the_same(smollm2, llm, love, tmp_path, monkeypatch):
    monkeypatch.setattr(np, "float_", np.float64, raising=False)  # repeng 0.4.0 on NumPy 2
    repeng = pytest.importorskip("repeng", reason="repeng is installed by `make setup-interop`")
    # repeng's direction.i is the output of model.layers[i], i.e. resid_pre i+1
    cv = repeng.ControlVector(
        model_type="llama",
        directions={11: (3 * love[12]).tensor[0].numpy(), 19: (3 * love[20]).tensor[0].numpy()},
    )
    theirs = tmp_path / "repeng.gguf"
    cv.export_gguf(str(theirs))
    ours = write_control_vector({12: 3 * love[12], 20: 3 * love[20]}, tmp_path / "ours.gguf")
    imported = load_control_vector(theirs, smollm2)
    assert sorted(imported) == [12, 20]
    assert torch.equal(imported[12].tensor, (3 * love[12]).tensor)
    ids = ids_of(smollm2, PROMPTS[0])
    llm.set_control_vector(theirs)
    a = llm.next_token_logprobs(ids)
    llm.set_control_vector(ours)
    b = llm.next_token_logprobs(ids)
    llm.clear_control_vector()
    assert np.array_equal(a, b)
    df = compare_shifts(smollm2, llm, theirs, PROMPTS)
    assert (df["corr_shift"] >= MIN_CORR).all(), df


PAIRS = [
    ("I am so happy", "I am so sad"),
    ("What a wonderful day", "What a terrible day"),
    ("I love this", "I hate this"),
    ("Everything is great", "Everything is awful"),
]


def cvector_generator_style(model, pairs, path):
    """A file made the way llama.cpp's cvector-generator (method "mean") makes one.

    For each pair, tokenized as llama.cpp would (no leading token: add_bos_token = false)
    and padded with " " to one length, the difference of the output of each block i at every
    token; the mean over all tokens of all pairs, unit-normalised, named direction.{i+1}
    (its naming: the output of block i is written as direction.{i+1}).
    """
    import gguf

    n = model.cfg.n_layers
    names = [f"blocks.{i + 1}.hook_resid_pre" for i in range(n - 1)]  # output of block i
    space = model.to_tokens(" ", prepend_bos=False)[0, -1].item()
    diffs = {i: [] for i in range(n - 1)}
    for pos, neg in pairs:
        a = model.to_tokens(pos, prepend_bos=False)[0].tolist()
        b = model.to_tokens(neg, prepend_bos=False)[0].tolist()
        m = max(len(a), len(b))
        tokens = torch.tensor([a + [space] * (m - len(a)), b + [space] * (m - len(b))])
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        for i in range(n - 1):
            d = cache[names[i]][0] - cache[names[i]][1]
            diffs[i].append(d[d.abs().amax(-1) > 0])
    w = gguf.GGUFWriter(str(path), "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_int32("controlvector.layer_count", n - 1)
    for i in range(n - 1):
        mean = torch.cat(diffs[i]).mean(0)
        w.add_tensor(f"direction.{i + 1}", (mean / mean.norm()).numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_cvector_generator_style_vector_imports_steers_and_can_be_studied(smollm2, llm, tmp_path):
    from actadd.studies.token_injection import (
        effect_metrics,
        inject_tokens,
        logit_lens,
        next_token_logprobs,
        norm_ratios,
    )

    path = cvector_generator_style(smollm2, PAIRS, tmp_path / "happy.gguf")
    vecs = load_control_vector(path, smollm2)
    assert sorted(vecs) == list(range(2, 31))  # direction.1..29 -> resid_pre 2..30
    assert all(abs(float(v.norms()[0]) - 1) < 1e-5 for v in vecs.values())

    # diagnostics work on the imported vector
    v = vecs[8]
    lens = logit_lens(smollm2, v, k=5)
    assert len(lens) == 5 and lens["logit"].is_monotonic_decreasing
    ratios = norm_ratios(smollm2, v, PROMPTS)
    assert ratios["vec_norm"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert ratios["typical_ratio"].iloc[0] == pytest.approx(1 / ratios["typical_norm"].iloc[0])

    # the whole file, scaled, steers happy over sad in both engines, in the same way
    scale = 2.0
    df = compare_shifts(smollm2, llm, path, ["Today I feel", *PROMPTS[1:3]], scale=scale)
    assert (df["corr_shift"] >= MIN_CORR).all(), df
    tok = lambda s: smollm2.to_tokens(s, prepend_bos=False)[0, 0].item()  # noqa: E731
    happy, sad = tok(" happy"), tok(" sad")
    ids = ids_of(smollm2, "Today I feel")
    steered = [scale * x for x in vecs.values()]
    base = next_token_logprobs(smollm2, [ids])
    cond = next_token_logprobs(smollm2, [ids], steered, align="all")
    shift = (cond - base)[0]
    assert shift[happy] - shift[sad] > 2.0
    llm.clear_control_vector()
    b0 = llm.next_token_logprobs(ids)
    llm.set_control_vector(path, scale)
    llama_shift = llm.next_token_logprobs(ids) - b0
    llm.clear_control_vector()
    assert llama_shift[happy] - llama_shift[sad] > 2.0

    # and it can be set against literally injecting the words it was made from
    injected = next_token_logprobs(
        smollm2, [inject_tokens(smollm2, "Today I feel", "I am so happy. ")]
    )
    m = effect_metrics(base, cond, [happy], inject=(base, injected))
    assert np.isfinite(m["inject_corr"]).all() and m["target_logprob_delta"][0] > 0


# ---------------------------------------------------------------------- freeing the model

UNCLOSED = """\
from actadd.interop.llamacpp import LlamaCpp
llm = LlamaCpp(n_threads=1)
print(llm.n_layer)
"""


def test_a_script_that_never_closes_it_ends_without_a_traceback():
    """llama-cpp-python's ``Llama.__del__`` ran at interpreter exit after the modules it
    needs were torn down (a 15-line ``TypeError`` traceback); LlamaCpp now frees it first."""
    proc = subprocess.run(
        [sys.executable, "-c", UNCLOSED], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "30"
    assert proc.stderr == "", proc.stderr


def test_with_closes_it_and_close_is_idempotent():
    with LlamaCpp(n_threads=1) as handle:
        assert not handle.closed
        assert handle.n_vocab == 49152
    assert handle.closed
    handle.close()  # again: nothing happens
    assert handle.closed
