"""The documentation's generated configuration reference (``docs/hooks/config_reference.py``):
every key of every experiment config is in it with a meaning, every config class is covered,
and a missing or stale meaning stops the build."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_reference():
    path = ROOT / "docs" / "hooks" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("actadd_docs_config_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ref = load_reference()


@pytest.fixture(scope="module")
def rendered() -> str:
    return ref.render()


def sections(text: str) -> dict[str, str]:
    """The reference's sections by anchor."""
    parts = re.split(r"^### .*\{#([\w-]+)\}$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_key_of_every_experiment_config_is_in_the_reference(rendered):
    by_anchor = sections(rendered)
    classes = ref.toml_configs()
    assert len(classes) >= 15, [c.__name__ for c in classes]  # the kinds and their tables
    for cls in classes:
        text = by_anchor[ref.anchor(cls)]
        for key in cls.keys():
            row = re.search(rf"^\| `{key}` \|(.*)\|(.*)\|(.*)\|$", text, flags=re.M)
            assert row, f"{cls.__name__}: key {key!r} missing"
            assert row.group(3).strip(), f"{cls.__name__}: key {key!r} has no meaning"
        # every field is a key of the table, or built from the keys of a flat table (a
        # class that defines its own keys(): PadPair's pair is positive, negative, label)
        for f in fields(cls):
            if f.init and f.name not in cls.keys():
                assert any("keys" in vars(c) for c in cls.__mro__[:-1] if c.__name__ != "Config"), (
                    f"{cls.__name__}.{f.name} is neither a key nor built from the table's keys"
                )


def test_the_reference_shows_types_and_defaults(rendered):
    sweep = sections(rendered)["cfg-sweeps-spec-sweepspec"]
    assert "| `aligns` | list[str] | <code>[&quot;front&quot;]</code> |" in sweep
    assert "| `name` | str | *required* |" in sweep
    assert "[GenerationSpec](#cfg-sweeps-generation_spec-generationspec)" in sweep
    assert "`pads` (now `equalize`)" in sweep
    # every kind is listed with its config
    from actadd.lab.kinds import KIND_MODULES

    for kind in KIND_MODULES:
        assert f"| `{kind}` | [`" in rendered


def test_every_config_class_of_the_package_is_covered():
    assert ref.uncovered(ROOT / "actadd") == []


def test_a_config_class_nobody_covers_is_caught(tmp_path):
    pkg = tmp_path / "actadd"
    (pkg / "studies").mkdir(parents=True)
    (pkg / "studies" / "new_study.py").write_text(
        "from dataclasses import dataclass\nfrom actadd.config import Config\n\n"
        "class Mixin(Config):\n    pass\n\n"  # a base, not a config: not counted
        "@dataclass(frozen=True)\nclass NewConfig(Mixin):\n    x: int = 0\n\n"
        "@dataclass(frozen=True)\nclass NewTable(NewConfig):\n    y: int = 0\n"
    )
    assert ref.uncovered(pkg) == ["actadd.studies.new_study.NewConfig",
                                  "actadd.studies.new_study.NewTable"]  # fmt: skip


def test_a_key_without_a_meaning_stops_the_build():
    meanings = ref.load_meanings()
    del meanings["actadd.sweeps.spec.SweepSpec"]["target_words"]
    with pytest.raises(ref.ReferenceError, match="SweepSpec: key 'target_words' has no meaning"):
        ref.render(meanings)


def test_a_meaning_for_a_key_that_is_gone_stops_the_build():
    meanings = ref.load_meanings()
    meanings["actadd.sweeps.generation_spec.GenerationSpec"]["n_sample"] = "a typo"
    with pytest.raises(ref.ReferenceError, match=r"does not have: \['n_sample'\]"):
        ref.render(meanings)
    meanings = ref.load_meanings()
    meanings["actadd.studies.gone.OldConfig"] = {"x": "y"}
    with pytest.raises(ref.ReferenceError, match="OldConfig"):
        ref.render(meanings)


def test_the_marker_is_replaced_on_the_configuration_page(rendered):
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert ref.MARKER in page
    out = ref.on_page_markdown(page, None, None, None)
    assert ref.MARKER not in out and rendered in out


def test_sphinx_roles_become_code():
    assert (
        ref.rst_to_md(":class:`~actadd.config.Config` and ``x``")
        == "`actadd.config.Config` and `x`"
    )
    assert ref.rst_to_md(":meth:`Sampling.checked <actadd.core.sampling.Sampling.checked>`") == (
        "`Sampling.checked`"
    )
