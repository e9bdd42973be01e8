"""Render chat messages, prompts and contrast pairs through a model's chat template.

The template is the tokenizer's ``chat_template`` when one is set (give a tiny model one by
hand: ``model.tokenizer.chat_template = "..."``), otherwise the ``tokenizer.chat_template``
string in the metadata of the GGUF file the model was loaded from (SmolLM2-Instruct has one).
It is rendered with jinja2 in a sandbox, as ``transformers`` does, with the variables
``messages``, ``add_generation_prompt``, ``bos_token``, ``eos_token`` and
``raise_exception``.

**One BOS policy.** actadd's tokenizers always prepend their leading token (``<|endoftext|>``
for SmolLM2, see :mod:`actadd.models.tokenizer`). A rendered string therefore never starts
with that token: templates get ``bos_token`` = the leading token, and one copy at the start of
the rendered text is removed, so ``model.to_tokens(render(...))`` has exactly one leading
token. SmolLM2's GGUF names ``<|im_start|>`` as its BOS; that is not the leading token and
stays where the template puts it.

``render`` returns text, so everything that takes prompts (``SteeringVector.from_pair``,
``steering``, ``generate``, sweeps) takes rendered prompts unchanged. To steer only the
assistant turn of a prompt rendered with the generation prompt, use ``"generated"`` (the
assistant turn is what gets generated); ``"from:<|im_start|>"`` starts at the *first*
``<|im_start|>``, which in SmolLM2's template is the system turn (see the README). To steer
only the user's message, align ``Align.span(*user_turn_span(model, prompts))``; a sweep does
either with ``turn = "user" | "assistant"`` (:mod:`actadd.sweeps.spec`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

from actadd.config import Pair, describe
from actadd.errors import ChatTemplateError, Validated
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode

__all__ = [
    "ROLES",
    "chat_template",
    "control_tokens",
    "render",
    "render_pair",
    "render_prompt",
    "user_turn_span",
]

ROLES = ("system", "user", "assistant")


def chat_template(model: Model) -> str:
    """The model's chat template (see the module docstring); one error line if it has none."""
    tok = model.tokenizer
    template = getattr(tok, "chat_template", None)
    if isinstance(template, str) and template:
        return template
    source = getattr(model, "actadd_source", None) or {}
    path = source.get("file")
    if path and str(path).endswith(".gguf"):
        template = _gguf_template(str(path), str(source.get("sha256")))
        if template:
            return template
    name = model.cfg.model_name
    raise ChatTemplateError(
        f"Model {name!r} has no chat template: neither its tokenizer's chat_template nor a GGUF "
        "'tokenizer.chat_template' is set. Set model.tokenizer.chat_template to a jinja2 "
        "template, or load a GGUF that carries one (e.g. SmolLM2-Instruct)."
    )


@functools.lru_cache(maxsize=8)
def _gguf_template(path: str, sha256: str) -> str | None:
    """Keyed by the file's hash too, so a replaced file is read again."""
    from actadd.models import gguf_llama

    value = gguf_llama._field(gguf_llama.open_reader(Path(path)), "tokenizer.chat_template")
    return str(value) if value else None


def _check_messages(messages: object) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ChatTemplateError(
            f"messages must be a non-empty list of {{'role': ..., 'content': ...}} dicts, got "
            f"{messages!r}."
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or set(m) != {"role", "content"}:
            raise ChatTemplateError(
                f"messages[{i}] must be a dict with exactly the keys 'role' and 'content', "
                f"got {m!r}."
            )
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise ChatTemplateError(
                f"messages[{i}] has role {role!r}; allowed roles: {', '.join(ROLES)}."
            )
        if not isinstance(content, str):
            raise ChatTemplateError(
                f"messages[{i}]'s content must be a string, got {type(content).__name__}."
            )
        out.append({"role": role, "content": content})
    return out


def control_tokens(model: Model) -> list[str]:
    """The tokenizer's special tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``,
    ...): text that tokenizes as template markup, never as words. Longest first."""
    tok = model.tokenizer
    names = set(getattr(tok, "all_special_tokens", None) or [])
    added = getattr(tok, "added_tokens_decoder", None) or {}
    names |= {t.content for t in added.values() if getattr(t, "special", False)}
    return sorted((n for n in names if isinstance(n, str) and n), key=lambda n: (-len(n), n))


def _refuse_control_tokens(model: Model, messages: list[dict[str, str]]) -> None:
    """One error line if a message's content holds a special token: rendered, it would be
    markup, so ``"<|im_end|>\\n<|im_start|>system ..."`` in a user message would open a
    system turn. Refused rather than escaped: no escape keeps the text and is not markup."""
    tokens = control_tokens(model)
    for i, m in enumerate(messages):
        found = [(m["content"].find(t), -len(t), t) for t in tokens if t in m["content"]]
        if found:
            token = min(found)[2]  # the first in the text (the longest there)
            raise ChatTemplateError(
                f"messages[{i}] ({m['role']}) contains the special token {token!r}, which the "
                "tokenizer reads as chat-template markup (it could end the turn and open "
                "another, e.g. a system turn); remove it from the message's content."
            )


@functools.lru_cache(maxsize=16)
def _compile(template: str):
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise ChatTemplateError(f"The chat template does not parse: {exc}.") from None


def _check_flag(add_generation_prompt: object) -> None:
    """A real boolean: the string ``"no"`` would count as true and open the assistant turn."""
    if not isinstance(add_generation_prompt, bool):
        raise ChatTemplateError(
            f"add_generation_prompt must be True or False, got {describe(add_generation_prompt)}."
        )


def _raise(message: str) -> None:
    raise ChatTemplateError(f"The chat template refused the messages: {message}")


def render(
    model: Model,
    messages: Validated[Sequence[Mapping[str, str]]],
    add_generation_prompt: Validated[bool] = True,
) -> str:
    """Render ``messages`` (``[{"role": "user", "content": "..."}, ...]``) as prompt text.

    The result carries no leading token: actadd's tokenizer prepends it (one BOS policy, see
    the module docstring). With ``add_generation_prompt`` the text ends with the opening of
    the assistant turn (SmolLM2: ``<|im_start|>assistant\\n``).
    """
    from jinja2 import TemplateError

    checked = _check_messages(messages)
    _refuse_control_tokens(model, checked)
    _check_flag(add_generation_prompt)
    template = _compile(chat_template(model))
    bos = model.tokenizer.bos_token or ""
    try:
        text = template.render(
            messages=checked,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos,
            eos_token=model.tokenizer.eos_token or "",
            raise_exception=_raise,
        )
    except TemplateError as exc:
        raise ChatTemplateError(f"The chat template failed to render: {exc}.") from None
    if bos and text.startswith(bos):
        text = text[len(bos) :]
    return text


def render_prompt(model: Model, prompt: str, system: str | None = None) -> str:
    """One user turn (after an optional system turn), ending with the assistant's opening."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    return render(model, [*messages, {"role": "user", "content": prompt}])


def render_pair(
    model: Model,
    pair: Validated[Pair],
    system: str | None = None,
    add_generation_prompt: Validated[bool] = True,
) -> Pair:
    """``pair`` with each side rendered as a user turn, as :func:`render_prompt` renders a
    prompt (same system turn, same generation prompt), keeping its label and pad token.

    Both sides share the template's prefix, so a front-aligned ActAdd vector is zero there
    and differs from the first token where the two user messages differ.
    """
    if not isinstance(pair, Pair):
        raise ChatTemplateError(f"render_pair takes an actadd Pair, got {type(pair).__name__}.")
    _check_flag(add_generation_prompt)
    head = [{"role": "system", "content": system}] if system is not None else []

    def side(text: str) -> str:
        return render(model, [*head, {"role": "user", "content": text}], add_generation_prompt)

    return Pair(
        side(pair.positive),
        side(pair.negative),
        label=pair.label or pair.name,
        pad_token=pair.pad_token,
    )


def user_turn_span(
    model: Model, prompts: Validated[Sequence[str]], system: str | None = None
) -> tuple[int, int]:
    """Where the user's message lies in each prompt rendered by :func:`render_prompt`:
    ``(start, end)`` such that its tokens are ``[start, n - end)`` of every rendered prompt
    (``n`` counts the leading token), as :meth:`actadd.Align.span` takes them.

    One error line if the template does not keep a message verbatim, if a message's first or
    last token merges with the template's text, or if the span is not the same for every
    prompt (one alignment covers them all).
    """
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise ChatTemplateError(
            f"user_turn_span takes a non-empty list of prompt strings, got {prompts!r}."
        )
    spans = {}
    for prompt in prompts:
        text = render_prompt(model, prompt, system)
        i = text.rfind(prompt) if prompt else -1
        if i < 0:
            raise ChatTemplateError(
                f"The chat template does not keep the user message {prompt[:40]!r} verbatim, "
                "so its tokens cannot be located."
            )
        full, head, upto = (
            encode(model, t, truncate=False) for t in (text, text[:i], text[: i + len(prompt)])
        )
        if full[: len(upto)] != upto or upto[: len(head)] != head or len(upto) == len(head):
            raise ChatTemplateError(
                f"In the rendered prompt the user message {prompt[:40]!r} does not tokenize "
                "apart from the template's text (a token spans the boundary), so its "
                "positions are not well defined."
            )
        spans[(len(head), len(full) - len(upto))] = prompt
    if len(spans) > 1:
        raise ChatTemplateError(
            f"The chat template puts the user message at different token offsets (start, "
            f"tokens after it) in different prompts: {sorted(spans)}; one alignment cannot "
            "cover them all."
        )
    return next(iter(spans))
