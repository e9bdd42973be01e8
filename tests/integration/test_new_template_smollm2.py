"""``actadd new sweep``'s template passes the plan step on SmolLM2 (layers in range, single-token
words, texts within the context), as written and with ``--quick``: it runs as written (a full
run is about three minutes on two cores, so it is not repeated here)."""

from __future__ import annotations

from actadd.cli.new import write_template
from actadd.lab.runner import read_config
from actadd.sweeps.spec import SweepSpec


def test_the_sweep_template_validates_on_smollm2(smollm2, tmp_path):
    path = write_template("sweep", tmp_path / "my_sweep.toml")
    for quick in (False, True):
        SweepSpec.from_dict(read_config(path, quick=quick)).validate(smollm2)
