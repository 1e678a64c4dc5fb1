"""Start-up proportional to the selection: named tasks parse only their rows of the data file."""

from __future__ import annotations

import json

import pytest
from shared_data import DATA_DIR

from ra3bench.spec import EvalSpec
from ra3bench.suites import get_suite
from ra3bench.suites.data import read_jsonl_with

pytestmark = pytest.mark.usefixtures("offline_data")

CASES = [
    ("humaneval+", "v0.1.9", ["HumanEval/130", "HumanEval/0", "HumanEval/15"]),
    ("mbpp+", None, ["Mbpp/2", "Mbpp/4"]),
]


def _suite(name: str, version: str | None):
    suite = get_suite(name, version)
    if not (DATA_DIR / suite.data_file.subdir / suite.data_file.filename).is_file():
        pytest.skip(f"{suite.data_file.filename} not in {DATA_DIR}")
    return suite


@pytest.mark.parametrize(("name", "version", "ids"), CASES)
def test_named_tasks_are_the_same_problems_as_from_the_whole_file(name, version, ids) -> None:
    picked = _suite(name, version).problems_with([*ids, "no/such"])
    full = _suite(name, version).problems()
    assert picked == [p for p in full if p.task_id in ids]  # equal problems, in the data's order
    assert _suite(name, version).n_problems() == len(full)


@pytest.mark.parametrize(("name", "version", "ids"), CASES)
def test_a_spec_naming_tasks_selects_as_before(name, version, ids) -> None:
    spec = EvalSpec(suite=name, suite_version=version, tasks=list(reversed(ids)), limit=2)
    suite = _suite(name, version)
    fast = spec.problems_of(suite)
    assert suite._problems is None  # the whole file was not parsed
    whole = _suite(name, version)
    whole.problems()
    by_id = whole.problem_map()
    assert fast == spec.problems_of(whole) == [by_id[t] for t in reversed(ids)][:2]  # the order asked


def test_an_unknown_task_still_gets_the_one_line_error() -> None:
    from ra3bench.errors import UsageError

    with pytest.raises(UsageError, match="unknown task id 'HumanEval/999'"):
        EvalSpec(suite="humaneval+", suite_version="v0.1.9", tasks=["HumanEval/999"]).problems_of(
            _suite("humaneval+", "v0.1.9")
        )


def test_only_lines_holding_a_wanted_id_are_parsed(tmp_path, monkeypatch) -> None:
    rows = [{"task_id": f"T/{i}", "see_also": f"T/{i + 1}" if i == 3 else "x"} for i in range(10)]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, **kw: parsed.append(text) or real_loads(text, **kw))
    got = list(read_jsonl_with(path, {"T/4", "T/7"}))
    assert [r["task_id"] for r in got] == ["T/4", "T/7"]
    assert len(parsed) == 3  # T/4, T/7, and T/3, which names "T/4" too: parsed, then left out
