"""The records every layer passes around: a sample (a program to judge) and its verdict.

They sit below the pipeline, the backends and the sandbox so that each can use them without
importing the others. ``Verdict.to_json`` is the schema of a line of ``verdicts.jsonl`` (and of
the verdict cache); ``Verdict.from_json`` reads it back.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Sample:
    """One program to judge, with what the model or file gave for it (kept verbatim in ``raw``)."""

    task_id: str
    sample_index: int
    program: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def program_sha256(self) -> str:
        return hashlib.sha256(self.program.encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "task_id": self.task_id,
            "sample_index": self.sample_index,
            "program_sha256": self.program_sha256,
            "program": self.program,
            **{k: v for k, v in self.raw.items() if k not in ("task_id", "sample_index", "program")},
        }


class Status(str, enum.Enum):
    """Verdict of a sample (or of one test group of it), decided by trusted code."""

    PASS = "pass"
    FAIL = "fail"  # wrong answer
    ERROR = "error"  # exception or non-zero exit
    TIMEOUT = "timeout"
    MEMORY = "memory"
    SYNTAX = "syntax"
    SANDBOX_ERROR = "sandbox_error"  # infrastructure: never the model's fault


@dataclass
class GroupVerdict:
    status: Status
    n_tests: int
    n_passed: int
    first_failure: int | None = None  # index of the first failing test in the group
    detail: str = ""  # exception text or the compared values, truncated
    time_s: float = 0.0


@dataclass
class Verdict:
    """One sample's verdict. ``status`` is the combined one: plus counts only if base passed."""

    task_id: str
    sample_index: int
    status: Status
    groups: dict[str, GroupVerdict]
    program_sha256: str
    wall_s: float = 0.0
    output: str = ""
    flaky: bool = False  # a timeout that passed when re-run

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    @property
    def sandbox_error(self) -> bool:
        """An infrastructure fault in any group: the verdict says nothing about the program."""
        return self.status is Status.SANDBOX_ERROR or any(
            g.status is Status.SANDBOX_ERROR for g in self.groups.values()
        )

    @property
    def pass_fraction(self) -> float:
        """Tests passed / tests, over every group (meaningful where every test ran: no fail-fast)."""
        tests = sum(g.n_tests for g in self.groups.values())
        return sum(g.n_passed for g in self.groups.values()) / tests if tests else 0.0

    def reward(self, mode: str = "binary") -> float | None:
        """The verdict as an RL reward: ``binary`` 1.0 if every test passed, else 0.0; ``fraction``
        the share of tests passed (judge without fail-fast for it). None for ``sandbox_error``: the
        sandbox failed, not the program, so the sample must be dropped, never scored 0."""
        if self.sandbox_error:
            return None
        if mode == "binary":
            return 1.0 if self.passed else 0.0
        if mode == "fraction":
            return self.pass_fraction
        raise ValueError(f"reward mode must be binary or fraction, not {mode!r}")

    def to_json(self) -> dict:
        return {
            "task_id": self.task_id,
            "sample_index": self.sample_index,
            "status": self.status.value,
            "groups": {name: g.status.value for name, g in self.groups.items()},
            "program_sha256": self.program_sha256,
            "details": {name: {k: v for k, v in asdict(g).items() if k != "status"} for name, g in self.groups.items()},
            "wall_s": round(self.wall_s, 4),
            "flaky": self.flaky,
            "output": self.output[:2000],
        }

    @classmethod
    def from_json(cls, data: dict) -> Verdict:
        """A verdict from ``to_json``'s dict (a ``verdicts.jsonl`` line, a verdict-cache entry)."""
        details = data.get("details", {})
        groups = {
            name: GroupVerdict(
                status=Status(status),
                n_tests=int(details.get(name, {}).get("n_tests", 0)),
                n_passed=int(details.get(name, {}).get("n_passed", 0)),
                first_failure=details.get(name, {}).get("first_failure"),
                detail=str(details.get(name, {}).get("detail", "")),
                time_s=float(details.get(name, {}).get("time_s", 0.0)),
            )
            for name, status in data.get("groups", {}).items()
        }
        return cls(
            task_id=data["task_id"],
            sample_index=int(data["sample_index"]),
            status=Status(data["status"]),
            groups=groups,
            program_sha256=data.get("program_sha256", ""),
            wall_s=float(data.get("wall_s", 0.0)),
            output=data.get("output", ""),
            flaky=bool(data.get("flaky", False)),
        )
