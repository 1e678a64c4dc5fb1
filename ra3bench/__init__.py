"""ra3bench: measure code LLMs and the training methods that improve them.

The public API (names load on first use, so ``import ra3bench`` stays light)::

    from ra3bench import EvalSpec, Session

    with Session(EvalSpec(suite="mbpp+", limit=20, n=4, k=[1], temperature=0.8)) as session:
        summary = session.evaluate("smollm2-135m")         # a run folder + a Summary
        verdicts = session.judge(task_ids, programs)        # a reward's verdicts

Integrations with other training stacks: ``ra3bench.integrations.trl`` (a GRPOTrainer reward),
``ra3bench.integrations.hf`` (a TrainerCallback) and ``ra3bench.integrations.verl`` (a
``compute_score``). Trainer plugins use ``ra3bench.training``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "EvalOptions": "ra3bench.spec",
    "EvalSpec": "ra3bench.spec",
    "Session": "ra3bench.evaluate",
    "open_sandbox": "ra3bench.evaluate",
    "Summary": "ra3bench.summary",
    "Sample": "ra3bench.records",
    "Status": "ra3bench.records",
    "Verdict": "ra3bench.records",
    "GroupVerdict": "ra3bench.records",
    "Backend": "ra3bench.backends.base",
    "BackendSpec": "ra3bench.backends.base",
    "GenerationParams": "ra3bench.backends.base",
    "Problem": "ra3bench.suites.base",
    "Suite": "ra3bench.suites.base",
    "TestGroup": "ra3bench.suites.base",
    "Comparison": "ra3bench.suites.base",
    "get_suite": "ra3bench.suites",
    "Sandbox": "ra3bench.sandbox.base",
    "Ra3benchError": "ra3bench.errors",
    "UsageError": "ra3bench.errors",
    "SpecError": "ra3bench.errors",
}

__all__ = [
    "Backend",
    "BackendSpec",
    "Comparison",
    "EvalOptions",
    "EvalSpec",
    "GenerationParams",
    "GroupVerdict",
    "Problem",
    "Ra3benchError",
    "Sample",
    "Sandbox",
    "Session",
    "SpecError",
    "Status",
    "Suite",
    "Summary",
    "TestGroup",
    "UsageError",
    "Verdict",
    "__version__",
    "get_suite",
    "open_sandbox",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ra3bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from ra3bench.backends.base import Backend, BackendSpec, GenerationParams
    from ra3bench.errors import Ra3benchError, SpecError, UsageError
    from ra3bench.evaluate import Session, open_sandbox
    from ra3bench.records import GroupVerdict, Sample, Status, Verdict
    from ra3bench.sandbox.base import Sandbox
    from ra3bench.spec import EvalOptions, EvalSpec
    from ra3bench.suites import get_suite
    from ra3bench.suites.base import Comparison, Problem, Suite, TestGroup
    from ra3bench.summary import Summary
