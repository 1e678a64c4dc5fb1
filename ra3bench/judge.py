"""Trusted judgement: build a candidate's jobs and turn what came back into verdicts.

Nothing here executes the candidate, and nothing here believes it: what came back is the
program's claim (``sandbox/claims.py``). A claim is decoded strictly (known tags, bounded
depth, finite numbers; a digest only where the job asked for one and an expected digest
exists), anything malformed is a ``fail`` of the program, and judging one group is a total
function: whatever arrives, it returns a verdict and never raises. VALUES groups compare
decoded return values with the reference's (``oracles.values_match``). REPLAY groups re-run the data set's own test
program in this process, with the entry point replaced by a lookup table of the
candidate's decoded return values: the assertion semantics of the original benchmark,
without letting the candidate near the comparison.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ra3bench.checkers import output_matches
from ra3bench.expected import Expectations, GroupExpectation
from ra3bench.oracles import values_match
from ra3bench.records import GroupVerdict, Status
from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult, Limits
from ra3bench.sandbox.claims import MALFORMED, MalformedClaim, RawValue, decode_claim, digest_claim, is_digest_claim
from ra3bench.sandbox.harness.protocol import decode_value, encode_value
from ra3bench.suites.base import Comparison, Problem

_REPLAY_LOCK = threading.Lock()  # replays seed the global `random`, as the recording did


DEFAULT_PROBLEM_TIME_S = 6.0  # a STDIN/given-output problem without a limit of its own (LiveCodeBench's)
# RLIMIT_AS over a problem's memory limit: the interpreter's own address space (measured in the
# sandbox image: 14 MB bare, 48 MB after `import numpy` with one BLAS thread).
MEMORY_HEADROOM_MB = 64


@dataclass(frozen=True)
class TimePolicy:
    """Per-test wall limit = max(floor, factor x reference time) (evalplus: 1.0 s, 4.0); for tests
    whose expected outputs the data gives (no reference), ``problem_factor`` x the problem's limit."""

    floor_s: float = 1.0
    factor: float = 4.0
    problem_factor: float = 1.0

    def limit(self, reference_time_s: float) -> float:
        return max(self.floor_s, self.factor * reference_time_s)

    def problem_limit(self, problem: Problem) -> float:
        return self.problem_factor * (problem.time_limit_s or DEFAULT_PROBLEM_TIME_S)

    def describe(self) -> dict:
        return {
            "formula": "max(floor_s, factor * reference_time_s)",
            "floor_s": self.floor_s,
            "factor": self.factor,
            "given_outputs_formula": "problem_factor * (problem time limit or default_problem_time_s)",
            "problem_factor": self.problem_factor,
            "default_problem_time_s": DEFAULT_PROBLEM_TIME_S,
        }


def group_job(
    problem: Problem,
    group: str,
    program: str,
    expected: GroupExpectation,
    policy: TimePolicy,
    limits: Limits,
    *,
    fail_fast: bool = True,
    max_timeouts: int = 0,
    failed_budget_s: float = 0.0,
) -> Job:
    test_group = problem.groups[group]
    exact = test_group.comparison is Comparison.VALUES and problem.oracle is None and problem.atol == 0
    if test_group.outputs is None:
        times = [policy.limit(t) for t in expected.times_s]
    else:
        times = [policy.problem_limit(problem)] * len(expected.args)
    if problem.memory_limit_mb:
        limits = replace(limits, memory_mb=problem.memory_limit_mb + MEMORY_HEADROOM_MB)
    return Job(
        program=program,
        entry_point=problem.entry_point or None,
        stdin=test_group.comparison is Comparison.STDIN,
        calls=expected.args,
        calls_json=expected.calls_json(),
        time_limits_s=times,
        fail_fast=fail_fast,
        max_timeouts=0 if fail_fast else max_timeouts,
        failed_budget_s=0.0 if fail_fast else failed_budget_s,
        limits=limits,
        digest_calls=sorted(expected.digests(limits.digest_min_bytes)) if exact else [],
        raw_values=test_group.comparison is Comparison.VALUES,
        answer_fails=answer_check(problem, group, expected, limits.digest_min_bytes) if fail_fast else None,
    )


def answer_check(
    problem: Problem, group: str, expected: GroupExpectation, digest_min_bytes: int
) -> Callable[[int, CallResult], bool] | None:
    """``Job.answer_fails`` for a group whose answers can be judged one at a time: VALUES, and STDIN
    without a checker. (A checker may accept an answer that differs from the expected text, and
    REPLAY values are judged together, so neither can stop at an answer.) The same comparison
    ``judge_group`` makes: the first test it fails is the first test the final judging fails."""
    comparison = problem.groups[group].comparison
    if comparison is Comparison.REPLAY or (comparison is Comparison.STDIN and problem.checker):
        return None

    def fails(i: int, call: CallResult) -> bool:
        if i >= len(expected.outputs) or not expected.usable:
            return False
        status, _ = _judge_call(problem, comparison, expected, i, call, digest_min_bytes, explain=False)
        return status is not Status.PASS

    return fails


def rerun_job(job: Job, result: JobResult) -> tuple[Job, list[int]]:
    """The job that re-runs a timeout: only the tests that timed out or never ran, in order.

    Tests that already passed or failed for another reason are not run again, and the rerun
    stops at the first timeout that repeats (confirmed; the first attempt's results stand
    for the tests after it), so a rerun costs about one time limit, not the whole group
    again. A timeout while loading re-runs everything.
    """
    if result.load.status is not CallStatus.OK or not result.calls:
        return job, list(range(len(job.calls)))
    redo = [i for i, c in enumerate(result.calls) if c.status in (CallStatus.TIMEOUT, CallStatus.MISSING)]
    position = {i: j for j, i in enumerate(redo)}
    sub = replace(
        job,
        calls=[job.calls[i] for i in redo],
        calls_json=None,
        time_limits_s=[job.time_limits_s[i] for i in redo],
        digest_calls=[position[i] for i in job.digest_calls if i in position],
        max_timeouts=0 if job.fail_fast else 1,
        answer_fails=None,  # its calls are numbered afresh, and a rerun is short
    )
    return sub, redo


def merge_rerun(first: JobResult, again: JobResult, redo: list[int]) -> JobResult:
    """``first`` with the results of the re-run tests taken from ``again`` (where it ran them)."""
    if again.sandbox_error or again.load.status is not CallStatus.OK or len(redo) == len(first.calls):
        return replace(again, wall_s=first.wall_s + again.wall_s)
    calls = list(first.calls)
    for j, i in enumerate(redo):
        if j < len(again.calls) and again.calls[j].status is not CallStatus.MISSING:
            calls[i] = again.calls[j]
    return replace(first, calls=calls, wall_s=first.wall_s + again.wall_s, output=again.output or first.output)


CHECKER_TIME_S = 10.0  # per test, for the data set's checker program
CHECKER_ARGV = ["checker.py", "input.txt", "correct_output.txt", "solution_output.txt"]  # open-r1's convention
CHECKER_ACCEPTS = ("1", "100")  # open-r1's Piston runner: the checker's stdout, whitespace removed, is 1 or 100


def without_blank_lines(text: str) -> str:
    """The program's output as open-r1's runner hands it to a checker: empty lines deleted (``sed '/^$/d'``;
    a line of spaces or a lone ``\\r`` stays)."""
    *lines, tail = text.split("\n")
    kept = [line for line in lines if line]
    return "".join(line + "\n" for line in kept) + tail


def checker_job(
    problem: Problem, expected: GroupExpectation, result: JobResult, tests: list[int], limits: Limits
) -> Job:
    """Run the problem's checker (open-r1 ``generated_checker``: ``checker.py input.txt
    correct_output.txt solution_output.txt``, prints 1 to accept) once per answer in ``tests``."""
    calls = []
    for i in tests:
        files = {"input.txt": expected.args[i][0], "correct_output.txt": expected.outputs[i]}
        files["solution_output.txt"] = without_blank_lines(result.calls[i].value)
        calls.append([expected.args[i][0], encode_value(files), list(CHECKER_ARGV)])
    return Job(
        program=problem.checker or "",
        stdin=True,
        calls=calls,
        time_limits_s=[CHECKER_TIME_S] * len(calls),
        fail_fast=False,
        limits=limits,
        holds_expected=True,  # the correct output is one of its files
    )


def checker_verdicts(tests: list[int], checked: JobResult) -> dict[int, str]:
    """Test -> "" if the checker accepted the answer, else the reason (what it said, or how it failed)."""
    out = {}
    for j, i in enumerate(tests):
        call = checked.calls[j] if j < len(checked.calls) and not checked.sandbox_error else None
        if call is None or checked.load.status is not CallStatus.OK:
            why = checked.sandbox_error or (checked.load.error if checked.load.status is not CallStatus.OK else "")
            out[i] = f"the problem's checker did not run: {why or 'no result'}"[:500]
        elif call.status is not CallStatus.OK:
            out[i] = f"the problem's checker failed ({call.status.value}): {call.error}"[:500]
        else:
            verdict = "".join(str(call.value).split())
            accepted = verdict in CHECKER_ACCEPTS
            out[i] = "" if accepted else f"rejected by the problem's checker (it printed {_short(verdict, 60)})"
    return out


def judge_group(
    problem: Problem,
    group: str,
    expected: GroupExpectation,
    result: JobResult,
    digest_min_bytes: int = Limits.digest_min_bytes,
    *,
    fail_fast: bool = True,
    accepted: dict[int, str] | None = None,
) -> GroupVerdict:
    """Under ``fail_fast`` judging stops at the first failed test; otherwise every test is
    judged, so ``n_passed`` counts all that passed (partial credit). ``accepted`` holds the
    problem checker's word on stdin answers that differ from the expected text (test -> ""
    if accepted, else why not): it replaces the output rule for those tests.

    Total: an exception while judging (a claim no check foresaw) is this group's ``fail``,
    recorded in its detail; it never ends a run."""
    try:
        return _judge_group(problem, group, expected, result, digest_min_bytes, fail_fast, accepted)
    except Exception as exc:
        detail = f"{MALFORMED}: the judge could not compare it ({type(exc).__name__}: {_text(exc)})"
        return GroupVerdict(Status.FAIL, len(expected.args), 0, 0, detail[:500], result.wall_s)


def _judge_group(
    problem: Problem,
    group: str,
    expected: GroupExpectation,
    result: JobResult,
    digest_min_bytes: int,
    fail_fast: bool,
    accepted: dict[int, str] | None,
) -> GroupVerdict:
    n = len(expected.args)
    wall = result.wall_s
    if result.malformed:
        return GroupVerdict(Status.FAIL, n, 0, 0, result.malformed[:500], time_s=wall)
    if result.sandbox_error:
        return GroupVerdict(Status.SANDBOX_ERROR, n, 0, detail=result.sandbox_error[:500], time_s=wall)
    if result.load.status is not CallStatus.OK:
        return GroupVerdict(status_of_call(result.load.status), n, 0, detail=result.load.error[:500], time_s=wall)
    if not expected.usable:
        return GroupVerdict(Status.FAIL, n, 0, detail=f"unpassable: {expected.problem_note}"[:500], time_s=wall)
    calls = result.calls
    comparison = problem.groups[group].comparison
    first: tuple[int, Status, str] | None = None  # the first failed test decides the status
    passed = 0
    # Exact VALUES tests: a value whose encoding equals the expected one passes at once (what
    # _compare would decide first, without its calls); anything else goes the whole way.
    equal_passes = comparison is Comparison.VALUES and problem.oracle is None and accepted is None
    outputs = expected.outputs
    for i in range(n):
        call = calls[i] if i < len(calls) else None
        if equal_passes and call is not None and call.status is CallStatus.OK:
            value = call.value
            raw = type(value) is RawValue  # hashed by _compare instead: the expected value stays encoded
            if not raw and not is_digest_claim(value) and value == outputs[i] and expected.nan_free(i):
                passed += 1
                continue
        if accepted is not None and i in accepted and call is not None and call.status is CallStatus.OK:
            status, detail = (Status.PASS, "") if not accepted[i] else (Status.FAIL, accepted[i])
        else:
            status, detail = _judge_call(problem, comparison, expected, i, call, digest_min_bytes, first is None)
        if status is Status.PASS:
            passed += 1
        elif first is None:
            first = (i, status, detail)
            if fail_fast:
                break
    if first is not None:
        i, status, detail = first
        return GroupVerdict(status, n, passed, i, detail[:500], wall)
    if comparison is Comparison.REPLAY:
        ok, detail = replay_check(problem, group, expected, calls)
        if not ok:
            return GroupVerdict(Status.FAIL, n, 0, None, detail, wall)
    return GroupVerdict(Status.PASS, n, n, None, "", wall)


def _judge_call(
    problem: Problem,
    comparison: Comparison,
    expected: GroupExpectation,
    i: int,
    call: CallResult | None,
    digest_min_bytes: int,
    explain: bool = True,
) -> tuple[Status, str]:
    """One test: PASS, or the status of its failure and (if ``explain``) why."""
    if call is None or call.status is CallStatus.MISSING:  # not run (after a failure, if the job says why)
        return Status.ERROR, call.error if call is not None and call.error else "no result for this test"
    if call.status is not CallStatus.OK:
        return status_of_call(call.status), call.error
    try:
        return _compare(problem, comparison, expected, i, call.value, digest_min_bytes, explain)
    except MalformedClaim as exc:
        return Status.FAIL, f"{MALFORMED}: {exc}"


def _compare(
    problem: Problem,
    comparison: Comparison,
    expected: GroupExpectation,
    i: int,
    value: Any,
    digest_min_bytes: int,
    explain: bool,
) -> tuple[Status, str]:
    """One returned value against the expected one; raises MalformedClaim for a malformed claim."""
    if comparison is Comparison.STDIN:
        exp = expected.outputs[i]
        if type(value) is not str:
            raise MalformedClaim("a stdin test's answer is not text")
        if value != exp and not _output_matches(value, exp, problem.oracle or "tokens"):
            if not explain:
                return Status.FAIL, ""
            return Status.FAIL, f"input {_short(expected.args[i][0])}: expected {_short(exp)}, got {_short(value)}"
        return Status.PASS, ""
    if comparison is not Comparison.VALUES:
        return Status.PASS, ""  # REPLAY: the values are checked together by replay_check
    if type(value) is RawValue:  # bytes equal to the expected encoding: equal values, neither side parsed
        if problem.oracle is None and expected.nan_free(i) and value.sha256() in expected.sha256s(i):
            return Status.PASS, ""
        value = value.encoded()
    if is_digest_claim(value):  # only where the job asked for one, and then only the same sha256 passes
        wanted = expected.digests(digest_min_bytes).get(i) if problem.oracle is None and problem.atol == 0 else None
        if wanted is None:
            raise MalformedClaim("a digest where the job asked for the value")
        if digest_claim(value) != wanted:
            return Status.FAIL, "large return value differs from the expected one"
        return Status.PASS, ""
    if problem.oracle is None and value == expected.outputs[i] and expected.nan_free(i):
        return Status.PASS, ""  # equal encodings, compared at C speed: equal values
    out = decode_claim(value)
    exp = decode_value(expected.outputs[i])
    args = decode_value(expected.args[i])
    if not values_match(out, exp, args, problem.atol, problem.oracle):
        return Status.FAIL, f"input {_short(args)}: expected {_short(exp)}, got {_short(out)}" if explain else ""
    return Status.PASS, ""


def _output_matches(out: str, expected: str, rule: str) -> bool:
    """The suite's output rule; an answer that makes a checker raise (say ``sNaN``) is not accepted."""
    try:
        return output_matches(out, expected, rule)
    except Exception:
        return False


def canonical_key(encoded: Any) -> str:
    """A key for encoded arguments that does not depend on set iteration order."""
    return json.dumps(_sort_sets(encoded), sort_keys=True, separators=(",", ":"))


def _sort_sets(node: Any) -> Any:
    if isinstance(node, list):
        return [_sort_sets(x) for x in node]
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in ("s", "fs"):
            tag = next(iter(node))
            return {tag: sorted((_sort_sets(x) for x in node[tag]), key=lambda x: json.dumps(x, sort_keys=True))}
        return {k: _sort_sets(v) for k, v in node.items()}
    return node


class _NotRecorded(Exception):
    pass


def replay_check(problem: Problem, group: str, expected: GroupExpectation, calls: list) -> tuple[bool, str]:
    """Re-run the data set's test program on the candidate's values; True if it passes."""
    table: dict[str, Any] = {}
    try:
        for args, call in zip(expected.args, calls, strict=False):
            table[canonical_key(args)] = decode_claim(call.value)
    except MalformedClaim as exc:
        return False, f"{MALFORMED}: {exc}"

    def candidate(*args: Any) -> Any:
        key = canonical_key(encode_value(list(args)))
        if key not in table:
            raise _NotRecorded(f"call {_short(list(args))} was not recorded on the reference")
        return copy.deepcopy(table[key])  # a test that mutates what it got must not change the next call

    check = problem.groups[group].check or ""
    with _REPLAY_LOCK:
        state = random.getstate()
        try:
            namespace: dict[str, Any] = {"__name__": "__ra3bench_replay__"}
            exec(
                compile(problem.reference, "<reference>", "exec", dont_inherit=True), namespace
            )  # data-set code, verified by hash
            random.seed(0)
            namespace[problem.entry_point] = candidate
            exec(compile(check, "<test>", "exec", dont_inherit=True), namespace)
        except AssertionError as exc:
            return False, f"assertion failed{': ' + str(exc)[:300] if str(exc) else ''}"
        except _NotRecorded as exc:
            return False, str(exc)[:500]
        except Exception as exc:
            return False, f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            random.setstate(state)
    return True, ""


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:300]
    except Exception:
        return "?"


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = repr(value)
    except ValueError:  # ints past 4,300 digits have no decimal repr
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expectations_for(expectations: Expectations, problem: Problem) -> dict[str, GroupExpectation]:
    return expectations.tasks[problem.task_id]


def status_of_call(status: CallStatus) -> Status:
    """The sample status a failed call stands for (a plain failure is the program's error)."""
    return {
        CallStatus.TIMEOUT: Status.TIMEOUT,
        CallStatus.MEMORY: Status.MEMORY,
        CallStatus.SYNTAX: Status.SYNTAX,
    }.get(status, Status.ERROR)
