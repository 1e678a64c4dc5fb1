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
when that is what it takes. The search re-parses the text once per run it tries, so all the parsing
one extraction does by choice shares a budget linear in the answer (``analysis.Budget``): extraction
runs on every generation and RL rollout, and a model being trained finds any input that is slow.

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

Modules: ``fences`` (reasoning and fenced blocks as written), ``choose`` (which block is the program:
rules 3 to 5), ``repair`` (salvage), ``sanitize`` (the program that runs, with its imports), and
``analysis`` (what code is and does, read from its tree, which they all share).
"""

from __future__ import annotations

from dataclasses import dataclass

from ra3bench.extract.analysis import Budget, acceptable, compile_tree, prompt_tree, trim
from ra3bench.extract.choose import find_in_answer
from ra3bench.extract.fences import fenced_blocks, opening_fence, strip_reasoning
from ra3bench.extract.repair import salvage
from ra3bench.extract.sanitize import finish
from ra3bench.suites.base import Problem

__all__ = ["Extraction", "extract_program"]


@dataclass
class Extraction:
    program: str  # the program to execute
    method: str  # how it was found (see the module docstring)


def extract_program(text: str, problem: Problem, style: str) -> Extraction:
    """The program to run for one model output (``style``: "completion" or "chat"). Linear time in
    the output: the searches that re-parse it share one :class:`Budget` (see there)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    budget = Budget.for_length(len(problem.prompt) + len(text))
    if style == "completion":
        return _from_completion(text, problem, budget)
    return _from_answer(strip_reasoning(text), problem, budget)


def _from_completion(text: str, problem: Problem, budget: Budget) -> Extraction:
    """``prompt + text`` when the prompt is code; the text read as an answer when it is prose or when
    the model restarted with a fenced block of its own."""
    if not text.strip():
        return Extraction("", "empty")
    if prompt_tree(problem.prompt) is None:
        found = _from_answer(text, problem, budget)
        return Extraction(found.program, "completion") if found.method == "raw_code" else found
    if any(opening_fence(line) for line in text.split("\n")):
        found = find_in_answer(text, problem, budget)
        if found and acceptable(found.tree, problem):
            return Extraction(finish(found, problem), found.method)
    joined = problem.prompt + text
    found = salvage(joined, problem, budget)
    if found is None:
        return Extraction(joined, "unparseable")
    return Extraction(finish(found, problem), "completion" if found.method == "raw_code" else found.method)


def _from_answer(text: str, problem: Problem, budget: Budget) -> Extraction:
    if not text.strip():
        return Extraction("", "empty")
    found = find_in_answer(text, problem, budget)
    if found is not None:
        return Extraction(finish(found, problem), found.method)
    blocks, fenced = fenced_blocks(text)
    best = max((b.code for b in blocks if not b.outside), key=len, default="") if fenced else trim(text)
    if compile_tree(best) is not None or not best.strip():  # nothing but comments, constants, blanks
        return Extraction(best, "empty")
    return Extraction(best, "unparseable")
