"""The in-sandbox harness: a long-lived server that runs each job in a fresh child.

Standard library only: it runs on the host (``local`` backend, optionally inside bubblewrap)
and inside a container as uid 65534 on a read-only root. Usage::

    python3 -I server.py [--cleanup tree|uid|all-others] [--uid N] [--tmp-base DIR]

It reads framed ``Job.to_wire()`` dicts on stdin and writes one framed ``JobResult`` dict per
job on stdout, until EOF. The protocol fds are moved away at start, so no child can write to
them; a child's fd 0 is /dev/null and its fds 1/2 go to a size-limited file in its temp dir.

Per job: a temp dir (owned by the job uid), and a child forked by the fork server
(``zygote.py``, forked before any job was read, so a child holds nothing of earlier jobs) that
``setsid()``s, drops to ``--uid``, sets rlimits, loads the program and runs the calls
(``runner.py``), streaming one frame per item (load, each call, script) over a private pipe.
Every frame is the program's claim: ``frames.py`` checks it, and statuses come from what this
server observed (its clock, the child's wait status and rusage). The server enforces a deadline
per item (the item's limit plus ``GRACE_S``), restarts the child after a crash when calls remain
and ``fail_fast`` is off, and at the end kills every leftover process of the job (``reaper.py``).
Nothing a program does yields ``sandbox_error`` (``jobs.fault``): once a child of the job was
ready, whatever goes wrong is the program's failure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import select
import signal
import sys
import tempfile
import time
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
try:  # imported as part of the ra3bench package (the trusted side reads job_budget_s)
    from . import frames, jobs, protocol, reaper, runner, sinks, stdin_runner, zygote
except ImportError:  # run as a script inside the sandbox: the other modules are sibling files
    sys.path.insert(0, _HERE)
    import frames  # type: ignore[no-redef]
    import jobs  # type: ignore[no-redef]
    import protocol  # type: ignore[no-redef]
    import reaper  # type: ignore[no-redef]
    import runner  # type: ignore[no-redef]
    import sinks  # type: ignore[no-redef]
    import stdin_runner  # type: ignore[no-redef]
    import zygote  # type: ignore[no-redef]

# What other modules (pool.py, local.py, image.py, tests) take from here.
GRACE_S = jobs.GRACE_S
SETUP_S = jobs.SETUP_S
CLEANUP_S = jobs.CLEANUP_S
ERROR_CHARS = jobs.ERROR_CHARS
EXIT_MEMORY = jobs.EXIT_MEMORY
NPROC_LIMIT = reaper.NPROC_LIMIT
job_budget_s = jobs.job_budget_s
exit_verdict = frames.exit_verdict

OUTPUT_HEAD = 4096  # bytes of the program's output sent back, for humans
# Imported once by the server so forked children start with them (faster jobs).
PRELOAD = ("bisect", "collections", "copy", "functools", "heapq", "itertools")
PRELOAD += ("math", "random", "re", "string", "typing")
CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
EXIT_TAINTED = 3  # the server's exit code when a job left it unfit to serve another
LINGER_S = 0.0005  # the longest pause between reads while a child answers calls fast
LINGER_FRAMES = 4  # pause only if about this many frames would come meanwhile

_perf = time.perf_counter
_log = reaper.log


class Server:
    """Runs jobs one at a time. ``handle`` answers; ``finish`` then reaps and cleans up, so the
    trusted side reads the answer while the killed child is torn down and its temp dir removed."""

    def __init__(self, options: reaper.Options, fork_server: zygote.Zygote, in_fd: int = -1, out_fd: int = -1) -> None:
        self.opts = options
        self.zygote = fork_server
        self.in_fd, self.out_fd = in_fd, out_fd  # the protocol channel: answers stream out, stop orders come in
        self.progress = jobs.Progress({}, -1, -1)  # the current job's
        self.reaper = reaper.Reaper(options, fork_server.spared)
        self.program_ran = False  # a child of the current job was ready: the program may have run
        self.broken = ""  # why this server must not serve another job
        self._unreaped: list[tuple[int, int]] = []  # (pid, pidfd or -1) of children killed after their last frame
        self._dirs: list[str] = []  # temp dirs of finished jobs
        # Where jobs share our uid they may change what we and the fork server pass on to every later child.
        self._watched = {} if options.drop else {p: reaper.fingerprint(p) for p in (options.me, fork_server.pid)}

    # ---- one job

    def handle(self, raw: dict) -> dict:
        """The result of one job; raises only for faults before any of its program could run."""
        t0 = _perf()
        job = jobs.normalize_job(raw)
        self.program_ran = False
        self.progress = jobs.Progress(job, self.in_fd, self.out_fd)
        tmp = tempfile.mkdtemp(prefix="job-", dir=self.opts.tmp_base)
        out_fd = -1
        try:
            out_fd = os.open(os.path.join(tmp, ".output"), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            if self.opts.drop:
                os.chown(tmp, self.opts.uid, self.opts.gid)  # type: ignore[arg-type]
            try:
                result = self._run(job, tmp, out_fd)
                result["output"] = os.pread(out_fd, OUTPUT_HEAD, 0).decode("utf-8", "replace")
            except BaseException as exc:
                if not self.program_ran:
                    raise
                _log(f"job failed in the harness after its program ran: {type(exc).__name__}: {exc}")
                result = jobs.program_failure(job, f"the job could not be finished after its program ran ({exc!r})")
        finally:
            if out_fd >= 0:
                os.close(out_fd)
            self._dirs.append(tmp)
        result["wall_s"] = _perf() - t0
        return result

    def finish(self) -> None:
        """Reap the children killed by ``handle``, kill every leftover process, remove temp dirs."""
        for pid, pidfd in self._unreaped:  # SIGKILLed already: this waits only for the kernel's teardown
            if pidfd < 0:
                self.zygote.wait_exit(pid)
                continue
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            with contextlib.suppress(OSError):
                poller.poll(CLEANUP_S * 1000)  # readable once it exited (the fork server reaps it)
            os.close(pidfd)
        self._unreaped.clear()
        clean = self.reaper.sweep()
        self.zygote.forget()
        for tmp in self._dirs:
            reaper.remove_tree(tmp)
        self._dirs.clear()
        for shared in self.opts.scratch:  # nothing a job leaves in /dev/shm reaches the next one
            with contextlib.suppress(OSError), os.scandir(shared) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        reaper.remove_tree(entry.path)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
        if not self.zygote.alive():
            self.broken = "the fork server died (a job that shares its uid killed it)"
        elif any(reaper.fingerprint(pid) != seen for pid, seen in self._watched.items()):
            self.broken = "a job changed the rlimits, priority or CPU affinity of the harness"
        elif clean:  # no process of any job is left: the next job's child may be forked now
            self.zygote.prepare()

    def _run(self, job: dict, tmp: str, out_fd: int) -> dict:
        if job["stdin"]:
            return stdin_runner.run_stdin_job(self, job, tmp, out_fd, jobs.StopRule(job))
        n = len(job["calls"])
        calls: list[dict | None] = [None] * n
        load: dict | None = None
        script: dict | None = None
        recorded: list[dict] = []
        stop = jobs.StopRule(job)
        start = 0
        first = True
        while True:
            if not first:  # the program ran in this dir: it may have locked itself out of it
                with contextlib.suppress(OSError):
                    os.chmod(tmp, 0o700)
            run = self._run_child(job, tmp, out_fd, start, stop)
            if not run.ready:
                why = run.detail or run.reason or "no frame"
                if first:
                    return jobs.fault(f"the job's child failed before the program started ({why})")
                script = self._fail_rest(job, calls, start, f"the program's process could not start again ({why})")
                break
            items = jobs.expected_items(job, start)
            in_flight = None
            for item, frame in zip(items, run.frames, strict=False):
                del frame["k"]
                if item == "load":
                    if first:
                        load = frame
                    elif frame["status"] != "ok":  # a reload failed: the remaining items cannot run
                        why = f"{frame['status']}: {frame['error']}"
                        script = self._fail_rest(job, calls, start, f"program failed when reloaded: {why}")
                        break
                elif item == "script":
                    recorded = frame.pop("recorded", [])
                    script = frame
                else:
                    calls[item] = frame
            if run.reason == "stopped":  # the trusted side saw a failed test: nothing more to run
                stop.reason = jobs.STOPPED
                break
            if len(run.frames) < len(items) and run.reason:
                in_flight = items[len(run.frames)]
                verdict = self._died(run, in_flight, job)
                if in_flight == "load":
                    if first:
                        load = verdict
                    else:
                        msg = f"program failed when reloaded: {verdict['error']}"
                        script = self._fail_rest(job, calls, start, msg)
                elif in_flight == "script":
                    script = verdict
                else:
                    calls[in_flight] = verdict
                    if not job["fail_fast"]:
                        stop.update(verdict)
            first = False
            if load is None or load["status"] != "ok":
                break
            failed = any(c is not None and c["status"] != "ok" for c in calls)
            if (job["fail_fast"] and failed) or stop.reason:
                break
            if isinstance(in_flight, int) and in_flight + 1 < n + (job["script"] is not None):
                start = in_flight + 1
                if start >= n and job["script"] is None:
                    break
                continue  # a crash in a call: reload the program and go on with the next call
            break
        missing = jobs.result("missing", stop.reason)
        return {
            "load": load or jobs.result("error", "no result"),
            "calls": self.progress.final_calls([c if c is not None else dict(missing) for c in calls]),
            "script": (script or dict(missing)) if job["script"] is not None else None,
            "recorded": recorded,
            "sandbox_error": "",
        }

    @staticmethod
    def _fail_rest(job: dict, calls: list, start: int, message: str) -> dict | None:
        """Mark the calls from ``start`` (and the script) failed; returns the script's result."""
        message = message[:ERROR_CHARS]
        for j in range(start, len(calls)):
            calls[j] = jobs.result("error", message)
        return jobs.result("error", message) if job["script"] is not None else None

    def _died(self, run: frames.ChildRun, item: Any, job: dict) -> dict:
        """The result of the item in flight when its child ended without answering it."""
        where = "loading" if item == "load" else ("the script" if item == "script" else "the call")
        if run.reason == "deadline":
            result = jobs.result("timeout", f"time limit exceeded (no answer from {where}; process killed)")
        elif run.reason == "violation":
            result = jobs.result("error", f"malformed result: {run.detail} (during {where})"[:ERROR_CHARS])
        else:
            memory_mb = float(job["limits"]["memory_mb"])
            cpu_limit = job["cpu_limit"]
            result = exit_verdict(run.status, run.cpu_s, cpu_limit, where, rss_kb=run.rss_kb, memory_mb=memory_mb)
        result["time_s"] = run.item_s
        return result

    # ---- one child

    def _run_child(self, job: dict, tmp: str, out_fd: int, start: int, stop: jobs.StopRule) -> Any:
        run = frames.ChildRun()
        rfd, wfd = os.pipe()
        try:
            try:
                pid = self.zygote.spawn({"kind": "call", "tmp": tmp, "start": start, "job": job}, [wfd, out_fd])
            except (zygote.ZygoteGone, OSError) as exc:
                run.reason, run.detail = "spawn", str(exc)
                return run
            finally:
                os.close(wfd)
            self._supervise(job, pid, rfd, start, stop, run)
        finally:
            os.close(rfd)
        return run

    def _supervise(self, job: dict, pid: int, rfd: int, start: int, stop: jobs.StopRule, run: Any) -> None:
        """Read and check the child's frames under per-item deadlines until it answered all or ended."""
        items = jobs.expected_items(job, start)
        os.set_blocking(rfd, False)
        poller = select.poll()
        poller.register(rfd, select.POLLIN)
        pidfd = -1
        with contextlib.suppress(AttributeError, OSError):
            pidfd = os.pidfd_open(pid)  # readable once it ended (it is the fork server's child, not ours)
            poller.register(pidfd, select.POLLIN)
        progress = self.progress
        if progress.on:  # a stop order wakes us as a frame would
            poller.register(progress.in_fd, select.POLLIN)
        max_frame = 2 * int(job["limits"]["value_bytes"]) + frames.FRAME_SLACK
        buf = bytearray()
        last_read = _perf()
        deadline = last_read + SETUP_S
        exited = eof = more = False
        linger = 0.0
        try:
            while len(run.frames) < len(items) and not run.reason:
                timeout = deadline - _perf()
                if timeout <= 0:
                    run.reason = "deadline"
                    break
                if not more and linger > 0.0:  # frames come fast: let some gather rather than wake for each
                    time.sleep(min(linger, timeout))
                    events = poller.poll(0)
                    exited = exited or any(fd == pidfd for fd, _ in events)
                elif not more:  # else: data is waiting in the pipe, read it first
                    events = poller.poll(min(timeout, 0.05 if pidfd < 0 else timeout) * 1000 + 1)
                    exited = exited or any(fd == pidfd for fd, _ in events)
                    if pidfd < 0 and not exited:  # no pidfd (Linux < 5.3): look it up
                        exited = reaper.has_ended(pid)
                # Bounded reads: a program spamming its pipe cannot grow our buffer or starve the deadline.
                at_end, more = frames.drain(rfd, buf, max_frame + 8)
                read_t = _perf()
                eof = eof or at_end
                pos = 0  # frames are read in place; what was read is dropped once, after the loop
                before = len(run.frames)
                sizes: list[int] = []  # each accepted frame's size, for the stream
                while not run.reason and len(run.frames) < len(items):
                    was_ready = run.ready
                    try:
                        got = frames.frame_at(buf, pos, max_frame, raw=run.pending is not None)
                        if got is None:
                            break
                        pos += 4 + got[1]
                        accepted = len(run.frames)
                        problem = frames.accept(run, got[0], got[1], items, job, read_t)
                        if len(run.frames) > accepted:  # a call, load or script frame (not "ready")
                            sizes.append(got[1])
                    except Exception as exc:  # whatever the bytes: the program's failure, never ours
                        problem = f"{type(exc).__name__}: {exc}"[:200]
                    if problem:
                        run.reason, run.detail = "violation", problem
                        break
                    self.program_ran = self.program_ran or run.ready
                    if was_ready and len(run.frames) > accepted and self._finished(run, job, stop):
                        items = items[: len(run.frames)]
                if progress.on:
                    answered = zip(items[before:], run.frames[before:], sizes, strict=False)
                    progress.send([(i, f, size) for i, f, size in answered if type(i) is int])
                    if not run.reason and progress.stop_asked():
                        run.reason = "stopped"
                        break
                linger = 0.0
                if pos:  # frames were read: the next item's deadline counts from the last one answered
                    deadline = run.item_t0 + jobs.item_budget(items, len(run.frames), job)
                    del buf[:pos]
                    remaining = len(items) - len(run.frames)
                    linger = _linger(read_t - last_read, len(run.frames) - before, remaining, pidfd, buf)
                    last_read = read_t
                if (exited or eof) and not more and not run.reason and len(run.frames) < len(items):
                    run.reason = "exited"
        finally:
            run.item_s = _perf() - run.item_t0
            if run.reason:  # ended early: its exit status and rusage decide the verdict
                if pidfd >= 0:
                    os.close(pidfd)
                run.status, run.cpu_s, run.rss_kb = self._kill_job(pid)
            else:  # all answered: kill now, wait for it in finish()
                self.reaper.kill_group(pid)
                self._unreaped.append((pid, pidfd))

    @staticmethod
    def _finished(run: Any, job: dict, stop: jobs.StopRule) -> bool:
        """True when the last frame ends this child's work early (a failed load; fail_fast; ``stop``)."""
        last = run.frames[-1]
        if last["k"] == "load" and last["status"] != "ok":
            return True
        if last["k"] != "call":
            return False
        if job["fail_fast"]:
            return last["status"] != "ok"
        return stop.update(last)

    def _kill_job(self, pid: int) -> tuple[int | None, float, int]:
        """Kill the child, its group and every leftover of the job; (wait status or None, CPU s, max RSS KB)."""
        self.reaper.kill_group(pid)
        ended = self.zygote.wait_exit(pid)
        if self.reaper.sweep():  # nothing of the job is left: the next child (a reload, a test) may be forked
            self.zygote.prepare()
        return ended


def _linger(since_last: float, new_frames: int, remaining: int, pidfd: int, buf: bytearray) -> float:
    """How long to let frames gather before the next read: 0 (wake at the next frame) unless they come fast.

    A child that answers a call every few microseconds would otherwise wake the server once per
    frame, and each wake-up (poll, read, two context switches) costs more than checking the frame.
    The server's clock reads a frame at most ``LINGER_S`` late, far inside every slack it applies
    (``frames.TIMEOUT_SLACK_S``, ``frames.OVERRUN_S``); a deadline is never passed (the pause
    stops at it), a child that ends is seen at the end of the pause, and the pause covers at most
    the time the remaining calls but the last are expected to take, so the job's last answer is read
    when it comes. No pause while a frame is incomplete (a large value: the child may be waiting
    for the pipe to drain) or without a pidfd.
    """
    if new_frames <= 0 or remaining < 2 or pidfd < 0 or buf:
        return 0.0
    per_item = since_last / new_frames
    if per_item * LINGER_FRAMES > LINGER_S:
        return 0.0
    return min(LINGER_S, per_item * (remaining - 1))


# --------------------------------------------------------------------------- main


def _write_frame(fd: int, result: dict, program_ran: bool) -> None:
    """The answer, then the bytes of each raw value in call order (the answer says ``"raw": n`` for each)."""
    raws = []
    for call in result.get("calls") or []:
        if type(call) is dict and type(call.get("raw")) is bytes:
            raws.append(call["raw"])
            call["raw"] = len(call["raw"])
    try:
        data = json.dumps(result, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, TypeError, RecursionError) as exc:  # frames.accept lets nothing through that does this
        message = f"result could not be sent: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
        fallback = jobs.program_failure({"calls": result.get("calls") or [], "script": result.get("script")}, message)
        data = json.dumps(fallback if program_ran else jobs.fault(message)).encode()
        raws = []
    for part in (len(data).to_bytes(4, "big") + data, *(len(r).to_bytes(4, "big") + r for r in raws)):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def _reexec(in_fd: int, out_fd: int) -> None:
    """Start over as a fresh process (a fresh heap, a fresh fork server), on the same protocol fds."""
    os.dup2(in_fd, 0)
    os.dup2(out_fd, 1)
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    os.execv(sys.executable, argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ra3bench in-sandbox harness (framed jobs on stdin)")
    parser.add_argument("--cleanup", choices=("tree", "uid", "all-others"), default="tree")
    parser.add_argument("--uid", type=int, default=None, help="run jobs as this uid (needs root)")
    parser.add_argument("--gid", type=int, default=None, help="run jobs as this gid (default: the uid)")
    parser.add_argument("--tmp-base", default=None, help="where job temp dirs go (default: /tmp)")
    parser.add_argument("--nproc", type=int, default=None, help="RLIMIT_NPROC of jobs (default: 64 with --uid)")
    parser.add_argument(
        "--scratch", action="append", default=[], help="a shared writable dir (e.g. /dev/shm) emptied after every job"
    )
    args = parser.parse_args(argv)
    if args.uid is not None and os.geteuid() != 0 and args.uid != os.geteuid():
        parser.error("--uid needs root")

    # Keep the protocol fds private: move them away, put /dev/null on 0 and 1.
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the trusted side, which closes our stdin

    reaper.prctl(reaper.PR_SET_DUMPABLE, 0)  # same-uid jobs cannot open /proc/<server>/fd/* nor ptrace us
    # What every child inherits, set once here rather than per job: a minimal environment (the
    # caller's is not readable by jobs), and signal dispositions.
    os.environ.clear()
    os.environ.update(CHILD_ENV)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past RLIMIT_FSIZE fails with EFBIG, not death
    signal.signal(signal.SIGALRM, runner.on_alarm)  # raises only while a job's timer is armed
    options = reaper.Options(args.cleanup, args.uid, args.gid, args.tmp_base or "/tmp", args.nproc, args.scratch)
    for name in PRELOAD:  # forked children share these: faster jobs
        __import__(name)
    sinks.Builtins.snapshot()
    gc.collect()
    gc.freeze()
    try:  # before the first job is read: the fork server's memory holds no job, ever
        fork_server = zygote.Zygote.start(options, close=(in_fd, out_fd))
    except OSError as exc:
        _log(f"cannot start the fork server: {exc}")
        return 1
    server = Server(options, fork_server, in_fd, out_fd)
    while True:
        try:
            body = frames.read_job(in_fd)
            message = json.loads(body) if body is not None else None
            if body is not None and type(message) is not dict:
                raise protocol.ProtocolError("frame is not a JSON object")
        except (protocol.ProtocolError, ValueError) as exc:
            _log(f"bad input frame: {exc}")
            return 2
        if message is None:
            return 0
        if message.get("stop") is True:  # a stop order that came after its job's answer: nothing to stop
            continue
        try:
            result = server.handle(message)  # type: ignore[arg-type]
        except BaseException as exc:  # the server never dies because of a job
            _log(f"job failed in the harness: {type(exc).__name__}: {exc}")
            result = jobs.fault(f"harness error: {type(exc).__name__}: {exc}"[:ERROR_CHARS])
        try:
            server.progress.flush(block=True)  # streamed answers first: the final answer leaves them out
            _write_frame(out_fd, result, server.program_ran)
        except OSError as exc:  # the trusted side went away
            _log(f"cannot answer: {exc}")
            server.finish()
            return 0
        try:
            server.finish()
        except Exception as exc:  # cleanup trouble is logged; the next job still runs
            _log(f"cleanup failed: {type(exc).__name__}: {exc}")
        if server.broken:
            _log(f"{server.broken}: starting over")
            if not server.zygote.dead:
                return EXIT_TAINTED  # a fresh process would inherit the same limits: the pool replaces us
            try:
                _reexec(in_fd, out_fd)
            except OSError as exc:
                _log(f"cannot start over: {exc}")
                return EXIT_TAINTED


if __name__ == "__main__":
    sys.exit(main())
