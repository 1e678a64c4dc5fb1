"""One node of a Ray cluster as ra3bench sees it: an actor that owns that node's sandbox pool.

The actor is trusted infrastructure, like the host side of a local pool: it starts the node's
Docker (or bubblewrapped local) workers, runs the jobs the driver sends in batches, and returns
what its pool returns, whose frames its own trusted code has already validated
(``pool.Worker``, ``claims``). It never sees an expected value: the driver keeps those and judges
(``ray_pool.py``). It reports what the driver needs to refuse a node that would judge under
other conditions: the harness and image it runs, its CPU and a short speed probe.

Results go back on one stream per node (:meth:`NodeSandbox.events`), each job's as soon as it
ends, not a batch's when its slowest job ends. A fail-fast job's answers go back on it too, as
they stream out of the sandbox: the driver checks them against the expected values only it holds
and, at the first failed test, sends :meth:`NodeSandbox.stop`; the node then stops the job at its
next answer, as a local pool stops it at the failed one. Without that every test of a failing
program ran on the node, which doubled the judging time of a whole HumanEval+ run.

This module does not import Ray: the driver makes the class an actor (``ray.remote``). Batches and
events cross as bytes the standard pickle wrote: Ray's own serializer (cloudpickle) calls back into
Python for every object, and a result holds one per test (about half a millisecond a job).
"""

from __future__ import annotations

import os
import pickle
import platform
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult
from ra3bench.sandbox.claims import MAX_CLAIM_DEPTH

PROBE_ROUNDS = 5
# Streamed answers wait this long for more (or a result) to go back with: every item on the stream
# costs a Ray message, and a stop order that comes a few ms later stops the job a few tests later.
# A job's first answer goes at once (the test most often failed); the wait doubles, up to the
# maximum, while a job streams on (a whole HumanEval+ run: 2.9 items a job instead of 4.1, the same
# number of tests run).
ANSWERS_WAIT_S = 0.005
ANSWERS_WAIT_MAX_S = 0.04


@dataclass
class NodeFacts:
    """What a node says about itself; the driver checks it and the manifest records it."""

    node_id: str
    host: str
    kind: str  # the node's sandbox: docker | local
    workers: int
    harness: str  # sha256 of the sandbox harness (and Dockerfile) this node runs
    image_id: str  # docker: the image's id; local: ""
    cpu: str
    cpus: int
    probe_s: float  # speed_probe() here
    code: str = ""  # code_digest() here: the sandbox package that pickles jobs and results across
    sandbox: dict[str, Any] = field(default_factory=dict)  # the pool's own describe()


@dataclass
class NodeEvents:
    """What a node sends back at once on its stream: answers streamed by running jobs, and jobs that ended."""

    answers: list[tuple[int, int, CallResult]] = field(default_factory=list)  # (job key, call index, its result)
    # ended jobs; a call whose answer went out on the stream before is None here (each answer crosses once)
    done: list[tuple[int, JobResult]] = field(default_factory=list)
    errors: list[tuple[int, BaseException]] = field(default_factory=list)  # the node's pool raised, as a local one may

    def __bool__(self) -> bool:
        return bool(self.answers or self.done or self.errors)

    def __getstate__(self) -> dict[str, Any]:
        # Calls cross as plain tuples: a dataclass and an enum member cost Python calls to pickle and unpickle
        # each (several us a test on each side); tuples of built-ins stay in pickle's C code.
        return {
            "answers": [(key, i, _call_out(call)) for key, i, call in self.answers],
            "done": [(key, _result_out(result)) for key, result in self.done],
            "errors": self.errors,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.answers = [(key, i, _call_in(call)) for key, i, call in state["answers"]]
        self.done = [(key, _result_in(result)) for key, result in state["done"]]
        self.errors = state["errors"]


def _call_out(call: CallResult | None) -> tuple | None:
    return None if call is None else (call.status.value, call.value, call.time_s, call.error)


def _call_in(fields: tuple | None) -> CallResult | None:
    if fields is None:
        return None
    status, value, time_s, error = fields
    return CallResult(_STATUS[status], value, time_s, error)


def _result_out(result: JobResult) -> dict[str, Any]:
    # every field of the result (vars: a field added later crosses too), its calls compact
    return {
        **vars(result),
        "load": _call_out(result.load),
        "calls": [_call_out(call) for call in result.calls],
        "script": _call_out(result.script),
    }


def _result_in(state: dict[str, Any]) -> JobResult:
    return JobResult(
        **{
            **state,
            "load": _call_in(state["load"]),
            "calls": [_call_in(call) for call in state["calls"]],
            "script": _call_in(state["script"]),
        }
    )


_STATUS = {status.value: status for status in CallStatus}


def code_digest() -> str:
    """sha256 of ra3bench's sandbox package (jobs, results, pools, this actor): a driver and a node must run
    the same, or what one pickles the other may not read (the harness digest covers only the sandboxed side)."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def speed_probe() -> float:
    """Fastest of a few runs of a fixed pure-Python workload (the kind of code a test runs), in seconds:
    a node's speed relative to the driver's scales the reference timings behind the per-test time
    limits. The fastest, not the median: other load on the machine (pools starting, other nodes'
    probes) only ever slows a run down."""
    times = []
    for _ in range(PROBE_ROUNDS):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += (i * i) % 7
        values = sorted(str(i * 7919 % 10007) for i in range(20_000))
        total += len(values)
        times.append(time.perf_counter() - started)
    return min(times)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class NodeSandbox:
    """The sandbox pool of one node, driven by the driver's :class:`~ra3bench.sandbox.ray_pool.RaySandbox`."""

    def __init__(self, kind: str, workers: int | None, node_id: str) -> None:
        from ra3bench.sandbox import make_sandbox
        from ra3bench.sandbox.image import harness_digest

        self.sandbox = make_sandbox(kind, workers)
        self.sandbox.prestart()
        info = self.sandbox.describe()
        self.facts = NodeFacts(
            node_id=node_id,
            host=socket.gethostname(),
            kind=self.sandbox.name,
            workers=self.sandbox.workers,
            harness=str(info.get("harness") or harness_digest()),
            image_id=str(info.get("image_id") or ""),
            cpu=cpu_model(),
            cpus=os.cpu_count() or 1,
            probe_s=0.0,  # measured by probe(), one node at a time, once every pool is up
            code=code_digest(),
            sandbox=info,
        )
        self._link: Any = None  # the driver's direct connection (listen), once asked for
        self._ended = threading.Event()  # set at close()
        self._threads = ThreadPoolExecutor(max_workers=self.sandbox.workers * 2 + 2, thread_name_prefix="ra3bench-node")
        self._open_stream()

    def _open_stream(self) -> None:
        """The state behind :meth:`events`: what waits to go back, and the jobs running here."""
        self._ready = threading.Condition()
        self._out = NodeEvents()
        self._running: set[int] = set()
        self._stopping: set[int] = set()  # running jobs the driver saw fail: stopped at their next answer
        self._streamed: dict[int, dict[int, CallResult]] = {}  # running job -> the answers it streamed, by call
        self._urgent = False  # the stream goes now: a job's first answer, or a result, is waiting
        self._window = ANSWERS_WAIT_S  # how long answers wait for more: doubles while a job streams on
        self._closed = False

    def describe(self) -> NodeFacts:
        return self.facts

    def probe(self) -> float:
        """The speed probe, when the driver asks: one node at a time, once every pool is up (probes that
        overlap a pool's start or each other make a node look slow)."""
        self.facts.probe_s = speed_probe()
        return self.facts.probe_s

    def listen(self, host: str, key: bytes) -> tuple[str, int]:
        """Open the direct connection for the driver on this node's address ``host`` (ray_link.py): from then on
        jobs, stop orders and the stream go through it, authenticated with ``key``."""
        from ra3bench.sandbox.ray_link import NodeEnd

        self._link = NodeEnd(host, key, self.events, self.submit, self.stop)
        return self._link.address

    def wait_closed(self) -> None:
        """Returns at :meth:`close`. The driver keeps one pending: Ray fails it when this actor or its node dies,
        which a connection to a machine that vanished would not show."""
        self._ended.wait()  # not the stream's condition: its notify() wakes one waiter, which must be the stream

    def submit(self, pickled: bytes) -> None:
        """Queue jobs on this node's pool (``workers`` at a time): a pickled list of (key, job, whether its answers
        go back as they come). Each job's result comes on :meth:`events` under its key."""
        batch: list[tuple[int, Job, bool]] = pickle.loads(pickled)
        with self._ready:
            self._running.update(key for key, _, _ in batch)
        for key, job, watched in batch:
            if watched:
                job = replace(job, answer_fails=self._watch(key))
            self._threads.submit(self._run, key, job)

    def stop(self, keys: list[int]) -> None:
        """The driver saw these jobs fail a test: each stops at its next answer."""
        with self._ready:
            self._stopping.update(key for key in keys if key in self._running)

    def events(self) -> Iterator[bytes]:
        """The node's stream (a Ray streaming generator): what happened since the last item, as soon as anything
        did, until :meth:`close`; each item a pickled :class:`NodeEvents`."""
        while True:
            with self._ready:
                while not self._out and not self._closed:
                    self._ready.wait()
                if not self._out:
                    return
                if not (self._out.done or self._out.errors or self._urgent):  # a moment for more answers to join
                    deadline = time.monotonic() + self._window
                    self._window = min(2 * self._window, ANSWERS_WAIT_MAX_S)
                    while not (self._out.done or self._out.errors or self._urgent or self._closed):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._ready.wait(left)
                out, self._out, self._urgent = self._out, NodeEvents(), False
            yield _pickled(out)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._ended.set()
        if self._link is not None:
            self._link.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.sandbox.close()

    def _watch(self, key: int) -> Any:
        """The job's ``answer_fails`` here: each answer goes to the driver; the job stops once the driver says so."""

        def fails(i: int, call: CallResult) -> bool:
            with self._ready:
                streamed = self._streamed.setdefault(key, {})
                if not streamed:  # a job's first answer goes at once: the test most often failed is the first
                    self._urgent = True
                    self._window = ANSWERS_WAIT_S
                if not self._out or self._urgent:  # else the stream is waiting for more: this one joins quietly
                    self._ready.notify()
                self._out.answers.append((key, i, call))
                streamed[i] = call
                return key in self._stopping

        return fails

    def _run(self, key: int, job: Job) -> None:
        try:
            result, error = self.sandbox.run(job), None
        except Exception as exc:  # the pool refused the job (as a local pool's run() would raise): the caller's error
            result, error = None, _portable(exc)
        with self._ready:
            streamed = self._streamed.pop(key, {})  # the job has ended: nothing streams for it any more
        if result is not None and streamed:  # sent once already: the driver puts them back (NodeEvents.done).
            # Only where the final answer says exactly the same (a program may send another value there, even
            # one that compares equal, 1 for true: the final one counts)
            calls = [None if i in streamed and _same(streamed[i], c) else c for i, c in enumerate(result.calls)]
            result = replace(result, calls=calls)
        with self._ready:
            self._running.discard(key)
            self._stopping.discard(key)
            if error is None:
                self._out.done.append((key, result))
            else:
                self._out.errors.append((key, error))
            self._ready.notify()


def _same(streamed: CallResult, final: CallResult) -> bool:
    """Whether two answers are the same to the last type and bit (1 is not true, 1.0 is not 1)."""
    return (
        streamed.status is final.status
        and streamed.error == final.error
        and _same_value(streamed.time_s, final.time_s)
        and _same_value(streamed.value, final.value)
    )


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) in (list, dict):  # pickles are equal only where every item is the same to the type
        try:
            return _dumps(a) == _dumps(b)
        except Exception:  # too deep to pickle: not the same, the final one stays
            return False
    if type(a) is float:
        return a.hex() == b.hex()  # -0.0 is not 0.0
    return a == b


def _pickled(out: NodeEvents) -> bytes:
    """``out`` as the bytes that cross to the driver. A value nested too deep to pickle only comes from a
    sandbox server that went around its own bound (frames.py); it is cut below the depth at which the judge
    has already refused it (``_cut``), so the verdict is the one a local pool gives, and the stream lives."""
    try:
        return _dumps(out)
    except RecursionError:
        cut = NodeEvents(
            answers=[(key, i, _cut_call(call)) for key, i, call in out.answers],
            done=[(key, _cut_result(result)) for key, result in out.done],
            errors=out.errors,
        )
        return _dumps(cut)


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


# JSON levels past which the judge's decoder (claims._decode) has refused any value: each of its
# levels spans at most 3 JSON levels (a dict tag, its list, a [key, value] pair).
CUT_DEPTH = 3 * MAX_CLAIM_DEPTH + 3


def _cut(value: Any, depth: int = 0) -> Any:
    """``value`` with what lies below CUT_DEPTH replaced by None: decoded, it is refused as before."""
    if type(value) is list:
        return None if depth >= CUT_DEPTH else [_cut(item, depth + 1) for item in value]
    if type(value) is dict:
        return None if depth >= CUT_DEPTH else {k: _cut(v, depth + 1) for k, v in value.items()}
    return value


def _cut_call(call: CallResult | None) -> CallResult | None:
    return call if call is None else replace(call, value=_cut(call.value))


def _cut_result(result: JobResult) -> JobResult:
    return replace(
        result,
        load=_cut_call(result.load),
        calls=[_cut_call(call) for call in result.calls],
        script=_cut_call(result.script),
        recorded=[replace(r, args=[_cut(a) for a in r.args], value=_cut(r.value)) for r in result.recorded],
    )


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (it crosses to the driver), else a RuntimeError that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
