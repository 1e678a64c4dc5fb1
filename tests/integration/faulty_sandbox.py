"""A sandbox that meets infrastructure faults on demand: for the tests of everything that must not
score a ``sandbox_error`` as the program's failure (rewards, sessions, training runs)."""

from __future__ import annotations

from collections.abc import Callable

from ra3bench.sandbox.base import Job, JobResult, Sandbox


def marked(program: str) -> bool:
    return "# FAULT" in program


class FaultySandbox(Sandbox):
    """``inner``, except that the programs ``fault`` picks (default: those holding ``# FAULT``) meet an
    infrastructure fault every time. ``close`` closes ``inner`` unless ``owns_inner`` is False."""

    name = "faulty"
    isolation = "test"

    def __init__(self, inner: Sandbox, fault: Callable[[str], bool] = marked, *, owns_inner: bool = True) -> None:
        self.inner, self.fault, self.owns_inner = inner, fault, owns_inner
        self.faulted = 0
        self.closed = False

    def run(self, job: Job) -> JobResult:
        if self.fault(job.program):
            self.faulted += 1
            return JobResult.infrastructure_fault("injected fault")
        return self.inner.run(job)

    @property
    def workers(self) -> int:
        return self.inner.workers

    def describe(self) -> dict:
        return {**self.inner.describe(), "kind": self.name}

    def close(self) -> None:
        self.closed = True
        if self.owns_inner:
            self.inner.close()
