"""The expected-output store decodes lazily and still never trusts a damaged record.

A stored group must equal the group it was made from (arguments, outputs, the arguments' JSON text,
digests, NaN flags), decode each blob once however many threads ask, leave large outputs compressed
until they are themselves read (a large text judged by its sha256 never is), and a record that is
damaged, or a file of another schema, is recomputed rather than read.
"""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from in_memory import CountingSandbox, InMemorySuite

from ra3bench import expected_store
from ra3bench.expected import GroupExpectation, expectations_key, load_or_compute, problem_fingerprint
from ra3bench.expected_store import (
    BIG_OUTPUT_CHARS,
    SCHEMA_VERSION,
    DamagedRecord,
    ExpectedStore,
    pack_record,
    store_path,
    unpack_record,
)
from ra3bench.judge import TimePolicy, group_job, judge_group
from ra3bench.paths import cache_root
from ra3bench.records import Status
from ra3bench.sandbox.base import CallResult, CallStatus, JobResult, Limits
from ra3bench.sandbox.harness.protocol import VALUE_ENCODER, encode_value, value_digest
from ra3bench.suites.base import Comparison, Problem, TestGroup

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = BIG_OUTPUT_CHARS
MIN_BYTES = (0, 10, BIG - 1, BIG, BIG + 1, Limits.digest_min_bytes)


# --------------------------------------------------------------------------- values as the harness encodes them

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**4100, max_value=2**4200),  # {"ix": hex}
    st.floats(allow_nan=True, allow_infinity=True),  # NaN / inf: {"f": "nan"} ...
    st.just(-0.0),
    st.text(max_size=12),
    st.just("nan"),  # encodes as '"nan"': counted as a NaN, as the eager code counts it
    st.binary(max_size=6),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=10,
)
big_text = st.one_of(
    st.text(min_size=1, max_size=6).map(lambda s: s * (BIG // len(s) + 1)),
    st.integers(BIG - 4, BIG + 2).map(lambda k: "x" * k),  # encoded length around the threshold
    st.integers(BIG - 4, BIG + 2).map(lambda k: "\u00e9" * (k // 6)),  # escaped: 6 characters each
)
big_values = st.one_of(
    big_text,
    st.lists(big_text, min_size=1, max_size=2),  # text only
    st.lists(big_text, min_size=1, max_size=2).map(tuple),  # text only, as a tuple
    st.integers(BIG // 2, BIG).map(lambda k: list(range(k))),  # numbers: never digested
    big_text.map(lambda s: [s, math.nan]),  # a NaN inside a large value
)
outputs = st.lists(st.one_of(values, big_values), max_size=6).map(lambda xs: [encode_value(x) for x in xs])
args = st.lists(st.lists(values, max_size=3), max_size=5).map(lambda xs: [encode_value(x) for x in xs])
groups = st.builds(
    GroupExpectation,
    args,
    outputs,
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5),
    st.lists(st.sampled_from(["ok", "error", "timeout"]), max_size=5),
    st.text(max_size=10),
)


def stored(task_groups: dict[str, GroupExpectation], task_id: str = "t/1") -> dict[str, GroupExpectation]:
    """What a load gives back for ``task_groups``, through the record format (no file)."""
    digest, meta, payload = pack_record(task_id, "f" * 64, task_groups)
    record = unpack_record(task_id, "f" * 64, digest, meta, payload)
    assert record is not None and record.digest == digest
    return {name: _expectation(g) for name, g in record.groups.items()}


def _expectation(group) -> GroupExpectation:
    return GroupExpectation(group.args, group.outputs, group.times_s, group.statuses, problem_note=group.problem_note)


def assert_same(new: GroupExpectation, old: GroupExpectation) -> None:
    for min_bytes in MIN_BYTES:
        assert new.digests(min_bytes) == old.digests(min_bytes)
    assert [new.nan_free(i) for i in range(len(old.outputs))] == [old.nan_free(i) for i in range(len(old.outputs))]
    assert new.calls_json() == old.calls_json()
    assert len(new.args) == len(old.args) and len(new.outputs) == len(old.outputs)
    assert [new.args[i] for i in range(len(old.args))] == old.args and list(new.args) == old.args
    assert [new.outputs[i] for i in range(len(old.outputs))] == old.outputs
    assert list(new.outputs) == old.outputs and new.outputs == old.outputs and old.outputs == new.outputs
    assert new.times_s == old.times_s and new.statuses == old.statuses and new.problem_note == old.problem_note
    assert new == old


@SETTINGS
@given(st.dictionaries(st.sampled_from(["base", "plus", "x"]), groups, min_size=1, max_size=3))
def test_a_stored_group_equals_the_group_it_was_made_from(task_groups):
    for name, new in stored(task_groups).items():
        assert_same(new, task_groups[name])


@SETTINGS
@given(groups)
def test_a_stored_group_answers_the_judge_before_anything_is_decoded(group):
    """digests() and nan_free() come from the record's metadata, in whatever order the judge asks."""
    (new,) = stored({"plus": group}).values()
    for min_bytes in (BIG, Limits.digest_min_bytes):
        assert new.digests(min_bytes) == group.digests(min_bytes)
    assert [new.nan_free(i) for i in range(len(group.outputs))] == [
        group.nan_free(i) for i in range(len(group.outputs))
    ]
    assert new.calls_json() == group.calls_json()
    assert new == group


def test_a_stored_group_pickles_as_plain_lists():
    group = GroupExpectation([[1], ["a" * BIG]], [2, "b" * BIG], [0.5, 0.25], ["ok", "ok"], problem_note="")
    (new,) = stored({"base": group}).values()
    again = pickle.loads(pickle.dumps(new))
    assert again == group and type(again.args) is list and type(again.outputs) is list
    assert again.digests(BIG) == group.digests(BIG)


# --------------------------------------------------------------------------- a suite and a sandbox without processes

SMALL_TEXT = "small"
BIG_TEXT = "0 1 2 3 " * (Limits.digest_min_bytes // 4)  # over the default digest threshold


def reference_value(x: int):
    """What the reference returns for input ``x``: a large text for 0, a small one otherwise."""
    return BIG_TEXT if x == 0 else f"{SMALL_TEXT}{x}"


def counting_sandbox() -> CountingSandbox:
    return CountingSandbox(lambda args: reference_value(args[0]))


def text_suite(tasks: int = 2) -> InMemorySuite:
    """Problems with large and small text outputs (``reference_value``)."""
    problems = [
        Problem(
            f"t/{i}",
            "",
            "",
            "f",
            "def f(x):\n    return x\n",
            {
                "base": TestGroup("base", Comparison.VALUES, [[1], [2]]),
                "plus": TestGroup("plus", Comparison.VALUES, [[3], [0], [4], [0]]),
            },
        )
        for i in range(tasks)
    ]
    return InMemorySuite("text", problems, ("base", "plus"))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path))


class Inflations:
    """Counts zlib.decompress calls (and the bytes they give), optionally slowed to widen races."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s
        self._real = zlib.decompress
        self._lock = threading.Lock()

    def __call__(self, data, *args, **kwargs):
        out = self._real(data, *args, **kwargs)
        time.sleep(self.delay_s)
        with self._lock:
            self.calls.append(len(out))
        return out

    @property
    def big(self) -> int:
        return sum(1 for size in self.calls if size > BIG)


@pytest.fixture
def inflations(monkeypatch) -> Iterator[Inflations]:
    counter = Inflations()
    monkeypatch.setattr(expected_store.zlib, "decompress", counter)
    yield counter


def computed_and_stored() -> tuple:
    """(eager expectations, expectations loaded from the store) of text_suite()."""
    sandbox = counting_sandbox()
    eager = load_or_compute(text_suite(), sandbox)
    loaded = load_or_compute(text_suite(), sandbox)
    assert sandbox.jobs == 4  # the second load ran nothing
    assert loaded.sha256 == eager.sha256
    return eager, loaded


def test_loading_decompresses_nothing_and_large_outputs_only_when_read(inflations):
    eager, _ = computed_and_stored()
    inflations.calls.clear()
    loaded = load_or_compute(text_suite(), counting_sandbox())
    plus = loaded.get("t/0", "plus")
    assert inflations.calls == []
    assert plus.digests(Limits.digest_min_bytes) == eager.get("t/0", "plus").digests(Limits.digest_min_bytes)
    assert sorted(plus.digests(Limits.digest_min_bytes)) == [1, 3]
    assert [plus.nan_free(i) for i in range(4)] == [True] * 4 and len(plus.args) == len(plus.outputs) == 4
    assert inflations.calls == []
    assert plus.calls_json() == eager.get("t/0", "plus").calls_json()
    assert len(inflations.calls) == 1
    assert plus.outputs[0] == f"{SMALL_TEXT}3" and plus.outputs[2] == f"{SMALL_TEXT}4"
    assert len(inflations.calls) == 2 and inflations.big == 0
    assert plus.outputs[1] == BIG_TEXT
    assert len(inflations.calls) == 3 and inflations.big == 1  # that one, not its twin at 3
    assert plus.outputs[1] == BIG_TEXT and plus.outputs[-3] == BIG_TEXT and len(inflations.calls) == 3


def test_judging_large_outputs_by_digest_never_decompresses_them(inflations):
    """A correct program's large texts come back as sha256s (the job's digest_calls, from metadata):
    the group is judged without inflating them; a wrong digest still fails."""
    computed_and_stored()
    loaded = load_or_compute(text_suite(), counting_sandbox())
    problem = text_suite().problems()[0]
    expected = loaded.get("t/0", "plus")
    inflations.calls.clear()
    job = group_job(problem, "plus", "def f(x): ...", expected, TimePolicy(), Limits())
    assert job.digest_calls == [1, 3] and len(job.calls) == 4
    big = value_digest(VALUE_ENCODER.encode(BIG_TEXT))
    answers = [f"{SMALL_TEXT}3", big, f"{SMALL_TEXT}4", big]
    result = JobResult(load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.OK, a, 0.001) for a in answers])
    assert judge_group(problem, "plus", expected, result).status is Status.PASS
    assert inflations.big == 0
    wrong = JobResult(
        load=CallResult(CallStatus.OK),
        calls=[CallResult(CallStatus.OK, a, 0.001) for a in [*answers[:3], {"h": "0" * 64}]],
    )
    verdict = judge_group(problem, "plus", expected, wrong)
    assert verdict.status is Status.FAIL and verdict.first_failure == 3
    assert inflations.big == 0


def test_first_use_from_many_threads_decodes_each_blob_once(monkeypatch):
    computed_and_stored()
    loaded = load_or_compute(text_suite(), counting_sandbox())
    expected = loaded.get("t/0", "plus")
    counter = Inflations(delay_s=0.02)  # every inflation slow: the threads meet inside it
    monkeypatch.setattr(expected_store.zlib, "decompress", counter)
    threads = 12
    barrier = threading.Barrier(threads)
    seen: list[tuple] = []

    def use() -> None:
        barrier.wait()
        seen.append(
            (expected.outputs[1], expected.outputs[0], expected.calls_json(), expected.args[3], list(expected.outputs))
        )

    workers = [threading.Thread(target=use) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(seen) == threads and all(s == seen[0] for s in seen)
    assert seen[0][:2] == (BIG_TEXT, f"{SMALL_TEXT}3") and seen[0][3] == [0]
    assert len(counter.calls) == 4  # arguments, small outputs, and each of the two large outputs: once each


# --------------------------------------------------------------------------- damage and other schemas


def _store_file() -> Path:
    return store_path(cache_root(), expectations_key(text_suite()))


def _rows() -> list[tuple]:
    with sqlite3.connect(_store_file()) as db:
        return db.execute("SELECT task_id, fingerprint, digest, meta, payload FROM records ORDER BY task_id").fetchall()


def _update(task_id: str, column: str, value) -> None:
    with sqlite3.connect(_store_file()) as db:
        db.execute(f"UPDATE records SET {column} = ? WHERE task_id = ?", (value, task_id))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda row: ("payload", _flip(row[4], len(row[4]) // 2)),  # a byte of a large output
        lambda row: ("payload", _flip(row[4], 3)),  # a byte of the first blobs
        lambda row: ("payload", row[4][:-1]),  # truncated
        lambda row: ("meta", _flip(row[3], len(row[3]) // 2)),
        lambda row: ("meta", b"not json"),
        lambda row: ("digest", "0" * 64),
        lambda row: ("payload", row[4].decode("latin-1")),  # text, not a blob
    ],
)
def test_a_damaged_record_is_recomputed_and_never_used(damage):
    sandbox = counting_sandbox()
    first = load_or_compute(text_suite(), sandbox)
    row = _rows()[0]
    column, value = damage(row)
    _update(row[0], column, value)
    again = load_or_compute(text_suite(), sandbox)
    assert sandbox.jobs == 6  # that problem's two groups, again
    for name in ("base", "plus"):
        assert_same(again.get(row[0], name), first.get(row[0], name))
    assert again.sha256 == first.sha256  # the same content makes the same record
    assert _rows()[0] == row  # and the damaged row was replaced


def _rehashed(task_id: str, fingerprint: str, meta: bytes, payload: bytes) -> str:
    return expected_store._row_digest(task_id, fingerprint, meta, payload)


def test_a_record_of_the_wrong_shape_is_recomputed_even_with_a_matching_digest():
    sandbox = counting_sandbox()
    load_or_compute(text_suite(), sandbox)
    task_id, fingerprint, _, meta, payload = _rows()[0]
    shapes = (
        b"[]",  # not a mapping of groups
        meta.replace(b'"args":[', b'"args":[999999999,', 1),  # a blob past the payload's end
        meta.replace(b'"nan":[]', b'"nan":[7]', 1),  # a NaN flag on an output that is not there
        meta.replace(b'"note":""', b'"note":0', 1),  # a note that is not text
        meta.replace(b'"statuses":[["ok",', b'"statuses":[["ok",-', 1),  # a negative run
    )
    for bad_meta in shapes:
        assert bad_meta != meta
        _update(task_id, "meta", bad_meta)
        _update(task_id, "digest", _rehashed(task_id, fingerprint, bad_meta, payload))
        jobs = sandbox.jobs
        load_or_compute(text_suite(), sandbox)
        assert sandbox.jobs == jobs + 2


def test_a_blob_that_does_not_decode_is_refused_not_used():
    """A blob damaged *before* its digest was taken (a broken writer) passes the load check; reading it
    raises rather than giving a wrong value."""
    sandbox = counting_sandbox()
    load_or_compute(text_suite(), sandbox)
    task_id, fingerprint, _, meta, payload = _rows()[0]
    bad = b"\xff" * len(payload)
    _update(task_id, "payload", bad)
    _update(task_id, "digest", _rehashed(task_id, fingerprint, meta, bad))
    loaded = load_or_compute(text_suite(), sandbox).get(task_id, "plus")
    with pytest.raises(DamagedRecord):
        loaded.calls_json()
    with pytest.raises(DamagedRecord):
        loaded.outputs[0]


def test_a_file_of_the_previous_schema_is_never_read():
    """Schema 1 kept whole records (zlib JSON) in a ``tasks`` table, at ``<key>.sqlite``: neither that file
    nor such a table at this schema's path is read; the latter is replaced when the store writes."""
    key = expectations_key(text_suite())
    fingerprints = {p.task_id: problem_fingerprint(p) for p in text_suite().problems()}
    wrong = {"base": {"args": [[1], [2]], "outputs": ["x", "y"], "times_s": [0.0] * 2, "statuses": ["ok"] * 2}}
    payload = zlib.compress(json.dumps(wrong).encode())
    for path in (cache_root() / "expected" / f"{key}.sqlite", store_path(cache_root(), key)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE tasks (task_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, payload BLOB NOT NULL)"
            )
            db.executemany("INSERT INTO tasks VALUES (?, ?, ?)", [(t, f, payload) for t, f in fingerprints.items()])
    assert ExpectedStore(store_path(cache_root(), key)).load(fingerprints) == {}
    sandbox = counting_sandbox()
    first = load_or_compute(text_suite(), sandbox)
    assert sandbox.jobs == 4 and first.get("t/0", "base").outputs == [f"{SMALL_TEXT}1", f"{SMALL_TEXT}2"]
    with sqlite3.connect(store_path(cache_root(), key)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = load_or_compute(text_suite(), sandbox)
    assert sandbox.jobs == 4 and again.sha256 == first.sha256


def test_a_file_of_a_later_schema_is_not_read():
    sandbox = counting_sandbox()
    load_or_compute(text_suite(), sandbox)
    with sqlite3.connect(_store_file()) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    load_or_compute(text_suite(), sandbox)
    assert sandbox.jobs == 8
    load_or_compute(text_suite(), sandbox)
    assert sandbox.jobs == 8
