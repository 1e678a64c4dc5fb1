import gzip
import json

import pytest

from ra3bench.backends.replay import read_sample_records
from ra3bench.errors import UsageError


def write(path, text):
    path.write_text(text)
    return path


def test_evalplus_and_human_eval_shapes_are_read(tmp_path):
    lines = [{"task_id": "HumanEval/0", "solution": "def f(): pass"}, {"task_id": "HumanEval/1", "completion": "  x"}]
    path = tmp_path / "s.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    assert [r["task_id"] for r in read_sample_records(path)] == ["HumanEval/0", "HumanEval/1"]


def test_evalplus_eval_results_with_solutions(tmp_path):
    data = {"date": "x", "hash": "y", "eval": {"HumanEval/0": [{"task_id": "HumanEval/0", "solution": "s"}]}}
    records = read_sample_records(write(tmp_path / "r.json", json.dumps(data)))
    assert records == [{"task_id": "HumanEval/0", "solution": "s"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"task_id": "HumanEval/0", "solution": "x"}\nnot json\n', r"s.jsonl:2: not valid JSON"),
        ('{"task_id": "HumanEval/0"}\n', "needs one of program, solution, completion"),
        ('["HumanEval/0"]\n', "expected a JSON object"),
        ("\n\n", "holds no samples"),
        ('{"solution": "x"}\n', "missing 'task_id'"),
    ],
)
def test_malformed_files_get_one_clear_line(tmp_path, text, message):
    with pytest.raises(UsageError, match=message) as info:
        read_sample_records(write(tmp_path / "s.jsonl", text))
    assert "\n" not in str(info.value)


def test_old_evalplus_results_without_programs_say_what_to_pass(tmp_path):
    data = {"eval": {"HumanEval/0": {"nfiles": 1, "base": [["success", [1]]]}}}
    with pytest.raises(UsageError, match=r"pass the samples\.jsonl"):
        read_sample_records(write(tmp_path / "r.json", json.dumps(data)))
