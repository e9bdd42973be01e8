"""The plan step of a sweep: a :class:`~actadd.sweeps.spec.SweepSpec` (pure data) resolved
against a model.

:func:`check` runs, before any compute, every check that needs the model: the layer range,
single-token target words, texts within the context (prompts with their new tokens), the
chat template of a ``turn`` sweep, and every cell's vector fitting every text it is added to.
A problem is one :class:`~actadd.errors.ConfigError` line. The engine reads the resolved
pieces through the same functions: :func:`target_ids`, :func:`texts` (rendered through the
chat template for ``turn``), :func:`user_span` and :func:`cell_aligns`.

:meth:`SweepSpec.validate(model) <actadd.sweeps.spec.SweepSpec.validate>` is :func:`check`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from actadd.config import check_layers
from actadd.core.chat import render_prompt, user_turn_span
from actadd.core.metrics import target_token_ids
from actadd.core.placement import ONE_ROW_KINDS, PHASE_KINDS, Align, prompt_positions
from actadd.errors import ActAddError, ChatTemplateError, ConfigError, collect, raise_all
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode, pair_token_ids
from actadd.sweeps.spec import SweepSpec

__all__ = ["cell_aligns", "check", "target_ids", "texts", "user_span"]


def check(spec: SweepSpec, model: Model) -> None:
    """Check everything that depends on the model. Raises ConfigError: the problems of
    the layers, the target words and the texts together (one line each)."""
    n = model.cfg.n_layers
    collect(
        lambda: check_layers(spec.layer_list(n), n, "layers"),
        # the target words are read by next-token metrics only
        lambda: target_ids(spec, model) if spec.next_token else None,
        lambda: _check_texts(spec, model),
    )


def _check_texts(spec: SweepSpec, model: Model) -> None:
    """Every text within the context (each one that is not, one line), and every cell's
    vector fitting the texts it is added to."""
    prompts, neutral = texts(spec, model)
    if spec.turn == "user":
        user_span(spec, model)
    new = spec.generation.max_new_tokens if spec.generation is not None else 0
    problems = []
    for what, group, extra in (
        ("prompt", prompts, new),
        ("neutral text", neutral, 0),
        ("pair prompt", [t for p in spec.pairs for t in (p.positive, p.negative)], 0),
    ):
        for text in group:
            length = len(encode(model, text, truncate=False)) + extra
            if length > model.cfg.n_ctx:
                plus = f" + {extra} new tokens" if extra else ""
                problems.append(
                    f"{what} {text[:40]!r}... is {length - extra} tokens{plus}, past the "
                    f"model's context of {model.cfg.n_ctx}: shorten it"
                    + (" or lower generation.max_new_tokens." if extra else ".")
                )
    raise_all(problems)
    if spec.generation is not None:
        spec.generation.words  # noqa: B018 - validates the preset name
    _check_fits(spec, model, prompts, neutral if spec.next_token else ())


def _check_fits(
    spec: SweepSpec, model: Model, prompts: tuple[str, ...], neutral: tuple[str, ...]
) -> None:
    """Every cell's vector fits every text it is added to (a front-aligned 5-row vector
    needs 5 tokens; ``offset:s`` needs ``s + rows``), from token counts alone, so a
    misfit is one ConfigError before any compute rather than a failure mid-run."""
    if spec.turn is not None:
        return  # one row on the turn's own tokens (user_span checked the user turn)
    group = [("prompt", t) for t in prompts] + [("neutral text", t) for t in neutral]
    lengths = [(kind, t, len(encode(model, t, truncate=False))) for kind, t in group]
    vectors = []
    if "actadd" in spec.methods:
        for p in spec.pairs:
            for rule in spec.equalize:
                try:
                    ids, _ = pair_token_ids(model, p.positive, p.negative, rule, p.pad_token)
                except ActAddError as exc:
                    raise ConfigError(f"pair {p.name}: {exc}") from None
                vectors.append((f"pair {p.name} (pad {rule})", len(ids)))
    for method in spec.methods:
        for align in spec.aligns_for(method):
            if align.kind in PHASE_KINDS:
                continue  # one row at positions known only as the text grows
            per_row = method == "actadd" and align.kind not in ONE_ROW_KINDS
            for what, k in vectors if per_row else [(f"method {method}", 1)]:
                for kind, text, n in lengths:
                    try:
                        prompt_positions(align, k, n)
                    except ActAddError as exc:
                        if align.kind == "positions":
                            raise ConfigError(f"align {align}, {what}: {exc}") from None
                        raise ConfigError(
                            f"align {align}: the {k}-row vector of {what} does not fit "
                            f"{kind} {text[:40]!r} ({n} tokens, leading token included); "
                            f"choose an align that fits, a longer {kind} or a shorter pair."
                        ) from None


def target_ids(spec: SweepSpec, model: Model) -> list[int]:
    """Single-token ids of the target words. A word list given explicitly must be all
    single tokens; a preset keeps the words that are (and needs at least one)."""
    strict = not isinstance(spec.target_words, str)
    ids = target_token_ids(model, spec.words, strict=strict, where="target_words")
    if not ids:
        raise ConfigError(
            f"target_words: none of the preset {spec.target_words!r}'s words {list(spec.words)} "
            f"is a single token in {model.cfg.model_name}; give a list of words that are."
        )
    return ids


def texts(spec: SweepSpec, model: Model) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The prompts and neutral texts as the model reads them: rendered as user turns
    through its chat template when ``turn`` is set."""
    if spec.turn is None:
        return spec.prompts, spec.neutral_texts
    with _as_config_error(f"turn = {spec.turn!r}"):
        return tuple(
            tuple(render_prompt(model, t) for t in group)
            for group in (spec.prompts, spec.neutral_texts)
        )


def user_span(spec: SweepSpec, model: Model) -> tuple[int, int]:
    """``(start, end)``: the user's message is tokens ``[start, n - end)`` of every
    rendered prompt and neutral text."""
    with _as_config_error(f"turn = {spec.turn!r}"):
        return user_turn_span(model, spec.prompts + spec.neutral_texts)


def cell_aligns(spec: SweepSpec, method: str, model: Model) -> list[tuple[str, Align]]:
    """``(label, align)`` of ``method``'s cells on ``model``: the spec's aligns, or the
    one turn of ``turn`` (the user span is read from the model's chat template)."""
    if spec.turn is None:
        return [(str(a), a) for a in spec.aligns_for(method)]
    if spec.turn == "assistant":
        return [("turn:assistant", Align.generated())]
    return [("turn:user", Align.span(*user_span(spec, model)))]


@contextmanager
def _as_config_error(where: str) -> Iterator[None]:
    """A chat-template problem as one ConfigError line naming the config key."""
    try:
        yield
    except ChatTemplateError as exc:
        raise ConfigError(f"{where}: {exc}") from None
