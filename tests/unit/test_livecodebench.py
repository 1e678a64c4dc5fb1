"""The livecodebench suite on the offline release_v6 copy: counts, selection, problem shapes, prompts,
and the restricted decoding of private tests."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest
from shared_data import DATA_DIR

from ra3bench.errors import DataIntegrityError, DataNotFoundError, UsageError
from ra3bench.suites import get_suite
from ra3bench.suites.base import Comparison
from ra3bench.suites.livecodebench import (
    IMPORT_PRELUDE,
    LiveCodeBenchSuite,
    base_prompt,
    chat_instruction,
    decode_private_tests,
    problem_from_row,
    release_files,
)

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def lcb(offline_data: None) -> LiveCodeBenchSuite:
    suite = get_suite("livecodebench", "v6-public")
    assert isinstance(suite, LiveCodeBenchSuite)
    if not (DATA_DIR / suite.data_file.subdir / suite.data_file.filename).is_file():
        pytest.skip(f"{suite.data_file.filename} not in {DATA_DIR} (set RA3BENCH_DATA_DIR)")
    suite.problems()
    return suite


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# --- counts and releases --------------------------------------------------------------------------


def test_problems_with_tests_and_the_ones_left_out(lcb: LiveCodeBenchSuite) -> None:
    # 1,055 problems in release_v6; 176 have no test in this copy (abc350_c and the 175 new in v6): they
    # cannot be judged, so problems() leaves them out, and describe()/left_out() say which.
    assert len(lcb.all_problems()) == 1055
    assert len(lcb.problems()) == 879
    left_out = lcb.left_out()
    assert len(left_out) == 176 and "abc350_c" in left_out
    assert "no tests" in left_out["abc350_c"]
    assert lcb.describe()["n_problems_without_tests"] == 176
    assert all(not p.groups and p.unverifiable for p in lcb.all_problems() if p.task_id in left_out)


# The official counts (LiveCodeBench README: release_v1 400, v2 511, v3 612, v4 713, v5 880, v6 1,055) count
# every problem of a release, tested or not, so they are checked on all_problems(); problems() (what runs)
# holds one fewer from release_v2 on (abc350_c) and none of the v6 slice.
@pytest.mark.parametrize(
    ("tag", "official", "with_tests"),
    [
        ("release_v1", 400, 400),
        ("release_v4", 713, 712),
        ("release_v5", 880, 879),
        ("release_v6", 1055, 879),
        ("release_latest", 1055, 879),
        ("v1", 400, 400),
        ("v2_v4", 713 - 400, 712 - 400),
        ("v1_v4", 713, 712),
        ("v5", 880 - 713, 880 - 713),
        ("v6", 1055 - 880, 0),
        ("v5_v6", 1055 - 713, 880 - 713),
        ("v2_v6", 1055 - 400, 879 - 400),
    ],
)
def test_release_counts(lcb: LiveCodeBenchSuite, tag: str, official: int, with_tests: int) -> None:
    assert len(lcb.select(lcb.all_problems(), release=tag)) == official
    if with_tests:
        assert len(lcb.select(lcb.problems(), release=tag)) == with_tests


def test_a_release_without_tests_is_one_clear_error(lcb: LiveCodeBenchSuite) -> None:
    with pytest.raises(UsageError) as info:
        lcb.select(lcb.problems(), release="v6")
    assert "175 match but have no tests" in one_line(info)


@pytest.mark.parametrize("tag", ["release_v2", "release_v3", "v2", "v3", "v4", "v4_v5", "v1_v2", "v3_v6"])
def test_releases_the_copy_cannot_separate_are_refused(lcb: LiveCodeBenchSuite, tag: str) -> None:
    with pytest.raises(UsageError) as info:
        lcb.select(lcb.all_problems(), release=tag)
    text = one_line(info)
    assert f"--release {tag} cannot be selected" in text and "v2-v4" in text
    assert "release_v4" in text and "v2_v4" in text  # the tags that do work


@pytest.mark.parametrize("tag", ["release_v7", "v0", "v3_v2", "v4_v4", "latest", "release-v1"])
def test_unknown_release_tags(lcb: LiveCodeBenchSuite, tag: str) -> None:
    with pytest.raises(UsageError) as info:
        lcb.select(lcb.problems(), release=tag)
    assert tag in one_line(info)


def test_release_tags_follow_the_official_loading_script() -> None:
    assert release_files("release_v3") == {1, 2, 3}
    assert release_files("v3") == {3}
    assert release_files("v2_v5") == {2, 3, 4, 5}
    assert release_files("release_latest") == {1, 2, 3, 4, 5, 6}


# --- dates, platform, difficulty -----------------------------------------------------------------


def test_dates_as_lcb_runner_compares_them(lcb: LiveCodeBenchSuite) -> None:
    every = lcb.all_problems()
    # v5 problems run from 2024-09-22 to a contest on 2025-01-04 at 18:30; lcb_runner parses --end-date as
    # midnight and keeps contest_date <= end, so that contest is out with --end-date 2025-01-04 and in with
    # --end-date 2025-01-05; --start-date is inclusive.
    late = [p for p in every if p.metadata["contest_date"] == "2025-01-04T18:30:00"]
    assert late
    until_4th = lcb.select(every, end_date="2025-01-04")
    until_5th = lcb.select(every, end_date="2025-01-05")
    assert not set(map(id, late)) & set(map(id, until_4th))
    assert set(map(id, late)) <= set(map(id, until_5th))
    start = lcb.select(every, start_date="2024-08-01")
    assert start and all(p.metadata["contest_date"] >= "2024-08-01" for p in start)
    before = lcb.select(every, end_date="2024-07-31")
    between = {id(p) for p in every} - {id(p) for p in start} - {id(p) for p in before}
    # what neither takes lies strictly between 2024-07-31 00:00 and 2024-08-01 00:00
    assert all("2024-07-31T00:00:00" < p.metadata["contest_date"] < "2024-08-01" for p in every if id(p) in between)
    day = lcb.select(every, start_date="2023-05-07", end_date="2023-05-07")
    assert {p.metadata["contest_date"] for p in day} == {"2023-05-07T00:00:00"}


def test_platform_and_difficulty(lcb: LiveCodeBenchSuite) -> None:
    every = lcb.all_problems()
    assert len(lcb.select(every, platform="codeforces")) == 9
    assert len(lcb.select(every, platform="leetcode")) == 444
    assert len(lcb.select(every, platform="AtCoder,codeforces")) == 611
    tested = lcb.problems()
    hard = lcb.select(tested, difficulty="hard")
    assert len(hard) == 270 and all(p.metadata["difficulty"] == "hard" for p in hard)
    assert len(lcb.select(tested, difficulty="easy,medium")) == 279 + 330
    both = lcb.select(tested, release="release_v5", platform="leetcode", difficulty="easy")
    assert both and all(p.metadata["platform"] == "leetcode" and p.metadata["difficulty"] == "easy" for p in both)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"start_date": "2024/08/01"}, "--start-date takes a date as YYYY-MM-DD"),
        ({"end_date": "2024-13-01"}, "--end-date takes a date as YYYY-MM-DD"),
        ({"start_date": "yesterday"}, "--start-date takes a date"),
        ({"start_date": "2024-09-01", "end_date": "2024-08-01"}, "is after --end-date"),
        ({"platform": "topcoder"}, "--platform takes a comma list of atcoder, codeforces, leetcode"),
        ({"difficulty": "trivial"}, "--difficulty takes a comma list of easy, medium, hard"),
        ({"start_date": "2030-01-01"}, "no livecodebench v6-public problem with tests matches --start-date 2030"),
    ],
)
def test_bad_filters_are_one_line_usage_errors(lcb: LiveCodeBenchSuite, filters: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        lcb.select(lcb.problems(), **filters)
    assert message in one_line(info)


def test_other_suites_refuse_these_filters(offline_data: None) -> None:
    suite = get_suite("humaneval+")
    assert suite.select(["x"], release=None, platform=None) == ["x"]  # type: ignore[list-item]
    with pytest.raises(UsageError) as info:
        suite.select([], release="v1", platform="leetcode")
    assert one_line(info) == "suite humaneval+ cannot select by --release, --platform; use --tasks or --limit"


# --- problems -------------------------------------------------------------------------------------


def test_leetcode_problem_shape(lcb: LiveCodeBenchSuite) -> None:
    problem = lcb.problem_map()["2727"]
    assert problem.entry_point == "Solution.countSeniors"
    assert problem.oracle == "lcb_call"
    assert problem.reference == "" and problem.time_limit_s == 6.0
    assert list(problem.groups) == ["public"]
    group = problem.groups["public"]
    assert group.comparison is Comparison.VALUES
    assert group.inputs[0] == [["7868190130M7522", "5303914400F9211", "9273338290F4010"]]  # one argument
    assert group.outputs == [2, 0]
    assert problem.metadata == {
        "platform": "leetcode",
        "difficulty": "easy",
        "contest_date": "2023-05-13T00:00:00",
        "contest_id": "biweekly-contest-104",
        "question_title": "number-of-senior-citizens",
        "lcb_first_release": "v1",
    }


def test_several_arguments_are_one_json_value_per_line() -> None:
    row = _row(
        "leetcode",
        public=[{"input": '[1, 2]\n"ab"\n3', "output": "[true, null]", "testtype": "functional"}],
        metadata='{"func_name": "f"}',
    )
    group = problem_from_row(row).groups["public"]
    assert group.inputs == [[[1, 2], "ab", 3]]
    assert group.outputs == [[True, None]]


def test_stdin_problem_shape(lcb: LiveCodeBenchSuite) -> None:
    problem = lcb.problem_map()["1873_A"]
    assert problem.entry_point == "" and problem.oracle == "lcb"
    group = problem.groups["public"]
    assert group.comparison is Comparison.STDIN
    assert group.inputs == [["6\nabc\nacb\nbac\nbca\ncab\ncba\n"]]
    assert group.outputs == ["YES\nYES\nYES\nNO\nNO\nYES\n"]
    assert problem.metadata["platform"] == "codeforces"


def test_every_tested_problem_is_well_formed(lcb: LiveCodeBenchSuite) -> None:
    n_tests = {"stdin": 0, "functional": 0}
    for problem in lcb.problems():
        group = problem.groups["public"]
        assert group.outputs is not None and len(group.outputs) == len(group.inputs) > 0
        if problem.metadata["platform"] == "leetcode":
            assert problem.entry_point.startswith("Solution.") and group.comparison is Comparison.VALUES
            n_tests["functional"] += len(group.inputs)
        else:
            assert problem.entry_point == "" and group.comparison is Comparison.STDIN
            assert all(
                isinstance(i[0], str) and isinstance(o, str) for i, o in zip(group.inputs, group.outputs, strict=True)
            )
            n_tests["stdin"] += len(group.inputs)
    assert n_tests == {"stdin": 1365, "functional": 934}  # shared/datasets/SOURCES.md


def test_program_from_sample_is_the_code_after_lcb_runners_imports(lcb: LiveCodeBenchSuite) -> None:
    problem = lcb.problem_map()["1873_A"]
    assert lcb.program_from_sample(problem, {"solution": "print(1)"}) == IMPORT_PRELUDE + "\nprint(1)"
    assert lcb.program_from_sample(problem, {"code": "print(2)"}) == IMPORT_PRELUDE + "\nprint(2)"
    assert lcb.program_from_sample(problem, {"completion": "print(3)"}) == IMPORT_PRELUDE + "\nprint(3)"
    with pytest.raises(UsageError, match="has none of"):
        lcb.program_from_sample(problem, {"output": "x"})


# --- prompts (lcb_runner/prompts/code_generation.py) ----------------------------------------------


def test_chat_instruction_in_lcb_wording() -> None:
    with_starter = chat_instruction("Q?", "class Solution:\n    def f(self):\n        ")
    assert with_starter.startswith("You are an expert Python programmer. You will be given a question")
    assert "\n\n### Question:\nQ?\n\n### Format: You will use the following starter code" in with_starter
    assert with_starter.endswith(
        "```python\nclass Solution:\n    def f(self):\n        \n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n"
    )
    stdin = chat_instruction("Q?", "")
    assert "### Format: Read the inputs from stdin solve the problem and write the answer to stdout" in stdin
    assert "```python\n# YOUR CODE HERE\n```\n\n### Answer:" in stdin


def test_base_prompt_is_lcb_one_shot() -> None:
    call = base_prompt("Q?", "class Solution:\n    def f(self):\n        ")
    assert call.startswith("### Question\nYou are given a 0-indexed array of positive integers nums.")
    assert "### Starter Code\nclass Solution:\n    def unequalTriplets" in call
    assert call.endswith(
        "### Question\nQ?\n\n### Starter Code\nclass Solution:\n    def f(self):\n        \n\n### Answer\n\n"
    )
    stdin = base_prompt("Q?", "")
    assert stdin.startswith("### Question\nYou have $n$ gifts") and "### Starter Code" not in stdin
    assert stdin.endswith("main()\n\n\n### Question\nQ?\n\n### Answer\n\n")


def test_problem_prompts(lcb: LiveCodeBenchSuite) -> None:
    problem = lcb.problem_map()["2727"]
    assert problem.instruction == chat_instruction(
        _question(lcb, "2727"), "class Solution:\n    def countSeniors(self, details: List[str]) -> int:\n        "
    )
    assert problem.prompt.endswith("### Answer\n\n")


# --- private tests: base64(zlib(pickle(JSON text))), decoded without running anything -------------


def _packed(obj: object) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode()


def test_private_tests_decode() -> None:
    tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    assert decode_private_tests(_packed(json.dumps(tests))) == tests
    assert decode_private_tests(json.dumps(tests)) == tests  # plain JSON text is accepted as well
    assert decode_private_tests(None) == [] and decode_private_tests("") == []


class _Exploit:
    """Unpickling this would call os.system (touching a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class _Builtin:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, ("__import__('os').getpid()",))


def test_a_malicious_pickle_is_rejected_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload in (_packed(_Exploit(marker)), _packed(_Builtin()), _packed([_Exploit(marker)])):
        with pytest.raises(DataIntegrityError) as info:
            decode_private_tests(payload, "abc999_z")
        text = one_line(info)
        assert text.startswith("abc999_z: private_test_cases rejected:") and "only plain data is accepted" in text
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_packed(["not", "a", "string"]), "the pickle holds a list, not JSON text"),
        (_packed(42), "the pickle holds a int"),
        ("not base64 at all!", "neither JSON nor base64"),
        (base64.b64encode(b"not zlib").decode(), "not zlib data"),
        (base64.b64encode(zlib.compress(b"\x80\x04garbage")).decode(), "private_test_cases rejected"),
    ],
)
def test_damaged_private_tests_are_one_line_errors(payload: str, message: str) -> None:
    with pytest.raises(DataIntegrityError) as info:
        decode_private_tests(payload, "t")
    assert message in one_line(info)


def test_private_tests_become_a_private_group() -> None:
    public = [{"input": "1\n", "output": "1\n", "testtype": "stdin"}]
    private = [{"input": "2\n", "output": "2\n", "testtype": "stdin"}] * 3
    problem = problem_from_row(_row("atcoder", public=public, private=_packed(json.dumps(private))))
    assert list(problem.groups) == ["public", "private"]
    assert problem.groups["private"].comparison is Comparison.STDIN
    assert problem.groups["private"].inputs == [["2\n"]] * 3


def test_a_test_of_the_wrong_kind_is_a_data_error() -> None:
    row = _row("atcoder", public=[{"input": "[1]", "output": "1", "testtype": "functional"}])
    with pytest.raises(DataIntegrityError, match="x_1: a public test is not a stdin test"):
        problem_from_row(row)


# --- data location --------------------------------------------------------------------------------


def test_missing_data_says_to_use_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RA3BENCH_OFFLINE", "0")  # even with downloads allowed, there is nothing to download
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    suite = get_suite("livecodebench", "v6-public", data_dir=tmp_path)
    with pytest.raises(DataNotFoundError) as info:
        suite.problems()
    text = one_line(info)
    assert "--data-dir" in text and "livecodebench/code_generation_lite_v6_public_tests.jsonl.gz" in text


# --- helpers --------------------------------------------------------------------------------------


def _row(platform: str, public: list, private: str | None = None, metadata: str = "{}") -> dict:
    return {
        "question_title": "t",
        "question_content": "q",
        "platform": platform,
        "question_id": "x_1",
        "contest_id": "x",
        "contest_date": "2024-01-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(public),
        "private_test_cases": private,
        "metadata": metadata,
        "lcb_first_release": "v1",
    }


def _question(lcb: LiveCodeBenchSuite, task_id: str) -> str:
    from ra3bench.suites.data import read_jsonl

    return next(r["question_content"] for r in read_jsonl(lcb.path()) if r["question_id"] == task_id)


# --- the CLI flags and what the manifest records ---------------------------------------------------


def test_cli_flags_reach_select_and_the_manifest_record(lcb: LiveCodeBenchSuite) -> None:
    import argparse
    import hashlib

    from ra3bench.cli.common import add_suite_args, selection_filters
    from ra3bench.evaluate import EvalSpec, selection_record

    parser = argparse.ArgumentParser()
    add_suite_args(parser)
    args = parser.parse_args(
        ["--suite", "livecodebench", "--release", "release_v5", "--platform", "leetcode", "--start-date", "2024-01-01"]
    )
    filters = selection_filters(args)
    assert filters == {"release": "release_v5", "start_date": "2024-01-01", "platform": "leetcode"}
    problems = EvalSpec(suite="livecodebench", suite_version="v6-public", select=filters).problems_of(lcb)
    assert problems and all(p.metadata["platform"] == "leetcode" for p in problems)
    record = selection_record(filters, problems)
    ids = sorted(p.task_id for p in problems)
    assert record == {
        "filters": filters,
        "n_tasks": len(ids),
        "tasks_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }
    plain = parser.parse_args(["--suite", "livecodebench"])
    assert selection_filters(plain) == {} and lcb.select(lcb.problems()) == lcb.problems()
