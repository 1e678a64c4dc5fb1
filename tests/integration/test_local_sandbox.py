"""The local sandbox against hostile programs: one test per attack, with and without bubblewrap.

Every test runs against each available mode: ``bwrap`` (bubblewrap around the harness) and
``plain`` (rlimits and, as root, uid 65534 only). Where a mode cannot contain an attack by
design (``plain`` shares the host's /tmp and network), the test says so and skips.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ra3bench.errors import SandboxUnavailableError
from ra3bench.sandbox.base import CallStatus, Job, JobResult, Limits
from ra3bench.sandbox.harness.protocol import Opaque, decode_value, encode_value
from ra3bench.sandbox.local import LocalSandbox, bwrap_works

SECRET = f"ra3-secret-{uuid.uuid4().hex}"
REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
NOBODY = 65534
FAST = Limits(memory_mb=1024, load_time_s=2.0)


def make_sandbox(mode: str, **kw: object) -> LocalSandbox:
    if mode == "bwrap":
        if not bwrap_works():
            pytest.skip("bubblewrap is not installed or cannot create namespaces here")
        return LocalSandbox(workers=1, use_bwrap=True, **kw)  # type: ignore[arg-type]
    try:
        return LocalSandbox(workers=1, use_bwrap=False, **kw)  # type: ignore[arg-type]
    except SandboxUnavailableError:
        # As root, uid 65534 must be able to read the interpreter; a Python under /root cannot be.
        if not os.access("/usr/bin/python3", os.X_OK):
            raise
        try:
            return LocalSandbox(workers=1, use_bwrap=False, python="/usr/bin/python3", **kw)  # type: ignore[arg-type]
        except SandboxUnavailableError as exc:
            pytest.skip(f"no interpreter readable by the job uid: {exc}")


@pytest.fixture(scope="module", params=["bwrap", "plain"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[LocalSandbox]:
    old = os.environ.get("RA3BENCH_SECRET")
    os.environ["RA3BENCH_SECRET"] = SECRET  # set before the sandbox starts: it must not leak in
    sb = make_sandbox(request.param)
    sb.mode = request.param  # type: ignore[attr-defined]
    try:
        yield sb
    finally:
        sb.close()
        if old is None:
            os.environ.pop("RA3BENCH_SECRET", None)
        else:
            os.environ["RA3BENCH_SECRET"] = old


def job(program: str, calls: list[list], limit: float = 1.0, **kw: object) -> Job:
    return Job(
        program=program,
        entry_point=kw.pop("entry_point", "f"),  # type: ignore[arg-type]
        calls=[encode_value(list(c)) for c in calls],
        time_limits_s=[limit] * len(calls),
        limits=kw.pop("limits", FAST),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def values(result: JobResult) -> list:
    return [decode_value(c.value) for c in result.calls]


def statuses(result: JobResult) -> list[str]:
    return [c.status.value for c in result.calls]


# ---- processes: what the sandbox has running besides its workers


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, real uid) for every process on the host."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(b")")[2].split()[1])
        uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
        table[int(name)] = (ppid, uid)
    return table


def job_processes(sb: LocalSandbox) -> set[int]:
    """Descendants of the sandbox's workers that run as the job uid (the worker itself runs as root)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo, found = list(sb.worker_pids()), set()
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.add(child)
            todo.append(child)
    return {p for p in found if table.get(p, (0, -1))[1] == NOBODY}


def processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    found.append(int(name))
            except OSError:
                pass
    return found


def wait_until(predicate, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def needs_root_for_uid() -> None:
    if not IS_ROOT:
        pytest.skip("jobs run as the invoking user: no uid to tell job processes apart, no RLIMIT_NPROC")


# ---- correct programs


def test_correct_function_returns_encoded_values(sandbox: LocalSandbox) -> None:
    program = "def f(a, b):\n    return {'sum': a + b, 'pair': (a, b), 'set': {a}}\n"
    result = sandbox.run(job(program, [[1, 2], [2.5, 0.5], ["x", "y"]]))
    assert result.sandbox_error == "" and result.load.status is CallStatus.OK
    assert statuses(result) == ["ok", "ok", "ok"]
    assert values(result) == [
        {"sum": 3, "pair": (1, 2), "set": {1}},
        {"sum": 3.0, "pair": (2.5, 0.5), "set": {2.5}},
        {"sum": "xy", "pair": ("x", "y"), "set": {"x"}},
    ]
    assert result.calls[0].value == encode_value({"sum": 3, "pair": (1, 2), "set": {1}})


def test_typing_and_numpy_style_imports_work(sandbox: LocalSandbox) -> None:
    program = "from typing import List\nimport collections, statistics\ndef f(xs: List[int]):\n"
    program += "    return statistics.mean(xs), collections.Counter(xs).most_common(1)\n"
    result = sandbox.run(job(program, [[[1, 2, 2]]]))
    assert statuses(result) == ["ok"], result.calls[0].error
    assert values(result) == [(5 / 3, [(2, 2)])]


def test_program_semantics_are_plain_python(sandbox: LocalSandbox) -> None:
    """No __future__ flags leak from the harness; __name__ is __main__; the entry point is looked up per call."""
    program = (
        "import sys\n"
        "def f(x: int) -> int:\n"
        "    global f\n"
        "    f = lambda x: 'rebound'\n"
        "    return (__name__, repr(sys.modules['__main__'].__dict__.get('f') is not None), "
        "str(g.__annotations__['x']), sys.argv)\n"
        "def g(x: int):\n    pass\n"
    )
    result = sandbox.run(job(program, [[1], [2]]))
    assert values(result) == [("__main__", "True", "<class 'int'>", [""]), "rebound"]


def test_syntax_error_is_a_load_syntax_status(sandbox: LocalSandbox) -> None:
    result = sandbox.run(job("def f(x)\n    return x\n", [[1]]))
    assert result.load.status is CallStatus.SYNTAX
    assert "SyntaxError" in result.load.error
    assert statuses(result) == ["missing"]


def test_missing_entry_point_is_an_error(sandbox: LocalSandbox) -> None:
    result = sandbox.run(job("def g(x):\n    return x\n", [[1], [2]], fail_fast=False))
    assert statuses(result) == ["error", "error"]
    assert "entry point f not defined" in result.calls[0].error


# ---- early exits never pass


EXITS = {
    "exit": "exit(0)",
    "sys.exit": "import sys\nsys.exit(0)",
    "os._exit": "import os\nos._exit(0)",
    "SystemExit": "raise SystemExit(0)",
}


@pytest.mark.parametrize("how", list(EXITS))
def test_exit_at_top_level_is_never_ok(sandbox: LocalSandbox, how: str) -> None:
    result = sandbox.run(job(EXITS[how] + "\ndef f(x):\n    return x\n", [[1]]))
    assert result.sandbox_error == ""
    assert result.load.status is CallStatus.ERROR
    assert all(c.status is not CallStatus.OK for c in result.calls)


@pytest.mark.parametrize("how", list(EXITS))
def test_exit_inside_a_call_is_never_ok(sandbox: LocalSandbox, how: str) -> None:
    body = "\n".join("    " + line for line in EXITS[how].splitlines())
    result = sandbox.run(job(f"def f(x):\n{body}\n", [[1], [2]], fail_fast=False))
    assert result.load.status is CallStatus.OK and result.sandbox_error == ""
    assert statuses(result) == ["error", "error"]
    if how == "os._exit":
        assert "process exited during the call" in result.calls[0].error


def test_a_crash_in_one_call_does_not_lose_the_next_calls(sandbox: LocalSandbox) -> None:
    program = "import os\ndef f(x):\n    if x == 1:\n        os._exit(0)\n    return x * 10\n"
    result = sandbox.run(job(program, [[0], [1], [2]], fail_fast=False))
    assert statuses(result) == ["ok", "error", "ok"]
    assert values(result)[2] == 20
    result = sandbox.run(job(program, [[0], [1], [2]], fail_fast=True))
    assert statuses(result) == ["ok", "error", "missing"]


# ---- values the program controls


def test_always_equal_object_comes_back_opaque(sandbox: LocalSandbox) -> None:
    program = (
        "class Yes:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "class YesInt(int):\n    def __eq__(self, other): return True\n    __hash__ = int.__hash__\n"
        "def f(k):\n    return Yes() if k else YesInt(1)\n"
    )
    result = sandbox.run(job(program, [[True], [False]]))
    assert statuses(result) == ["ok", "ok"]
    for value in values(result):
        assert isinstance(value, Opaque)
        same = value
        assert value != 1 and value != same


def test_monkeypatched_builtins_and_json_do_not_change_the_encoding(sandbox: LocalSandbox) -> None:
    program = (
        "import builtins, json\n"
        "builtins.type = lambda *a: bool\nbuiltins.isinstance = lambda *a: True\n"
        "json.dumps = lambda *a, **k: 'true'\n"
        "def f():\n    return [1, (2, 'x')]\n"
    )
    result = sandbox.run(job(program, [[]]))
    assert statuses(result) == ["ok"]
    assert values(result) == [[1, (2, "x")]]


def test_a_value_over_the_size_limit_is_an_error(sandbox: LocalSandbox) -> None:
    limits = Limits(memory_mb=1024, load_time_s=2.0, value_bytes=1000)
    result = sandbox.run(job("def f():\n    return 'x' * 5000\n", [[]], limits=limits))
    assert statuses(result) == ["error"] and "too large" in result.calls[0].error


def test_scribbling_on_every_fd_cannot_forge_results(sandbox: LocalSandbox) -> None:
    body = b'{"k":"call","i":0,"status":"ok","time_s":0,"error":"","value":1}'
    forged = len(body).to_bytes(4, "big") + body
    program = (
        "import os\n"
        f"for fd in range(3, 64):\n    try:\n        os.write(fd, {forged!r})\n    except OSError:\n        pass\n"
        "def f():\n    return 2\n"
    )
    result = sandbox.run(job(program, [[]]))
    assert result.sandbox_error == ""
    assert not (result.load.status is CallStatus.OK and values(result) == [1])
    assert sandbox.run(job("def f():\n    return 3\n", [[]])).calls[0].status is CallStatus.OK


# ---- time


def test_infinite_loop_in_a_call_times_out_and_the_next_call_runs(sandbox: LocalSandbox) -> None:
    program = "def f(x):\n    while x:\n        pass\n    return 'done'\n"
    start = time.monotonic()
    result = sandbox.run(job(program, [[1], [0]], limit=0.5, fail_fast=False))
    elapsed = time.monotonic() - start
    assert statuses(result) == ["timeout", "ok"]
    assert values(result)[1] == "done"
    assert elapsed < 0.5 + 1.5


def test_a_loop_that_swallows_the_timer_still_times_out(sandbox: LocalSandbox) -> None:
    program = (
        "import signal\n"
        "def f(x):\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    start = time.monotonic()
    result = sandbox.run(job(program, [[1], [2]], limit=0.3, fail_fast=False))
    assert statuses(result) == ["timeout", "timeout"]
    assert time.monotonic() - start < 10


def test_max_timeouts_stops_a_group_and_says_why(sandbox: LocalSandbox) -> None:
    program = "def f(x):\n    while x:\n        pass\n    return 'done'\n"
    calls = [[0], [1], [0], [1], [0], [1], [0]]
    result = sandbox.run(job(program, calls, limit=0.3, fail_fast=False, max_timeouts=2))
    assert statuses(result) == ["ok", "timeout", "ok", "timeout", "missing", "missing", "missing"]
    assert "2 timeouts" in result.calls[-1].error


def test_max_timeouts_also_counts_timeouts_that_kill_the_child(sandbox: LocalSandbox) -> None:
    program = (
        "import signal\n"
        "def f(x):\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    while x:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
        "    return x\n"
    )
    result = sandbox.run(job(program, [[0], [1], [1], [0]], limit=0.3, fail_fast=False, max_timeouts=2))
    assert statuses(result) == ["ok", "timeout", "timeout", "missing"]


def test_budget_stops_only_a_group_that_already_failed(sandbox: LocalSandbox) -> None:
    program = "import time\ndef f(x):\n    time.sleep(0.2)\n    if x:\n        raise ValueError(x)\n    return x\n"
    passing = sandbox.run(job(program, [[0]] * 6, fail_fast=False, failed_budget_s=0.3))
    assert statuses(passing) == ["ok"] * 6  # over budget, but nothing failed: every test runs
    failing = sandbox.run(job(program, [[1]] + [[0]] * 5, fail_fast=False, failed_budget_s=0.3))
    assert statuses(failing)[:2] == ["error", "ok"]
    assert statuses(failing)[-1] == "missing"
    assert "budget" in failing.calls[-1].error


def test_infinite_loop_at_top_level_is_a_load_timeout(sandbox: LocalSandbox) -> None:
    limits = Limits(memory_mb=1024, load_time_s=0.5)
    start = time.monotonic()
    result = sandbox.run(job("while True:\n    pass\n", [[1]], limits=limits))
    assert result.load.status is CallStatus.TIMEOUT
    assert time.monotonic() - start < 0.5 + 1.5


# ---- memory and output


def test_huge_allocation_at_top_level_is_memory(sandbox: LocalSandbox) -> None:
    result = sandbox.run(job("x = bytearray(8 * 1024**3)\n", [[1]]))
    assert result.load.status is CallStatus.MEMORY


def test_growing_list_in_a_call_is_memory(sandbox: LocalSandbox) -> None:
    program = "def f():\n    x = []\n    while True:\n        x.append(bytearray(1 << 24))\n"
    limits = Limits(memory_mb=512, load_time_s=2.0)
    result = sandbox.run(job(program, [[], []], limit=5.0, limits=limits, fail_fast=False))
    assert statuses(result) == ["memory", "memory"]


def test_printing_100_mb_is_truncated_and_cheap(sandbox: LocalSandbox) -> None:
    program = (
        "import sys, os\n"
        "line = 'x' * 100_000\n"
        "for _ in range(1000):\n    print(line)\n"
        "sys.stdout.buffer.write(b'y' * 10_000_000)\n"
        "try:\n    os.write(1, b'z' * 10_000_000)\nexcept OSError:\n    pass\n"
        "def f():\n    print('in call')\n    return 'fine'\n"
    )
    start = time.monotonic()
    result = sandbox.run(job(program, [[]]))
    assert result.load.status is CallStatus.OK and statuses(result) == ["ok"]
    assert values(result) == ["fine"]
    assert result.output.startswith("x" * 1000)
    assert len(result.output) <= 8192
    assert time.monotonic() - start < 15


# ---- processes


def test_fork_bomb_is_contained(sandbox: LocalSandbox) -> None:
    needs_root_for_uid()
    program = "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
    program += "        except OSError:\n            pass\n"
    start = time.monotonic()
    result = sandbox.run(job(program, [[]], limit=1.0))
    assert result.sandbox_error == ""
    assert result.calls[0].status is not CallStatus.OK
    assert time.monotonic() - start < 15
    assert wait_until(lambda: not job_processes(sandbox)), job_processes(sandbox)
    start = time.monotonic()
    assert sandbox.run(job("def f():\n    return 1\n", [[]])).calls[0].status is CallStatus.OK
    assert time.monotonic() - start < 2


def test_fork_bomb_at_top_level_is_contained(sandbox: LocalSandbox) -> None:
    needs_root_for_uid()
    program = "import os\ntry:\n    while True:\n        os.fork()\nexcept OSError:\n    pass\ndef f():\n    return 1\n"
    start = time.monotonic()
    result = sandbox.run(job(program, [[]]))
    assert result.sandbox_error == ""
    assert time.monotonic() - start < 15
    assert wait_until(lambda: not job_processes(sandbox)), job_processes(sandbox)


def test_setsid_double_fork_escapee_is_killed(sandbox: LocalSandbox) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**12}"
    program = (
        "import os, time\n"
        "def f():\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        f"            os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "        os._exit(0)\n"
        "    time.sleep(0.3)\n"
        "    return 'forked'\n"
    )
    result = sandbox.run(job(program, [[]]))
    assert values(result) == ["forked"]
    assert wait_until(lambda: not processes_with(marker)), processes_with(marker)
    if IS_ROOT:
        assert wait_until(lambda: not job_processes(sandbox))


# ---- files, environment, network


def test_writes_outside_the_temp_dir_do_not_reach_the_host(sandbox: LocalSandbox) -> None:
    name = f"ra3bench_pwned_{uuid.uuid4().hex}"
    targets = [f"/root/{name}", str(REPO / name), f"/tmp/{name}"]
    if sandbox.mode == "plain":  # type: ignore[attr-defined]
        targets.pop()  # without bubblewrap jobs share the host's world-writable /tmp (docs/sandbox.md)
    if sandbox.mode == "plain" and not IS_ROOT:  # type: ignore[attr-defined]
        pytest.skip("jobs run as the invoking user, who may write these paths")
    program = (
        "def f(path):\n    try:\n        open(path, 'w').write('pwned')\n        return 'written'\n"
        "    except OSError as exc:\n        return type(exc).__name__\n"
    )
    try:
        result = sandbox.run(job(program, [[t] for t in targets]))
        assert statuses(result) == ["ok"] * len(targets)
        for target in targets:
            assert not os.path.exists(target), target
    finally:
        for target in targets:
            with pytest.raises(FileNotFoundError):
                os.unlink(target)


def test_planted_modules_do_not_affect_the_program_or_the_next_job(sandbox: LocalSandbox) -> None:
    plant = (
        "import os\n"
        "for name in ('random', 'json', 'statistics', 'fractions'):\n"
        "    open(name + '.py', 'w').write('raise SystemExit(\"planted\")')\n"
        "import statistics, fractions\n"
        "def f():\n    return os.getcwd(), statistics.median([1, 3, 2]), str(fractions.Fraction(1, 2))\n"
    )
    first = sandbox.run(job(plant, [[]]))
    assert statuses(first) == ["ok"], first.calls[0].error
    cwd, median, half = values(first)[0]
    assert (median, half) == (2, "1/2")
    check = (
        "import os, random, json, statistics\n"
        "def f(old):\n    return random.random() < 1, json.dumps([1]), os.path.exists(old), os.getcwd() != old\n"
    )
    second = sandbox.run(job(check, [[cwd]]))
    assert values(second) == [(True, "[1]", False, True)]


def test_multiprocessing_works_and_dev_shm_does_not_carry_over(sandbox: LocalSandbox) -> None:
    program = (
        "import multiprocessing, os\n"
        "def square(x):\n    return x * x\n"
        "def f(plant):\n"
        "    if plant:\n        open(plant, 'w').write('x')\n"
        "    with multiprocessing.Pool(2) as pool:\n        return pool.map(square, [1, 2, 3])\n"
    )
    name = f"/dev/shm/ra3bench_plant_{uuid.uuid4().hex}"
    try:
        first = sandbox.run(job(program, [[name if sandbox.mode == "bwrap" else None]], limit=10.0))  # type: ignore[attr-defined]
        assert values(first) == [[1, 4, 9]], first.calls[0].error
        if sandbox.mode == "bwrap":  # type: ignore[attr-defined]
            check = "import os\ndef f(path):\n    return os.path.exists(path)\n"
            assert values(sandbox.run(job(check, [[name]]))) == [False]
            assert not os.path.exists(name)  # the worker's /dev/shm is its own
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def test_the_environment_of_the_caller_is_not_readable(sandbox: LocalSandbox) -> None:
    program = (
        "import os\n"
        "def f():\n"
        "    found = [k for k, v in os.environ.items() if 'ra3-secret' in v]\n"
        "    for pid in os.listdir('/proc'):\n"
        "        try:\n"
        "            if b'ra3-secret' in open(f'/proc/{pid}/environ', 'rb').read():\n"
        "                found.append(pid)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return os.environ.get('RA3BENCH_SECRET'), found\n"
    )
    result = sandbox.run(job(program, [[]]))
    value = values(result)[0]
    assert value[0] is None
    if IS_ROOT or sandbox.mode == "bwrap":  # type: ignore[attr-defined]
        assert value[1] == []  # not even through /proc/<pid>/environ of the test process
    assert SECRET not in str(result)


def test_no_network_under_bubblewrap(sandbox: LocalSandbox) -> None:
    if sandbox.mode != "bwrap":  # type: ignore[attr-defined]
        pytest.skip("without bubblewrap the local sandbox does not cut the network (docs/sandbox.md)")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    program = (
        "import socket\n"
        "def f(port):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=1).close()\n"
        "        return 'connected'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
    )
    try:
        result = sandbox.run(job(program, [[port]], limit=3.0))
        assert statuses(result) == ["ok"]
        assert values(result) != ["connected"]
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_bubblewrap_hides_root_home_data_and_the_repository(sandbox: LocalSandbox, tmp_path: Path) -> None:
    if sandbox.mode != "bwrap":  # type: ignore[attr-defined]
        pytest.skip("without bubblewrap host files are readable as far as the job uid allows")
    secret = Path(f"/root/ra3bench_secret_{uuid.uuid4().hex}") if IS_ROOT else Path.home() / f".ra3_{uuid.uuid4().hex}"
    secret.write_text("secret")
    os.chmod(secret, 0o644)  # readable by anyone who can reach it: only the mount table hides it
    (tmp_path / "data.jsonl").write_text("{}")
    os.chmod(tmp_path, 0o755)
    try:
        program = "import os\ndef f(path):\n    return os.path.exists(path)\n"
        paths = [str(secret), str(REPO / "pyproject.toml"), str(tmp_path / "data.jsonl"), "/home"]
        paths += [d for d in (str(REPO.parent / "shared"),) if os.path.isdir(d)]
        result = sandbox.run(job(program, [[p] for p in paths]))
        home_is_python = any(sys.prefix.startswith(r) for r in ("/home/",))
        assert values(result) == [p == "/home" and home_is_python for p in paths]
    finally:
        secret.unlink()


# ---- record mode, seeds


def test_record_mode_records_the_calls_a_script_makes(sandbox: LocalSandbox) -> None:
    program = "def f(a):\n    a.append(0)\n    return sorted(a)\n"
    script = "assert f([3, 1]) == [0, 1, 3]\nassert f([2]) == [0, 2]\nf(a=[5])\n"
    result = sandbox.run(Job(program=program, entry_point="f", script=script, script_time_s=2.0, record=True))
    assert result.script is not None and result.script.status is CallStatus.OK, result.script
    assert [decode_value(r.args) for r in result.recorded] == [[[3, 1]], [[2]], [[5]]]  # before the call mutated them
    assert [decode_value(r.value) for r in result.recorded] == [[0, 1, 3], [0, 2], [0, 5]]
    assert all(r.status is CallStatus.OK and r.time_s >= 0 for r in result.recorded)
    failing = sandbox.run(Job(program=program, entry_point="f", script="assert f([1]) == [9]", record=True))
    assert failing.script is not None and failing.script.status is CallStatus.ERROR
    assert "AssertionError" in failing.script.error and len(failing.recorded) == 1


def test_seed_makes_random_deterministic(sandbox: LocalSandbox) -> None:
    program = "import random\ndef f():\n    return [random.random() for _ in range(3)]\n"
    a = sandbox.run(job(program, [[]], seed=5))
    b = sandbox.run(job(program, [[]], seed=5))
    c = sandbox.run(job(program, [[]], seed=6))
    assert values(a) == values(b) != values(c)


# ---- infrastructure faults


def test_killed_worker_is_a_sandbox_error_or_a_retry_and_the_next_job_works(sandbox: LocalSandbox) -> None:
    """A worker killed from outside is not the program's doing: the pool reports a sandbox_error, or
    (once a fresh worker passed its canary) runs the job again, which then gives its own result."""
    long_job = job("import time\ndef f():\n    time.sleep(3)\n    return 'slept'\n", [[]], limit=20.0)
    box: dict[str, JobResult] = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", sandbox.run(long_job)))
    thread.start()
    assert wait_until(lambda: bool(job_processes(sandbox)) if IS_ROOT else bool(sandbox.worker_pids()))
    time.sleep(0.2)
    children = job_processes(sandbox) if IS_ROOT else set()
    for pid in sandbox.worker_pids():
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert not thread.is_alive()
    result = box["result"]
    if result.sandbox_error:
        assert result.load.status is CallStatus.ERROR
    else:
        assert values(result) == ["slept"], result
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in children))
    assert sandbox.run(job("def f():\n    return 'alive'\n", [[]])).calls[0].value == "alive"


def test_many_trivial_jobs(sandbox: LocalSandbox) -> None:
    jobs = [job("def f(x):\n    return x + 1\n", [[i]]) for i in range(200)]
    results = dict(sandbox.run_many(jobs))
    assert sorted(results) == list(range(200))
    assert all(values(results[i]) == [i + 1] for i in range(200))


def test_describe_says_what_it_is(sandbox: LocalSandbox) -> None:
    info = sandbox.describe()
    assert info["kind"] == "local" and info["bwrap"] == (sandbox.mode == "bwrap")  # type: ignore[attr-defined]
    assert info["uid"] == (NOBODY if IS_ROOT else None)
    assert "weak" in sandbox.isolation or sandbox.mode == "bwrap"  # type: ignore[attr-defined]


def test_a_worker_is_replaced_after_max_jobs() -> None:
    sb = make_sandbox("bwrap" if bwrap_works() else "plain", max_jobs_per_worker=2)
    try:
        pids = []
        for _ in range(3):
            assert sb.run(job("import os\ndef f():\n    return 1\n", [[]])).calls[0].status is CallStatus.OK
            pids.append(tuple(sb.worker_pids()))
        assert pids[0] != pids[2]
    finally:
        sb.close()
    assert sb.worker_pids() == []


def test_harness_imports_only_the_standard_library() -> None:
    harness = REPO / "ra3bench" / "sandbox" / "harness"
    siblings = {path.stem for path in harness.glob("*.py")}
    for path in sorted(harness.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in siblings or top == "__future__", (path.name, name)
