"""Codeforces problems as whole programs: input text on stdin, expected stdout given by the data.

Three row formats are read into the same :class:`~ra3bench.suites.base.Problem` shape
(:func:`problems_from_rows`):

* ``cf300``: the 300 Codeforces problems of DeepMind CodeContests re-packed in ``shared/datasets``
  (``id, cluster, name, cf_contest_id, cf_index, codecontests_difficulty, tags, problem_md,
  tests[{input, output}]``); the registered suite version ``cf300`` reads it;
* ``codecontests``: rows of DeepMind CodeContests (HF ``deepmind/code_contests``): ``name,
  description, public_tests/private_tests/generated_tests {input: [...], output: [...]},
  time_limit {seconds, nanos}, memory_limit_bytes, cf_contest_id, cf_index, cf_rating, cf_tags,
  difficulty, input_file, output_file``;
* ``open-r1``: rows of HF ``open-r1/codeforces``: ``id ("2046/A"), contest_id, index, title,
  description, input_format, output_format, note, examples, time_limit`` (seconds),
  ``memory_limit`` (MB), ``official_tests [{input, output}]``, ``input_mode`` (``stdio``|``file``),
  ``interaction_format``, ``generated_checker`` (Python code or null), ``rating, tags, contest_start``.

Every problem has ``entry_point=""`` and ``reference=""`` (no solution is run: the expected outputs
are the data's) and STDIN groups. Problems that cannot be judged by comparing output with the one
expected answer get ``Problem.unverifiable`` (see :func:`unverifiable_reason`).

Suite versions (:class:`CodeforcesSuite`; ``--suite-version``):

* ``cf300`` (default): the workspace re-pack above, 300 problems, group ``tests``, no limits of its own;
* ``open-r1-test``: the ``test`` split of HF ``open-r1/codeforces`` (468 problems of late 2024 and
  early 2025) at a pinned commit, judged as open-r1 judges it (the notes above :func:`open_r1_input`):
  the official tests (group ``official``), the problem's own time and memory limits, the generated
  checker where there is one;
* ``codecontests-test``: the ``test`` split of HF ``deepmind/code_contests`` (165 Codeforces problems)
  at a pinned commit: groups ``public`` and ``private`` (the private and generated tests; a problem is
  solved when every test passes), no checkers.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ra3bench.checkers import tokens_match
from ra3bench.errors import UsageError
from ra3bench.suites import SUITES
from ra3bench.suites.base import Comparison, DataFile, HubFile, Problem, Suite, TestGroup
from ra3bench.suites.data import read_jsonl
from ra3bench.suites.humaneval import sample_program
from ra3bench.suites.livecodebench import chat_instruction

# Limits for problems whose data carries none (cf300), recorded as metadata limits_source "default".
# Codeforces' usual limits: on the 106 problems of xCodeEval's validation split (shared/datasets) 86 have
# 1 s (47) or 2 s (39), 13 have 3 to 7 s; 98 have 256 MB. 2 s is the larger of the two usual time limits,
# so a solution fast enough for either passes; 256 MB is the usual memory limit.
DEFAULT_TIME_LIMIT_S = 2.0
DEFAULT_MEMORY_LIMIT_MB = 256

FORMATS = ("cf300", "codecontests", "open-r1")


def stdin_instruction(statement: str) -> str:
    """LiveCodeBench's chat instruction for a stdin problem (system message + question, as lcb_runner)."""
    return chat_instruction(statement.strip(), "")


def completion_prompt(task_id: str, title: str, statement: str) -> str:
    """The prompt a base model continues: the statement as a comment header, then the start of a program."""
    lines = [f"Codeforces {task_id}: {title}" if title else f"Codeforces {task_id}", ""]
    lines += statement.strip().splitlines()
    lines += ["", "Read the inputs from stdin, solve the problem and write the answer to stdout."]
    header = "\n".join(f"# {line}".rstrip() for line in lines)
    return f"{header}\nimport sys\n\n"


# --- unverifiable problems ------------------------------------------------------------------------
#
# A problem is unverifiable when comparing the program's stdout with the one expected output of a test
# can fail a correct program, and the data has no checker for it. Found by reading all 300 cf300
# statements (patterns matched per sentence, case-insensitively; cf300 counts in brackets):
#
# 1. several answers accepted, in the statement's own words (MULTIPLE_ANSWER_PATTERNS) [45];
# 2. the output may be printed in any order (ORDER_PATTERNS), only in a sentence about printing, so that
#    "goes through a and b (in any order)" or "remove the vertices in any order" do not count [2 more];
# 3. several answers accepted without a sentence saying so (KNOWN_MULTIPLE_ANSWERS) [6];
# 4. interactive problems: an interactor answers queries, fixed stdin cannot [2];
# 5. evidence from the data (example_disagreement): a statement example whose output differs from the
#    expected output of the test with the same input: another valid answer (22 of the above are confirmed
#    this way) or another letter case than the statement asks for [1: 791/B expects "Yes", asks "YES"].
#
# Floating-point answers ("absolute or relative error does not exceed 1e-6") are NOT unverifiable: the token
# comparison has a tolerance. Neither is "print each letter in any case" (kept as metadata["any_case"]; the
# tests hold YES/NO as the statement writes them).

MULTIPLE_ANSWER_PATTERNS: tuple[tuple[str, str], ...] = (
    # "If there are multiple answers, print any of them." / "... Petya will be satisfied by any of them."
    ("several answers, any", r"\bif there (?:are|is|exists?) (?:multiple|several|many|more than one)\b[^.]*\bany\b"),
    # "print any of them", "you may output any", "print any permutation", "print any winning first move"
    ("print any", r"\b(?:print|output)\s+any\b"),
    # 'print "YES" and any possible such representation'
    ("print ... any possible", r"\b(?:print|output)\b[^.]{0,40}\band any (?:possible|suitable|valid|correct)\b"),
    # "Print one integer — any positive integer value of x"
    ("print — any", r"\b(?:print|output)\b[^.]{0,30}\s[—–-]\s*any\b"),
    # "any of them is acceptable"
    ("any is acceptable", r"\bany of (?:them|those|these)\b[^.]*\b(?:acceptable|accepted)\b"),
    ("satisfied by any", r"\bsatisfied (?:by|with) any\b"),
    ("multiple accepted outputs", r"\b(?:multiple|several) (?:accepted|correct|valid) (?:outputs|answers)\b"),
    # "Your solution will be considered correct if your tree produces the same pairs" (not an error bound)
    ("correct if (not a tolerance)", r"\b(?:considered correct|considered valid|accepted)\s+if\b"),
)
ORDER_PATTERNS: tuple[tuple[str, str], ...] = (
    # "The numbers can be printed in any order.", "You can print them in arbitrary order.", "... is any order"
    ("any order", r"\b(?:in|of|is) (?:any|arbitrary) order\b"),
    ("any order of printing", r"\bany order of print"),
    # "The order of the edges in the output doesn't matter."
    ("order doesn't matter", r"\border\b[^.]{0,80}?\b(?:doesn't|does not|don't|do not) matter\b"),
)
_PRINTING = re.compile(r"\b(?:print|prints|printed|printing|output|outputs|outputted)\b", re.IGNORECASE)
_TOLERANCE = re.compile(r"error|differ|precision|inaccura|\b10\s*\^|\b10\s*-\s*\d|<image>", re.IGNORECASE)
_INTERACTIVE = re.compile(r"\binteractive problem\b|\bflush the output\b", re.IGNORECASE)
_ANY_CASE = re.compile(  # "print each letter in any case (upper or lower)", "print YES (case insensitive)"
    r"\b(?:letters?|characters?|words?|strings?)\b[^.]*\bin any case\b|\bin any case\s*\(|\bcase[- ]insensitive\b",
    re.IGNORECASE,
)
INTERACTIVE_REASON = "interactive problem: it needs an interactor, fixed stdin cannot judge it"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

_COMPILED_MULTIPLE = tuple((name, re.compile(rx, re.IGNORECASE)) for name, rx in MULTIPLE_ANSWER_PATTERNS)
_COMPILED_ORDER = tuple((name, re.compile(rx, re.IGNORECASE)) for name, rx in ORDER_PATTERNS)

# Constructive cf300 problems that accept any valid answer without a sentence the patterns match (found by
# reading the Output sections of every cf300 problem not matched otherwise whose answer is a construction;
# for all but 1076/D the data confirms it: the statement's example output differs from the test's for the
# same input). Keyed by task id, which is Codeforces' own, so the list also applies to the other formats.
KNOWN_MULTIPLE_ANSWERS: dict[str, str] = {
    "1076/D": "any set of at most k edges keeping the most vertices at their shortest distance is accepted "
    "('The number of good vertices should be as large as possible')",
    "1325/C": "any labeling of the edges whose largest MEX is as small as possible is accepted",
    "1391/E": "any valid path or pairing is accepted ('do one of the following')",
    "1521/D": "any sequence of the minimum number of operations is accepted",
    "407/A": "any placement of the triangle with integer vertices is accepted",
    "749/B": "the possible fourth points may be printed in any order",
}


def _sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s.strip()]


def multiple_answer_phrase(statement: str) -> str | None:
    """The sentence of ``statement`` that says several outputs are accepted, or None.

    A sentence matching :data:`MULTIPLE_ANSWER_PATTERNS` is preferred to one that only allows any order."""
    sentences = _sentences(statement)
    for sentence in sentences:
        for name, rx in _COMPILED_MULTIPLE:
            if rx.search(sentence) and not (name == "correct if (not a tolerance)" and _TOLERANCE.search(sentence)):
                return sentence  # (the tolerance case: "considered correct if its absolute or relative error ...")
    for sentence in sentences:
        if _PRINTING.search(sentence) and any(rx.search(sentence) for _, rx in _COMPILED_ORDER):
            return sentence
    return None


def is_interactive(statement: str, tags: Iterable[str] = ()) -> bool:
    return "interactive" in {t.lower() for t in tags} or bool(_INTERACTIVE.search(statement))


def any_case_phrase(statement: str) -> str | None:
    """The sentence allowing YES/NO in any letter case ("You can print each letter in any case"), or None."""
    for sentence in _sentences(statement):
        if _ANY_CASE.search(sentence) and _PRINTING.search(sentence):
            return sentence
    return None


def statement_examples(statement: str) -> list[tuple[str, str]]:
    """(input, output) pairs of a Codeforces statement's "Examples" section (CodeContests' plain-text layout)."""
    m = re.search(r"^Examples?[ \t]*$", statement, re.MULTILINE)
    if not m:
        return []
    rest = statement[m.end() :]
    note = re.search(r"^Notes?[ \t]*$", rest, re.MULTILINE)
    if note:
        rest = rest[: note.start()]
    parts = re.split(r"^(Input|Output)[ \t]*$", rest, flags=re.MULTILINE)
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for i in range(1, len(parts) - 1, 2):
        if parts[i] == "Input":
            pending = parts[i + 1]
        elif pending is not None:
            pairs.append((pending, parts[i + 1]))
            pending = None
    return pairs


def example_disagreement(statement: str, tests: Iterable[tuple[str, str]]) -> str | None:
    """Why a statement example contradicts the expected output of a test with the same input, or None.

    Outputs are compared as the judge compares them (``ra3bench.checkers.tokens_match``: tokens, numbers
    within 1e-6). A difference means the problem accepts several answers (the tests came from another
    correct program), or, when only the letter case differs, that the tests expect another case than the
    statement asks for."""
    expected = {" ".join(inp.split()): out for inp, out in tests}
    for inp, out in statement_examples(statement):
        test_out = expected.get(" ".join(inp.split()))
        if test_out is None or tokens_match(out, test_out):
            continue
        shown, wanted = _excerpt(out), _excerpt(test_out)
        if tokens_match(out.lower(), test_out.lower()):
            return (
                f"the tests expect another letter case than the statement asks for: its example prints {shown!r}, "
                f"the test for the same input expects {wanted!r}; no checker"
            )
        return (
            f"several answers accepted, no checker: the statement's example output {shown!r} differs from the "
            f"expected output {wanted!r} of the test with the same input"
        )
    return None


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def unverifiable_reason(
    task_id: str,
    statement: str,
    tags: Iterable[str] = (),
    checker: str | None = None,
    tests: Iterable[tuple[str, str]] = (),
) -> str:
    """Why this problem cannot be judged by comparing output with the expected one ("" if it can)."""
    if is_interactive(statement, tags):
        return INTERACTIVE_REASON
    if checker:
        return ""  # the data's checker accepts every valid answer
    phrase = multiple_answer_phrase(statement)
    if phrase is not None:
        return f'several answers accepted, no checker: "{phrase}"'
    if task_id in KNOWN_MULTIPLE_ANSWERS:
        return f"several answers accepted, no checker: {KNOWN_MULTIPLE_ANSWERS[task_id]}"
    return example_disagreement(statement, tests) or ""


def unverifiable_problems(problems: Iterable[Problem]) -> dict[str, str]:
    """Task id -> reason, for every problem that cannot be judged (in the problems' order)."""
    return {p.task_id: p.unverifiable for p in problems if p.unverifiable}


# Reasons of the official open-r1 rows (open-r1's own flags; see _open_r1_problem):
NOT_EXECUTABLE_REASON = (
    "not executable: open-r1 marks it executable=false and leaves it out of its verifiable subset "
    "(problems that are executable and have complete official tests or generated tests)"
)
INCOMPLETE_TESTS_PREFIX = "official tests incomplete"

# Kinds of reason, by how the reason starts (every reason this module writes starts with one of these).
UNVERIFIABLE_KINDS: tuple[tuple[str, str], ...] = (
    ("interactive", INTERACTIVE_REASON.split(":")[0]),
    ("file_io", "file input/output"),
    ("not_executable", "not executable"),
    ("several_answers", "several answers accepted, no checker"),
    ("letter_case", "the tests expect another letter case"),
    ("no_tests", "no tests"),
    ("incomplete_tests", INCOMPLETE_TESTS_PREFIX),
)


def unverifiable_kind(reason: str) -> str:
    """The kind of an unverifiable reason (a key of :data:`UNVERIFIABLE_KINDS`), "other" if none fits."""
    return next((kind for kind, prefix in UNVERIFIABLE_KINDS if reason.startswith(prefix)), "other")


def unverifiable_counts(problems: Iterable[Problem]) -> dict[str, int]:
    """How many problems are unverifiable, by kind of reason (kinds with none left out), in a fixed order."""
    counts = Counter(unverifiable_kind(p.unverifiable) for p in problems if p.unverifiable)
    order = [kind for kind, _ in UNVERIFIABLE_KINDS] + ["other"]
    return {kind: counts[kind] for kind in order if counts[kind]}


# --- readers ----------------------------------------------------------------------------------------


def problems_from_rows(rows: Iterable[dict[str, Any]], fmt: str) -> list[Problem]:
    """Problems from rows of one format (``cf300``, ``codecontests`` or ``open-r1``), in the rows' order."""
    readers = {"cf300": _cf300_problem, "codecontests": _codecontests_problem, "open-r1": _open_r1_problem}
    if fmt not in readers:
        raise UsageError(f"unknown Codeforces row format {fmt!r}; known formats: {', '.join(FORMATS)}")
    problems: list[Problem] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, 1):
        try:
            problem = readers[fmt](row)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{fmt} row {n}: not a {fmt} row ({type(exc).__name__}: {exc})") from exc
        if problem.task_id in seen:
            raise UsageError(f"{fmt} row {n}: task id {problem.task_id} appears twice")
        seen.add(problem.task_id)
        problems.append(problem)
    return problems


def _task_id(contest_id: Any, index: Any, fallback: str) -> str:
    if contest_id not in (None, "", 0, "0") and index not in (None, ""):
        return f"{contest_id}/{index}"
    return fallback


def _stdin_text(text: str) -> str:
    """Test input as a Codeforces test file has it: ending in a newline (cf300 dropped the last one)."""
    return text if not text or text.endswith("\n") else text + "\n"


def _group(name: str, pairs: list[tuple[str, str]]) -> TestGroup:
    return TestGroup(
        name=name,
        comparison=Comparison.STDIN,
        inputs=[[_stdin_text(inp)] for inp, _ in pairs],
        outputs=[out for _, out in pairs],
    )


def _limits_source(time_given: bool, memory_given: bool) -> str:
    if time_given and memory_given:
        return "problem"
    return "problem+default" if time_given or memory_given else "default"


def _difficulty_letter(difficulty: Any) -> str | None:
    """CodeContests' difficulty enum: 7 = A, 8 = B, ... 28 = V (Codeforces problem letters); others None."""
    return chr(ord("A") + difficulty - 7) if isinstance(difficulty, int) and 7 <= difficulty <= 28 else None


def _build(
    *,
    task_id: str,
    title: str,
    statement: str,
    groups: dict[str, TestGroup],
    time_limit_s: float | None,
    memory_limit_mb: int | None,
    tags: list[str],
    checker: str | None,
    metadata: dict[str, Any],
    extra_reason: str = "",
    late_reason: str = "",
    any_case_rule: str | None = None,
) -> Problem:
    """``extra_reason``: unverifiable whatever the statement says (interactive, file input/output);
    ``late_reason``: unverifiable if nothing else makes it so (open-r1's flags); ``any_case_rule``: why
    letters are compared in any case when the statement does not say so (open-r1's yes/no rule)."""
    groups = {name: g for name, g in groups.items() if g.inputs}
    tests = [(inp[0], out) for g in groups.values() for inp, out in zip(g.inputs, g.outputs or [], strict=True)]
    reason = extra_reason or unverifiable_reason(task_id, statement, tags, checker, tests)
    if not groups and not reason:
        reason = "no tests"
    reason = reason or late_reason
    meta = {"platform": "codeforces", "title": title, **metadata, "tags": tags}
    meta["limits_source"] = _limits_source(time_limit_s is not None, memory_limit_mb is not None)
    any_case = any_case_phrase(statement) or any_case_rule
    if any_case:
        meta["any_case"] = any_case
    return Problem(
        task_id=task_id,
        prompt=completion_prompt(task_id, title, statement),
        instruction=stdin_instruction(statement),
        entry_point="",
        reference="",
        groups=groups,
        metadata=meta,
        time_limit_s=DEFAULT_TIME_LIMIT_S if time_limit_s is None else time_limit_s,
        memory_limit_mb=DEFAULT_MEMORY_LIMIT_MB if memory_limit_mb is None else memory_limit_mb,
        checker=checker,
        unverifiable=reason,
        oracle="tokens_any_case" if any_case else "tokens",  # ra3bench.checkers
    )


_CF300_SECTIONS = re.compile(r"\n## (?:Categories|Source|Examples|Testing)\n")


def cf300_statement(problem_md: str) -> str:
    """The CodeContests description inside a cf300 ``problem_md`` (without the re-packer's added sections)."""
    _, sep, rest = problem_md.partition("## Description\n")
    if not sep:
        raise ValueError("problem_md has no '## Description' section")
    end = _CF300_SECTIONS.search(rest)
    return (rest[: end.start()] if end else rest).strip()


def _cf300_problem(row: dict[str, Any]) -> Problem:
    name = row["name"]  # "1041_E. Tree Reconstruction"
    title = name.split(". ", 1)[1] if ". " in name else name
    task_id = _task_id(row["cf_contest_id"], row["cf_index"], name)
    pairs = [(t["input"], t["output"]) for t in row["tests"]]
    difficulty = row.get("codecontests_difficulty")
    return _build(
        task_id=task_id,
        title=title,
        statement=cf300_statement(row["problem_md"]),
        groups={"tests": _group("tests", pairs)},
        time_limit_s=None,
        memory_limit_mb=None,
        tags=list(row.get("tags") or []),
        checker=None,
        metadata={
            "name": name,
            "contest_id": row["cf_contest_id"],
            "index": row["cf_index"],
            "difficulty": difficulty,
            "difficulty_letter": _difficulty_letter(difficulty),
            "rating": None,
            "source_id": row.get("id"),
            "cluster": row.get("cluster"),
        },
    )


def _pairs(tests: dict[str, list[str]] | None) -> list[tuple[str, str]]:
    if not tests:
        return []
    inputs, outputs = tests.get("input") or [], tests.get("output") or []
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} test inputs but {len(outputs)} outputs")
    return list(zip(inputs, outputs, strict=True))


def _codecontests_problem(row: dict[str, Any]) -> Problem:
    name = row["name"]
    title = name.split(". ", 1)[1] if ". " in name else name
    task_id = _task_id(row.get("cf_contest_id"), row.get("cf_index"), name)
    time_limit = row.get("time_limit")
    time_s = None
    if time_limit:
        total = float(time_limit.get("seconds") or 0) + float(time_limit.get("nanos") or 0) / 1e9
        time_s = total if total > 0 else None
    memory_bytes = row.get("memory_limit_bytes") or 0
    # CodeContests stores Codeforces' "256 megabytes" as 256000000 bytes.
    memory_mb = round(memory_bytes / 1_000_000) if memory_bytes > 0 else None
    file_io = [f for f in (row.get("input_file"), row.get("output_file")) if f]
    tags = list(row.get("cf_tags") or [])
    difficulty = row.get("difficulty")
    return _build(
        task_id=task_id,
        title=title,
        statement=row["description"],
        groups={
            "public": _group("public", _pairs(row.get("public_tests"))),
            "private": _group("private", _pairs(row.get("private_tests")) + _pairs(row.get("generated_tests"))),
        },
        time_limit_s=time_s,
        memory_limit_mb=memory_mb,
        tags=tags,
        checker=None,
        metadata={
            "name": name,
            "contest_id": row.get("cf_contest_id"),
            "index": row.get("cf_index"),
            "difficulty": difficulty,
            "difficulty_letter": _difficulty_letter(difficulty),
            "rating": row.get("cf_rating") or None,
            "n_generated_tests": len(_pairs(row.get("generated_tests"))),
        },
        extra_reason=f"file input/output ({', '.join(file_io)}), not stdin/stdout" if file_io else "",
    )


def open_r1_statement(row: dict[str, Any]) -> str:
    """An open-r1 row's statement in Codeforces' layout: legend, Input, Output, Interaction, Examples, Note."""
    parts = [(row.get("description") or "").strip()]
    for header, key in (("Input", "input_format"), ("Output", "output_format"), ("Interaction", "interaction_format")):
        if row.get(key):
            parts.append(f"{header}\n\n{row[key].strip()}")
    examples = row.get("examples") or []
    if examples:
        shown = "\n\n".join(f"Input\n\n{ex['input'].strip()}\n\nOutput\n\n{ex['output'].strip()}" for ex in examples)
        parts.append(f"{'Examples' if len(examples) > 1 else 'Example'}\n\n{shown}")
    if row.get("note"):
        parts.append(f"Note\n\n{row['note'].strip()}")
    return "\n\n".join(p for p in parts if p)


# How open-r1 judges a Codeforces test (read in huggingface/open-r1: rewards.py ``cf_code_reward`` ->
# utils/competitive_programming/cf_scoring.py, which sends the program, ``checker.py``, ``input.txt``,
# ``correct_output.txt`` and a ``grader_config`` (TIME_LIMIT, MEMORY_LIMIT, INPUT_MODE) to a Piston worker
# running the ``codeforces`` package of github.com/guipenedo/piston, whose ``run`` script judges):
#
# * the program reads input.txt, "\r" at line ends removed, on stdin (input_mode ``file``: input.txt and
#   output.txt themselves), within TIME_LIMIT s of wall time (``timeout``), under ``ulimit -v`` MEMORY_LIMIT MB;
# * correct_output.txt is read with $(cat) (trailing newlines dropped) and written back with one newline,
#   "\r" at line ends and empty lines removed; empty lines are removed from the program's output too;
# * with a checker: ``python3 checker.py <input> correct_output.txt <output>`` (10 s limit): accepted when
#   its stdout, every whitespace removed, is "1" or "100", and it exits with status 0;
# * without: both outputs with whole words "yes"/"no" upper-cased whatever their case, all whitespace
#   collapsed, compared as text (tokens; numbers exactly, no tolerance);
# * a problem is solved (``scoring_mode="pass_fail"``) when every test passes: the official tests and the
#   generated tests of ``generated_tests/*.parquet`` (not read here).
#
# What is on the data's side is done here: the input and the correct output as the run script has them
# (open_r1_input, open_r1_answer), yes/no in any case (open_r1_any_case_rule). The rest is the judge's
# (ra3bench.judge: how the checker is run and read); numbers keep their 1e-6 tolerance (the ``tokens`` rule,
# as Codeforces' own checkers for real-valued answers), where open-r1 compares the text.


def open_r1_input(text: str) -> str:
    """A test input as open-r1's run script gives it to the program: "\\r" at line ends removed."""
    return re.sub(r"\r$", "", text, flags=re.MULTILINE)


def open_r1_answer(text: str) -> str:
    """A correct output as open-r1's run script gives it to the checker: trailing newlines dropped, "\\r" at
    line ends and then empty lines removed, one newline at the end ("" if no line is left)."""
    lines = [line.removesuffix("\r") for line in text.rstrip("\n").split("\n")]
    kept = [line for line in lines if line]
    return "".join(line + "\n" for line in kept)


_LETTERS = re.compile(r"[^\W\d_]")


def open_r1_any_case_rule(outputs: Iterable[str]) -> str | None:
    """Why outputs are compared in any case though the statement does not say so: open-r1 upper-cases the
    words yes/no in both outputs, so where every word of the expected outputs is yes or no, any case passes
    there; None where some other word is expected (its case counts, there and in open-r1)."""
    words = {token.casefold() for out in outputs for token in out.split() if _LETTERS.search(token)}
    if words and words <= {"yes", "no"}:
        return "open-r1 compares the words yes/no in any case, and they are the only words of the expected outputs"
    return None


def _incomplete_tests_reason(n_tests: int, testset_size: Any) -> str:
    have = f"{n_tests} of its {testset_size}" if isinstance(testset_size, int) and testset_size > 0 else f"{n_tests}"
    return (
        f"{INCOMPLETE_TESTS_PREFIX} (official_tests_complete=false, {have} tests in the data): passing them is "
        "not solving it; open-r1 scores such problems with its generated tests too, which this version does not read"
    )


def _open_r1_problem(row: dict[str, Any]) -> Problem:
    # open-r1's id is already "<contest>/<index>"
    task_id = str(row["id"]) if "/" in str(row.get("id") or "") else _task_id(row["contest_id"], row["index"], "")
    if not task_id:
        raise ValueError("row has neither an id nor contest_id/index")
    tests = [(open_r1_input(t["input"]), open_r1_answer(t["output"])) for t in row.get("official_tests") or []]
    time_limit = row.get("time_limit")
    memory_limit = row.get("memory_limit")
    contest_start = row.get("contest_start")
    contest_date = (
        datetime.datetime.fromtimestamp(contest_start, tz=datetime.timezone.utc).date().isoformat()
        if isinstance(contest_start, int | float) and contest_start > 0
        else None
    )
    input_mode = row.get("input_mode") or "stdio"
    statement = open_r1_statement(row)
    checker = row.get("generated_checker") or None
    extra = ""
    if row.get("interaction_format"):
        extra = INTERACTIVE_REASON
    elif input_mode != "stdio":
        extra = f"file input/output (input_mode={input_mode}), not stdin/stdout"
    complete, executable = row.get("official_tests_complete"), row.get("executable")
    late = ""
    if executable is False:
        late = NOT_EXECUTABLE_REASON
    elif complete is False:
        late = _incomplete_tests_reason(len(tests), row.get("testset_size"))
    return _build(
        task_id=task_id,
        title=row.get("title") or "",
        statement=statement,
        groups={"official": _group("official", tests)},
        time_limit_s=float(time_limit) if time_limit else None,
        memory_limit_mb=round(float(memory_limit)) if memory_limit else None,
        tags=list(row.get("tags") or []),
        checker=checker,
        metadata={
            "name": row.get("title"),
            "contest_id": row.get("contest_id"),
            "index": row.get("index"),
            "rating": row.get("rating"),
            "contest_name": row.get("contest_name"),
            "contest_type": row.get("contest_type"),
            "contest_date": contest_date,
            "aliases": list(row.get("aliases") or []),
            "input_mode": input_mode,
            "official_tests_complete": complete,
            "executable": executable,
            "testset_size": row.get("testset_size"),
            "n_official_tests": len(tests),
            "n_generated_tests": row.get("generated_tests"),  # open-r1's count; the tests are not read here
            "has_checker": checker is not None,
        },
        extra_reason=extra,
        late_reason=late,
        any_case_rule=None if checker else open_r1_any_case_rule(out for _, out in tests),
    )


# --- reading the data files -------------------------------------------------------------------------


def read_parquet_rows(path: Path, batch_size: int = 16) -> Iterator[dict[str, Any]]:
    """Rows of a parquet file as plain dicts, a few at a time (the official files hold every test: 100 MB+)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a data file, whatever its form: parquet (by its magic bytes), else JSON lines (gzipped or not)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    return read_parquet_rows(path) if magic == b"PAR1" else read_jsonl(path)


# --- the suite ------------------------------------------------------------------------------------

OPEN_R1_REPO = "open-r1/codeforces"
# A commit of open-r1/codeforces whose README lists official_tests, generated_checker and input_mode and a test
# split of 468 problems (the README at this commit, as mirrored publicly). The parquet path is the one a
# download of the test split from main reads; neither could be checked against the Hub from here.
OPEN_R1_REVISION = "8fd706e298b713125ac8df18cd5d847440fe3fb9"
CODECONTESTS_REPO = "deepmind/code_contests"
# The commit of deepmind/code_contests that public projects pin for its parquet files (train 13,328, valid 117,
# test 165 problems); the test file's name and size are as they report them (its sha256 is the Hub's, checked
# at download; they report aa426cbdb202bf8703b658bcb31fd1878ca7cfd33ca07d3b703dc94ca6a2b651).
CODECONTESTS_REVISION = "802411c3010cb00d1b05bad57ca77365a3c699d6"
CODECONTESTS_TEST = "data/test-00000-of-00001-9c49eeff30aacaa8.parquet"


@dataclass(frozen=True)
class _Version:
    row_format: str  # a key of FORMATS
    groups: tuple[str, ...]
    n_problems: int | None = None  # the official count, said without reading the file (None: read it)
    headline_group: str = ""
    groups_meaning: tuple[tuple[str, str], ...] = ()


VERSIONS: dict[str, _Version] = {
    "cf300": _Version("cf300", ("tests",), None, "tests", (("tests", "the 10 tests of the re-pack"),)),
    "open-r1-test": _Version(
        "open-r1",
        ("official",),
        468,
        "official",
        (("official", "the official tests of the data (open-r1 adds its generated tests, not read here)"),),
    ),
    "codecontests-test": _Version(
        "codecontests",
        ("public", "private"),
        165,
        "private",
        (
            ("public", "the public tests only"),
            ("private", "public, private and generated tests: every test of the data"),
        ),
    ),
}


@SUITES.register("codeforces")
class CodeforcesSuite(Suite):
    """Codeforces problems judged on stdin/stdout against the outputs the data gives.

    ``cf300`` (default): 300 problems of DeepMind CodeContests, 10 tests each, re-packed in the workspace.
    ``open-r1-test``: the test split of ``open-r1/codeforces`` from the Hub, judged by its official tests
    with each problem's time and memory limits and its generated checker, if any. ``codecontests-test``:
    the test split of ``deepmind/code_contests`` from the Hub. Problems that cannot be judged (interactive,
    file input/output, several answers without a checker, incomplete tests) are marked unverifiable, left
    out of the scores, and counted by reason in :meth:`describe`.
    """

    name = "codeforces"
    description = (
        "Codeforces on stdin/stdout, outputs given by the data (cf300: 300 CodeContests problems, 2,999 tests; "
        "open-r1-test, codecontests-test: official test splits from the Hub)"
    )
    versions = {  # noqa: RUF012 - typed as in Suite; never mutated
        "cf300": DataFile(
            filename="codecontests_cf300.jsonl.gz",
            sha256="31e73d4afe39b288209ddd506653981a2fc683a3080392048a029ae52810cc3f",
            subdir="codeforces",
            url="",  # no public download: a subset re-packed in shared/datasets (see docs/suites.md)
        ),
        "open-r1-test": DataFile(
            filename="test-00000-of-00001.parquet",
            sha256="",  # the Hub's sha256 of the file at the pinned commit, checked at download and recorded
            subdir="open-r1-codeforces",
            hub=HubFile(OPEN_R1_REPO, "data/test-00000-of-00001.parquet", revision=OPEN_R1_REVISION),
        ),
        "codecontests-test": DataFile(
            filename=CODECONTESTS_TEST.rsplit("/", 1)[-1],
            sha256="",  # the Hub's, as above
            subdir="deepmind-code_contests",
            hub=HubFile(CODECONTESTS_REPO, CODECONTESTS_TEST, revision=CODECONTESTS_REVISION),
            size=63_077_400,
        ),
    }
    default_version = "cf300"
    group_names: tuple[str, ...] = ("tests",)
    row_format = "cf300"

    def __init__(self, version: str | None = None, data_dir: Path | None = None) -> None:
        super().__init__(version, data_dir)
        self.row_format = VERSIONS[self.version].row_format
        self.group_names = VERSIONS[self.version].groups

    def parse(self, path: Path) -> list[Problem]:
        """Problems from the version's file: parquet (the Hub's) or JSON lines, gzipped or not (cf300)."""
        return problems_from_rows(read_rows(path), self.row_format)

    def n_problems(self) -> int:
        known = VERSIONS[self.version].n_problems
        if known is not None and self._problems is None:
            return known  # the official count: not a reason to fetch and read the file
        return len(self.problems())

    def describe(self) -> dict:
        """The base record, with the problems' count, how many have a checker, the headline group, and how
        many problems are unverifiable (left out of the scores) by kind of reason (:func:`unverifiable_kind`)."""
        version = VERSIONS[self.version]
        problems = self.problems()
        counts = unverifiable_counts(problems)
        return {
            **super().describe(),
            "row_format": self.row_format,
            "n_problems": len(problems),
            "n_with_checker": sum(1 for p in problems if p.checker),
            "headline_group": version.headline_group,
            "groups_meaning": dict(version.groups_meaning),
            "unverifiable": {"total": sum(counts.values()), "by_reason": counts},
        }

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        return sample_program(problem, sample)
