"""``actadd vector export | import | show``: steering vectors to and from llama.cpp GGUF.

actadd vector export V.safetensors [V2.safetensors ...] -o OUT.gguf
                     [--reduce mean|mean-skip-first] [--row I]
                     [--scale S | --relative R [--model NAME]] [--model-hint H]
actadd vector import IN.gguf -o OUT(.safetensors | DIR) [--model NAME] [--layer L]
actadd vector show FILE [FILE ...] [--model NAME]  (.gguf control vectors or .safetensors)

Layers: an actadd vector at resid_pre L is llama.cpp's direction.{L-1} (added to the
output of block L-1). The scale is baked in: llama.cpp adds the vector as written at every
position, so choose its size here. --scale S multiplies it; --relative R sets its norm to
R times the typical residual norm at its layer (the median residual norm on a short neutral
text, recorded in vectors built from a model; --model measures it otherwise). At every
position a fraction of that norm is already a strong push: on SmolLM2-135M, Love − Hate at
resid_pre 2 reads well and loving at --relative 0.6 and falls apart from 0.8 to 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from actadd.cli.parsing import plain
from actadd.errors import SteeringError, raise_all

__all__ = ["add_vector_parser"]

REDUCE = ("none", "mean", "mean-skip-first")
SUFFIXES = (".gguf", ".safetensors")


def add_vector_parser(sub) -> None:
    """Register ``vector`` and its subcommands on the ``actadd`` parser's subparsers."""
    v = sub.add_parser(
        "vector",
        help="share steering vectors as llama.cpp control vectors (GGUF)",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vs = v.add_subparsers(dest="vector_command", required=True, metavar="COMMAND")

    e = vs.add_parser("export", help="actadd .safetensors vector(s) -> one control-vector .gguf")
    e.add_argument("inputs", nargs="+", help="vectors saved by SteeringVector.save, one per layer")
    e.add_argument("-o", "--out", required=True, help="the .gguf file to write")
    e.add_argument(
        "--reduce",
        choices=REDUCE,
        default="none",
        help="make a per-position [k, d_model] vector one row: its mean, or its mean "
        "without the leading-token row (mean-skip-first)",
    )
    e.add_argument("--row", type=int, help="use this one row instead of reducing")
    size = e.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, default=1.0, help="multiply before writing (baked in)")
    size.add_argument(
        "--relative",
        type=float,
        metavar="R",
        help="scale each vector so its norm is R times the typical residual norm at its layer "
        "(baked in)",
    )
    e.add_argument(
        "--model", help="measure the typical residual norm on this model (for --relative)"
    )
    e.add_argument("--model-hint", help="controlvector.model_hint (default: from the model name)")
    e.set_defaults(func=cmd_export)

    i = vs.add_parser("import", help="a control-vector .gguf -> actadd .safetensors vector(s)")
    i.add_argument("input", help="a llama.cpp / repeng / actadd control-vector .gguf")
    i.add_argument(
        "-o",
        "--out",
        required=True,
        help="a .safetensors file (one direction, or --layer), else a directory",
    )
    i.add_argument("--model", help="check against this model (e.g. smollm2) and tie to it")
    i.add_argument("--layer", type=int, help="only the direction added at this resid_pre layer")
    i.set_defaults(func=cmd_import)

    s = vs.add_parser("show", help="describe .gguf control vectors or .safetensors vectors")
    s.add_argument("paths", nargs="+", metavar="FILE", help=".gguf or .safetensors files")
    s.add_argument(
        "--model", help="measure each vector's size relative to this model's residual norm"
    )
    s.set_defaults(func=cmd_show)


def cmd_export(args) -> int:
    if args.row is not None and args.reduce != "none":
        raise SteeringError("Give either --row or --reduce, not both.")
    if args.model and args.relative is None:
        raise SteeringError("--model is used only with --relative R; leave it out.")
    check_files(args.inputs)
    from actadd.core.vectors import SteeringVector
    from actadd.interop.gguf import write_control_vector

    model = _model(args.model)
    vectors = []
    for path in args.inputs:
        vec = SteeringVector.load(path, model)
        if args.row is not None:
            if not -vec.k <= args.row < vec.k:
                raise SteeringError(f"{path}: --row {args.row} is outside 0..{vec.k - 1}.")
            vec = vec.rows([args.row])
        elif args.reduce == "mean":
            vec = vec.mean()
        elif args.reduce == "mean-skip-first":
            vec = vec.mean(skip_first=True)
        elif vec.k != 1:
            raise SteeringError(
                f"{path} has {vec.k} rows (one per position); a control vector is one row "
                "added at every position. Pass --reduce mean-skip-first (the mean without the "
                "leading-token row), --reduce mean, or --row I."
            )
        if args.relative is not None:
            if vec.resid_norm is None:
                raise SteeringError(
                    f"{path} records no typical residual norm for --relative: pass --model "
                    "NAME (the model it was made for) to measure it, or use --scale."
                )
            vec = vec.scaled_to(args.relative)
        elif args.scale != 1.0:
            vec = args.scale * vec
        vectors.append(vec)
    out = write_control_vector(vectors, args.out, model_hint=args.model_hint)
    layers = ", ".join(
        f"resid_pre {v.layer} -> direction.{v.layer - 1}, {v.size()}" for v in vectors
    )
    print(f"wrote {out} ({layers})")
    return 0


def cmd_import(args) -> int:
    check_files([args.input])
    from actadd.interop.gguf import load_control_vector

    vectors = load_control_vector(args.input, _model(args.model))
    if args.layer is not None:
        if args.layer not in vectors:
            raise SteeringError(
                f"{args.input} has no direction for resid_pre layer {args.layer}; it has "
                f"resid_pre layers {sorted(vectors)}."
            )
        vectors = {args.layer: vectors[args.layer]}
    out = Path(args.out)
    if len(vectors) == 1 and out.suffix == ".safetensors":
        written = [next(iter(vectors.values())).save(out)]
    elif out.suffix == ".safetensors":
        raise SteeringError(
            f"{args.input} holds {len(vectors)} directions (resid_pre layers "
            f"{sorted(vectors)}): give a directory as --out, or pick one with --layer."
        )
    else:
        written = _save_all(
            {out / f"resid_pre_{layer:02d}.safetensors": v for layer, v in vectors.items()}
        )
    for path in written:
        print(f"wrote {path}")
    return 0


def _save_all(files: dict[Path, object]) -> list[Path]:
    """Save every ``{path: vector}``, or none: when one save fails (a full disk), the files
    this call created are removed again (each save is atomic, so none is half-written)."""
    created: list[Path] = []
    try:
        for path, vec in files.items():
            existed = path.exists()
            vec.save(path)
            if not existed:
                created.append(path)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return list(files)


def _model(name: str | None):
    if not name:
        return None
    from actadd.models import load_model

    return load_model(name)


def check_files(paths: list[str]) -> None:
    """Every path given is a .gguf or .safetensors file: said before torch is imported."""
    kinds = "vector files are .gguf control vectors or .safetensors vectors"
    raise_all(
        [f"{p}: no such file." for p in paths if not Path(p).is_file()]
        + [
            f"{p}: not a vector file ({kinds})."
            for p in paths
            if Path(p).is_file() and Path(p).suffix not in SUFFIXES
        ]
    )


def cmd_show(args) -> int:
    check_files(args.paths)
    from actadd.core.vector_labels import NO_RESID_NORM
    from actadd.core.vectors import SteeringVector
    from actadd.interop.gguf import describe_file, load_control_vector

    model = _model(args.model)
    for path in args.paths:
        if str(path).endswith(".safetensors"):
            vec = SteeringVector.load(path, model, allow_other_model=True)
            print(f"{path}\n  {vec!r}")
            if vec.resid_norm is None:
                print(f"  {NO_RESID_NORM}")
        elif model is not None:
            print(describe_file(path))
            for layer, vec in load_control_vector(path, model, allow_other_model=True).items():
                print(f"  resid_pre {layer} on {model.cfg.model_name}: {vec.size()}")
        else:
            print(describe_file(path))
    return 0
