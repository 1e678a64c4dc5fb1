"""LiveCodeBench code generation (``livecodebench/code_generation_lite``): LeetCode, AtCoder, Codeforces.

Facts taken from lcb_runner (github LiveCodeBench/LiveCodeBench, ``lcb_runner/``), which this suite
follows:

* LeetCode problems are *call-based*: ``metadata["func_name"]`` names a method of ``Solution``; a
  test's ``input`` holds one JSON value per line (one positional argument each), its ``output`` one
  JSON value, compared as ``prediction == json.loads(output)`` after turning a returned tuple into a
  list (``evaluation/testing_util.py: grade_call_based``; oracle ``lcb_call`` here).
* AtCoder and Codeforces problems are *stdin* programs: the input text on stdin, stdout compared with
  the expected text (``grade_stdio``).
* Every test gets 6 s (``--timeout`` default of ``runner/parser.py``).
* ``private_test_cases`` is JSON text, or base64(zlib(pickle(JSON text))). Unpickling runs code, so it
  is decoded here with an unpickler that can load nothing but plain data and must yield a ``str``.
* Release tags (the HF loading script ``code_generation_lite.py``): ``release_vN`` = files 1..N,
  ``vN`` = file N alone, ``vI_vJ`` = files I..J; 400, 511, 612, 713, 880, 1,055 problems cumulatively.
* Dates (``benchmarks/code_generation.py``): ``start_date <= contest_date`` and
  ``contest_date <= end_date``, both parsed as midnight, so a contest at 18:30 *on* the end date is out.
* Prompts (``prompts/code_generation.py``): see :func:`chat_instruction` and :func:`base_prompt`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import re
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ra3bench.errors import DataIntegrityError, UsageError
from ra3bench.suites import SUITES
from ra3bench.suites.base import Comparison, DataFile, HubFile, Problem, Suite, TestGroup
from ra3bench.suites.data import read_jsonl

TIME_LIMIT_S = 6.0  # lcb_runner's per-test timeout
PLATFORMS = ("atcoder", "codeforces", "leetcode")
DIFFICULTIES = ("easy", "medium", "hard")
N_FILES = 6  # test.jsonl, test2.jsonl, ... test6.jsonl
RELEASE_SIZES = {1: 400, 2: 511, 3: 612, 4: 713, 5: 880, 6: 1055}  # problems in release_vN (official README)

# The official data set, read from the Hub at one commit (its tree holds test.jsonl .. test6.jsonl =
# release_v6); sizes and sha256 are the Hub's LFS metadata of that commit (docs/suites.md).
HUB_REPO = "livecodebench/code_generation_lite"
HUB_REVISION = "0fe84c3912ea0c4d4a78037083943e8f0c4dd505"
HUB_FILES = (  # file n (test.jsonl = 1): path, bytes, sha256
    ("test.jsonl", 1252609773, "2bd02b38beb48e8c46b5b9987095d999ff38cd8efc255ea5d58974317c48f63f"),
    ("test2.jsonl", 713377060, "095df7c5daf15f882c51a9deb84085cff1e073495a5dbcf95015a564d485f3a3"),
    ("test3.jsonl", 623360766, "28ed26cc83363ce3f1fe2d5fad9f8393077beb1907b167a31bd3b32f80801b79"),
    ("test4.jsonl", 1204644685, "d711138ddaebfcf5f8ec6a4283ee677298c0f5c5d374a235af92aaf0584510da"),
    ("test5.jsonl", 557699297, "7f77571c2a6df0c2a72a3277650309f67e01e0008e18117e624633df53f81214"),
    ("test6.jsonl", 134303240, "bb4c364f71921c4495a6ad15abe1a927350b720009f4933e2e71f8af0f6fd1f5"),
)
HUB_SUBDIR = "livecodebench/code_generation_lite"  # <data dir>/<this>/test.jsonl: a mirror of the repository
ALL_TESTS = "all"  # the official score's group: public and private tests, as lcb_runner grades
MAX_PRIVATE_BYTES = 1 << 30  # decompressed size of one problem's private tests

# lcb_runner puts this in front of every program it grades (testing_util.import_string): LeetCode starter
# code uses ``List`` etc. without importing them. ``program_from_sample`` does the same.
IMPORT_PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


# --- prompts (lcb_runner/prompts/code_generation.py) ------------------------------------------

SYSTEM_MESSAGE = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will "
    "generate a correct Python program that matches the specification and passes all tests."
)
FORMAT_WITH_STARTER_CODE = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
FORMAT_STDIN = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
    "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
)


def question_message(question: str, starter_code: str) -> str:
    """The user message of lcb_runner's chat models (``get_generic_question_template_answer``)."""
    if starter_code:
        fmt = f"### Format: {FORMAT_WITH_STARTER_CODE}\n```python\n{starter_code}\n```\n\n"
    else:
        fmt = f"### Format: {FORMAT_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n"
    return f"### Question:\n{question}\n\n{fmt}### Answer: (use the provided format with backticks)\n\n"


def chat_instruction(question: str, starter_code: str) -> str:
    """One user turn: the system message, a blank line, the question message (lcb_runner's form for
    models without a system role, e.g. o1-preview); chat backends that have a system role may send
    :data:`SYSTEM_MESSAGE` apart and :func:`question_message` as the user turn, as lcb_runner does."""
    return f"{SYSTEM_MESSAGE}\n\n{question_message(question, starter_code)}"


def base_prompt(question: str, starter_code: str) -> str:
    """lcb_runner's prompt for base models (``get_base_model_question_template_answer``): one solved
    example (call-based or stdin, like the problem), then the problem, ending in ``### Answer\\n\\n``.
    lcb_runner stops generation at ``###`` and takes the stripped text as the program."""

    def block(q: str, starter: str, answer: str) -> str:
        text = f"### Question\n{q}\n\n"
        if starter_code:  # the *problem's* starter code decides, for the example too (as upstream)
            text += f"### Starter Code\n{starter}\n\n"
        text += f"### Answer\n\n{answer}"
        return text + ("\n\n" if answer else "")

    if starter_code:
        example = block(_FUNC_EXAMPLE_QUESTION, _FUNC_EXAMPLE_STARTER, _FUNC_EXAMPLE_ANSWER)
    else:
        example = block(_STDIN_EXAMPLE_QUESTION, "", _STDIN_EXAMPLE_ANSWER)
    return example + block(question, starter_code, "")


# --- private tests ----------------------------------------------------------------------------


class _DataOnlyUnpickler(pickle.Unpickler):
    """Loads plain values only: any global (class, function) is refused, so nothing can run."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}; only plain data is accepted")


def decode_private_tests(text: str | None, task_id: str = "?") -> list[dict]:
    """``private_test_cases`` as a list of tests: JSON text, or base64(zlib(pickle(JSON text))).

    The pickle is loaded by an unpickler that refuses every global, so it can only build plain values;
    the result must be a ``str``. Anything else is a one-line DataIntegrityError, and nothing runs.
    """
    if not text:
        return []
    try:
        tests = json.loads(text)
    except ValueError:
        tests = None
    if not isinstance(tests, list):
        tests = json.loads(_unpickle_text(text, task_id))
    if not isinstance(tests, list):
        raise DataIntegrityError(f"{task_id}: private_test_cases is not a list of tests")
    return tests


def _unpickle_text(text: str, task_id: str) -> str:
    def bad(why: str) -> DataIntegrityError:
        return DataIntegrityError(f"{task_id}: private_test_cases rejected: {why}")

    try:
        packed = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise bad("neither JSON nor base64") from None
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(packed, MAX_PRIVATE_BYTES)
    except zlib.error as exc:
        raise bad(f"not zlib data ({exc})") from None
    if inflate.unconsumed_tail:
        raise bad(f"more than {MAX_PRIVATE_BYTES >> 20} MiB once decompressed")
    try:
        value = _DataOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception as exc:  # any failure of a hostile or damaged pickle is the data's fault
        raise bad(" ".join(str(exc).split())[:200] or type(exc).__name__) from None
    if not isinstance(value, str):
        raise bad(f"the pickle holds a {type(value).__name__}, not JSON text")
    return value


# --- problems ---------------------------------------------------------------------------------


def problem_from_row(row: dict[str, Any], *, all_tests_group: bool = False) -> Problem:
    """One row of code_generation_lite (plus ``lcb_first_release``: the file it came from) as a Problem.

    ``all_tests_group``: add the ``all`` group, every public and private test in lcb_runner's order,
    so that its pass@k is LiveCodeBench's official score (a sample passes only if all pass); the
    ``public`` group stays as its own line."""
    task_id = str(row["question_id"])
    try:
        meta = json.loads(row.get("metadata") or "{}")
    except ValueError:
        raise DataIntegrityError(f"{task_id}: metadata is not JSON") from None
    func_name = meta.get("func_name") if isinstance(meta, dict) else None
    public = json.loads(row["public_test_cases"]) if row.get("public_test_cases") else []
    private = decode_private_tests(row.get("private_test_cases"), task_id)
    groups = {}
    if public:
        groups["public"] = _group(task_id, "public", public, func_name)
    if all_tests_group and public + private:
        groups[ALL_TESTS] = _group(task_id, ALL_TESTS, public + private, func_name)
    elif private:  # a private-only copy without the all-tests group (never shipped): judged as its own group
        groups["private"] = _group(task_id, "private", private, func_name)
    starter = row.get("starter_code") or ""
    return Problem(
        task_id=task_id,
        prompt=base_prompt(row["question_content"], starter),
        instruction=chat_instruction(row["question_content"], starter),
        entry_point=f"Solution.{func_name}" if func_name else "",
        reference="",
        groups=groups,
        oracle="lcb_call" if func_name else "lcb",  # stdin: ra3bench.checkers' LiveCodeBench rule
        metadata={
            "platform": row["platform"],
            "difficulty": row["difficulty"],
            "contest_date": row["contest_date"],
            "contest_id": row["contest_id"],
            "question_title": row["question_title"],
            "lcb_first_release": row.get("lcb_first_release"),
        },
        time_limit_s=TIME_LIMIT_S,
        unverifiable="" if groups else "no tests in this data file (public_test_cases and private_test_cases empty)",
    )


def _group(task_id: str, name: str, tests: list[dict], func_name: str | None) -> TestGroup:
    kind = "functional" if func_name else "stdin"
    for test in tests:
        if not isinstance(test, dict) or test.get("testtype") != kind:
            raise DataIntegrityError(f"{task_id}: a {name} test is not a {kind} test {str(test)[:80]!r}")
    try:
        if func_name:  # one JSON value per line = one positional argument per line
            inputs = [[json.loads(line) for line in t["input"].split("\n")] for t in tests]
            outputs = [json.loads(t["output"]) for t in tests]
            return TestGroup(name, Comparison.VALUES, inputs, outputs=outputs)
        return TestGroup(name, Comparison.STDIN, [[t["input"]] for t in tests], outputs=[t["output"] for t in tests])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataIntegrityError(f"{task_id}: malformed {name} test ({type(exc).__name__}: {exc})") from None


# --- selection --------------------------------------------------------------------------------

_RELEASE_TAG = re.compile(
    r"^(?:release_v(?P<upto>[1-9])|v(?P<only>[1-9])|v(?P<lo>[1-9])_v(?P<hi>[1-9])|release_latest)$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def release_files(tag: str) -> set[int]:
    """The official files (1 = test.jsonl ... 6 = test6.jsonl) a LiveCodeBench version tag takes."""
    match = _RELEASE_TAG.match(tag.strip().lower())
    if match is None or any(int(v) > N_FILES for v in match.groupdict().values() if v):
        raise UsageError(
            f"--release {tag!r} is not a LiveCodeBench version tag: release_v1 .. release_v{N_FILES}, release_latest "
            f"(cumulative), v1 .. v{N_FILES} (the problems new in one release), or vI_vJ with I < J (e.g. v2_v4)"
        )
    if match["upto"]:
        return set(range(1, int(match["upto"]) + 1))
    if match["only"]:
        return {int(match["only"])}
    if match["lo"]:
        lo, hi = int(match["lo"]), int(match["hi"])
        if lo >= hi:
            raise UsageError(f"--release {tag!r}: a range vI_vJ needs I < J (e.g. v2_v4)")
        return set(range(lo, hi + 1))
    return set(range(1, N_FILES + 1))  # release_latest: everything this data file holds


def _first_release_files(label: str) -> set[int]:
    """``lcb_first_release`` of the offline copy ("v1", "v2-v4", ...) as the official files it may be in."""
    match = re.fullmatch(r"v([1-9])(?:-v([1-9]))?", label or "")
    if match is None:
        raise DataIntegrityError(f"lcb_first_release {label!r} is not vN or vI-vJ")
    lo = int(match[1])
    return set(range(lo, int(match[2] or lo) + 1))


def _parse_date(flag: str, value: str) -> datetime:
    if _DATE.match(value.strip()):
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%d")
        except ValueError:
            pass
    raise UsageError(f"{flag} takes a date as YYYY-MM-DD (e.g. 2024-08-01), got {value!r}")


def _choices(flag: str, value: str, allowed: tuple[str, ...]) -> set[str]:
    chosen = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = sorted(chosen - set(allowed))
    if unknown or not chosen:
        raise UsageError(f"{flag} takes a comma list of {', '.join(allowed)}; got {value!r}")
    return chosen


# --- the suite --------------------------------------------------------------------------------


@SUITES.register("livecodebench")
class LiveCodeBenchSuite(Suite):
    """LiveCodeBench code generation, judged by the data set's own tests (LeetCode by value, others by stdout).

    ``release_v6`` (default) is the official ``code_generation_lite`` at a pinned Hub commit, public and
    private tests: its ``all`` group is LiveCodeBench's score, ``public`` the public tests alone. Only
    the files a ``--release`` needs are fetched and read (``--release v6``: test6.jsonl, 134 MB, not
    all 4.5 GB). ``v6-public`` is the workspace copy with public tests only (shared/datasets).
    """

    name = "livecodebench"
    description = "LiveCodeBench code generation (release_v6, 1,055 problems: public + private tests from the Hub)"
    versions = {  # noqa: RUF012 - typed as in Suite; never mutated
        "release_v6": tuple(
            DataFile(
                filename=path,
                sha256=digest,
                subdir=HUB_SUBDIR,
                hub=HubFile(HUB_REPO, path, HUB_REVISION),
                size=size,
            )
            for path, size, digest in HUB_FILES
        ),
        # Built offline from lcb_runner outputs and a copy of the public tests (shared/datasets/SOURCES.md):
        # there is no official file to download, and no private tests.
        "v6-public": DataFile(
            filename="code_generation_lite_v6_public_tests.jsonl.gz",
            sha256="223286739fa71deb7850c6d8e2254701fb187aaf971ca6d74739bca88cb2dc5f",
            subdir="livecodebench",
        ),
    }
    default_version = "release_v6"
    group_names: tuple[str, ...] = ("public", ALL_TESTS)

    def __init__(self, version: str | None = None, data_dir: Path | None = None) -> None:
        super().__init__(version, data_dir)
        if not self.official:
            self.group_names = ("public",)  # the workspace copy has no private tests
        self._by_file: dict[int, list[Problem]] = {}

    @property
    def official(self) -> bool:
        """The version holds the official files (one per release delta), private tests included."""
        return len(self.data_files) == N_FILES

    def parse(self, path: Path) -> list[Problem]:
        """The workspace copy: problems with tests, in the file's order; the others kept for :meth:`all_problems`."""
        self._every = [problem_from_row(row) for row in read_jsonl(path)]
        return [p for p in self._every if p.groups]

    def problems(self) -> list[Problem]:
        if self._problems is None:
            if self.official:
                self._problems = self._official(set(range(1, N_FILES + 1)))
                self._every = list(self._problems)
            else:
                self._problems = self.parse(self.path())
        return self._problems

    def _official(self, files: set[int]) -> list[Problem]:
        """The problems of the official files ``files`` (1 = test.jsonl), each file fetched and read once."""
        for n in sorted(files - set(self._by_file)):
            path = self.located(self.data_files[n - 1])
            rows = read_jsonl(path)
            self._by_file[n] = [
                problem_from_row({**row, "lcb_first_release": f"v{n}"}, all_tests_group=True) for row in rows
            ]
        return [p for n in sorted(files) for p in self._by_file[n] if p.groups]

    def selected(self, **filters: str | None) -> list[Problem]:
        """The official version reads only the files the release needs; then every filter applies."""
        release = filters.get("release")
        if self.official and release and self._problems is None:
            return self.select(self._official(release_files(release)), **filters)
        return self.select(self.problems(), **filters)

    def files_for(self, release: str | None = None) -> tuple[DataFile, ...]:
        if not release or not self.official:
            return self.data_files
        return tuple(self.data_files[n - 1] for n in sorted(release_files(release)))

    def n_problems(self) -> int:
        if self.official and self._problems is None:
            return RELEASE_SIZES[N_FILES]  # the official count; not a reason to read 4.5 GB
        return len(self.problems())

    def all_problems(self) -> list[Problem]:
        """Every problem of the data, those without any test included (official release counts)."""
        self.problems()
        return list(self._every)

    def left_out(self) -> dict[str, str]:
        if self.official:
            loaded = [p for problems in self._by_file.values() for p in problems]
            return {p.task_id: p.unverifiable for p in loaded if not p.groups}
        self.problems()
        return {p.task_id: p.unverifiable for p in self._every if not p.groups}

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        """A LiveCodeBench sample is a whole program (``solution``, ``code`` or ``completion``; for base
        models lcb_runner takes the text generated after the prompt's ``### Answer``), run as lcb_runner
        runs it: after ``IMPORT_PRELUDE``."""
        for key in ("solution", "code", "completion"):
            if isinstance(sample.get(key), str):
                return IMPORT_PRELUDE + "\n" + sample[key]
        raise UsageError(f"sample for {problem.task_id} has none of 'solution', 'code', 'completion'")

    def select(self, problems: list[Problem], **filters: str | None) -> list[Problem]:
        """Problems matching every filter given: ``release`` (a LiveCodeBench version tag), ``start_date`` /
        ``end_date`` (YYYY-MM-DD on contest_date, as lcb_runner compares them), ``platform``, ``difficulty``."""
        unknown = sorted(k for k, v in filters.items() if v and k not in _FILTERS)
        if unknown:
            return super().select(problems, **{k: filters[k] for k in unknown})
        keep = self._matcher(**{k: v for k, v in filters.items() if v})
        chosen = [p for p in problems if keep(p)]
        if not chosen and problems:
            described = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in filters.items() if v)
            candidates = self.all_problems() if not self.official else []
            untested = sum(1 for p in candidates if not p.groups and keep(p))
            why = f" ({untested} match but have no tests in this data file)" if untested else ""
            raise UsageError(f"no {self.name} {self.version} problem with tests matches {described}{why}")
        return chosen

    def _matcher(
        self,
        release: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        platform: str | None = None,
        difficulty: str | None = None,
    ) -> Callable[[Problem], bool]:
        tests: list[Callable[[Problem], bool]] = []
        if release:
            wanted = release_files(release)
            if not self.official:
                self._check_release_separable(release, wanted)
            tests.append(lambda p: _first_release_files(p.metadata["lcb_first_release"]) <= wanted)
        start = _parse_date("--start-date", start_date) if start_date else None
        end = _parse_date("--end-date", end_date) if end_date else None
        if start and end and start > end:
            raise UsageError(f"--start-date {start_date} is after --end-date {end_date}")
        if start:
            tests.append(lambda p: start <= datetime.fromisoformat(p.metadata["contest_date"]))
        if end:
            tests.append(lambda p: datetime.fromisoformat(p.metadata["contest_date"]) <= end)
        if platform:
            platforms = _choices("--platform", platform, PLATFORMS)
            tests.append(lambda p: p.metadata["platform"] in platforms)
        if difficulty:
            levels = _choices("--difficulty", difficulty, DIFFICULTIES)
            tests.append(lambda p: p.metadata["difficulty"] in levels)
        return lambda p: all(test(p) for test in tests)

    def _check_release_separable(self, tag: str, wanted: set[int]) -> None:
        """A tag can be answered only if it takes each ``lcb_first_release`` label whole or not at all."""
        labels = {str(p.metadata["lcb_first_release"]) for p in self.all_problems()}
        split = sorted(label for label in labels if not _whole_or_none(_first_release_files(label), wanted))
        if split:
            valid = [
                t
                for t in ALL_RELEASE_TAGS
                if all(_whole_or_none(_first_release_files(x), release_files(t)) for x in labels)
            ]
            raise UsageError(
                f"--release {tag} cannot be selected from {self.name} {self.version}: this copy only knows that some "
                f"problems were first released in one of {split[0]} (its lcb_first_release field), not in which; "
                f"tags it can answer: {', '.join(valid)}"
            )

    def describe(self) -> dict:
        left_out = self.left_out()
        info = {
            **super().describe(),
            "n_problems": self.n_problems(),
            "n_problems_without_tests": len(left_out),
            "problems_without_tests": sorted(left_out),
        }
        if self.official:
            info["headline_group"] = ALL_TESTS
            info["groups_meaning"] = {
                "public": "the public tests only",
                ALL_TESTS: "public and private tests: LiveCodeBench's official score (lcb_runner)",
            }
            info["files_read"] = [self.data_files[n - 1].filename for n in sorted(self._by_file)]
        else:
            info["headline_group"] = "public"
            info["groups_meaning"] = {"public": "the public tests only (this copy has no private tests)"}
        return info


_FILTERS = ("release", "start_date", "end_date", "platform", "difficulty")
ALL_RELEASE_TAGS = (
    *(f"release_v{n}" for n in range(1, N_FILES + 1)),
    "release_latest",
    *(f"v{n}" for n in range(1, N_FILES + 1)),
    *(f"v{i}_v{j}" for i in range(1, N_FILES + 1) for j in range(i + 1, N_FILES + 1)),
)


def _whole_or_none(part: set[int], wanted: set[int]) -> bool:
    return part <= wanted or not part & wanted


# --- the one-shot examples of lcb_runner's base-model prompt (prompts/few_shot_examples/generation/,
# func.json[0] and stdin.json[0], verbatim; MIT, LiveCodeBench) -----------------------------------

_FUNC_EXAMPLE_QUESTION = (
    "You are given a 0-indexed array of positive integers nums. Find the number of triplets (i, j, k) "
    "that meet the following conditions:\n"
    "\n"
    "0 <= i < j < k < nums.length\n"
    "nums[i], nums[j], and nums[k] are pairwise distinct.\n"
    "\t\n"
    "In other words, nums[i] != nums[j], nums[i] != nums[k], and nums[j] != nums[k].\n"
    "\n"
    "\n"
    "\n"
    "Return the number of triplets that meet the conditions.\n"
    " \n"
    "Example 1:\n"
    "\n"
    "Input: nums = [4,4,2,4,3]\n"
    "Output: 3\n"
    "Explanation: The following triplets meet the conditions:\n"
    "- (0, 2, 4) because 4 != 2 != 3\n"
    "- (1, 2, 4) because 4 != 2 != 3\n"
    "- (2, 3, 4) because 2 != 4 != 3\n"
    "Since there are 3 triplets, we return 3.\n"
    "Note that (2, 0, 4) is not a valid triplet because 2 > 0.\n"
    "\n"
    "Example 2:\n"
    "\n"
    "Input: nums = [1,1,1,1,1]\n"
    "Output: 0\n"
    "Explanation: No triplets meet the conditions so we return 0.\n"
    "\n"
    " \n"
    "Constraints:\n"
    "\n"
    "3 <= nums.length <= 100\n"
    "1 <= nums[i] <= 1000\n"
    "\n"
)
_FUNC_EXAMPLE_STARTER = "class Solution:\n    def unequalTriplets(self, nums: List[int]) -> int:\n        "
_FUNC_EXAMPLE_ANSWER = (
    "class Solution:\n"
    "    def unequalTriplets(self, a: List[int]) -> int:\n"
    "        ans = 0\n"
    "        n = len(a)\n"
    "        for i in range(n):\n"
    "            for j in range(i + 1, n):\n"
    "                for k in range(j + 1, n):\n"
    "                    ans += len({a[i], a[j], a[k]}) == 3\n"
    "        return ans"
)
_STDIN_EXAMPLE_QUESTION = (
    "You have $n$ gifts and you want to give all of them to children. Of course, you don't want to "
    "offend anyone, so all gifts should be equal between each other. The $i$-th gift consists of $a_i$ "
    "candies and $b_i$ oranges.\n"
    "\n"
    "During one move, you can choose some gift $1 \\le i \\le n$ and do one of the following operations:\n"
    "\n"
    "  eat exactly one candy from this gift (decrease $a_i$ by one);  eat exactly one orange from this "
    "gift (decrease $b_i$ by one);  eat exactly one candy and exactly one orange from this gift "
    "(decrease both $a_i$ and $b_i$ by one). \n"
    "\n"
    "Of course, you can not eat a candy or orange if it's not present in the gift (so neither $a_i$ nor "
    "$b_i$ can become less than zero).\n"
    "\n"
    "As said above, all gifts should be equal. This means that after some sequence of moves the "
    "following two conditions should be satisfied: $a_1 = a_2 = \\dots = a_n$ and $b_1 = b_2 = \\dots = "
    "b_n$ (and $a_i$ equals $b_i$ is not necessary).\n"
    "\n"
    "Your task is to find the minimum number of moves required to equalize all the given gifts.\n"
    "\n"
    "You have to answer $t$ independent test cases.\n"
    "\n"
    "\n"
    "-----Input-----\n"
    "\n"
    "The first line of the input contains one integer $t$ ($1 \\le t \\le 1000$) — the number of test "
    "cases. Then $t$ test cases follow.\n"
    "\n"
    "The first line of the test case contains one integer $n$ ($1 \\le n \\le 50$) — the number of gifts. "
    "The second line of the test case contains $n$ integers $a_1, a_2, \\dots, a_n$ ($1 \\le a_i \\le "
    "10^9$), where $a_i$ is the number of candies in the $i$-th gift. The third line of the test case "
    "contains $n$ integers $b_1, b_2, \\dots, b_n$ ($1 \\le b_i \\le 10^9$), where $b_i$ is the number of "
    "oranges in the $i$-th gift.\n"
    "\n"
    "\n"
    "-----Output-----\n"
    "\n"
    "For each test case, print one integer: the minimum number of moves required to equalize all the "
    "given gifts.\n"
    "\n"
    "\n"
    "-----Example-----\n"
    "Input\n"
    "5\n"
    "3\n"
    "3 5 6\n"
    "3 2 3\n"
    "5\n"
    "1 2 3 4 5\n"
    "5 4 3 2 1\n"
    "3\n"
    "1 1 1\n"
    "2 2 2\n"
    "6\n"
    "1 1000000000 1000000000 1000000000 1000000000 1000000000\n"
    "1 1 1 1 1 1\n"
    "3\n"
    "10 12 8\n"
    "7 5 4\n"
    "\n"
    "Output\n"
    "6\n"
    "16\n"
    "0\n"
    "4999999995\n"
    "7\n"
    "\n"
    "\n"
    "\n"
    "-----Note-----\n"
    "\n"
    "In the first test case of the example, we can perform the following sequence of moves:\n"
    "\n"
    "  choose the first gift and eat one orange from it, so $a = [3, 5, 6]$ and $b = [2, 2, 3]$;  choose "
    "the second gift and eat one candy from it, so $a = [3, 4, 6]$ and $b = [2, 2, 3]$;  choose the "
    "second gift and eat one candy from it, so $a = [3, 3, 6]$ and $b = [2, 2, 3]$;  choose the third "
    "gift and eat one candy and one orange from it, so $a = [3, 3, 5]$ and $b = [2, 2, 2]$;  choose the "
    "third gift and eat one candy from it, so $a = [3, 3, 4]$ and $b = [2, 2, 2]$;  choose the third "
    "gift and eat one candy from it, so $a = [3, 3, 3]$ and $b = [2, 2, 2]$."
)
_STDIN_EXAMPLE_ANSWER = (
    "def minimum_moves(t, test_cases):\n"
    "    for _ in range(t):\n"
    "        n = test_cases[_][0]\n"
    "        candies = test_cases[_][1]\n"
    "        oranges = test_cases[_][2]\n"
    "        min_candies = min(candies)\n"
    "        min_oranges = min(oranges)\n"
    "        ans = 0\n"
    "        for i in range(n):\n"
    "            ans += max(candies[i] - min_candies, oranges[i] - min_oranges)\n"
    "        print(ans)\n"
    "\n"
    "\n"
    "def main():\n"
    "    t = int(input())\n"
    "    test_cases = []\n"
    "    for _ in range(t):\n"
    "        n = int(input())\n"
    "        candies = list(map(int, input().split()))\n"
    "        oranges = list(map(int, input().split()))\n"
    "        test_cases.append((n, candies, oranges))\n"
    "    minimum_moves(t, test_cases)\n"
    "\n"
    "\n"
    "main()\n"
)
