"""Trusted judgement: build a candidate's jobs and turn what came back into verdicts.

Nothing here executes the candidate. VALUES groups compare decoded return values with the
reference's (``oracles.values_match``). REPLAY groups re-run the data set's own test
program in this process, with the entry point replaced by a lookup table of the
candidate's decoded return values: the assertion semantics of the original benchmark,
without letting the candidate near the comparison.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from typing import Any

from ra3bench.expected import Expectations, GroupExpectation
from ra3bench.oracles import values_match
from ra3bench.sandbox.base import CallStatus, GroupVerdict, Job, JobResult, Limits, Status
from ra3bench.sandbox.harness.protocol import decode_value, encode_value
from ra3bench.suites.base import Comparison, Problem

_REPLAY_LOCK = threading.Lock()  # replays seed the global `random`, as the recording did


@dataclass(frozen=True)
class TimePolicy:
    """Per-test wall limit = max(floor, factor x reference time) (evalplus: 1.0 s, 4.0)."""

    floor_s: float = 1.0
    factor: float = 4.0

    def limit(self, reference_time_s: float) -> float:
        return max(self.floor_s, self.factor * reference_time_s)

    def describe(self) -> dict:
        return {"formula": "max(floor_s, factor * reference_time_s)", "floor_s": self.floor_s, "factor": self.factor}


def group_job(
    problem: Problem,
    group: str,
    program: str,
    expected: GroupExpectation,
    policy: TimePolicy,
    limits: Limits,
    *,
    fail_fast: bool = True,
) -> Job:
    exact = problem.groups[group].comparison is Comparison.VALUES and problem.oracle is None and problem.atol == 0
    return Job(
        program=program,
        entry_point=problem.entry_point,
        calls=expected.args,
        calls_json=expected.calls_json(),
        time_limits_s=[policy.limit(t) for t in expected.times_s],
        fail_fast=fail_fast,
        limits=limits,
        digest_calls=sorted(expected.digests(limits.digest_min_bytes)) if exact else [],
    )


def judge_group(
    problem: Problem,
    group: str,
    expected: GroupExpectation,
    result: JobResult,
    digest_min_bytes: int = Limits.digest_min_bytes,
) -> GroupVerdict:
    n = len(expected.args)
    wall = result.wall_s
    if result.sandbox_error:
        return GroupVerdict(Status.SANDBOX_ERROR, n, 0, detail=result.sandbox_error[:500], time_s=wall)
    if result.load.status is not CallStatus.OK:
        return GroupVerdict(Status.from_call(result.load.status), n, 0, detail=result.load.error[:500], time_s=wall)
    if not expected.usable:
        return GroupVerdict(Status.FAIL, n, 0, detail=f"unpassable: {expected.problem_note}"[:500], time_s=wall)
    calls = result.calls
    comparison = problem.groups[group].comparison
    for i in range(n):  # i = tests passed so far
        call = calls[i] if i < len(calls) else None
        if call is None or call.status is CallStatus.MISSING:
            return GroupVerdict(Status.ERROR, n, i, i, "no result for this test", wall)
        if call.status is not CallStatus.OK:
            return GroupVerdict(Status.from_call(call.status), n, i, i, call.error[:500], wall)
        if comparison is Comparison.VALUES and _is_digest(call.value):
            if expected.digests(digest_min_bytes).get(i) != call.value["h"]:
                return GroupVerdict(Status.FAIL, n, i, i, "large return value differs from the expected one", wall)
        elif comparison is Comparison.VALUES:
            out = decode_value(call.value)
            exp = decode_value(expected.outputs[i])
            args = decode_value(expected.args[i])
            if not values_match(out, exp, args, problem.atol, problem.oracle):
                detail = f"input {_short(args)}: expected {_short(exp)}, got {_short(out)}"
                return GroupVerdict(Status.FAIL, n, i, i, detail, wall)
    if comparison is Comparison.REPLAY:
        ok, detail = replay_check(problem, group, expected, calls)
        if not ok:
            return GroupVerdict(Status.FAIL, n, 0, None, detail, wall)
    return GroupVerdict(Status.PASS, n, n, None, "", wall)


def _is_digest(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["h"]


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
    for args, call in zip(expected.args, calls, strict=False):
        table[canonical_key(args)] = call.value

    def candidate(*args: Any) -> Any:
        key = canonical_key(encode_value(list(args)))
        if key not in table:
            raise _NotRecorded(f"call {_short(list(args))} was not recorded on the reference")
        return decode_value(table[key])

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


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = repr(value)
    except ValueError:  # ints past 4,300 digits have no decimal repr
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expectations_for(expectations: Expectations, problem: Problem) -> dict[str, GroupExpectation]:
    return expectations.tasks[problem.task_id]
