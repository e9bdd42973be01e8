"""``actadd vector export | import | show`` on tiny-llama vectors."""

from __future__ import annotations

import json
import os

import gguf
import numpy as np
import pytest
import torch

from actadd import SteeringVector
from actadd.cli import main


@pytest.fixture
def saved(tiny_llama, tmp_path):
    """Per-position Love−Hate vectors at resid_pre 2 and 3, saved as actadd .safetensors."""
    out = {}
    for layer in (2, 3):
        v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=layer, coeff=2)
        out[layer] = (v, v.save(tmp_path / f"L{layer}.safetensors"))
    return out


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_export_reduces_and_writes_one_file_per_set(saved, tmp_path, capsys):
    out = tmp_path / "love.gguf"
    code, stdout, _ = run(
        capsys,
        "vector",
        "export",
        saved[2][1],
        saved[3][1],
        "-o",
        out,
        "--reduce",
        "mean-skip-first",
        "--scale",
        "0.5",
    )
    assert code == 0 and "resid_pre 2 -> direction.1" in stdout
    r = gguf.GGUFReader(str(out))
    assert [t.name for t in r.tensors] == ["direction.1", "direction.2"]
    want = (0.5 * saved[3][0].mean(skip_first=True)).tensor[0].numpy()
    assert np.array_equal(np.asarray(r.tensors[1].data), want)


def test_export_with_one_row(saved, tmp_path, capsys):
    out = tmp_path / "row.gguf"
    assert run(capsys, "vector", "export", saved[2][1], "-o", out, "--row", "2")[0] == 0
    data = np.asarray(gguf.GGUFReader(str(out)).tensors[0].data)
    assert np.array_equal(data, saved[2][0].tensor[2].numpy())


def test_export_errors_say_what_to_do(saved, tiny_llama, tmp_path, capsys):
    code, _, err = run(capsys, "vector", "export", saved[2][1], "-o", tmp_path / "x.gguf")
    assert code == 2 and "has 5 rows" in err and "--reduce mean-skip-first" in err
    code, _, err = run(
        capsys, "vector", "export", saved[2][1], "-o", tmp_path / "x.gguf", "--row", "9"
    )
    assert code == 2 and "--row 9 is outside 0..4" in err
    v1 = SteeringVector.from_pair(tiny_llama, "a", "b", layer=1)
    p1 = v1.save(tmp_path / "L1.safetensors")
    code, _, err = run(
        capsys, "vector", "export", p1, "-o", tmp_path / "x.gguf", "--reduce", "mean"
    )
    assert code == 2 and "resid_pre layer 1 cannot be written" in err
    assert not (tmp_path / "x.gguf").exists()


def test_import_round_trips_to_safetensors(saved, tmp_path, capsys):
    gg = tmp_path / "set.gguf"
    run(capsys, "vector", "export", saved[2][1], saved[3][1], "-o", gg, "--reduce", "mean")
    code, stdout, _ = run(
        capsys, "vector", "import", gg, "-o", tmp_path / "back", "--model", "tiny-llama"
    )
    assert code == 0 and stdout.count("wrote") == 2
    back = SteeringVector.load(tmp_path / "back" / "resid_pre_03.safetensors")
    assert back.layer == 3 and back.model_name == "tiny-llama"
    assert torch.equal(back.tensor, saved[3][0].mean().tensor)
    one = tmp_path / "one.safetensors"
    assert run(capsys, "vector", "import", gg, "-o", one, "--layer", "2")[0] == 0
    assert SteeringVector.load(one).layer == 2
    code, _, err = run(capsys, "vector", "import", gg, "-o", tmp_path / "two.safetensors")
    assert code == 2 and "holds 2 directions" in err and "--layer" in err
    code, _, err = run(capsys, "vector", "import", gg, "-o", one, "--layer", "7")
    assert code == 2 and "no direction for resid_pre layer 7" in err


def test_show_describes_both_file_kinds(saved, tmp_path, capsys):
    gg = tmp_path / "v.gguf"
    run(capsys, "vector", "export", saved[2][1], "-o", gg, "--reduce", "mean-skip-first")
    code, stdout, _ = run(capsys, "vector", "show", gg, saved[3][1])
    assert code == 0
    assert "model_hint: llama" in stdout and "mean[1:](Love − Hate ×2)" in stdout
    assert "SteeringVector(Love − Hate ×2 @L3, 5 rows, norm " in stdout and "× resid" in stdout
    code, _, err = run(capsys, "vector", "show", tmp_path / "missing.gguf")
    assert code == 2 and err.endswith("missing.gguf: no such file.\n")


def one_line(err: str) -> str:
    """The CLI's error: exactly one ``actadd: error:`` line, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actadd: error: "), err
    return lines[0]


def test_export_onto_an_existing_directory_is_one_line(saved, tmp_path, capsys):
    target = tmp_path / "out"
    target.mkdir()
    argv = ["vector", "export", saved[2][1], "-o", target, "--reduce", "mean"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "is a directory" in one_line(err)
    assert os.listdir(target) == []


def test_export_onto_a_full_disk_is_one_line_and_leaves_no_file(tmp_path, small_disk, capsys):
    big = SteeringVector.from_tensor(torch.randn(1, 40000), 2, "tiny-llama").save(
        tmp_path / "big.safetensors"
    )
    code, _, err = run(capsys, "vector", "export", big, "-o", small_disk / "v.gguf")
    assert code == 2 and "Cannot write a control vector" in one_line(err)
    assert os.listdir(small_disk) == []


def test_import_onto_a_full_disk_is_one_line_and_leaves_no_file(tmp_path, small_disk, capsys):
    rows = {f"direction.{n}": np.ones(10000, np.float32) for n in (1, 2)}  # 40 kB each
    writer = gguf.GGUFWriter(str(tmp_path / "two.gguf"), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    for name, row in rows.items():
        writer.add_tensor(name, row)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # the first file fits on the 64 kB disk, the second does not: neither is kept
    code, _, err = run(capsys, "vector", "import", tmp_path / "two.gguf", "-o", small_disk)
    assert code == 2 and "No space left on device" in one_line(err)
    assert os.listdir(small_disk) == []


def test_an_import_that_fails_half_way_keeps_no_file_it_created(tmp_path, monkeypatch, capsys):
    import safetensors.torch

    gg = tmp_path / "set.gguf"
    vecs = [SteeringVector.from_tensor(torch.ones(1, 8) * i, i, "m") for i in (2, 3, 4)]
    from actadd.interop.gguf import write_control_vector

    write_control_vector(vecs, gg, model_hint="llama")
    out = tmp_path / "back"
    out.mkdir()
    (out / "resid_pre_02.safetensors").write_bytes(b"kept")  # not this import's to remove
    real, calls = safetensors.torch.save_file, []

    def full_on_the_third(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_on_the_third)
    code, _, err = run(capsys, "vector", "import", gg, "-o", out)
    assert code == 2 and "resid_pre_04.safetensors: No space left" in one_line(err)
    # resid_pre_02 was overwritten (a whole file), resid_pre_03 was created and is removed
    assert sorted(os.listdir(out)) == ["resid_pre_02.safetensors"]
    assert SteeringVector.load(out / "resid_pre_02.safetensors").layer == 2


def test_show_on_a_provenance_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    record = {"format": "actadd.controlvector", "vectors": [1, 2]}
    writer.add_string("actadd.provenance", json.dumps(record))
    writer.add_tensor("direction.1", np.ones(8, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for argv in (["show", path], ["import", path, "-o", tmp_path / "v.safetensors"]):
        code, _, err = run(capsys, "vector", *argv)
        assert code == 2 and "'vectors' is a JSON list" in one_line(err)
    assert not (tmp_path / "v.safetensors").exists()


def test_export_bakes_a_scale_or_a_relative_size(saved, tmp_path, capsys):
    from actadd.interop.gguf import load_control_vector

    v, path = saved[2]
    base = v.mean(skip_first=True)
    half = tmp_path / "half.gguf"
    code, stdout, _ = run(capsys, "vector", "export", path, "-o", half, "--reduce",
                          "mean-skip-first", "--scale", "0.5")  # fmt: skip
    assert code == 0 and "× resid" in stdout
    assert torch.allclose(load_control_vector(half)[2].tensor, 0.5 * base.tensor)
    rel = tmp_path / "rel.gguf"
    code, stdout, _ = run(capsys, "vector", "export", path, "-o", rel, "--reduce",
                          "mean-skip-first", "--relative", "0.1")  # fmt: skip
    back = load_control_vector(rel)[2]
    assert code == 0 and back.norm() == pytest.approx(0.1 * v.resid_norm, rel=1e-5)
    assert back.relative_norm == pytest.approx(0.1, rel=1e-5) and "= 0.1× resid" in stdout
    with pytest.raises(SystemExit):  # argparse: one or the other
        run(capsys, "vector", "export", path, "-o", rel, "--scale", "2", "--relative", "0.1")
    assert "--relative: not allowed with argument --scale" in capsys.readouterr().err


def test_relative_export_of_a_file_without_a_residual_norm_asks_for_the_model(
    tiny_llama, tmp_path, capsys
):
    old = SteeringVector.from_tensor(torch.ones(1, 64), 2, "tiny-llama").save(
        tmp_path / "o.safetensors"
    )
    out = tmp_path / "o.gguf"
    code, _, err = run(capsys, "vector", "export", old, "-o", out, "--relative", "0.1")
    assert code == 2 and "records no typical residual norm" in err and "--model" in err
    assert not out.exists()
    code, stdout, _ = run(capsys, "vector", "show", old)
    assert code == 0 and "no typical residual norm recorded" in stdout and "--model NAME" in stdout
    code, stdout, _ = run(capsys, "vector", "show", old, "--model", "tiny-llama")
    assert code == 0 and "× resid" in stdout and "no typical residual norm" not in stdout
