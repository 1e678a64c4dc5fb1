"""``--each KEY=LABEL:VALUE,...``: how the arms of a sweep are read, and what is refused."""

from __future__ import annotations

import pytest

from ra3bench.errors import UsageError
from ra3bench.training.sweep import Arm, parse_each, zip_each


def test_arms_keep_order_and_allow_an_empty_value() -> None:
    arms = parse_each("trainer.init=base:, ntp:results/ntp/checkpoints/step-000048,ra3:a:b")
    assert arms == [
        Arm("base", ("trainer.init=",)),
        Arm("ntp", ("trainer.init=results/ntp/checkpoints/step-000048",)),
        Arm("ra3", ("trainer.init=a:b",)),  # only the first colon splits
    ]


def test_repeated_each_sets_several_keys_per_label() -> None:
    arms = zip_each(["trainer.init=base:,ntp:ckpt", "eval.start_from=ntp:evals/step-48,base:evals/step-0"])
    assert arms == [
        Arm("base", ("trainer.init=", "eval.start_from=evals/step-0")),
        Arm("ntp", ("trainer.init=ckpt", "eval.start_from=evals/step-48")),
    ]
    with pytest.raises(UsageError, match=r"labels a, c differ from the first --each's \(a, b\)"):
        zip_each(["trainer.lr=a:1,b:2", "trainer.init=a:x,c:y"])


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


def test_overrides_may_follow_each_on_the_command_line(capsys) -> None:
    """argparse alone refuses positionals after an option; `train` takes KEY=VALUE anywhere."""
    from ra3bench.cli.main import main

    code = main(["train", "--trainer", "ntp", "--each", "trainer.init_seed=a:1,b:2", "eval.n=2", "--check"])
    assert code == 2 and "trainer.init_seed" in capsys.readouterr().err  # reached the config check
    assert main(["train", "--trainer", "ntp", "--each", "trainer.lr=a:1e-4,b:2e-4", "eval.n=2", "--check"]) == 0
    assert "2 configs check out: a, b" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--trainer", "ntp", "--check", "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
