"""``--each KEY=LABEL:VALUE,...``: how the arms of a sweep are read, and what is refused."""

from __future__ import annotations

import pytest

from ra3bench.errors import UsageError
from ra3bench.training.sweep import Arm, parse_each


def test_arms_keep_order_and_allow_an_empty_value() -> None:
    arms = parse_each("trainer.init=base:, ntp:results/ntp/checkpoints/step-000048,ra3:a:b")
    assert arms == [
        Arm("base", "trainer.init="),
        Arm("ntp", "trainer.init=results/ntp/checkpoints/step-000048"),
        Arm("ra3", "trainer.init=a:b"),  # only the first colon splits
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trainer.init", "expected KEY=LABEL:VALUE"),
        ("=a:1,b:2", "expected KEY=LABEL:VALUE"),
        ("trainer.lr=1e-4,2e-4", "is not LABEL:VALUE"),
        ("trainer.lr=a b:1,c:2", "is not LABEL:VALUE"),
        ("trainer.lr=a:1,a:2", "appears twice"),
        ("trainer.lr=a:1", "at least two"),
    ],
)
def test_malformed_sweeps_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_each(text)
