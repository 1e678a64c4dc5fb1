"""The hostile-program suite as data, and a runner that checks a sandbox backend against it.

Each :class:`Attack` is one thing a model-written program may try (docs/sandbox.md, threat
model): a job built per run, and a check that looks at the :class:`JobResult`, at the host
after the job (files, ``/proc``, a loopback listener) and, where the attack targets the next
job, at follow-up jobs on every worker. It works through the :class:`Sandbox` API only, so
every backend is checked the same way (``ra3bench sandbox check``, tests/integration/test_sandbox_check.py).

Some attacks can only be contained by a backend with a given capability (the local sandbox
without bubblewrap shares the host's network and files). Those name it in ``requires``; the
runner still runs them and reports "not contained (backend has no X)" instead of hiding them.
Attacks that would harm the host where a capability is missing (a fork bomb without a process
limit, ``kill(-1)`` without a private PID namespace) name it in ``safe_only_with`` and are
reported without being run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ra3bench.sandbox.base import CallStatus, Job, JobResult, Limits, Sandbox
from ra3bench.sandbox.harness.protocol import decode_value, encode_value

# Capabilities a backend may have; attacks name the ones that contain them.
NETWORK = "network isolation"
HOST_FS = "host fs hidden"
PRIVATE_PIDS = "private pid namespace"
JOB_UID = "separate job uid"
PROCESS_LIMIT = "process limit"
CAPABILITIES = (NETWORK, HOST_FS, PRIVATE_PIDS, JOB_UID, PROCESS_LIMIT)

ENV_SECRET_VAR = "RA3BENCH_ATTACK_SECRET"
ATTACK_LIMITS = Limits(memory_mb=1024, load_time_s=5.0)  # 1 GB: the memory attack stays cheap for the host
BOUND_S = 60.0  # any attack job must end within this (a bounded job, not a fast one: the host may be busy)
SETTLE_S = 10.0  # cleanup runs after the answer: how long leftovers may take to disappear


@dataclass
class Outcome:
    contained: bool
    observed: str  # one line for the table


@dataclass
class Report:
    """One attack's line in ``ra3bench sandbox check``."""

    attack: str
    expected: str
    observed: str
    result: str  # OK | FAIL | not contained (backend has no X) | not run (...)
    contained: bool | None  # None: not run
    claimed: bool  # whether this backend claims to contain the attack
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """False only for an attack the backend claims to contain but did not."""
        return self.result != "FAIL"

    def to_json(self) -> dict:
        return {**asdict(self), "wall_s": round(self.wall_s, 3), "ok": self.ok}


class Probe:
    """Per-attack state: the sandbox (for follow-up jobs), a unique token, host-side cleanups."""

    def __init__(self, sandbox: Sandbox, env_secret: str) -> None:
        self.sandbox = sandbox
        self.token = "ra3b" + uuid.uuid4().hex[:10]  # 14 chars: fits a process name (comm, 15)
        self.env_secret = env_secret
        self.state: dict[str, Any] = {}
        self._cleanups: list[Callable[[], object]] = []

    def on_close(self, fn: Callable[[], object]) -> None:
        self._cleanups.append(fn)

    def host_file(self, folder: Path, content: str | None = None) -> Path:
        """A unique path in ``folder`` (written with mode 0644 when ``content`` is given), removed at the end."""
        path = folder / f".ra3bench-attack-{self.token}"
        self.on_close(lambda: path.unlink(missing_ok=True))
        if content is not None:
            path.write_text(content)
            path.chmod(0o644)  # readable by anyone who can reach it: only the sandbox may hide it
        return path

    def on_every_worker(self, program: str, args: list[Any]) -> list[JobResult]:
        """Run ``f(*args)`` once per worker at the same time, so each worker (not just one) is checked."""
        program = "import time\ntime.sleep(0.3)\n" + program  # keeps all workers busy at once
        jobs = [_job(program, [args], limit=10.0) for _ in range(max(1, self.sandbox.workers))]
        return [result for _, result in self.sandbox.run_many(jobs)]

    def close(self) -> None:
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()


@dataclass(frozen=True)
class Attack:
    """One hostile program. ``expected`` is the classification (DESIGN.md §5)."""

    name: str
    expected: str  # timeout | memory | error | contained | sandbox_error (or a few of them)
    containment: str  # what "contained" means for this attack, one line
    job: Callable[[Probe], Job]
    check: Callable[[Probe, JobResult, float], Outcome]  # (probe, result, wall seconds)
    requires: tuple[str, ...] = ()  # any one of these contains it; empty: every backend must
    safe_only_with: tuple[str, ...] = ()  # without any of these, running it would harm the host
    setup: Callable[[Probe], None] | None = field(default=None)


# ---- helpers


def _job(program: str, calls: list[list[Any]], limit: float = 5.0, limits: Limits = ATTACK_LIMITS) -> Job:
    return Job(
        program=program,
        entry_point="f",
        calls=[encode_value(list(c)) for c in calls],
        time_limits_s=[limit] * len(calls),
        fail_fast=False,
        limits=limits,
    )


def classify(result: JobResult) -> str:
    """The job's status as the judge would see it: sandbox_error, else the first non-ok item."""
    if result.sandbox_error:
        return "sandbox_error"
    items = [result.load, *result.calls] + ([result.script] if result.script else [])
    return next((c.status.value for c in items if c.status is not CallStatus.OK), "ok")


def _values(result: JobResult) -> list[Any]:
    out = []
    for call in result.calls:
        try:
            out.append(decode_value(call.value) if call.status is CallStatus.OK else None)
        except Exception:  # a value the protocol cannot decode: the check treats it as unknown
            out.append(None)
    return out


def _why(result: JobResult) -> str:
    if result.sandbox_error:
        return result.sandbox_error[:120]
    failed = next((c for c in [result.load, *result.calls] if c.status is not CallStatus.OK), None)
    return (failed.error.strip().splitlines() or [""])[-1][:120] if failed else ""


def _first_line(text: str, n: int = 80) -> str:
    return (text.strip().splitlines() or [""])[0][:n]


def host_processes_with(token: str) -> list[int]:
    """Host pids whose name (comm) or argv holds ``token``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{name}/comm").read_bytes()
            argv = Path(f"/proc/{name}/cmdline").read_bytes()
            if token.encode() in comm or token.encode() in argv:
                found.append(int(name))
    return found


def _wait_gone(token: str, timeout: float = SETTLE_S) -> list[int]:
    end = time.monotonic() + timeout
    while (left := host_processes_with(token)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def _kill_host(pids: Iterable[int]) -> None:
    """Leftovers of our own attack (found by its unique token): kill them so the host is clean again."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# In-sandbox half of the process checks: pids from the attack job (its namespace) and a full scan.
_FIND_IN_SANDBOX = """\
import os
def f(token, pids):
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open(f'/proc/{name}/comm', 'rb') as a, open(f'/proc/{name}/cmdline', 'rb') as b:
                    if token.encode() in a.read() + b.read():
                        found.append(int(name))
            except OSError:
                pass
    return sorted(found)
"""


def _processes_gone(probe: Probe, pids: list[int]) -> Outcome:
    """Whether no process of the attack is left, on the host (/proc) and in every worker (follow-up job)."""
    host = _wait_gone(probe.token)
    _kill_host(host)
    inside: list[int] = []
    problems = []
    for result in probe.on_every_worker(_FIND_IN_SANDBOX, [probe.token, pids]):
        value = _values(result)[0] if result.calls else None
        if classify(result) != "ok" or not isinstance(value, list):
            problems.append(f"follow-up {classify(result)}: {_why(result)}")
        else:
            inside += value
    if host or inside:
        return Outcome(False, f"left behind: host pids {host}, sandbox pids {inside}")
    if problems:
        return Outcome(False, problems[0])
    return Outcome(True, f"none left (job pids {pids}: gone on the host and in {probe.sandbox.workers} worker(s))")


def _next_job_works(probe: Probe, first: str) -> Outcome:
    answers = probe.on_every_worker("def f():\n    return 'alive'\n", [])
    bad = [r for r in answers if classify(r) != "ok" or _values(r) != ["alive"]]
    if bad:
        return Outcome(False, f"{first}; next job: {classify(bad[0])} {_why(bad[0])}")
    return Outcome(True, f"{first}; next job ok on {len(answers)} worker(s)")


# ---- the attacks


def _network_setup(probe: Probe) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))  # every host address: loopback and the host's own IPs
    listener.listen(8)
    listener.setblocking(False)
    probe.on_close(listener.close)
    probe.state.update(listener=listener, port=listener.getsockname()[1], hosts=host_ipv4_addresses())


def host_ipv4_addresses() -> list[str]:
    """127.0.0.1 and every other local IPv4 address of the host (e.g. docker0's gateway), from the kernel's FIB."""
    hosts = ["127.0.0.1"]
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line:
                address = prev.split()[-1]
                if address not in hosts and not address.startswith("127."):
                    hosts.append(address)
    return hosts


_CONNECT = """\
import socket
def f(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return 'connected'
    except OSError as exc:
        return type(exc).__name__
"""


def _network_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    try:
        probe.state["listener"].accept()[0].close()
        accepted = True
    except BlockingIOError:
        accepted = False
    values = _values(result)
    tried = ", ".join(f"{h}: {v or classify(result)}" for h, v in zip(probe.state["hosts"], values, strict=False))
    if accepted or "connected" in values:
        return Outcome(False, f"connected to the host's port ({tried})")
    return Outcome(True, f"no connection ({tried})")


def _write_paths(probe: Probe) -> list[str]:
    where = probe.state["where"]
    return [str(probe.host_file(Path(p))) for p in where]


_WRITE = """\
def f(path):
    try:
        with open(path, 'w') as out:
            out.write('pwned')
        return 'written'
    except OSError as exc:
        return type(exc).__name__
"""


def _write_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    paths = probe.state["paths"]
    reached = [p for p in paths if os.path.exists(p)]
    said = ", ".join(f"{v or classify(result)}" for v in _values(result))
    if reached:
        return Outcome(False, f"reached the host: {', '.join(reached)} (job: {said})")
    return Outcome(True, f"nothing on the host (job: {said})")


def _write_job(where: Callable[[], list[str]]) -> Callable[[Probe], Job]:
    def build(probe: Probe) -> Job:
        probe.state["where"] = where()
        probe.state["paths"] = _write_paths(probe)
        return _job(_WRITE, [[p] for p in probe.state["paths"]])

    return build


# Names the process (comm) with the token; forked copies inherit it. /proc/self/comm is not
# writable after the uid drop (the process is no longer dumpable), prctl(PR_SET_NAME) is.
_MARK = """\
import ctypes, os
def _mark(token):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, token.encode(), 0, 0, 0)
    except Exception:
        pass
    with open('/proc/self/comm') as comm:
        if comm.read().strip() != token:
            raise RuntimeError('attack not set up: cannot name the process')
"""
NOT_SET_UP = "attack not set up"

_FORK_BOMB = (
    _MARK
    + """\
def f(token):
    _mark(token)  # every forked copy carries the name: found on the host and in the sandbox
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""
)


def _fork_bomb_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    status = classify(result)
    if NOT_SET_UP in _why(result):
        return Outcome(False, f"inconclusive: {_why(result)}")
    gone = _processes_gone(probe, [])
    first = f"{status} in {wall:.1f} s"
    if status == "ok" or wall > BOUND_S:
        return Outcome(False, f"{first}; {gone.observed}")
    return Outcome(gone.contained, f"{first}; {gone.observed}")


_MEMORY = """\
def f():
    chunks = []
    for _ in range(64):
        chunks.append(b'\\x01' * (64 << 20))  # 4 GB in all, every page written
    return len(chunks)
"""


def _status_check(want: str) -> Callable[[Probe, JobResult, float], Outcome]:
    def check(probe: Probe, result: JobResult, wall: float) -> Outcome:
        status = classify(result)
        observed = f"{status} in {wall:.1f} s" + (f" ({_first_line(_why(result), 60)})" if _why(result) else "")
        return Outcome(status == want and wall <= BOUND_S, observed)

    return check


_STDOUT = """\
import os, sys
def f():
    line = 'x' * 100_000
    for _ in range(500):
        print(line)
    sys.stdout.buffer.write(b'y' * 30_000_000)
    try:
        os.write(1, b'z' * 20_000_000)
    except OSError:
        pass
    return 'done'
"""


def _stdout_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    status, kept = classify(result), len(result.output)
    observed = f"{status} in {wall:.1f} s, {kept} chars of output kept"
    return Outcome(status == "ok" and _values(result) == ["done"] and kept <= 64 << 10 and wall <= BOUND_S, observed)


_BACKGROUND = (
    _MARK
    + """\
import signal, time
def f(token):
    pid = os.fork()
    if pid == 0:
        try:
            _mark(token)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            time.sleep(3600)
        finally:
            os._exit(0)
    for _ in range(200):  # return only once the child is alive under its name
        try:
            with open(f'/proc/{pid}/comm') as comm:
                if comm.read().strip() == token:
                    return [pid]
        except OSError:
            break
        time.sleep(0.01)
    raise RuntimeError('attack not set up: the child did not take its name')
"""
)

_ESCAPE = """\
import os, sys, time
KEEP = 'import signal, time; signal.signal(1, signal.SIG_IGN); signal.signal(15, signal.SIG_IGN); time.sleep(3600)'
def f(token):
    if os.fork() == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                with open('escapee.pid', 'w') as out:
                    out.write(str(os.getpid()))
                os.execv(sys.executable, [sys.executable, '-c', KEEP, token])  # the token in its argv
        finally:
            os._exit(0)
    for _ in range(200):  # return only once the escapee runs with the token in its argv
        try:
            pid = int(open('escapee.pid').read())
            if token.encode() in open(f'/proc/{pid}/cmdline', 'rb').read():
                return [pid]
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    raise RuntimeError('attack not set up: the escapee did not start')
"""


def _leftover_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    values = _values(result)
    pids = values[0] if values and isinstance(values[0], list) else []
    gone = _processes_gone(probe, pids)
    if NOT_SET_UP in _why(result):
        return Outcome(False, f"inconclusive: {_why(result)}; {gone.observed}")
    how = "running when the call returned" if pids else f"did not start ({classify(result)}: {_why(result)})"
    return Outcome(gone.contained, f"child {how}; {gone.observed}")


_PLANT = """\
import os
def f(token):
    planted = []
    for folder in {os.getcwd(), os.environ.get('HOME') or os.getcwd()}:
        path = os.path.join(folder, 'random.py')
        try:
            with open(path, 'w') as out:
                out.write(f'# {token}\\ndef random():\\n    return {token!r}\\n')
            planted.append(path)
        except OSError:
            pass
    return planted
"""

_USE_RANDOM = "import random\ndef f():\n    return [random.random(), random.__file__]\n"


def _plant_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    values = _values(result)
    planted = values[0] if values and isinstance(values[0], list) else []
    for path in planted:  # a sandbox that shares the host's folders would leave it there: remove ours
        with contextlib.suppress(OSError):
            if probe.token in Path(path).read_text():
                Path(path).unlink()
    bad = []
    for answer in probe.on_every_worker(_USE_RANDOM, []):
        value = _values(answer)[0] if answer.calls else None
        if classify(answer) != "ok" or not isinstance(value, list) or not isinstance(value[0], float):
            bad.append(f"{classify(answer)} {value!r} {_why(answer)}")
        elif value[1] in planted:
            bad.append(f"imported {value[1]}")
    if bad:
        return Outcome(False, f"planted {len(planted)} file(s); next job: {bad[0]}"[:160])
    return Outcome(True, f"planted {len(planted)} file(s); next job's random.random() is the stdlib's")


_ENVIRON = "import os\ndef f():\n    return dict(os.environ)\n"

_PROC_ENVIRON = """\
import os
def f(secret):
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open(f'/proc/{name}/environ', 'rb') as env:
                    if secret.encode() in env.read():
                        found.append(int(name))
            except OSError:
                pass
    return found
"""


def _env_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    if os.environ.get(ENV_SECRET_VAR) != probe.env_secret:
        return Outcome(False, f"inconclusive: {ENV_SECRET_VAR} was not set in this process")
    text = repr(_values(result)) + result.output
    if probe.env_secret in text:
        return Outcome(False, f"the caller's secret reached the job ({classify(result)})")
    values = _values(result)
    seen = len(values[0]) if values and isinstance(values[0], dict) else "?"
    return Outcome(True, f"secret absent ({classify(result)}; {seen} variables visible)")


def _proc_env_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    values = _values(result)
    found = values[0] if values and isinstance(values[0], list) else []
    if found or probe.env_secret in result.output:
        return Outcome(False, f"the caller's secret is in /proc/<pid>/environ of pids {found}")
    return Outcome(True, f"no visible process shows it ({classify(result)})")


def _files_setup(probe: Probe) -> None:
    secret = f"ra3bench-file-secret-{uuid.uuid4().hex}"
    paths = [probe.host_file(Path.home(), secret), probe.host_file(Path.cwd(), secret)]
    probe.state.update(secret=secret, paths=[str(p) for p in paths])


_READ = """\
def f(path):
    try:
        with open(path) as src:
            return src.read()
    except OSError as exc:
        return type(exc).__name__
"""


def _files_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    secret = probe.state["secret"]
    values = _values(result)
    said = [("SECRET READ" if v == secret else (v or classify(result))) for v in values]
    where = ", ".join(f"{label}: {s}" for label, s in zip(("home", "cwd"), said, strict=False))
    if secret in repr(values) + result.output:
        return Outcome(False, where)
    return Outcome(True, where)


_KILL_PARENT = "import os, time\ndef f():\n    os.kill(os.getppid(), 9)\n    time.sleep(1)\n    return 'survived'\n"
_KILL_ALL = "import os, time\ndef f():\n    os.kill(-1, 9)\n    time.sleep(1)\n    return 'survived'\n"


def _kill_check(probe: Probe, result: JobResult, wall: float) -> Outcome:
    status = classify(result)
    first = status + (f" ({_first_line(_why(result), 50)})" if _why(result) else " (the signal reached nothing vital)")
    outcome = _next_job_works(probe, first)
    if status not in ("sandbox_error", "error", "ok"):
        return Outcome(False, outcome.observed)
    return outcome


ATTACKS: list[Attack] = [
    Attack(
        "network: connect to a host loopback port",
        "contained",
        "no connection reaches the listener the check opened on the host",
        lambda p: _job(_CONNECT, [[h, p.state["port"]] for h in p.state["hosts"]], limit=5.0),
        _network_check,
        requires=(NETWORK,),
        setup=_network_setup,
    ),
    Attack(
        "file system: write under the host's /tmp",
        "contained",
        "the file does not exist on the host afterwards",
        _write_job(lambda: ["/tmp"]),
        _write_check,
        requires=(HOST_FS,),
    ),
    Attack(
        "file system: write to the caller's cwd and home",
        "contained",
        "the files do not exist on the host afterwards",
        _write_job(lambda: [os.getcwd(), str(Path.home())]),
        _write_check,
        requires=(HOST_FS,),
    ),
    Attack(
        "fork bomb",
        "contained",
        "timeout/error/memory in bounded time; no process left",
        lambda p: _job(_FORK_BOMB, [[p.token]], limit=2.0),
        _fork_bomb_check,
        requires=(PROCESS_LIMIT,),
        safe_only_with=(PROCESS_LIMIT,),
    ),
    Attack(
        "memory: allocate 4 GB (limit 1 GB)",
        "memory",
        "the call is memory, in bounded time",
        lambda p: _job(_MEMORY, [[]], limit=20.0),
        _status_check("memory"),
    ),
    Attack(
        "infinite loop",
        "timeout",
        "the call is timeout, in bounded time",
        lambda p: _job("def f():\n    while True:\n        pass\n", [[]], limit=1.0),
        _status_check("timeout"),
    ),
    Attack(
        "100 MB of stdout",
        "contained",
        "job ok, output truncated, bounded time",
        lambda p: _job(_STDOUT, [[]], limit=30.0),
        _stdout_check,
    ),
    Attack(
        "process left behind: background child",
        "contained",
        "no such process after the job (host /proc and a follow-up job)",
        lambda p: _job(_BACKGROUND, [[p.token]]),
        _leftover_check,
    ),
    Attack(
        "process left behind: setsid + double fork",
        "contained",
        "no such process after the job (host /proc and a follow-up job)",
        lambda p: _job(_ESCAPE, [[p.token]]),
        _leftover_check,
    ),
    Attack(
        "random.py planted for the next job",
        "contained",
        "the next job's `import random; random.random()` is the stdlib's",
        lambda p: _job(_PLANT, [[p.token]]),
        _plant_check,
    ),
    Attack(
        "environment: os.environ of the caller",
        "contained",
        "a secret set in the caller's environment is absent",
        lambda p: _job(_ENVIRON, [[]]),
        _env_check,
    ),
    Attack(
        "environment: /proc/<pid>/environ of the caller",
        "contained",
        "no process the job can see shows the caller's secret",
        lambda p: _job(_PROC_ENVIRON, [[p.env_secret]], limit=10.0),
        _proc_env_check,
        requires=(PRIVATE_PIDS, JOB_UID),
    ),
    Attack(
        "files: read a secret in the caller's home and cwd",
        "contained",
        "the secret files (mode 0644) cannot be read",
        lambda p: _job(_READ, [[path] for path in p.state["paths"]]),
        _files_check,
        requires=(HOST_FS,),
        setup=_files_setup,
    ),
    Attack(
        "kill the harness: os.kill(os.getppid(), 9)",
        "sandbox_error or error",
        "no pass; the next job works on every worker",
        lambda p: _job(_KILL_PARENT, [[]]),
        _kill_check,
    ),
    Attack(
        "kill everything: os.kill(-1, 9)",
        "sandbox_error or error",
        "no pass; the next job works on every worker",
        lambda p: _job(_KILL_ALL, [[]]),
        _kill_check,
        requires=(PRIVATE_PIDS,),
        safe_only_with=(PRIVATE_PIDS,),
    ),
]


# ---- runner


def plant_env_secret() -> str:
    """Put a secret into this process's environment; call it before the sandbox starts."""
    if not os.environ.get(ENV_SECRET_VAR):
        os.environ[ENV_SECRET_VAR] = f"ra3bench-env-secret-{uuid.uuid4().hex}"
    return os.environ[ENV_SECRET_VAR]


def backend_capabilities(sandbox: Sandbox) -> frozenset[str]:
    """What the backend claims to contain: its own ``capabilities`` if it declares them, else from describe().

    The local sandbox's strength depends on bubblewrap and on the job uid; any other backend
    (docker, plugins) is held to everything unless it declares less.
    """
    declared = getattr(sandbox, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    return capabilities_of(sandbox.describe())


def capabilities_of(info: dict) -> frozenset[str]:
    """What a sandbox contains, from its describe(): a local one by bubblewrap and job uid, any other all."""
    if info.get("kind") != "local":
        return frozenset(CAPABILITIES)
    caps = set()
    if info.get("bwrap"):
        caps |= {NETWORK, HOST_FS, PRIVATE_PIDS}
    if info.get("uid") is not None:
        caps |= {JOB_UID, PROCESS_LIMIT}
    return frozenset(caps)


def judge(attack: Attack, outcome: Outcome | None, caps: frozenset[str], wall_s: float = 0.0) -> Report:
    """Turn an observation into a table row; only a claimed, uncontained attack is a FAIL."""
    expected = f"{attack.expected}: {attack.containment}"
    claimed = not attack.requires or bool(caps & set(attack.requires))
    missing = " or ".join(attack.requires)
    if outcome is None:
        unsafe = " or ".join(attack.safe_only_with)
        result = f"not run (backend has no {unsafe}: it would reach the host)"
        return Report(attack.name, expected, "-", result, None, claimed, wall_s)
    if outcome.contained:
        result = "OK"
    elif claimed:
        result = "FAIL"
    else:
        result = f"not contained (backend has no {missing})"
    return Report(attack.name, expected, outcome.observed, result, outcome.contained, claimed, wall_s)


def run_attack(sandbox: Sandbox, attack: Attack, caps: frozenset[str], env_secret: str) -> Report:
    if attack.safe_only_with and not caps & set(attack.safe_only_with):
        return judge(attack, None, caps)
    probe = Probe(sandbox, env_secret)
    start = time.monotonic()
    try:
        if attack.setup is not None:
            attack.setup(probe)
        job = attack.job(probe)
        result = sandbox.run(job)
        wall = time.monotonic() - start
        outcome = attack.check(probe, result, wall)
    except Exception as exc:  # a broken check must show up as a failure, not end the run
        outcome = Outcome(False, f"check crashed: {type(exc).__name__}: {exc}"[:160])
    finally:
        probe.close()
    return judge(attack, outcome, caps, time.monotonic() - start)


def run_attacks(
    sandbox: Sandbox,
    attacks: Iterable[Attack] | None = None,
    *,
    capabilities: Iterable[str] | None = None,
    on_report: Callable[[Report], None] | None = None,
) -> list[Report]:
    """Run every attack in ``sandbox``, one after another; the environment secret must predate the sandbox."""
    caps = backend_capabilities(sandbox) if capabilities is None else frozenset(capabilities)
    env_secret = plant_env_secret()
    reports = []
    for attack in ATTACKS if attacks is None else attacks:
        report = run_attack(sandbox, attack, caps, env_secret)
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports
