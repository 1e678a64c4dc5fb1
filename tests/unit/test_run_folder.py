import json

import pytest

from ra3bench.errors import UsageError
from ra3bench.results import RunFolder, read_jsonl


def test_torn_last_line_is_dropped_and_the_writer_continues_cleanly(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.open({"suite": {"suite": "x"}, "model": {}, "settings": {}, "n": 1, "tasks": ["a"]})
    writer = folder.writer("verdicts.jsonl")
    writer.write({"task_id": "a", "sample_index": 0})
    writer.close()
    with (folder.root / "verdicts.jsonl").open("a") as fh:
        fh.write('{"task_id": "b", "samp')  # a kill -9 in mid-write
    assert [r["task_id"] for r in read_jsonl(folder.root / "verdicts.jsonl")] == ["a"]
    writer = folder.writer("verdicts.jsonl")
    writer.write({"task_id": "c", "sample_index": 0})
    writer.close()
    lines = (folder.root / "verdicts.jsonl").read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == ["a", "c"]


def test_a_folder_of_another_run_is_not_resumed(tmp_path):
    manifest = {"suite": {"suite": "x"}, "model": {"model": "m"}, "settings": {}, "n": 1, "tasks": ["a"]}
    RunFolder(tmp_path).open(manifest)
    RunFolder(tmp_path).open({**manifest, "run_id": "other"})  # same run: fine
    with pytest.raises(UsageError, match="differs in: model"):
        RunFolder(tmp_path).open({**manifest, "model": {"model": "other"}})
