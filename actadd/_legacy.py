"""Old import paths, kept for one release: ``import actadd.steer`` still works, warns, and
gives the module at its new home (``actadd.core.steering``).

The package was reorganised into tiers (runtime, models, core, interop, lab, sweeps, studies,
plots, ui, cli). A meta-path finder maps each old module name to its new module, so an old
import returns the *same* module object (no copies, no second set of classes) after one
``DeprecationWarning`` that names the new path. Nothing inside the repository imports an old
path (the tests run with warnings as errors). Remove this module in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: old module -> its new home
MOVED: dict[str, str] = {
    "actadd.backends": "actadd.runtime.backends",
    "actadd.hooks": "actadd.runtime.hooks",
    "actadd.tokens": "actadd.runtime.tokens",
    "actadd.forward": "actadd.runtime.forward",
    "actadd.fastpath": "actadd.runtime.fast",
    "actadd.runtime.fastpath": "actadd.runtime.fast",
    "actadd.vectors": "actadd.core.vectors",
    "actadd.placement": "actadd.core.placement",
    "actadd.steer": "actadd.core.steering",
    "actadd.ablation": "actadd.core.ablation",
    "actadd.methods": "actadd.core.methods",
    "actadd.datasets": "actadd.core.datasets",
    "actadd.chat": "actadd.core.chat",
    "actadd.prefix": "actadd.core.prefix",
    "actadd.generation": "actadd.core.generation",
    "actadd.metrics": "actadd.core.metrics",
    "actadd.analysis.diagnostics": "actadd.core.diagnostics",
    "actadd.gguf_vectors": "actadd.interop.gguf",
    "actadd.llamacpp": "actadd.interop.llamacpp",
    "actadd.runs": "actadd.lab.runs",
    "actadd.runinfo": "actadd.lab.runinfo",
    "actadd.stats": "actadd.lab.stats",
    "actadd.claims": "actadd.lab.claims",
    "actadd.report": "actadd.lab.report",
    "actadd.experiments": "actadd.lab.runner",
    "actadd.kinds": "actadd.lab.kinds",
    "actadd.cli_vector": "actadd.cli.vector",
    "actadd.kinds.token_injection": "actadd.studies.token_injection.kind",
    "actadd.analysis.conditions": "actadd.studies.token_injection.conditions",
    "actadd.analysis.comparison": "actadd.studies.token_injection.comparison",
    "actadd.analysis.specificity": "actadd.studies.token_injection.specificity",
    "actadd.analysis.topic_rate": "actadd.studies.token_injection.topic_rate",
    "actadd.analysis.claims_v2": "actadd.studies.token_injection.claims",
    "actadd.analysis.summaries": "actadd.studies.token_injection.summaries",
    "actadd.plots.token_injection": "actadd.studies.token_injection.figures",
    "actadd.analysis": "actadd.studies.token_injection",
    "actadd.kinds.pad_confound": "actadd.studies.pad_confound.kind",
    "actadd.analysis.pads": "actadd.studies.pad_confound.analysis",
    "actadd.plots.pads": "actadd.studies.pad_confound.figures",
    "actadd.kinds.perplexity": "actadd.studies.perplexity.kind",
    "actadd.plots.perplexity": "actadd.studies.perplexity.figures",
    "actadd.kinds.capability": "actadd.studies.capability.kind",
    "actadd.plots.capability": "actadd.studies.capability.figures",
    "actadd.kinds.sweep": "actadd.studies.sweep.kind",
    "actadd.kinds.word_count": "actadd.studies.paper.word_count",
    "actadd.kinds.sentiment": "actadd.studies.paper.sentiment",
    "actadd.kinds.failures": "actadd.studies.paper.failures",
    "actadd.kinds.alignment": "actadd.studies.paper.alignment",
    "actadd.kinds.demo": "actadd.studies.paper.demo",
    "actadd.plots.paper": "actadd.studies.paper.figures",
}


#: old names that were packages: their submodules moved to different places, so the old name
#: gets a small forwarding package instead of the new module itself
OLD_PACKAGES = ("actadd.analysis", "actadd.kinds")


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        target = importlib.import_module(self.new)
        if spec.name not in OLD_PACKAGES:
            return target  # the same module object: one set of classes and functions
        forward = types.ModuleType(spec.name, target.__doc__)
        forward.__path__ = []  # a package, so old submodule names resolve through MOVED
        forward.__getattr__ = lambda name: getattr(target, name)
        forward.__all__ = list(getattr(target, "__all__", ()))
        return forward

    def exec_module(self, module) -> None:
        return None


class _LegacyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(
            f"{fullname} moved to {new}; the old path goes in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``import actadd`` does this)."""
    if any(isinstance(f, _LegacyFinder) for f in sys.meta_path):
        return
    # right after the path finder: before any editable-install finder, which would otherwise
    # find an old module file in another checkout of actadd
    at = next(
        (i + 1 for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
        len(sys.meta_path),
    )
    sys.meta_path.insert(at, _LegacyFinder())
