"""The sandbox contract: what a job is, what comes back, and what a backend must do.

Threat model (also in docs/sandbox.md). A program under test is hostile, and it owns its
whole process, the harness code inside it included: it may exit early with status 0, return
objects whose ``__eq__`` always says True, print fake success, patch any class or function
(the encoder the harness uses among them), reach harness objects through ``gc``, write any
bytes to any descriptor it holds (the result pipe included), send itself signals, loop
forever, allocate without bound, fork without bound, write or read files outside its temp
dir, read the environment, leave processes behind, or plant files for the next job. The
sandbox contains it; the *verdict* is never taken from it:

* expected values never enter the untrusted process, nor any process a candidate runs in
  (``Job.holds_expected`` jobs get workers of their own), and no earlier job's data is in a
  candidate's memory (each child comes from a fork server that never reads a job): the harness
  only sends back the serialized return value of each call (``harness/protocol.py``), and
  trusted code compares;
* everything that comes back is the program's claim: the host parses it strictly
  (``claims.py``: known tags, bounded depth, finite numbers, a digest only where asked for)
  and judges with a total function; a malformed answer is the program's ``fail``;
* statuses come from what the host and the harness server observed (their clocks, wait
  status, rusage), not from what the program says: a claimed timeout the host did not see
  is an error, and only a seen timeout earns the re-run;
* a call counts only if its result frame arrived; a missing result is an error;
* every job runs in a fresh child process, in a fresh temp dir, in isolated-mode Python,
  under rlimits (address space, CPU, file size), as an unprivileged uid where possible;
  all processes of the job are killed when it ends;
* infrastructure faults are ``sandbox_error``: retried, never the model's failure; nothing a
  program can cause becomes one (RLVR drops those samples from the reward: that would be a
  reward hack). A program that takes its worker down twice, the second time a worker that
  had just run a trivial job, is the program's ``error``.

Backends differ in how strong the outer wall is (``Sandbox.isolation``): ``local`` runs the
harness as a host process (bubblewrap cuts network and file system where installed),
``docker`` in a locked-down container.
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class CallStatus(str, enum.Enum):
    """Outcome of one call (or of loading the program, or of a test script)."""

    OK = "ok"
    ERROR = "error"  # an exception, or the process died for a reason other than below
    TIMEOUT = "timeout"  # per-call wall limit or CPU limit
    MEMORY = "memory"  # MemoryError or the address-space limit
    SYNTAX = "syntax"  # only for loading: the program does not compile
    MISSING = "missing"  # not run: an earlier failure ended the job (fail_fast, or the job's stop rule)


@dataclass
class Limits:
    """Resource limits of one job; recorded in every manifest."""

    memory_mb: int = 4096  # RLIMIT_AS of the child
    output_bytes: int = 1 << 20  # stdout/stderr kept; the rest is discarded
    value_bytes: int = 16 << 20  # largest encoded return value sent back
    load_time_s: float = 10.0  # wall limit for running the program's top level
    cpu_slack: float = 2.0  # RLIMIT_CPU = cpu_slack * (load + sum of call limits) + 1
    digest_min_bytes: int = 1 << 16  # values of `digest_calls` larger than this come back as a sha256


_HOST_ONLY = frozenset({"calls_json", "holds_expected", "answer_fails"})  # Job fields that never travel to the sandbox


@dataclass
class Job:
    """Run ``program``, then call ``entry_point`` once per entry of ``calls``.

    ``script`` (data-set code, trusted content) runs after the calls in the program's
    globals; with ``record`` the entry point is wrapped first and every call the script
    makes is sent back (args, encoded value, time). That is how assertion-style test
    programs are turned into plain calls on the reference solution.
    """

    program: str
    entry_point: str | None = None
    calls: list[list[Any]] = field(default_factory=list)  # encoded positional args
    time_limits_s: list[float] = field(default_factory=list)  # one wall limit per call
    script: str | None = None
    script_time_s: float = 60.0
    record: bool = False
    seed: int | None = 0  # random.seed() before the calls/script, so recordings replay
    fail_fast: bool = True
    # Each call is [input text]: the whole program runs once per call as a process, with the
    # text on its real stdin; the call's value is what it wrote to stdout (harness/stdin_runner.py).
    stdin: bool = False
    # Without fail_fast, a job stops after this many timeouts (0: never), or once its group has
    # failed and it has run this long (0: no budget). The group's status stays what it was.
    max_timeouts: int = 0
    failed_budget_s: float = 0.0
    limits: Limits = field(default_factory=Limits)
    # Calls whose value is compared by plain equality: when large, only its sha256 travels back.
    digest_calls: list[int] = field(default_factory=list)
    # Values longer than harness/jobs.py's RAW_MIN_BYTES travel as their bytes, not parsed or
    # re-encoded on the way: ``CallResult.value`` is then a ``claims.RawValue``, which the judge
    # hashes (a value byte-equal to the expected one passes) and parses only when it must.
    raw_values: bool = False
    # `calls` already serialized (the same for every sample of a task): spliced in, not re-encoded.
    calls_json: str | None = field(default=None, repr=False, compare=False)
    # The job carries or produces expected values (a reference run, a checker given the correct
    # output): it runs only on workers that never serve a candidate program (DESIGN.md §5).
    holds_expected: bool = False
    # The trusted side's check of one answer as it streams in, (call index, result) -> True if that
    # test failed. With fail_fast, the first failed test stops the job there (harness/jobs.py's
    # Progress): the tests after it are not run, which a fail-fast verdict never looks at. Only an
    # optimization: a backend may ignore it, and the final answer is judged as ever.
    answer_fails: Callable[[int, CallResult], bool] | None = field(default=None, repr=False, compare=False)

    def to_wire(self) -> dict:
        wire = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _HOST_ONLY}
        wire["limits"] = asdict(self.limits)
        wire["stream"] = self.streams
        return wire

    @property
    def streams(self) -> bool:
        """Whether answers stream to the trusted side while it runs (``answer_fails``, with fail_fast)."""
        return self.answer_fails is not None and self.fail_fast

    def to_wire_json(self) -> bytes:
        """The framed body; pre-serialized calls are spliced in rather than encoded again."""
        if self.calls_json is None:
            return json.dumps(self.to_wire(), separators=(",", ":"), allow_nan=False).encode()
        wire = self.to_wire()
        wire["calls"] = 0  # placeholder, replaced below
        text = json.dumps(wire, separators=(",", ":"), allow_nan=False)
        head, tail = text.split('"calls":0', 1)
        return (head + '"calls":' + self.calls_json + tail).encode()


@dataclass
class CallResult:
    status: CallStatus
    value: Any = None  # encoded (protocol.encode_value); decode on the trusted side
    time_s: float = 0.0
    error: str = ""


@dataclass
class RecordedCall:
    args: list[Any]  # encoded
    value: Any  # encoded
    status: CallStatus
    time_s: float
    error: str = ""


@dataclass
class JobResult:
    load: CallResult
    calls: list[CallResult] = field(default_factory=list)
    script: CallResult | None = None
    recorded: list[RecordedCall] = field(default_factory=list)
    output: str = ""  # head of the program's stdout+stderr, for humans
    wall_s: float = 0.0
    sandbox_error: str = ""  # set only for infrastructure faults
    # Set when the answer could not be believed (sandbox/claims.py): judged a failure of the program.
    malformed: str = ""

    @classmethod
    def infrastructure_fault(cls, message: str) -> JobResult:
        return cls(load=CallResult(CallStatus.ERROR, error=message), sandbox_error=message)


class Sandbox(abc.ABC):
    """Runs jobs. Implementations are thread-safe and keep ``workers`` jobs in flight."""

    name: str = "?"
    isolation: str = "?"  # one line for users and manifests

    @abc.abstractmethod
    def run(self, job: Job) -> JobResult:
        """Run one job, blocking. Never raises for anything the program does."""

    def run_many(self, jobs: Iterable[Job]) -> Iterator[tuple[int, JobResult]]:
        """Yield (index, result) in completion order, ``workers`` at a time."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {pool.submit(self.run, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    @property
    @abc.abstractmethod
    def workers(self) -> int: ...

    def describe(self) -> dict:
        """What the manifest records about this sandbox (kind, isolation, image, versions)."""
        return {"kind": self.name, "isolation": self.isolation, "workers": self.workers}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers (processes, containers)."""

    def prestart(self) -> None:  # noqa: B027 - optional hook
        """Start the workers for candidate programs in the background, without waiting: a run's
        set-up (data, expected outputs) then overlaps their start (a container's ~0.4 s)."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
