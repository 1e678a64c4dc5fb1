"""LiveCodeBench's official data layout: one file per release, private tests packed as the data set packs
them (base64(zlib(pickle(JSON text)))), and the ``all`` group scored by lcb_runner's rule."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest

from ra3bench import EvalSpec, Session, Status
from ra3bench.errors import DataIntegrityError
from ra3bench.suites import get_suite
from ra3bench.suites.base import DataFile, HubFile
from ra3bench.suites.livecodebench import HUB_FILES, HUB_REPO, HUB_SUBDIR, LiveCodeBenchSuite

REVISION = "1" * 40
ECHO_TWICE = "s = input()\nprint(s + s)\n"  # right on every test below
PUBLIC_ONLY = "s = input()\nprint('aa' if s == 'a' else s)\n"  # right on the public test only


def packed(tests: list[dict]) -> str:
    """``private_test_cases`` as the official files hold them."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def stdin_tests(*pairs: tuple[str, str]) -> list[dict]:
    return [{"input": i + "\n", "output": o + "\n", "testtype": "stdin"} for i, o in pairs]


def row(task_id: str, date: str, public: list[dict], private: str | None) -> dict:
    return {
        "question_title": task_id,
        "question_content": "Print the input twice.",
        "platform": "atcoder",
        "question_id": task_id,
        "contest_id": task_id.split("_")[0],
        "contest_date": date,
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(public),
        "private_test_cases": private,
        "metadata": "{}",
    }


def official_files(folder: Path, rows_by_file: dict[int, list[dict]]) -> tuple[DataFile, ...]:
    """The six files of a release_v6-like version under ``folder`` (a data-dir mirror of the repository),
    pinned to their own sha256 as the real version is pinned to the Hub's."""
    mirror = folder / HUB_SUBDIR
    mirror.mkdir(parents=True, exist_ok=True)
    files = []
    for n, (name, _, _) in enumerate(HUB_FILES, start=1):
        data = "".join(json.dumps(r) + "\n" for r in rows_by_file.get(n, [])).encode()
        (mirror / name).write_bytes(data)
        files.append(
            DataFile(
                filename=name,
                sha256=hashlib.sha256(data).hexdigest(),
                subdir=HUB_SUBDIR,
                hub=HubFile(HUB_REPO, name, REVISION),
                size=len(data),
            )
        )
    return tuple(files)


@pytest.fixture
def official(tmp_path, monkeypatch) -> Path:
    """A release_v6 with one problem in test5.jsonl and two in test6.jsonl; returns the data dir."""
    rows = {
        5: [row("abc370_a", "2024-09-07T00:00:00", stdin_tests(("x", "xx")), packed(stdin_tests(("yz", "yzyz"))))],
        6: [
            row("abc390_a", "2025-02-01T00:00:00", stdin_tests(("a", "aa")), packed(stdin_tests(("bc", "bcbc")))),
            row("abc391_a", "2025-02-08T00:00:00", [], packed(stdin_tests(("q", "qq")))),  # private tests only
        ],
    }
    files = official_files(tmp_path, rows)
    monkeypatch.setitem(LiveCodeBenchSuite.versions, "release_v6", files)
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_a_release_reads_only_its_files_and_scores_all_tests(official):
    suite = get_suite("livecodebench", data_dir=official)  # the default version: the official files
    assert suite.version == "release_v6" and suite.group_names == ("public", "all")
    problems = suite.selected(release="v6")
    assert [p.task_id for p in problems] == ["abc390_a", "abc391_a"]
    assert suite.describe()["files_read"] == ["test6.jsonl"]  # test.jsonl .. test5.jsonl were not read
    first = problems[0]
    assert list(first.groups) == ["public", "all"]
    assert first.groups["all"].inputs == [["a\n"], ["bc\n"]]  # public then private, as lcb_runner runs them
    assert list(problems[1].groups) == ["all"]
    assert suite.describe()["headline_group"] == "all"


def test_the_all_group_follows_lcb_runners_rule(official, tmp_path):
    """A sample passes LiveCodeBench only if every public and private test passes; public stays its own line."""
    spec = EvalSpec(suite="livecodebench", data_dir=str(official), select={"release": "v6"}, sandbox="local")
    with Session(spec) as session:
        right, public_only = session.judge(["abc390_a", "abc390_a"], [ECHO_TWICE, PUBLIC_ONLY])
        (private_only,) = session.judge(["abc391_a"], [ECHO_TWICE])
    assert right.status is Status.PASS and {g: v.status for g, v in right.groups.items()} == {
        "public": Status.PASS,
        "all": Status.PASS,
    }
    assert public_only.groups["public"].status is Status.PASS and public_only.groups["all"].status is Status.FAIL
    assert public_only.status is Status.FAIL  # the official score: failed
    assert private_only.status is Status.PASS  # no public tests: nothing to fail there


def test_a_run_reports_both_groups_and_says_which_is_official(official, tmp_path):
    samples = tmp_path / "samples.jsonl"
    lines = [{"task_id": "abc390_a", "solution": PUBLIC_ONLY}, {"task_id": "abc370_a", "solution": ECHO_TWICE}]
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    from ra3bench.backends.replay import ReplayBackend

    spec = EvalSpec(suite="livecodebench", data_dir=str(official), select={"release": "v5_v6"}, sandbox="local")
    with Session(spec) as session:
        summary = session.evaluate(ReplayBackend(samples), tmp_path / "run")
    assert summary.pass_at(1, "public") == 1.0 and summary.pass_at(1, "all") == 0.5 and summary.pass_at(1) == 0.5
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["suite"]["headline_group"] == "all"
    assert [f["filename"] for f in manifest["suite"]["data_files"]][-1] == "test6.jsonl"
    assert manifest["suite"]["data_files"][-1]["hub"]["revision"] == REVISION


def test_a_malicious_pickle_in_the_data_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode()
    files = official_files(tmp_path, {6: [row("abc390_a", "2025-02-01T00:00:00", stdin_tests(("a", "aa")), hostile)]})
    monkeypatch.setitem(LiveCodeBenchSuite.versions, "release_v6", files)
    suite = get_suite("livecodebench", data_dir=tmp_path)
    with pytest.raises(DataIntegrityError, match=r"abc390_a: private_test_cases rejected: .*only plain data"):
        suite.selected(release="v6")
    assert not marker.exists()


def test_a_changed_file_is_a_one_line_error(official):
    (official / HUB_SUBDIR / "test6.jsonl").write_text("{}\n")
    suite = get_suite("livecodebench", data_dir=official)
    with pytest.raises(DataIntegrityError, match=r"test6\.jsonl: sha256 is .* but test6\.jsonl is pinned to"):
        suite.selected(release="v6")


def test_one_command_fetches_the_official_data_from_the_hub_and_scores_it(tmp_path, monkeypatch, capsys):
    """`ra3bench run --suite livecodebench --release release_v6 --model M`, nothing else: the data comes
    from the Hub (here a fake one on 127.0.0.1 in the Hub's URL layout, through the real huggingface_hub
    code), is pinned by commit and sha256, and is not fetched again by a second run."""
    from hub_server import FakeHub, use_fake_hub
    from openai_server import FakeOpenAIServer

    from ra3bench.cli.main import main

    rows = {6: [row("abc390_a", "2025-02-01T00:00:00", stdin_tests(("a", "aa")), packed(stdin_tests(("bc", "bcbc"))))]}
    data = {n: "".join(json.dumps(r) + "\n" for r in rows.get(n, [])).encode() for n in range(1, 7)}
    commit = "2" * 40
    files = tuple(
        DataFile(
            filename=name,
            sha256=hashlib.sha256(data[n]).hexdigest(),
            subdir=HUB_SUBDIR,
            hub=HubFile(HUB_REPO, name, commit),
            size=len(data[n]),
        )
        for n, (name, _, _) in enumerate(HUB_FILES, start=1)
    )
    monkeypatch.setitem(LiveCodeBenchSuite.versions, "release_v6", files)
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RA3BENCH_DATA_DIR", raising=False)
    repo = {HUB_REPO: {commit: {name: data[n] for n, (name, _, _) in enumerate(HUB_FILES, start=1)}}}
    answer = "```python\n" + ECHO_TWICE + "```\n"
    with FakeHub(repo) as hub, FakeOpenAIServer(lambda body, index: answer) as model:
        use_fake_hub(monkeypatch, hub.url, tmp_path / "hf")
        argv = ["run", "--suite", "livecodebench", "--release", "release_v6", "--model", "test-model"]
        argv += ["--base-url", model.url, "--sandbox", "local", "--workers", "2"]
        assert main([*argv, "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
        fetched = len(hub.file_calls("test6.jsonl", "GET"))
        assert fetched >= 1
        assert main([*argv, "--out", str(tmp_path / "again")]) == 0, capsys.readouterr().err
        assert len(hub.file_calls("test6.jsonl", "GET")) == fetched  # from the cache, verified, not fetched again
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pass_at_k"]["all"]["1"] == 1.0 and summary["n_problems"] == 1
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    pinned = manifest["suite"]["data_files"][-1]
    assert pinned["hub"] == {"repo_id": HUB_REPO, "path": "test6.jsonl", "revision": commit, "repo_type": "dataset"}
    assert pinned["sha256"] == hashlib.sha256(data[6]).hexdigest()
    assert (tmp_path / "hf" / "hub" / "datasets--livecodebench--code_generation_lite").is_dir()  # HF's own cache


def test_data_fetch_takes_only_what_a_release_needs_and_data_where_says_so(tmp_path, monkeypatch, capsys):
    from hub_server import FakeHub, use_fake_hub

    from ra3bench.cli.main import main

    data = {n: f'{{"n": {n}}}\n'.encode() for n in range(1, 7)}
    commit = "3" * 40
    files = tuple(
        DataFile(name, hashlib.sha256(data[n]).hexdigest(), HUB_SUBDIR, hub=HubFile(HUB_REPO, name, commit))
        for n, (name, _, _) in enumerate(HUB_FILES, start=1)
    )
    monkeypatch.setitem(LiveCodeBenchSuite.versions, "release_v6", files)
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RA3BENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("RA3BENCH_OFFLINE", raising=False)  # restored after: `suites` must leave it as it was
    repo = {HUB_REPO: {commit: {name: data[n] for n, (name, _, _) in enumerate(HUB_FILES, start=1)}}}
    with FakeHub(repo) as hub:
        use_fake_hub(monkeypatch, hub.url, tmp_path / "hf")
        assert main(["data", "where"]) == 0
        before = capsys.readouterr().out
        assert f"hub: {HUB_REPO}@{commit[:12]}/test6.jsonl (not fetched)" in before
        assert main(["data", "fetch", "livecodebench", "--release", "v6"]) == 0
        out = capsys.readouterr().out
        assert "livecodebench release_v6: 1 file(s) here and verified" in out and "test6.jsonl" in out
        assert hub.file_calls("test6.jsonl", "GET") and not hub.file_calls("test5.jsonl", "GET")
        assert main(["data", "where"]) == 0
        after = {line.split("|")[3].strip(): line.split("|")[4].strip() for line in capsys.readouterr().out.splitlines()
                 if "livecodebench" in line and "release_v6" in line}  # fmt: skip
        assert after["test6.jsonl"].startswith("here: ") and after["test5.jsonl"].startswith("hub: ")
        assert main(["suites"]) == 0
        assert "5 of 6 file(s) from livecodebench/code_generation_lite@3333333" in capsys.readouterr().out
        assert "RA3BENCH_OFFLINE" not in os.environ
