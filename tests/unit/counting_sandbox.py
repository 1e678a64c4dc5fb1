"""A sandbox without processes for tests about what is cached, not about execution: it answers each
call with ``answer(args)`` and counts the jobs it was given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult, Sandbox
from ra3bench.sandbox.harness.protocol import encode_value


class CountingSandbox(Sandbox):
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
