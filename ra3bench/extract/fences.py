"""Reading a model's answer as markdown: dropping ``<think>`` reasoning, and splitting the text into
its fenced blocks as written (```` ``` ```` or ``~~~``, the last possibly unclosed, a fence opened
after text on its line or right after a block closes, the code before a lone closing fence). This
module only finds blocks; which of them is the program is for ``choose``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ra3bench.extract.analysis import dedent, trim


@dataclass
class Block:
    """A fenced block (or the code before a lone closing fence), as written."""

    raw: str
    lang: str
    method: str  # "fenced" or "fenced_unclosed"
    outside: bool = False  # the text before the first fence, not a block

    @property
    def code(self) -> str:
        return trim(dedent(self.raw))


# A language tag ("python", "c++", "py3.11"). Fences are found by scans and string methods, not by a
# regex: ``^(.*?)(`{3,}|~{3,})[ \t]*([\w+#.-]*)[ \t]*$`` took quadratic time on a long run of
# backticks, tildes, or blanks after a fence.
_LANG = re.compile(r"[\w+#.-]+")
_THINK_END = re.compile(r"</(think|thinking|reasoning|thought)>", re.IGNORECASE)
_THINK_TAG = re.compile(r"</?(think|thinking|reasoning|thought)>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Drop ``<think>`` reasoning; an unclosed one is kept (its drafts may be all the code there is)."""
    ends = list(_THINK_END.finditer(text))
    return text[ends[-1].end() :] if ends else _THINK_TAG.sub("", text)


def opening_fence(line: str) -> tuple[str, str] | None:
    """(fence, language) when ``line`` opens a fenced block: the fence ends the line, after nothing
    or after text and a space ("Assistant: ```python"); only a language tag and blanks may follow it.
    Linear time: see :func:`_last_fence`."""
    found = _last_fence(line)
    if found is None:
        return None
    start, end = found
    lang = line[end:].removesuffix("\n").strip(" \t")
    pre = line[:start]
    if (lang and not _LANG.fullmatch(lang)) or "`" in pre or (pre and pre[-1] not in " \t:"):
        return None
    if "\n" in pre:  # (split lines hold no line break; the regex's ``.`` and ``$`` did not cross one)
        return None
    return line[start:end], lang


def _last_fence(line: str) -> tuple[int, int] | None:
    """(start, end) of the run of backticks or tildes that holds the line's last one, if 3 or longer.

    Only that run can open a block: what follows a fence (a language tag between blanks) holds no
    backtick or tilde, and the fence is the whole run (a shorter one would leave a fence character
    after it). So one scan from the right finds it, where a regex tried every start and length."""
    end = max(line.rfind("`"), line.rfind("~")) + 1
    if end == 0:
        return None
    start = len(line[:end].rstrip(line[end - 1]))
    return (start, end) if end - start >= 3 else None


def _closing(line: str, fence: str) -> tuple[str, str | None] | None:
    """None if ``line`` does not close the block; else (code before the fence on that line, the
    language of a block that the same line opens: "```python" right after a block)."""
    stripped = line.strip()
    if stripped.startswith(fence):
        rest = stripped.lstrip(fence[0]).strip()
        return "", (rest if _LANG.fullmatch(rest) else None)
    if line.rstrip().endswith(fence) and line.strip() != fence:
        return line.rstrip()[: -len(fence)], None
    return None


def fenced_blocks(text: str) -> tuple[list[Block], bool]:
    """The fenced blocks of ``text`` in order, the code before the first fence first (the code of a
    lone closing fence), and whether any fence was seen."""
    blocks: list[Block] = []
    before: list[str] = []
    current: list[str] | None = None
    fence, lang, seen = "", "", False
    for line in text.split("\n"):
        if current is None:
            opened = opening_fence(line)
            if opened is None:
                if not seen:
                    before.append(line)
                continue
            (fence, lang), current, seen = opened, [], True
            continue
        closed = _closing(line, fence)
        if closed is None:
            current.append(line)
            continue
        tail, reopened = closed
        blocks.append(Block("\n".join([*current, tail] if tail.strip() else current), lang, "fenced"))
        current, lang = ([], reopened) if reopened is not None else (None, lang)
    if current is not None:
        blocks.append(Block("\n".join(current), lang, "fenced_unclosed"))
    if seen:
        blocks.insert(0, Block("\n".join(before), "", "fenced", outside=True))
    return blocks, seen
