"""Config parsing helpers shared by the non-sweep paper kinds (each error is a ConfigError)."""

from __future__ import annotations

from typing import Any

from actadd.errors import ConfigError


def parse_pairs(raw: Any, where: str = "pairs") -> list[tuple[str, str, str]]:
    """``[[pos, neg], ...]`` or ``[{positive, negative, label}, ...]`` → (pos, neg, name)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of [positive, negative] pairs.")
    out = []
    for p in raw:
        if isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p):
            pos, neg, name = p[0], p[1], None
        elif isinstance(p, dict) and isinstance(p.get("positive"), str):
            unknown = set(p) - {"positive", "negative", "label"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} in {p!r}.")
            pos, neg, name = p["positive"], str(p.get("negative", "")), p.get("label")
        else:
            raise ConfigError(f"{where}: a pair is [positive, negative] or a table; got {p!r}.")
        if not pos and not neg:
            raise ConfigError(f"{where}: pair {p!r} has two empty prompts.")
        out.append((pos, neg, name or f"{pos!r}-{neg!r}"))
    return out


def number_list(raw: Any, where: str, *, integer: bool = False) -> list:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of numbers.")
    kind = int if integer else (int, float)
    for x in raw:
        if isinstance(x, bool) or not isinstance(x, kind):
            raise ConfigError(f"{where}: {x!r} is not {'an int' if integer else 'a number'}.")
    return [int(x) if integer else float(x) for x in raw]


def check_layers(layers: list[int], n_layers: int, where: str = "layers") -> None:
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise ConfigError(f"{where} {bad} out of range: the model has layers 0..{n_layers - 1}.")


def check_keys(config: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(config) - allowed - {"kind", "name"})
    if unknown:
        raise ConfigError(f"{kind} config: unknown key(s) {unknown}; allowed: {sorted(allowed)}.")
