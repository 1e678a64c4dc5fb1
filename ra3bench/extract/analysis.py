"""What a piece of code is and does, read from its ``ast``: whether it compiles, the names it binds
and uses, whether it defines the entry point (with a body or as a stub) or reads stdin, and the
text helpers (trim, dedent) every step shares. The other modules judge code only through these, so
that choosing, repairing and sanitizing agree on what counts as a definition, a stub, or a program.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
import warnings
from dataclasses import dataclass

from ra3bench.suites.base import Problem


@dataclass
class Found:
    """Code that compiles, its tree, how it was found, and its place among the answer's blocks."""

    code: str
    tree: ast.Module
    method: str
    position: int = 0


FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
IMPORTS = (ast.Import, ast.ImportFrom)
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__builtins__", "__spec__", "__loader__"}
IMPORT_LINE = re.compile(r"^(from\s+\S+\s+)?import\s")


# The parsing one extraction may spend on searches (see Budget): a base for short answers, which may
# need many small parses, plus a few times the text, for long ones.
BUDGET_BASE = 128_000
BUDGET_PER_CHAR = 4


class Budget:
    """What one extraction may still spend on the parses it does by choice: salvage's search for the
    largest run of lines that compiles, and answers tried as a body under the prompt's signature. Each
    of those can re-parse the whole answer once per candidate (the search up to 400 times: 24 s on a
    50,000-character answer), and a model under RL training will find such an answer. So they share
    ``BUDGET_BASE + BUDGET_PER_CHAR * len(text)`` characters handed to the parser (plus one per line
    or table entry scanned besides), which makes extraction linear in the answer. Every other parse
    is of a piece of the answer, a fixed number of times. Real answers spend far less than the budget
    (``benchmarks/extract_speed.py`` checks that all of them extract as before); an answer that would
    spend more gets what the search found within it, as a search cut short by the 400-parse cap did."""

    def __init__(self, chars: int) -> None:
        self.left = chars
        self.spent = 0

    @classmethod
    def for_length(cls, chars: int) -> Budget:
        """The budget for an answer of ``chars`` characters (with the prompt, when that is parsed too)."""
        return cls(BUDGET_BASE + BUDGET_PER_CHAR * chars)

    def spend(self, chars: int) -> bool:
        """Take ``chars`` if that many are left; else none are left (a search that stops stays stopped)."""
        if chars > self.left:
            self.left = 0
            return False
        self.left -= chars
        self.spent += chars
        return True


def compile_tree(code: str) -> ast.Module | None:
    """The tree of ``code`` if it compiles: parsing alone accepts ``return`` outside a function."""
    return compile_or_error_line(code)[0]


def compile_or_error_line(code: str) -> tuple[ast.Module | None, int | None]:
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
def prompt_tree(prompt: str) -> ast.Module | None:
    """The prompt's tree when it is code (HumanEval, MBPP, Codeforces), None when it is prose."""
    return compile_tree(prompt)


def acceptable(tree: ast.Module, problem: Problem) -> bool:
    """Good enough to stand for the answer: defines the entry point with a body, or reads stdin."""
    if problem.entry_point:
        return entry_rank(tree, problem.entry_point) == 2
    return reads_stdin(tree)


def entry_rank(tree: ast.Module, entry_point: str) -> int:
    """2: ``tree`` defines the entry point with a body; 1: as a stub or an assignment; 0: not at all."""
    owner, _, name = entry_point.rpartition(".")
    scope: list[ast.stmt] = tree.body
    if owner:
        scope = [s for c in tree.body if isinstance(c, ast.ClassDef) and c.name == owner for s in c.body]
    rank = 0
    for node in scope:
        if isinstance(node, FUNCS) and node.name == name:
            rank = max(rank, 1 if is_stub(node) else 2)
        elif name in assigned_names(node):
            rank = max(rank, 1)
    return rank


def is_stub(node: ast.stmt) -> bool:
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
    return isinstance(stmt, DEFS) and is_stub(stmt)


def substantive(tree: ast.Module) -> bool:
    """Does something: a lone word or docstring (prose that happens to parse) does not count."""
    trivial = (ast.Constant, ast.Name, ast.Attribute)
    return any(
        not (isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, trivial))) for s in tree.body
    )


def reads_stdin(tree: ast.Module) -> bool:
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


def assigned_names(node: ast.AST) -> list[str]:
    """Names a top-level assignment binds (``a, b = ...`` binds both)."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif (isinstance(node, ast.AnnAssign) and node.value is not None) or isinstance(node, ast.AugAssign):
        targets = [node.target]
    else:
        return []
    # (a plain name, the usual target, without walking it: extraction asks this of every statement)
    return [
        n.id
        for t in targets
        for n in ((t,) if isinstance(t, ast.Name) else ast.walk(t))
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    ]


def import_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {a.asname or a.name.split(".")[0] for a in node.names if a.name != "*"}


def top_bindings(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, DEFS):
            names.add(node.name)
        elif isinstance(node, IMPORTS):
            names |= import_names(node)
        else:
            names.update(assigned_names(node))
    return names


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (over-approximated: locals count)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, DEFS):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, IMPORTS):
            names |= import_names(node)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        else:
            for attr in ("name", "rest"):  # except ... as name; match patterns
                value = getattr(node, attr, None)
                if isinstance(value, str) and not isinstance(node, ast.alias):
                    names.add(value)
    return names


def loaded_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def free_names(tree: ast.AST) -> set[str]:
    """Names used but bound nowhere in the code, builtins aside."""
    return loaded_names(tree) - _bound_names(tree) - _BUILTINS


def indent_width(line: str) -> int:
    return len(line) - len(line.lstrip())


def dedent(text: str) -> str:
    """``textwrap.dedent`` that leaves whitespace-only lines alone where it can (they may sit in a string)."""
    lines = text.split("\n")
    prefix = _common_prefix([line[: indent_width(line)] for line in lines if line.strip()])
    return "\n".join(line[len(prefix) :] if line.startswith(prefix) else line.strip() for line in lines)


def _common_prefix(strings: list[str]) -> str:
    """The longest prefix of them all: that of the first and last in sorted order. Linear, where
    shortening the shortest a character at a time until all start with it was quadratic."""
    if not strings:
        return ""
    low, high = min(strings), max(strings)
    n = next((k for k, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))
    return low[:n]


def trim(text: str) -> str:
    """``text`` without blank lines at either end (indentation kept). Indices, not ``pop(0)``: that is
    quadratic in the number of leading blank lines."""
    lines = text.split("\n")
    first = next((k for k, line in enumerate(lines) if line.strip()), len(lines))
    last = next((k for k in range(len(lines) - 1, first - 1, -1) if lines[k].strip()), first - 1)
    return "\n".join(lines[first : last + 1])
