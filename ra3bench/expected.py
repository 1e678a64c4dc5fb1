"""Expected outputs: the reference solution run in the sandbox, cached per data hash.

As in evalplus, expected values are not stored in the data set but computed by running the
reference solution on each input, together with its runtime; per-test time limits are
``max(floor, factor x reference time)``. REPLAY groups (assertion-style test programs) are
turned into plain calls here: the test program runs against the reference with every call
to the entry point recorded (arguments, value, time).

The store (``expected_store``: one record per problem) is keyed by suite, version, data sha256,
harness version and Python version; the digest of the records a run used goes into its manifest.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra3bench.expected_store import ExpectedStore, selection_digest
from ra3bench.paths import cache_root
from ra3bench.progress import progress_bar
from ra3bench.sandbox.base import CallStatus, Job, Limits, Sandbox
from ra3bench.sandbox.harness.protocol import VALUE_ENCODER, encode_value, value_digest
from ra3bench.suites.base import Comparison, Problem, Suite

HARNESS_VERSION = "6"  # bump when the harness or encoding changes what a run returns (6: call time includes encoding)
REFERENCE_CALL_LIMIT_S = 60.0  # generous: the reference is trusted, we only guard against a hang


@dataclass
class GroupExpectation:
    """What the reference did on one test group."""

    args: list[list[Any]]  # encoded positional args, one per test
    outputs: list[Any]  # encoded return values
    times_s: list[float]
    statuses: list[str]  # "ok" unless the reference itself failed on that test
    problem_note: str = ""  # why this group cannot be passed, if it cannot
    _calls_json: str | None = field(default=None, init=False, repr=False, compare=False)
    _digests: dict[int, dict[int, str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _nan_free: list[bool] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def usable(self) -> bool:
        return not self.problem_note

    def calls_json(self) -> str:
        """The arguments serialized once, for every sample of the task."""
        if self._calls_json is None:
            self._calls_json = json.dumps(self.args, separators=(",", ":"), allow_nan=False)
        return self._calls_json

    def digests(self, min_bytes: int) -> dict[int, str]:
        """sha256 of each large expected value that only equality can match (text, or lists of text).

        Numbers are left out on purpose: Python's ``1 == 1.0`` and float tolerances need the value.
        """
        if min_bytes not in self._digests:
            found = {}
            for i, out in enumerate(self.outputs):
                if _text_only(out):
                    text = VALUE_ENCODER.encode(out)
                    if len(text) > min_bytes:
                        found[i] = value_digest(text)["h"]
            self._digests[min_bytes] = found
        return self._digests[min_bytes]

    def nan_free(self, i: int) -> bool:
        """Whether output ``i`` has no NaN inside: only then does an equal encoding mean an equal value."""
        if self._nan_free is None:
            self._nan_free = ['"nan"' not in VALUE_ENCODER.encode(out) for out in self.outputs]
        return self._nan_free[i]


def _text_only(encoded: Any) -> bool:
    if isinstance(encoded, str):
        return True
    if isinstance(encoded, list):
        return all(_text_only(x) for x in encoded)
    if isinstance(encoded, dict) and list(encoded) == ["t"]:
        return all(_text_only(x) for x in encoded["t"])
    return False


@dataclass
class Expectations:
    key: str
    path: Path | None
    sha256: str
    tasks: dict[str, dict[str, GroupExpectation]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)  # task id -> problem_fingerprint

    def get(self, task_id: str, group: str) -> GroupExpectation:
        return self.tasks[task_id][group]


def expectations_key(suite: Suite) -> str:
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return f"{suite.name}-{suite.version}-{suite.data_sha256[:16]}-h{HARNESS_VERSION}-{py}"


def problem_fingerprint(problem: Problem) -> str:
    """What a problem's expected outputs and verdicts depend on: reference, entry point, every group's
    inputs, test program and given outputs, the checker, limits and oracle.

    The data file's sha256 alone is not enough: how ra3bench reads it (which arguments become tuples,
    how expected text is normalised, which tests form a group) changes them, and must invalidate
    cached outputs and the verdicts keyed on them.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([problem.reference, problem.entry_point]).encode())
    digest.update(
        json.dumps(
            [problem.checker, problem.time_limit_s, problem.memory_limit_mb, problem.oracle, problem.atol]
        ).encode()
    )
    for group in problem.groups.values():
        inputs = [encode_value(list(args)) for args in group.inputs]
        outputs = None if group.outputs is None else [encode_value(value) for value in group.outputs]
        digest.update(json.dumps([group.name, group.comparison.value, group.check, inputs, outputs]).encode())
    return digest.hexdigest()


def load_or_compute(
    suite: Suite, sandbox: Sandbox, problems: list[Problem] | None = None, *, limits: Limits | None = None
) -> Expectations:
    """Expected outputs for ``problems`` (default: all), from the store or computed now.

    The store keeps one record per problem (``expected_store``): only the problems asked are read
    or computed, so `--limit 1` pays for one problem, and a partial computation is extended later.
    A record counts only if it was computed for the same problem content (its fingerprint).
    ``sha256`` is the digest of the records used (what the manifest names).
    """
    key = expectations_key(suite)
    path = cache_root() / "expected" / f"{key}.sqlite"
    wanted = problems if problems is not None else suite.problems()
    by_id = {p.task_id: p for p in wanted}
    given = {p.task_id: from_data(p) for p in wanted if all(g.outputs is not None for g in p.groups.values())}
    wanted = [p for p in wanted if p.task_id not in given]
    given_prints = {task_id: problem_fingerprint(by_id[task_id]) for task_id in given}
    if not wanted:  # every expected output comes from the data: nothing to run, nothing to store
        return Expectations(key=key, path=None, sha256="", tasks=given, fingerprints=given_prints)
    store = ExpectedStore(path)
    current = {p.task_id: problem_fingerprint(p) for p in wanted}
    stored = store.load(current)
    tasks: dict[str, dict[str, GroupExpectation]] = {}
    digests: dict[str, str] = {}
    for task_id, (fingerprint, groups, digest) in stored.items():
        if fingerprint == current[task_id]:
            try:
                tasks[task_id] = {name: GroupExpectation(**g) for name, g in groups.items()}
                digests[task_id] = digest
            except TypeError:
                pass  # a record of another shape: recomputed
    missing = [p for p in wanted if p.task_id not in tasks]
    if missing:
        computed = compute(missing, sandbox, limits=limits)
        records = {task_id: (current[task_id], _encode_groups(groups)) for task_id, groups in computed.items()}
        digests.update(store.save(records))
        tasks.update(computed)
    return Expectations(
        key=key,
        path=path,
        sha256=selection_digest(digests),
        tasks={**tasks, **given},
        fingerprints={**{t: current[t] for t in tasks}, **given_prints},
    )


def from_data(problem: Problem) -> dict[str, GroupExpectation]:
    """Expected outputs the data set gives (LiveCodeBench, Codeforces): no reference to run, no runtimes."""
    out = {}
    for name, group in problem.groups.items():
        n = len(group.inputs)
        out[name] = GroupExpectation(
            args=[encode_value(list(args)) for args in group.inputs],
            outputs=[encode_value(value) for value in group.outputs or []],
            times_s=[0.0] * n,
            statuses=["ok"] * n,
            problem_note="" if len(group.outputs or []) == n else "the data gives fewer outputs than inputs",
        )
    return out


def compute(problems: list[Problem], sandbox: Sandbox, *, limits: Limits | None = None) -> dict:
    limits = limits or Limits()
    jobs: list[tuple[str, str, Job]] = []
    for problem in problems:
        for group in problem.groups.values():
            jobs.append((problem.task_id, group.name, _reference_job(problem, group.name, limits)))
    out: dict[str, dict[str, GroupExpectation]] = {p.task_id: {} for p in problems}
    with progress_bar("expected outputs (reference solutions)", total=len(jobs)) as advance:
        for index, result in sandbox.run_many([job for _, _, job in jobs]):
            task_id, group_name, job = jobs[index]
            problem = next(p for p in problems if p.task_id == task_id)
            out[task_id][group_name] = _expectation_from(problem, group_name, job, result)
            advance()
    return out


def _reference_job(problem: Problem, group_name: str, limits: Limits) -> Job:
    group = problem.groups[group_name]
    if group.comparison is Comparison.REPLAY:
        return Job(
            program=problem.reference,
            entry_point=problem.entry_point,
            script=group.check,
            script_time_s=REFERENCE_CALL_LIMIT_S,
            record=True,
            fail_fast=False,
            limits=limits,
            holds_expected=True,
        )
    return Job(
        program=problem.reference,
        entry_point=problem.entry_point,
        calls=[encode_value(list(args)) for args in group.inputs],
        time_limits_s=[REFERENCE_CALL_LIMIT_S] * len(group.inputs),
        fail_fast=False,
        limits=limits,
        holds_expected=True,  # its answers are the expected values: never on a candidate's worker
    )


def _expectation_from(problem: Problem, group_name: str, job: Job, result) -> GroupExpectation:
    if result.sandbox_error:
        return GroupExpectation([], [], [], [], problem_note=f"sandbox error: {result.sandbox_error}")
    if result.load.status is not CallStatus.OK:
        return GroupExpectation([], [], [], [], problem_note=f"reference does not load: {result.load.error}")
    if job.record:
        recorded = result.recorded
        note = ""
        if result.script is None or result.script.status is not CallStatus.OK:
            error = result.script.error if result.script else "no result"
            note = f"the test program fails on the reference: {error}"
        elif not recorded:
            note = "the test program never calls the entry point"
        return GroupExpectation(
            args=[r.args for r in recorded],
            outputs=[r.value for r in recorded],
            times_s=[r.time_s for r in recorded],
            statuses=[r.status.value for r in recorded],
            problem_note=note,
        )
    calls = result.calls
    bad = [i for i, c in enumerate(calls) if c.status is not CallStatus.OK]
    note = ""
    if bad:
        note = f"reference fails on {len(bad)} of {len(calls)} tests (first #{bad[0]}: {calls[bad[0]].error[:200]})"
    return GroupExpectation(
        args=list(job.calls),
        outputs=[c.value for c in calls],
        times_s=[c.time_s for c in calls],
        statuses=[c.status.value for c in calls],
        problem_note=note,
    )


def _encode_groups(groups: dict[str, GroupExpectation]) -> dict:
    return {
        name: {
            "args": g.args,
            "outputs": g.outputs,
            "times_s": g.times_s,
            "statuses": g.statuses,
            "problem_note": g.problem_note,
        }
        for name, g in groups.items()
    }
