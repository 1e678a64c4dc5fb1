"""ra3bench.integrations.hf: a real transformers Trainer (and TRL's SFTTrainer) on the tiny random model,
measured by the callback at step 0, every N steps and the last step; the folder it writes is a training
run that `ra3bench report` draws; measuring changes nothing about what the model learns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

from ra3bench import EvalSpec, get_suite
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
    options = {"limit": 2, "n": 1, "k": [1], "max_new_tokens": 16, "sandbox": "local", "workers": 2}
    return EvalSpec(suite="mbpp+", **(options | overrides))


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
    trainer.train()
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
    # training time excludes evaluation time: it never jumps by an evaluation's length
    clock = [p["wall_time_s"] for p in curve]
    assert clock == sorted(clock)
    assert evals[-1]["wall_time_s"] < sum(p["eval_time_s"] for p in evals)

    assert (run / "curves.png").stat().st_size > 10_000
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


def test_sft_trainer_without_attach_evaluates_the_last_step_once(tmp_path):
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
    callback = Ra3benchCallback(spec(), every=3, at_start=False, out_dir=out, name="sft")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{"text": t} for t in texts()]),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    evals = [p for p in lines(out) if p["kind"] == "eval"]
    assert [(p["step"], p["group"]) for p in evals] == [(3, "base"), (3, "plus")]  # on_step_end, not again at the end
    assert sorted(p.name for p in (out / "evals").iterdir()) == ["step-000003"]
    assert (
        json.loads((out / "evals/step-000003/mbppplus/manifest.json").read_text())["training_checkpoint"] == "sft@step3"
    )
    assert [p["step"] for p in lines(out) if p["kind"] == "train"] == [1, 2, 3]
    # without a trainer to log through, pass@k still reaches the log history (and the console's logs)
    assert [e["step"] for e in trainer.state.log_history if PLUS in e] == [3]
    assert json.loads((out / "manifest.json").read_text())["name"] == "sft"
    assert not (tmp_path / "sft" / "ra3bench").exists()


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
