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


def test_the_code_version_is_read_once_per_process(monkeypatch):
    """A sweep's later arms start long after the command did; a commit made meanwhile is not the
    code they run, so the manifest keeps what was read first."""
    import subprocess

    from ra3bench import results

    results.code_version.cache_clear()
    first = results.code_version()
    calls = []

    def later_commit(*args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "f" * 40, "")

    monkeypatch.setattr(subprocess, "run", later_commit)
    assert results.code_version() == first and not calls
