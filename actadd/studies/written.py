"""Configs saved as written: a :class:`~actadd.config.Config` whose ``to_dict`` gives back the
keys its table had, and only those.

The ``pad_confound`` and ``token_injection`` kinds always saved their TOML tables as written
(``config.json`` held no default the table left out), and ``--resume`` compares that file.
A :class:`Written` config keeps that stable: :meth:`Written.from_dict` remembers the keys the
table gave (old names already renamed, :attr:`~actadd.config.Config.ALIASES`), and
:meth:`Written.to_dict` writes those keys with their validated values, nested configs through
their own ``to_dict``, and each field under the name ``config.json`` has always used
(:attr:`Written.SAVED_AS`). A config built in Python (not from a table) writes every field
but those of :attr:`~actadd.config.Config.LEFT_OUT_AT_DEFAULT` that hold their default.

Pure data: imports no model code.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, ClassVar, TypeVar

from actadd.config import Config

__all__ = ["Written", "plain"]

W = TypeVar("W", bound="Written")


def plain(value: Any) -> Any:
    """``value`` with every config in it turned into its ``to_dict`` (through lists, tuples
    and dicts); anything else as it is."""
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class Written(Config):
    """A :class:`~actadd.config.Config` saved as its table was written (see the module)."""

    #: field -> the key ``config.json`` writes it under (the name the first runs stored)
    SAVED_AS: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls: type[W], raw: Any, where: str | None = None) -> W:
        obj = super().from_dict(raw, where)
        given = {cls.ALIASES.get(k, k) for k in raw if k != "kind"}
        object.__setattr__(obj, "_written", frozenset(given))
        return obj

    def to_dict(self) -> dict[str, Any]:
        written = getattr(self, "_written", None)
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if not f.init or (written is not None and f.name not in written):
                continue
            if written is None and f.name in self.LEFT_OUT_AT_DEFAULT:
                default = f.default if f.default_factory is MISSING else f.default_factory()
                if value == default:
                    continue
            out[self.SAVED_AS.get(f.name, f.name)] = plain(value)
        return out
