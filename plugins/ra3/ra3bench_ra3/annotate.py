"""Where comments may go, inserting them, and taking them out again byte for byte.

A *boundary* is a code line where a new logical line starts (Python's tokenizer says so), so a
comment line inserted before it can never land inside a string, a bracket or a backslash
continuation: the code parses exactly as before. Inserted lines are kept as an exact record
(:class:`Comment`: which code line, what text), never found again by a regex, because the
snippet may hold comments of its own.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

_SKIP = frozenset({tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING})
_CODING = re.compile(r"coding([:=])")  # PEP 263: such a comment on line 1-2 changes the file's encoding


@dataclass(frozen=True)
class Comment:
    """One inserted line: ``text`` (indentation, ``#``, content, ``\\n``) goes before code line ``line``."""

    line: int
    text: str


def split_lines(code: str) -> list[str]:
    """Lines with their ``\\n`` (the last one may have none); ``"".join`` gives ``code`` back.

    Only ``\\n`` splits, as in the tokenizer's offsets (``str.splitlines`` also splits at form feeds).
    """
    parts = code.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def boundaries(code: str) -> list[int]:
    """Indices of the lines where a logical line starts; none if the code does not tokenize."""
    found: list[int] = []
    at_start = True
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.NEWLINE:
                at_start = True
            elif tok.type in _SKIP or tok.type == tokenize.ENDMARKER:
                continue
            elif at_start:
                found.append(tok.start[0] - 1)
                at_start = False
    except (tokenize.TokenError, SyntaxError):  # IndentationError is a SyntaxError
        return []
    return found


def indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def sanitize(content: str) -> tuple[str, bool]:
    """(the comment's content after ``#`` as it is inserted, whether it was well formed).

    The content ends at the first line break; what cannot stay in a one-line comment (control
    characters, a PEP 263 coding declaration) is removed. Malformed: no line break (cut at
    ``max_latent_tokens`` or EOS) or nothing but blanks.
    """
    cut = re.split(r"[\r\n]", content, maxsplit=1)
    closed = len(cut) == 2
    text = "".join(ch for ch in cut[0] if ch == "\t" or ch.isprintable())
    text = _CODING.sub(r"coding \1", text)
    return text, closed and bool(text.strip())


def comment_line(code_line: str, content: str) -> str:
    """The inserted line: the next code line's indentation, ``#``, the content, ``\\n``."""
    return f"{indentation(code_line)}#{content}\n"


def insert(code: str, comments: list[Comment]) -> str:
    """``code`` with each comment line before its code line."""
    lines = split_lines(code)
    before: dict[int, str] = {}
    for c in comments:
        if c.line in before or not 0 <= c.line < len(lines):
            raise ValueError(f"comment for line {c.line}: a second one, or no such line")
        before[c.line] = c.text
    return "".join(before.get(i, "") + line for i, line in enumerate(lines))


def strip(annotated: str, comments: list[Comment]) -> str:
    """The original snippet: ``annotated`` without exactly the recorded lines (checked, not guessed)."""
    lines = split_lines(annotated)
    drop = set()
    for shift, c in enumerate(sorted(comments, key=lambda c: c.line)):
        at = c.line + shift
        if at >= len(lines) or lines[at] != c.text:
            raise ValueError(f"annotated line {at} is not the recorded comment {c.text!r}")
        drop.add(at)
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def line_spans(code: str, comments: list[Comment]) -> tuple[list[int], list[int]]:
    """For the annotated text: each line's start offset, and what it is (code line ``i``, or ``-1 - i``
    for the comment before code line ``i``)."""
    by_line = {c.line: c.text for c in comments}
    starts, owner, pos = [], [], 0
    for i, line in enumerate(split_lines(code)):
        if i in by_line:
            starts.append(pos)
            owner.append(-1 - i)
            pos += len(by_line[i])
        starts.append(pos)
        owner.append(i)
        pos += len(line)
    return starts, owner
