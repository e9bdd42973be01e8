"""llama.cpp control-vector GGUF files: the format, the layer mapping, round trips, errors.

Files are read back with ``gguf.GGUFReader`` directly (not through actadd) where the test is
about what lands on disk, and written with ``gguf.GGUFWriter`` directly where the test is
about what actadd accepts, so the reader and the writer are each checked against the format
rather than against each other.
"""

from __future__ import annotations

import json
import os

import gguf
import numpy as np
import pytest
import torch

from actadd import SteeringError, SteeringVector, VectorFileError, steering
from actadd.interop.gguf import KEY_PROVENANCE as KEY
from actadd.interop.gguf import (
    describe_file,
    direction_for_layer,
    layer_for_direction,
    load_control_vector,
    model_hint_for,
    read_control_vector,
    write_control_vector,
)


def one_row(model, layer, coeff=1.0, pos="Love", neg="Hate"):
    return SteeringVector.from_pair(model, pos, neg, layer=layer, coeff=coeff).mean(skip_first=True)


def raw_file(path, tensors, *, arch="controlvector", hint="llama", count=None, extra=None):
    """A GGUF written with gguf-py alone: ``tensors`` is ``{name: numpy array}``."""
    w = gguf.GGUFWriter(str(path), arch)
    if hint is not None:
        w.add_string("controlvector.model_hint", hint)
    if count is not None:
        w.add_uint32("controlvector.layer_count", count)
    for key, value in (extra or {}).items():
        w.add_string(key, value)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


# ---------------------------------------------------------------------- the layer mapping


def test_resid_pre_layer_L_is_direction_L_minus_1_and_back():
    assert [direction_for_layer(L) for L in (2, 3, 30)] == [1, 2, 29]
    assert [layer_for_direction(n) for n in (1, 2, 29)] == [2, 3, 30]


@pytest.mark.parametrize("layer", [0, 1])
def test_layers_0_and_1_cannot_be_written(tiny_llama, tmp_path, layer):
    v = one_row(tiny_llama, layer)
    with pytest.raises(SteeringError, match=rf"resid_pre layer {layer} cannot be written.*>= 2"):
        v.to_gguf(tmp_path / "v.gguf")
    assert not (tmp_path / "v.gguf").exists()


# ---------------------------------------------------------------------- what is written


def test_export_writes_the_llama_cpp_format(tiny_llama, tmp_path):
    v = one_row(tiny_llama, 3, coeff=4)
    path = v.to_gguf(tmp_path / "love.gguf")
    r = gguf.GGUFReader(str(path))
    assert field(r, "general.architecture") == "controlvector"
    assert field(r, "controlvector.model_hint") == "llama"
    assert field(r, "controlvector.layer_count") == 1
    assert [t.name for t in r.tensors] == ["direction.2"]
    t = r.tensors[0]
    assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [64]
    # the coefficient is baked in: the tensor is exactly what actadd adds
    assert np.array_equal(np.asarray(t.data), v.tensor[0].numpy())
    record = json.loads(field(r, "actadd.provenance"))
    assert record["coefficient_baked_in"] is True
    assert record["model_name"] == "tiny-llama" and record["d_model"] == 64
    assert record["vectors"]["2"]["layer"] == 3
    assert record["vectors"]["2"]["provenance"]["of"]["coeff"] == 4.0
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["love.gguf"]  # no temp file left


def test_round_trip_is_bit_exact_with_provenance(tiny_llama, tmp_path):
    v = one_row(tiny_llama, 2, coeff=5)
    w = SteeringVector.from_gguf(v.to_gguf(tmp_path / "v.gguf"), tiny_llama)
    assert torch.equal(w.tensor, v.tensor)
    assert w.layer == 2 and w.model_name == "tiny-llama"
    assert w.provenance == {**v.provenance, "imported_from": str(tmp_path / "v.gguf")}
    # the same label, and the file it came from (not "derived")
    assert (
        w.describe()
        == "mean[1:](Love − Hate ×5) from v.gguf @L2"
        == v.describe()[:-4] + " from v.gguf @L2"
    )
    assert w.resid_norm == v.resid_norm is not None and w.relative_norm == v.relative_norm


def test_a_layer_set_goes_into_one_file_and_comes_back(tiny_llama, tmp_path):
    vecs = {L: one_row(tiny_llama, L, coeff=L) for L in (2, 3, 4)}
    path = write_control_vector(vecs, tmp_path / "set.gguf")
    names = [t.name for t in gguf.GGUFReader(str(path)).tensors]
    assert names == ["direction.1", "direction.2", "direction.3"]
    back = load_control_vector(path, tiny_llama)
    assert sorted(back) == [2, 3, 4]
    for L in (2, 3, 4):
        assert torch.equal(back[L].tensor, vecs[L].tensor) and back[L].layer == L
    # a list at distinct layers writes the same tensors
    write_control_vector(list(vecs.values()), tmp_path / "list.gguf")
    again = read_control_vector(tmp_path / "list.gguf")
    assert all(
        np.array_equal(again.directions[n], read_control_vector(path).directions[n])
        for n in (1, 2, 3)
    )
    # and steering with the imported set is steering with the originals, bit for bit
    tokens = tiny_llama.to_tokens("Hello there")
    with steering(tiny_llama, list(vecs.values()), align="all"):
        want = tiny_llama(tokens)
    with steering(tiny_llama, list(back.values()), align="all"):
        got = tiny_llama(tokens)
    assert torch.equal(got, want)


def test_the_last_resid_pre_layer_is_the_last_direction(tiny_llama, tmp_path):
    v = one_row(tiny_llama, 4)  # n_layers = 4: the stream after the last block
    cv = read_control_vector(v.to_gguf(tmp_path / "v.gguf"))
    assert list(cv.directions) == [3] and cv.layers == {4: 3}


def test_from_gguf_picks_one_direction(tiny_llama, tmp_path):
    path = write_control_vector(
        [one_row(tiny_llama, 2), one_row(tiny_llama, 4)], tmp_path / "s.gguf"
    )
    with pytest.raises(VectorFileError, match=r"holds 2 directions.*layers \[2, 4\].*layer="):
        SteeringVector.from_gguf(path, tiny_llama)
    assert SteeringVector.from_gguf(path, tiny_llama, layer=4).layer == 4
    with pytest.raises(VectorFileError, match=r"no direction for resid_pre layer 3"):
        SteeringVector.from_gguf(path, tiny_llama, layer=3)


def test_model_hint_comes_from_the_architecture(tiny_llama, tiny_gpt2, tmp_path):
    assert model_hint_for(tiny_llama) == "llama" and model_hint_for(tiny_gpt2) == "gpt2"
    v = one_row(tiny_gpt2, 2)
    assert read_control_vector(v.to_gguf(tmp_path / "a.gguf")).model_hint == "gpt2"
    assert (
        read_control_vector(v.to_gguf(tmp_path / "b.gguf", model_hint="mine")).model_hint == "mine"
    )
    free = SteeringVector.from_tensor(torch.ones(64), layer=2)  # tied to no model
    with pytest.raises(SteeringError, match="model_hint"):
        free.to_gguf(tmp_path / "c.gguf")
    assert (
        read_control_vector(free.to_gguf(tmp_path / "c.gguf", model=tiny_llama)).model_hint
        == "llama"
    )


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), OSError("16 requested and 3 written")]
)
def test_a_failed_write_leaves_the_old_file_whole(tiny_llama, tmp_path, monkeypatch, error):
    # the second is how gguf-py's writer reports a full disk (numpy's tofile)
    path = one_row(tiny_llama, 2).to_gguf(tmp_path / "v.gguf")
    before = path.read_bytes()

    def boom(self, *a, **k):
        raise error

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(VectorFileError, match="Cannot write a control vector to") as info:
        one_row(tiny_llama, 3).to_gguf(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert (error.strerror or str(error)).lower() in str(info.value).lower()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.gguf"]


def test_writing_onto_a_full_disk_is_one_line_and_leaves_no_file(small_disk):
    big = SteeringVector.from_tensor(torch.randn(1, 40000), 2, "tiny-llama")  # 160 kB > 64 kB
    with pytest.raises(VectorFileError, match="Cannot write a control vector.*bytes free") as info:
        big.to_gguf(small_disk / "v.gguf")
    assert "\n" not in str(info.value)
    assert os.listdir(small_disk) == []


def test_writing_onto_an_existing_directory_is_refused_and_leaves_nothing(tiny_llama, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(VectorFileError, match="is a directory.*out/vector.gguf") as info:
        one_row(tiny_llama, 2).to_gguf(target)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == ["out"] and os.listdir(target) == []


# ---------------------------------------------------------------------- export errors


def test_multi_row_vectors_are_refused_with_the_fix(tiny_llama, tmp_path):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    with pytest.raises(SteeringError, match=r"has 5 rows.*mean\(skip_first=True\).*rows\(\[i\]\)"):
        v.to_gguf(tmp_path / "v.gguf")


def test_export_refuses_ambiguous_sets(tiny_llama, tiny_gpt2, tmp_path):
    a, b = one_row(tiny_llama, 2), one_row(tiny_llama, 2, pos="Joy")
    with pytest.raises(SteeringError, match=r"Two vectors at resid_pre layer 2.*v1 \+ v2"):
        write_control_vector([a, b], tmp_path / "x.gguf")
    with pytest.raises(SteeringError, match=r"vectors\[3\] holds a vector at resid_pre layer 2"):
        write_control_vector({3: a}, tmp_path / "x.gguf")
    with pytest.raises(SteeringError, match="No vectors"):
        write_control_vector([], tmp_path / "x.gguf")
    small = SteeringVector.from_tensor(torch.ones(32), layer=3, model_name="tiny-llama")
    with pytest.raises(SteeringError, match=r"different d_model \[32, 64\]"):
        write_control_vector([a, small], tmp_path / "x.gguf")
    with pytest.raises(SteeringError, match="d_model 32 but tiny-llama has d_model 64"):
        small.to_gguf(tmp_path / "x.gguf", model=tiny_llama)
    with pytest.raises(SteeringError, match="made for 'tiny-gpt2'"):
        one_row(tiny_gpt2, 2).to_gguf(tmp_path / "x.gguf", model=tiny_llama)
    assert not (tmp_path / "x.gguf").exists()


# ---------------------------------------------------------------------- import: other writers


def test_a_file_written_the_repeng_way_imports(tiny_llama, tmp_path):
    # repeng's export_gguf: GGUFWriter(path, "controlvector"), model_hint = HF model_type,
    # layer_count as uint32, direction.{i} = output of model.layers[i]
    rows = {1: np.linspace(-1, 1, 64, dtype=np.float32), 3: np.ones(64, dtype=np.float32)}
    path = raw_file(tmp_path / "r.gguf", {f"direction.{i}": r for i, r in rows.items()}, count=2)
    vecs = load_control_vector(path, tiny_llama)
    assert sorted(vecs) == [2, 4]
    assert np.array_equal(vecs[2].tensor[0].numpy(), rows[1])
    assert np.array_equal(vecs[4].tensor[0].numpy(), rows[3])
    p = vecs[2].provenance
    assert p["kind"] == "gguf" and p["direction"] == 1 and p["model_hint"] == "llama"
    assert vecs[2].model_name == "tiny-llama"  # tied to the model it was checked against
    assert read_control_vector(path).provenance is None
    assert "not written by actadd" in describe_file(path)


def test_a_row_stored_as_n_embd_by_1_is_one_dimensional_for_llama_cpp(tiny_llama, tmp_path):
    # ggml_n_dims ignores trailing 1s: ne = [64, 1] is 1-D for llama.cpp
    row = np.arange(64, dtype=np.float32)[None]
    path = raw_file(tmp_path / "r.gguf", {"direction.2": row})
    v = SteeringVector.from_gguf(path, tiny_llama)
    assert v.layer == 3 and np.array_equal(v.tensor.numpy(), row)


def test_real_repeng_reads_actadd_files_and_actadd_reads_repeng_files(
    tiny_llama, tmp_path, monkeypatch
):
    # repeng 0.4.0 names np.float_ (gone in NumPy 2) in annotations evaluated at import
    monkeypatch.setattr(np, "float_", np.float64, raising=False)
    repeng = pytest.importorskip("repeng", reason="repeng is installed by `make setup-interop`")
    vecs = {L: one_row(tiny_llama, L, coeff=L) for L in (2, 4)}
    ours = write_control_vector(vecs, tmp_path / "ours.gguf")
    cv = repeng.ControlVector.import_gguf(str(ours))
    assert cv.model_type == "llama" and sorted(cv.directions) == [1, 3]
    assert np.array_equal(np.asarray(cv.directions[1]), vecs[2].tensor[0].numpy())
    theirs = tmp_path / "theirs.gguf"
    repeng.ControlVector(
        model_type="llama", directions={i: np.asarray(d) * 2 for i, d in cv.directions.items()}
    ).export_gguf(str(theirs))
    back = load_control_vector(theirs, tiny_llama)
    assert sorted(back) == [2, 4]
    assert torch.equal(back[4].tensor, 2 * vecs[4].tensor)


# ---------------------------------------------------------------------- import errors


def rows64(n=64):
    return np.ones(n, dtype=np.float32)


@pytest.mark.parametrize(
    "tensors, kwargs, message",
    [
        ({"direction.1": rows64()}, {"hint": None}, r"no controlvector.model_hint.*repeng refuses"),
        ({"direction.1": rows64()}, {"arch": "llama"}, r"is a 'llama' file, not a control vector"),
        ({"direction.0": rows64()}, {}, r"direction.0 is not allowed"),
        ({"bias.1": rows64()}, {}, r"'bias.1' is not named direction.N"),
        ({"direction.x": rows64()}, {}, r"'direction.x' is not named direction.N"),
        ({"direction.1": rows64().astype(np.float16)}, {}, r"direction.1 is F16.*must be F32"),
        ({"direction.1": np.ones((2, 32), np.float32)}, {}, r"shape \[32, 2\].*one-dimensional"),
        ({"direction.1": rows64(), "direction.2": rows64(32)}, {}, r"direction.2 has 32 floats"),
        ({"direction.1": np.full(64, np.nan, np.float32)}, {}, r"NaN or inf"),
        ({}, {}, r"no direction tensors"),
    ],
    ids=[
        "no-hint",
        "model-file",
        "direction0",
        "other-tensor",
        "bad-index",
        "f16",
        "2d",
        "unequal",
        "nan",
        "empty",
    ],
)
def test_malformed_files_are_refused_with_the_reason(tmp_path, tensors, kwargs, message):
    path = raw_file(tmp_path / "bad.gguf", tensors, **kwargs)
    with pytest.raises(VectorFileError, match=message):
        read_control_vector(path)


def test_missing_and_non_gguf_files(tmp_path):
    with pytest.raises(VectorFileError, match="No control-vector file"):
        read_control_vector(tmp_path / "nope.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(VectorFileError, match="not a readable GGUF file"):
        read_control_vector(junk)
    bad_json = raw_file(
        tmp_path / "j.gguf", {"direction.1": rows64()}, extra={"actadd.provenance": "{not json"}
    )
    with pytest.raises(VectorFileError, match="not valid JSON"):
        read_control_vector(bad_json)


def _with_record(**changes):
    """An ``actadd.provenance`` record for one direction.1, with ``changes``."""
    return json.dumps({"format": "actadd.controlvector", "format_version": 1, **changes})


@pytest.mark.parametrize(
    "record, message",
    [
        (_with_record(vectors=[1, 2]), r"'vectors' is a JSON list, not an object"),
        (_with_record(vectors={"1": 5}), r"'vectors'\['1'\] is a JSON int, not an object"),
        (_with_record(vectors={"7": {}}), r"'vectors'\['7'\] names no direction of the file"),
        (_with_record(vectors={"x": {}}), r"'vectors'\['x'\] names no direction"),
        (
            _with_record(vectors={"1": {"provenance": [1]}}),
            r"'vectors'\['1'\]: 'provenance' is a JSON list, not an object",
        ),
        (
            _with_record(vectors={"1": {"model_name": 3}}),
            r"'vectors'\['1'\]: 'model_name' is 3",
        ),
        (_with_record(vectors={"1": {"layer": 5}}), r"says resid_pre layer 5, but direction.1"),
        (_with_record(model_name=["m"]), r"'model_name' is \['m'\], not a string or null"),
        (json.dumps([1, 2]), r"actadd.provenance is not an actadd record"),
    ],
    ids=[
        "vectors-list",
        "record-int",
        "no-such-direction",
        "bad-key",
        "provenance-list",
        "name-int",
        "layer-mismatch",
        "top-name-list",
        "record-list",
    ],
)
def test_a_provenance_of_the_wrong_shape_is_one_clear_line(tmp_path, record, message):
    path = raw_file(tmp_path / "p.gguf", {"direction.1": rows64()}, extra={KEY: record})
    for read in (read_control_vector, load_control_vector, describe_file):  # show reads it too
        with pytest.raises(VectorFileError, match=message) as info:
            read(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_sound_provenance_record_with_optional_fields_left_out_loads(tmp_path):
    record = _with_record(vectors={"1": {"provenance": {"kind": "pair", "coeff": "?"}}})
    path = raw_file(tmp_path / "p.gguf", {"direction.1": rows64()}, extra={KEY: record})
    assert load_control_vector(path)[2].provenance["kind"] == "pair"
    row = [ln for ln in describe_file(path).splitlines() if ln.split()[:2] == ["1", "2"]]
    assert row[0].split()[-1] == "pair"  # no coefficient shown


def test_import_checks_the_model(tiny_llama, tiny_gpt2, tmp_path):
    small = raw_file(tmp_path / "s.gguf", {"direction.1": rows64(32)})
    with pytest.raises(VectorFileError, match="n_embd 32 but tiny-llama has d_model 64"):
        load_control_vector(small, tiny_llama)
    past = raw_file(tmp_path / "p.gguf", {"direction.4": rows64()})  # resid_pre 5 of 4 blocks
    with pytest.raises(VectorFileError, match=r"direction.4 is past the last block.*1..3"):
        load_control_vector(past, tiny_llama)
    assert sorted(load_control_vector(past)) == [5]  # without a model there is nothing to check
    gpt = one_row(tiny_gpt2, 2).to_gguf(tmp_path / "g.gguf")
    with pytest.raises(SteeringError, match="made for 'tiny-gpt2'"):
        SteeringVector.from_gguf(gpt, tiny_llama)
    v = SteeringVector.from_gguf(gpt, tiny_llama, allow_other_model=True)
    assert v.model_name == "tiny-gpt2"


def test_show_lists_directions_layers_norms_and_labels(tiny_llama, tmp_path):
    vecs = [one_row(tiny_llama, 2, coeff=3), one_row(tiny_llama, 4)]
    text = describe_file(write_control_vector(vecs, tmp_path / "s.gguf"))
    lines = text.splitlines()
    assert "model_hint: llama" in lines[1] and "directions: 2" in lines[1]
    assert "for tiny-llama" in lines[2]
    row = [ln.split() for ln in lines if ln.strip().startswith("1 ")][0]
    assert row[:2] == ["1", "2"]  # direction.1 is resid_pre 2
    assert float(row[2]) == pytest.approx(float(vecs[0].norms()[0]), rel=1e-3)
    assert "mean[1:](Love − Hate ×3)" in text
    assert float(row[3]) == pytest.approx(vecs[0].relative_norm, rel=0.05)  # the × resid column
