"""The official Hub versions of the codeforces suite, on small parquet files in open-r1's exact schema.

The data layer finds a version's file as ``<data dir>/<subdir>/<filename>``; for a Hub file pinned by
revision only (``sha256=""``) it checks the Hub's own sha256 of the file, which a file made here can never
have. So the tests put the file where the suite looks (``tmp_path/open-r1-codeforces/...``) and stand in
for the data layer's verification (``CodeforcesSuite.path`` returns that file, the digest is its own).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ra3bench.errors import UsageError
from ra3bench.suites import get_suite
from ra3bench.suites.base import Comparison, DataFile, HubFile
from ra3bench.suites.codeforces import (
    INTERACTIVE_REASON,
    NOT_EXECUTABLE_REASON,
    VERSIONS,
    CodeforcesSuite,
    open_r1_answer,
    open_r1_any_case_rule,
    open_r1_input,
    problems_from_rows,
    unverifiable_counts,
    unverifiable_kind,
)

# --- open-r1's schema (the features of open-r1/codeforces' README, in its column order) -------------------

_TEST = pa.struct([("input", pa.string()), ("output", pa.string())])
OPEN_R1_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("aliases", pa.list_(pa.string())),
        ("contest_id", pa.string()),
        ("contest_name", pa.string()),
        ("contest_type", pa.string()),
        ("contest_start", pa.int64()),
        ("contest_start_year", pa.int64()),
        ("index", pa.string()),
        ("time_limit", pa.float64()),
        ("memory_limit", pa.float64()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("input_format", pa.string()),
        ("output_format", pa.string()),
        ("interaction_format", pa.string()),
        ("note", pa.string()),
        ("examples", pa.list_(_TEST)),
        ("editorial", pa.string()),
        ("rating", pa.int64()),
        ("tags", pa.list_(pa.string())),
        ("testset_size", pa.int64()),
        ("official_tests", pa.list_(_TEST)),
        ("official_tests_complete", pa.bool_()),
        ("input_mode", pa.string()),
        ("generated_checker", pa.string()),
        ("executable", pa.bool_()),
        ("generated_tests", pa.int64()),
    ]
)

# 2050/A accepts any pair a, b >= 1 with a + b = n; the checker (open-r1's convention: checker.py input
# correct_output solution_output, prints 1 to accept) checks exactly that.
SPLIT_CHECKER = """\
import sys


def main():
    inp, _correct, out = sys.argv[1], sys.argv[2], sys.argv[3]
    data = open(inp).read().split()
    t = int(data[0])
    ns = [int(x) for x in data[1 : 1 + t]]
    got = open(out).read().split()
    if len(got) != 2 * t:
        print(0)
        return
    for i, n in enumerate(ns):
        try:
            a, b = int(got[2 * i]), int(got[2 * i + 1])
        except ValueError:
            print(0)
            return
        if a < 1 or b < 1 or a + b != n:
            print(0)
            return
    print(1)


main()
"""


def row(task_id: str, **fields: Any) -> dict[str, Any]:
    contest, index = task_id.split("/")
    base: dict[str, Any] = {
        "id": task_id,
        "aliases": None,
        "contest_id": contest,
        "contest_name": "Codeforces Round 999 (Div. 2)",
        "contest_type": "CF",
        "contest_start": 1733207100,  # 2024-12-03
        "contest_start_year": 2024,
        "index": index,
        "time_limit": 2.0,
        "memory_limit": 256.0,
        "title": f"Problem {index}",
        "description": "Legend.",
        "input_format": "The first line contains $$$t$$$.",
        "output_format": "Print the answer.",
        "interaction_format": None,
        "note": None,
        "examples": [],
        "editorial": None,
        "rating": 800,
        "tags": ["math"],
        "testset_size": 2,
        "official_tests": [{"input": "1\n3\n", "output": "3\n"}, {"input": "1\n4\n", "output": "4\n"}],
        "official_tests_complete": True,
        "input_mode": "stdio",
        "generated_checker": None,
        "executable": True,
        "generated_tests": 0,
    }
    return {**base, **fields}


ROWS = [
    # a checker and "print any" phrasing: verifiable; Windows line ends and blank lines in the data
    row(
        "2050/A",
        title="Split",
        description="Given $$$n$$$, find two positive integers $$$a$$$ and $$$b$$$ with $$$a + b = n$$$.",
        output_format="For each test case print $$$a$$$ and $$$b$$$. If there are multiple answers, print any of them.",
        examples=[{"input": "2\n5\n2\n", "output": "1 4\n1 1\n"}],
        official_tests=[
            {"input": "2\r\n5\r\n2\r\n", "output": "1 4\r\n\r\n1 1\r\n\n\n"},
            {"input": "1\n10\n", "output": "5 5\n"},
        ],
        time_limit=1.0,
        memory_limit=512.0,
        generated_checker=SPLIT_CHECKER,
        rating=800,
    ),
    # several answers, no checker: unverifiable
    row(
        "2050/B",
        title="Any Divisor",
        output_format="Print a divisor of $$$n$$$ greater than $$$1$$$. If there are several answers, print any.",
        official_tests=[{"input": "12\n", "output": "2\n"}],
    ),
    # interactive
    row(
        "2050/C",
        title="Guess",
        description="This is an interactive problem. Guess the number.",
        interaction_format="Print ? x to ask; flush the output.",
        official_tests=[{"input": "7\n", "output": "7\n"}],
        tags=["interactive"],
    ),
    # file input/output
    row("2050/D", title="Files", input_mode="file"),
    # unique answer, YES/NO, no checker, limits of its own
    row(
        "2050/E",
        title="Even",
        output_format='Print "YES" if $$$n$$$ is even, else "NO".',
        official_tests=[{"input": "1\n4\n", "output": "YES\n"}, {"input": "1\n3\n", "output": "NO\n"}],
        time_limit=1.5,
        memory_limit=64.0,
    ),
    # official tests incomplete
    row("2050/F", title="Big", official_tests_complete=False, testset_size=40),
    # not executable (open-r1's own flag)
    row("2050/G", title="Odd One", executable=False),
    # no official tests at all
    row("2050/H", title="Empty", official_tests=[]),
]


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=OPEN_R1_SCHEMA), path)
    return path


def official_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]] = ROWS
) -> CodeforcesSuite:
    """The ``open-r1-test`` version reading ``rows`` from where the data dir lookup finds them."""
    suite = get_suite("codeforces", "open-r1-test", tmp_path)
    assert isinstance(suite, CodeforcesSuite)
    data = suite.data_file
    path = write_parquet(tmp_path / data.subdir / data.filename, rows)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    # the data layer would check the Hub's sha256 of the file at the pinned commit: this file has its own
    monkeypatch.setattr(CodeforcesSuite, "path", lambda self: path)
    monkeypatch.setattr(CodeforcesSuite, "data_sha256", property(lambda self: digest))
    monkeypatch.setattr(CodeforcesSuite, "_hub_digest", lambda self, data_file: digest, raising=False)
    return suite


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CodeforcesSuite:
    return official_suite(tmp_path, monkeypatch)


# --- the versions --------------------------------------------------------------------------------------


def test_versions_are_pinned_hub_files() -> None:
    assert CodeforcesSuite.default_version == "cf300"
    assert set(CodeforcesSuite.versions) == {"cf300", "open-r1-test", "codecontests-test"}
    assert CodeforcesSuite.versions["open-r1-test"] == DataFile(
        filename="test-00000-of-00001.parquet",
        sha256="",
        subdir="open-r1-codeforces",
        hub=HubFile(
            "open-r1/codeforces",
            "data/test-00000-of-00001.parquet",
            revision="8fd706e298b713125ac8df18cd5d847440fe3fb9",
        ),
    )
    assert CodeforcesSuite.versions["codecontests-test"] == DataFile(
        filename="test-00000-of-00001-9c49eeff30aacaa8.parquet",
        sha256="",
        subdir="deepmind-code_contests",
        hub=HubFile(
            "deepmind/code_contests",
            "data/test-00000-of-00001-9c49eeff30aacaa8.parquet",
            revision="802411c3010cb00d1b05bad57ca77365a3c699d6",
        ),
        size=63_077_400,
    )
    for data in CodeforcesSuite.versions.values():
        assert data.hub is None or (len(data.hub.revision) == 40 and data.hub.repo_type == "dataset")


@pytest.mark.parametrize(
    ("version", "row_format", "groups"),
    [
        ("cf300", "cf300", ("tests",)),
        ("open-r1-test", "open-r1", ("official",)),
        ("codecontests-test", "codecontests", ("public", "private")),
    ],
)
def test_each_version_has_its_format_and_groups(version: str, row_format: str, groups: tuple[str, ...]) -> None:
    suite = get_suite("codeforces", version)
    assert (suite.row_format, suite.group_names) == (row_format, groups)
    assert VERSIONS[version].headline_group in groups


def test_official_counts_without_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_reading(self: CodeforcesSuite) -> Path:
        raise AssertionError("n_problems of an official version must not fetch the file")

    monkeypatch.setattr(CodeforcesSuite, "path", no_reading)
    assert get_suite("codeforces", "open-r1-test").n_problems() == 468
    assert get_suite("codeforces", "codecontests-test").n_problems() == 165


def test_a_copy_in_the_data_dir_is_checked_against_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the stand-in: the file is found at <data dir>/open-r1-codeforces/<filename>, and refused, since
    its sha256 cannot be the Hub's (here none is known: no fetch recorded it, and the Hub is off)."""
    pytest.importorskip("ra3bench.suites.hub")
    from ra3bench.errors import DataIntegrityError, DataNotFoundError

    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = get_suite("codeforces", "open-r1-test", tmp_path)
    path = write_parquet(tmp_path / "open-r1-codeforces" / "test-00000-of-00001.parquet", ROWS)
    with pytest.raises((DataIntegrityError, DataNotFoundError), match=str(path)):
        suite.problems()


def test_unknown_version() -> None:
    with pytest.raises(UsageError, match="known versions: cf300, open-r1-test, codecontests-test"):
        get_suite("codeforces", "open-r1-train")


# --- open-r1-test on open-r1's schema -----------------------------------------------------------------------


def test_parses_every_row_in_order(suite: CodeforcesSuite) -> None:
    problems = suite.problems()
    assert [p.task_id for p in problems] == [r["id"] for r in ROWS]
    assert suite.n_problems() == len(ROWS)  # loaded: the file's own count
    for p in problems:
        assert (p.entry_point, p.reference) == ("", "")
        assert all(g.comparison is Comparison.STDIN and g.outputs is not None for g in p.groups.values())
        assert set(p.groups) <= {"official"}
        assert p.metadata["platform"] == "codeforces" and p.metadata["contest_date"] == "2024-12-03"


def test_checker_problem_is_verifiable_with_its_limits(suite: CodeforcesSuite) -> None:
    p = suite.problem_map()["2050/A"]
    assert "If there are multiple answers, print any of them." in p.instruction  # the phrasing is there...
    assert p.unverifiable == ""  # ...but the checker judges every valid answer
    assert p.checker == SPLIT_CHECKER
    assert (p.time_limit_s, p.memory_limit_mb, p.metadata["limits_source"]) == (1.0, 512, "problem")
    group = p.groups["official"]
    # as open-r1's run script has them: "\r" at line ends removed; the answer without empty lines
    assert group.inputs == [["2\n5\n2\n"], ["1\n10\n"]]
    assert group.outputs == ["1 4\n1 1\n", "5 5\n"]
    assert p.metadata["has_checker"] is True and p.metadata["n_official_tests"] == 2
    assert p.metadata["official_tests_complete"] is True and p.metadata["executable"] is True
    assert p.metadata["aliases"] == [] and p.metadata["rating"] == 800 and p.metadata["contest_type"] == "CF"


def test_problems_judged_elsewhere_say_why(suite: CodeforcesSuite) -> None:
    problems = suite.problem_map()
    assert problems["2050/B"].unverifiable.startswith("several answers accepted, no checker")
    assert "print any" in problems["2050/B"].unverifiable
    assert problems["2050/C"].unverifiable == INTERACTIVE_REASON
    assert problems["2050/D"].unverifiable == "file input/output (input_mode=file), not stdin/stdout"
    assert problems["2050/G"].unverifiable == NOT_EXECUTABLE_REASON
    assert problems["2050/H"].unverifiable == "no tests" and problems["2050/H"].groups == {}
    incomplete = problems["2050/F"]
    assert incomplete.unverifiable.startswith("official tests incomplete (official_tests_complete=false, 2 of its 40")
    assert incomplete.metadata["official_tests_complete"] is False
    assert incomplete.groups["official"].outputs == ["3\n", "4\n"]  # the tests are kept, and judged


def test_unique_answer_problem_and_yes_no_in_any_case(suite: CodeforcesSuite) -> None:
    p = suite.problem_map()["2050/E"]
    assert p.unverifiable == "" and p.checker is None
    assert (p.time_limit_s, p.memory_limit_mb) == (1.5, 64)
    assert p.oracle == "tokens_any_case"  # open-r1 upper-cases yes/no in both outputs
    assert "yes/no in any case" in p.metadata["any_case"]
    assert suite.problem_map()["2050/F"].oracle == "tokens"  # numbers only: nothing to say about case


def test_describe_counts_unverifiable_by_reason(suite: CodeforcesSuite) -> None:
    info = suite.describe()
    assert info["suite"] == "codeforces" and info["suite_version"] == "open-r1-test"
    assert info["groups"] == ["official"] and info["headline_group"] == "official"
    assert info["n_problems"] == 8 and info["n_with_checker"] == 1 and info["row_format"] == "open-r1"
    assert info["unverifiable"] == {
        "total": 6,
        "by_reason": {
            "interactive": 1,
            "file_io": 1,
            "not_executable": 1,
            "several_answers": 1,
            "no_tests": 1,
            "incomplete_tests": 1,
        },
    }
    assert info["data_sha256"] == suite.data_sha256


def test_a_checker_keeps_every_phrasing_verifiable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every several-answers detector, and the example that disagrees with the test: none counts with a checker."""
    output = (
        "Print the numbers in any order. If there are several answers, print any. Any of them is acceptable. "
        "Your solution will be considered correct if the pairs match."
    )
    example = [{"input": "1\n3\n", "output": "1 2\n"}]  # the test for the same input expects 2 1
    tests = [{"input": "1\n3\n", "output": "2 1\n"}]
    rows = [
        row("1/A", output_format=output, examples=example, official_tests=tests, generated_checker="print(1)\n"),
        row("1/B", output_format=output, examples=example, official_tests=tests),
        row("1076/D", generated_checker="print(1)\n"),  # a known several-answers problem of cf300
        row("1076/E", generated_checker="print(1)\n", official_tests_complete=False),
    ]
    suite = official_suite(tmp_path, monkeypatch, rows)
    problems = suite.problem_map()
    assert problems["1/A"].unverifiable == "" and problems["1076/D"].unverifiable == ""
    assert problems["1/B"].unverifiable.startswith("several answers accepted, no checker")
    assert problems["1076/E"].unverifiable.startswith("official tests incomplete")
    assert suite.describe()["unverifiable"]["by_reason"] == {"several_answers": 1, "incomplete_tests": 1}


def test_rows_without_generated_tests_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README at the pinned commit lists no generated_tests feature: a file without the column reads too."""
    rows = [{k: v for k, v in r.items() if k != "generated_tests"} for r in ROWS[:2]]
    suite = get_suite("codeforces", "open-r1-test", tmp_path)
    data = suite.data_file
    path = tmp_path / data.subdir / data.filename
    path.parent.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=OPEN_R1_SCHEMA.remove(OPEN_R1_SCHEMA.names.index("generated_tests"))), path
    )
    assert [p.task_id for p in suite.parse(path)] == ["2050/A", "2050/B"]
    assert suite.parse(path)[0].metadata["n_generated_tests"] is None


# --- codecontests-test on CodeContests' schema -----------------------------------------------------------

CODECONTESTS_ROWS = [
    {
        "name": "1548_A. Web of Lies",
        "description": "Count the nobles.\n\nInput\n\nn m\n\nOutput\n\nPrint the count.",
        "public_tests": {"input": ["4 3\n"], "output": ["2\n"]},
        "private_tests": {"input": ["1 0\n"], "output": ["1\n"]},
        "generated_tests": {"input": ["2 0\n", "3 0\n"], "output": ["2\n", "3\n"]},
        "source": 2,
        "difficulty": 7,
        "solutions": {"language": [2], "solution": ["int main() {}"]},
        "incorrect_solutions": {"language": [], "solution": []},
        "cf_contest_id": 1548,
        "cf_index": "A",
        "cf_points": 500.0,
        "cf_rating": 1400,
        "cf_tags": ["graphs"],
        "is_description_translated": False,
        "untranslated_description": "",
        "time_limit": {"seconds": 2, "nanos": 0},
        "memory_limit_bytes": 256000000,
        "input_file": "",
        "output_file": "",
    },
]
CODECONTESTS_ROWS.append(
    {
        **CODECONTESTS_ROWS[0],
        "name": "1548_B. Any Pair",
        "cf_index": "B",
        "description": "Print a pair. If there are multiple answers, print any of them.",
    }
)


def test_codecontests_test_reads_parquet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = get_suite("codeforces", "codecontests-test", tmp_path)
    data = suite.data_file
    path = tmp_path / data.subdir / data.filename
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(CODECONTESTS_ROWS), path)
    monkeypatch.setattr(CodeforcesSuite, "path", lambda self: path)
    monkeypatch.setattr(CodeforcesSuite, "data_sha256", property(lambda self: "0" * 64))
    monkeypatch.setattr(CodeforcesSuite, "_hub_digest", lambda self, data_file: "0" * 64, raising=False)
    a, b = suite.problems()
    assert (a.task_id, b.task_id) == ("1548/A", "1548/B")
    assert a.groups["public"].outputs == ["2\n"]
    assert a.groups["private"].inputs == [["1 0\n"], ["2 0\n"], ["3 0\n"]]
    assert (a.time_limit_s, a.memory_limit_mb, a.unverifiable) == (2.0, 256, "")
    assert b.unverifiable.startswith("several answers accepted, no checker")
    info = suite.describe()
    assert info["groups"] == ["public", "private"] and info["headline_group"] == "private"
    assert info["unverifiable"] == {"total": 1, "by_reason": {"several_answers": 1}}


# --- open-r1's run script, on the data side -----------------------------------------------------------


def test_open_r1_text_normalization() -> None:
    assert open_r1_input("1\r\n2 3\r\n") == "1\n2 3\n"
    assert open_r1_input("a\rb\r") == "a\rb"  # only at line ends, as sed 's/\r$//'
    assert open_r1_answer("1 4\r\n\r\n1 1\r\n\n\n") == "1 4\n1 1\n"
    assert open_r1_answer("5") == "5\n"
    assert open_r1_answer("  \nx\n") == "  \nx\n"  # a line of spaces is not empty for sed '/^$/d'
    assert open_r1_answer("") == open_r1_answer("\n\n") == ""


def test_yes_no_rule() -> None:
    assert open_r1_any_case_rule(["YES\n", "NO\nYES\n"])
    assert open_r1_any_case_rule(["3\nyes 5\n"])
    assert open_r1_any_case_rule(["YES\nabc\n"]) is None  # another word: its case counts
    assert open_r1_any_case_rule(["1 2\n"]) is None


def test_unverifiable_kinds() -> None:
    assert unverifiable_kind(INTERACTIVE_REASON) == "interactive"
    assert unverifiable_kind("file input/output (input.txt, output.txt), not stdin/stdout") == "file_io"
    assert unverifiable_kind('several answers accepted, no checker: "print any"') == "several_answers"
    assert unverifiable_kind("the tests expect another letter case than the statement asks for: x") == "letter_case"
    assert unverifiable_kind("something new") == "other"
    (a, b) = problems_from_rows([ROWS[1], ROWS[2]], "open-r1")
    assert unverifiable_counts([a, b]) == {"interactive": 1, "several_answers": 1}


# --- cf300 is as it was --------------------------------------------------------------------------------


def test_cf300_describe_counts_its_56_unverifiable(offline_data: None) -> None:
    from shared_data import DATA_DIR

    if not (DATA_DIR / "codeforces" / "codecontests_cf300.jsonl.gz").is_file():
        pytest.skip("cf300 data not found (set RA3BENCH_DATA_DIR)")
    suite = get_suite("codeforces")
    info = suite.describe()
    assert (info["suite_version"], info["groups"], info["row_format"], info["n_problems"]) == (
        "cf300",
        ["tests"],
        "cf300",
        300,
    )
    assert info["data_sha256"] == "31e73d4afe39b288209ddd506653981a2fc683a3080392048a029ae52810cc3f"
    assert "data_files" not in info  # one local file, no hub
    assert info["unverifiable"] == {
        "total": 56,
        "by_reason": {"interactive": 2, "several_answers": 53, "letter_case": 1},
    }
    assert info["n_with_checker"] == 0


# --- judged end to end (local sandbox) ---------------------------------------------------------------------

SPLIT_OTHER_ANSWER = "import sys\nd = sys.stdin.read().split()\nfor n in d[1:]:\n    print(int(n) - 1, 1)\n"
SPLIT_AS_EXPECTED = "import sys\nd = sys.stdin.read().split()\nfor n in d[1:]:\n    print(1, int(n) - 1)\n"
SPLIT_WRONG = "import sys\nd = sys.stdin.read().split()\nfor n in d[1:]:\n    print(0, n)\n"
EVEN_LOWER_CASE = "input()\nprint('yes' if int(input()) % 2 == 0 else 'no')\n"
EVEN_WRONG = "input()\nprint('NO' if int(input()) % 2 == 0 else 'YES')\n"
ECHO = "t = int(input())\nfor _ in range(t):\n    print(input())\n"


def test_session_judges_with_the_checker_and_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suite: CodeforcesSuite
) -> None:
    from ra3bench import EvalSpec, Session, Status

    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    spec = EvalSpec(suite="codeforces", suite_version="open-r1-test", sandbox="local", workers=2, cache=False)
    cases = [
        ("2050/A", SPLIT_OTHER_ANSWER, Status.PASS),  # another valid answer: the checker accepts it
        ("2050/A", SPLIT_AS_EXPECTED, Status.PASS),  # the data's own answers (after open-r1's normalization)
        ("2050/A", SPLIT_WRONG, Status.FAIL),  # 0 is not positive: the checker rejects it
        ("2050/E", EVEN_LOWER_CASE, Status.PASS),  # yes/no in any case, as open-r1 compares them
        ("2050/E", EVEN_WRONG, Status.FAIL),
        ("2050/F", ECHO, Status.PASS),  # unverifiable (incomplete tests), but still judged
    ]
    with Session(spec, suite=suite) as session:
        assert len(session.problems) == len(ROWS)
        verdicts = session.judge([t for t, _, _ in cases], [program for _, program, _ in cases])
    assert [v.status for v in verdicts] == [want for _, _, want in cases]
    assert all(set(v.groups) == {"official"} for v in verdicts)
    assert "rejected by the problem's checker" in verdicts[2].groups["official"].detail
