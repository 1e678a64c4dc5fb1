"""Expected outputs: the reference solution run in the sandbox, cached per data hash.

As in evalplus, expected values are not stored in the data set but computed by running the
reference solution on each input, together with its runtime; per-test time limits are
``max(floor, factor x reference time)``. REPLAY groups (assertion-style test programs) are
turned into plain calls here: the test program runs against the reference with every call
to the entry point recorded (arguments, value, time).

The store (``expected_store``: one record per problem) is keyed by suite, version, data sha256,
harness version and Python version; the digest of the records a run used goes into its manifest.
A record counts only for the problem content it was computed for (``problem_fingerprint``). Start-up
is proportional to what is judged: a stored group's arguments and outputs are decoded on first use,
its large outputs one by one and only when read (a large text the sandbox answers with a sha256
never is), so loading all of HumanEval+ costs reading and checking its records, not parsing them.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra3bench.expected_store import (
    NAN_MARK,
    ExpectedStore,
    LazyArgs,
    LazyOutputs,
    StoredGroup,
    output_digests,
    selection_digest,
    store_path,
    text_only,
)
from ra3bench.paths import cache_root
from ra3bench.progress import progress_bar
from ra3bench.sandbox.base import CallStatus, Job, Limits, Sandbox
from ra3bench.sandbox.harness.jobs import RAW_MIN_BYTES
from ra3bench.sandbox.harness.protocol import VALUE_ENCODER, encode_value, value_digest
from ra3bench.suites.base import Comparison, Problem, Suite

FINGERPRINT_FORMAT = b"ra3bench problem fingerprint 2\n"  # bump when what problem_fingerprint hashes changes
HARNESS_VERSION = "6"  # bump when the harness or encoding changes what a run returns (6: call time includes encoding)
REFERENCE_CALL_LIMIT_S = 60.0  # generous: the reference is trusted, we only guard against a hang


class GroupExpectation:
    """What the reference did on one test group.

    Built from plain lists (a computation, the data, a test), or from a stored record, whose
    arguments and outputs stay compressed until first used (``expected_store.LazyArgs``,
    ``LazyOutputs``: sequences that equal the lists they stand for, decoded once even when several
    threads ask at the same time, pickled as plain lists).
    """

    __slots__ = (
        "_calls_json",
        "_digests",
        "_nan_free",
        "_outputs",
        "_sha256s",
        "_stored",
        "args",
        "problem_note",
        "statuses",
        "times_s",
    )

    def __init__(
        self,
        args: Sequence[list[Any]],
        outputs: Sequence[Any],
        times_s: list[float],
        statuses: list[str],
        problem_note: str = "",
    ) -> None:
        self.args = args  # encoded positional args, one per test
        self._outputs = outputs  # encoded return values
        self._stored = outputs if type(outputs) is LazyOutputs else None  # what the record's metadata says
        self.times_s = times_s
        self.statuses = statuses  # "ok" unless the reference itself failed on that test
        self.problem_note = problem_note  # why this group cannot be passed, if it cannot
        self._calls_json: str | None = None
        self._digests: dict[int, dict[int, str]] = {}
        self._nan_free: list[bool] | None = None
        self._sha256s: dict[int, tuple[str, ...]] = {}

    @property
    def outputs(self) -> Sequence[Any]:
        """The encoded return values; a stored group's become a plain list once no large one is left
        undecoded (its small ones are decoded then), so that the judge indexes a list."""
        outputs = self._outputs
        if type(outputs) is LazyOutputs:
            plain = outputs.plain()
            if plain is not None:
                self._outputs = plain
                return plain
        return outputs

    @property
    def usable(self) -> bool:
        return not self.problem_note

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupExpectation):
            return NotImplemented
        return (self.args, self.outputs, self.times_s, self.statuses, self.problem_note) == (
            other.args,
            other.outputs,
            other.times_s,
            other.statuses,
            other.problem_note,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return (
            f"GroupExpectation({len(self.args)} args, {len(self._outputs)} outputs, "
            f"times_s={self.times_s!r}, statuses={self.statuses!r}, problem_note={self.problem_note!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """Plain lists (a lazy sequence holds a lock); caches are rebuilt."""
        return {
            "args": list(self.args),
            "outputs": list(self._outputs),
            "times_s": self.times_s,
            "statuses": self.statuses,
            "problem_note": self.problem_note,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def calls_json(self) -> str:
        """The arguments serialized once, for every sample of the task."""
        if type(self.args) is LazyArgs:
            return self.args.text()  # the stored text, as it was serialized
        if self._calls_json is None:
            self._calls_json = json.dumps(self.args, separators=(",", ":"), allow_nan=False)
        return self._calls_json

    def digests(self, min_bytes: int) -> dict[int, str]:
        """sha256 of each large expected value that only equality can match (text, or lists of text).

        Numbers are left out on purpose: Python's ``1 == 1.0`` and float tolerances need the value.
        A stored group answers from its record's metadata when ``min_bytes`` is at least
        ``BIG_OUTPUT_CHARS``, without decoding a value.
        """
        found = self._digests.get(min_bytes)
        if found is None:
            found = self._stored.digests(min_bytes) if self._stored is not None else None
            if found is None:
                found = {}
                for i, out in enumerate(self.outputs):
                    if text_only(out):
                        text = VALUE_ENCODER.encode(out)
                        if len(text) > min_bytes:
                            found[i] = value_digest(text)["h"]
            self._digests[min_bytes] = found
        return found

    def sha256s(self, i: int) -> tuple[str, ...]:
        """The ``value_digest`` of output ``i``'s encoding, and of its int form (``ints_for_integral_floats``)
        where that differs: bytes that hash to one of them encode a value equal to it. Empty where the
        encoding is no longer than ``RAW_MIN_BYTES``: a raw value (always longer) cannot be it."""
        if self._stored is not None:
            return self._stored.sha256s(i)
        if i not in self._sha256s:
            out = self._outputs[i]
            try:
                text = VALUE_ENCODER.encode(out)
            except ValueError:  # a raw non-finite float: never matched by equality
                text = ""
            digests = output_digests(out, text, NAN_MARK in text) if len(text) > RAW_MIN_BYTES else ()
            self._sha256s[i] = tuple(d for d in digests if d)
        return self._sha256s[i]

    def nan_free(self, i: int) -> bool:
        """Whether output ``i`` has no NaN inside: only then does an equal encoding mean an equal value."""
        if self._stored is not None:
            return self._stored.nan_free(i)
        if self._nan_free is None:
            self._nan_free = [NAN_MARK not in VALUE_ENCODER.encode(out) for out in self._outputs]
        return self._nan_free[i]


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

    The content is hashed as a pickle made without its memo (``Pickler.fast``): an exact record of
    types and values (tuple or list, ``1``, ``1.0`` or ``True``, ``-0.0``, any int, any text) that
    does not depend on which equal objects happen to be shared, made in C: 0.02 s for all of
    HumanEval+, where encoding every input first (``encode_value`` in Python, then JSON) took 0.3 s.
    Sets of text pickle in hash order, which varies between processes (``PYTHONHASHSEED``), as their
    encoding did; a fingerprint that differs only recomputes. Content the pickle refuses (a
    cycle, a function, nesting past the recursion limit) is fingerprinted through ``encode_value``.
    """
    groups = [(g.name, g.comparison.value, g.check, g.inputs, g.outputs) for g in problem.groups.values()]
    content = (
        problem.reference,
        problem.entry_point,
        problem.checker,
        problem.time_limit_s,
        problem.memory_limit_mb,
        problem.oracle,
        problem.atol,
        groups,
    )
    try:
        data = b"pickle\n" + _exact_pickle(content)
    except Exception:  # unpicklable content: the slower encoding every value has
        data = b"encoded\n" + _encoded_content(problem)
    return hashlib.sha256(FINGERPRINT_FORMAT + data).hexdigest()


def _exact_pickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    # No memo: equal content gives equal bytes, however objects are shared. (Documented as deprecated,
    # yet in every CPython 3; should it go, this raises and problem_fingerprint takes the slow path.)
    pickler.fast = True
    pickler.dump(value)
    return buffer.getvalue()


def _encoded_content(problem: Problem) -> bytes:
    parts = [
        json.dumps([problem.reference, problem.entry_point]),
        json.dumps([problem.checker, problem.time_limit_s, problem.memory_limit_mb, problem.oracle, problem.atol]),
    ]
    for group in problem.groups.values():
        inputs = [encode_value(list(args)) for args in group.inputs]
        outputs = None if group.outputs is None else [encode_value(value) for value in group.outputs]
        parts.append(json.dumps([group.name, group.comparison.value, group.check, inputs, outputs]))
    return "\n".join(parts).encode()


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
    path = store_path(cache_root(), key)
    wanted = problems if problems is not None else suite.problems()
    by_id = {p.task_id: p for p in wanted}
    given = {p.task_id: from_data(p) for p in wanted if all(g.outputs is not None for g in p.groups.values())}
    wanted = [p for p in wanted if p.task_id not in given]
    given_prints = {task_id: problem_fingerprint(by_id[task_id]) for task_id in given}
    if not wanted:  # every expected output comes from the data: nothing to run, nothing to store
        return Expectations(key=key, path=None, sha256="", tasks=given, fingerprints=given_prints)
    store = ExpectedStore(path)
    current = {p.task_id: problem_fingerprint(p) for p in wanted}
    tasks: dict[str, dict[str, GroupExpectation]] = {}
    digests: dict[str, str] = {}
    for task_id, record in store.load(current).items():  # checked, and computed for this content
        tasks[task_id] = {name: _from_stored(g) for name, g in record.groups.items()}
        digests[task_id] = record.digest
    missing = [p for p in wanted if p.task_id not in tasks]
    if missing:
        computed = compute(missing, sandbox, limits=limits)
        digests.update(store.save({task_id: (current[task_id], groups) for task_id, groups in computed.items()}))
        tasks.update(computed)
    return Expectations(
        key=key,
        path=path,
        sha256=selection_digest(digests),
        tasks={**tasks, **given},
        fingerprints={**{t: current[t] for t in tasks}, **given_prints},
    )


def _from_stored(group: StoredGroup) -> GroupExpectation:
    return GroupExpectation(group.args, group.outputs, group.times_s, group.statuses, problem_note=group.problem_note)


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
