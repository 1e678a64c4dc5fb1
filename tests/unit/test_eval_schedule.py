"""When the training core evaluates: step 0, every N, the end, and ``at_start: false``."""

from __future__ import annotations

import pytest

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
