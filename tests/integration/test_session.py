"""ra3bench.Session, the one evaluation API: judging programs, evaluating models, sharing a sandbox."""

from __future__ import annotations

import json

import pytest
from faulty_sandbox import FaultySandbox

from ra3bench import EvalSpec, Session, Status, Summary, UsageError, Verdict

SUMMARY_KEYS = [  # summary.json as `ra3bench run` has always written it (report, compare and curves read it)
    "suite",
    "suite_version",
    "data_sha256",
    "n_problems",
    "n_suite_problems",
    "n_samples",
    "samples_per_problem",
    "pass_at_k",
    "pass_at_k_ci95",
    "status_counts",
    "group_status_counts",
    "flaky",
    "unverifiable",
    "execution",
]
RIGHT = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
)
WRONG = "def has_close_elements(numbers, threshold):\n    return False\n"


@pytest.fixture(scope="module")
def local():
    from ra3bench import open_sandbox

    sandbox = open_sandbox("local", workers=2)
    yield sandbox
    sandbox.close()


def spec(**options) -> EvalSpec:
    return EvalSpec(suite="humaneval+", tasks=["HumanEval/0", "HumanEval/2"], sandbox="local", workers=2, **options)


def test_judge_gives_typed_verdicts_in_order_and_runs_each_program_once(local, monkeypatch, tmp_path):
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path))
    with Session(spec(), sandbox=local) as session:
        verdicts = session.judge(["HumanEval/0"] * 4, [RIGHT, WRONG, RIGHT, "import os\nos._exit(0)\n"])
        assert [v.status for v in verdicts] == [Status.PASS, Status.FAIL, Status.PASS, Status.ERROR]
        assert [v.sample_index for v in verdicts] == [0, 1, 2, 3]
        assert [v.reward() for v in verdicts] == [1.0, 0.0, 1.0, 0.0]
        assert isinstance(verdicts[0], Verdict) and set(verdicts[0].groups) == {"base", "plus"}
        assert session.counters == {"executed": 3, "duplicates": 1}
        again = session.judge(["HumanEval/0", "HumanEval/0"], [WRONG, RIGHT])
        assert [v.status for v in again] == [Status.FAIL, Status.PASS]
        assert [v.sample_index for v in again] == [0, 1] and session.counters["from_verdict_cache"] == 2
        assert again[0].groups["base"] == verdicts[1].groups["base"]  # the cached verdict, typed back
    assert not getattr(local, "closed", False)  # a borrowed sandbox stays open


def test_judge_refuses_what_it_cannot_judge(local):
    with Session(spec(), sandbox=local) as session:
        with pytest.raises(UsageError, match=r"unknown task id 'HumanEval/1'.*ids look like 'HumanEval/0'"):
            session.judge(["HumanEval/1"], [RIGHT])
        with pytest.raises(ValueError, match="2 task ids but 1 programs"):
            session.judge(["HumanEval/0", "HumanEval/2"], [RIGHT])


def test_a_sandbox_error_has_no_reward_and_is_never_cached(local, monkeypatch, tmp_path):
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path))
    faulty = FaultySandbox(local, owns_inner=False)
    with Session(spec(), sandbox=faulty) as session:
        first = session.judge(["HumanEval/0", "HumanEval/0"], [RIGHT + "# FAULT\n", RIGHT])
        assert [v.status for v in first] == [Status.SANDBOX_ERROR, Status.PASS]
        assert first[0].sandbox_error and first[0].reward() is None and first[0].reward("fraction") is None
        faults = faulty.faulted
        assert faults == 6  # base and plus: a run and two retries each
        session.judge(["HumanEval/0"], [RIGHT + "# FAULT\n"])
        assert faulty.faulted == 2 * faults  # run again: a fault is not a verdict
    assert not faulty.closed


def test_fail_fast_off_gives_pass_fractions(local):
    with Session(spec(fail_fast=False), sandbox=local) as session:
        (verdict,) = session.judge(["HumanEval/0"], [WRONG])
    assert verdict.status is Status.FAIL and 0 < verdict.reward("fraction") < 1
    assert verdict.pass_fraction == verdict.reward("fraction")


def test_evaluate_writes_a_run_folder_and_returns_a_typed_summary(tmp_path):
    with Session(spec()) as session:
        summary = session.evaluate("reference", tmp_path / "run", manifest={"note": "from a test"})
    assert isinstance(summary, Summary) and summary.pass_at(1) == 1.0 and summary.pass_at(1, "base") == 1.0
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(written) == SUMMARY_KEYS and written == summary.to_json()
    assert Summary.from_json(written, run_dir=summary.run_dir, eval_time_s=summary.eval_time_s) == summary
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["note"] == "from a test" and manifest["spec"]["tasks"] == ["HumanEval/0", "HumanEval/2"]
    assert manifest["settings"]["limits"]["memory_mb"] == 4096 and manifest["n"] == 1
    assert summary.run_dir == str(tmp_path / "run") and summary.eval_time_s > 0
    assert "| plus" in summary.table()


def test_evaluate_an_in_memory_model_and_give_it_back_in_train_mode(tmp_path, local):
    from ra3bench.tiny import tiny_model

    model, tokenizer = tiny_model(seed=0)
    model.train()
    with Session(spec(max_new_tokens=8), sandbox=local) as session:
        summary = session.evaluate(model, tmp_path / "run", tokenizer=tokenizer, label="tiny@step0")
        with pytest.raises(UsageError, match="needs its tokenizer"):
            session.evaluate(model, tmp_path / "other")
    assert model.training and summary.n_samples == 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["model"] == "tiny@step0"


def test_a_samples_file_covers_only_its_tasks(tmp_path, local):
    from ra3bench.backends.replay import ReplayBackend

    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "solution": RIGHT}) + "\n")
    with Session(spec(), sandbox=local) as session:
        summary = session.evaluate(ReplayBackend(samples), tmp_path / "run")
    assert (summary.n_problems, summary.n_samples, summary.status_counts) == (1, 1, {"pass": 1})


def test_a_spec_is_checked_before_anything_starts():
    with pytest.raises(UsageError, match="unknown suite"):
        Session(EvalSpec(suite="humaneval-plus"))
    with pytest.raises(UsageError, match="unknown task id"):
        Session(EvalSpec(suite="humaneval+", tasks=["HumanEval/999"]))
    with pytest.raises(ValueError, match="unknown selection filter 'month'"):
        EvalSpec(suite="livecodebench", select={"month": "2024-08"})
