"""What runs inside a job's child: load the program, run the calls (or the script), stream frames.

The child is forked by the fork server (``zygote.py``), which never saw another job; it parses
its own job. It reports one frame per item (load, each call, script) over a private pipe. The
program owns this process, so nothing here is trusted by the server (``frames.py`` checks every
frame); what this module must get right is only what an honest program is owed: one timer per
item, covering the call *and* the encoding of its value, the pristine builtins while the
harness works, and the program's own output kept out of the frame pipe.

Standard library only.
"""

from __future__ import annotations

import builtins
import inspect
import os
import random
import resource
import signal
import sys
import tempfile
import time
import types
from typing import Any

try:
    from . import jobs, protocol, reaper, sinks
except ImportError:  # run as a script inside the sandbox
    import jobs  # type: ignore[no-redef]
    import protocol  # type: ignore[no-redef]
    import reaper  # type: ignore[no-redef]
    import sinks  # type: ignore[no-redef]

ERROR_CHARS = jobs.ERROR_CHARS
_HERE = os.path.dirname(os.path.abspath(__file__))
# Names the harness's modules have in sys.modules when the server runs as a script: a job's
# child drops them, so that the program's imports never find harness code by name.
HARNESS_MODULES = ("frames", "jobs", "protocol", "reaper", "runner", "server", "sinks", "stdin_runner", "zygote")

# Bound before any program runs, so that monkeypatching os/time/json/signal in the program
# does not change what the harness writes.
_os_write = os.write
_getpid = os.getpid
_perf = time.perf_counter
_setitimer = signal.setitimer
_SIGALRM = signal.SIGALRM
_ITIMER_REAL = signal.ITIMER_REAL
# signal.signal is a Python wrapper that converts enums (~10 us); the C function is what we need.
_set_handler = getattr(signal, "_signal", signal).signal
# The handler Python has on record (no system call): re-installed only when the program changed it.
_get_handler = getattr(signal, "_signal", signal).getsignal
_encoder = protocol.VALUE_ENCODER
_value_digest = protocol.value_digest
_encode_value = protocol.encode_value
_random_seed = random.seed
_decode_value = protocol.decode_value


class _Timeout(BaseException):
    """Raised by the SIGALRM handler; private so that ``except Exception`` does not catch it."""


class _Clock:
    """The per-item wall timer; ``fired`` stays set even if the program swallows the exception."""

    armed = False
    fired = False


def on_alarm(signum: int, frame: Any) -> None:
    if _Clock.armed:
        _Clock.fired = True
        raise _Timeout


def _limited(fn: Any, seconds: float, *args: Any) -> Any:
    """Run ``fn(*args)`` under an ITIMER_REAL of ``seconds``; raises _Timeout when it fires."""
    if _get_handler(_SIGALRM) is not on_alarm:  # the program replaced it (signal.signal)
        _set_handler(_SIGALRM, on_alarm)
    _Clock.fired = False
    _Clock.armed = True
    _setitimer(_ITIMER_REAL, seconds if seconds > 0.001 else 0.001)
    try:
        return fn(*args)
    finally:
        _setitimer(_ITIMER_REAL, 0)
        _Clock.armed = False


def _encode_text(value: Any) -> str:
    """The JSON text of a return value (run under the call's timer)."""
    return _encoder.encode(_encode_value(value))


def _describe(exc: BaseException, seconds: float = 1.0) -> str:
    try:
        name = type(exc).__name__
        # Under a running timer (a recorded call inside the script) that timer bounds str();
        # otherwise a hostile __str__ gets what is left of the item's limit (``seconds``).
        text = str(exc) if _Clock.armed else _limited(lambda: str(exc), max(seconds, 0.01))
    except BaseException:  # a hostile __str__ must not break the harness
        text = "<unprintable>"
        name = "exception"
    return (f"{name}: {text}" if text else name)[:ERROR_CHARS]


def _classify(exc: BaseException, seconds: float = 1.0) -> tuple[str, str]:
    """Status and message of an exception. A MemoryError is "memory": the program may raise one
    itself, but that is its own failure as much as running out of memory is (the server believes it)."""
    if isinstance(exc, _Timeout):
        return "timeout", "time limit exceeded"
    if isinstance(exc, MemoryError):
        return "memory", _describe(exc, seconds)
    return "error", _describe(exc, seconds)


class Child:
    """Everything that happens inside one forked child; never returns (os._exit)."""

    def __init__(self, job: dict, wfd: int, start: int, value_bytes: int) -> None:
        self.job = job
        self.wfd = wfd
        self.start = start
        self.value_bytes = value_bytes
        self.pid = os.getpid()
        self.builtins = sinks.Builtins()

    def send(self, message: dict, raw_value: str | None = None) -> None:
        text = _encoder.encode(message)
        if raw_value is not None:  # splice the already-encoded value in: no second dump of a big value
            text = text[:-1] + ',"value":' + raw_value + "}"
        self.send_text(text)

    def send_ok(self, i: int, elapsed: float, raw_value: str) -> None:
        """The frame of a call that returned: formatted directly, the hot path of a many-call job."""
        self.send_text(f'{{"k":"call","i":{i},"status":"ok","time_s":{elapsed!r},"error":"","value":{raw_value}}}')

    def send_raw(self, i: int, elapsed: float, raw_value: str) -> None:
        """A call's large value as its bytes: the call frame says how many, the next frame is them."""
        data = raw_value.encode()
        meta = f'{{"k":"call","i":{i},"status":"ok","time_s":{elapsed!r},"error":"","raw":{len(data)}}}'.encode()
        self.send_bytes(len(meta).to_bytes(4, "big") + meta + len(data).to_bytes(4, "big") + data)

    def send_text(self, text: str) -> None:
        data = text.encode()
        self.send_bytes(len(data).to_bytes(4, "big") + data)

    def send_bytes(self, data: bytes) -> None:
        """Framed bytes onto the pipe, in as many writes as it takes."""
        if _getpid() != self.pid:  # a fork of the harness made by the program: say nothing
            os._exit(0)
        written = _os_write(self.wfd, data)
        if written < len(data):  # a large frame: the pipe takes it in parts
            view = memoryview(data)[written:]
            while view:
                view = view[_os_write(self.wfd, view) :]

    def run_program_step(self, fn: Any, seconds: float, *args: Any) -> tuple[Any, BaseException | None, float]:
        """Run program code, ``fn(*args)``, under the timer; returns (value, exception, seconds)."""
        self.builtins.to_program()
        t0 = _perf()
        try:
            value = _limited(fn, seconds, *args)
            exc = None
        except BaseException as caught:  # SystemExit included: exit(0) is an error
            value, exc = None, caught
        elapsed = _perf() - t0
        self.builtins.to_harness()
        if _getpid() != self.pid:
            os._exit(0)
        if _Clock.fired or (exc is None and elapsed > seconds + 0.05):
            exc = _Timeout()  # the program swallowed the timer, or turned it off
        return value, exc, elapsed

    def encode(self, value: Any, budget: float) -> tuple[str, str]:
        """Return (status, encoded JSON text or error message); ``budget`` is what is left of the call's limit.

        The program can make encoding slow (a hostile ``__repr__``, a patched encoder): it runs
        on the call's own clock, so it costs the program its time, never more than its limit.
        """
        try:
            text = _limited(_encode_text, budget, value)
        except _Timeout:
            return "timeout", "time limit exceeded while encoding the return value"
        except MemoryError:
            return "memory", "MemoryError while encoding the return value"
        except BaseException as exc:  # hostile __repr__/__getattr__
            return "error", f"return value could not be encoded: {_describe(exc, 0.01)}"
        if _Clock.fired:  # a __repr__ swallowed the timer; encoding then ran past the limit
            return "timeout", "time limit exceeded while encoding the return value"
        if len(text) > self.value_bytes:
            return "error", f"return value too large: {len(text)} bytes encoded (limit {self.value_bytes})"
        return "ok", text

    def run_call(self, fn: Any, args: list, limit: float) -> tuple[str, str, float]:
        """(status, encoded value or error, seconds) of one call: the call and the encoding of its
        value share one limit, and the seconds reported cover both (the reference run's times
        calibrate the limits, so they must measure what the limit bounds)."""
        t0 = _perf()
        value, exc, elapsed = self.run_program_step(fn, limit, *args)
        if exc is not None:
            status, error = _classify(exc, limit - elapsed)
            return status, error, _perf() - t0
        status, text = self.encode(value, limit - (_perf() - t0))
        return status, text, _perf() - t0

    def main(self) -> None:
        job = self.job
        limits = job["limits"]
        output = sinks.Output(int(limits["output_bytes"]))
        sys.stdout = sys.__stdout__ = sinks.Sink(output, "<stdout>")  # type: ignore[misc]
        sys.stderr = sys.__stderr__ = sinks.Sink(output, "<stderr>")  # type: ignore[misc]
        module = types.ModuleType("__main__")
        sys.modules["__main__"] = module
        g = module.__dict__
        g["__builtins__"] = builtins
        self.send({"k": "ready"})

        # 1. load
        program = job["program"]
        load_time = float(limits["load_time_s"])
        t0 = _perf()
        try:
            code = _limited(lambda: compile(program, "<program>", "exec", dont_inherit=True), load_time)
        except (SyntaxError, ValueError) as exc:
            self.send({"k": "load", "status": "syntax", "time_s": _perf() - t0, "error": _describe(exc)})
            return
        except BaseException as exc:  # RecursionError, MemoryError, timeout
            status, error = _classify(exc)
            self.send({"k": "load", "status": status, "time_s": _perf() - t0, "error": error})
            return
        _, exc, elapsed = self.run_program_step(lambda: exec(code, g), max(load_time - (_perf() - t0), 0.001))
        elapsed = _perf() - t0
        output.flush()
        if exc is not None:
            status, error = _classify(exc, load_time - elapsed)
            self.send({"k": "load", "status": status, "time_s": _perf() - t0, "error": error})
            return
        self.send({"k": "load", "status": "ok", "time_s": elapsed, "error": ""})
        if job.get("seed") is not None:
            _random_seed(job["seed"])  # the module the program imported, seeded through our own reference

        # 2. calls
        entry = job.get("entry_point")
        calls = job.get("calls") or []
        times = job["time_limits_s"]
        fail_fast = bool(job.get("fail_fast", True))
        digest_calls = job.get("digest_calls") or set()
        digest_min_bytes = int(job["limits"].get("digest_min_bytes", 1 << 16))
        raw_min_bytes = jobs.RAW_MIN_BYTES if job.get("raw") else -1
        all_ok = True
        fn = None
        for i in range(self.start, len(calls)):
            limit = float(times[i])
            fn = _entry(g, entry)  # looked up per call, as a test would
            if not callable(fn):
                all_ok = False
                missing = f"entry point {entry} not defined"
                self.send({"k": "call", "i": i, "status": "error", "time_s": 0.0, "error": missing})
                if fail_fast:
                    return
                continue
            try:
                args = _decode_value(calls[i])
                if type(args) is not list:
                    raise TypeError(f"arguments must be a list, not {type(args).__name__}")
            except Exception as exc:  # a malformed job: report it on the call
                all_ok = False
                self.send({"k": "call", "i": i, "status": "error", "time_s": 0.0, "error": f"bad arguments: {exc}"})
                if fail_fast:
                    return
                continue
            status, text, elapsed = self.run_call(fn, args, limit)
            if status == "ok" and i in digest_calls and len(text) > digest_min_bytes:
                text = _encoder.encode(_value_digest(text))  # compared by equality: the hash will do
            raw, error = (text, "") if status == "ok" else (None, text)
            output.flush()
            if status == "ok" and 0 <= raw_min_bytes < len(text):
                self.send_raw(i, elapsed, text)
            elif status == "ok":
                self.send_ok(i, elapsed, raw)  # type: ignore[arg-type]
            else:
                self.send({"k": "call", "i": i, "status": status, "time_s": elapsed, "error": error})
            if status != "ok":
                all_ok = False
                if fail_fast:
                    return

        # 3. script
        fn = g.get(entry) if isinstance(entry, str) else None
        script = job.get("script")
        if script is None or (fail_fast and not all_ok):
            return
        recorder = _Recorder(self, fn, self.value_bytes) if job.get("record") and callable(fn) else None
        if recorder is not None:
            g[entry] = recorder.wrapper()
        script_time = float(job.get("script_time_s", 60.0))
        _, exc, elapsed = self.run_program_step(
            lambda: exec(compile(script, "<script>", "exec", dont_inherit=True), g), script_time
        )
        output.flush()
        status, error = _classify(exc, script_time - elapsed) if exc is not None else ("ok", "")
        if recorder is not None and recorder.overflow and status == "ok":
            status, error = "error", recorder.overflow
        recorded = recorder.records if recorder is not None else []
        self.send({"k": "script", "status": status, "time_s": elapsed, "error": error, "recorded": recorded})


def _entry(g: dict, entry: Any) -> Any:
    """The callable a test calls: ``name`` in the program's globals, or for ``Class.method``
    (LeetCode's ``Solution``) a function that makes a fresh instance per call, so that the
    constructor runs under the call's timer and no state carries over between tests."""
    if not isinstance(entry, str):
        return None
    if "." not in entry:
        return g.get(entry)
    class_name, method = entry.split(".", 1)
    cls = g.get(class_name)
    if not callable(cls):
        return None
    return lambda *args: getattr(cls(), method)(*args)


class _Recorder:
    """Wraps the entry point for a (trusted) script: records args before and the value after each call."""

    def __init__(self, child: Child, fn: Any, budget: int) -> None:
        self.child = child
        self.fn = fn
        self.budget = budget
        self.records: list[dict] = []
        self.overflow = ""

    def _args(self, args: tuple, kwargs: dict) -> tuple[Any, str]:
        if kwargs:
            try:
                bound = inspect.signature(self.fn).bind(*args, **kwargs)
            except (TypeError, ValueError) as exc:
                return None, f"arguments could not be bound: {exc}"
            if bound.kwargs:
                return None, "keyword-only arguments cannot be recorded"
            args = bound.args
        return _encode_value(list(args)), ""

    def wrapper(self) -> Any:
        import functools

        fn = self.fn

        @functools.wraps(fn)
        def recorded_call(*args: Any, **kwargs: Any) -> Any:
            enc_args, note = self._args(args, kwargs)  # before the call: a mutating function must not change them
            t0 = _perf()
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                status, error = _classify(exc)
                self._add(enc_args, None, status, _perf() - t0, note or error)
                raise
            elapsed = _perf() - t0
            try:
                encoded = _encode_value(value)
            except Exception as exc:  # record the failure, do not break the script
                encoded, note = None, f"return value could not be encoded: {_describe(exc)}"
            self._add(enc_args, encoded, "ok" if not note else "error", elapsed, note)
            return value

        return recorded_call

    def _add(self, args: Any, value: Any, status: str, elapsed: float, error: str) -> None:
        if self.overflow:
            return
        self.budget -= len(_encoder.encode([args, value])) + 64
        if self.budget < 0:
            self.overflow = "recorded calls exceed the value_bytes limit"
            return
        self.records.append({"args": args, "value": value, "status": status, "time_s": elapsed, "error": error})


# --------------------------------------------------------------------------- setting up the child


def setup_child(
    opts: Any,
    limits: dict,
    cpu_s: int,
    tmp: str,
    out_fd: int,
    wfd: int,
    *,
    stdin_fd: int | None = None,
    stdout_fd: int | None = None,
    fsize: int | None = None,
) -> None:
    """Session, fds, limits, uid, paths of a job's child (stdin jobs pass their own fds 0/1 and limits).

    ``opts`` is the server's ``reaper.Options``; afterwards the child holds fds 0-2 and ``wfd`` only.
    """
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null if stdin_fd is None else stdin_fd, 0)
    os.dup2(out_fd if stdout_fd is None else stdout_fd, 1)
    os.dup2(out_fd, 2)
    os.closerange(3, wfd)  # what the fork server passed (payload, output file), /dev/null, its own fds
    os.closerange(wfd + 1, min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 20))
    os.chdir(tmp)
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_FSIZE, int(limits["output_bytes"]) if fsize is None else fsize)
    _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    if opts.nproc:
        _set_limit(resource.RLIMIT_NPROC, opts.nproc)
    _set_limit(resource.RLIMIT_AS, int(limits["memory_mb"]) << 20)
    if opts.drop:
        os.setgroups([])
        os.setresgid(opts.gid, opts.gid, opts.gid)
        os.setresuid(opts.uid, opts.uid, opts.uid)
    reaper.prctl(
        reaper.PR_SET_PDEATHSIG, signal.SIGKILL
    )  # after the uid change, which clears it; dies with the fork server
    # The server's environment is already the minimal one (server.main); only the per-job paths change.
    os.environ["HOME"] = tmp
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None
    sys.path[:] = [p for p in sys.path if p and p not in (_HERE, ".", tmp) and os.path.isabs(p)]
    for name in HARNESS_MODULES:
        sys.modules.pop(name, None)
    sys.argv[:] = [""]


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    if os.geteuid() != 0:  # an unprivileged process cannot raise its hard limit
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            hard = min(hard, current)
            soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))
