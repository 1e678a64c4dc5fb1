"""Salvage: making text that does not compile compile, without hiding a genuine syntax error. Prose
lines at column 0 are dropped, else the largest run of lines that compiles is kept (evalplus's
``code_extract``) under rules that stop it from cutting code apart, and JSON-escaped answers are
unescaped. A repair counts only when it gives an acceptable program (the entry point with a body,
or stdin read), so that broken code still reaches the sandbox as broken. The search parses each run
it tries, up to the whole text, so its parses are paid for from the extraction's ``Budget``
(``analysis``): linear in the text, where a long answer that needed salvage took up to 400 parses of it.
"""

from __future__ import annotations

import ast
import codeop
import functools
import keyword
import re
import warnings
from bisect import bisect_left
from collections.abc import Callable

from ra3bench.extract.analysis import (
    IMPORT_LINE,
    Budget,
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
# ``_looks_like_prose``, remembered for one repair: each line is asked about several times, and an
# answer of more distinct lines than ``_fails_alone`` keeps would compile each one every time.
Prose = Callable[[str], bool]
_MAX_REGION_PARSES = 400  # parses per region search (the extraction's Budget bounds them all together)


def salvage(code: str, problem: Problem, budget: Budget | None = None) -> Found | None:
    """``code`` if it compiles and does something; else its repair (module docstring), if any. The
    region searches draw on ``budget``, the extraction's (one for ``code`` alone if not given)."""
    budget = budget if budget is not None else Budget.for_length(len(code))
    code = trim(code)
    tree = compile_tree(code)
    if tree is not None:
        return Found(code, tree, "raw_code") if substantive(tree) else None

    repaired = _repair(code, problem, budget)
    if repaired is not None:
        return Found(*repaired, "prose_stripped")
    unescaped = _unescape(code)
    if unescaped is None:
        return None
    tree = compile_tree(unescaped)
    if tree is not None and acceptable(tree, problem):
        return Found(unescaped, tree, "unescaped")
    repaired = _repair(unescaped, problem, budget)
    return Found(*repaired, "unescaped") if repaired is not None else None


def _repair(code: str, problem: Problem, budget: Budget) -> tuple[str, ast.Module] | None:
    """Drop prose lines at column 0; else keep the largest clean run of lines that compiles."""
    lines = code.split("\n")
    prose: Prose = functools.cache(_looks_like_prose)
    kept = trim("\n".join(line for line in lines if not _is_prose_line(line, prose)))
    tree = compile_tree(kept)
    if tree is not None and acceptable(tree, problem):
        return kept, tree
    return _largest_region(lines, problem, budget, prose)


def _largest_region(lines: list[str], problem: Problem, budget: Budget, prose: Prose) -> tuple[str, ast.Module] | None:
    """The run of lines with the most non-blank lines that compiles (dedented) and is accepted
    (evalplus's ``code_extract``, bounded), unless it cuts code (:func:`_region_starts`,
    :class:`_RunEnds`, :func:`_leaves_out_needed`): that is a syntax error to report, not prose to
    strip. Runs from each start are tried longest first, and parsing stops early: a run from ``i``
    that reaches a syntax error seen before is not tried, and neither is a shorter one once a run from
    ``i`` compiles. Only runs that cut nothing are visited (a run that cuts costs nothing, where
    stepping over each one was quadratic in the lines); each parse is paid for from ``budget``, with
    the import and def lines consulted, and the search keeps what it found when that runs out."""
    if not budget.left:  # (no parse could be paid for: nothing would be found)
        return None
    runs = _RunEnds(lines, not problem.entry_point, prose)
    sizes = {i: n for n, i in enumerate(runs.filled)}
    # Import lines that compile alone ("from typing import *" outside the run is put in front of it)
    # and def/class lines, found once rather than in the lines left out of each run.
    imports = [k for k, line in enumerate(lines) if IMPORT_LINE.match(line) and not _fails_alone(line)]
    defs = [(k, m[3]) for k, line in enumerate(lines) if (m := _DEF_LINE.match(line))]
    best, best_size, parses = None, 0, _MAX_REGION_PARSES
    for i in _region_starts(lines, prose):
        ends, lowest = runs.ends(i, budget)
        if ends is None:
            return best
        at = len(ends) - 1  # runs from i, longest first
        while at >= lowest:
            j = ends[at]
            size = sizes[j] - sizes[i] + 1 if j >= i else 0
            if size <= best_size:
                break
            parses -= 1
            if parses < 0:
                return best
            kept_imports = [lines[k] for k in imports if k < i or k > j]
            text = "\n".join([*kept_imports, trim(dedent("\n".join(lines[i : j + 1])))])
            if not budget.spend(len(text) + len(imports) + len(defs)):
                return best
            tree, error_line = compile_or_error_line(text)
            at -= 1
            if tree is None and error_line is not None and error_line > len(kept_imports) + 1:
                # runs from i that reach this line hold a syntax error already seen (an error on the
                # first line may be the dedent's)
                at = min(at, bisect_left(ends, i + error_line - 1 - len(kept_imports)) - 1)
            if tree is not None:  # a shorter run from i would not do better
                if acceptable(tree, problem) and not _leaves_out_needed(defs, i, j, tree):
                    best, best_size = (text, tree), size
                break
    return best


def _leaves_out_needed(defs: list[tuple[int, str]], i: int, j: int, tree: ast.Module) -> bool:
    """Is a function or class the run uses defined only in the lines left out (``defs``: line, name)
    (a helper with a syntax error)? Then the error is the answer's, not prose around it."""
    left_out = {name for k, name in defs if k < i or k > j}
    return bool(left_out & free_names(tree))


class _RunEnds:
    """Where a run of lines from ``i`` may end without cutting a block of code. It cuts when the line
    after its end continues it (``else:``, ``)``, ``return`` at column 0), when a code line deeper
    than line ``i`` follows its end before the next def, class or import starts, or, ``strict``
    (stdin programs), when any code is left out. Precomputed: the ends allowed depend on ``i`` only
    through its indentation (and, strict, through whether code comes before it), so each
    indentation's list is built once and a search visits only the runs it may parse."""

    def __init__(self, lines: list[str], strict: bool, prose: Prose) -> None:
        self.lines = len(lines)
        self.filled = [i for i, line in enumerate(lines) if line.strip()]
        self.indent = [indent_width(line) for line in lines]
        self.code = [_is_code_line(line, prose) and not IMPORT_LINE.match(line) for line in lines]
        self.unit = [bool(_UNIT_START.match(line)) for line in lines]
        self.strict = strict
        self.first_code = next((k for k, is_code in enumerate(self.code) if is_code), self.lines)
        self.last_code = max((k for k, is_code in enumerate(self.code) if is_code), default=-1)
        self.continued = [False] * len(lines)  # the next non-blank line continues the code
        following = False
        for k in range(len(lines) - 1, -1, -1):
            self.continued[k] = following
            if lines[k].strip():
                following = bool(_CONTINUES.match(lines[k]))
        self._ends: dict[int, list[int]] = {}

    def ends(self, i: int, budget: Budget) -> tuple[list[int] | None, int]:
        """The non-blank lines a run from ``i`` may end at, ascending, and the index in that list of
        the lowest one it may end at (strict: none before the last code line); ([], 0) when every run
        from ``i`` cuts (strict: code comes before ``i``); (None, 0) when ``budget`` cannot pay for
        building the list."""
        if self.strict and self.first_code < i:
            return [], 0
        base = self.indent[i]
        if base not in self._ends:
            if not budget.spend(self.lines):
                return None, 0
            deeper = self._deeper_code_after(base)
            self._ends[base] = [j for j in self.filled if not self.continued[j] and not deeper[j]]
        ends = self._ends[base]
        return ends, bisect_left(ends, self.last_code) if self.strict else 0

    def _deeper_code_after(self, base: int) -> list[bool]:
        """For each line: is a code line deeper than ``base`` after it, before the next def/class?"""
        flags, deeper = [False] * len(self.code), False
        for k in range(len(self.code) - 1, -1, -1):
            flags[k] = deeper
            if self.code[k] and self.indent[k] > base:
                deeper = True
            elif self.code[k] and self.unit[k]:
                deeper = False
        return flags


def _is_code_line(line: str, prose: Prose) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith("#") and not prose(line)


def _region_starts(lines: list[str], prose: Prose) -> list[int]:
    """The lines a region may start at: code (not prose) that does not continue the code before it
    (``else:``, ``)``) and is not inside a block or brackets (under a code line that ends in ":", "(",
    ","...: a body without its ``def`` is a syntax error, not prose to strip)."""
    starts, stack = [], []  # stack: (indent, opens a block) of the code lines enclosing this one
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        while stack and stack[-1][0] >= indent_width(line):
            stack.pop()
        if not (stack and stack[-1][1]) and not _CONTINUES.match(line) and not prose(line):
            starts.append(i)
        if _is_code_line(line, prose):
            stack.append((indent_width(line), _TRAILING_COMMENT.sub("", line.rstrip()).endswith(_OPENS)))
    return starts


def _is_prose_line(line: str, prose: Prose) -> bool:
    """A column-0 line of prose (see :func:`_looks_like_prose`)."""
    return bool(line) and line[0] not in " \t" and prose(line)


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
