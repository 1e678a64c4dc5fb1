"""The reward: a program's verdict from the ra3bench sandbox, as `ra3bench run` would judge it.

Each problem set is judged by a :class:`ra3bench.Session` (``ctx.judge_session``: on the
training run's one sandbox, the one its evaluations use), exactly as an evaluation judges: the
suite's tests, expected outputs from the reference or the data, the time policy, retries of
infrastructure faults, the verdict cache in front (GRPO samples the same program many times,
and a program judged once under the same conditions is not run again). A batch runs
concurrently, ``sandbox.workers`` programs at a time, identical programs once.

* ``binary`` (default): 1 if every test of every group passes, else 0 (fail-fast judging).
* ``fraction``: tests passed / tests, over all groups (every test runs: no fail-fast).

A ``sandbox_error`` verdict (an infrastructure fault that survived its retries, in any group) is
not the program's doing: the sample gets **no reward** (``None``), is dropped from the update and
counted; it is never scored 0, and never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ra3bench import EvalSpec, Problem, Sandbox, Session, Status, Suite
from ra3bench_rlvr.problems import ProblemSet

MODES = ("binary", "fraction")
SANDBOX_ERROR = Status.SANDBOX_ERROR.value

SessionFactory = Callable[..., Session]  # (suite, problems, **options) -> Session: ``ctx.judge_session``


def sessions_on(sandbox: Sandbox) -> SessionFactory:
    """Sessions on a sandbox of the caller's (outside a training run: a script, a test)."""

    def open_session(suite: Suite, problems: list[Problem], **options: Any) -> Session:
        return Session(EvalSpec(suite=suite.name, **options), suite=suite, problems=problems, sandbox=sandbox)

    return open_session


@dataclass
class RewardBatch:
    """The rewards of one batch (in order) and what it cost."""

    rewards: list[float | None]
    statuses: list[str]
    sandbox_s: float = 0.0  # wall time of the whole scoring (sandbox runs, judging, cache)
    executed: int = 0  # programs run in the sandbox
    reused: int = 0  # samples answered by the verdict cache or by an identical program in the batch
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(r is None for r in self.rewards)

    @property
    def pass_rate(self) -> float:
        """Samples that passed every test, out of those with a verdict (sandbox errors left out)."""
        judged = [s for s in self.statuses if s != SANDBOX_ERROR]
        return sum(s == Status.PASS.value for s in judged) / len(judged) if judged else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.reused / len(self.rewards) if self.rewards else 0.0


class SandboxReward:
    """Scores (problem set, problem, program) triples; one judging session per problem set.

    ``open_session`` is ``ctx.judge_session`` in a training run (or :func:`sessions_on`). Problems
    whose reference fails its own tests are dropped from their set (``unusable``): no program
    could earn a reward there.
    """

    def __init__(self, sets: list[ProblemSet], open_session: SessionFactory, mode: str = "binary") -> None:
        if mode not in MODES:
            raise ValueError(f"trainer.reward must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.sessions: dict[str, Session] = {}
        self.unusable: dict[str, str] = {}  # "set:task" -> why (the reference fails its own tests, ...)
        for s in sets:
            # binary: stop at the first failure, as an evaluation does; fraction: every test runs
            session = open_session(s.suite, s.problems, fail_fast=mode == "binary").prepare()
            notes = session.problem_notes()
            self.unusable.update({f"{s.name}:{task}": why[:200] for task, why in notes.items()})
            s.problems = [p for p in s.problems if p.task_id not in notes]
            self.sessions[s.name] = session

    def describe(self) -> dict[str, Any]:
        """What the manifest records of the judging: the settings of the first session (all share them)."""
        first = next(iter(self.sessions.values()))
        return {"sandbox": first.sandbox.describe(), "settings": first.settings.describe()}

    def score(self, items: list[tuple[str, Problem, str]]) -> RewardBatch:
        """Rewards for ``(set name, problem, program)`` items, judged concurrently, in order."""
        started = time.perf_counter()
        before = {name: session.counters.copy() for name, session in self.sessions.items()}
        by_set: dict[str, list[int]] = {}
        for i, (set_name, _, _) in enumerate(items):
            by_set.setdefault(set_name, []).append(i)
        verdicts: list[Any] = [None] * len(items)
        for set_name, positions in by_set.items():
            judged = self.sessions[set_name].judge(
                [items[i][1].task_id for i in positions], [items[i][2] for i in positions]
            )
            for i, verdict in zip(positions, judged, strict=True):
                verdicts[i] = verdict
        executed = reused = 0
        for name, session in self.sessions.items():
            delta = session.counters - before[name]
            executed += delta["executed"]
            reused += delta["from_verdict_cache"] + delta["duplicates"]
        statuses = [v.status.value for v in verdicts]
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        return RewardBatch(
            rewards=[v.reward(self.mode) for v in verdicts],
            statuses=statuses,
            sandbox_s=time.perf_counter() - started,
            executed=executed,
            reused=reused,
            status_counts=counts,
        )

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
