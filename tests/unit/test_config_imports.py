"""Config modules are pure data: importing one imports neither torch nor TransformerLens, so a
config is read and checked in well under a second, before any model library loads.

Each module is imported in a fresh interpreter (``sys.modules`` of this one already holds
torch). Every module a config is defined in is listed in ``CONFIG_MODULES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: every module a config is defined in
CONFIG_MODULES = [
    "actadd.config",
    "actadd.core.align",
    "actadd.core.sampling",
    "actadd.sweeps.spec",
    "actadd.sweeps.generation_spec",
    "actadd.sweeps.words",
    "actadd.studies.written",
    "actadd.studies.capability.config",
    "actadd.studies.perplexity.config",
    "actadd.studies.paper.config",
    "actadd.studies.pad_confound.config",
    "actadd.studies.token_injection.settings",
    "actadd.studies.token_injection.config",
    # what checks a config before torch loads: the checks, the --model rule, the model names
    "actadd.cli.preflight",
    "actadd.cli.coeffs",
    "actadd.sweeps.coeff_plan",
    "actadd.sweeps.coeff_table",
    "actadd.lab.retarget",
    "actadd.models.names",
]
HEAVY = ("torch", "transformer_lens")

CHECK = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps([m for m in sys.argv[2:] if m in sys.modules]))
"""


def heavy_imports(module: str, *path: Path) -> list[str]:
    """The modules of :data:`HEAVY` that importing ``module`` loads, in a fresh interpreter
    (``path``: folders searched before the repository)."""
    pythonpath = os.pathsep.join(map(str, (*path, ROOT)))
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, module, *HEAVY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("module", CONFIG_MODULES)
def test_a_config_module_imports_no_torch(module):
    assert heavy_imports(module) == [], f"importing {module} imports a model library"


def test_the_check_catches_a_planted_torch_import(tmp_path):
    # a config module that reaches for torch at import, as sweeps/spec.py once did
    (tmp_path / "planted_config.py").write_text("import actadd.config\nimport torch  # noqa\n")
    assert heavy_imports("planted_config", tmp_path) == ["torch"]
