"""A warm pool of harness servers: what the ``local`` and ``docker`` sandboxes share.

A backend says how to start one worker (``PooledSandbox._launch``: a command line whose
stdin/stdout speak the framed protocol of ``harness/server.py``) and describes itself; this
module does the rest: lazy start, a queue of workers (one job at a time each), framed
request/response under a host-side deadline (the job's worst case in the harness plus
``HOST_GRACE_S``), and replacement; a worker is replaced after ``max_jobs_per_worker`` jobs.

Everything a worker answers is the program's claim (``claims.py``): an answer that is not a
well-formed result is the program's failure (``malformed``), a timeout the host's own clock
did not see is an error, not a timeout, and so is a syntax error the host's compiler does not
find. A worker that dies or hangs during a job is killed and replaced; whose fault was it? A
fresh worker runs a trivial job: if that fails too, the infrastructure is down
(``sandbox_error``: retried, never the model's fault); if it works, the job runs once more,
and a job that takes a healthy worker down a second time is the program's failure. Jobs that
carry expected values (``Job.holds_expected``) run on a pool of workers of their own, so no
candidate ever runs where they ran.
"""

from __future__ import annotations

import abc
import contextlib
import os
import queue
import select
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult, Limits, Sandbox
from ra3bench.sandbox.claims import MalformedClaim, RawValue, malformed, parse_call, parse_frame, parse_result
from ra3bench.sandbox.harness import jobs as harness_jobs
from ra3bench.sandbox.harness import protocol
from ra3bench.sandbox.harness import server as harness

HOST_GRACE_S = 30.0  # beyond the harness's own worst case before a worker counts as hung
START_GRACE_S = 30.0  # a fresh worker (bubblewrap or a container + interpreter start) answers its first job late
LOG_TAIL_BYTES = 600  # of a dead worker's stderr, quoted in the fault message
# A claimed timeout is believed when the host saw the job run this share of the limits claimed.
TIMEOUT_OBSERVED_SHARE = 0.9
# What a fresh worker runs to show the infrastructure works after a worker died during a job.
CANARY = Job(program="def f():\n    return 1\n", entry_point="f", calls=[[]], time_limits_s=[10.0], limits=Limits())


class WorkerFault(Exception):
    """The worker died or hung during a job: the infrastructure's fault, or the program's (``run`` finds out)."""


class WorkerGarbage(Exception):
    """The worker answered bytes that are not a frame: only a program that subverted it does that."""


@dataclass
class Launch:
    """How to start one worker: argv, its whole environment, and a name the backend knows it by."""

    argv: list[str]
    env: dict[str, str]
    name: str = ""  # e.g. the container's name
    cwd: str = "/"
    # Called after the worker process was killed (e.g. remove its container); must not hold the sandbox.
    on_kill: Callable[[], None] | None = field(default=None, repr=False)
    memory_mb: int = 0  # the worker's own memory ceiling, where it has one (a container's cgroup)


class AnswerStream:
    """The call results a fail-fast job streams while it runs (harness/jobs.py's Progress).

    Each is checked as strictly as the final answer (``parse_call``) and handed to the job's
    ``answer_fails``; the first failed test makes the worker send the stop order. The final answer
    leaves the streamed calls out (``null``); :meth:`fill` puts back exactly what was streamed, so
    the result judged is the one that would have come in one piece. A call left out that was never
    streamed stays ``null``, which ``parse_result`` rejects: malformed, the program's failure.
    """

    def __init__(self, job: Job) -> None:
        self.n = len(job.calls)
        self.answer_fails = job.answer_fails
        self.raw: dict[int, dict] = {}
        self.stop_sent = False

    def take(self, frame: dict) -> bool:
        """Record one progress frame; True when a test failed (stop). Raises MalformedClaim."""
        entries = frame.get("progress")
        if type(entries) is not list or len(frame) != 1:
            raise MalformedClaim("a progress frame of the wrong shape")
        failed = False
        for entry in entries:
            if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not int or type(entry[1]) is not dict:
                raise MalformedClaim("a progress entry of the wrong shape")
            i, data = entry
            if not 0 <= i < self.n or i in self.raw:
                raise MalformedClaim(f"progress for call {i} (the job has {self.n}; each once)")
            call = parse_call(data)
            self.raw[i] = data
            failed = failed or (call.status is CallStatus.OK and self._fails(i, call))
        return failed

    def _fails(self, i: int, call: CallResult) -> bool:
        if self.answer_fails is None:
            return False
        try:
            return bool(self.answer_fails(i, call))
        except Exception:  # only an optimization: the final judging decides
            return False

    def fill(self, message: dict) -> dict:
        calls = message.get("calls")
        if type(calls) is not list or not self.raw:
            return message
        return {**message, "calls": [self.raw.get(i) if c is None else c for i, c in enumerate(calls)]}


class Worker:
    """One server process and its pipes; used by one thread at a time."""

    def __init__(self, proc: subprocess.Popen, launch: Launch, log: IO[bytes] | None) -> None:
        self.proc = proc
        self.launch = launch
        self.log = log  # the worker's stderr when it goes to an anonymous file (quoted on faults)
        self.jobs = 0
        assert proc.stdin is not None and proc.stdout is not None
        self.wfd = proc.stdin.fileno()
        self.rfd = proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.buf = bytearray()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        return self.launch.name

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, payload: bytes, timeout: float, stream: AnswerStream | None = None, raw: bool = False) -> dict:
        """The job's answer; with ``stream``, progress frames before it are checked as they come; with
        ``raw``, the bytes of its raw values (the frames after it) are put in as :class:`RawValue`."""
        deadline = time.monotonic() + timeout
        self._write(payload, deadline)
        self.jobs += 1
        try:
            message = self._read(deadline)
            while stream is not None and "progress" in message:
                try:
                    failed = stream.take(message)
                except MalformedClaim as exc:
                    raise WorkerGarbage(str(exc)) from None
                if failed and not stream.stop_sent:
                    stream.stop_sent = True
                    with contextlib.suppress(OSError):  # a gone worker shows at the next read
                        os.write(self.wfd, harness_jobs.STOP_FRAME)
                message = self._read(deadline)
            if stream is not None:
                message = stream.fill(message)
            return self._with_raws(message, deadline, raw)
        except TimeoutError:
            raise WorkerFault(f"worker did not answer within {timeout:.0f} s: killed") from None

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self.wfd, select.POLLOUT)
        while view:
            try:
                view = view[os.write(self.wfd, view) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:  # EPIPE: the worker is gone
                raise WorkerFault(f"worker exited ({self.exit_text()}): {exc}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFault("worker did not take the job in time")
            poller.poll(left * 1000)

    def _with_raws(self, message: dict, deadline: float, allowed: bool) -> dict:
        """``message`` with each call's ``"raw": n`` replaced by the n bytes of the next frame."""
        calls = message.get("calls")
        if type(calls) is not list or not any(type(c) is dict and "raw" in c for c in calls):
            return message
        if not allowed:
            raise WorkerGarbage("a raw value the job did not ask for")
        sizes = [c["raw"] for c in calls if type(c) is dict and "raw" in c]
        if any(type(size) is not int or size < 0 for size in sizes):
            raise WorkerGarbage("a raw value of a bad size")
        if sum(sizes) > protocol.MAX_FRAME_BYTES:  # the bound one answer frame had before values travelled raw
            raise WorkerGarbage(f"raw values of {sum(sizes)} bytes in all, over the limit of an answer")
        filled = []
        for call in calls:
            if type(call) is dict and "raw" in call:
                size = call["raw"]
                data = self._read(deadline, raw=True)
                if len(data) != size:
                    raise WorkerGarbage(f"a raw value of {len(data)} bytes where the answer said {size}")
                call = {k: v for k, v in call.items() if k != "raw"}
                call["value"] = RawValue(data)
            filled.append(call)
        return {**message, "calls": filled}

    def _read(self, deadline: float, raw: bool = False) -> Any:
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        while True:
            frame = self._frame(raw)
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            poller.poll(left * 1000 + 1)
            try:
                data = os.read(self.rfd, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise WorkerFault(f"worker exited during the job ({self.exit_text()})")
            self.buf += data

    def _frame(self, raw: bool = False) -> Any:
        buf = self.buf
        if len(buf) < 4:
            return None
        size = int.from_bytes(buf[:4], "big")
        if size > protocol.MAX_FRAME_BYTES:
            raise WorkerGarbage(f"a frame of {size} bytes")
        if len(buf) < 4 + size:
            return None
        body = bytes(buf[4 : 4 + size])
        del buf[: 4 + size]
        if raw:
            return body
        try:
            return parse_frame(body)
        except MalformedClaim as exc:
            raise WorkerGarbage(str(exc)) from None

    def exit_text(self) -> str:
        try:
            code = self.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return "still running"
        text = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        tail = self.log_tail()
        return f"{text}; stderr: {tail}" if tail else text

    def log_tail(self) -> str:
        """The last lines the worker wrote on stderr (e.g. docker's reason for not starting)."""
        if self.log is None:
            return ""
        try:
            size = os.fstat(self.log.fileno()).st_size
            data = os.pread(self.log.fileno(), LOG_TAIL_BYTES, max(0, size - LOG_TAIL_BYTES))
        except (OSError, ValueError):
            return ""
        return " | ".join(line for line in data.decode("utf-8", "replace").splitlines() if line.strip())

    def begin_stop(self) -> None:
        """Close stdin: the server exits at EOF once its current job (if any) is answered."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]

    def finish_stop(self, timeout: float) -> None:
        """Wait for the exit started by ``begin_stop``; kill if it lingers."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_files()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap (or the docker client) and everything in its group
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.launch.on_kill is not None:
            with contextlib.suppress(Exception):
                self.launch.on_kill()
        self._close_files()

    def _close_files(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.log):
            with contextlib.suppress(OSError, AttributeError):
                stream.close()  # type: ignore[union-attr]


def _kill_all(workers: set[Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


class PooledSandbox(Sandbox):
    """``workers`` long-lived harness servers, each replaced after a fault or ``max_jobs_per_worker`` jobs."""

    stop_timeout_s = 2.0  # how long a worker may take to exit after its stdin is closed

    def __init__(
        self, workers: int | None, max_jobs_per_worker: int, log_path: str | os.PathLike[str] | None = None
    ) -> None:
        self._n = max(1, workers or os.cpu_count() or 1)
        self._max_jobs = max(1, max_jobs_per_worker)
        self._log_path = log_path
        self._slots: queue.LifoQueue[Worker | None] = queue.LifoQueue()  # candidate programs
        self._expected_slots: queue.LifoQueue[Worker | None] = queue.LifoQueue()  # jobs with expected values
        for _ in range(self._n):
            self._slots.put(None)
            self._expected_slots.put(None)
        self._live: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Workers are started from one long-lived thread: bubblewrap's --die-with-parent (and any
        # parent-death signal) fires when the *thread* that forked it exits, e.g. a pool thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ra3bench-{self.name}-spawn")
        # Also at interpreter exit: no worker (or container) outlives the program that started it.
        self._finalizer = weakref.finalize(self, _kill_all, self._live)

    @abc.abstractmethod
    def _launch(self) -> Launch:
        """How to start one more worker."""

    def _stale(self, worker: Worker) -> bool:
        """Whether an idle worker no longer fits the sandbox's settings (it is replaced before the next job)."""
        return False

    @property
    def workers(self) -> int:
        return self._n

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (bwrap's, or the docker client's); for tests and diagnostics."""
        with self._lock:
            return [w.pid for w in self._live if w.alive()]

    def worker_names(self) -> list[str]:
        """Backend names of the live workers (container names for docker)."""
        with self._lock:
            return [w.name for w in self._live if w.alive()]

    # ---- running jobs

    def run(self, job: Job) -> JobResult:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        if len(job.time_limits_s) != len(job.calls):
            raise ValueError(f"job has {len(job.calls)} calls but {len(job.time_limits_s)} time limits")
        slots = self._expected_slots if job.holds_expected else self._slots
        outcome = self._run_once(job, slots)
        if not isinstance(outcome, WorkerFault):
            return outcome
        # The worker died or hung during this job. A fresh worker runs a trivial job: if that fails
        # too, the infrastructure is down; if it works, this job gets one more try on a healthy worker.
        canary = self._run_once(CANARY, slots)
        if isinstance(canary, WorkerFault) or not _canary_passed(canary):
            why = canary if isinstance(canary, WorkerFault) else (canary.sandbox_error or canary.malformed or "wrong")
            return JobResult.infrastructure_fault(
                f"{self.name} sandbox: {outcome}; a fresh worker then failed a trivial job too ({why})"
            )
        again = self._run_once(job, slots)
        if not isinstance(again, WorkerFault):
            return again
        message = (
            f"the program took its sandbox worker down twice, a healthy one the second time ({again}); "
            "a trivial job ran fine in between"
        )
        return JobResult(load=CallResult(CallStatus.ERROR, error=message[:2000]))

    def _run_once(self, job: Job, slots: queue.LifoQueue[Worker | None]) -> JobResult | WorkerFault:
        """``job`` on one worker from ``slots``: its result, or the fault of a worker that died or hung in it."""
        body = job.to_wire_json()
        payload = len(body).to_bytes(4, "big") + body
        budget = harness.job_budget_s(job.to_wire()) + HOST_GRACE_S
        worker = slots.get()
        try:
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            if worker is not None and not worker.alive():
                self._retire(worker, kill=True)
                worker = None
            elif worker is not None and self._stale(worker):
                self._retire(worker, kill=False)
                worker = None
            fresh = worker is None
            if worker is None:
                worker = self._start()
            started = time.monotonic()
            try:
                stream = AnswerStream(job) if job.streams else None
                message = worker.request(payload, budget + (START_GRACE_S if fresh else 0.0), stream, job.raw_values)
            except WorkerFault as exc:
                self._retire(worker, kill=True)
                worker = None
                return exc
            except WorkerGarbage as exc:  # the stream cannot be trusted any more: a fresh worker next time
                self._retire(worker, kill=True)
                worker = None
                return malformed(f"the sandbox answered {exc}")
            result = parse_result(message, len(job.calls))
            if result.malformed:
                self._retire(worker, kill=True)
                worker = None
                return result
            if worker.jobs >= self._max_jobs or result.sandbox_error:  # a harness fault: start afresh
                self._retire(worker, kill=False)
                worker = None
            return believe_syntax(job, believe_timeouts(job, result, time.monotonic() - started))
        except OSError as exc:  # the worker could not even start
            return JobResult.infrastructure_fault(f"{self.name} sandbox: cannot start a worker: {exc}")
        finally:
            if self._closed and worker is not None:
                self._retire(worker, kill=False)
                worker = None
            slots.put(worker)

    def prestart(self) -> None:
        """Each free candidate slot gets a worker, started on a daemon thread; a job that asks for a
        slot meanwhile waits for the first one ready. A worker that cannot start leaves its slot
        empty: the job that takes it tries again and reports why."""

        def fill_one() -> None:
            worker = self._slots.get()
            try:
                if worker is None and not self._closed:
                    worker = self._start()
            except Exception:
                worker = None
            finally:
                if self._closed and worker is not None:  # closed while it started: it must not linger
                    self._retire(worker, kill=False)
                    worker = None
                self._slots.put(worker)

        for _ in range(self._n):
            threading.Thread(target=fill_one, name=f"ra3bench-{self.name}-prestart", daemon=True).start()

    def _start(self) -> Worker:
        launch = self._launch()
        if self._log_path:
            log: IO[bytes] | None = None
            stderr: IO[bytes] | int = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        else:
            log = tempfile.TemporaryFile(prefix=f"ra3bench-{self.name}-worker-")  # noqa: SIM115 - owned by the worker
            stderr = log
        try:
            proc = self._spawner.submit(
                subprocess.Popen,
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=launch.env,
                cwd=launch.cwd,
                close_fds=True,
                start_new_session=True,
                bufsize=0,
            ).result()
        except BaseException:
            if log is not None:
                log.close()
            raise
        finally:
            if log is None:
                stderr.close()  # type: ignore[union-attr]
        worker = Worker(proc, launch, log)
        with self._lock:
            self._live.add(worker)
        return worker

    def _retire(self, worker: Worker, kill: bool) -> None:
        with self._lock:
            self._live.discard(worker)
        if kill:
            worker.kill()
        else:
            worker.begin_stop()
            worker.finish_stop(self.stop_timeout_s)

    def close(self) -> None:
        self._closed = True
        idle: list[Worker] = []
        for slots in (self._slots, self._expected_slots):
            while True:
                try:
                    worker = slots.get_nowait()
                except queue.Empty:
                    break
                if worker is not None:
                    idle.append(worker)
        with self._lock:
            self._live.difference_update(idle)
            busy = list(self._live)
        for worker in idle:  # all at once: each may take a moment to exit (a container is removed)
            worker.begin_stop()
        for worker in idle:
            worker.finish_stop(self.stop_timeout_s)
        for worker in busy:  # still running a job in another thread: that job becomes a sandbox_error
            self._retire(worker, kill=True)
        self._spawner.shutdown(wait=False)


def _canary_passed(result: JobResult) -> bool:
    calls = result.calls
    return not (result.sandbox_error or result.malformed) and len(calls) == 1 and calls[0].value == 1


def believe_timeouts(job: Job, result: JobResult, wall_s: float) -> JobResult:
    """``result`` with its timeouts turned into errors unless the host's clock saw them.

    Each timeout costs at least its limit, so a job whose timed-out items' limits add up to more
    than the host saw it run claimed timeouts that did not happen: only a host-observed timeout
    earns the timeout re-run.
    """
    items: list[tuple[CallResult, float]] = [(result.load, job.limits.load_time_s)]
    items += [(call, job.time_limits_s[i]) for i, call in enumerate(result.calls) if i < len(job.time_limits_s)]
    if result.script is not None:
        items.append((result.script, job.script_time_s))
    claimed = sum(limit for call, limit in items if call.status is CallStatus.TIMEOUT)
    if claimed == 0 or wall_s >= TIMEOUT_OBSERVED_SHARE * claimed:
        return result
    note = f"claimed a timeout the host did not observe (the job ran {wall_s:.2f} s; its timeouts claim {claimed:g} s)"
    for call, _ in items:
        if call.status is CallStatus.TIMEOUT:
            call.status, call.error = CallStatus.ERROR, note
    return result


def believe_syntax(job: Job, result: JobResult) -> JobResult:
    """``result`` with a claimed syntax error turned into an error unless the host's own compiler agrees.

    ``compile`` runs no code of the program; whatever it raises (SyntaxError, ValueError for a NUL
    byte, RecursionError or MemoryError for absurd nesting) means the program does not compile.
    """
    if result.load.status is not CallStatus.SYNTAX:
        return result
    try:
        compile(job.program, "<program>", "exec", dont_inherit=True)
    except Exception:
        return result
    result.load.status = CallStatus.ERROR
    result.load.error = "claimed a syntax error, but the program compiles"
    return result
