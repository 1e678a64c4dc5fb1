"""LiveCodeBench output files (lcb_runner ``*_eval_all.json`` / ``*_generation_output.json``) as samples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from shared_data import DATA_DIR

from ra3bench.backends.replay import ReplayBackend, read_sample_records
from ra3bench.errors import UsageError
from ra3bench.suites import get_suite

EVAL_ALL = DATA_DIR / "livecodebench" / "eval_all"


def _row(question_id: str, codes: list[str], graded: list[bool] | None = None) -> dict:
    row = {"question_id": question_id, "platform": "atcoder", "output_list": [f"```python\n{c}\n```" for c in codes]}
    row["code_list"] = codes
    if graded is not None:
        row["graded_list"] = graded
        row["metadata"] = [json.dumps({"execution time": 0.1}) for _ in codes]
    return row


def test_eval_all_rows_become_one_sample_per_code(tmp_path: Path) -> None:
    rows = [_row("abc301_a", ["print(1)", "print(2)"], [True, False]), _row("3000", ["class Solution: ..."], [False])]
    path = tmp_path / "Scenario.codegeneration_2_0.2_eval_all.json.gz"
    path.write_bytes(gzip.compress(json.dumps(rows, indent=4).encode()))
    records = read_sample_records(path)
    assert [(r["task_id"], r["sample_index"], r["solution"], r["official_passed"]) for r in records] == [
        ("abc301_a", 0, "print(1)", True),
        ("abc301_a", 1, "print(2)", False),
        ("3000", 0, "class Solution: ...", False),
    ]
    assert records[0]["raw_output"] == "```python\nprint(1)\n```"
    assert json.loads(records[1]["official_metadata"]) == {"execution time": 0.1}


def test_generation_output_without_grades(tmp_path: Path) -> None:
    path = tmp_path / "Scenario.codegeneration_1_0.2.json"
    path.write_text(json.dumps([_row("abc301_a", ["print(1)"])]))
    (record,) = read_sample_records(path)
    assert record["solution"] == "print(1)" and "official_passed" not in record


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"question_id": "a"}], "row 1 is not a LiveCodeBench row with question_id and code_list"),
        ([{"question_id": "a", "code_list": "print(1)"}], "code_list must be a list of strings"),
        ([{"question_id": "a", "code_list": []}], "holds no samples"),
    ],
)
def test_malformed_lcb_files_get_one_clear_line(tmp_path: Path, rows: list, message: str) -> None:
    path = tmp_path / "x_eval_all.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(UsageError, match=message) as info:
        read_sample_records(path)
    assert "\n" not in str(info.value)


def test_official_file_replays_on_the_suite(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    path = EVAL_ALL / "O1-Mini-2024-09-12_N1_v5_90e7c3e.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} not here (set RA3BENCH_DATA_DIR)")
    monkeypatch.setenv("RA3BENCH_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    suite = get_suite("livecodebench", "v6-public")
    backend = ReplayBackend(path)
    assert len(backend.records) == 880
    samples = list(backend.samples(suite, suite.problems(), None))
    # abc350_c has no test in this data copy: its sample is skipped with a note, not an unknown-task error
    assert len(samples) == 879 and "abc350_c" not in {s.task_id for s in samples}
    assert "samples of 1 task(s) skipped (e.g. abc350_c: no tests" in capsys.readouterr().err
    # the leaderboard's 600 passes (SOURCES.md), less abc350_c's (graded False there)
    assert sum(s.raw["official_passed"] for s in samples) == 600
    first = samples[0]
    assert (first.task_id, first.sample_index) == ("1873_A", 0)
    assert first.program.endswith(first.raw["solution"]) and first.raw["solution"].startswith("# YOUR CODE HERE")
