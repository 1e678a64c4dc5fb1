"""Find the program in a model's output and sanitize it, as evalplus does, with the stdlib ``ast``.

Two styles (``ra3bench.prompts``):

* ``completion``: a base model continued ``Problem.prompt``. When the prompt is code (HumanEval's
  signature and docstring, MBPP's docstring, Codeforces' comment header) the program is
  ``prompt + text``; a continuation that restarted with a fenced block of its own is read as a
  chat answer instead. When the prompt is prose (LiveCodeBench's ``### Answer``), the text alone
  is read as a chat answer, as lcb_runner reads it.
* ``chat``: the assistant's answer, maybe after ``<think>`` reasoning, maybe starting with a
  response prefix whose ```` ```python ```` fence generation never closed.

Finding the code in an answer:

1. Everything up to the last ``</think>`` is reasoning and is dropped (an unclosed one is kept).
2. Fenced blocks: ```` ``` ```` or ``~~~``, language python/py/none (others only when there is no
   Python block), the last one possibly unclosed, a fence opened after text on its line
   ("Assistant: ```python") or right after a block closes ("```python" twice), the code before a
   lone closing fence.
3. A block must compile and do something (comments only do not count), else it is salvaged
   (below). The block that defines the entry point wins (a body beats a stub; the last of
   equals); for stdin programs the last block that reads stdin; else the longest. Blocks the
   winner needs are joined to it: definition-only blocks binding a name it uses and lacks, and
   (stdin) later blocks that call a function it defines but never calls ("then run main: ...").
4. No fence: the whole text, salvaged.
5. Last resort for function problems: an answer that is only a body (no ``def``) goes under the
   prompt's signature.

Salvage, for code that does not compile. A repair must define the entry point with a body (stdin
programs: read stdin). First, prose lines at column 0 are dropped (a line is prose when it does not
compile alone and does not start with a keyword or like a statement: ``return x``, ``x = [1]]``
and ``f(1) ➞ 2`` are broken code, not prose). Else the largest run of lines that compiles is kept,
dedented (evalplus's ``code_extract``), but a run may not start inside a block, stop before code
that continues it, leave out a helper it calls, or, for a stdin program, leave out any code: a
genuine syntax error must stay one, for the sandbox to report, rather than turn into a truncated
function that runs. Lines written with literal ``\\n`` escapes (JSON-escaped answers) are unescaped
when that is what it takes.

Sanitizing function problems (evalplus's ``sanitize``): keep every top-level import, and the
top-level functions, classes and assignments reachable by name from the entry point (its class for
``Class.method``) and from the functions the prompt defines (HumanEval's helpers such as
``encode_cyclic``, which test programs call; one the program lacks is taken from the prompt). For
a name defined twice the last real definition wins: a stub with only a docstring loses to a body
(evalplus's has-a-return rule, without dropping functions that return nothing). Top-level
statements that fill a kept variable (a precomputed table) and ``sys.setrecursionlimit`` stay;
everything else goes: ``if __name__ == "__main__":`` blocks, prints, asserts, example calls. Stdin
programs are kept whole. In both, a name the program uses but never binds gets the prompt's import
line that binds it, else ``from typing import ...`` for typing names (LeetCode starter code uses
``List`` unimported).

Nothing raises. With no code at all the method is "empty"; with code that does not compile the
program is the best text found (so the sandbox reports a syntax error) and the method is
"unparseable". Methods: fenced, fenced_unclosed, raw_code, prose_stripped, unescaped, completion
(also: a bare body put under the signature), empty, unparseable.
"""

from __future__ import annotations

import ast
import builtins
import codeop
import functools
import keyword
import re
import textwrap
import typing
import warnings
from dataclasses import dataclass, field

from ra3bench.suites.base import Problem


@dataclass
class Extraction:
    program: str  # the program to execute
    method: str  # how it was found (see the module docstring)


@dataclass
class _Found:
    """Code that compiles, its tree, how it was found, and its place among the answer's blocks."""

    code: str
    tree: ast.Module
    method: str
    position: int = 0


@dataclass
class _Block:
    """A fenced block (or the code before a lone closing fence), as written."""

    raw: str
    lang: str
    method: str  # "fenced" or "fenced_unclosed"
    outside: bool = False  # the text before the first fence, not a block

    @property
    def code(self) -> str:
        return _trim(_dedent(self.raw))


@dataclass
class _Unit:
    """One top-level statement of a program being sanitized."""

    order: int
    text: str
    node: ast.stmt
    uses: set[str] = field(default_factory=set)


_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_IMPORTS = (ast.Import, ast.ImportFrom)
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__builtins__", "__spec__", "__loader__"}
_TYPING = frozenset(typing.__all__)
_FENCE_OPEN = re.compile(r"^(?P<pre>.*?)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[ \t]*$")
_PYTHON_LANG = re.compile(r"(?i)py(thon)?[0-9.]*")
_THINK_END = re.compile(r"</(think|thinking|reasoning|thought)>", re.IGNORECASE)
_THINK_TAG = re.compile(r"</?(think|thinking|reasoning|thought)>", re.IGNORECASE)
# Lines that continue the code above them: a region may not start at one or stop before one.
_CONTINUES = re.compile(r"^\s*((elif|else|except|finally|return|yield|break|continue|nonlocal|and|or)\b|[)\]}])")
_DEF_LINE = re.compile(r"^\s*(async\s+)?(def|class)\s+(\w+)")
_UNIT_START = re.compile(r"^\s*(@|def\b|async\s+def\b|class\b|import\b|from\b|if\s+__name__\b)")
_CODE_SHAPED = re.compile(r"^[A-Za-z_]\w*(\.\w+)*\s*(\(|\[|=|[-+*/%&|^@<>]=)")  # f(...) / x[...] / a.b = ...
_OPENS = (":", ",", "(", "[", "{", "\\")
_IMPORT_LINE = re.compile(r"^(from\s+\S+\s+)?import\s")
_MAX_REGION_PARSES = 400  # bounds the region search on long, broken outputs


def extract_program(text: str, problem: Problem, style: str) -> Extraction:
    """The program to run for one model output (``style``: "completion" or "chat")."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if style == "completion":
        return _from_completion(text, problem)
    return _from_answer(_strip_reasoning(text), problem)


# --- the two styles -------------------------------------------------------------------------------


def _from_completion(text: str, problem: Problem) -> Extraction:
    """``prompt + text`` when the prompt is code; the text read as an answer when it is prose or when
    the model restarted with a fenced block of its own."""
    if not text.strip():
        return Extraction("", "empty")
    if _prompt_tree(problem.prompt) is None:
        found = _from_answer(text, problem)
        return Extraction(found.program, "completion") if found.method == "raw_code" else found
    if any(_opening(line) for line in text.split("\n")):
        found = _find_in_answer(text, problem)
        if found and _acceptable(found.tree, problem):
            return Extraction(_finish(found, problem), found.method)
    joined = problem.prompt + text
    found = _salvage(joined, problem)
    if found is None:
        return Extraction(joined, "unparseable")
    return Extraction(_finish(found, problem), "completion" if found.method == "raw_code" else found.method)


def _from_answer(text: str, problem: Problem) -> Extraction:
    if not text.strip():
        return Extraction("", "empty")
    found = _find_in_answer(text, problem)
    if found is not None:
        return Extraction(_finish(found, problem), found.method)
    blocks, fenced = _blocks(text)
    best = max((b.code for b in blocks if not b.outside), key=len, default="") if fenced else _trim(text)
    if _compile(best) is not None or not best.strip():  # nothing but comments, constants, blanks
        return Extraction(best, "empty")
    return Extraction(best, "unparseable")


def _strip_reasoning(text: str) -> str:
    """Drop ``<think>`` reasoning; an unclosed one is kept (its drafts may be all the code there is)."""
    ends = list(_THINK_END.finditer(text))
    return text[ends[-1].end() :] if ends else _THINK_TAG.sub("", text)


def _find_in_answer(text: str, problem: Problem) -> _Found | None:
    """The code of an answer: the best fenced block, else the salvaged text, else a bare body."""
    blocks, fenced = _blocks(text)
    chosen = None
    if fenced:
        candidates = _candidates(blocks, problem)
        if candidates:
            chosen = _join_related(max(candidates, key=lambda c: _score(c, problem)), candidates, problem)
            if _acceptable(chosen.tree, problem) or not problem.entry_point:
                return chosen
    plain = "\n".join(line for line in text.split("\n") if not _opening(line)) if fenced else text
    found = chosen or _salvage(plain, problem)
    if found is not None and (_acceptable(found.tree, problem) or not problem.entry_point):
        return found
    for source in [*(b.raw for b in reversed(blocks)), plain]:
        body = _as_body(source, problem)
        if body is not None:
            return body
    return found


# --- fenced blocks --------------------------------------------------------------------------------


def _opening(line: str) -> tuple[str, str] | None:
    """(fence, language) when ``line`` opens a fenced block: the fence ends the line, after nothing
    or after text and a space ("Assistant: ```python")."""
    m = _FENCE_OPEN.match(line)
    if m is None or "`" in m["pre"] or (m["pre"] and m["pre"][-1] not in " \t:"):
        return None
    return m["fence"], m["lang"]


def _closing(line: str, fence: str) -> tuple[str, str | None] | None:
    """None if ``line`` does not close the block; else (code before the fence on that line, the
    language of a block that the same line opens: "```python" right after a block)."""
    stripped = line.strip()
    if stripped.startswith(fence):
        rest = stripped.lstrip(fence[0]).strip()
        return "", (rest if re.fullmatch(r"[\w+#.-]+", rest) else None)
    if line.rstrip().endswith(fence) and line.strip() != fence:
        return line.rstrip()[: -len(fence)], None
    return None


def _blocks(text: str) -> tuple[list[_Block], bool]:
    """The fenced blocks of ``text`` in order, the code before the first fence first (the code of a
    lone closing fence), and whether any fence was seen."""
    blocks: list[_Block] = []
    before: list[str] = []
    current: list[str] | None = None
    fence, lang, seen = "", "", False
    for line in text.split("\n"):
        if current is None:
            opened = _opening(line)
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
        blocks.append(_Block("\n".join([*current, tail] if tail.strip() else current), lang, "fenced"))
        current, lang = ([], reopened) if reopened is not None else (None, lang)
    if current is not None:
        blocks.append(_Block("\n".join(current), lang, "fenced_unclosed"))
    if seen:
        blocks.insert(0, _Block("\n".join(before), "", "fenced", outside=True))
    return blocks, seen


def _candidates(blocks: list[_Block], problem: Problem) -> list[_Found]:
    """The blocks whose code compiles (or is salvaged), Python blocks only when there are any."""
    python = [b for b in blocks if not b.lang or _PYTHON_LANG.fullmatch(b.lang)] or blocks
    found = []
    for position, block in enumerate(python):
        salvaged = _salvage(block.code, problem)
        if salvaged is not None:
            method = block.method if salvaged.method == "raw_code" else salvaged.method
            found.append(_Found(salvaged.code, salvaged.tree, method, position))
    return found


def _score(found: _Found, problem: Problem) -> tuple[int, int, int]:
    """Defines the entry point (with a body: 2) or reads stdin (1); then, for the rest, length; then position."""
    entry = problem.entry_point
    rank = _entry_rank(found.tree, entry) if entry else int(_reads_stdin(found.tree))
    size = sum(1 for line in found.code.split("\n") if line.strip()) if rank == 0 else 0
    return rank, size, found.position


def _join_related(chosen: _Found, candidates: list[_Found], problem: Problem) -> _Found:
    """``chosen`` with the blocks it needs: definition-only blocks binding a name it uses and lacks
    (before it); for stdin programs, later blocks calling a function it defines and never calls."""
    free = _free_names(chosen.tree)
    others = [c for c in candidates if c is not chosen]
    before = [c for c in others if _definitions_only(c.tree) and free & _top_bindings(c.tree)]
    after: list[_Found] = []
    uncalled = _uncalled_functions(chosen.tree)
    if not problem.entry_point and uncalled:
        after = [
            c
            for c in others
            if c.position > chosen.position
            and uncalled & _loaded_names(c.tree)
            and not _top_bindings(c.tree) & _top_bindings(chosen.tree)
        ]
    if not before and not after:
        return chosen
    code = "\n\n".join(c.code for c in [*before, chosen, *after])
    tree = _compile(code)
    return _Found(code, tree, chosen.method, chosen.position) if tree is not None else chosen


# --- salvage --------------------------------------------------------------------------------------


def _salvage(code: str, problem: Problem) -> _Found | None:
    """``code`` if it compiles and does something; else its repair (module docstring), if any."""
    code = _trim(code)
    tree = _compile(code)
    if tree is not None:
        return _Found(code, tree, "raw_code") if _substantive(tree) else None

    repaired = _repair(code, problem)
    if repaired is not None:
        return _Found(*repaired, "prose_stripped")
    unescaped = _unescape(code)
    if unescaped is None:
        return None
    tree = _compile(unescaped)
    if tree is not None and _acceptable(tree, problem):
        return _Found(unescaped, tree, "unescaped")
    repaired = _repair(unescaped, problem)
    return _Found(*repaired, "unescaped") if repaired is not None else None


def _repair(code: str, problem: Problem) -> tuple[str, ast.Module] | None:
    """Drop prose lines at column 0; else keep the largest clean run of lines that compiles."""
    lines = code.split("\n")
    kept = _trim("\n".join(line for line in lines if not _is_prose_line(line)))
    tree = _compile(kept)
    if tree is not None and _acceptable(tree, problem):
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
            tree, error_line = _compile_or_error_line(text)
            if tree is None and error_line is not None and error_line > len(imports) + 1:
                limit = i + error_line - 1 - len(imports)  # (an error on the first line may be the dedent's)
            if tree is not None:  # a shorter region from i would not do better
                if _acceptable(tree, problem) and not _leaves_out_needed(lines, i, j, tree):
                    best, best_size = (text, tree), size
                break
    return best


def _region_text(lines: list[str], i: int, j: int) -> tuple[list[str], str]:
    """The import lines left out of lines ``i..j`` ("from typing import *" put in front of an
    indented answer), and the code: those imports, then the lines dedented."""
    outside = [*lines[:i], *lines[j + 1 :]]
    imports = [line for line in outside if _IMPORT_LINE.match(line) and not _fails_alone(line)]
    return imports, "\n".join([*imports, _trim(_dedent("\n".join(lines[i : j + 1])))])


def _leaves_out_needed(lines: list[str], i: int, j: int, tree: ast.Module) -> bool:
    """Is a function or class the region uses defined only in the lines left out (a helper with a
    syntax error)? Then the error is the answer's, not prose around it."""
    outside = [*lines[:i], *lines[j + 1 :]]
    left_out = {m[3] for line in outside if (m := _DEF_LINE.match(line))}
    return bool(left_out & _free_names(tree))


class _Cuts:
    """Does keeping only lines ``i..j`` cut a block of code? Yes when the line after ``j`` continues
    it (``else:``, ``)``, ``return`` at column 0), when a code line deeper than line ``i`` follows
    ``j`` before the next def, class or import starts, or, ``strict`` (stdin programs), when any
    code is left out. Precomputed, so that each question takes constant time."""

    def __init__(self, lines: list[str], strict: bool) -> None:
        self.indent = [_indent(line) for line in lines]
        self.code = [_is_code_line(line) and not _IMPORT_LINE.match(line) for line in lines]
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
        while stack and stack[-1][0] >= _indent(line):
            stack.pop()
        if not (stack and stack[-1][1]) and not _CONTINUES.match(line) and not _looks_like_prose(line):
            starts.append(i)
        if _is_code_line(line):
            stack.append((_indent(line), re.sub(r"\s+#.*$", "", line.rstrip()).endswith(_OPENS)))
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
        except (SyntaxError, ValueError, OverflowError):
            return True
    return False


def _unescape(code: str) -> str | None:
    """Code written as an escaped string (literal ``\\n``), as some models served through a JSON API
    answer: the lines holding two escaped newlines or more, unescaped; None when there are none."""
    lines = code.split("\n")
    if not any(line.count("\\n") >= 2 for line in lines):
        return None
    return _trim("\n".join(_unescape_line(line) if line.count("\\n") >= 2 else line for line in lines))


def _unescape_line(line: str) -> str:
    for escaped, plain in (("\\\\n", "\n"), ("\\n", "\n"), ("\\t", "\t"), ('\\"', '"'), ("\\'", "'")):
        line = line.replace(escaped, plain)
    return line


def _as_body(text: str, problem: Problem) -> _Found | None:
    """A function body written without its ``def`` (a chat model continuing the signature), put
    under the prompt's signature; column-0 import lines go first."""
    prompt = _prompt_tree(problem.prompt)
    if not problem.entry_point or prompt is None or not prompt.body:
        return None
    stub = prompt.body[-1]
    if not isinstance(stub, _FUNCS) or stub.name != problem.entry_point.split(".")[0]:
        return None
    lines = _trim(text).split("\n")
    imports = [line for line in lines if _IMPORT_LINE.match(line)]
    body = _trim("\n".join(line for line in lines if not _IMPORT_LINE.match(line)))
    if not body[:1].isspace():
        return None
    indent = " " * stub.body[0].col_offset
    code = "\n".join([*imports, problem.prompt.rstrip(), textwrap.indent(_dedent(body), indent)])
    tree = _compile(code)
    if tree is None or _entry_rank(tree, problem.entry_point) < 2:
        return None
    return _Found(code, tree, "completion")


# --- what code does -------------------------------------------------------------------------------


def _compile(code: str) -> ast.Module | None:
    """The tree of ``code`` if it compiles: parsing alone accepts ``return`` outside a function."""
    return _compile_or_error_line(code)[0]


def _compile_or_error_line(code: str) -> tuple[ast.Module | None, int | None]:
    """(the tree, None) if ``code`` compiles, else (None, the line of the error when known)."""
    if not code.strip():
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(code)
            compile(tree, "<extract>", "exec", dont_inherit=True)
        except SyntaxError as error:
            return None, error.lineno
        except (ValueError, TypeError, RecursionError, MemoryError, OverflowError):
            return None, None
    return tree, None


@functools.lru_cache(maxsize=64)
def _prompt_tree(prompt: str) -> ast.Module | None:
    """The prompt's tree when it is code (HumanEval, MBPP, Codeforces), None when it is prose."""
    return _compile(prompt)


def _acceptable(tree: ast.Module, problem: Problem) -> bool:
    """Good enough to stand for the answer: defines the entry point with a body, or reads stdin."""
    if problem.entry_point:
        return _entry_rank(tree, problem.entry_point) == 2
    return _reads_stdin(tree)


def _entry_rank(tree: ast.Module, entry_point: str) -> int:
    """2: ``tree`` defines the entry point with a body; 1: as a stub or an assignment; 0: not at all."""
    owner, _, name = entry_point.rpartition(".")
    scope: list[ast.stmt] = tree.body
    if owner:
        scope = [s for c in tree.body if isinstance(c, ast.ClassDef) and c.name == owner for s in c.body]
    rank = 0
    for node in scope:
        if isinstance(node, _FUNCS) and node.name == name:
            rank = max(rank, 1 if _is_stub(node) else 2)
        elif name in _assigned_names(node):
            rank = max(rank, 1)
    return rank


def _is_stub(node: ast.stmt) -> bool:
    """A def or class with nothing but a docstring, ``pass``, ``...``, ``raise NotImplementedError``."""
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return all(_is_stub_statement(s) for s in body)


def _is_stub_statement(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return isinstance(stmt, _DEFS) and _is_stub(stmt)


def _substantive(tree: ast.Module) -> bool:
    """Does something: a lone word or docstring (prose that happens to parse) does not count."""
    trivial = (ast.Constant, ast.Name, ast.Attribute)
    return any(
        not (isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, trivial))) for s in tree.body
    )


def _reads_stdin(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "input":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "stdin":
            return True
        if _is_open_zero(node):
            return True
    return False


def _is_open_zero(node: ast.AST) -> bool:
    """``open(0)``: stdin as a file."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"):
        return False
    return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0


def _assigned_names(node: ast.AST) -> list[str]:
    """Names a top-level assignment binds (``a, b = ...`` binds both)."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif (isinstance(node, ast.AnnAssign) and node.value is not None) or isinstance(node, ast.AugAssign):
        targets = [node.target]
    else:
        return []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def _import_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {a.asname or a.name.split(".")[0] for a in node.names if a.name != "*"}


def _top_bindings(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, _DEFS):
            names.add(node.name)
        elif isinstance(node, _IMPORTS):
            names |= _import_names(node)
        else:
            names.update(_assigned_names(node))
    return names


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (over-approximated: locals count)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, _DEFS):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, _IMPORTS):
            names |= _import_names(node)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        else:
            for attr in ("name", "rest"):  # except ... as name; match patterns
                value = getattr(node, attr, None)
                if isinstance(value, str) and not isinstance(node, ast.alias):
                    names.add(value)
    return names


def _loaded_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _free_names(tree: ast.AST) -> set[str]:
    """Names used but bound nowhere in the code, builtins aside."""
    return _loaded_names(tree) - _bound_names(tree) - _BUILTINS


def _definitions_only(tree: ast.Module) -> bool:
    return all(isinstance(s, (*_DEFS, *_IMPORTS)) or _assigned_names(s) for s in tree.body)


def _uncalled_functions(tree: ast.Module) -> set[str]:
    defined = {s.name for s in tree.body if isinstance(s, _FUNCS)}
    return defined - _loaded_names(tree)


# --- sanitizing -----------------------------------------------------------------------------------


def _finish(found: _Found, problem: Problem) -> str:
    """The program: sanitized for function problems, whole for stdin, plus the imports it lacks."""
    code, tree = found.code, found.tree
    if problem.entry_point:
        sanitized = _sanitize(code, tree, problem)
        sanitized_tree = _compile(sanitized)
        if sanitized_tree is not None:  # never trade a program that compiles for one that does not
            code, tree = sanitized, sanitized_tree
    return _with_missing_imports(code, tree, problem).rstrip("\n") + "\n"


def _sanitize(code: str, tree: ast.Module, problem: Problem) -> str:
    """Imports, then the definitions reachable from the entry point and the prompt's functions."""
    lines = code.split("\n")
    units = [_Unit(n, _segment(lines, node), node) for n, node in enumerate(tree.body)]
    prompt = _prompt_tree(problem.prompt)
    prompt_defs = _prompt_definitions(problem.prompt, prompt, _top_bindings(tree)) if prompt else []
    definitions = _definitions([*prompt_defs, *units])
    fillers = [u for u in units if _is_filler(u.node, problem.entry_point.split(".")[0])]
    roots = {problem.entry_point.split(".")[0]}
    roots |= {s.name for s in (prompt.body if prompt else []) if isinstance(s, _DEFS)}
    kept = _reachable(roots, definitions, fillers)
    kept += [u for u in units if _is_setup_call(u.node)]
    imports = list(dict.fromkeys(u.text for u in units if _is_import(u.node)))
    return _join(imports, sorted(kept, key=lambda u: u.order))


def _prompt_definitions(prompt_text: str, prompt: ast.Module, bound: set[str]) -> list[_Unit]:
    """The prompt's own functions and classes (not stubs) that the program does not define, first."""
    lines = prompt_text.split("\n")
    found = [s for s in prompt.body if isinstance(s, _DEFS) and s.name not in bound and not _is_stub(s)]
    return [_Unit(n - len(found), _segment(lines, node), node) for n, node in enumerate(found)]


def _definitions(units: list[_Unit]) -> dict[str, list[_Unit]]:
    """Name -> the units defining it: the last real def or class (else the last stub), or, for a
    name with no def, all its assignments in order."""
    defs: dict[str, list[_Unit]] = {}
    assigns: dict[str, list[_Unit]] = {}
    for unit in units:
        unit.uses = _loaded_names(unit.node)
        if isinstance(unit.node, _DEFS):
            previous = defs.get(unit.node.name)
            if not previous or not _is_stub(unit.node) or _is_stub(previous[0].node):
                defs[unit.node.name] = [unit]
        for name in _assigned_names(unit.node):
            assigns.setdefault(name, []).append(unit)
    return {**{k: v for k, v in assigns.items() if k not in defs}, **defs}


def _reachable(roots: set[str], definitions: dict[str, list[_Unit]], fillers: list[_Unit]) -> list[_Unit]:
    """The units the roots need, following names; fillers come with the variables they fill."""
    kept: dict[int, _Unit] = {}
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        needed = list(definitions.get(name, []))
        if name in definitions and not isinstance(definitions[name][0].node, _DEFS):
            needed += [u for u in fillers if name in _written_names(u.node)]
        for unit in needed:
            if id(unit) not in kept:
                kept[id(unit)] = unit
                todo.extend(unit.uses)
    return list(kept.values())


def _is_import(node: ast.stmt) -> bool:
    """An import, or a ``try:`` of imports only (``try: from math import comb except ...``)."""
    if isinstance(node, _IMPORTS):
        return True
    return isinstance(node, ast.Try) and all(isinstance(s, _IMPORTS) for s in node.body)


def _is_setup_call(node: ast.stmt) -> bool:
    """``sys.setrecursionlimit(...)``: recursive solutions need it at import time."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "setrecursionlimit"
    )


def _is_filler(node: ast.stmt, entry_root: str) -> bool:
    """A statement that fills a variable (a loop building a table), not a test or an example: no
    ``__main__`` guard, assert, print, input, or use of the entry point."""
    if isinstance(node, (*_DEFS, *_IMPORTS, ast.Assert)) or _assigned_names(node):
        return False
    if isinstance(node, ast.If) and "__name__" in _loaded_names(node.test):
        return False
    loaded = _loaded_names(node)
    return not loaded & {"print", "input", entry_root} and bool(_written_names(node))


def _written_names(node: ast.stmt) -> set[str]:
    """Variables a statement writes: assigned, subscript/attribute targets, ``x.append(...)`` bases."""
    names: set[str] = set()
    for sub in ast.walk(node):
        target = None
        if isinstance(sub, (ast.Subscript, ast.Attribute)) and isinstance(sub.ctx, ast.Store):
            target = sub.value
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
            target = sub.func.value
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            target = sub
        while isinstance(target, (ast.Subscript, ast.Attribute)):
            target = target.value
        if isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _segment(lines: list[str], node: ast.stmt) -> str:
    """The source of a top-level statement, decorators included (columns are UTF-8 byte offsets)."""
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    chunk = [line.encode() for line in lines[first - 1 : node.end_lineno]]
    rest = chunk[-1][node.end_col_offset :].strip()
    if rest and not rest.startswith(b"#"):  # another statement after a ";": not this one's
        chunk[-1] = chunk[-1][: node.end_col_offset]
    chunk[0] = chunk[0][node.col_offset if first == node.lineno else 0 :]
    return b"\n".join(chunk).decode("utf-8", "replace")


def _join(imports: list[str], units: list[_Unit]) -> str:
    """Imports, then the statements: two blank lines around defs and classes, none between others."""
    out = "\n".join(imports)
    previous: _Unit | None = None
    for unit in units:
        if out:
            spaced = isinstance(unit.node, _DEFS) or (previous is not None and isinstance(previous.node, _DEFS))
            out += "\n\n\n" if spaced or previous is None else "\n"
        out += unit.text
        previous = unit
    return out + "\n"


def _with_missing_imports(code: str, tree: ast.Module, problem: Problem) -> str:
    """``code`` with the prompt's import lines for names it uses but never binds, then
    ``from typing import ...`` for the typing names still missing; after any ``__future__`` import."""
    free = _free_names(tree)
    if not free:
        return code
    added: list[str] = []
    prompt = _prompt_tree(problem.prompt)
    if prompt is not None:
        lines = problem.prompt.split("\n")
        for node in prompt.body:
            if isinstance(node, _IMPORTS) and _import_names(node) & free:
                added.append(_segment(lines, node))
                free -= _import_names(node)
    if free & _TYPING:
        added.append(f"from typing import {', '.join(sorted(free & _TYPING))}")
    if not added:
        return code
    future = [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    lines = code.split("\n")
    at = max((s.end_lineno or 0 for s in future), default=0)
    if at < len(lines) and lines[at].strip() and not _IMPORT_LINE.match(lines[at]):
        added.append("")  # a blank line between the imports and the code
    return "\n".join([*lines[:at], *added, *lines[at:]])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _dedent(text: str) -> str:
    """``textwrap.dedent`` that leaves whitespace-only lines alone where it can (they may sit in a string)."""
    lines = text.split("\n")
    margins = [line[: _indent(line)] for line in lines if line.strip()]
    prefix = min(margins, key=len) if margins else ""
    while any(not m.startswith(prefix) for m in margins):
        prefix = prefix[:-1]
    return "\n".join(line[len(prefix) :] if line.startswith(prefix) else line.strip() for line in lines)


def _trim(text: str) -> str:
    """``text`` without blank lines at either end (indentation kept)."""
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)
