"""The on-disk store of expected outputs: one record per problem, read only for the problems asked,
and within a record only what judging touches is decoded.

One gzip JSON file per suite made every invocation decompress and parse the whole suite's outputs
to judge one task; so each problem became a row of an SQLite file (atomic writes, a file several
processes share: a training run's evaluations, a parallel CI job). Decoding a whole row at load was
still too much: a full HumanEval+ run spent 3.1 s of CPU inflating (1.1 s) and parsing (2.0 s)
298 MB of expected outputs before judging anything, 280 MB of it the large values of three tasks
(HumanEval/15's texts of up to 6.9 MB, /130's and /100's long number lists) that judging mostly
never looks at: a large text comes back from the sandbox as a sha256 (``Limits.digest_min_bytes``),
and any other large value as its bytes (``Job.raw_values``), which the judge hashes; either is
compared with a sha256 the store keeps.

So a record (schema 3; 2 kept the sha256 of large texts only) is split. ``meta`` (plain JSON, read
at load) holds, per group, the problem note, the statuses (run-length), where each blob is, and for
every output whose encoding is longer than ``BIG_OUTPUT_CHARS``: its length, whether it is text
only, its ``value_digest`` and that of its int form (``int_form_digest``: a program may return
``2`` where the reference returned ``2.0``); and which outputs have a NaN inside. ``payload`` holds
the blobs: the reference's times (raw float64, decoded at load: every run sums them), the arguments
as the compact JSON text the sandbox is sent (``zlib``), the other outputs as one JSON list
(``zlib``), and each large output on its own (``zlib``). Arguments and outputs are decoded on first
use, per group (``LazyArgs``, ``LazyOutputs``), each large output only when it is itself read;
``digests(min_bytes)`` with ``min_bytes >= BIG_OUTPUT_CHARS`` comes from ``meta`` alone.

The store is a cache and is never trusted blindly. Decoding is lazy, so damage is looked for at
load: each row keeps the sha256 of its id, fingerprint, meta and payload (``digest``), checked when
the row is read (hashlib's C sha256, ~1 GB/s: 0.1 s for all of HumanEval+'s 97 MB), and meta's
shape is checked then too. A row that fails either is left out, so it is recomputed. The payload
bytes stay in memory, so what is decoded later is what was checked (reading large outputs from the
file on demand would have to refuse a damaged one in the middle of judging, or race a writer).
That digest is also what a run's manifest names (``selection_digest``).

The schema version is in the file name (``store_path``) and in SQLite's ``user_version``: a file of
another schema (the previous one had a ``tasks`` table of whole-record payloads) is never read, and
is replaced when this one writes.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import sqlite3
import sys
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ra3bench.sandbox.harness.protocol import VALUE_ENCODER, decode_value, encode_value, value_digest

SCHEMA_VERSION = 3
# Outputs whose encoding is longer than this (in characters, as ``digests`` counts) are stored one by
# one, with their length, text-only flag and sha256 in ``meta``. At most the default
# ``Limits.digest_min_bytes`` (1 << 16), so that ``digests`` for it is answered from ``meta``; lower,
# so that a somewhat lower ``digest_min_bytes`` is too, for ~400 blobs in all of HumanEval+.
BIG_OUTPUT_CHARS = 1 << 12
_TABLE = "records"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} (task_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
    " digest TEXT NOT NULL, meta BLOB NOT NULL, payload BLOB NOT NULL)"
)
_CHUNK = 500  # ids per SELECT (SQLite's default limit on bound parameters is far above)
_SMALL_LEVEL = 6  # zlib level of arguments and small outputs: small, read often
_BIG_LEVEL = 1  # of large outputs: 280 MB for HumanEval+, level 6 takes 4x the time for 5% less
NAN_MARK = '"nan"'  # a NaN inside an encoded value: protocol.encode_value writes {"f":"nan"}


class DamagedRecord(Exception):
    """A checked record whose blob does not decode: written by a broken writer, never by this one."""


class GroupData(Protocol):
    """What the store keeps of one group (``expected.GroupExpectation`` is one)."""

    args: Sequence[Any]
    outputs: Sequence[Any]
    times_s: Sequence[float]
    statuses: Sequence[str]
    problem_note: str

    def calls_json(self) -> str: ...


def store_path(root: Path, key: str) -> Path:
    """The store file of ``key`` (see ``expected.expectations_key``) under the cache ``root``."""
    return root / "expected" / f"{key}-s{SCHEMA_VERSION}.sqlite"


# --------------------------------------------------------------------------- lazily decoded sequences


def _inflate(blob: memoryview) -> bytes:
    try:
        return zlib.decompress(blob)
    except zlib.error as exc:
        raise DamagedRecord(f"expected-output blob does not inflate: {exc}") from None


def _parse(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise DamagedRecord(f"expected-output blob is not JSON: {exc}") from None


class _LazyList(Sequence):
    """A read-only list decoded on first use; equal to a list of equal items; pickled as a list."""

    __slots__ = ("_lock", "_n")

    def __init__(self, n: int) -> None:
        self._n = n
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (list, _LazyList)):
            return NotImplemented
        return len(other) == self._n and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # like a list

    def __reduce__(self) -> tuple:
        return (list, (list(self),))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._n}>"


class LazyArgs(_LazyList):
    """A group's encoded arguments, kept as the compressed compact JSON text the sandbox is sent."""

    __slots__ = ("_blob", "_items", "_text")

    def __init__(self, n: int, blob: memoryview) -> None:
        super().__init__(n)
        self._blob: memoryview | None = blob
        self._text: str | None = None
        self._items: list[Any] | None = None

    def text(self) -> str:
        """``json.dumps(args, separators=(",", ":"), allow_nan=False)``, inflated once."""
        text = self._text
        if text is None:
            with self._lock:
                if self._text is None:
                    self._text = _inflate(self._blob).decode()
                    self._blob = None
                text = self._text
        return text

    def items(self) -> list[Any]:
        items = self._items
        if items is None:
            text = self.text()
            with self._lock:
                if self._items is None:
                    parsed = _parse(text)
                    if type(parsed) is not list or len(parsed) != self._n:
                        raise DamagedRecord("stored arguments are not a list of the stored length")
                    self._items = parsed
                items = self._items
        return items

    def __getitem__(self, i: Any) -> Any:
        return self.items()[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items())

    def __reduce__(self) -> tuple:
        """Pickled as its JSON text, still lazy where it lands: a job sent to a Ray node carries the text the
        node's sandbox is sent (``calls_json``, the same string, which pickle stores once), never decoded here."""
        return (_args_from_text, (self._n, self.text()))


def _args_from_text(n: int, text: str) -> LazyArgs:
    args = LazyArgs(n, memoryview(b""))
    args._blob, args._text = None, text
    return args


@dataclass
class BigOutput:
    """What ``meta`` says of one large output: enough for ``digests`` and ``nan_free``."""

    chars: int  # len(VALUE_ENCODER.encode(value))
    text_only: bool
    digest: str  # value_digest(text)["h"]
    int_digest: str  # the same of ``ints_for_integral_floats(value)``'s encoding where it differs, else ""
    blob: memoryview | None = None  # compressed encoding; None once decoded


class LazyOutputs(_LazyList):
    """A group's encoded outputs: the small ones inflated together on first use, each large one on its own."""

    __slots__ = ("_big", "_blob", "_nan", "_pending", "_values")

    def __init__(self, n: int, blob: memoryview, big: dict[int, BigOutput], nan: frozenset[int]) -> None:
        super().__init__(n)
        self._blob: memoryview | None = blob
        self._big = big
        self._nan = nan
        self._values: list[Any] | None = None  # large outputs are None here until read
        self._pending = frozenset(big)  # large outputs not yet read

    def plain(self) -> list[Any] | None:
        """The outputs as a plain list once no large one is left to read (small ones inflated now)."""
        if self._pending:
            return None
        return self._small()

    def _small(self) -> list[Any]:
        values = self._values
        if values is None:
            with self._lock:
                if self._values is None:
                    parsed = _parse(_inflate(self._blob))
                    if type(parsed) is not list or len(parsed) != self._n:
                        raise DamagedRecord("stored outputs are not a list of the stored length")
                    self._values = parsed
                    self._blob = None
                values = self._values
        return values

    def _read_big(self, i: int) -> Any:
        values = self._small()
        with self._lock:
            if i in self._pending:
                big = self._big[i]
                values[i] = _parse(_inflate(big.blob))
                big.blob = None
                self._pending = self._pending - {i}
        return values[i]

    def __getitem__(self, i: Any) -> Any:
        if type(i) is not int:
            if isinstance(i, slice):
                return [self[j] for j in range(*i.indices(self._n))]
            i = i.__index__()
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("output index out of range")
        if i in self._pending:
            return self._read_big(i)
        return self._small()[i]

    def __iter__(self) -> Iterator[Any]:
        for i in range(self._n):
            yield self[i]

    def digests(self, min_bytes: int) -> dict[int, str] | None:
        """``GroupExpectation.digests`` from ``meta``; None when ``min_bytes`` is below what it lists."""
        if min_bytes < BIG_OUTPUT_CHARS:
            return None
        return {i: b.digest for i, b in sorted(self._big.items()) if b.text_only and b.chars > min_bytes}

    def sha256s(self, i: int) -> tuple[str, ...]:
        """``value_digest`` of output ``i``'s encoding and of its int form, if it is a large one (from ``meta``)."""
        big = self._big.get(i)
        if big is None:
            return ()
        return (big.digest, big.int_digest) if big.int_digest else (big.digest,)

    def nan_free(self, i: int) -> bool:
        if not -self._n <= i < self._n:
            raise IndexError("output index out of range")
        return (i % self._n) not in self._nan


@dataclass
class StoredGroup:
    args: LazyArgs
    outputs: LazyOutputs
    times_s: list[float]
    statuses: list[str]
    problem_note: str


@dataclass
class StoredRecord:
    fingerprint: str
    groups: dict[str, StoredGroup]
    digest: str  # sha256 of the row (what the manifest's selection digest is made of)


# --------------------------------------------------------------------------- records: write


def text_only(encoded: Any) -> bool:
    """Whether an encoded value is text, or lists/tuples of text (what only equality can match)."""
    if isinstance(encoded, str):
        return True
    if isinstance(encoded, list):
        return all(text_only(x) for x in encoded)
    if isinstance(encoded, dict) and list(encoded) == ["t"]:
        return all(text_only(x) for x in encoded["t"])
    return False


def ints_for_integral_floats(value: Any) -> Any:
    """``value`` (decoded) with every float that is a whole number as an int: equal to it (``2 == 2.0``).

    A program that returns ``[1, 3, 2, 8]`` where the reference returned ``[1, 3, 2.0, 8.0]`` (HumanEval/130)
    is right, and its bytes are this form's encoding: a digest of it lets such a value pass unparsed.
    """
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is list or kind is tuple:
        return kind(ints_for_integral_floats(x) for x in value)
    if kind is set or kind is frozenset:
        return kind(ints_for_integral_floats(x) for x in value)
    if kind is dict:
        return {ints_for_integral_floats(k): ints_for_integral_floats(v) for k, v in value.items()}
    return value


def output_digests(encoded: Any, text: str, has_nan: bool) -> tuple[str, str]:
    """(``value_digest`` of ``text``, that of its int form or ""): what ``meta`` keeps of a large output.
    No int form where a NaN is inside: equal encodings are then not equal values."""
    return value_digest(text)["h"], "" if has_nan else int_form_digest(encoded, text)


def int_form_digest(encoded: Any, text: str) -> str:
    """``value_digest`` of the encoding of ``ints_for_integral_floats`` of an encoded value, or "" if
    that is ``text`` itself (no float in it is a whole number)."""
    if "." not in text and "e" not in text and "E" not in text:
        return ""
    try:
        int_text = VALUE_ENCODER.encode(encode_value(ints_for_integral_floats(decode_value(encoded))))
    except (ValueError, TypeError, RecursionError, OverflowError):
        return ""
    return "" if int_text == text else value_digest(int_text)["h"]


def _encode_output(value: Any) -> tuple[str, bool]:
    """The value's compact JSON and whether a NaN may be inside."""
    try:
        text = VALUE_ENCODER.encode(value)
    except ValueError:  # a raw non-finite float: not what the harness sends; kept, never matched by equality
        return json.dumps(value, separators=(",", ":")), True
    return text, NAN_MARK in text


class _Payload:
    """Blobs appended one after another; each located in ``meta`` by [offset, length]."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        span = [self.size, len(data)]
        self.parts.append(data)
        self.size += len(data)
        return span


def _times_bytes(times: Sequence[float]) -> bytes:
    packed = array.array("d", [float(t) for t in times])
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def _runs(statuses: Sequence[str]) -> list[list[Any]]:
    runs: list[list[Any]] = []
    for status in statuses:
        if runs and runs[-1][0] == status:
            runs[-1][1] += 1
        else:
            runs.append([status, 1])
    return runs


def _pack_group(group: GroupData, payload: _Payload) -> dict[str, Any]:
    small: list[str] = []
    big: list[list[Any]] = []
    nan: list[int] = []
    for i, value in enumerate(group.outputs):
        text, has_nan = _encode_output(value)
        if has_nan:
            nan.append(i)
        if len(text) > BIG_OUTPUT_CHARS:
            only_text = text_only(value)
            span = payload.add(zlib.compress(text.encode(), _BIG_LEVEL))
            big.append([i, *span, len(text), only_text, *output_digests(value, text, has_nan)])
            text = "null"
        small.append(text)
    return {
        "note": group.problem_note,
        "statuses": _runs(group.statuses),
        "times": [payload.add(_times_bytes(group.times_s))[0], len(group.times_s)],
        "args": [*payload.add(zlib.compress(group.calls_json().encode(), _SMALL_LEVEL)), len(group.args)],
        "outputs": [*payload.add(zlib.compress(f"[{','.join(small)}]".encode(), _SMALL_LEVEL)), len(small)],
        "big": big,
        "nan": nan,
    }


def _row_digest(task_id: str, fingerprint: str, meta: bytes, payload: bytes) -> str:
    digest = hashlib.sha256(f"{len(task_id)}:{task_id}{len(fingerprint)}:{fingerprint}{len(meta)}:".encode())
    digest.update(meta)
    digest.update(payload)
    return digest.hexdigest()


def pack_record(task_id: str, fingerprint: str, groups: Mapping[str, GroupData]) -> tuple[str, bytes, bytes]:
    """(digest, meta, payload) of one problem's record."""
    payload = _Payload()
    meta = json.dumps({name: _pack_group(g, payload) for name, g in groups.items()}, separators=(",", ":")).encode()
    data = b"".join(payload.parts)
    return _row_digest(task_id, fingerprint, meta, data), meta, data


# --------------------------------------------------------------------------- records: read


def _int(value: Any, low: int = 0) -> int:
    if type(value) is not int or value < low:
        raise ValueError("bad record: not a count")
    return value


def _blob(payload: memoryview, offset: Any, length: Any) -> memoryview:
    start, size = _int(offset), _int(length)
    if start + size > len(payload):
        raise ValueError("bad record: blob out of bounds")
    return payload[start : start + size]


def _times(payload: memoryview, spec: Any) -> list[float]:
    offset, count = spec
    packed = array.array("d")
    packed.frombytes(_blob(payload, offset, 8 * _int(count)))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()


def _statuses(runs: Any) -> list[str]:
    out: list[str] = []
    for status, count in runs:
        if type(status) is not str:
            raise ValueError("bad record: a status is not text")
        out += [status] * _int(count)
    return out


def _big_outputs(payload: memoryview, specs: Any, n: int) -> dict[int, BigOutput]:
    big: dict[int, BigOutput] = {}
    for i, offset, length, chars, only_text, digest, int_digest in specs:
        if _int(i) >= n or i in big or type(only_text) is not bool or type(digest) is not str:
            raise ValueError("bad record: a large output is misdescribed")
        if len(digest) != 64 or type(int_digest) is not str or len(int_digest) not in (0, 64):
            raise ValueError("bad record: a large output without its sha256")
        big[i] = BigOutput(_int(chars), only_text, digest, int_digest, _blob(payload, offset, length))
    return big


def _unpack_group(payload: memoryview, spec: Any) -> StoredGroup:
    note = spec["note"]
    if type(note) is not str:
        raise ValueError("bad record: the note is not text")
    n_args, n_outputs = _int(spec["args"][2]), _int(spec["outputs"][2])
    nan = frozenset(spec["nan"])
    if any(type(i) is not int or not 0 <= i < n_outputs for i in nan):
        raise ValueError("bad record: a NaN index is out of range")
    return StoredGroup(
        args=LazyArgs(n_args, _blob(payload, *spec["args"][:2])),
        outputs=LazyOutputs(
            n_outputs,
            _blob(payload, *spec["outputs"][:2]),
            _big_outputs(payload, spec["big"], n_outputs),
            nan,
        ),
        times_s=_times(payload, spec["times"]),
        statuses=_statuses(spec["statuses"]),
        problem_note=note,
    )


def unpack_record(task_id: str, fingerprint: str, digest: str, meta: bytes, payload: bytes) -> StoredRecord | None:
    """The record of a row, checked (its digest, meta's shape); None for a damaged one."""
    if type(meta) is not bytes or type(payload) is not bytes:
        return None
    if _row_digest(task_id, fingerprint, meta, payload) != digest:
        return None
    try:
        specs = json.loads(meta)
        view = memoryview(payload)
        groups = {name: _unpack_group(view, spec) for name, spec in specs.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return StoredRecord(fingerprint, groups, digest)


# --------------------------------------------------------------------------- the file


class _ForeignFile(Exception):
    """An SQLite file of another schema at the store's path."""


class ExpectedStore:
    """``{task_id: record}``; a record holds the groups of one problem for one fingerprint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                _initialise(db)
            yield db
        finally:
            db.close()

    def load(self, fingerprints: Mapping[str, str]) -> dict[str, StoredRecord]:
        """The stored records of the ids of ``fingerprints`` computed for that fingerprint, checked.
        A damaged record is left out (it is recomputed, never trusted); so is the whole of a damaged
        file or a file of another schema."""
        wanted = list(fingerprints)
        if not wanted or not self.path.exists():
            return {}
        found: dict[str, StoredRecord] = {}
        try:
            with self._db() as db:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    columns = "task_id, fingerprint, digest, meta, payload"
                    query = f"SELECT {columns} FROM {_TABLE} WHERE task_id IN ({marks})"
                    for task_id, fingerprint, digest, meta, payload in db.execute(query, chunk):
                        if fingerprint != fingerprints[task_id]:
                            continue  # computed for other content: recomputed
                        record = unpack_record(task_id, fingerprint, digest, meta, payload)
                        if record is not None:
                            found[task_id] = record
        except (sqlite3.DatabaseError, _ForeignFile):
            return {}
        return found

    def save(self, records: Mapping[str, tuple[str, Mapping[str, GroupData]]]) -> dict[str, str]:
        """Store ``{task_id: (fingerprint, groups)}``; returns each record's digest."""
        rows = []
        digests = {}
        for task_id, (fingerprint, groups) in records.items():
            digest, meta, payload = pack_record(task_id, fingerprint, groups)
            rows.append((task_id, fingerprint, digest, meta, payload))
            digests[task_id] = digest
        try:
            self._insert(rows)
        except (sqlite3.DatabaseError, _ForeignFile):  # damaged, or another schema's: start it again
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._insert(rows)
        return digests

    def _insert(self, rows: list[tuple[str, str, str, bytes, bytes]]) -> None:
        with self._db() as db, db:
            db.executemany(
                f"INSERT OR REPLACE INTO {_TABLE} (task_id, fingerprint, digest, meta, payload) VALUES (?, ?, ?, ?, ?)",
                rows,
            )


def _initialise(db: sqlite3.Connection) -> None:
    """Give an empty file this schema; raise _ForeignFile for a file of another one."""
    db.execute("BEGIN IMMEDIATE")  # two processes creating the same file: one does, the other sees it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            if version != 0 or db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise _ForeignFile(f"schema {version}")
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def selection_digest(records: dict[str, str]) -> str:
    """The sha256 of the expected outputs a run used: over its tasks' ids and record digests, sorted."""
    text = "".join(f"{task_id} {digest}\n" for task_id, digest in sorted(records.items()))
    return hashlib.sha256(text.encode()).hexdigest()
