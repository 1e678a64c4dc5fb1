"""When the training core evaluates: step 0, every N, the end, and ``at_start: false``."""

from __future__ import annotations

import pytest

from ra3bench.errors import UsageError
from ra3bench.training.base import EvalConfig
from ra3bench.training.evaluation import EvalSchedule


def due_steps(total: int, **config) -> list[int]:
    schedule = EvalSchedule(EvalConfig(suites=[], **config), total_steps=total, training_ids=set())
    return [step for step in range(total + 1) if schedule.due(step)]


@pytest.mark.parametrize(
    ("total", "config", "expected"),
    [
        (10, {"every": 4}, [0, 4, 8, 10]),
        (10, {"every": 0}, [0, 10]),
        (8, {"every": 4}, [0, 4, 8]),
        (10, {"every": 4, "at_start": False}, [4, 8, 10]),
        (0, {"every": 4, "at_start": False}, [0]),  # nothing trained: the one point is still measured
    ],
)
def test_due_steps(total: int, config: dict, expected: list[int]) -> None:
    assert due_steps(total, **config) == expected


def test_select_windows_a_suite_before_the_limit_and_the_manifest_says_so() -> None:
    """LiveCodeBench evaluated after an RL training cut-off: the window, then the first N of it."""
    from datetime import datetime

    from shared_data import DATA_DIR

    lcb = "livecodebench@v6-public"
    config = EvalConfig(suites=[lcb], select={lcb: {"start_date": "2025-01-01"}}, limit=5)
    schedule = EvalSchedule(config, total_steps=10, training_ids=set(), data_dir=DATA_DIR)
    (plan,) = schedule.plans
    assert len(plan.problems) == 5
    assert all(datetime.fromisoformat(p.metadata["contest_date"]) >= datetime(2025, 1, 1) for p in plan.problems)
    assert schedule.describe()["suites"]["livecodebench"]["filters"] == {"start_date": "2025-01-01", "limit": 5}

    with pytest.raises(UsageError, match=r"eval\.select names mbpp"):
        EvalSchedule(EvalConfig(suites=[lcb], select={"mbpp": {"start_date": "x"}}), 1, set(), DATA_DIR)
