"""actadd: activation-addition steering on TransformerLens.

One import gives the names a researcher uses, grouped by the tier that defines them:

- **errors** (:mod:`actadd.errors`): :class:`ActAddError`, :class:`ConfigError`,
  :class:`ModelLoadError`, :class:`SteeringError`, :class:`VectorFileError`,
  :class:`ChatTemplateError`;
- **config** (:mod:`actadd.config`): :class:`Pair`, the one prompt-pair type;
- **models** (:mod:`actadd.models`): :func:`load_model`;
- **core: vectors and steering** (:mod:`actadd.core`): :class:`SteeringVector`,
  :func:`steering` / :class:`Steering`, :class:`Align` (torch-free), :class:`Placement`,
  :class:`Ablation`, :func:`ablate_then_add`;
- **core: generation**: :func:`generate`, :func:`compare`, and from the torch-free
  :mod:`actadd.core.sampling`: :class:`Sampling`, :data:`GREEDY`, :data:`PAPER_SAMPLING`;
- **core: methods, datasets and chat**: :func:`dataset_vectors` (CAA, PCA),
  :func:`with_norm`, :func:`load_pairs`, :func:`render_prompt`, :func:`render_pair`,
  :func:`user_turn_span`;
- **core: batches, metrics and diagnostics**: :class:`PrefixBatch`, :func:`kl_div`,
  :func:`logprob_mass`, :func:`target_token_ids`, :func:`logit_lens`,
  :func:`vector_diagnostics`;
- **lab** (:mod:`actadd.lab`): :func:`run_experiment`, :class:`RunDir`;
- **sweeps** (:mod:`actadd.sweeps`): :class:`SweepSpec`, :func:`run_sweep`;
- **ui** (:mod:`actadd.ui`): :func:`playground`.

Everything else lives in its tier's modules (``actadd.core.metrics``, ``actadd.interop.gguf``,
``actadd.studies.<name>``, ...), each with an ``__all__``.

The names are imported on first use (PEP 562), so ``import actadd`` and the ``actadd``
command start in well under a second; torch and TransformerLens load when a model, a vector
or the steering context is first touched.
"""

from typing import TYPE_CHECKING

from actadd import _legacy
from actadd._compat import silence_known_warnings
from actadd._lazy import lazy_module
from actadd.errors import (
    ActAddError,
    ChatTemplateError,
    ConfigError,
    ModelLoadError,
    SteeringError,
    VectorFileError,
)

silence_known_warnings()
_legacy.install()

__version__ = "0.1.0"

# public name -> the module that defines it, by tier (the order of the docstring)
_LAZY = {
    # config
    "Pair": "actadd.config",
    # models
    "load_model": "actadd.models",
    # core: vectors and steering
    "SteeringVector": "actadd.core.vectors",
    "Steering": "actadd.core.steering",
    "steering": "actadd.core.steering",
    "Align": "actadd.core.align",
    "Placement": "actadd.core.placement",
    "Ablation": "actadd.core.ablation",
    "ablate_then_add": "actadd.core.ablation",
    # core: generation
    "compare": "actadd.core.generation",
    "generate": "actadd.core.generation",
    "GREEDY": "actadd.core.sampling",
    "PAPER_SAMPLING": "actadd.core.sampling",
    "Sampling": "actadd.core.sampling",
    # core: methods, datasets and chat
    "dataset_vectors": "actadd.core.methods",
    "with_norm": "actadd.core.methods",
    "load_pairs": "actadd.core.datasets",
    "render_pair": "actadd.core.chat",
    "render_prompt": "actadd.core.chat",
    "user_turn_span": "actadd.core.chat",
    # core: batches, metrics and diagnostics
    "PrefixBatch": "actadd.core.prefix",
    "kl_div": "actadd.core.metrics",
    "logprob_mass": "actadd.core.metrics",
    "target_token_ids": "actadd.core.metrics",
    "logit_lens": "actadd.core.diagnostics",
    "vector_diagnostics": "actadd.core.diagnostics",
    # lab
    "RunDir": "actadd.lab.runs",
    "run_experiment": "actadd.lab.runner",
    # sweeps
    "SweepSpec": "actadd.sweeps",
    "run_sweep": "actadd.sweeps",
    # ui
    "playground": "actadd.ui.panel",
}

__all__ = [
    "ActAddError",
    "ChatTemplateError",
    "ConfigError",
    "ModelLoadError",
    "SteeringError",
    "VectorFileError",
    *_LAZY,
]


__getattr__, __dir__ = lazy_module(__name__, _LAZY, globals())


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from actadd.config import Pair  # noqa: F401
    from actadd.core.ablation import Ablation, ablate_then_add  # noqa: F401
    from actadd.core.align import Align  # noqa: F401
    from actadd.core.chat import render_pair, render_prompt, user_turn_span  # noqa: F401
    from actadd.core.datasets import load_pairs  # noqa: F401
    from actadd.core.diagnostics import logit_lens, vector_diagnostics  # noqa: F401
    from actadd.core.generation import compare, generate  # noqa: F401
    from actadd.core.methods import dataset_vectors, with_norm  # noqa: F401
    from actadd.core.metrics import kl_div, logprob_mass, target_token_ids  # noqa: F401
    from actadd.core.placement import Placement  # noqa: F401
    from actadd.core.prefix import PrefixBatch  # noqa: F401
    from actadd.core.sampling import GREEDY, PAPER_SAMPLING, Sampling  # noqa: F401
    from actadd.core.steering import Steering, steering  # noqa: F401
    from actadd.core.vectors import SteeringVector  # noqa: F401
    from actadd.lab.runner import run_experiment  # noqa: F401
    from actadd.lab.runs import RunDir  # noqa: F401
    from actadd.models import load_model  # noqa: F401
    from actadd.sweeps import SweepSpec, run_sweep  # noqa: F401
    from actadd.ui.panel import playground  # noqa: F401
