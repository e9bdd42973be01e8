"""Does a committed run come from the revision it names? (:func:`provenance_problems`)

A run's ``env.json`` names the commit it ran at (``git_revision``) and, since runs record it,
the checkout the code ran from (``checkout``: path, HEAD, dirty, and the tree ids of
``actadd/`` and ``experiments/`` as they were on disk; :func:`actadd.lab.runinfo.checkout_info`).
Two checks, each able to fail:

- **the config**: the experiment's TOML at that revision (``experiments/<run name>.toml``,
  ``git show <rev>:<path>``), read through its kind, is the spec the run's ``config.json``
  holds. A run made from an edited or another config does not pass;
- **the code** (runs that record a checkout): the checkout was clean, its HEAD is the named
  revision, and each recorded tree id equals ``git rev-parse <rev>:<folder>``. A run made
  from uncommitted code, or relabelled with another revision, does not pass.

Nothing here runs a model. The repository is the one holding ``results/`` (or ``repo``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from actadd.lab.retarget import MODELS_KEY, RULE_KEY, for_model

__all__ = ["provenance_problems"]


def _git(repo: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _spec(config: dict[str, Any]) -> dict[str, Any]:
    """A config as its kind saves it (parsed, then saved again): two configs are the same
    experiment when these are equal, however each was spelled."""
    from actadd.lab.runner import kind_of

    kind = kind_of(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old key names are still the spec
        spec = {k: v for k, v in config.items() if k not in ("kind", RULE_KEY, MODELS_KEY)}
        saved = kind.saved_config(kind.parse(spec))
    # a run on another model also records the rule that mapped its layers
    return {**saved, RULE_KEY: config[RULE_KEY]} if RULE_KEY in config else saved


def _config_at(repo: Path, revision: str, name: str) -> tuple[dict[str, Any] | None, str]:
    """The experiment config ``name`` as it was at ``revision`` (read like ``actadd run``
    reads it), or None and why not."""
    from actadd.lab.runner import read_config

    path = f"experiments/{name}.toml"
    text = _git(repo, "show", f"{revision}:{path}")
    if text is None:
        return None, f"{path} does not exist at {revision[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / f"{name}.toml"
        file.write_text(text)
        return read_config(file), path


def _resumed_elsewhere(run: Path, revision: str) -> list[str]:
    """A run resumed at another revision than env.json's: its earlier starts (the manifest's
    ``compute``) computed parts with other code."""
    try:
        compute = json.loads((run / "tables.json").read_text()).get("compute") or []
    except (OSError, ValueError, AttributeError):
        return []  # actadd verify reports an unreadable manifest
    others = sorted(
        {str(s.get("revision")) for s in compute if isinstance(s, dict) and s.get("revision")}
        - {revision}
    )
    if not others:
        return []
    return [
        f"{run.name}: resumed across revisions: earlier starts ran "
        f"{', '.join(o[:12] for o in others)}, env.json names {revision[:12]} (rerun it whole)"
    ]


def provenance_problems(run: str | Path, repo: str | Path | None = None) -> list[str]:
    """Why the run directory ``run`` does not come from the revision its ``env.json`` names
    (empty when it does): see the module. ``repo`` is the git checkout to look the revision
    up in (default: the one holding ``run``)."""
    from actadd.errors import ActAddError

    run = Path(run)
    repo = Path(repo) if repo is not None else run
    name = run.name
    try:
        env = json.loads((run / "env.json").read_text())
        stored = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"{name}: cannot read env.json / config.json ({exc})"]
    revision = env.get("git_revision") or ""
    if not revision:
        return [f"{name}: env.json names no git revision"]
    if revision.endswith("+dirty"):
        return [f"{name}: made from a dirty tree ({revision})"]
    if _git(repo, "cat-file", "-e", f"{revision}^{{commit}}") is None:
        return [f"{name}: revision {revision[:12]} is not a commit of this repository"]
    problems = []
    config, where = _config_at(repo, revision, stored.get("name") or name)
    if config is not None and RULE_KEY in stored:
        # a run on another model (``--model``): the revision's config carried over by the
        # rule it recorded, which must be the rule that revision applies
        try:
            config = for_model(config, stored.get("model"), where)
        except Exception as exc:  # noqa: BLE001 - any refusal is a provenance problem
            config, where = None, f"{where} does not carry over to {stored.get('model')} ({exc})"
    if config is None:
        problems.append(f"{name}: {where}")
    else:
        try:
            same = _spec(config) == _spec(stored)
        except ActAddError as exc:
            same, where = False, f"{where} ({exc})"
        if not same:
            problems.append(
                f"{name}: its config.json is not {where} at {revision[:12]}: the run was not "
                "made from the config that revision holds"
            )
    problems += _resumed_elsewhere(run, revision)
    checkout = env.get("checkout")
    if checkout is None:
        return problems  # made before runs recorded their checkout: the config check only
    if checkout.get("head") != revision:
        problems.append(
            f"{name}: env.json names {revision[:12]} but the checkout's HEAD was "
            f"{str(checkout.get('head'))[:12]}"
        )
    if checkout.get("dirty"):
        problems.append(f"{name}: the checkout ({checkout.get('path')}) had uncommitted changes")
    for folder, tree in (checkout.get("trees") or {}).items():
        at_rev = _git(repo, "rev-parse", f"{revision}:{folder}")
        at_rev = at_rev.strip() if at_rev else None
        if tree != at_rev:
            problems.append(
                f"{name}: {folder}/ as the run found it (tree {str(tree)[:12]}) is not "
                f"{folder}/ at {revision[:12]} (tree {str(at_rev)[:12]})"
            )
    return problems
