"""The evaluation schema: what to measure and how, as one dataclass for every caller.

:class:`EvalSpec` is what :class:`ra3bench.Session` takes; `ra3bench run`'s flags build one, and a
training config's ``eval:`` block is :class:`EvalOptions` plus its schedule, so a setting has
one name, one default and one check everywhere. This module is light (no sandbox, no pipeline):
the objects the judge and the backends need are built on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ra3bench.errors import SpecError, UsageError

if TYPE_CHECKING:
    from ra3bench.backends.base import BackendSpec, GenerationParams
    from ra3bench.pipeline import EvalSettings
    from ra3bench.suites.base import Problem, Suite

PROMPT_STYLES = ("auto", "chat", "completion")
SELECTION_FILTERS = ("release", "start_date", "end_date", "platform", "difficulty")


@dataclass(kw_only=True)
class EvalOptions:
    """How to evaluate, whatever the suite: the fields `ra3bench run`'s flags, a training config's
    ``eval:`` block and :class:`EvalSpec` share (same names, defaults and checks)."""

    limit: int = 0  # the first N problems (after the selection); 0: all
    n: int = 1  # samples per problem
    k: list[int] = field(default_factory=list)  # pass@k for these k; empty: every k <= n
    # generation
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = field(default_factory=list)  # extra stop sequences
    prompt_style: str = "auto"  # auto | chat | completion
    batch_size: int = 16  # hf: sequences decoded at once
    batching: str = "continuous"  # hf: continuous (a finished row is replaced at once) | static
    # judging
    time_floor: float = 1.0  # per-test limit = max(floor, factor x the reference's time), s
    time_factor: float = 4.0
    problem_time_factor: float = 1.0  # suites with limits of their own: factor x the problem's limit
    memory_mb: int = 4096  # address-space limit per program
    fail_fast: bool = True  # stop a group at its first failed test
    max_timeouts: int = 3  # no fail-fast: stop a group after N timeouts (0: never)
    failed_group_budget: float = 60.0  # no fail-fast: stop a failed group after this many seconds (0: never)
    include_unverifiable: bool = False  # score problems that accept several answers but have no checker
    # sandbox and cache
    sandbox: str = "auto"  # auto | docker | local | local-unsafe | ray[:docker|:local] | a plugin's
    workers: int = 0  # parallel jobs; 0: one per core (ray: per node)
    ray_address: str = ""  # sandbox ray: the cluster ("": $RAY_ADDRESS, else a local one)
    cache: bool = True  # reuse verdicts judged before under the same conditions

    def __post_init__(self) -> None:
        errors = self.errors()
        if errors:
            raise SpecError("; ".join(errors))

    def errors(self) -> list[str]:
        """Every value that cannot work, one line each (empty when all is well)."""
        errors = []
        if self.time_floor <= 0 or self.time_factor <= 0 or self.problem_time_factor <= 0:
            errors.append("time_floor, time_factor and problem_time_factor (--time-floor, ...) must be positive")
        if self.memory_mb < 64:
            errors.append("memory_mb (--memory-mb) must be at least 64")
        if self.max_timeouts < 0 or self.failed_group_budget < 0:
            errors.append("max_timeouts and failed_group_budget (--max-timeouts, ...) must be 0 (off) or positive")
        if self.n < 1:
            errors.append("n (-n) must be at least 1")
        if any(k < 1 for k in self.k):
            errors.append(f"k (-k) takes positive integers, got {self.k}")
        if self.limit < 0 or self.workers < 0:
            errors.append("limit and workers must be 0 (all / one per core) or positive")
        if self.batch_size < 1:
            errors.append("batch_size (--batch-size) must be at least 1")
        from ra3bench.backends.base import BATCHING

        if self.batching not in BATCHING:
            errors.append(f"batching (--batching) must be continuous or static, not {self.batching!r}")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            errors.append("need temperature >= 0, 0 < top_p <= 1 and max_new_tokens >= 1 (--temperature, ...)")
        if self.prompt_style not in PROMPT_STYLES:
            errors.append(f"prompt_style (--prompt-style) must be auto, chat or completion, not {self.prompt_style!r}")
        return errors

    def judge_settings(self) -> EvalSettings:
        """What the judge needs of these options (limits, time policy, fail-fast)."""
        from ra3bench.judge import TimePolicy
        from ra3bench.pipeline import EvalSettings
        from ra3bench.sandbox.base import Limits

        return EvalSettings(
            limits=Limits(memory_mb=self.memory_mb),
            time_policy=TimePolicy(
                floor_s=self.time_floor, factor=self.time_factor, problem_factor=self.problem_time_factor
            ),
            fail_fast=self.fail_fast,
            max_timeouts=self.max_timeouts,
            failed_group_budget_s=self.failed_group_budget,
        )

    def generation(self) -> GenerationParams:
        from ra3bench.backends.base import GenerationParams

        return GenerationParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            stop=list(self.stop),
        )

    def backend_spec(self, model: str, **engine: Any) -> BackendSpec:
        """The backend that generates for ``model`` with these options (``engine``: hf/vllm/openai settings)."""
        from ra3bench.backends.base import BackendSpec

        return BackendSpec(
            model=model,
            params=self.generation(),
            prompt_style=self.prompt_style,
            batch_size=self.batch_size,
            batching=self.batching,
            **engine,
        )

    def options(self) -> dict[str, Any]:
        """The shared fields and their values (to build another spec with the same options)."""
        return {f.name: getattr(self, f.name) for f in fields(EvalOptions)}


@dataclass(kw_only=True)
class EvalSpec(EvalOptions):
    """What to measure: a suite, which of its problems, and every :class:`EvalOptions` setting."""

    suite: str
    suite_version: str | None = None  # None: the suite's pinned default
    data_dir: str | None = None  # None: $RA3BENCH_DATA_DIR, then the cache
    select: dict[str, str] = field(default_factory=dict)  # release, start_date, end_date, platform, difficulty
    tasks: list[str] = field(default_factory=list)  # only these task ids (in this order)

    def errors(self) -> list[str]:
        errors = super().errors()
        if not self.suite:
            errors.append("no suite given (e.g. humaneval+, mbpp+, livecodebench, codeforces)")
        unknown = sorted(set(self.select) - set(SELECTION_FILTERS))
        if unknown:
            errors.append(f"unknown selection filter {unknown[0]!r}; known: {', '.join(SELECTION_FILTERS)}")
        return errors

    def load_suite(self) -> Suite:
        from ra3bench.suites import get_suite

        return get_suite(self.suite, self.suite_version, Path(self.data_dir) if self.data_dir else None)

    def problems_of(self, suite: Suite) -> list[Problem]:
        """The suite's problems this spec selects: the filters, then ``tasks``, then ``limit``."""
        problems: list[Problem] = []
        if self.tasks and not any(self.select.values()):  # named tasks: only their rows need parsing
            named = suite.problems_with(list(self.tasks))
            if {p.task_id for p in named} >= set(self.tasks):
                problems = named
        if not problems:  # filters, or an unknown id (the whole suite names one in the error)
            problems = suite.selected(**self.select)
        if not problems:
            raise UsageError("no problems selected")
        if self.tasks:
            by_id = {p.task_id: p for p in problems}
            unknown = [t for t in self.tasks if t not in by_id]
            if unknown:
                raise UsageError(f"unknown task id {unknown[0]!r}; ids look like {problems[0].task_id!r}")
            problems = [by_id[t] for t in self.tasks]
        return problems[: self.limit] if self.limit else problems
