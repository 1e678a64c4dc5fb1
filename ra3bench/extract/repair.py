"""Salvage: making text that does not compile compile, without hiding a genuine syntax error. Prose
lines at column 0 are dropped, else the largest run of lines that compiles is kept (evalplus's
``code_extract``) under rules that stop it from cutting code apart, and JSON-escaped answers are
unescaped. A repair counts only when it gives an acceptable program (the entry point with a body,
or stdin read), so that broken code still reaches the sandbox as broken.
"""

from __future__ import annotations

import ast
import codeop
import functools
import keyword
import re
import warnings

from ra3bench.extract.analysis import (
    IMPORT_LINE,
    Found,
    acceptable,
    compile_or_error_line,
    compile_tree,
    dedent,
    free_names,
    indent_width,
    substantive,
    trim,
)
from ra3bench.suites.base import Problem

# Lines that continue the code above them: a region may not start at one or stop before one.
_CONTINUES = re.compile(r"^\s*((elif|else|except|finally|return|yield|break|continue|nonlocal|and|or)\b|[)\]}])")
_DEF_LINE = re.compile(r"^\s*(async\s+)?(def|class)\s+(\w+)")
_UNIT_START = re.compile(r"^\s*(@|def\b|async\s+def\b|class\b|import\b|from\b|if\s+__name__\b)")
_CODE_SHAPED = re.compile(r"^[A-Za-z_]\w*(\.\w+)*\s*(\(|\[|=|[-+*/%&|^@<>]=)")  # f(...) / x[...] / a.b = ...
# A comment after code; ``(?<!\s)`` starts the match only where a run of blanks starts, so a long
# run not followed by "#" is scanned once, not once per blank (same matches as ``\s+#.*$``).
_TRAILING_COMMENT = re.compile(r"(?<!\s)\s+#.*$")
_OPENS = (":", ",", "(", "[", "{", "\\")
_MAX_REGION_PARSES = 400  # bounds the region search on long, broken outputs


def salvage(code: str, problem: Problem) -> Found | None:
    """``code`` if it compiles and does something; else its repair (module docstring), if any."""
    code = trim(code)
    tree = compile_tree(code)
    if tree is not None:
        return Found(code, tree, "raw_code") if substantive(tree) else None

    repaired = _repair(code, problem)
    if repaired is not None:
        return Found(*repaired, "prose_stripped")
    unescaped = _unescape(code)
    if unescaped is None:
        return None
    tree = compile_tree(unescaped)
    if tree is not None and acceptable(tree, problem):
        return Found(unescaped, tree, "unescaped")
    repaired = _repair(unescaped, problem)
    return Found(*repaired, "unescaped") if repaired is not None else None


def _repair(code: str, problem: Problem) -> tuple[str, ast.Module] | None:
    """Drop prose lines at column 0; else keep the largest clean run of lines that compiles."""
    lines = code.split("\n")
    kept = trim("\n".join(line for line in lines if not _is_prose_line(line)))
    tree = compile_tree(kept)
    if tree is not None and acceptable(tree, problem):
        return kept, tree
    return _largest_region(lines, problem)


def _largest_region(lines: list[str], problem: Problem) -> tuple[str, ast.Module] | None:
    """The run of lines with the most non-blank lines that compiles (dedented) and is accepted
    (evalplus's ``code_extract``, bounded), unless it cuts code (:func:`_region_starts`,
    :class:`_Cuts`, :func:`_leaves_out_needed`): that is a syntax error to report, not prose to
    strip. Parsing stops early: a run from ``i`` that reaches a syntax error seen before is not tried."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    sizes = {i: n for n, i in enumerate(filled)}
    cuts = _Cuts(lines, strict=not problem.entry_point)
    best, best_size, budget = None, 0, _MAX_REGION_PARSES
    for i in _region_starts(lines):
        limit = len(lines)  # regions from i that reach this line hold a syntax error already seen
        for j in (j for j in reversed(filled) if j < limit):
            size = sizes[j] - sizes[i] + 1 if j >= i else 0
            if size <= best_size:
                break
            if cuts(i, j):
                continue
            budget -= 1
            if budget < 0:
                return best
            imports, text = _region_text(lines, i, j)
            tree, error_line = compile_or_error_line(text)
            if tree is None and error_line is not None and error_line > len(imports) + 1:
                limit = i + error_line - 1 - len(imports)  # (an error on the first line may be the dedent's)
            if tree is not None:  # a shorter region from i would not do better
                if acceptable(tree, problem) and not _leaves_out_needed(lines, i, j, tree):
                    best, best_size = (text, tree), size
                break
    return best


def _region_text(lines: list[str], i: int, j: int) -> tuple[list[str], str]:
    """The import lines left out of lines ``i..j`` ("from typing import *" put in front of an
    indented answer), and the code: those imports, then the lines dedented."""
    outside = [*lines[:i], *lines[j + 1 :]]
    imports = [line for line in outside if IMPORT_LINE.match(line) and not _fails_alone(line)]
    return imports, "\n".join([*imports, trim(dedent("\n".join(lines[i : j + 1])))])


def _leaves_out_needed(lines: list[str], i: int, j: int, tree: ast.Module) -> bool:
    """Is a function or class the region uses defined only in the lines left out (a helper with a
    syntax error)? Then the error is the answer's, not prose around it."""
    outside = [*lines[:i], *lines[j + 1 :]]
    left_out = {m[3] for line in outside if (m := _DEF_LINE.match(line))}
    return bool(left_out & free_names(tree))


class _Cuts:
    """Does keeping only lines ``i..j`` cut a block of code? Yes when the line after ``j`` continues
    it (``else:``, ``)``, ``return`` at column 0), when a code line deeper than line ``i`` follows
    ``j`` before the next def, class or import starts, or, ``strict`` (stdin programs), when any
    code is left out. Precomputed, so that each question takes constant time."""

    def __init__(self, lines: list[str], strict: bool) -> None:
        self.indent = [indent_width(line) for line in lines]
        self.code = [_is_code_line(line) and not IMPORT_LINE.match(line) for line in lines]
        self.unit = [bool(_UNIT_START.match(line)) for line in lines]
        self.strict = strict
        self.code_count = [0]  # code lines before each line
        for is_code in self.code:
            self.code_count.append(self.code_count[-1] + is_code)
        self.continued = [False] * len(lines)  # the next non-blank line continues the code
        following = False
        for k in range(len(lines) - 1, -1, -1):
            self.continued[k] = following
            if lines[k].strip():
                following = bool(_CONTINUES.match(lines[k]))
        self._deeper_after: dict[int, list[bool]] = {}

    def __call__(self, i: int, j: int) -> bool:
        if self.continued[j]:
            return True
        if self.strict and self.code_count[i] + self.code_count[-1] - self.code_count[j + 1]:
            return True
        return self._deeper_code_after(self.indent[i])[j]

    def _deeper_code_after(self, base: int) -> list[bool]:
        """For each line: is a code line deeper than ``base`` after it, before the next def/class?"""
        if base not in self._deeper_after:
            flags, deeper = [False] * len(self.code), False
            for k in range(len(self.code) - 1, -1, -1):
                flags[k] = deeper
                if self.code[k] and self.indent[k] > base:
                    deeper = True
                elif self.code[k] and self.unit[k]:
                    deeper = False
            self._deeper_after[base] = flags
        return self._deeper_after[base]


def _is_code_line(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith("#") and not _looks_like_prose(line)


def _region_starts(lines: list[str]) -> list[int]:
    """The lines a region may start at: code (not prose) that does not continue the code before it
    (``else:``, ``)``) and is not inside a block or brackets (under a code line that ends in ":", "(",
    ","...: a body without its ``def`` is a syntax error, not prose to strip)."""
    starts, stack = [], []  # stack: (indent, opens a block) of the code lines enclosing this one
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        while stack and stack[-1][0] >= indent_width(line):
            stack.pop()
        if not (stack and stack[-1][1]) and not _CONTINUES.match(line) and not _looks_like_prose(line):
            starts.append(i)
        if _is_code_line(line):
            stack.append((indent_width(line), _TRAILING_COMMENT.sub("", line.rstrip()).endswith(_OPENS)))
    return starts


def _is_prose_line(line: str) -> bool:
    """A column-0 line of prose (see :func:`_looks_like_prose`)."""
    return bool(line) and line[0] not in " \t" and _looks_like_prose(line)


def _looks_like_prose(line: str) -> bool:
    """Does not compile alone and is not broken code: does not start with a keyword ("return x"
    outside its function) or like a statement ("f(x) ➞ 1", "x = [1]]")."""
    text = line.strip()
    if not text or _CONTINUES.match(text) or not _fails_alone(text):
        return False
    first = re.match(r"[A-Za-z_]\w*", text)
    if first and keyword.iskeyword(first.group()):
        return False
    return not _CODE_SHAPED.match(text)


@functools.lru_cache(maxsize=4096)
def _fails_alone(line: str) -> bool:
    """True when ``line`` cannot begin or be a statement (an incomplete ``def f():`` can)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            codeop.compile_command(line)
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
            return True  # (the last two: too deeply nested to parse, e.g. a line of 3,000 "~" or "-")
    return False


def _unescape(code: str) -> str | None:
    """Code written as an escaped string (literal ``\\n``), as some models served through a JSON API
    answer: the lines holding two escaped newlines or more, unescaped; None when there are none."""
    lines = code.split("\n")
    if not any(line.count("\\n") >= 2 for line in lines):
        return None
    return trim("\n".join(_unescape_line(line) if line.count("\\n") >= 2 else line for line in lines))


def _unescape_line(line: str) -> str:
    for escaped, plain in (("\\\\n", "\n"), ("\\n", "\n"), ("\\t", "\t"), ('\\"', '"'), ("\\'", "'")):
        line = line.replace(escaped, plain)
    return line
