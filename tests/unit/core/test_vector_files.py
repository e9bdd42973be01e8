"""Steering-vector files: checksums over the tensor data and the metadata, clear errors for
malformed metadata, and saves that leave nothing behind (a full disk included).

A vector file is a safetensors file whose JSON metadata (``"actadd"``) records how the
vector was made, since format version 2 the sha256 of the tensor bytes, and since format
version 3 the sha256 of the metadata itself.
"""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch

from actadd import SteeringVector, VectorFileError
from actadd.core.vector_files import FORMAT_VERSION, _metadata_sha256, _tensor_sha256
from actadd.errors import VectorFileWarning


@pytest.fixture(scope="module")
def vector() -> SteeringVector:
    gen = torch.Generator().manual_seed(0)
    return SteeringVector.from_tensor(torch.randn(3, 16, generator=gen), 2, "tiny-llama")


def _layout(path) -> tuple[dict, int]:
    """The safetensors header and the offset of the first data byte."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), 8 + n


def _overwrite(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _listing(directory) -> list[str]:
    return sorted(os.listdir(directory))  # hidden files included, unlike a shell glob


def test_saved_metadata_records_the_sha256_of_the_tensor_data(vector, tmp_path):
    import hashlib

    path = vector.save(tmp_path / "v.safetensors")
    header, start = _layout(path)
    meta = json.loads(header["__metadata__"]["actadd"])
    assert meta["format_version"] == FORMAT_VERSION == 3
    begin, end = header["vector"]["data_offsets"]
    data = path.read_bytes()[start + begin : start + end]
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert torch.equal(SteeringVector.load(path).tensor, vector.tensor)


def test_corrupted_data_bytes_are_refused_naming_the_file(vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    header, start = _layout(path)
    # two float32 maxima: finite values whose norm overflows to inf (what used to load)
    _overwrite(path, start + header["vector"]["data_offsets"][0], struct.pack("<2f", 3e38, 3e38))
    with pytest.raises(VectorFileError, match="sha256") as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)


def test_one_flipped_bit_in_the_data_is_refused(vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    header, start = _layout(path)
    offset = start + header["vector"]["data_offsets"][0] + 17
    byte = path.read_bytes()[offset]
    _overwrite(path, offset, bytes([byte ^ 0x01]))
    with pytest.raises(VectorFileError, match="corrupt"):
        SteeringVector.load(path)


def _write(path, tensor, meta) -> None:
    """A vector file with exactly this metadata (any JSON) and tensor."""
    from safetensors.torch import save_file

    save_file({"vector": tensor.contiguous()}, str(path), metadata={"actadd": json.dumps(meta)})


def _meta(vector, version: int, **changes) -> dict:
    """Sound metadata of ``vector`` in format ``version`` (1, 2 or 3), then ``changes``."""
    meta = {
        "format": "actadd.steering_vector",
        "format_version": version,
        "layer": 2,
        "model_name": "tiny-llama",
        "d_model": 16,
        "k": 3,
        "provenance": {"kind": "tensor"},
    }
    if version >= 2:
        meta |= {"dtype": "float32", "sha256": _tensor_sha256(vector.tensor)}
    meta |= changes
    meta = {key: value for key, value in meta.items() if value is not _DROP}
    if version >= 3:
        meta["metadata_sha256"] = _metadata_sha256(meta)
    return meta


_DROP = object()


def test_format_version_1_files_without_a_checksum_still_load_with_a_warning(vector, tmp_path):
    path = tmp_path / "old.safetensors"
    _write(path, vector.tensor, _meta(vector, 1))
    with pytest.warns(VectorFileWarning, match="format-1 .* no checksum"):
        assert torch.equal(SteeringVector.load(path).tensor, vector.tensor)


def test_a_format_1_file_with_a_flipped_data_bit_cannot_load_silently(vector, tmp_path):
    # format 1 stores no checksum, so the flip itself is undetectable: the load must say so
    path = tmp_path / "old.safetensors"
    _write(path, vector.tensor, _meta(vector, 1))
    header, start = _layout(path)
    offset = start + header["vector"]["data_offsets"][0] + 17
    _overwrite(path, offset, bytes([path.read_bytes()[offset] ^ 0x01]))
    with pytest.warns(VectorFileWarning, match="cannot be verified"):
        assert not torch.equal(SteeringVector.load(path).tensor, vector.tensor)


def test_a_format_1_file_whose_stored_sha256_does_not_match_is_refused(vector, tmp_path):
    path = tmp_path / "old.safetensors"
    _write(path, 2 * vector.tensor, _meta(vector, 1, sha256=_tensor_sha256(vector.tensor)))
    with pytest.raises(VectorFileError, match="does not match the sha256"):
        SteeringVector.load(path)


def test_format_version_2_files_load_with_their_tensor_checksum(vector, tmp_path):
    path = tmp_path / "v2.safetensors"
    _write(path, vector.tensor, _meta(vector, 2))
    assert SteeringVector.load(path).layer == 2  # no warning: warnings are errors here
    _write(path, 2 * vector.tensor, _meta(vector, 2))
    with pytest.raises(VectorFileError, match="tensor data does not match the sha256"):
        SteeringVector.load(path)


def test_metadata_edited_through_json_keeps_its_types_and_round_trips(tmp_path):
    # int keys become strings in JSON: the checksum is over what load() will read back
    v = SteeringVector.from_tensor(torch.ones(1, 4), 1, "m").with_label("x")
    v = SteeringVector(v.tensor, 1, "m", {"counts": {3: 1}, "coeff": 0.1})
    loaded = SteeringVector.load(v.save(tmp_path / "v.safetensors"))
    assert loaded.provenance == {"counts": {"3": 1}, "coeff": 0.1}


@pytest.mark.parametrize(
    ("field", "old", "new"),
    [
        ("layer", b'layer\\": 2', b'layer\\": 3'),  # the example
        ("model", b"tiny-llama", b"tiny-llamb"),
        ("provenance", b'kind\\": \\"tensor', b'kind\\": \\"tensos'),
        ("its own checksum", b'metadata_sha256\\": \\"', None),
    ],
)
def test_a_flipped_byte_in_the_header_metadata_is_refused(vector, tmp_path, field, old, new):
    path = vector.save(tmp_path / "v.safetensors")
    raw = path.read_bytes()
    if new is None:  # the first hex digit of the recorded metadata sha256
        i = raw.index(old) + len(old)
        new, old = old + bytes([raw[i] ^ 0x01]), old + raw[i : i + 1]
    assert raw.count(old) == 1 and len(old) == len(new)
    path.write_bytes(raw.replace(old, new))
    with pytest.raises(VectorFileError, match="metadata .* does not match the sha256") as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"k": _DROP}, "'k' is missing; it must be an int >= 1"),
        ({"layer": "two"}, "'layer' is 'two'; it must be an int >= 0"),
        ({"layer": -1}, "'layer' is -1; it must be an int >= 0"),
        ({"d_model": True}, "'d_model' is True"),
        ({"provenance": [1, 2]}, "'provenance' is a list; it must be a JSON object"),
        ({"model_name": 5}, "'model_name' is 5; it must be a string or null"),
        ({"format_version": "3"}, "format version '3' is not one this actadd reads"),
    ],
)
def test_malformed_metadata_is_one_clear_line(vector, tmp_path, version, changes, message):
    path = tmp_path / "bad.safetensors"
    _write(path, vector.tensor, _meta(vector, version, **changes))
    with pytest.raises(VectorFileError, match=message) as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("meta", [[1, 2], "text", 3, None])
def test_metadata_that_is_not_a_json_object_is_one_clear_line(vector, tmp_path, meta):
    path = tmp_path / "bad.safetensors"
    _write(path, vector.tensor, meta)
    with pytest.raises(VectorFileError, match="not an actadd steering vector") as info:
        SteeringVector.load(path)
    assert "\n" not in str(info.value)


def test_a_file_from_a_newer_format_is_refused(vector, tmp_path):
    from safetensors.torch import save_file

    meta = {"format": "actadd.steering_vector", "format_version": 99, "layer": 2, "k": 3}
    meta["d_model"] = 16
    path = tmp_path / "future.safetensors"
    save_file({"vector": vector.tensor}, str(path), metadata={"actadd": json.dumps(meta)})
    with pytest.raises(VectorFileError, match="format version 99"):
        SteeringVector.load(path)


def test_saving_onto_an_existing_directory_is_refused_and_leaves_nothing(vector, tmp_path):
    target = tmp_path / "vectors"
    target.mkdir()
    with pytest.raises(VectorFileError, match="is a directory") as info:
        vector.save(target)
    assert str(target) in str(info.value)
    assert _listing(tmp_path) == ["vectors"]
    assert _listing(target) == []


def test_saving_under_a_regular_file_is_a_clear_error(vector, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(VectorFileError, match="Cannot write a steering vector"):
        vector.save(tmp_path / "afile" / "v.safetensors")
    assert _listing(tmp_path) == ["afile"]


@pytest.mark.parametrize("error", ["OSError", "SafetensorError"])
def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(
    vector, tmp_path, monkeypatch, error
):
    import safetensors
    import safetensors.torch

    path = vector.save(tmp_path / "v.safetensors")
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 10)
        if error == "OSError":
            raise OSError(28, "No space left on device")
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(VectorFileError, match="Cannot write a steering vector .*No space") as info:
        (2 * vector).save(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["v.safetensors"]


def test_saving_onto_a_full_disk_is_one_line_and_leaves_no_file(small_disk):
    big = SteeringVector.from_tensor(torch.randn(40, 576), 2, "m")  # 92 kB > the 64 kB disk
    with pytest.raises(VectorFileError, match="No space left on device.*bytes free") as info:
        big.save(small_disk / "v.safetensors")
    assert "\n" not in str(info.value)
    assert _listing(small_disk) == []


def test_saved_file_is_readable_by_others(vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    assert path.stat().st_mode & 0o777 == 0o644
