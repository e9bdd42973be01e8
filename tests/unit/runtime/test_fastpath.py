"""The fast path computes what TransformerLens computes, fires the same hooks, and leaves
nothing behind.

Every test compares ``with fast_path(model):`` against the same model without it: logits
(float rounding apart), the activations every hook point sees, the order hooks fire in,
KV-cached decoding, gradients, and the blocks' ``forward`` after exit.
"""

from __future__ import annotations

import sys

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

import actadd
from actadd import GREEDY, Sampling, SteeringVector, steering
from actadd.core.generation import generate_tokens
from actadd.runtime.fast import StaticKVCache, fast_path, unsupported_reason
from actadd.runtime.fast.attention import _FastAttention, _Rotary
from actadd.runtime.fast.block import _rms_norm
from actadd.runtime.fast.geometry import _Shared
from actadd.runtime.forward import left_pad, unembed

PROMPTS = ["I hate you because", "Hi", "The weather today is quite nice"]
TOL = 1e-5  # tiny models: logits of order 1; SDPA rounds differently from TL's softmax
generate_module = sys.modules["actadd.core.generation"]


def padded(model):
    return left_pad(model, [model.to_tokens(p)[0].tolist() for p in PROMPTS])


def fast_blocks(model) -> list[str]:
    return [f"blocks.{i}" for i, b in enumerate(model.blocks) if "forward" in vars(b)]


# --------------------------------------------------------------------------- equivalence


#: what the fast path leaves to TransformerLens's own forward (and says why)
NOT_COVERED = {"tiny-gemma3": "cfg.use_normalization_before_and_after = True"}


@pytest.fixture
def fast_model(tiny_model):
    """A tiny model the fast path covers (Gemma 3 runs on TransformerLens's forward)."""
    if tiny_model.cfg.model_name in NOT_COVERED:
        pytest.skip(f"{tiny_model.cfg.model_name} runs on TransformerLens's forward")
    return tiny_model


def test_tiny_models_are_covered_or_say_why_not(tiny_model):
    assert unsupported_reason(tiny_model) == NOT_COVERED.get(tiny_model.cfg.model_name)


def test_gemma3_falls_back_to_transformerlens_with_the_same_logits(tiny_gemma3):
    """Local attention, QK-norm and norms after each sublayer are not in the fast path:
    fast_path() hands Gemma 3 to TransformerLens unchanged (the forward is not patched)."""
    tokens, mask = padded(tiny_gemma3)
    ref = tiny_gemma3(tokens, attention_mask=mask)
    with fast_path(tiny_gemma3) as on:
        assert not on and not fast_blocks(tiny_gemma3)
        assert torch.equal(tiny_gemma3(tokens, attention_mask=mask), ref)


def test_logits_match_transformerlens_single_and_left_padded(fast_model):
    tiny_model = fast_model
    tokens, mask = padded(tiny_model)
    ref = tiny_model(tokens, attention_mask=mask)
    ref_one = tiny_model(tokens[:1])
    with fast_path(tiny_model) as on:
        assert on and len(fast_blocks(tiny_model)) == tiny_model.cfg.n_layers
        out = tiny_model(tokens, attention_mask=mask)
        out_one = tiny_model(tokens[:1])
    real = mask.bool()
    torch.testing.assert_close(out[real], ref[real], atol=TOL, rtol=0)
    # pad positions attend to nothing: TransformerLens zeroes their z, and so does the fast path
    torch.testing.assert_close(out[~real], ref[~real], atol=TOL, rtol=0)
    torch.testing.assert_close(out_one, ref_one, atol=TOL, rtol=0)


@pytest.mark.parametrize("static", [True, False], ids=["static-cache", "tl-cache"])
def test_kv_cached_decoding_matches_transformerlens(tiny_model, static):
    tokens, mask = padded(tiny_model)
    steps = torch.tensor([[5, 9, 11], [7, 7, 3], [200, 1, 64]])
    cache = TransformerLensKeyValueCache.init_cache(tiny_model.cfg, "cpu", 3)
    ref = [tiny_model(tokens, attention_mask=mask, past_kv_cache=cache)[:, -1]]
    for j in range(steps.shape[1]):
        new = steps[:, j : j + 1]
        ref.append(tiny_model(new, attention_mask=torch.ones_like(new), past_kv_cache=cache)[:, -1])
    with fast_path(tiny_model):
        if static:  # capacity 2 < what is needed: the buffers must grow
            ours_cache = StaticKVCache.allocate(tiny_model.cfg, "cpu", 3, capacity=2)
        else:
            ours_cache = TransformerLensKeyValueCache.init_cache(tiny_model.cfg, "cpu", 3)
        ours = [tiny_model(tokens, attention_mask=mask, past_kv_cache=ours_cache)[:, -1]]
        for j in range(steps.shape[1]):
            new = steps[:, j : j + 1]
            ours.append(
                tiny_model(new, attention_mask=torch.ones_like(new), past_kv_cache=ours_cache)[
                    :, -1
                ]
            )
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    # the static cache holds what TransformerLens's holds: unrotated keys, and values
    for mine, theirs in zip(ours_cache.entries, cache.entries):
        torch.testing.assert_close(mine.past_keys, theirs.past_keys, atol=TOL, rtol=0)
        torch.testing.assert_close(mine.past_values, theirs.past_values, atol=TOL, rtol=0)


def test_generation_matches_transformerlens_path(tiny_model):
    v = SteeringVector.from_pair(tiny_model, "Love", "Hate", layer=2, coeff=4)
    ids = [tiny_model.to_tokens(p)[0].tolist() for p in PROMPTS]
    for vectors, align in ((None, "front"), (v, "front"), (v, "back"), (v.mean(), "all")):
        runs = []
        for fast in (True, False):
            gens = [torch.Generator().manual_seed(i) for i in range(len(ids))]
            ctx = (
                steering(tiny_model, vectors, align, on_short="clip")
                if vectors is not None
                else _null()
            )
            with ctx:
                runs.append(
                    generate_tokens(
                        tiny_model, ids, gens, max_new_tokens=16, sampling=GREEDY, fast=fast
                    )
                )
        assert runs[0] == runs[1], (align, runs)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------- hooks


def _recording(model, names):
    """Hooks on ``names`` that record (name, clone) in call order."""
    log = []

    def make(name):
        def hook(act, hook):
            log.append((name, act.detach().clone()))

        return hook

    return log, [(n, make(n)) for n in names]


def _fast_path_hook_names(model):
    skip = ("hook_attn_scores", "hook_pattern", "ln1.", "hook_result", "hook_attn_in")
    return [n for n in model.hook_dict if n.startswith("blocks.") and not any(s in n for s in skip)]


def test_every_hook_point_fires_in_order_with_the_same_activations(tiny_model):
    tokens, mask = padded(tiny_model)
    names = _fast_path_hook_names(tiny_model)
    log_ref, hooks = _recording(tiny_model, names)
    with tiny_model.hooks(fwd_hooks=hooks):
        tiny_model(tokens, attention_mask=mask)
    log_fast, hooks = _recording(tiny_model, names)
    with fast_path(tiny_model), tiny_model.hooks(fwd_hooks=hooks):
        tiny_model(tokens, attention_mask=mask)
    assert [n for n, _ in log_fast] == [n for n, _ in log_ref]
    fired = {n.split(".", 2)[-1] for n, _ in log_fast}  # names within a block
    assert {"hook_resid_pre", "attn.hook_q", "attn.hook_z", "hook_resid_post"} <= fired
    assert {"ln2.hook_normalized", "mlp.hook_post", "hook_mlp_out"} <= fired
    real = mask.bool()
    for (name, a), (_, b) in zip(log_fast, log_ref):
        if a.shape[:2] == real.shape:  # [batch, pos, ...]: compare real positions
            a, b = a[real], b[real]
        torch.testing.assert_close(a, b, atol=TOL, rtol=0, msg=name)


def test_a_hook_that_edits_an_activation_is_honoured(tiny_model):
    tokens = tiny_model.to_tokens(PROMPTS[0])

    def ablate_head_0(z, hook):
        z = z.clone()
        z[:, :, 0] = 0
        return z

    hooks = [("blocks.1.attn.hook_z", ablate_head_0)]
    ref = tiny_model.run_with_hooks(tokens, fwd_hooks=hooks)
    with fast_path(tiny_model):
        out = tiny_model.run_with_hooks(tokens, fwd_hooks=hooks)
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)
    assert not torch.allclose(ref, tiny_model(tokens), atol=1e-3)


def test_hooks_on_the_pattern_or_ln1_send_that_block_to_transformerlens(tiny_model):
    tokens = tiny_model.to_tokens(PROMPTS[0])
    seen = []
    hooks = [
        ("blocks.1.attn.hook_pattern", lambda p, hook: seen.append(hook.name)),
        ("blocks.2.ln1.hook_normalized", lambda x, hook: seen.append(hook.name)),
    ]
    ref = tiny_model.run_with_hooks(tokens, fwd_hooks=hooks)
    n_ref = len(seen)
    with fast_path(tiny_model):
        out = tiny_model.run_with_hooks(tokens, fwd_hooks=hooks)
    assert len(seen) == 2 * n_ref and n_ref == 4  # pattern once, ln1 three times (q, k, v)
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)


def test_run_with_cache_sees_the_same_activations(tiny_llama):
    tokens = tiny_llama.to_tokens(PROMPTS[0])
    _, ref = tiny_llama.run_with_cache(tokens)
    with fast_path(tiny_llama):
        _, ours = tiny_llama.run_with_cache(tokens)
    assert set(ours.keys()) == set(ref.keys())
    for name in ref.keys():
        torch.testing.assert_close(ours[name], ref[name], atol=TOL, rtol=0, msg=name)


def test_steering_additions_stay_exact_on_the_fast_path(tiny_model):
    v = SteeringVector.from_pair(tiny_model, "Love", "Hate", layer=2, coeff=3.0)
    tokens = tiny_model.to_tokens(PROMPTS[0])
    names = lambda n: n.endswith("hook_resid_pre")  # noqa: E731
    with fast_path(tiny_model):
        _, clean = tiny_model.run_with_cache(tokens, names_filter=names)
        with steering(tiny_model, v):
            _, steered = tiny_model.run_with_cache(tokens, names_filter=names)
    a, b = clean["blocks.2.hook_resid_pre"][0], steered["blocks.2.hook_resid_pre"][0]
    assert torch.equal(b[: v.k], a[: v.k] + v.tensor)
    assert torch.equal(b[v.k :], a[v.k :])
    for layer in (0, 1):
        name = f"blocks.{layer}.hook_resid_pre"
        assert torch.equal(clean[name], steered[name])


def test_a_hook_added_mid_generation_then_removed(tiny_llama):
    """Blocks fall back to TransformerLens while the pattern is hooked (their keys reach the
    static cache unrotated) and come back afterwards (the fast path rotates what it missed)."""
    model = tiny_llama
    tokens = model.to_tokens(PROMPTS[2])
    steps = [torch.tensor([[t]]) for t in (5, 9, 11, 30, 2)]
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, "cpu", 1)
    ref = [model(tokens, past_kv_cache=cache)[:, -1]]
    ref += [model(s, past_kv_cache=cache)[:, -1] for s in steps]
    with fast_path(model):
        cache = StaticKVCache.allocate(model.cfg, "cpu", 1, capacity=32)
        ours = [model(tokens, past_kv_cache=cache)[:, -1]]
        for i, s in enumerate(steps):
            if i in (1, 2):
                with model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", lambda p, hook: p)]):
                    ours.append(model(s, past_kv_cache=cache)[:, -1])
            else:
                ours.append(model(s, past_kv_cache=cache)[:, -1])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


# --------------------------------------------------------------------------- scope


def test_blocks_get_their_forward_back_on_exit_and_on_error(fast_model):
    tiny_model = fast_model
    with fast_path(tiny_model):
        with fast_path(tiny_model) as inner:  # nested: the outer context owns the patch
            assert inner
        assert len(fast_blocks(tiny_model)) == tiny_model.cfg.n_layers
    assert fast_blocks(tiny_model) == []
    with pytest.raises(RuntimeError, match="boom"):
        with fast_path(tiny_model):
            raise RuntimeError("boom")
    assert fast_blocks(tiny_model) == []


def test_generate_leaves_no_patch_behind_even_on_error(tiny_llama, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(generate_module, "next_tokens", boom)
    with pytest.raises(RuntimeError, match="boom"):
        actadd.generate(tiny_llama, "Hello", max_new_tokens=3)
    assert fast_blocks(tiny_llama) == []


def test_unsupported_configurations_are_left_to_transformerlens():
    model = actadd.load_model("tiny-llama")  # a private copy: its cfg gets edited
    model.cfg.use_attn_result = True
    assert "use_attn_result" in unsupported_reason(model)
    with fast_path(model) as on:
        assert not on and fast_blocks(model) == []
        model(model.to_tokens("Hi"))  # TransformerLens's own forward


def test_a_block_whose_forward_someone_else_patched_is_left_alone():
    model = actadd.load_model("tiny-gpt2")
    model.blocks[0].forward = model.blocks[0].forward  # an instance-level forward
    with fast_path(model) as on:
        assert not on
    assert vars(model.blocks[0])["forward"] is not None


def test_gradients_flow_as_through_transformerlens(tiny_llama):
    tokens = tiny_llama.to_tokens(PROMPTS[0])
    w = tiny_llama.blocks[1].attn.W_Q
    grads = []
    for use_fast in (False, True):
        with torch.enable_grad():
            w.grad = None
            with fast_path(tiny_llama) if use_fast else _null():
                tiny_llama(tokens).logsumexp(-1).sum().backward()
            grads.append(w.grad.clone())
        w.grad = None
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- pieces, bit for bit


def test_rms_norm_is_transformerlens_bit_for_bit(tiny_llama):
    norm = tiny_llama.blocks[0].ln1
    shared = _Shared(tiny_llama)
    for shape in ((1, 1, 64), (3, 7, 64)):
        x = torch.randn(*shape) * 3
        assert torch.equal(_rms_norm(norm, x, shared, None, None), norm(x))


@pytest.mark.parametrize("adjacent", [False, True])
def test_rotary_is_transformerlens_bit_for_bit(tiny_llama, adjacent):
    attn = tiny_llama.blocks[0].attn
    old = attn.cfg.rotary_adjacent_pairs
    attn.cfg.rotary_adjacent_pairs = adjacent
    try:
        rotary = _Rotary(attn)
        x = torch.randn(2, 5, 4, attn.cfg.d_head)
        cos, sin = rotary.angles(slice(0, 8), 3, 8)
        assert torch.equal(rotary(x, cos, sin), attn.apply_rotary(x, 3))
        mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
        cos, sin = rotary.angles(_Shared(tiny_llama)._compute(mask, 3, 5, 8).positions, 3, 8)
        assert torch.equal(rotary(x, cos, sin), attn.apply_rotary(x, 3, mask))
    finally:
        attn.cfg.rotary_adjacent_pairs = old


def test_qkv_share_one_buffer_so_one_matmul_computes_them(tiny_model):
    attn = tiny_model.blocks[0].attn
    fused = _FastAttention(attn, _Shared(tiny_model)).qkv_weights()[1]
    assert fused is not None
    x = torch.randn(2, 3, tiny_model.cfg.d_model)
    qkv = torch.nn.functional.linear(x, *fused)
    grouped = hasattr(attn, "_W_K") and "_W_K" in attn._parameters
    w_k, w_v = (attn._W_K, attn._W_V) if grouped else (attn.W_K, attn.W_V)
    b_k, b_v = (attn._b_K, attn._b_V) if grouped else (attn.b_K, attn.b_V)
    parts = [torch.einsum("bpm,nmh->bpnh", x, w) + b for w, b in ((attn.W_Q, attn.b_Q), (w_k, b_k))]
    parts.append(torch.einsum("bpm,nmh->bpnh", x, w_v) + b_v)
    torch.testing.assert_close(
        qkv, torch.cat([p.flatten(-2) for p in parts], -1), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("rows", [1, 3, 4, 16, 33])
def test_chunked_unembedding_is_bit_for_bit(tiny_llama, rows):
    x = torch.randn(rows, 1, tiny_llama.cfg.d_model)
    assert torch.equal(unembed(tiny_llama, x), tiny_llama.unembed(x))


def test_cached_decoding_with_sampling_matches_transformerlens(tiny_llama):
    ids = [tiny_llama.to_tokens(p)[0].tolist() for p in PROMPTS]
    runs = []
    for fast in (True, False):
        gens = [torch.Generator().manual_seed(i) for i in range(len(ids))]
        runs.append(
            generate_tokens(
                tiny_llama, ids, gens, max_new_tokens=12, sampling=Sampling(top_p=0.9), fast=fast
            )
        )
    assert runs[0] == runs[1]
    assert all(len(r) == 12 for r in runs[0])


def test_a_steering_context_works_with_gradients_after_fast_generation(tiny_llama):
    """Generation runs under inference_mode; the steering context's plans made there must
    not leak into a later forward pass that needs gradients."""
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=2)
    ids = [tiny_llama.to_tokens(p)[0].tolist() for p in PROMPTS[:1]]
    tokens = torch.tensor(ids)
    with steering(tiny_llama, v) as s:
        generate_tokens(tiny_llama, ids, [torch.Generator()], max_new_tokens=3, sampling=GREEDY)
        assert len(s.applied())
        with torch.enable_grad():
            x = tiny_llama.embed(tokens).detach().requires_grad_(True)
            tiny_llama(x, start_at_layer=0).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
