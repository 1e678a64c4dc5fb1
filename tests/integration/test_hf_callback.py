"""ra3bench.integrations.hf: real transformers Trainers (and TRL's SFTTrainer and GRPOTrainer) on the tiny
random model, measured by the callback at step 0, every N steps and the last step, each step once; the
folder it writes is a training run that `ra3bench report` draws; pass@k reaches the Trainer's logs
without taking anything from them; a resumed run keeps its curve; measuring changes nothing about what
the model learns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

from ra3bench import EvalSpec, Session, get_suite, open_sandbox
from ra3bench.integrations.hf import Ra3benchCallback, metric_name
from ra3bench.tiny import tiny_model

EVAL_KEYS = {
    "kind",
    "step",
    "tokens_seen",
    "wall_time_s",
    "eval_time_s",
    "suite",
    "group",
    "k",
    "pass_at_k",
    "ci_low",
    "ci_high",
    "run_dir",
    "n_problems",
    "n_samples",
}
PLUS = metric_name("mbpp+", "plus", 1)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")


def spec(**overrides) -> EvalSpec:
    options = {"suite": "mbpp+", "limit": 2, "n": 1, "k": [1], "max_new_tokens": 16, "sandbox": "local", "workers": 2}
    return EvalSpec(**(options | overrides))


def texts(count: int = 8) -> list[str]:
    """MBPP+ reference solutions past the two problems the evaluations use."""
    problems = get_suite("mbpp+").problems()[10 : 10 + count]
    return [p.reference for p in problems]


def model_and_data() -> tuple:
    model, tokenizer = tiny_model(seed=0)
    assert tokenizer.pad_token_id is not None
    data = [{"input_ids": tokenizer(t + tokenizer.eos_token)["input_ids"][:96]} for t in texts()]
    return model, tokenizer, data


def arguments(out: Path, **overrides) -> TrainingArguments:
    options = {
        "output_dir": str(out),
        "max_steps": 4,
        "per_device_train_batch_size": 2,
        "learning_rate": 3e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "use_cpu": True,
        "report_to": [],
        "disable_tqdm": True,
        "seed": 0,
        "data_seed": 0,
    }
    return TrainingArguments(**(options | overrides))


class Recorder(TrainerCallback):
    """What a reporting integration (wandb, TensorBoard) sees: it is called before the ra3bench callback."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append({**(logs or {}), "step": state.global_step})


def lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "curve.jsonl").read_text().splitlines()]


def test_a_trainer_is_measured_at_0_every_n_and_the_end_and_ra3bench_report_draws_it(tmp_path):
    model, tokenizer, data = model_and_data()
    recorder = Recorder()
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path / "out", include_num_input_tokens_seen=True),
        train_dataset=data,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    callback = Ra3benchCallback(spec(), every=2).attach(trainer)
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    run = tmp_path / "out" / "ra3bench"
    assert callback.out_dir == run

    # an ordinary run folder per evaluation
    for step in (0, 2, 4):
        folder = run / "evals" / f"step-{step:06d}" / "mbppplus"
        for name in ("summary.json", "verdicts.jsonl", "samples.jsonl", "manifest.json"):
            assert (folder / name).is_file(), folder / name
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["training_checkpoint"] == f"hf@step{step}" and manifest["training_step"] == step
        assert manifest["suite"]["suite"] == "mbpp+" and len(manifest["tasks"]) == 2
    assert sorted(p.name for p in (run / "evals").iterdir()) == ["step-000000", "step-000002", "step-000004"]

    # the curve: eval lines in ra3bench's schema, train lines from the Trainer's logs
    curve = lines(run)
    evals = [p for p in curve if p["kind"] == "eval"]
    assert [(p["step"], p["group"]) for p in evals] == [(s, g) for s in (0, 2, 4) for g in ("base", "plus")]
    for point in evals:
        assert set(point) == EVAL_KEYS
        assert point["suite"] == "mbpp+" and point["k"] == 1 and point["n_problems"] == 2
        assert 0 <= point["ci_low"] <= point["pass_at_k"] <= point["ci_high"] <= 1
        assert point["eval_time_s"] > 0
        assert (run / point["run_dir"] / "summary.json").is_file()
        assert point["run_dir"] == f"evals/step-{point['step']:06d}/mbppplus"
    assert evals[0]["wall_time_s"] < 1 and evals[0]["tokens_seen"] == 0
    assert evals[-1]["tokens_seen"] == trainer.state.num_input_tokens_seen > 0
    train = [p for p in curve if p["kind"] == "train"]
    assert [p["step"] for p in train] == [1, 2, 3, 4]
    for point in train:
        assert {"loss", "learning_rate", "grad_norm", "epoch"} <= set(point)
        assert not any(key.startswith("ra3bench/") or key in ("train_loss", "total_flos") for key in point)
    # training time excludes evaluation time
    clock = [p["wall_time_s"] for p in curve]
    assert clock == sorted(clock)
    evaluating = sum({p["step"]: p["eval_time_s"] for p in evals}.values())
    assert evals[-1]["wall_time_s"] <= elapsed - evaluating

    assert (run / "curves.png").stat().st_size > 10_000
    # drawn again at the end: the last step's loss is logged after its evaluation
    assert (run / "curves.png").stat().st_mtime_ns >= (run / "curve.jsonl").stat().st_mtime_ns
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "training" and manifest["trainer"] == "Trainer"
    assert manifest["final_step"] == 4 and manifest["finished"] and manifest["eval_time_s"] > 0
    assert manifest["evaluation"]["every"] == 2 and manifest["evaluation"]["specs"][0]["suite"] == "mbpp+"
    assert manifest["code"]["ra3bench"] and manifest["host"]["cores"]
    assert manifest["hf_train_metrics"]["train_runtime"] > 0

    # pass@k went through Trainer.log: what a reporting integration sees, and the log history
    seen = {entry["step"]: entry[PLUS] for entry in recorder.logs if PLUS in entry}
    assert sorted(seen) == [0, 2, 4]
    assert {e["step"]: e[PLUS] for e in trainer.state.log_history if PLUS in e} == seen
    assert seen[4] == callback.last_metrics[PLUS] == evals[-1]["pass_at_k"]
    assert model.training  # the model is back in train mode
    assert tokenizer.padding_side == "right"  # generation's left padding did not leak into training

    # `ra3bench report` finds the training run and draws its curves
    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "ra3bench", "report", f"tiny={run}", "--out", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = (report / "report.md").read_text()
    assert "## Training curves" in text
    for group in ("base", "plus"):  # one row per series: the run, its 3 evaluations
        assert re.search(rf"\| mbpp\+ {group} pass@1 +\| tiny +\| 3 +\|", text), text
    assert (report / "plots" / "curves.png").stat().st_size > 10_000


def test_sft_trainer_without_attach_measures_two_suites_in_a_borrowed_sandbox_once_at_the_last_step(tmp_path):
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, _ = model_and_data()
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        max_length=96,
    )
    out = tmp_path / "curves"
    sandbox = open_sandbox("local", 2)
    try:
        specs = [spec(limit=1), spec(suite="humaneval+", limit=1)]
        callback = Ra3benchCallback(specs, every=3, at_start=False, out_dir=out, name="sft", sandbox=sandbox)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([{"text": t} for t in texts()]),
            processing_class=tokenizer,
            callbacks=[callback],
        )
        trainer.train()
        # the callback borrowed the sandbox: it still judges after training
        with Session(specs[0], sandbox=sandbox) as session:
            problem = session.problems[0]
            assert session.judge([problem.task_id], [problem.reference])[0].passed
    finally:
        sandbox.close()

    evals = [(p["step"], p["suite"], p["group"]) for p in lines(out) if p["kind"] == "eval"]
    # the last step is on the schedule: measured at on_step_end, not again at on_train_end
    assert evals == [(3, s, g) for s in ("mbpp+", "humaneval+") for g in ("base", "plus")]
    assert sorted(p.name for p in (out / "evals").iterdir()) == ["step-000003"]
    assert sorted(p.name for p in (out / "evals/step-000003").iterdir()) == ["humanevalplus", "mbppplus"]
    manifest = json.loads((out / "evals/step-000003/humanevalplus/manifest.json").read_text())
    assert manifest["training_checkpoint"] == "sft@step3" and manifest["suite"]["suite"] == "humaneval+"
    assert [p["step"] for p in lines(out) if p["kind"] == "train"] == [1, 2, 3]
    # without a trainer to log through, pass@k still reaches the log history (and the console's logs)
    assert [e["step"] for e in trainer.state.log_history if PLUS in e] == [3]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "sft" and manifest["trainer"] is None
    assert set(manifest["evaluation"]["suites"]) == {"mbpp+", "humaneval+"}
    assert not (tmp_path / "sft" / "ra3bench").exists()


def test_grpo_trainer_keeps_its_own_metrics_on_its_own_log_lines(tmp_path):
    """pass@k goes through the base Trainer.log: GRPOTrainer.log would flush its reward averages into it."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = tiny_model(seed=0)
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        max_steps=2,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kwargs: [len(c) / 10 for c in completions],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": f"def f{i}(x):"} for i in range(8)]),
        processing_class=tokenizer,
    )
    Ra3benchCallback(spec(), every=1, train_metric="reward").attach(trainer)
    trainer.train()
    history = trainer.state.log_history
    assert [e["step"] for e in history if PLUS in e] == [0, 1, 2]
    assert [e["step"] for e in history if "reward" in e] == [1, 2]
    assert not any(PLUS in e and "reward" in e for e in history)
    run = tmp_path / "grpo" / "ra3bench"
    train = [p for p in lines(run) if p["kind"] == "train"]
    assert [p["step"] for p in train] == [1, 2] and all("reward" in p for p in train)
    assert (run / "curves.png").is_file()


def test_resuming_from_a_checkpoint_keeps_the_curve_up_to_it_and_measures_each_step_once(tmp_path):
    out = tmp_path / "out"
    run = out / "ra3bench"

    def train(resume: str | None = None) -> Trainer:
        model, tokenizer, data = model_and_data()
        trainer = Trainer(
            model=model,
            args=arguments(out, save_strategy="steps", save_steps=2),
            train_dataset=data,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
            processing_class=tokenizer,
        )
        Ra3benchCallback(spec(), every=2).attach(trainer)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    train()
    first_step4 = json.loads((run / "evals/step-000004/mbppplus/manifest.json").read_text())["run_id"]
    # the run dies during its evaluation at step 2, after the checkpoint there: that evaluation is not in the curve
    kept = [p for p in lines(run) if not (p["kind"] == "eval" and p["step"] >= 2) and p["step"] <= 2]
    (run / "curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in kept))
    trainer = train(resume=str(out / "checkpoint-2"))
    assert trainer.state.global_step == 4

    curve = lines(run)
    evals = [(p["step"], p["group"]) for p in curve if p["kind"] == "eval"]
    assert evals == [(s, g) for s in (0, 2, 4) for g in ("base", "plus")]  # step 2 on resuming, each once
    assert [p["step"] for p in curve if p["kind"] == "train"] == [1, 2, 3, 4]
    clock = [p["wall_time_s"] for p in curve]
    assert clock == sorted(clock)  # the resumed run's training time goes on from the checkpoint's
    # the evaluation at step 4 of the first run measured weights the resumed run does not have: measured again
    assert json.loads((run / "evals/step-000004/mbppplus/manifest.json").read_text())["run_id"] != first_step4
    manifest = json.loads((run / "manifest.json").read_text())
    assert [r["step"] for r in manifest["resumes"]] == [2] and manifest["final_step"] == 4


def test_measuring_changes_nothing_about_what_the_model_learns(tmp_path):
    """Sampled generation reseeds torch and pads on the left; the callback puts both back, so the
    training data order, padding and losses are those of a run without it."""

    def losses(callbacks: list, out: Path) -> list[float]:
        model, tokenizer, data = model_and_data()
        for module in model.modules():  # attention dropout: every training step draws from torch's RNG
            if hasattr(module, "attention_dropout"):
                module.attention_dropout = 0.2
        trainer = Trainer(
            model=model,
            args=arguments(out, max_steps=3),
            train_dataset=data,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
            processing_class=tokenizer,
        )
        for callback in callbacks:
            callback.attach(trainer)
        trainer.train()
        return [e["loss"] for e in trainer.state.log_history if "loss" in e]

    measured = losses([Ra3benchCallback(spec(temperature=0.8, n=2), every=1)], tmp_path / "measured")
    assert len(lines(tmp_path / "measured" / "ra3bench")) > 3
    assert measured == losses([], tmp_path / "plain")


def test_bad_arguments_fail_at_construction():
    from ra3bench.errors import UsageError

    with pytest.raises(UsageError, match="every"):
        Ra3benchCallback(spec(), every=-1)
    with pytest.raises(UsageError, match="one EvalSpec per suite"):
        Ra3benchCallback([spec(), spec(k=[1], n=2)], every=2)
    with pytest.raises(UsageError, match="EvalSpec"):
        Ra3benchCallback("mbpp+", every=2)
