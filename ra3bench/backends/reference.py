"""The data set's own solutions as samples: a self-check of suite, harness and sandbox."""

from __future__ import annotations

from collections.abc import Iterator

from ra3bench.backends.base import Backend
from ra3bench.errors import UsageError
from ra3bench.records import Sample
from ra3bench.suites.base import Problem, Suite


class ReferenceBackend(Backend):
    name = "reference"

    def samples(
        self, suite: Suite, problems: list[Problem], n: int, skip: frozenset[tuple[str, int]] = frozenset()
    ) -> Iterator[Sample]:
        self.check(suite, problems)
        for problem in problems:
            for index in range(n):
                yield Sample(problem.task_id, index, problem.reference, {"source": "reference"})

    def check(self, suite: Suite, problems: list[Problem]) -> None:
        lacking = [p.task_id for p in problems if not p.reference]
        if lacking:  # checked before anything runs: no half-made run folder
            what = "has no reference solutions" if len(lacking) == len(problems) else "lacks reference solutions"
            raise UsageError(
                f"suite {suite.name} {what} ({len(lacking)} of {len(problems)} problems, e.g. {lacking[0]}), so "
                "`--model reference` cannot run; judge generations with `ra3bench evaluate --samples FILE`"
            )

    def describe(self) -> dict:
        return {"backend": self.name, "model": "reference"}
