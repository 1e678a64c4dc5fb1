"""Everything a job's child sends is a claim: the server must check it and never fault on it.

The program owns its whole child process, harness code included, so it can write any bytes to
the frame pipe (the only fd >= 3 it holds), patch the encoder or the harness's own classes,
send itself signals and exit with any code. Each test below does one of those through the real
server and asserts that the outcome is the program's failure (never ``sandbox_error``, never a
pass it did not earn), decided from what the server observed, and that the worker serves the
next job. Run against the local sandbox (with and without bubblewrap) and, marked ``docker``,
the docker sandbox, where jobs share the harness's uid and can also kill its fork server.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_local_sandbox import FAST, job, make_sandbox, statuses, values

from ra3bench.sandbox.base import CallStatus, Job, JobResult, Limits
from ra3bench.sandbox.harness import frames, jobs, protocol
from ra3bench.sandbox.harness.protocol import Opaque
from ra3bench.sandbox.harness.server import GRACE_S, exit_verdict

# Finds the frame pipe (the only FIFO among the child's fds >= 3) and writes raw bytes to it.
PIPE = (
    "import os, stat\n"
    "def _pipe():\n"
    "    for fd in range(3, 1024):\n"
    "        try:\n"
    "            if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
    "                return fd\n"
    "        except OSError:\n"
    "            pass\n"
    "def _raw(data):\n"
    "    os.write(_pipe(), data)\n"
    "def _frame(body):\n"
    "    _raw(len(body).to_bytes(4, 'big') + body)\n"
)


@pytest.fixture(scope="module", params=["bwrap", "plain", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "docker":
        from ra3bench.sandbox.docker import DockerSandbox

        sb: Any = DockerSandbox(workers=1, image=request.getfixturevalue("docker_image"))
    else:
        sb = make_sandbox(request.param)
    sb.mode = request.param
    try:
        yield sb
    finally:
        sb.close()


def program_failed(result: JobResult) -> None:
    """Not a pass, not an infrastructure fault: the program's own failure."""
    assert result.sandbox_error == "", result.sandbox_error
    items = [result.load, *result.calls] + ([result.script] if result.script else [])
    assert any(c.status not in (CallStatus.OK, CallStatus.MISSING) for c in items), result


def next_job_works(sandbox: Any) -> None:
    result = sandbox.run(job("def f():\n    return 'alive'\n", [[]]))
    assert result.sandbox_error == "" and values(result) == ["alive"], result


# ---- malformed frames, written straight to the pipe

CALL = b'{"k":"call","i":0,'
MALFORMED_CALL_FRAMES = {
    "unhashable status": CALL + b'"status":[],"time_s":0,"error":""}',
    "dict status": CALL + b'"status":{},"time_s":0}',
    "invalid utf-8": b'\xff\xfe{"k":"call"}',
    "nesting deeper than the parser goes": b"[" * 100_000 + b"]" * 100_000,
    "nesting deeper than a value may": CALL + b'"status":"ok","value":' + b"[" * 400 + b"]" * 400 + b"}",
    "a 5,000-digit integer": CALL + b'"status":"ok","value":1' + b"0" * 5000 + b"}",
    "an infinite float": CALL + b'"status":"ok","time_s":0,"error":"","value":[1e999]}',
    "a NaN literal": CALL + b'"status":"ok","value":NaN}',
    "not an object": b"[1, 2]",
    "the wrong call": b'{"k":"call","i":7,"status":"ok","value":1}',
    "a float index": b'{"k":"call","i":0.0,"status":"ok","value":1}',
    "a huge index": b'{"k":"call","i":1' + b"0" * 400 + b',"status":"ok","value":1}',
    "syntax for a call": CALL + b'"status":"syntax"}',
    "an error that is not a string": CALL + b'"status":"error","error":{"a":[1]}}',
    "a kind that is not a string": b'{"k":{"x":1}}',
    "ok without a value": CALL + b'"status":"ok"}',
    "an empty frame": b"",
}


@pytest.mark.parametrize("name", list(MALFORMED_CALL_FRAMES))
def test_a_malformed_call_frame_is_the_programs_failure(sandbox: Any, name: str) -> None:
    body = MALFORMED_CALL_FRAMES[name]
    result = sandbox.run(job(PIPE + f"def f():\n    _frame({body!r})\n    return 1\n", [[]]))
    program_failed(result)
    assert result.calls[0].status is CallStatus.ERROR
    assert "malformed result" in result.calls[0].error, result.calls[0].error
    next_job_works(sandbox)


def test_an_oversized_frame_header_and_garbage_at_load_are_the_programs_failure(sandbox: Any) -> None:
    result = sandbox.run(job(PIPE + "_raw(b'\\xff\\xff\\xff\\xff')\ndef f():\n    return 1\n", [[]]))
    program_failed(result)
    assert result.load.status is CallStatus.ERROR and "malformed result" in result.load.error
    result = sandbox.run(job(PIPE + '_frame(b\'{"k":"load","status":[]}\')\ndef f():\n    return 1\n', [[]]))
    program_failed(result)
    assert "malformed result" in result.load.error
    next_job_works(sandbox)


def test_a_forged_script_frame_with_bad_records_keeps_only_well_formed_ones(sandbox: Any) -> None:
    records = (
        b'[{"args":[],"status":[]},{"args":[1],"status":"ok","value":[1e999]},5,{"args":[2],"status":"ok","value":2}]'
    )
    forged = b'{"k":"script","status":"ok","time_s":0,"error":"","recorded":' + records + b"}"
    program = PIPE + f"def f(x):\n    _frame({forged!r})\n    return x\n"
    result = sandbox.run(Job(program=program, entry_point="f", script="f(1)", record=True, limits=FAST))
    assert result.sandbox_error == ""
    assert [(r.args, r.value) for r in result.recorded] == [([2], 2)]
    bad = forged.replace(records, b'{"not": "a list"}')
    result = sandbox.run(Job(program=PIPE + f"def f(x):\n    _frame({bad!r})\n", entry_point="f", script="f(1)"))
    program_failed(result)
    assert result.script is not None and "malformed result" in result.script.error
    next_job_works(sandbox)


def test_a_huge_claimed_time_cannot_break_the_answer(sandbox: Any) -> None:
    forged = CALL + b'"status":"ok","time_s":1' + b"0" * 400 + b',"error":"","value":1}'
    result = sandbox.run(job(PIPE + f"def f():\n    _frame({forged!r})\n    return 2\n", [[]]))
    assert result.sandbox_error == ""
    assert 0 <= result.calls[0].time_s <= 1.0 + GRACE_S  # forging a frame gains nothing returning 1 would not
    next_job_works(sandbox)


# ---- signals and exit codes: the server's observation decides


SELF_SIGXCPU = "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n"
EXIT_3 = "import os\nos._exit(3)\n"


@pytest.mark.parametrize("where", ["load", "call"])
@pytest.mark.parametrize("how", ["sigxcpu", "exit3"])
def test_a_self_sent_sigxcpu_or_exit_3_is_an_error_not_a_timeout_or_memory(sandbox: Any, where: str, how: str) -> None:
    code = SELF_SIGXCPU if how == "sigxcpu" else EXIT_3
    if where == "load":
        program = code + "def f():\n    return 1\n"
    else:
        program = "def f():\n" + "".join(f"    {line}\n" for line in code.splitlines()) + "    return 1\n"
    result = sandbox.run(job(program, [[]]))
    program_failed(result)
    item = result.load if where == "load" else result.calls[0]
    assert item.status is CallStatus.ERROR, item
    assert ("SIGXCPU before its CPU limit" if how == "sigxcpu" else "exit code 3") in item.error
    next_job_works(sandbox)


@pytest.mark.parametrize("code", [SELF_SIGXCPU, EXIT_3])
def test_a_stdin_program_that_fakes_a_cpu_or_memory_death_gets_an_error(sandbox: Any, code: str) -> None:
    result = sandbox.run(Job(program=code, calls=[["1\n"]], time_limits_s=[2.0], stdin=True, limits=FAST))
    assert result.sandbox_error == "" and statuses(result) == ["error"], result.calls[0]


STDIN_STATUS_FORGERIES = {
    "garbage, then the answer": "_raw(b'[' * 100000)\nprint(1)\n",
    "syntax for a test": '_raw(b\'{"status": "syntax"}\')\nos._exit(0)\n',
    "ok, then a failing exit": '_raw(b\'{"status": "ok"}\')\nos._exit(5)\n',
}


@pytest.mark.parametrize("name", list(STDIN_STATUS_FORGERIES))
def test_a_stdin_program_cannot_forge_its_status(sandbox: Any, name: str) -> None:
    program = PIPE + STDIN_STATUS_FORGERIES[name]
    result = sandbox.run(Job(program=program, calls=[["1\n"]], time_limits_s=[2.0], stdin=True, limits=FAST))
    assert result.sandbox_error == "" and statuses(result) == ["error"], result.calls[0]
    next_job_works(sandbox)


# ---- time: only what the server's clock saw


def test_a_timeout_claimed_at_once_is_an_error(sandbox: Any) -> None:
    forged = CALL + b'"status":"timeout","time_s":5,"error":"time limit exceeded"}'
    result = sandbox.run(job(PIPE + f"def f():\n    _frame({forged!r})\n    return 1\n", [[], []], fail_fast=False))
    program_failed(result)
    assert result.calls[0].status is CallStatus.ERROR
    assert "did not observe" in result.calls[0].error
    load = b'{"k":"load","status":"timeout","time_s":9,"error":""}'
    result = sandbox.run(job(PIPE + f"_frame({load!r})\ndef f():\n    return 1\n", [[]]))
    assert result.load.status is CallStatus.ERROR and "did not observe" in result.load.error
    next_job_works(sandbox)


def test_an_answer_after_the_limit_from_a_patched_harness_is_a_timeout(sandbox: Any) -> None:
    # The program replaces the harness's call runner (found through gc): no timer, a late "ok".
    program = (
        "import gc, time\n"
        "Child = next(type(o) for o in gc.get_objects() if type(o).__name__ == 'Child')\n"
        "Child.run_call = lambda self, fn, args, limit: (time.sleep(limit + 0.6), ('ok', '1', 0.0))[1]\n"
        "def f():\n    return 1\n"
    )
    result = sandbox.run(job(program, [[]], limit=1.0))
    program_failed(result)
    assert result.calls[0].status is CallStatus.TIMEOUT and "after its time limit" in result.calls[0].error
    next_job_works(sandbox)


def test_a_patched_encoder_gets_no_time_beyond_the_calls_limit(sandbox: Any) -> None:
    program = (
        "import json, time\n"
        "def f():\n"  # patched during the call: the frame of the load went out already
        "    json.JSONEncoder.encode = lambda self, o: time.sleep(30) or 'null'\n"
        "    return 1\n"
    )
    start = time.monotonic()
    result = sandbox.run(job(program, [[]], limit=1.0))
    assert result.sandbox_error == ""
    assert result.calls[0].status is CallStatus.TIMEOUT, result.calls[0]
    assert time.monotonic() - start < 1.0 + GRACE_S + 1.5  # was limit + max(2, 2 x limit) + grace
    next_job_works(sandbox)


def test_a_slow_repr_of_the_return_value_runs_on_the_calls_clock(sandbox: Any) -> None:
    program = "import time\nclass Slow:\n    def __repr__(self):\n        time.sleep(30)\n        return 'x'\n"
    program += "def f():\n    return [Slow()]\n"
    result = sandbox.run(job(program, [[]], limit=0.5))
    assert result.sandbox_error == ""
    assert result.calls[0].status is CallStatus.TIMEOUT, result.calls[0]
    assert result.calls[0].time_s < 0.5 + GRACE_S


def test_the_reported_time_of_a_call_includes_encoding_its_value(sandbox: Any) -> None:
    program = "BIG = [(i, str(i)) for i in range(200_000)]\ndef f():\n    return BIG\n"
    limits = Limits(memory_mb=1024, load_time_s=5.0, value_bytes=64 << 20)
    result = sandbox.run(job(program, [[]], limit=10.0, limits=limits))
    assert statuses(result) == ["ok"]
    assert result.calls[0].time_s > 0.02  # returning BIG takes microseconds; encoding it does not


# ---- values: the encoder runs no code of the program's


def test_a_class_posing_as_numpy_is_opaque_and_its_item_never_runs(sandbox: Any) -> None:
    program = (
        "import os\n"
        "class Scalar:\n"
        "    __module__ = 'numpy'\n"
        "    ndim = 0\n"
        "    def item(self):\n"
        "        os._exit(0)\n"
        "def f():\n    return Scalar()\n"
    )
    result = sandbox.run(job(program, [[]]))
    assert statuses(result) == ["ok"], result.calls[0]
    assert isinstance(values(result)[0], Opaque)


def test_real_numpy_scalars_still_come_back_as_numbers(sandbox: Any) -> None:
    probe = sandbox.run(job("def f():\n    import numpy\n    return 1\n", [[]]))
    if statuses(probe) != ["ok"]:
        pytest.skip("numpy is not installed for the sandbox's interpreter")
    program = "import numpy as np\ndef f():\n    return [np.int64(3), np.float64(0.5), np.bool_(True), np.array(7)]\n"
    result = sandbox.run(job(program, [[]]))
    assert values(result) == [[3, 0.5, True, 7]]


# ---- the fork server


def test_killing_the_fork_server_fails_the_program_and_the_next_job_works(sandbox: Any) -> None:
    """Where jobs share the harness's uid (docker) this kills the fork server; the server starts over."""
    program = "import os, time\ndef f():\n    os.kill(os.getppid(), 9)\n    time.sleep(1)\n    return 'survived'\n"
    result = sandbox.run(job(program, [[], []], fail_fast=False))
    program_failed(result)
    assert values(result)[0] != "survived"
    for _ in range(3):
        next_job_works(sandbox)


def test_stopping_the_fork_server_does_not_hold_up_the_next_job(sandbox: Any) -> None:
    program = (
        "import os, signal\ndef f(x):\n    if x:\n        os._exit(1)\n    os.kill(os.getppid(), signal.SIGSTOP)\n"
    )
    result = sandbox.run(job(program, [[0], [1], [0]], fail_fast=False))
    assert result.sandbox_error == ""
    start = time.monotonic()
    next_job_works(sandbox)
    assert time.monotonic() - start < jobs.SETUP_S


# ---- unit level: the server's checks are total


def test_frame_parsing_and_checking_never_raise_anything_but_malformed() -> None:
    rng = random.Random(7)
    job_dict = jobs.normalize_job({"program": "", "calls": [[]], "time_limits_s": [1.0]})
    pieces = [b"{", b"}", b"[", b"]", b'"k"', b'"call"', b'"i"', b":", b",", b"0", b"1e999", b'"status"', b'"ok"']
    pieces += [b'"value"', b"\xff", b"null", b"-", b"9" * 50, b'"\\ud800"', b"NaN", b"true"]
    for _ in range(3000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        buf = bytearray(len(body).to_bytes(4, "big") + body)
        run = frames.ChildRun()
        run.ready = True
        try:
            got = frames.next_frame(buf, 1 << 20)
        except frames.Malformed:
            continue
        assert got is not None
        problem = frames.accept(run, got[0], got[1], ["load", 0], job_dict, time.perf_counter())
        assert isinstance(problem, str)
        if not problem:
            json.dumps(run.frames[-1], allow_nan=False)  # whatever it accepted can be sent on


def test_json_problem_bounds_depth_and_numbers() -> None:
    assert frames.json_problem([1, "a", None, 2.5, {"d": [[1, 2]]}]) == ""
    assert frames.json_problem([1.0, float("inf")]) != ""
    assert frames.json_problem({"x": [float("nan")]}) != ""
    deep: list = []
    node = deep
    for _ in range(frames.MAX_JSON_DEPTH + 5):
        node.append([])
        node = node[0]
    assert "deep" in frames.json_problem(deep)
    assert frames.json_problem(protocol.encode_value([[[(1, {2: {3}})]]] * 3)) == ""


def test_exit_verdict_believes_only_what_the_server_saw() -> None:
    xcpu, kill = int(signal.SIGXCPU), int(signal.SIGKILL)  # wait status of a process killed by that signal
    assert exit_verdict(xcpu, 0.01, 7, "the call")["status"] == "error"
    assert exit_verdict(xcpu, 6.95, 7, "the call")["status"] == "timeout"
    assert exit_verdict(kill, 8.0, 7, "the call")["status"] == "timeout"
    assert exit_verdict(kill, 1.0, 7, "the call")["status"] == "error"
    exit3 = 3 << 8
    assert exit_verdict(exit3, 0.1, 7, "the call", rss_kb=20_000, memory_mb=1024)["status"] == "error"
    assert exit_verdict(exit3, 0.1, 7, "the call", rss_kb=900 << 10, memory_mb=1024)["status"] == "memory"
    assert exit_verdict(None, 0.0, 7, "the call")["status"] == "error"
    assert exit_verdict(0, 0.0, 7, "the call")["status"] == "error"  # exit code 0 without an answer


def test_a_timeout_claim_is_checked_against_the_servers_clock() -> None:
    job_dict = jobs.normalize_job({"program": "", "calls": [[], []], "time_limits_s": [1.0, 1.0]})
    run = frames.ChildRun()
    run.ready, run.item_t0 = True, 100.0
    load = {"k": "load", "status": "ok", "time_s": 0.0, "error": ""}
    assert frames.accept(run, load, 10, ["load", 0, 1], job_dict, 100.1) == ""
    claim = {"k": "call", "i": 0, "status": "timeout", "time_s": 1.0, "error": ""}
    assert frames.accept(run, dict(claim), 10, ["load", 0, 1], job_dict, 100.2) == ""
    assert run.frames[-1]["status"] == "error" and "did not observe" in run.frames[-1]["error"]
    assert frames.accept(run, dict(claim, i=1), 10, ["load", 0, 1], job_dict, 101.2) == ""
    assert run.frames[-1]["status"] == "timeout"


def test_job_budget_counts_each_call_once_plus_grace() -> None:
    wire = {"limits": {"load_time_s": 2.0}, "calls": [[]] * 3, "time_limits_s": [1.0] * 3}
    per_child = jobs.SETUP_S + 2.0 + GRACE_S
    assert jobs.job_budget_s(wire) == pytest.approx(4 * per_child + 3 * (1.0 + GRACE_S) + jobs.CLEANUP_S)
