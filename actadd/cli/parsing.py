"""``argparse`` with a "did you mean": for a mistyped subcommand or choice (:class:`Parser`)
and for an unknown option, suggested from the options of the command it was given to
(:func:`parse`); :func:`plain` turns a docstring into help text."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from actadd.errors import suggest

__all__ = ["Parser", "parse", "plain"]


def plain(text: str) -> str:
    """A docstring as help text: reStructuredText roles (``:mod:`x```) and literals
    (````x````) become their plain text."""
    text = re.sub(r":[\w:]+:`~?([^`<]*?)(?: <[^>]*>)?`", r"\1", text)
    return text.replace("``", "")


class Parser(argparse.ArgumentParser):
    """``argparse`` with a "did you mean" for a mistyped subcommand or choice (its
    subcommands' parsers are this class too)."""

    def error(self, message: str):  # type: ignore[override]
        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            message += suggest(bad.group(1), re.findall(r"'([^']*)'", bad.group(2)))
        super().error(message)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; an unknown option is refused by the parser of the command
    it was given to, with that command's closest option as a suggestion."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = _subparser(parser, args)
        options = [o for a in command._actions for o in a.option_strings]
        said = [f"{x}{suggest(x.split('=')[0], options)}" for x in extra]
        command.error(f"unrecognized arguments: {' '.join(said)}")
    return args


def _subparser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``args`` ran: ``actadd vector show`` -> show's."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return _subparser(action.choices[name], args)
    return parser
