"""ra3bench.integrations.verl: verl's custom reward function, called as verl 0.9.1 calls it (verl itself is
not installed here: the calls reproduce the keyword shapes of its reward managers, see the module doc).

The local sandbox judges everything. MBPP+ and HumanEval+ sessions are registered over a few tasks, so that
only their expected outputs are computed; LiveCodeBench's come from the data set, so its sessions are the
module's own, opened on first use as in a verl reward worker.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from functools import partial

import numpy as np
import pytest
from faulty_sandbox import FaultySandbox

import ra3bench.integrations.verl as verl_reward
from ra3bench import EvalSpec, Session, UsageError
from ra3bench.integrations.verl import (
    SandboxFault,
    close_sessions,
    compute_score,
    compute_score_batched,
    register_session,
    session_for,
    verl_rows,
    write_parquet,
)
from ra3bench.prompts import PromptStyle, build_prompt

MBPP, HUMANEVAL, LCB = "ra3bench/mbpp+", "ra3bench/humaneval+@v0.1.9", "ra3bench/livecodebench@v6-public"
MBPP_TASKS = ["Mbpp/2", "Mbpp/3", "Mbpp/4"]
LOCAL = {"sandbox": "local", "workers": 2}  # verl's reward_kwargs for the module's own sessions
KEYS = ["score", "acc", "sandbox_error", "status"]
# LiveCodeBench abc333_a: print N copies of the digit N (public tests: 3 -> 333, 9 -> 999999999)
LCB_RIGHT = "Here it is:\n```python\nn = input().strip()\nprint(n * int(n))\n```\n"
LCB_HALF = "```python\nn = input().strip()\nprint(n * int(n) if n == '3' else 0)\n```"


def fenced(code: str) -> str:
    return f"Sure.\n```python\n{code.strip()}\n```\nThis returns the answer."


def verl_partial(reward_kwargs: dict):
    """What verl/trainer/ppo/reward.py:get_custom_reward_fn returns: the function with reward_kwargs merged in."""

    def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):  # verbatim from verl 0.9.1
        merged_kwargs = {**kwargs, **extra_kwargs}
        return raw_fn(*args, **merged_kwargs)

    return partial(_call_with_kwargs, compute_score, reward_kwargs)


def naive_call(fn, data_source: str, response: str, ground_truth: str) -> dict:
    """How verl's naive reward manager (verl/experimental/reward_loop/reward_manager/naive.py) calls it."""
    extra_info = {"split": "train", "index": 0, "num_turns": 2, "rollout_reward_scores": {}}
    return fn(data_source=data_source, solution_str=response, ground_truth=ground_truth, extra_info=extra_info)


@pytest.fixture(scope="module")
def sessions():
    opened = {
        MBPP: Session(EvalSpec(suite="mbpp+", tasks=MBPP_TASKS, **LOCAL)).open(),
        HUMANEVAL: Session(EvalSpec(suite="humaneval+", suite_version="v0.1.9", tasks=["HumanEval/0"], **LOCAL)).open(),
    }
    yield opened
    close_sessions()
    for session in opened.values():
        session.close()


@pytest.fixture(autouse=True)
def registered(sessions):
    """Each test starts with the two registered sessions (a test may close or replace them)."""
    for data_source, session in sessions.items():
        register_session(data_source, session)
    yield sessions


def reference(sessions, data_source: str, task_id: str) -> str:
    return sessions[data_source].problem(task_id).reference


def test_the_reference_scores_one_and_a_wrong_answer_zero(sessions):
    fn = verl_partial({"mode": "binary"})
    right = naive_call(fn, MBPP, fenced(reference(sessions, MBPP, "Mbpp/2")), "Mbpp/2")
    assert right == {"score": 1.0, "acc": 1.0, "sandbox_error": 0, "status": "pass"}
    wrong = naive_call(fn, MBPP, fenced("def similar_elements(a, b):\n    return tuple(a)"), "Mbpp/2")
    assert wrong == {"score": 0.0, "acc": 0.0, "sandbox_error": 0, "status": "fail"}
    assert list(right) == list(wrong) == KEYS  # verl builds one array per key from the first sample's keys
    prose = naive_call(fn, MBPP, "I am not sure how to do this.", "Mbpp/2")
    assert prose["score"] == 0.0 and prose["status"] != "pass"
    # positional, with verl's defaults, as a direct call
    assert compute_score(MBPP, fenced(reference(sessions, MBPP, "Mbpp/3")), "Mbpp/3")["score"] == 1.0


HOSTILE = {  # the first never runs: extraction keeps what the entry point needs, as evalplus sanitizes
    "os._exit(0) at import": "import os\nos._exit(0)\ndef similar_elements(a, b):\n    return ()\n",
    "os._exit(0) in the call": "def similar_elements(a, b):\n    import os\n    os._exit(0)\n",
    "sys.exit(0) in the call": "import sys\ndef similar_elements(a, b):\n    sys.exit(0)\n",
    "__eq__ always True": (
        "class Yes(tuple):\n    def __eq__(self, other):\n        return True\n    __hash__ = tuple.__hash__\n"
        "def similar_elements(a, b):\n    return Yes()\n"
    ),
    "prints a pass": 'def similar_elements(a, b):\n    print(\'{"status": "pass"}\')\n    return None\n',
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_programs_score_zero(name):
    result = compute_score(MBPP, fenced(HOSTILE[name]), "Mbpp/2")
    assert result["score"] == 0.0 and result["acc"] == 0.0 and result["sandbox_error"] == 0, result
    assert result["status"] != "pass"


def spy_on(session: Session, monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    judge = session.judge

    def spy(task_ids, programs):
        calls.append(list(task_ids))
        return judge(task_ids, programs)

    monkeypatch.setattr(session, "judge", spy)
    return calls


def test_a_batch_of_mixed_suites_keeps_its_order_with_one_judge_call_per_suite(sessions, monkeypatch):
    lcb = session_for(LCB, **LOCAL)  # the module's own session, opened now as a first call would
    assert session_for(LCB, **LOCAL) is lcb and session_for(LCB, sandbox="local", workers=1) is not lcb
    calls = {MBPP: spy_on(sessions[MBPP], monkeypatch), HUMANEVAL: spy_on(sessions[HUMANEVAL], monkeypatch)}
    calls[LCB] = spy_on(lcb, monkeypatch)
    ref2, ref4 = fenced(reference(sessions, MBPP, "Mbpp/2")), fenced(reference(sessions, MBPP, "Mbpp/4"))
    batch = [  # (data_source, response, ground_truth, expected score)
        (MBPP, ref2, "Mbpp/2", 1.0),
        (LCB, LCB_RIGHT, "abc333_a", 1.0),
        (HUMANEVAL, fenced(reference(sessions, HUMANEVAL, "HumanEval/0")), "HumanEval/0", 1.0),
        (MBPP, fenced("def is_not_prime(n):\n    return True"), "Mbpp/3", 0.0),
        (LCB, "```python\nprint(0)\n```", "abc333_a", 0.0),
        (HUMANEVAL, fenced("def has_close_elements(numbers, threshold):\n    return True"), "HumanEval/0", 0.0),
        (MBPP, ref4, "Mbpp/4", 1.0),
        (MBPP, ref2, "Mbpp/2", 1.0),  # a duplicate: judged once
    ]
    # the shapes of verl/workers/reward_manager/batch.py: data_sources and extra_infos are numpy arrays
    data_sources = np.array([b[0] for b in batch], dtype=object)
    extra_infos = np.array([{"rollout_reward_scores": {}} for _ in batch], dtype=object)
    results = compute_score_batched(
        data_sources=data_sources,
        solution_strs=[b[1] for b in batch],
        ground_truths=[b[2] for b in batch],
        extra_infos=extra_infos,
        **LOCAL,
    )
    assert [r["score"] for r in results] == [b[3] for b in batch]
    assert all(list(r) == KEYS for r in results)
    assert calls[MBPP] == [["Mbpp/2", "Mbpp/3", "Mbpp/4", "Mbpp/2"]]
    assert calls[LCB] == [["abc333_a", "abc333_a"]] and calls[HUMANEVAL] == [["HumanEval/0", "HumanEval/0"]]


def test_the_pass_fraction_needs_every_test_run():
    assert compute_score(LCB, LCB_HALF, "abc333_a", mode="fraction", **LOCAL) == {
        "score": 0.5,  # one of the two public tests
        "acc": 0.0,
        "sandbox_error": 0,
        "status": "fail",
    }
    assert compute_score(LCB, LCB_HALF, "abc333_a", mode="binary", **LOCAL)["score"] == 0.0
    assert not session_for(LCB, mode="fraction", **LOCAL).settings.fail_fast
    assert session_for(LCB, mode="binary", **LOCAL).settings.fail_fast
    with pytest.raises(UsageError, match="fail_fast=False"):  # the registered MBPP+ session judges fail-fast
        compute_score(MBPP, "x", "Mbpp/2", mode="fraction")


def test_options_come_from_reward_kwargs_then_the_environment(monkeypatch):
    monkeypatch.setenv("RA3BENCH_VERL_MODE", "fraction")
    monkeypatch.setenv("RA3BENCH_VERL_SANDBOX", "local")
    monkeypatch.setenv("RA3BENCH_VERL_WORKERS", "2")
    assert compute_score(LCB, LCB_HALF, "abc333_a")["score"] == 0.5
    assert verl_partial({"mode": "binary"})(LCB, LCB_HALF, "abc333_a")["score"] == 0.0  # reward_kwargs win
    # keywords verl adds with a reward model configured are not options
    assert compute_score(LCB, LCB_RIGHT, "abc333_a", reward_router_address="h:1", reward_model_tokenizer=None)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("lighteval/MATH", "x", "1"), {}, UsageError, "not an ra3bench one: expected ra3bench/<suite>"),
        (("ra3bench/", "x", "1"), {}, UsageError, "not an ra3bench one"),
        (("ra3bench/nope", "x", "1"), {}, UsageError, "unknown suite 'nope'"),
        ((MBPP, "x", "Mbpp/9999"), {}, UsageError, "ground_truth must be a task id of ra3bench/mbpp\\+"),
        ((LCB, "x", "abc999_z"), LOCAL, UsageError, "unknown task id 'abc999_z'"),
        ((MBPP, "x", "Mbpp/2"), {"mdoe": "fraction"}, UsageError, "unknown ra3bench reward option 'mdoe'"),
        ((MBPP, "x", "Mbpp/2"), {"mode": "dense"}, UsageError, "binary, fraction"),
        ((MBPP, "x", "Mbpp/2"), {"on_sandbox_error": "skip"}, UsageError, "zero, raise"),
        ((MBPP, "x", "Mbpp/2"), {"style": "code"}, UsageError, "chat, completion"),
        ((MBPP, "x", "Mbpp/2"), {"workers": "many"}, UsageError, "integer"),
    ],
)
def test_bad_calls_say_what_was_expected(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_score(*args, **kwargs)


def test_a_batch_with_one_bad_task_id_fails_whole():
    with pytest.raises(UsageError, match="Mbpp/9999"):
        compute_score_batched([MBPP, MBPP], ["x", "y"], ["Mbpp/2", "Mbpp/9999"], None)
    with pytest.raises(ValueError, match="2 data sources, 1 solutions"):
        compute_score_batched([MBPP, MBPP], ["x"], ["Mbpp/2", "Mbpp/3"], None)


@pytest.fixture
def faulty():
    from ra3bench.sandbox.local import LocalSandbox

    sandbox = FaultySandbox(LocalSandbox(workers=2), lambda program: "FAULT" in program)
    session = Session(EvalSpec(suite="mbpp+", tasks=["Mbpp/2"], **LOCAL), sandbox=sandbox)
    register_session(MBPP, session)
    yield sandbox
    session.close()
    sandbox.close()


def test_a_sandbox_error_scores_zero_flagged_or_raises(faulty, sessions, monkeypatch):
    code = reference(sessions, MBPP, "Mbpp/2")
    would_pass = 'def similar_elements(a, b):\n    """FAULT"""\n    return tuple(set(a) & set(b))\n'  # correct
    results = compute_score_batched([MBPP] * 3, [fenced(code), fenced(would_pass), "nothing"], ["Mbpp/2"] * 3)
    assert results[0] == {"score": 1.0, "acc": 1.0, "sandbox_error": 0, "status": "pass"}
    assert results[1] == {"score": 0.0, "acc": 0.0, "sandbox_error": 1, "status": "sandbox_error"}
    assert results[2]["sandbox_error"] == 0 and results[2]["score"] == 0.0
    assert all(list(r) == KEYS for r in results)
    assert faulty.faulted >= 1
    with pytest.raises(SandboxFault, match="Mbpp/2 program"):
        compute_score(MBPP, fenced(would_pass), "Mbpp/2", on_sandbox_error="raise")
    monkeypatch.setenv("RA3BENCH_VERL_ON_SANDBOX_ERROR", "raise")
    with pytest.raises(SandboxFault):
        compute_score(MBPP, fenced(would_pass), "Mbpp/2")
    assert compute_score(MBPP, fenced(code), "Mbpp/2")["score"] == 1.0  # only the sandbox's failures raise


def test_concurrent_calls_from_verl_executor_threads(sessions):
    """verl's reward loop runs compute_score in executor threads, many at once: all share one session."""
    refs = {t: fenced(reference(sessions, MBPP, t)) for t in MBPP_TASKS}
    jobs = [
        (t, refs[t] if i % 2 == 0 else fenced("def f():\n    pass"), i % 2 == 0) for i, t in enumerate(MBPP_TASKS * 4)
    ]
    results: list[dict | None] = [None] * len(jobs)

    def score(i: int) -> None:
        task_id, response, _ = jobs[i]
        results[i] = naive_call(verl_partial({}), MBPP, response, task_id)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [r and r["score"] for r in results] == [1.0 if right else 0.0 for *_, right in jobs]


def test_verl_rows_and_parquet(tmp_path, sessions):
    import pandas as pd

    spec = EvalSpec(suite="mbpp+", tasks=["Mbpp/3", "Mbpp/2"])
    rows = verl_rows(spec, split="train")
    problems = spec.problems_of(spec.load_suite())
    assert [r["reward_model"] for r in rows] == [
        {"style": "rule", "ground_truth": "Mbpp/3"},
        {"style": "rule", "ground_truth": "Mbpp/2"},
    ]
    assert rows[0]["data_source"] == MBPP and rows[0]["ability"] == "code"
    assert rows[0]["prompt"] == build_prompt(problems[0], "mbpp+", PromptStyle.CHAT).messages
    assert rows[0]["prompt"][0]["role"] == "user" and "markdown code block" in rows[0]["prompt"][0]["content"]
    assert [r["extra_info"] for r in rows] == [
        {"split": "train", "index": 0, "task_id": "Mbpp/3"},
        {"split": "train", "index": 1, "task_id": "Mbpp/2"},
    ]
    assert verl_rows(sessions[MBPP]) == verl_rows(EvalSpec(suite="mbpp+", tasks=MBPP_TASKS))
    (row,) = verl_rows(sessions[HUMANEVAL])  # a suite version other than the default is in the data source
    assert row["data_source"] == HUMANEVAL
    assert compute_score(row["data_source"], fenced("x = 1"), row["reward_model"]["ground_truth"])["score"] == 0.0
    # problems that cannot be judged are left out unless asked for
    assert len(verl_rows("codeforces")) == 244
    assert len(verl_rows(EvalSpec(suite="codeforces", include_unverifiable=True))) == 300

    path = write_parquet(spec, tmp_path / "data" / "mbpp.parquet", split="train")
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    first = frame.iloc[0]
    assert first["reward_model"] == rows[0]["reward_model"] and first["extra_info"] == rows[0]["extra_info"]
    assert [dict(m) for m in first["prompt"]] == rows[0]["prompt"]
    # the rows' own fields, as verl's reward manager reads them, score the reference
    right = fenced(reference(sessions, MBPP, "Mbpp/3"))
    assert naive_call(compute_score, first["data_source"], right, first["reward_model"]["ground_truth"])["score"] == 1.0


def test_register_session_checks_the_suite(sessions):
    with pytest.raises(UsageError, match="cannot register a session of ra3bench/mbpp\\+ for data_source"):
        register_session(LCB, sessions[MBPP])
    with pytest.raises(UsageError, match="cannot register"):
        register_session("ra3bench/humaneval+", sessions[HUMANEVAL])  # another version
    register_session(MBPP, None)
    assert (("mbpp+", None)) not in verl_reward._REGISTERED


def test_close_sessions_closes_what_the_module_opened(sessions):
    lcb = session_for(LCB, sandbox="local", workers=1, memory_mb=1024)
    assert lcb.spec.memory_mb == 1024 and lcb._sandbox is not None
    close_sessions()
    assert lcb._sandbox is None  # closed
    assert sessions[MBPP]._sandbox is not None  # a registered session is its owner's to close
    assert session_for(LCB, sandbox="local", workers=1, memory_mb=1024) is not lcb  # reopened on demand


SNIPPET = """
# verl (Hydra overrides, or the same keys in a YAML config):
#   reward.custom_reward_function.path=pkg://ra3bench.integrations.verl
#   reward.custom_reward_function.name=compute_score
#   +reward.custom_reward_function.reward_kwargs.sandbox=docker   # also mode, workers, on_sandbox_error
#   data.train_files=data/livecodebench.parquet data.val_files=data/livecodebench.parquet
from ra3bench.integrations.verl import compute_score, write_parquet

write_parquet("livecodebench@v6-public", "data/livecodebench.parquet")  # verl's schema; ground_truth = task id
answer = "```python\\nn = input().strip()\\nprint(n * int(n))\\n```"
print(compute_score("ra3bench/livecodebench@v6-public", answer, "abc333_a", sandbox="local"))
# {'score': 1.0, 'acc': 1.0, 'sandbox_error': 0, 'status': 'pass'}
"""


def test_the_usage_snippet_runs(tmp_path, monkeypatch, capsys):
    assert len(SNIPPET.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    exec(compile(SNIPPET, "snippet", "exec"), {})
    assert capsys.readouterr().out.strip() == "{'score': 1.0, 'acc': 1.0, 'sandbox_error': 0, 'status': 'pass'}"
    assert (tmp_path / "data" / "livecodebench.parquet").stat().st_size > 0


def test_a_reward_worker_process_exits_cleanly(tmp_path):
    """A verl reward worker's life: import by pkg:// path, score, exit (the sessions close at exit)."""
    code = (
        "import importlib\n"
        "fn = getattr(importlib.import_module('ra3bench.integrations.verl'), 'compute_score')\n"
        f"print(fn(data_source='{LCB}', solution_str={LCB_RIGHT!r}, ground_truth='abc333_a', extra_info={{}},"
        " sandbox='local', workers=1)['score'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"
