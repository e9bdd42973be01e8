"""``actadd new sweep``: the template is written, reads as a sweep spec, and refuses to
overwrite or to write a non-TOML file. (It validates against SmolLM2 in
``tests/integration/test_new_template_smollm2.py``.)"""

from __future__ import annotations

import re

import pytest

from actadd.cli import main
from actadd.cli.new import SWEEP_TEMPLATE, write_template
from actadd.config import PAIR_KEYS, Pair, read_toml
from actadd.errors import ConfigError
from actadd.lab.runner import read_config
from actadd.sweeps.spec import GenerationSpec, SweepSpec


def test_new_sweep_writes_a_template_that_reads_as_a_sweep(tmp_path, capsys):
    path = tmp_path / "cats.toml"
    assert main(["new", "sweep", str(path)]) == 0
    assert f"actadd sweep {path}" in capsys.readouterr().out
    assert read_toml(path)["kind"] == "sweep"
    spec = SweepSpec.from_dict(read_config(path))
    assert spec.pairs == (Pair("Love", "Hate"),)
    assert spec.layer_list(30) == [2, 6] and spec.coeffs == (1.0, 4.0)
    assert spec.target_words == "love" and spec.generation.topic_words == "love"
    quick = SweepSpec.from_dict(read_config(path, quick=True))
    assert quick.layer_list(30) == [2] and quick.generation.n_samples == 2


def test_the_template_names_the_keys_a_first_sweep_needs():
    named = set(re.findall(r"^#? ?(\w+) = ", SWEEP_TEMPLATE, flags=re.M))
    named |= set(re.findall(r"^\[+(\w+)\]+", SWEEP_TEMPLATE, flags=re.M))
    grid = {"name", "model", "layers", "coeffs", "aligns", "equalize", "target_words", "prompts"}
    more = {"neutral_texts", "pairs", "generation", "confirmatory"}
    assert grid | more <= named
    # and no key a sweep would refuse (the pair's and [generation]'s keys are theirs)
    allowed = {*SweepSpec.keys(), *GenerationSpec.keys(), *PAIR_KEYS, "kind", "quick"}
    assert named <= allowed, named - allowed


def test_new_refuses_to_overwrite_and_wrong_suffixes(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text("keep me")
    assert main(["new", "sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "exists; pass --force" in err and err.count("\n") == 1
    assert path.read_text() == "keep me"
    write_template("sweep", path, force=True)
    assert 'kind = "sweep"' in path.read_text()
    with pytest.raises(ConfigError, match="ends in .toml"):
        write_template("sweep", tmp_path / "s.txt")
    with pytest.raises(ConfigError, match="no such directory"):
        write_template("sweep", tmp_path / "nowhere" / "s.toml")
    assert not (tmp_path / "s.txt").exists()
