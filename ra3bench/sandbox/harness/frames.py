"""Frames between the server and a job's child, and what the server makes of them.

The program owns its child, harness code included: it can patch the encoder, write any bytes to
the frame pipe (the only fd >= 3 it holds), send itself signals, exit with any code. So every
frame is a claim, and this module is where the server (the first observer) checks it:

* parsing is total: bytes that are not a well-formed frame (bad length, invalid UTF-8, not JSON,
  nesting deep enough to exhaust the parser, a 5,000-digit integer, a non-finite number) raise
  :class:`Malformed`, which the server turns into the program's failure ("malformed result");
* :func:`accept` checks a frame against the item expected next and rebuilds it from checked
  fields only; it believes a claimed ``timeout`` only if its own clock saw the item run that
  long, and turns an ``ok`` that came after the limit into a ``timeout``;
* :func:`exit_verdict` classifies a process that ended without answering from its wait status
  and rusage, not from anything it said.

A ``memory`` claim (a MemoryError in the child) is believed: the program could raise MemoryError
itself, which is its own failure either way, so nothing is gained by faking one.
Standard library only.
"""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import time
from typing import Any

try:
    from . import jobs, protocol
except ImportError:  # run as a script inside the sandbox
    import jobs  # type: ignore[no-redef]
    import protocol  # type: ignore[no-redef]

FRAME_SLACK = 1 << 20  # a frame may exceed 2 x value_bytes by this much (field names, error text)
MAX_JSON_DEPTH = 4 * protocol.MAX_DEPTH + 16  # an encoded value nests at most ~3 JSON levels per level
# A claimed timeout is believed when the server saw the item run this share of its limit, minus the slack
# (the server reads the previous frame a little after the child sent it).
TIMEOUT_SHARE = 0.95
TIMEOUT_SLACK_S = 0.05
# An "ok" the server reads later than limit + this (+ 5 % of the limit + transfer time) came after the limit.
OVERRUN_S = 0.2
TRANSFER_BYTES_PER_S = 50e6
CPU_TOLERANCE_S = 0.1  # rusage vs RLIMIT_CPU: accounting granularity
MEMORY_SEEN_SHARE = 0.5  # exit code 3 is "memory" only if ru_maxrss reached this share of memory_mb

_perf = time.perf_counter
_SCALARS = frozenset({str, int, bool, type(None)})
_NUMBERS = _SCALARS | {float}
_HEADER = struct.Struct(">I")
_INF = math.inf


class Malformed(ValueError):
    """Bytes from a child that are not a well-formed frame: the program's failure."""


def _reject_constant(name: str) -> Any:
    raise Malformed(f"non-finite number {name} in a frame")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN = _DECODER.scan_once  # the C scanner that _DECODER.decode runs after skipping whitespace


def _parse(text: str) -> object:
    """``_DECODER.decode(text)``, without its two regex passes when ``text`` is exactly one JSON value
    (what the harness writes); anything else (whitespace around it, trailing data, no value) takes
    the full path, which accepts or rejects it as before."""
    try:
        message, end = _SCAN(text, 0)
    except StopIteration:  # no value starts at 0: whitespace first, or not JSON
        end = -1
    if end != len(text):
        message = _DECODER.decode(text)
    return message


# --------------------------------------------------------------------------- framing


def read_job(fd: int) -> bytes | None:
    """The next framed body on the server's own input (the trusted side); None at a clean end."""
    header = _read_exact(fd, 4, allow_eof=True)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > protocol.MAX_FRAME_BYTES:
        raise protocol.ProtocolError(f"frame of {size} bytes is over the limit")
    return _read_exact(fd, size, allow_eof=False)


def _read_exact(fd: int, size: int, allow_eof: bool) -> bytes | None:
    """Unbuffered: nothing beyond this frame is read, so the server may exec itself between jobs."""
    chunks = []
    remaining = size
    while remaining:
        try:
            chunk = os.read(fd, min(remaining, 1 << 24))
        except InterruptedError:
            continue
        if not chunk:
            if allow_eof and remaining == size:
                return None
            raise protocol.ProtocolError("stream ended inside a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def drain(fd: int, buf: bytearray, limit: int) -> tuple[bool, bool]:
    """Read what is available, up to ``limit`` buffered bytes; return (end of stream, stopped at the limit)."""
    while len(buf) < limit:
        want = min(1 << 20, limit - len(buf))
        try:
            data = os.read(fd, want)
        except BlockingIOError:
            return False, False
        except InterruptedError:
            continue
        if not data:
            return True, False
        buf += data
        if len(data) < want:  # the pipe is empty for now: poll() says when there is more
            return False, False
    return False, True


def next_frame(buf: bytearray, max_frame: int) -> tuple[dict, int] | None:
    """The next complete frame in ``buf`` (taken out of it) and its size, or None; raises :class:`Malformed`."""
    got = frame_at(buf, 0, max_frame)
    if got is not None:
        del buf[: 4 + got[1]]
    return got


def frame_at(buf: bytearray, pos: int, max_frame: int, raw: bool = False) -> tuple[Any, int] | None:
    """The complete frame that starts at ``pos`` in ``buf`` and its size, or None; raises :class:`Malformed`.

    ``buf`` is left as it is: a reader of several frames drops what it read once, not per frame.
    """
    if len(buf) - pos < 4:
        return None
    (size,) = _HEADER.unpack_from(buf, pos)
    if size > max_frame:
        raise Malformed(f"frame of {size} bytes is over the limit")
    end = pos + 4 + size
    if len(buf) < end:
        return None
    if raw:  # a large value's bytes (see jobs.RAW_MIN_BYTES): passed on as they are, the trusted side checks them
        return bytes(buf[pos + 4 : end]), size
    try:
        message = _parse(buf[pos + 4 : end].decode("utf-8"))
    except (ValueError, RecursionError, MemoryError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise Malformed(f"frame is not JSON ({type(exc).__name__})") from None
    if type(message) is not dict:
        raise Malformed("frame is not an object")
    return message, size


def json_problem(value: Any) -> str:
    """'' if decoded JSON ``value`` can be sent on as it is (bounded depth, finite numbers), else why not."""
    try:
        return _problem(value, 0)
    except RecursionError:
        return "is nested too deep"


def _problem(value: Any, depth: int) -> str:
    kind = type(value)
    if kind in _SCALARS:
        return ""
    if kind is float:
        return "" if math.isfinite(value) else "has a non-finite number"
    if depth >= MAX_JSON_DEPTH:
        return "is nested too deep"
    if kind is list:
        kinds = set(map(type, value))
        if kinds <= _NUMBERS:  # the long flat lists tests return: checked at C speed
            if float not in kinds:
                return ""
            floats = value if len(kinds) == 1 else [x for x in value if type(x) is float]
            return "" if all(map(math.isfinite, floats)) else "has a non-finite number"
        items = value
    elif kind is dict:
        items = value.values()  # keys of decoded JSON are str
    else:
        return f"has a {kind.__name__}"
    for item in items:
        if type(item) in _SCALARS:  # as _problem would say, without the call
            continue
        problem = _problem(item, depth + 1)
        if problem:
            return problem
    return ""


def _seconds(value: Any) -> float | None:
    """A claimed duration as a finite, non-negative float, or None."""
    if type(value) not in (int, float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _brief(value: Any) -> str:
    """A short, safe description of a claimed field for an error message."""
    if type(value) in _SCALARS and (type(value) is not str or len(value) <= 40):
        return repr(value) if type(value) is not int or value.bit_length() < 64 else "a huge int"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- claims


class ChildRun:
    """What one child produced: checked frames in order, and how it ended if it ended early."""

    def __init__(self) -> None:
        self.ready = False
        self.frames: list[dict] = []
        self.reason = ""  # "" (all expected frames arrived), deadline, exited, violation
        self.detail = ""
        self.status: int | None = None  # wait status, when it ended early (None: unknown)
        self.cpu_s = 0.0
        self.rss_kb = 0
        self.item_t0 = _perf()  # when the server read the previous frame: the item in flight started
        self.item_s = 0.0  # how long the item in flight had run when the child ended
        # A call frame that said "raw": n, and the call's limit, until its n bytes come.
        self.pending: tuple[dict, float] | None = None


def accept(run: ChildRun, frame: dict, size: int, items: list, job: dict, read_t: float) -> str:
    """Check a frame against the item expected next; record its checked form; return a problem or ''.

    ``read_t`` is when the server read the frame's last bytes: the item ran from the previous
    frame's ``read_t`` to this one, as far as anything the program cannot fake is concerned.
    """
    if run.pending is not None:
        return _accept_raw(run, frame, size, read_t)
    kind = frame.get("k")
    if not run.ready:
        if kind != "ready":
            return f"expected the ready frame, got {_brief(kind)}"
        run.ready = True
        run.item_t0 = read_t
        return ""
    item = items[len(run.frames)]
    expected = item if type(item) is str else "call"
    if type(kind) is not str or kind != expected:
        return f"unexpected frame {_brief(kind)} (expected {expected})"
    if expected == "call" and (type(frame.get("i")) is not int or frame["i"] != item):
        return f"a frame for call {_brief(frame.get('i'))} (expected call {item})"
    status = frame.get("status")
    if type(status) is not str or status not in (jobs.LOAD_STATUSES if kind == "load" else jobs.CALL_STATUSES):
        return f"bad status {_brief(status)}"
    error = frame.get("error", "")
    if type(error) is not str:
        return "error is not a string"
    observed = read_t - run.item_t0
    if observed < 0.0:
        observed = 0.0
    limit = float(job["time_limits_s"][item]) if expected == "call" else jobs.item_limit(job, item)
    claimed = frame.get("time_s", 0.0)  # informational: capped at what the deadline allowed
    if type(claimed) is not float or not 0.0 <= claimed < _INF:  # else: a finite, non-negative float already
        claimed = _seconds(claimed)
    checked: dict = {"k": kind, "status": status, "time_s": observed if claimed is None else min(claimed, limit + 1)}
    checked["error"] = error[: jobs.ERROR_CHARS]
    if kind == "call":
        checked["value"] = None
        if status == "ok" and "raw" in frame:
            return _expect_raw(run, frame, checked, limit, job)
        if status == "ok":
            if "value" not in frame:
                return "a call frame without a value"
            value = frame["value"]
            if type(value) not in _SCALARS:  # scalars other than floats are always fine
                problem = json_problem(value)
                if problem:
                    return f"the value {problem}"
            checked["value"] = value
    elif kind == "script":
        recorded = frame.get("recorded", [])
        if type(recorded) is not list:
            return "recorded is not a list"
        checked["recorded"] = clean_records(recorded)
    _record(run, checked, limit, observed, size, read_t)
    return ""


def _expect_raw(run: ChildRun, frame: dict, checked: dict, limit: float, job: dict) -> str:
    """A call frame that announces its value's bytes as the next frame: checked now, recorded with them."""
    size = frame["raw"]
    if not job.get("raw"):
        return "a raw value the job did not ask for"
    if "value" in frame:
        return "a call frame with both a value and a raw value"
    if type(size) is not int or not jobs.RAW_MIN_BYTES < size <= int(job["limits"]["value_bytes"]):
        return f"a raw value of {_brief(size)} bytes"
    checked["raw"] = size
    run.pending = (checked, limit)
    return ""


def _accept_raw(run: ChildRun, body: bytes, size: int, read_t: float) -> str:
    """The bytes a call frame announced: the call is answered once they are read (its clock runs till then)."""
    checked, limit = run.pending  # type: ignore[misc]
    run.pending = None
    if size != checked["raw"]:
        return f"a raw value of {size} bytes where its call frame said {checked['raw']}"
    checked["raw"] = body
    _record(run, checked, limit, max(read_t - run.item_t0, 0.0), size, read_t)
    return ""


def _record(run: ChildRun, checked: dict, limit: float, observed: float, size: int, read_t: float) -> None:
    """An answered item: its status as the server's clock saw it, then the next item starts at ``read_t``."""
    if checked["status"] != "ok" or observed > limit * 1.05 + OVERRUN_S:  # else nothing for _observe to change
        _observe(checked, item_limit=limit, observed=observed, size=size)
    run.frames.append(checked)
    run.item_t0 = read_t


def _observe(checked: dict, item_limit: float, observed: float, size: int) -> None:
    """Statuses from the server's clock: a timeout it did not see is an error; an ok after the limit a timeout."""
    status = checked["status"]
    if status == "timeout" and observed < item_limit * TIMEOUT_SHARE - TIMEOUT_SLACK_S:
        checked["status"] = "error"
        checked["error"] = (
            f"claimed a timeout that the harness did not observe (ran {observed:.3f} s of its {item_limit:g} s limit)"
        )
    elif status == "ok" and observed > item_limit * 1.05 + OVERRUN_S + size / TRANSFER_BYTES_PER_S:
        checked["status"] = "timeout"
        if "value" in checked:
            checked["value"] = None
        checked.pop("raw", None)
        checked["error"] = f"answered after its time limit ({observed:.3f} s of {item_limit:g} s)"


def clean_records(records: list) -> list[dict]:
    """The calls a (trusted) script made, as recorded in the child; ill-formed records are dropped."""
    clean = []
    for r in records:
        if type(r) is not dict:
            continue
        args, status, value = r.get("args"), r.get("status"), r.get("value")
        if type(args) is not list or type(status) is not str or status not in jobs.CALL_STATUSES:
            continue
        if json_problem(args) or json_problem(value):
            continue
        error = r.get("error", "")
        clean.append(
            {
                "args": args,
                "value": value,
                "status": status,
                "time_s": _seconds(r.get("time_s", 0.0)) or 0.0,
                "error": error[: jobs.ERROR_CHARS] if type(error) is str else "",
            }
        )
    return clean


# --------------------------------------------------------------------------- processes that ended


def exit_verdict(
    wait_status: int | None,
    cpu_s: float,
    cpu_limit: float,
    where: str,
    *,
    rss_kb: int = 0,
    memory_mb: float = 0.0,
) -> dict:
    """The result of an item whose process ended without answering: what the server saw decides.

    SIGXCPU (or the SIGKILL at the hard limit) is a timeout only if the process's CPU time
    reached ``cpu_limit``: a program can send itself SIGXCPU. Exit code 3 (the harness's own
    MemoryError) is memory only if ``ru_maxrss`` came near ``memory_mb``: a program can call
    ``os._exit(3)``. Also used by ``stdin_runner`` for whole-program tests.
    """
    if wait_status is None:
        return jobs.result("error", f"process ended during {where}; its exit status was lost")
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        reached = cpu_s >= cpu_limit - max(CPU_TOLERANCE_S, 0.02 * cpu_limit)
        if sig in (signal.SIGXCPU, signal.SIGKILL) and reached:
            return jobs.result("timeout", f"CPU time limit exceeded during {where}")
        if sig == signal.SIGXCPU:
            return jobs.result(
                "error", f"killed by SIGXCPU before its CPU limit during {where} ({cpu_s:.2f} of {cpu_limit:g} s CPU)"
            )
        if sig == signal.SIGXFSZ:
            return jobs.result("error", f"output size limit exceeded during {where}")
        return jobs.result("error", f"process killed by {_signal_name(sig)} during {where}")
    code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else -1
    if code == jobs.EXIT_MEMORY:
        if memory_mb and rss_kb >= MEMORY_SEEN_SHARE * memory_mb * 1024:
            return jobs.result("memory", f"out of memory during {where}")
        return jobs.result(
            "error", f"process exited during {where} (exit code {code}; it used {rss_kb >> 10} MB, not near its limit)"
        )
    return jobs.result("error", f"process exited during {where} (exit code {code})")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
