"""The ``actadd`` command.

actadd suite [--model NAME] [--quick] [--results DIR] [--fresh] [--allow-dirty] [--ray [ADDRESS]]
actadd run CONFIG.toml [--model NAME] [--out DIR] [--quick] [--resume] [--ray [ADDRESS]]
actadd sweep CONFIG.toml [--out DIR] [--resume] [--ray [ADDRESS]]
actadd figures [--results DIR | RUN_DIR ...]      redraw figures from saved tables
actadd verify RUN_DIR ... | --all [DIR]            check every file a run recorded
actadd report [--results DIR]                      claims with intervals and tests -> REPORT.md
actadd kinds                                       list experiment kinds
actadd vector export|import|show ...               llama.cpp control vectors (GGUF)
actadd model path [NAME]                           where a model's GGUF file is
actadd coeffs CONFIG.toml --model NAME [--write]   confirmatory coefficients for another model

A config file's problems are all reported at once, before any model loads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from actadd.cli.parsing import Parser, parse, plain
from actadd.cli.preflight import check_file, check_files, read_suite
from actadd.errors import ActAddError, ConfigError, UncheckedRunWarning, problems_of

__all__ = ["build_parser", "main", "read_suite"]

DEFAULT_SUITE = Path("experiments/suite.toml")
REFERENCE_RESULTS = Path("results")
LOCAL_RAY = "local"  # what a bare --ray means: start a local Ray cluster


def _out_for(config_path: Path, results: Path) -> Path:
    return results / config_path.stem


def results_root(args) -> Path:
    """``--results``, or results/ (results/_quick with ``--quick``), in a sub-folder named for
    the model with ``--model`` other than SmolLM2 (results/gemma3-270m/): another model's
    runs never share a folder with SmolLM2's."""
    if args.results:
        return Path(args.results)
    from actadd.lab.retarget import model_slug

    root = Path("results/_quick" if args.quick else "results")
    slug = model_slug(args.model)
    return root / slug if slug else root


def ray_backend(args):
    """The Ray backend the ``--ray*`` options ask for, connected (None without ``--ray``).
    Every problem (Ray missing, a bad or unreachable address, bad sizes) is a ConfigError
    raised here, before any model loads."""
    given = [
        flag
        for flag, value in (
            ("--ray-workers", args.ray_workers),
            ("--ray-cpus", args.ray_cpus),
            ("--ray-gpus", args.ray_gpus),
        )
        if value is not None
    ]
    if args.ray is None:
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --ray [ADDRESS].")
        return None
    from actadd.sweeps.distributed import RayExecutor, RayOptions

    options = RayOptions(
        address=None if args.ray == LOCAL_RAY else args.ray,
        workers=args.ray_workers,
        num_cpus=1.0 if args.ray_cpus is None else args.ray_cpus,
        num_gpus=0.0 if args.ray_gpus is None else args.ray_gpus,
    )
    return RayExecutor(options).connect()


def cmd_run(args) -> int:
    config = Path(args.config)
    check_file(config, args.quick)  # every problem that needs no model, before torch loads
    from actadd.lab.retarget import for_model
    from actadd.lab.runner import read_config, run_config

    results = results_root(args)
    out = Path(args.out) if args.out else _out_for(config, results)
    # layers that do not fit --model fail before Ray starts
    for_model(read_config(config, args.quick), args.model, str(config))
    backend = ray_backend(args)
    try:
        run_config(
            config,
            out,
            quick=args.quick,
            resume=args.resume,
            backend=backend,
            model_name=args.model,
        )
    finally:
        if backend is not None:
            backend.close()
    print(f"wrote {out}")
    return 0


def cmd_sweep(args) -> int:
    kind = check_file(args.config, args.quick)["kind"]
    if kind != "sweep":
        raise ConfigError(f"{args.config} is a {kind!r} config, not a sweep: `actadd run` runs it.")
    return cmd_run(args)


def cmd_suite(args) -> int:
    if args.model is not None:  # an unknown --model is refused first
        results_root(args)
    configs = read_suite(Path(args.suite))
    check_files(configs, args.quick)  # every problem of every config, before torch loads
    from actadd.lab.report import write_report
    from actadd.lab.retarget import RULE, canonical_model, for_model, model_slug
    from actadd.lab.runinfo import git_revision, write_json
    from actadd.lab.runner import kind_of, read_config, run_config

    results = results_root(args)
    revision = git_revision()
    # reference results (a full suite into the repository's results/, or results/<model>/)
    # need a committed tree
    slug = model_slug(args.model)
    default_root = REFERENCE_RESULTS / slug if slug else REFERENCE_RESULTS
    reference = not args.quick and results.resolve() == default_root.resolve()
    if reference and revision is not None and revision.endswith("+dirty"):
        if not args.allow_dirty:
            raise ConfigError(
                f"the working tree has uncommitted changes outside results/ "
                f"({revision}): reference results come only from a committed tree. Commit "
                "(or stash) first, or pass --allow-dirty (recorded in suite.json)."
            )
        print(f"actadd: warning: running on a dirty tree ({revision}); recorded", file=sys.stderr)
    # every config mapped to --model (its layers checked) before any experiment runs
    kinds = {c: kind_of(for_model(read_config(c, args.quick), args.model, str(c))) for c in configs}
    backend = ray_backend(args)
    timings = {}
    start = time.perf_counter()
    try:
        for i, config in enumerate(configs, 1):
            out = _out_for(config, results)
            if args.fresh and out.exists():
                shutil.rmtree(out)  # nothing stale survives: tables, parts and figures go
            where = ""
            if backend is not None:
                where = " (on Ray)" if kinds[config].distributed else " (here: not sweep units)"
            print(f"[{i}/{len(configs)}] {config.stem} -> {out}{where}", flush=True)
            t0 = time.perf_counter()
            run_config(
                config,
                out,
                quick=args.quick,
                resume=True,
                backend=backend,
                model_name=args.model,
            )
            timings[config.stem] = round(time.perf_counter() - t0, 1)
            print(f"    done in {timings[config.stem]:.0f} s", flush=True)
    finally:
        if backend is not None:
            backend.close()
    total = round(time.perf_counter() - start, 1)
    # the default suite's record is suite.json; another suite file's is <its name>.json
    suite_path = Path(args.suite)
    record = "suite" if suite_path.resolve() == DEFAULT_SUITE.resolve() else suite_path.stem
    write_json(
        results / f"{record}.json",
        {
            "quick": args.quick,
            "revision": revision,
            "allow_dirty": bool(args.allow_dirty),
            "reference": reference,
            "experiments": [c.stem for c in configs],
            "seconds": timings,
            "total_seconds": total,
            # only with --model: the model and the rule its layers were mapped by
            **({"model": canonical_model(args.model), "model_rule": RULE} if slug else {}),
        },
    )
    md, _ = write_report(results)
    print(f"suite finished in {total:.0f} s; tables and figures under {results}/, claims in {md}")
    return 0


def cmd_figures(args) -> int:
    if args.wait is not None and args.wait < 0:
        raise ConfigError(f"--wait must be >= 0 seconds, got {args.wait}.")
    runs = [Path(r) for r in args.runs]
    missing = [r for r in runs if not r.is_dir()]
    if missing:  # said before anything is imported or drawn
        raise ConfigError(
            f"no run directory at {', '.join(map(str, missing))}: give run directories "
            "(each holds a config.json), or --results DIR for all runs under DIR."
        )
    from actadd.lab.runner import figures_for
    from actadd.lab.runs import run_dirs

    runs = runs or run_dirs(args.results)
    if not runs:
        raise ConfigError(f"No run directories (with config.json) under {args.results}.")
    failed = 0
    for run in runs:
        try:
            paths = figures_for(run, wait=args.wait)
        except ActAddError as exc:
            failed += 1
            print(f"actadd: error: {run}: {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # a table the figure code cannot read: say which run
            failed += 1
            print(
                f"actadd: error: {run}: cannot draw ({type(exc).__name__}: {exc})", file=sys.stderr
            )
            continue
        print(f"{run}: {len(paths)} figure files")
    if failed and len(runs) > 1:
        drawn = len(runs) - failed
        rest = f"the other {drawn} were redrawn" if drawn else "none was redrawn"
        print(f"actadd: {failed} of {len(runs)} runs failed; {rest}.", file=sys.stderr)
    return 2 if failed else 0


def cmd_verify(args) -> int:
    """Exit 0 when every run passes, 1 when one does not (each problem on a line)."""
    from actadd.lab.runner import verify_run
    from actadd.lab.runs import RunDir, run_dirs

    runs = [Path(r) for r in args.runs]
    if args.all is not None:
        found = run_dirs(args.all)
        if not found:
            raise ConfigError(f"No run directories under {args.all}.")
        runs += found
    if not runs:
        raise ConfigError("Name the run directories to verify, or --all RESULTS_DIR.")
    failed = 0
    for run in runs:
        problems = verify_run(run)
        for problem in problems:
            print(f"{run}: {problem}")
        if problems:
            failed += 1
            continue
        legacy = RunDir.existing(run).manifest_format() == 1
        note = " (legacy run: tables checked; config.json and env.json carry no checksum)"
        print(f"{run}: ok" + (note if legacy else ""))
    if failed:
        print(f"actadd: {failed} of {len(runs)} runs failed verification.", file=sys.stderr)
        return 1
    return 0


def cmd_report(args) -> int:
    from actadd.lab.report import write_report

    md, csv = write_report(args.results)
    print(f"wrote {md} and {csv}")
    return 0


def cmd_kinds(args) -> int:
    from actadd.lab.kinds import KIND_MODULES, get_kind

    for name in sorted(KIND_MODULES):
        print(f"{name:18s} {get_kind(name).description}")
    return 0


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="run on this model (smollm2, gemma3-270m, tiny-gemma3, tiny-gpt2, tiny-llama) "
        "instead of the config's: layers by relative depth, round(L * n_layers / 30) for a "
        "SmolLM2 config, coefficients unchanged; results under results/<model>/ "
        "(results/_quick/<model>/ with --quick)",
    )


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray (optional extra: pip install 'actadd[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL_RAY,
        default=None,
        metavar="ADDRESS",
        help="compute sweep units on Ray actors: no ADDRESS starts a local cluster, 'auto' "
        "joins the one started here with `ray start --head`, or HOST:PORT / ray://HOST:PORT",
    )
    g.add_argument("--ray-workers", type=int, help="actors (default: as many as the cluster holds)")
    g.add_argument("--ray-cpus", type=float, help="CPUs per actor (default 1)")
    g.add_argument(
        "--ray-gpus", type=float, help="GPUs per actor (default 0; >0 puts the model on cuda)"
    )


RUN_HELP = "run one experiment config of any kind, e.g. experiments/love_hate_demo.toml"
RUN_DESCRIPTION = (
    "Run one experiment config: the TOML names its kind (sweep, demo, perplexity, ...; "
    "`actadd kinds` lists them); the run directory gets its tables, figures, config.json and "
    "env.json. Every problem of the config is reported before the model loads. Examples: "
    "experiments/love_hate_demo.toml, experiments/wedding_perplexity.toml (experiments/README.md)."
)
SWEEP_HELP = (
    "run a sweep config (pairs x layers x coefficients), e.g. experiments/wedding_sweep.toml"
)
SWEEP_DESCRIPTION = (
    "Run a sweep (kind = 'sweep'): the grid pairs x layers x coefficients x alignments (x "
    "methods), scored by next-token metrics, KL on neutral texts and, with [generation], "
    "sampled completions. As `actadd run`, but other kinds are refused. Examples: "
    "experiments/wedding_sweep.toml; experiments/methods.toml (CAA, PCA, a random null)."
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="actadd",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is faster on a busy "
        "machine, where OpenMP threads contend)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "suite",
        help="run every config of a suite file (default experiments/suite.toml), then the report",
        description="Run every config a suite file lists into one results root, then write "
        "the report (REPORT.md, claims.csv). Every config is checked before any runs.",
    )
    s.add_argument("--quick", action="store_true", help="each config's [quick] sizes (CI, minutes)")
    add_model_argument(s)
    s.add_argument("--results", help="output root (default results/, or results/_quick)")
    s.add_argument(
        "--suite",
        default=str(DEFAULT_SUITE),
        metavar="FILE",
        help="the suite file, experiments = [names of configs beside it] "
        f"(default {DEFAULT_SUITE})",
    )
    s.add_argument("--fresh", action="store_true", help="delete each run directory and rerun")
    s.add_argument(
        "--allow-dirty",
        action="store_true",
        help="write reference results (a full suite into results/) from a tree with "
        "uncommitted changes (recorded in suite.json)",
    )
    add_ray_arguments(s)
    s.set_defaults(func=cmd_suite)

    for name, func, text, description in (
        ("run", cmd_run, RUN_HELP, RUN_DESCRIPTION),
        ("sweep", cmd_sweep, SWEEP_HELP, SWEEP_DESCRIPTION),
    ):
        r = sub.add_parser(name, help=text, description=description)
        r.add_argument("config", metavar="CONFIG.toml", help="the experiment config file")
        r.add_argument("--out", help="run directory (default <results>/<config name>)")
        r.add_argument("--results", help="output root (default results/, or results/_quick)")
        r.add_argument("--quick", action="store_true", help="the config's [quick] sizes")
        add_model_argument(r)
        r.add_argument("--resume", action="store_true", help="continue a run of the same config")
        add_ray_arguments(r)
        r.set_defaults(func=func)

    r = sub.add_parser("report", help="claims from saved tables -> REPORT.md, claims.csv")
    r.add_argument("--results", default="results", help="results root (default results/)")
    r.set_defaults(func=cmd_report)

    f = sub.add_parser(
        "figures",
        help="redraw figures from saved tables (no model)",
        description="Redraw the figures of run directories from their saved tables.",
    )
    f.add_argument(
        "runs", nargs="*", metavar="RUN_DIR", help="run directories (default: all under --results)"
    )
    f.add_argument(
        "--results", default="results", help="redraw every run under this root (default results/)"
    )
    f.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for another process drawing the same run's figures "
        "(default 300); a run that another process is computing is refused at once",
    )
    f.set_defaults(func=cmd_figures)

    v = sub.add_parser(
        "verify", help="check every file of runs against their manifests and checksums"
    )
    v.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run directories to check")
    v.add_argument(
        "--all",
        nargs="?",
        const="results",
        default=None,
        metavar="RESULTS_DIR",
        help="every run directory under RESULTS_DIR (default results/)",
    )
    v.set_defaults(func=cmd_verify)

    k = sub.add_parser("kinds", help="list experiment kinds")
    k.set_defaults(func=cmd_kinds)

    from actadd.cli.coeffs import add_coeffs_parser
    from actadd.cli.crossmodel import add_crossmodel_parser
    from actadd.cli.model import add_model_parser
    from actadd.cli.new import add_new_parser
    from actadd.cli.vector import add_vector_parser

    add_vector_parser(sub)
    add_new_parser(sub)
    add_model_parser(sub)
    add_coeffs_parser(sub)
    add_crossmodel_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    # the command only writes figure files: no GUI backend unless the user chose one
    os.environ.setdefault("MPLBACKEND", "Agg")
    with warnings.catch_warnings():  # restores the warning display when main returns
        shown = warnings.showwarning
        # a run whose tables cannot be checked is said loudly, whatever the warning filters
        warnings.simplefilter("always", UncheckedRunWarning)

        def note(message, category, *rest, **kw) -> None:
            """actadd's own warnings (actadd.errors) as one line each: a run that cannot be
            checked is a warning, the others are notes."""
            if issubclass(category, UncheckedRunWarning):
                print(f"actadd: warning: {message}", file=sys.stderr)
            elif category.__module__ == "actadd.errors":
                print(f"actadd: note: {message}", file=sys.stderr)
            else:
                shown(message, category, *rest, **kw)

        warnings.showwarning = note
        try:
            if args.threads is not None:
                if args.threads < 1:
                    raise ConfigError(
                        f"--threads must be an integer >= 1 (torch CPU threads), got "
                        f"{args.threads}."
                    )
                import torch

                torch.set_num_threads(args.threads)
            return args.func(args)
        except ActAddError as exc:
            lines = problems_of(exc) if isinstance(exc, ConfigError) else [str(exc)]
            for line in lines:  # several problems of a config: one line each
                print(f"actadd: error: {line}", file=sys.stderr)
            return 2
        except OSError as exc:
            from actadd._io import disk_full

            if not disk_full(exc):
                raise
            where = f" writing {exc.filename}" if exc.filename else ""
            print(f"actadd: error: no space left on device{where}; free space and rerun.",
                  file=sys.stderr)  # fmt: skip
            return 2


if __name__ == "__main__":
    sys.exit(main())
