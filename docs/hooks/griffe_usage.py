"""A griffe extension for the API pages: command-line usage lines in a docstring (lines
starting with ``actadd ``, and their indented continuations) are shown as a code block, so
``[--resume]`` reads as an option, not as a Markdown link."""

from __future__ import annotations

import griffe


def fence_usage(text: str) -> str:
    out: list[str] = []
    block: list[str] = []
    for line in text.split("\n") + [""]:
        if line.startswith("actadd ") or (block and line.startswith(" ") and line.strip()):
            block.append(line)
            continue
        if block:
            out += ["```text", *block, "```"]
            block = []
        out.append(line)
    return "\n".join(out[:-1])


class UsageBlocks(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:  # noqa: ARG002 (griffe API)
        if obj.docstring is not None and "\nactadd " in "\n" + obj.docstring.value:
            obj.docstring.value = fence_usage(obj.docstring.value)
