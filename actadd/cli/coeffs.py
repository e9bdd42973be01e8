"""``actadd coeffs CONFIG --model NAME [--write]``: a sweep config's confirmatory
coefficients mapped to another model by the vector's size relative to the residual stream
(:mod:`actadd.sweeps.coeffmap`), one line per cell; ``--write`` puts them into the config's
``[models."<model>"]`` table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from actadd.cli.parsing import plain
from actadd.cli.preflight import CONFIG_TYPES, check_file
from actadd.errors import ConfigError
from actadd.lab.kinds import read_config
from actadd.sweeps.spec import SweepSpec

__all__ = ["add_coeffs_parser", "cmd_coeffs"]

DESCRIPTION = (
    "Map the confirmatory cells of a sweep config (word_count, sentiment, failures, ...) to "
    "another model: layers by relative depth (the --model rule) and each coefficient c to "
    "c x r_source(L) / r_target(L'), where r is the norm of the vector the cell adds at "
    "c = 1 (root mean square of its row norms after the leading token) over the median "
    "residual norm at that layer (the config's prompts, positions after the leading token). "
    "Prints one line per cell; --write adds (or updates) the config's "
    '[models."<model>"] table with the mapped coeffs and confirmatory cells. Loads both '
    "models and runs a few forwards; runs no experiment."
)


def add_coeffs_parser(sub) -> None:
    """Register ``coeffs`` on the ``actadd`` parser's subparsers."""
    c = sub.add_parser(
        "coeffs",
        help="map a config's confirmatory coefficients to another model (by relative size)",
        description=plain(DESCRIPTION),
    )
    c.add_argument("config", metavar="CONFIG.toml", help="a sweep config with confirmatory cells")
    c.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help="the model to map to (gemma3-270m, smollm2, tiny-gemma3, tiny-gpt2, tiny-llama), "
        "not the config's own",
    )
    c.add_argument(
        "--write",
        action="store_true",
        help='add (or update) the config\'s [models."<model>"] table: coeffs and '
        "confirmatory, with the rule, both models' r and the date as a comment",
    )
    c.set_defaults(func=cmd_coeffs)


def cmd_coeffs(args) -> int:
    path = Path(args.config)
    kind = check_file(path)["kind"]  # every problem that needs no model, before torch loads
    if CONFIG_TYPES.get(kind) is not SweepSpec:
        sweeps = sorted(k for k, t in CONFIG_TYPES.items() if t is SweepSpec)
        raise ConfigError(
            f"{path} is a {kind!r} config: coefficients are mapped for sweep configs "
            f"(kinds {', '.join(sweeps)})."
        )
    from actadd.sweeps.coeff_plan import plan_coeffs
    from actadd.sweeps.coeff_table import write_table

    plan = plan_coeffs(read_config(path), args.model, str(path))
    from actadd.models import load_model
    from actadd.sweeps.coeffmap import map_coeffs

    cells = map_coeffs(plan, load_model(plan.config.get("model")), load_model(plan.target))
    print(f"{path}: {len(cells)} confirmatory cells, {plan.source} -> {plan.target}")
    for cell in cells:
        print(cell.line(plan.source, plan.target))
    if args.write:
        write_table(path, plan, cells, date.today())
        print(f'wrote [models."{plan.target}"] (coeffs, confirmatory) into {path}')
    return 0
