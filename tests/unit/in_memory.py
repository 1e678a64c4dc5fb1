"""In-memory stand-ins for tests about what is cached, not about data files or execution: a suite
whose problems are given, and a sandbox without processes that answers each call with
``answer(args)`` and counts the jobs it was given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult, Sandbox
from ra3bench.sandbox.harness.protocol import encode_value
from ra3bench.suites.base import Problem, Suite


class InMemorySuite(Suite):
    """``problems`` as a suite of version "1" (its ``name`` keys the caches)."""

    versions = {}  # noqa: RUF012
    default_version = "1"

    def __init__(self, name: str, problems: list[Problem], group_names: tuple[str, ...] = ("base",)) -> None:
        self.name = name
        self.description = f"{len(problems)} problems in memory"
        self.version = "1"
        self.group_names = group_names
        self._given = problems

    @property
    def data_sha256(self) -> str:
        return "0" * 64

    def problems(self) -> list[Problem]:
        return list(self._given)

    def parse(self, path):  # pragma: no cover - not file based
        raise NotImplementedError

    def program_from_sample(self, problem, sample):  # pragma: no cover
        raise NotImplementedError


class CountingSandbox(Sandbox):
    """Answers each call with ``answer(args)``; counts jobs."""

    name = "counting"

    def __init__(self, answer: Callable[[list[Any]], Any]) -> None:
        self.answer = answer
        self.jobs = 0

    @property
    def workers(self) -> int:
        return 1

    def run(self, job: Job) -> JobResult:
        self.jobs += 1
        calls = [CallResult(CallStatus.OK, encode_value(self.answer(args)), 0.001) for args in job.calls]
        return JobResult(load=CallResult(CallStatus.OK), calls=calls)
