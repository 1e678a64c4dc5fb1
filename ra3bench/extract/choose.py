"""Picking the program in an answer (rules 3 to 5 of the package docstring): the blocks that compile
or can be salvaged, ranked by whether they define the entry point with a body or read stdin, then by
length and position; the winner joined with the blocks it needs; failing fences, the whole text
salvaged; last, a bare function body put under the prompt's signature.
"""

from __future__ import annotations

import ast
import re
import textwrap

from ra3bench.extract.analysis import (
    DEFS,
    FUNCS,
    IMPORT_LINE,
    IMPORTS,
    Budget,
    Found,
    acceptable,
    assigned_names,
    compile_tree,
    dedent,
    entry_rank,
    free_names,
    loaded_names,
    prompt_tree,
    reads_stdin,
    top_bindings,
    trim,
)
from ra3bench.extract.fences import Block, fenced_blocks, opening_fence
from ra3bench.extract.repair import salvage
from ra3bench.suites.base import Problem

_PYTHON_LANG = re.compile(r"(?i)py(thon)?[0-9.]*")


def find_in_answer(text: str, problem: Problem, budget: Budget | None = None) -> Found | None:
    """The code of an answer: the best fenced block, else the salvaged text, else a bare body. Salvage
    and bodies draw on ``budget``, the extraction's (one for ``text`` alone if not given)."""
    budget = budget if budget is not None else Budget.for_length(len(text))
    blocks, fenced = fenced_blocks(text)
    chosen = None
    if fenced:
        candidates = _candidates(blocks, problem, budget)
        if candidates:
            chosen = _join_related(max(candidates, key=lambda c: _score(c, problem)), candidates, problem)
            if acceptable(chosen.tree, problem) or not problem.entry_point:
                return chosen
    plain = "\n".join(line for line in text.split("\n") if not opening_fence(line)) if fenced else text
    found = chosen or salvage(plain, problem, budget)
    if found is not None and (acceptable(found.tree, problem) or not problem.entry_point):
        return found
    for source in [*(b.raw for b in reversed(blocks)), plain]:
        body = _as_body(source, problem, budget)
        if body is not None:
            return body
    return found


def _candidates(blocks: list[Block], problem: Problem, budget: Budget) -> list[Found]:
    """The blocks whose code compiles (or is salvaged), Python blocks only when there are any."""
    python = [b for b in blocks if not b.lang or _PYTHON_LANG.fullmatch(b.lang)] or blocks
    found = []
    for position, block in enumerate(python):
        salvaged = salvage(block.code, problem, budget)
        if salvaged is not None:
            method = block.method if salvaged.method == "raw_code" else salvaged.method
            found.append(Found(salvaged.code, salvaged.tree, method, position))
    return found


def _score(found: Found, problem: Problem) -> tuple[int, int, int]:
    """Defines the entry point (with a body: 2) or reads stdin (1); then, for the rest, length; then position."""
    entry = problem.entry_point
    rank = entry_rank(found.tree, entry) if entry else int(reads_stdin(found.tree))
    size = sum(1 for line in found.code.split("\n") if line.strip()) if rank == 0 else 0
    return rank, size, found.position


def _join_related(chosen: Found, candidates: list[Found], problem: Problem) -> Found:
    """``chosen`` with the blocks it needs: definition-only blocks binding a name it uses and lacks
    (before it); for stdin programs, later blocks calling a function it defines and never calls."""
    free = free_names(chosen.tree)
    others = [c for c in candidates if c is not chosen]
    before = [c for c in others if _definitions_only(c.tree) and free & top_bindings(c.tree)]
    after: list[Found] = []
    uncalled = _uncalled_functions(chosen.tree)
    if not problem.entry_point and uncalled:
        after = [
            c
            for c in others
            if c.position > chosen.position
            and uncalled & loaded_names(c.tree)
            and not top_bindings(c.tree) & top_bindings(chosen.tree)
        ]
    if not before and not after:
        return chosen
    code = "\n\n".join(c.code for c in [*before, chosen, *after])
    tree = compile_tree(code)
    return Found(code, tree, chosen.method, chosen.position) if tree is not None else chosen


def _as_body(text: str, problem: Problem, budget: Budget) -> Found | None:
    """A function body written without its ``def`` (a chat model continuing the signature), put
    under the prompt's signature; column-0 import lines go first. Paid for from ``budget``: an answer
    of many indented blocks would otherwise parse the prompt once for each."""
    prompt = prompt_tree(problem.prompt)
    if not problem.entry_point or prompt is None or not prompt.body:
        return None
    stub = prompt.body[-1]
    if not isinstance(stub, FUNCS) or stub.name != problem.entry_point.split(".")[0]:
        return None
    lines = trim(text).split("\n")
    imports = [line for line in lines if IMPORT_LINE.match(line)]
    body = trim("\n".join(line for line in lines if not IMPORT_LINE.match(line)))
    if not body[:1].isspace() or not budget.spend(len(problem.prompt) + len(text)):
        return None
    indent = " " * stub.body[0].col_offset
    code = "\n".join([*imports, problem.prompt.rstrip(), textwrap.indent(dedent(body), indent)])
    tree = compile_tree(code)
    if tree is None or entry_rank(tree, problem.entry_point) < 2:
        return None
    return Found(code, tree, "completion")


def _definitions_only(tree: ast.Module) -> bool:
    return all(isinstance(s, (*DEFS, *IMPORTS)) or assigned_names(s) for s in tree.body)


def _uncalled_functions(tree: ast.Module) -> set[str]:
    defined = {s.name for s in tree.body if isinstance(s, FUNCS)}
    return defined - loaded_names(tree)
