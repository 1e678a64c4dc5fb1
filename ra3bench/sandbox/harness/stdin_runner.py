"""Stdin jobs: each test runs the whole program as its own process, with real fds 0 and 1.

Competitive-programming tests (LiveCodeBench's AtCoder/Codeforces problems, Codeforces) feed
input text on stdin and read the answer from stdout. Nothing is mocked: per test the fork server
(``zygote.py``) forks a fresh child whose fd 0 is a file holding the input and whose fd 1 is a
file that becomes the answer; the child runs the program as ``__main__`` and exits. The answer
text goes back as the call's value and trusted code compares it (``ra3bench/checkers.py``).

Per test: the job's rlimits (address space, output size, processes), ``RLIMIT_CPU`` of the
test's limit (rounded up) and a wall deadline of the limit, a big stack (deep recursion is
common in such programs), and the same cleanup of leftovers as any job. ``exit(0)`` or
falling off the end is success; a non-zero exit status, an exception or a signal is an
error; ``MemoryError`` is memory; the wall limit, or a CPU limit the process really reached, is
a timeout; an answer over ``value_bytes`` is an error.

The program can write to the status pipe too, so the child's status message is believed only
from a process that then exited normally with status 0 (the harness's own way out), and never
"syntax" for a test; otherwise the wait status and rusage decide (``frames.exit_verdict``).

Standard library only, like the rest of the harness.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import resource
import select
import sys
import time
import types
from typing import Any

try:
    from . import frames, jobs, reaper, runner
except ImportError:  # run as a script inside the sandbox
    import frames  # type: ignore[no-redef]
    import jobs  # type: ignore[no-redef]
    import reaper  # type: ignore[no-redef]
    import runner  # type: ignore[no-redef]

STACK_BYTES = 256 << 20  # RLIMIT_STACK wanted for the program's main thread
STATUS_BYTES = 1 << 16  # the child's status message, at most
READY = b"R"
EXIT_MEMORY = jobs.EXIT_MEMORY

_perf = time.perf_counter
_os_write = os.write


def run_stdin_job(server: Any, job: dict, tmp: str, out_fd: int, stop: jobs.StopRule) -> dict:
    """All of a stdin job: a compile check, then one process per test (``server`` is the harness Server)."""
    n = len(job["calls"])
    load = _run_one(server, job, tmp, out_fd, None)
    missing = jobs.result("missing", "")
    calls: list[dict] = []
    progress = server.progress
    if load["status"] == "ok":
        for i in range(n):
            result = _run_one(server, job, tmp, out_fd, i)
            calls.append(result)
            if result["status"] != "ok" and job["fail_fast"]:
                break
            if not job["fail_fast"] and stop.update(result):
                missing = {**missing, "error": stop.reason}
                break
            answer = result.get("value")
            progress.send([(i, result, len(answer) if type(answer) is str else 0)])
            if progress.stop_asked():  # the trusted side found this answer wrong
                missing = {**missing, "error": jobs.STOPPED}
                break
    load.pop("value", None)
    calls += [dict(missing) for _ in range(n - len(calls))]
    return {"load": load, "calls": progress.final_calls(calls), "script": None, "recorded": [], "sandbox_error": ""}


def _run_one(server: Any, job: dict, tmp: str, out_fd: int, index: int | None) -> dict:
    """Compile the program (``index`` None) or run it on test ``index``; a call result dict."""
    limits = job["limits"]
    extra = None
    if index is None:
        limit = float(limits["load_time_s"])
        text = ""
    else:
        limit = float(job["time_limits_s"][index])
        call = job["calls"][index]
        if not _is_input(call):
            return jobs.result("error", "a stdin test must be [input text] or [input text, {file: text}, [argv]]")
        text, extra = call[0], (call[1:] if len(call) == 3 else None)
    in_path = os.path.join(tmp, ".stdin")
    answer_path = os.path.join(tmp, ".stdout")
    with open(in_path, "wb") as handle:
        handle.write(text.encode("utf-8", "surrogateescape"))
    in_fd = os.open(in_path, os.O_RDONLY)
    answer_fd = os.open(answer_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    rfd, wfd = os.pipe()
    cpu_s = max(1, math.ceil(limit))
    payload = {"kind": "stdin", "tmp": tmp, "index": index, "cpu_s": cpu_s}
    payload.update(program=job["program"], limits=limits, extra=extra)
    try:
        try:
            pid = server.zygote.spawn(payload, [wfd, out_fd, in_fd, answer_fd])
        except Exception as exc:  # the fork server is gone, or could not fork
            if not server.program_ran:
                raise  # nothing of this job ran yet: an infrastructure fault
            return jobs.result("error", f"the program's process could not start ({exc})")
        finally:
            os.close(wfd)
            wfd = -1
        status, message, elapsed = _supervise(server, pid, rfd, limit, cpu_s, job, index)
        if status == "ok" and index is not None:
            return _answer(answer_fd, int(limits["value_bytes"]), elapsed)
        return {**jobs.result(status, message), "time_s": elapsed}
    finally:
        for fd in (rfd, wfd, in_fd, answer_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        for path in (in_path, answer_path):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _is_input(call: Any) -> bool:
    """``[stdin text]``, or ``[stdin text, {"d": [[name, text], ...]}, [argv...]]`` (a checker's files and argv)."""
    if type(call) is not list or not call or type(call[0]) is not str:
        return False
    if len(call) == 1:
        return True
    if len(call) != 3 or type(call[1]) is not dict or type(call[2]) is not list:
        return False
    files = call[1].get("d")
    return (
        type(files) is list
        and all(type(f) is list and len(f) == 2 and all(type(x) is str for x in f) for f in files)
        and all(type(a) is str for a in call[2])
    )


# --------------------------------------------------------------------------- in the child


def child(opts: Any, payload: dict, out_fd: int, wfd: int, in_fd: int, answer_fd: int) -> None:
    """In the forked child: fds, limits, uid, then compile (and run) the program."""
    limits = payload["limits"]
    runner.setup_child(
        opts,
        limits,
        int(payload["cpu_s"]),
        payload["tmp"],
        out_fd,
        wfd,
        stdin_fd=in_fd,
        stdout_fd=answer_fd,
        fsize=max(int(limits["output_bytes"]), int(limits["value_bytes"])),
    )
    with contextlib.suppress(ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        wanted = STACK_BYTES if hard == resource.RLIM_INFINITY else min(STACK_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))
    status, error = "ok", ""
    try:
        code = compile(payload["program"], "<program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        _send(wfd, {"status": "syntax", "error": f"{type(exc).__name__}: {exc}"})
        return
    if payload["index"] is None:
        _send(wfd, {"status": "ok", "error": ""})
        return
    extra = payload["extra"]
    if extra is not None:  # a checker: its files in the working dir, its arguments in sys.argv
        for name, text in extra[0]["d"]:
            if os.path.basename(name) != name or name in ("", ".", ".."):
                _send(wfd, {"status": "error", "error": f"bad file name {name!r}"})
                return
            with open(name, "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(text)
        sys.argv[:] = extra[1] or [""]
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    me = os.getpid()
    atexit._clear()  # only the program's own exit handlers run at its end, not the server's
    _os_write(wfd, READY)
    try:
        exec(code, module.__dict__)
    except SystemExit as exc:  # exit() ends a program normally; only its status matters
        if exc.code not in (None, 0):
            status, error = "error", f"exit status {exc.code!r}"[:2000]
    except MemoryError:
        status, error = "memory", "MemoryError"
    except RecursionError as exc:
        status, error = "error", f"RecursionError: {exc}"[:2000]
    except BaseException as exc:
        status, error = "error", _describe(exc)
    if os.getpid() != me:  # a fork the program made and left running into here
        os._exit(0)
    _exit_like_python()
    try:
        sys.stdout.flush()
    except MemoryError:
        status, error = "memory", "MemoryError while writing the answer"
    except BaseException as exc:
        if status == "ok":
            status, error = "error", f"writing the answer failed: {_describe(exc)}"
    _send(wfd, {"status": status, "error": error})


def _exit_like_python() -> None:
    """What the interpreter does when a program ends: wait for its non-daemon threads (a program that
    prints from a thread it never joins still answers), then run its ``atexit`` handlers. The test's
    wall limit still holds: the server kills the process when it runs out."""
    threading = sys.modules.get("threading")
    shutdown = getattr(threading, "_shutdown", None)
    if callable(shutdown):
        with contextlib.suppress(BaseException):
            shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()


def _describe(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = "exception"
    return text[:2000]


def _send(wfd: int, message: dict) -> None:
    data = json.dumps(message).encode()[: STATUS_BYTES - 1]
    view = memoryview(data)
    while view:
        view = view[_os_write(wfd, view) :]


# --------------------------------------------------------------------------- in the server


def _supervise(
    server: Any, pid: int, rfd: int, limit: float, cpu_s: int, job: dict, index: int | None
) -> tuple[str, str, float]:
    """Wait for the child under its deadlines; return (status, error, seconds the program ran)."""
    buf = bytearray()
    started: float | None = None
    t0 = _perf()
    deadline = t0 + jobs.SETUP_S + float(job["limits"]["load_time_s"])
    timed_out = False
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    pidfd = -1
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    try:
        while True:
            left = deadline - _perf()
            if left <= 0:
                timed_out = True
                break
            events = dict(poller.poll(min(left, 0.05 if pidfd < 0 else left) * 1000 + 1))
            if rfd in events:
                chunk = os.read(rfd, STATUS_BYTES)
                if not chunk:
                    break  # every holder of the pipe closed it: the child exited
                buf += chunk
                if started is None and buf.startswith(READY):
                    del buf[:1]
                    started = _perf()
                    deadline = started + limit
                    server.program_ran = True
                if len(buf) >= STATUS_BYTES:
                    break
                continue
            if pidfd in events or (pidfd < 0 and reaper.has_ended(pid)):
                # its forks may hold the pipe open: take what is there and stop waiting
                with contextlib.suppress(BlockingIOError, OSError):
                    os.set_blocking(rfd, False)
                    buf += os.read(rfd, STATUS_BYTES)
                break
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    elapsed = _perf() - (started or t0)
    wait_status, cpu, rss = server._kill_job(pid)
    where = "loading" if started is None else "the test"
    if timed_out:
        return "timeout", f"time limit exceeded during {where} (process killed)", elapsed
    claim = _status_claim(buf, index)
    if claim is not None and wait_status is not None and os.WIFEXITED(wait_status) and os.WEXITSTATUS(wait_status) == 0:
        return claim[0], claim[1], elapsed
    memory_mb = float(job["limits"]["memory_mb"])
    died = frames.exit_verdict(wait_status, cpu, cpu_s, where, rss_kb=rss, memory_mb=memory_mb)
    return died["status"], died["error"], elapsed


def _status_claim(buf: bytearray, index: int | None) -> tuple[str, str] | None:
    """The child's status message, if well formed (whatever the bytes, this never raises)."""
    allowed = ("ok", "syntax", "error", "memory") if index is None else ("ok", "error", "memory")
    try:
        message = json.loads(bytes(buf))
    except (ValueError, RecursionError, MemoryError):
        return None
    if type(message) is not dict or type(message.get("status")) is not str or message["status"] not in allowed:
        return None
    error = message.get("error", "")
    return message["status"], (error if type(error) is str else "")[: jobs.ERROR_CHARS]


def _answer(answer_fd: int, value_bytes: int, elapsed: float) -> dict:
    size = os.fstat(answer_fd).st_size
    if size > value_bytes:
        return {**jobs.result("error", f"output too large: {size} bytes (limit {value_bytes})"), "time_s": elapsed}
    data = os.pread(answer_fd, value_bytes + 1, 0)
    text = data.decode("utf-8", "replace")
    return {"status": "ok", "value": text, "time_s": elapsed, "error": ""}
