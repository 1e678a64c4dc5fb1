"""The reward: a program's verdict from the ra3bench sandbox, as `ra3bench run` would judge it.

Each program goes through the same :class:`~ra3bench.pipeline.Evaluator` as an evaluation (the
suite's tests, expected outputs from the reference or the data, the time policy, retries of
infrastructure faults), with the verdict cache in front of it: GRPO samples the same program
many times, and a program judged once under the same conditions is not run again. A batch runs
concurrently, ``sandbox.workers`` programs at a time, identical programs once.

* ``binary`` (default): 1 if every test of every group passes, else 0 (fail-fast judging).
* ``fraction``: tests passed / tests, over all groups (every test runs: no fail-fast).

A ``sandbox_error`` verdict (an infrastructure fault that survived its retries, in any group) is
not the program's doing: the sample gets **no reward** (``None``), is dropped from the update and
counted; it is never scored 0, and never cached.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ra3bench.expected import load_or_compute
from ra3bench.paths import cache_root
from ra3bench.pipeline import EvalSettings, Evaluator
from ra3bench.records import Sample, Status
from ra3bench.sandbox.base import Sandbox
from ra3bench.suites.base import Problem
from ra3bench.verdict_cache import VerdictCache
from ra3bench_rlvr.problems import ProblemSet

MODES = ("binary", "fraction")
SANDBOX_ERROR = Status.SANDBOX_ERROR.value


def open_sandbox(kind: str, workers: int) -> Sandbox:
    """The sandbox the rewards run in, started once for the whole run (tests replace this)."""
    from ra3bench.sandbox import make_sandbox

    sandbox = make_sandbox(kind or "auto", workers or None)
    sandbox.__enter__()
    return sandbox


def reward_of(verdict: dict, mode: str) -> float | None:
    """The reward of one verdict (``Verdict.to_json()``); None when the sandbox failed, not the program."""
    if verdict["status"] == SANDBOX_ERROR or SANDBOX_ERROR in verdict.get("groups", {}).values():
        return None
    if mode == "binary":
        return 1.0 if verdict["status"] == Status.PASS.value else 0.0
    details = verdict.get("details", {}).values()
    tests = sum(d.get("n_tests", 0) for d in details)
    return sum(d.get("n_passed", 0) for d in details) / tests if tests else 0.0


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
    """Scores (problem set, problem, program) triples; one evaluator per problem set."""

    def __init__(self, sets: list[ProblemSet], sandbox: Sandbox, mode: str = "binary", *, cache: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"trainer.reward must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.sandbox = sandbox
        self.settings = EvalSettings(fail_fast=mode == "binary")
        self.evaluators: dict[str, Evaluator] = {}
        self.unusable: dict[str, str] = {}  # "set:task" -> why (the reference fails its own tests, ...)
        for s in sets:
            expectations = load_or_compute(s.suite, sandbox, s.problems, limits=self.settings.limits)
            usable = []
            for problem in s.problems:
                notes = [g.problem_note for g in expectations.tasks[problem.task_id].values() if g.problem_note]
                if notes:
                    self.unusable[f"{s.name}:{problem.task_id}"] = notes[0][:200]
                else:
                    usable.append(problem)
            s.problems = usable
            self.evaluators[s.name] = Evaluator(s.suite, sandbox, expectations, self.settings)
        self.cache = VerdictCache(cache_root() / "verdicts.sqlite" if cache else None)
        self._pool = ThreadPoolExecutor(max(1, sandbox.workers))

    def score(self, items: list[tuple[str, Problem, str]]) -> RewardBatch:
        """Rewards for ``(set name, problem, program)`` items, judged concurrently, in order."""
        started = time.perf_counter()
        verdicts: list[dict | None] = [None] * len(items)
        first_of: dict[str, int] = {}  # cache key -> the item that runs it
        copies: list[tuple[int, str]] = []
        futures = {}
        reused = 0
        for i, (set_name, problem, program) in enumerate(items):
            evaluator = self.evaluators[set_name]
            key = evaluator.cache_key(problem, program)
            if key in first_of:
                copies.append((i, key))
                reused += 1
            elif (cached := self.cache.get(key)) is not None:
                verdicts[i] = cached
                reused += 1
            else:
                first_of[key] = i
                futures[key] = self._pool.submit(evaluator.evaluate, problem, Sample(problem.task_id, i, program))
        fresh = {key: future.result().to_json() for key, future in futures.items()}
        for key, verdict in fresh.items():
            verdicts[first_of[key]] = verdict
            if verdict["status"] != SANDBOX_ERROR:
                self.cache.put(key, verdict)
        for i, key in copies:
            verdicts[i] = verdicts[first_of[key]]
        done = [v for v in verdicts if v is not None]
        assert len(done) == len(items)
        statuses = [v["status"] for v in done]
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        return RewardBatch(
            rewards=[reward_of(v, self.mode) for v in done],
            statuses=statuses,
            sandbox_s=time.perf_counter() - started,
            executed=len(futures),
            reused=reused,
            status_counts=counts,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.cache.close()
