"""The on-disk store of expected outputs: one record per problem, read only for the problems asked.

One gzip JSON file per suite made every invocation decompress and parse the whole suite's
outputs (HumanEval+: 4.5 s of CPU) to judge one task. Here each problem is a row of an SQLite
file (``zlib``-compressed JSON, with the fingerprint of the problem content it was computed for),
so start-up is proportional to the selection. SQLite gives atomic writes and lets several
processes (a training run's evaluations, a parallel CI job) share the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, payload BLOB NOT NULL)"
)
_CHUNK = 500  # ids per SELECT (SQLite's default limit on bound parameters is far above)


class ExpectedStore:
    """``{task_id: (fingerprint, groups)}`` records; ``groups`` is plain JSON (the caller encodes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            yield db
        finally:
            db.close()

    def load(self, task_ids: Iterable[str]) -> dict[str, tuple[str, Any, str]]:
        """The stored records of ``task_ids`` that are there: id -> (fingerprint, groups, payload sha256).
        A damaged record is left out (it is recomputed, never trusted)."""
        wanted = list(dict.fromkeys(task_ids))
        if not wanted or not self.path.exists():
            return {}
        found: dict[str, tuple[str, Any, str]] = {}
        try:
            with self._db() as db:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    query = f"SELECT task_id, fingerprint, payload FROM tasks WHERE task_id IN ({marks})"
                    for task_id, fingerprint, payload in db.execute(query, chunk):
                        try:
                            groups = json.loads(zlib.decompress(payload))
                        except (zlib.error, ValueError):
                            continue
                        found[task_id] = (fingerprint, groups, hashlib.sha256(payload).hexdigest())
        except sqlite3.DatabaseError:
            return {}  # a damaged store is recomputed, never trusted
        return found

    def save(self, records: dict[str, tuple[str, Any]]) -> dict[str, str]:
        """Store ``{task_id: (fingerprint, groups)}``; returns each record's payload sha256."""
        rows = []
        digests = {}
        for task_id, (fingerprint, groups) in records.items():
            payload = zlib.compress(json.dumps(groups, separators=(",", ":")).encode(), 1)
            rows.append((task_id, fingerprint, payload))
            digests[task_id] = hashlib.sha256(payload).hexdigest()
        try:
            self._insert(rows)
        except sqlite3.DatabaseError:  # a damaged file: start it again (what it held is recomputed)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._insert(rows)
        return digests

    def _insert(self, rows: list[tuple[str, str, bytes]]) -> None:
        with self._db() as db, db:
            db.executemany("INSERT OR REPLACE INTO tasks (task_id, fingerprint, payload) VALUES (?, ?, ?)", rows)


def selection_digest(records: dict[str, str]) -> str:
    """The sha256 of the expected outputs a run used: over its tasks' ids and record digests, sorted."""
    text = "".join(f"{task_id} {digest}\n" for task_id, digest in sorted(records.items()))
    return hashlib.sha256(text.encode()).hexdigest()
