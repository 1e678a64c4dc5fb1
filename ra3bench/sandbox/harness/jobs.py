"""A job as the harness sees it: defaults, the items it answers in order, deadlines, the stop rule.

Shared by the server (which supervises) and a job's child (which parses its own copy of the job,
handed to it by the fork server): both must derive the same limits from the same bytes.
Standard library only, like the rest of the harness.
"""

from __future__ import annotations

import json
import os
import select
import time

GRACE_S = 1.0  # the server's backstop beyond an item's own limit
SETUP_S = 5.0  # fork + setup until the child says it is ready
CLEANUP_S = 5.0  # the most time spent killing leftovers of one job
SCRIPT_EXTRA_S = 1.0  # a script's recorder encodes as it goes: a little room beyond script_time_s
ERROR_CHARS = 2000
EXIT_MEMORY = 3  # child exit code when a MemoryError escaped the harness itself
CALL_STATUSES = frozenset({"ok", "error", "timeout", "memory"})
LOAD_STATUSES = CALL_STATUSES | {"syntax"}
LIMIT_DEFAULTS = {
    "memory_mb": 4096,
    "output_bytes": 1 << 20,
    "value_bytes": 16 << 20,
    "load_time_s": 10.0,
    "cpu_slack": 2.0,
    "digest_min_bytes": 1 << 16,
}

_perf = time.perf_counter


def job_budget_s(job: dict) -> float:
    """Worst-case wall time of one job in the server (every call crashes and forces a reload).

    Takes the wire dict (``Job.to_wire()``): the trusted side sizes its own deadline with it.
    A call's value is encoded under the call's own limit, so a call costs its limit plus the grace.
    """
    limits = job.get("limits") or {}
    load = float(limits.get("load_time_s", 10.0))
    times = [float(t) for t in job.get("time_limits_s") or []]
    n = max(len(job.get("calls") or []), len(times))
    per_child = SETUP_S + load + GRACE_S
    calls = sum(t + GRACE_S for t in times) + (n - len(times)) * (load + GRACE_S)
    script = float(job.get("script_time_s", 60.0)) + SCRIPT_EXTRA_S + GRACE_S if job.get("script") else 0.0
    return per_child * (n + 1) + calls + script + CLEANUP_S


def normalize_job(raw: dict) -> dict:
    """Validate a Job dict and fill defaults; raises on a malformed job (answered as sandbox_error)."""
    if type(raw) is not dict or type(raw.get("program")) is not str:
        raise ValueError("job has no program")
    limits = dict(raw.get("limits") or {})
    for key, value in LIMIT_DEFAULTS.items():
        limits[key] = limits.get(key, value)
        if type(limits[key]) not in (int, float):
            raise ValueError(f"limits.{key} is not a number")
    calls = raw.get("calls") or []
    if type(calls) is not list:
        raise ValueError("calls is not a list")
    times = [float(t) for t in raw.get("time_limits_s") or []]
    times += [float(limits["load_time_s"])] * (len(calls) - len(times))
    script = raw.get("script")
    if script is not None and type(script) is not str:
        raise ValueError("script is not a string")
    script_time = float(raw.get("script_time_s", 60.0))
    seed = raw.get("seed")
    if seed is not None and type(seed) not in (int, str):
        raise ValueError("seed must be an int, a str or None")
    total = float(limits["load_time_s"]) + sum(times) + (script_time if script is not None else 0.0)
    return {
        "program": raw["program"],
        "entry_point": raw.get("entry_point"),
        "calls": calls,
        "time_limits_s": times,
        "script": script,
        "script_time_s": script_time,
        "record": bool(raw.get("record", False)),
        "seed": seed,
        "fail_fast": bool(raw.get("fail_fast", True)),
        "stdin": bool(raw.get("stdin", False)),
        "max_timeouts": int(raw.get("max_timeouts") or 0),
        "failed_budget_s": float(raw.get("failed_budget_s") or 0.0),
        "digest_calls": {int(i) for i in raw.get("digest_calls") or []},
        "stream": bool(raw.get("stream", False)) and bool(raw.get("fail_fast", True)),
        "raw": bool(raw.get("raw_values", False)),
        "limits": limits,
        "cpu_limit": int(float(limits["cpu_slack"]) * total) + 1,
    }


def expected_items(job: dict, start: int) -> list:
    """What a child started at call ``start`` answers, in order: "load", call indices, "script"."""
    items: list = ["load", *range(start, len(job["calls"]))]
    if job["script"] is not None:
        items.append("script")
    return items


def item_limit(job: dict, item: str | int) -> float:
    """The item's own time limit: what the program may use, encoding of its value included."""
    if item == "load":
        return float(job["limits"]["load_time_s"])
    if item == "script":
        return float(job["script_time_s"])
    return float(job["time_limits_s"][item])


def item_budget(items: list, done: int, job: dict) -> float:
    """The server's deadline for the next item, measured from when it read the previous frame."""
    if done >= len(items):
        return GRACE_S
    item = items[done]
    if type(item) is int:  # a call: the common case, once per frame
        return float(job["time_limits_s"][item]) + GRACE_S
    extra = SCRIPT_EXTRA_S if item == "script" else 0.0
    return item_limit(job, item) + extra + GRACE_S


def result(status: str, error: str) -> dict:
    return {"status": status, "value": None, "time_s": 0.0, "error": error}


def fault(message: str) -> dict:
    """An infrastructure fault: only for what no program could have caused (nothing of it ran yet)."""
    return {"load": result("error", message), "calls": [], "script": None, "recorded": [], "sandbox_error": message}


def program_failure(job: dict, message: str) -> dict:
    """A whole job failed by its program's doing (it ran, then the harness could not finish the job)."""
    message = message[:ERROR_CHARS]
    return {
        "load": result("error", message),
        "calls": [result("error", message) for _ in job["calls"]],
        "script": result("error", message) if job["script"] is not None else None,
        "recorded": [],
        "sandbox_error": "",
    }


class StopRule:
    """When a group that has already failed may stop early (no fail-fast only).

    Stopping never changes a group's status, which its first failed test already decided;
    only the per-test detail of the tests not run is lost (they come back ``missing``, with
    the reason). ``max_timeouts`` timeouts, or ``failed_budget_s`` spent on the job, end it:
    without this an endless loop costs every test its full limit.
    """

    def __init__(self, job: dict) -> None:
        self.max_timeouts = int(job["max_timeouts"])
        self.budget_s = float(job["failed_budget_s"])
        self.t0 = _perf()
        self.failed = False
        self.timeouts = 0
        self.reason = ""

    def update(self, call: dict) -> bool:
        """Account for one call result, in order; True once the job should stop."""
        status = call["status"]
        self.failed = self.failed or status != "ok"
        self.timeouts += status == "timeout"
        if self.max_timeouts and self.timeouts >= self.max_timeouts:
            self.reason = f"not run: the group had {self.timeouts} timeouts already"
        elif self.failed and self.budget_s and _perf() - self.t0 > self.budget_s:
            self.reason = f"not run: the failed group used up its {self.budget_s:g} s budget"
        return bool(self.reason)


# The trusted side's order to stop the current job: one fixed frame, written whole (< PIPE_BUF).
STOP_BODY = b'{"stop":true}'
STOP_FRAME = len(STOP_BODY).to_bytes(4, "big") + STOP_BODY
STOPPED = "not run: the group had already failed (the trusted side stopped it)"
STREAM_MAX_BYTES = 1 << 16  # larger answers are not streamed: their encoding would hold up the server's reads
# With the job's ``raw`` set, a call value whose encoding is longer than this travels as its bytes: the
# call frame says ``"raw": n`` instead of ``"value"`` and the next frame is the n bytes, which the server
# neither parses nor re-encodes (the trusted side hashes them, and parses them only when it must). Such
# answers are larger than STREAM_MAX_BYTES, so they are never streamed.
RAW_MIN_BYTES = STREAM_MAX_BYTES
PIPE_BUF = 4096  # POSIX: a pipe that polls writable takes this many bytes at once


class Progress:
    """A fail-fast job's answers, streamed to the trusted side as they are checked, and its stop order.

    Only the trusted side knows the expected values, so only it can tell that an answer is wrong;
    without this a wrong answer at test 0 still ran every test of its group. With ``stream`` set,
    each checked call result goes out as ``{"progress": [[index, result], ...]}``; the trusted side
    judges it and, at the first failed test, writes :data:`STOP_FRAME` on our input. The final
    answer then leaves streamed calls out (``null``): they were sent once already. The frames sent
    are the ones ``frames.accept`` built (checked fields only), so streaming shows the trusted side
    nothing the final answer would not.

    Streaming must never slow the server's reading of the child, whose clock decides timeouts: only
    answers of at most :data:`STREAM_MAX_BYTES` are streamed (the rest wait for the final answer,
    and the trusted side stops at whichever failed test it sees), and they are written only as far
    as the pipe takes them without blocking (``flush``); what is left goes out before the final
    answer. Stopping after any failed test is safe: every test before it ran, so the first failed
    test, which decides a fail-fast verdict, is in the final answer.
    """

    def __init__(self, job: dict, in_fd: int, out_fd: int) -> None:
        self.on = bool(job.get("stream")) and in_fd >= 0 and out_fd >= 0
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.sent: set[int] = set()
        self.stopped = False
        self.pending = bytearray()

    def send(self, answers: list[tuple[int, dict, int]]) -> None:
        """Stream call results: (index, checked frame, its size on the child's pipe); large ones are left out.
        Called after every read, new answers or not, so that what the pipe could not take goes on."""
        if not self.on:
            return
        small = [(i, frame) for i, frame, size in answers if size <= STREAM_MAX_BYTES and "raw" not in frame]
        if small:
            body = json.dumps(
                {"progress": [[i, {k: v for k, v in frame.items() if k != "k"}] for i, frame in small]},
                separators=(",", ":"),
                allow_nan=False,
            ).encode()
            self.pending += len(body).to_bytes(4, "big") + body
            self.sent.update(i for i, _ in small)
        self.flush(block=False)  # also what an earlier send left pending

    def flush(self, block: bool) -> None:
        """Write what is pending: all of it (``block``), or what the pipe takes now. A pipe that polls
        writable takes PIPE_BUF bytes without blocking."""
        while self.pending:
            if not block and not select.select([], [self.out_fd], [], 0)[1]:
                return
            chunk = self.pending if block else self.pending[:PIPE_BUF]
            del self.pending[: os.write(self.out_fd, chunk)]

    def stop_asked(self) -> bool:
        """Whether the trusted side has said stop (never blocks while nothing was written)."""
        if not self.on or self.stopped:
            return self.stopped
        ready, _, _ = select.select([self.in_fd], [], [], 0)
        if ready:
            # Nothing but STOP_FRAME is written while a job runs (the next job waits for this one's
            # answer), and a write that small arrives whole. An end of input (the trusted side went
            # away) stops the job too.
            os.read(self.in_fd, len(STOP_FRAME))
            self.stopped = True
        return self.stopped

    def final_calls(self, calls: list[dict]) -> list:
        """The final answer's calls: ``None`` where that very result was streamed already."""
        if not self.sent:
            return calls
        return [None if i in self.sent else call for i, call in enumerate(calls)]
