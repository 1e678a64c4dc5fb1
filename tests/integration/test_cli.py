"""The commands as a user runs them: real subprocesses, real data, the local sandbox."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = Path(os.environ["RA3BENCH_DATA_DIR"])
LLAMA_SAMPLES = DATA / "samples/evalplus/llama3-exp/70B-instruct-base/samples.jsonl.gz"


def ra3bench(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "ra3bench.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cli-cache"))


def one_clear_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_suites_lists_all_six_with_their_data(tmp_path):
    out = ra3bench("suites", check=True).stdout
    names = ("humaneval ", "humaneval+", "mbpp ", "mbpp+", "livecodebench", "codeforces")
    for name in (
        *names,
        "v0.1.10 (default)",
        "v0.1.9",
        "v0.2.0",
        "release_v6 (default)",
        "v6-public",
        "cf300 (default)",
    ):
        assert name in out
    assert "1570 base + 122683 plus" in out and "1174 base + 39841 plus" in out
    # the official LiveCodeBench files are on the Hub, not here: said, and how to get them
    assert "6 of 6 file(s) from livecodebench/code_generation_lite@0fe84c3 (`ra3bench data fetch`)" in out


def test_help_of_every_command_ends_with_examples():
    for command in ("run", "evaluate", "suites"):
        text = ra3bench(command, "--help", check=True).stdout
        assert "examples:" in text and "ra3bench " + command in text


def test_bad_input_gets_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/0", "solution": "x"}\n{oops\n')
    one_clear_line(ra3bench("evaluate", "--suite", "humaneval+", "--samples", str(bad)), "bad.jsonl:2")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"task_id": "HumanEval/999", "solution": "x"}\n')
    one_clear_line(ra3bench("evaluate", "--suite", "humaneval+", "--samples", str(unknown)), "HumanEval/999")
    one_clear_line(ra3bench("run", "--suite", "humaneval++", "--model", "reference"), "did you mean")
    one_clear_line(ra3bench("run", "--suite", "mbpp+", "--suite-version", "v9", "--model", "reference"), "v9")
    missing = ra3bench(
        "run",
        "--suite",
        "mbpp+",
        "--model",
        "reference",
        env={"RA3BENCH_DATA_DIR": str(tmp_path), "RA3BENCH_OFFLINE": "1"},
    )
    one_clear_line(missing, "--data-dir", "RA3BENCH_DATA_DIR")
    one_clear_line(ra3bench("evaluate", "--suite", "humaneval+", "--samples", str(tmp_path / "nope.jsonl")), "nope")
    for suite in ("livecodebench@v6-public", "codeforces"):  # no reference solutions: said in one line, no run folder
        out = tmp_path / f"{suite}-reference"
        result = ra3bench("run", "--suite", suite, "--model", "reference", "--out", str(out))
        one_clear_line(result, "no reference solutions", "ra3bench evaluate --samples")
        assert not out.exists()


def test_a_failed_command_does_not_touch_an_existing_run(tmp_path):
    out = tmp_path / "run"
    ra3bench("run", "--suite", "humaneval+", "--model", "reference", "--limit", "2", "--out", str(out), check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    one_clear_line(ra3bench("evaluate", "--suite", "humaneval+", "--samples", str(bad), "--out", str(out)), "bad.jsonl")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_partial_samples_file_is_scored_as_it_is(tmp_path):
    rows = [json.loads(line) for line in gzip.decompress(LLAMA_SAMPLES.read_bytes()).splitlines()][:5]
    rows.append({**rows[0]})  # a second sample for the first task
    path = tmp_path / "partial.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    ra3bench(
        "evaluate",
        "--suite",
        "humaneval+",
        "--suite-version",
        "v0.1.9",
        "--samples",
        str(path),
        "--out",
        str(out),
        check=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_problems"] == 5 and summary["n_suite_problems"] == 164 and summary["n_samples"] == 6
    assert summary["samples_per_problem"] == [1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["suite"]["data_sha256"] == "e62f4130146963d969da64553f407a66e52d095adbfed4ee6733b4d59e14a3ed"
    assert manifest["model"]["samples_sha256"]
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == 6
    twins = [v for v in verdicts if v["task_id"] == rows[0]["task_id"]]
    assert len(twins) == 2 and twins[0]["status"] == twins[1]["status"]
    assert summary["execution"] == {"executed": 5, "from_verdict_cache": 1}


def test_kill_9_in_the_middle_then_resume_gives_the_uninterrupted_verdicts(tmp_path):
    args = ["evaluate", "--suite", "humaneval+", "--suite-version", "v0.1.9", "--samples", str(LLAMA_SAMPLES)]
    args += ["--limit", "40", "--no-cache"]
    whole = tmp_path / "whole"
    ra3bench(*args, "--out", str(whole), check=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ra3bench.cli.main", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    verdicts = killed / "verdicts.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if verdicts.exists() and verdicts.read_text().count("\n") >= 10:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    judged_before = verdicts.read_text().count("\n")
    assert 10 <= judged_before < 40

    ra3bench(*args, "--out", str(killed), check=True)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["execution"]["from_run_folder"] == judged_before
    assert summary["execution"]["executed"] == 40 - judged_before

    def statuses(folder: Path) -> dict:
        rows = [json.loads(x) for x in (folder / "verdicts.jsonl").read_text().splitlines()]
        return {(r["task_id"], r["sample_index"]): (r["status"], r["groups"]) for r in rows}

    assert statuses(killed) == statuses(whole)
    assert len(statuses(killed)) == 40
