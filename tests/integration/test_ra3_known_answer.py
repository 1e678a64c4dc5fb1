"""RA3's E-step on a task whose best latent policy is known (``ra3bench_ra3.known_answer``): it must learn it.

A prior trained from scratch here can use a function's name only through a plan comment. On the
task corpus the best policy comments at the body line, with the right plan, exactly when pi's gain
from the plan exceeds c, and nowhere else. These fail if the E-step does not learn: a flipped
advantage, a decision or comment term without gradient, a reward that ignores c, a horizon that
does not reach the body line.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

import torch
from ra3bench_ra3 import RA3Config, RA3Trainer
from ra3bench_ra3.known_answer import (
    INFORMATIVE,
    KIND_OF,
    measure,
    plan_gain,
    pretrain_prior,
    run_estep,
    task_split,
)
from ra3bench_ra3.known_answer_experiment import NoEvaluation

from ra3bench.config import load_config
from ra3bench.training import TrainContext, TrainingExample
from ra3bench.training.runner import config_schema

TRAIN, HELD_OUT = task_split(0)
LEARN = dict(estep_lr=1e-3, estep_steps=40, estep_batch_size=8, group_size=4, max_latent_tokens=6)


@pytest.fixture(scope="module")
def prior():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, and deterministic
    yield pretrain_prior(seed=0)
    torch.set_num_threads(threads)


def test_the_prior_is_the_one_the_task_describes(prior):
    model, tokenizer = prior
    m = measure(model, tokenizer, HELD_OUT, RA3Config())
    gain = plan_gain(model, tokenizer, HELD_OUT, RA3Config())
    assert 0.2 < m.think_informative < 0.45 and m.think_other < 0.02  # comments where pretraining had them
    assert 0.7 < m.plan_accuracy < 0.95  # mostly the name's kind: the prior knows the names through plans
    assert gain.right > 0.1 > 0 > gain.wrong  # pi follows a plan: the right one pays, a wrong one costs


def test_the_e_step_learns_the_known_policy_when_a_plan_pays(prior):
    model, tokenizer = prior
    gain = plan_gain(model, tokenizer, HELD_OUT, RA3Config())
    cfg = RA3Config(penalty_c=gain.right / 3, **LEARN)
    _, points = run_estep(model, tokenizer, cfg, TRAIN, HELD_OUT, every=20)
    start, end = points[0], points[-1]
    assert end["think_informative"] > 0.9 > start["think_informative"] + 0.4, points
    assert end["think_other"] < 0.02, points
    assert end["plan_accuracy"] > 0.95 > start["plan_accuracy"], points
    # pi is the prior, untouched: the E-step trained a copy (the same draws give the same decisions)
    again = measure(model, tokenizer, HELD_OUT, cfg, seed=7919)
    assert again.think_informative == start["think_informative"] and again.plan_accuracy == start["plan_accuracy"]


def test_a_cost_above_the_gain_stops_every_comment(prior):
    model, tokenizer = prior
    gain = plan_gain(model, tokenizer, HELD_OUT, RA3Config())
    cfg = RA3Config(penalty_c=gain.right * 2, **{**LEARN, "estep_steps": 20})
    _, points = run_estep(model, tokenizer, cfg, TRAIN, HELD_OUT, every=20)
    assert points[0]["think_informative"] > 0.2 and points[-1]["think_informative"] < 0.03, points


def test_the_trainer_logs_the_probe_before_and_after_each_e_step(prior, tmp_path):
    """The real trainer (E-step, annotate, M-step) on the task: the probe's held-out snippets show q
    thinking more and its comments raising pi's likelihood, which the E-step's own log cannot show."""
    model, tokenizer = prior
    model = __import__("copy").deepcopy(model)
    examples = [TrainingExample(s.prompt, s.code, f"known/{i}") for i, s in enumerate(TRAIN + HELD_OUT)]
    overrides = ["data.max_length=128", "run.out=" + str(tmp_path)]
    knobs = {**LEARN, "estep_steps": 30, "penalty_c": 0.05, "steps": 2, "batch_size": 4, "probe_snippets": 16}
    overrides += [f"trainer.{k}={v}" for k, v in knobs.items()]
    config = load_config(config_schema(RA3Config), None, overrides)
    ctx = TrainContext(
        config=config, trainer_name="ra3", run_dir=tmp_path, model=model, tokenizer=tokenizer, examples=examples,
        schedule=NoEvaluation(config.trainer.steps), manifest={},  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        RA3Trainer(config.trainer).train(ctx)
    finally:
        ctx.close()
    lines = [json.loads(line) for line in (tmp_path / "curve.jsonl").read_text().splitlines()]
    (probe,) = [line for line in lines if "probe_think_rate_before" in line]
    assert probe["probe_snippets"] == 16
    assert probe["probe_think_rate_after"] > probe["probe_think_rate_before"] + 0.1, probe
    assert probe["probe_gain_after"] > probe["probe_gain_before"] + 0.01, probe
    assert probe["probe_reward_after"] > probe["probe_reward_before"], probe
    assert all("estep_act_crosstalk" in line for line in lines if "estep_step" in line)
    assert (tmp_path / "estep.png").stat().st_size > 0
    rows = [json.loads(line) for line in (tmp_path / "annotated.jsonl").read_text().splitlines()]
    body = [c for r in rows for c in r["comments"] if c["line"] == INFORMATIVE]
    right = [c for r in rows for c in r["comments"] if KIND_OF[r["code"].split()[1].split("(")[0]] in c["text"]]
    assert len(body) > len(rows) / 2 and len(right) > 0.9 * len(body)  # the annotation carries the learned plans
