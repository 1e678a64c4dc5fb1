"""The program that runs, from the chosen code (evalplus's ``sanitize``): for function problems, the
imports and the definitions reachable from the entry point and the prompt's functions, the last real
definition of a name winning; in both styles, the prompt's import lines (or ``typing`` names) for
names the program uses but never binds. Tests, prints and ``__main__`` blocks go, so that the
benchmark's tests, not the model's examples, decide.
"""

from __future__ import annotations

import ast
import typing
from dataclasses import dataclass, field

from ra3bench.extract.analysis import (
    DEFS,
    IMPORT_LINE,
    IMPORTS,
    Found,
    assigned_names,
    compile_tree,
    free_names,
    import_names,
    is_stub,
    loaded_names,
    prompt_tree,
    top_bindings,
)
from ra3bench.suites.base import Problem


@dataclass
class _Unit:
    """One top-level statement of a program being sanitized."""

    order: int
    text: str
    node: ast.stmt
    uses: set[str] = field(default_factory=set)


_TYPING = frozenset(typing.__all__)


def finish(found: Found, problem: Problem) -> str:
    """The program: sanitized for function problems, whole for stdin, plus the imports it lacks."""
    code, tree = found.code, found.tree
    if problem.entry_point:
        sanitized = _sanitize(code, tree, problem)
        sanitized_tree = compile_tree(sanitized)
        if sanitized_tree is not None:  # never trade a program that compiles for one that does not
            code, tree = sanitized, sanitized_tree
    return _with_missing_imports(code, tree, problem).rstrip("\n") + "\n"


def _sanitize(code: str, tree: ast.Module, problem: Problem) -> str:
    """Imports, then the definitions reachable from the entry point and the prompt's functions."""
    lines = code.split("\n")
    units = [_Unit(n, _segment(lines, node), node) for n, node in enumerate(tree.body)]
    prompt = prompt_tree(problem.prompt)
    prompt_defs = _prompt_definitions(problem.prompt, prompt, top_bindings(tree)) if prompt else []
    definitions = _definitions([*prompt_defs, *units])
    fillers = [u for u in units if _is_filler(u.node, problem.entry_point.split(".")[0])]
    roots = {problem.entry_point.split(".")[0]}
    roots |= {s.name for s in (prompt.body if prompt else []) if isinstance(s, DEFS)}
    kept = _reachable(roots, definitions, fillers)
    kept += [u for u in units if _is_setup_call(u.node)]
    imports = list(dict.fromkeys(u.text for u in units if _is_import(u.node)))
    return _join(imports, sorted(kept, key=lambda u: u.order))


def _prompt_definitions(prompt_text: str, prompt: ast.Module, bound: set[str]) -> list[_Unit]:
    """The prompt's own functions and classes (not stubs) that the program does not define, first."""
    lines = prompt_text.split("\n")
    found = [s for s in prompt.body if isinstance(s, DEFS) and s.name not in bound and not is_stub(s)]
    return [_Unit(n - len(found), _segment(lines, node), node) for n, node in enumerate(found)]


def _definitions(units: list[_Unit]) -> dict[str, list[_Unit]]:
    """Name -> the units defining it: the last real def or class (else the last stub), or, for a
    name with no def, all its assignments in order."""
    defs: dict[str, list[_Unit]] = {}
    assigns: dict[str, list[_Unit]] = {}
    for unit in units:
        unit.uses = loaded_names(unit.node)
        if isinstance(unit.node, DEFS):
            previous = defs.get(unit.node.name)
            if not previous or not is_stub(unit.node) or is_stub(previous[0].node):
                defs[unit.node.name] = [unit]
        for name in assigned_names(unit.node):
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
        if name in definitions and not isinstance(definitions[name][0].node, DEFS):
            needed += [u for u in fillers if name in _written_names(u.node)]
        for unit in needed:
            if id(unit) not in kept:
                kept[id(unit)] = unit
                todo.extend(unit.uses)
    return list(kept.values())


def _is_import(node: ast.stmt) -> bool:
    """An import, or a ``try:`` of imports only (``try: from math import comb except ...``)."""
    if isinstance(node, IMPORTS):
        return True
    return isinstance(node, ast.Try) and all(isinstance(s, IMPORTS) for s in node.body)


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
    if isinstance(node, (*DEFS, *IMPORTS, ast.Assert)) or assigned_names(node):
        return False
    if isinstance(node, ast.If) and "__name__" in loaded_names(node.test):
        return False
    loaded = loaded_names(node)
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
            spaced = isinstance(unit.node, DEFS) or (previous is not None and isinstance(previous.node, DEFS))
            out += "\n\n\n" if spaced or previous is None else "\n"
        out += unit.text
        previous = unit
    return out + "\n"


def _with_missing_imports(code: str, tree: ast.Module, problem: Problem) -> str:
    """``code`` with the prompt's import lines for names it uses but never binds, then
    ``from typing import ...`` for the typing names still missing; after any ``__future__`` import."""
    free = free_names(tree)
    if not free:
        return code
    added: list[str] = []
    prompt = prompt_tree(problem.prompt)
    if prompt is not None:
        lines = problem.prompt.split("\n")
        for node in prompt.body:
            if isinstance(node, IMPORTS) and import_names(node) & free:
                added.append(_segment(lines, node))
                free -= import_names(node)
    if free & _TYPING:
        added.append(f"from typing import {', '.join(sorted(free & _TYPING))}")
    if not added:
        return code
    future = [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    lines = code.split("\n")
    at = max((s.end_lineno or 0 for s in future), default=0)
    if at < len(lines) and lines[at].strip() and not IMPORT_LINE.match(lines[at]):
        added.append("")  # a blank line between the imports and the code
    return "\n".join([*lines[:at], *added, *lines[at:]])
