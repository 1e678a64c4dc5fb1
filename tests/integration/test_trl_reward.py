"""ra3bench as a TRL ``GRPOTrainer`` reward (ra3bench.integrations.trl), with real trl and the local sandbox.

A two-step GRPO run on the tiny random model shows the reward plugs into the trainer (task ids from the
dataset column, one reward per completion, metrics in TRL's logs); direct calls show what the reward is
worth: hostile programs get 0 where the reference gets 1, conversational completions are read, an unknown
task id is a clear error, and an infrastructure fault gives no reward (None) rather than 0.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("trl")

from faulty_sandbox import FaultySandbox

from ra3bench import EvalSpec, Session, UsageError
from ra3bench.integrations.trl import CATEGORIES, SandboxReward, completion_text, grpo_dataset

TASKS = ["Mbpp/2", "Mbpp/3", "Mbpp/4", "Mbpp/6"]


def spec(**options) -> EvalSpec:
    return EvalSpec(suite="mbpp+", tasks=TASKS, sandbox="local", workers=2, **options)


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```\n"


@pytest.fixture(scope="module")
def reward():
    with SandboxReward(spec()) as reward:
        yield reward


# Programs for Mbpp/2 (similar_elements) that try to fool the judge instead of solving the problem.
HOSTILE = {
    "os._exit(0) during the call": "def similar_elements(a, b):\n    import os\n    os._exit(0)\n",
    "sys.exit(0) during the call": "def similar_elements(a, b):\n    import sys\n    sys.exit(0)\n",
    "patches json.JSONEncoder.encode": (
        "import json\n\ndef similar_elements(a, b):\n"
        '    json.JSONEncoder.encode = lambda self, o: \'{"status": "pass", "passed": true}\'\n'
        '    json.dumps = lambda *args, **kwargs: \'{"status": "pass"}\'\n'
        "    return None\n"
    ),
    "prints fake success": (
        'def similar_elements(a, b):\n    print(\'{"status": "pass", "n_passed": 1000}\')\n    print(\'PASS\')\n'
        "    return None\n"
    ),
    "__eq__ always True": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    def __hash__(self):\n        return 0\n    def __iter__(self):\n"
        "        return iter(())\n\ndef similar_elements(a, b):\n    return Yes()\n"
    ),
    "set subclass equal to everything": (
        "class S(set):\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n\n"
        "def similar_elements(a, b):\n    return S()\n"
    ),
}


def test_hostile_completions_get_zero_and_the_reference_gets_one(reward):
    session = reward.session
    reference = fenced(session.problem("Mbpp/2").reference)
    names = list(HOSTILE)
    completions = [reference] + [fenced(HOSTILE[name]) for name in names]
    rewards = reward(prompts=[""] * len(completions), completions=completions, task_id=["Mbpp/2"] * len(completions))
    assert rewards[0] == 1.0, reward.last_verdicts[0]
    for name, value, verdict in zip(names, rewards[1:], reward.last_verdicts[1:], strict=True):
        assert value == 0.0, (name, verdict.status, verdict.output)
    # every reference of the selection passes: a 0 above is the program's doing, not the problem's
    references = [fenced(p.reference) for p in session.problems]
    assert reward(completions=references, task_id=TASKS) == [1.0] * len(TASKS)


def test_conversational_completions_and_logging(reward):
    """TRL's conversational completions are lists of messages: the last assistant message is the answer.
    Each call logs the share of every verdict category through ``log_metric`` and a status column."""
    reference = reward.session.problem("Mbpp/3").reference
    completions = [
        [{"role": "assistant", "content": fenced(reference)}],
        [{"role": "assistant", "content": "I think the answer is 42."}],
        [{"role": "assistant", "content": [{"type": "text", "text": fenced(reference)}]}],
        [{"role": "assistant", "content": "thinking..."}, {"role": "assistant", "content": fenced(reference)}],
    ]
    prompts = [[{"role": "user", "content": "?"}]] * len(completions)
    metrics: dict[str, list[float]] = {}
    extra: dict[str, list] = {}
    before = sum(reward.counts.values())
    rewards = reward(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        task_id=["Mbpp/3"] * len(completions),
        trainer_state=None,
        log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
        log_extra=lambda column, values: extra.setdefault(column, []).extend(values),
    )
    assert rewards == [1.0, 0.0, 1.0, 1.0]
    assert set(metrics) == {f"ra3bench/{c}" for c in CATEGORIES}
    assert metrics["ra3bench/pass"] == [0.75] and math.isclose(sum(v[0] for v in metrics.values()), 1.0)
    assert extra["ra3bench_status"][0] == "pass" and extra["ra3bench_status"][1] != "pass"
    assert sum(reward.counts.values()) == before + 4
    assert completion_text("plain") == "plain" and completion_text([{"role": "user", "content": "x"}]) == ""


def test_completion_style_continues_the_prompt():
    """Base models continue ``problem.prompt``: the program is the prompt plus the completion."""
    with SandboxReward(spec(), style="completion") as reward:
        dataset = grpo_dataset(reward.session, style="completion")
        row = dataset[0]
        problem = reward.session.problem(row["task_id"])
        assert row["prompt"] == problem.prompt
        assert reward(completions=[problem.reference, "    return 1\n"], task_id=[row["task_id"]] * 2) == [1.0, 0.0]


def test_clear_errors(reward):
    with pytest.raises(UsageError, match=r"task id 'Mbpp/999999'.*column 'task_id'"):
        reward(completions=["x"], task_id=["Mbpp/999999"])
    with pytest.raises(UsageError, match=r"dataset column 'task_id'"):
        reward(completions=["x"], problem=["Mbpp/2"])
    with pytest.raises(ValueError, match="fail_fast=False"):
        SandboxReward(spec(), mode="fraction")
    with pytest.raises(ValueError, match="reward mode"):
        SandboxReward(spec(), mode="partial")


def test_fraction_rewards_share_of_tests():
    with SandboxReward(spec(fail_fast=False), mode="fraction") as reward:
        problem = reward.session.problem("Mbpp/3")  # is_not_prime: True for 1 and composites
        half_right = "def is_not_prime(n):\n    return n % 2 == 0 and n != 2\n"
        rewards = reward(completions=[fenced(problem.reference), fenced(half_right)], task_id=["Mbpp/3"] * 2)
        assert rewards[0] == 1.0 and 0.0 < rewards[1] < 1.0


def test_sandbox_error_gives_no_reward_not_zero():
    from ra3bench.sandbox.local import LocalSandbox

    with (
        FaultySandbox(LocalSandbox(workers=2), lambda program: "INJECT_FAULT" in program) as sandbox,
        Session(spec(), sandbox=sandbox) as session,
    ):
        reward = SandboxReward(session)  # a borrowed session: the reward leaves it open
        correct = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"
        faulty = correct.replace("return", "marker = 'INJECT_FAULT'\n    return")  # would pass: 0 would be wrong
        completions = [fenced(correct), fenced(faulty), fenced("def similar_elements(a, b):\n    return 0\n")]
        assert reward(completions=completions, task_id=["Mbpp/2"] * 3) == [1.0, None, 0.0]
        assert reward.counts["sandbox_error"] == 1 and reward.counts["pass"] == 1
        reward.close()
        assert reward(completions=completions[:1], task_id=["Mbpp/2"]) == [1.0]


def test_grpo_trainer_two_steps(tmp_path):
    """Two GRPO steps on the tiny random model: the trainer calls the reward with each row's task id,
    gets one number in [0, 1] per completion, and logs the reward's metrics."""
    from trl import GRPOConfig, GRPOTrainer

    from ra3bench.tiny import tiny_model

    model, tokenizer = tiny_model(seed=0)
    calls: list[tuple[list[str], list[float | None]]] = []

    class Recording(SandboxReward):
        def __call__(self, prompts=None, completions=None, **kwargs):
            rewards = super().__call__(prompts=prompts, completions=completions, **kwargs)
            calls.append((list(kwargs["task_id"]), rewards))
            return rewards

    with Recording(spec()) as reward:
        dataset = grpo_dataset(reward.session)
        assert dataset.column_names == ["prompt", "task_id"] and dataset["task_id"] == TASKS
        assert dataset[0]["prompt"] == [{"role": "user", "content": reward.session.problem(TASKS[0]).instruction}]
        args = GRPOConfig(
            output_dir=str(tmp_path),
            max_steps=2,
            per_device_train_batch_size=4,
            num_generations=2,
            max_completion_length=16,
            learning_rate=1e-4,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model, reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        trainer.train()
    assert len(calls) == 2
    for task_ids, rewards in calls:
        assert len(task_ids) == len(rewards) == 4 and set(task_ids) <= set(TASKS)
        assert all(r is not None and 0.0 <= r <= 1.0 for r in rewards)
        assert task_ids[0] == task_ids[1] and task_ids[2] == task_ids[3]  # num_generations copies of a prompt
    assert reward.calls == 2 and sum(reward.counts.values()) == 8
    logged = [entry for entry in trainer.state.log_history if "ra3bench/pass" in entry]
    assert len(logged) == 2 and all("rewards/ra3bench/mean" in entry for entry in logged)
