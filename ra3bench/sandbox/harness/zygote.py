"""The fork server: forks every job's child, and never sees any job's data.

A child forked from the long-lived server would start with a copy of the server's heap, which
still holds freed copies of earlier jobs' programs, arguments and result frames (for a reference
run: the expected outputs). A program can scan its own memory, so it could find another sample's
solution there. So the server forks this process once, at start, before it reads any job; from
then on every job's child is forked by it, and it reads nothing but one-byte requests.

Per request it forks a child that waits, holding only harness code, for its job on a socket of
its own; the fork server passes that socket to the server (SCM_RIGHTS). The server writes the
child's payload (its job, marshalled) into a memfd and hands it over that socket with the
child's frame pipe and output file (and a stdin test's fds); the child reads its own job. The
fork server reaps its children and reports wait status and rusage.

Forking takes a round trip and a fork, so one child is always forked ahead, while the current
job runs (``Zygote.prepare``). Where jobs share the fork server's uid they could stop it or
change its limits or scheduling meanwhile: before it gets a job it is resumed and compared with
the fork server (``reaper.fingerprint``), and a child that differs is killed and replaced. It
cannot be traced or read (not dumpable), and it holds no job data: nothing to steal.

The fork server runs as the server's uid. Where jobs share that uid (a container) a program can
signal it: the server resumes it (SIGCONT) before every request, and if it died, answers the job
as the program's failure and re-executes itself (``server.main``), which makes a new one.
Standard library only.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import socket
import struct
import tempfile
import time
from typing import NoReturn

try:
    from . import jobs, reaper, runner, stdin_runner
except ImportError:  # run as a script inside the sandbox
    import jobs  # type: ignore[no-redef]
    import reaper  # type: ignore[no-redef]
    import runner  # type: ignore[no-redef]
    import stdin_runner  # type: ignore[no-redef]

FORK = b"F"  # server -> fork server: fork a child that waits for its job
REPORT = b"R"  # server -> fork server: + pid: reap that child (it was killed or ended) and report it
JOB = b"J"  # server -> waiting child: here is your job (fds attached)
_PID = struct.Struct("<cq")  # b"P" + pid of a new child (its socket attached), or b"E" + errno
_EXIT = struct.Struct("<cqqddq")  # b"X" + pid, wait status (-1: lost), user s, system s, max RSS (KB)
KEEP_EXITS = 256  # exits the fork server remembers until the server asks
MAX_FDS = 8
CHILD_FAILED = 70  # exit code of a child whose harness code failed

_perf = time.perf_counter


class ZygoteGone(Exception):
    """The fork server died (where jobs share its uid, a program can kill it)."""


class Zygote:
    """The server's handle on its fork server."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.dead = False
        self.reaped = False
        self.exits: dict[int, tuple[int, float, int]] = {}  # pid -> (wait status, CPU s, max RSS KB)
        self.waiting: list[tuple[int, socket.socket]] = []  # forked children waiting for a job
        self.pending = 0  # fork requests not answered yet
        self.error = ""  # why the last fork failed
        self.baseline: tuple | None = None  # the fork server's limits and scheduling: what a fresh child has

    @classmethod
    def start(cls, opts: reaper.Options, close: tuple[int, ...] = ()) -> Zygote:
        """Fork it now: call before reading any job. ``close``: fds the fork server must not hold."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                for fd in close:
                    os.close(fd)
                _serve(theirs, opts)
            finally:
                os._exit(CHILD_FAILED)
        theirs.close()
        return cls(pid, ours)

    def fileno(self) -> int:
        return self.sock.fileno()

    def resume(self) -> None:
        """SIGCONT: a program that shares its uid may have stopped it."""
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGCONT)

    def alive(self) -> bool:
        if not self.dead:
            self.dead = self._reap(os.WNOHANG)
        return not self.dead

    def _reap(self, flags: int) -> bool:
        """True once the fork server has been reaped (only then are its children surely ours)."""
        if not self.reaped:
            try:
                self.reaped = os.waitpid(self.pid, flags)[0] != 0
            except ChildProcessError:  # reaped by the sweep already
                self.reaped = True
        return self.reaped

    # ---- children

    def prepare(self) -> None:
        """Have the next child forked now, off the next job's clock (``spawn`` checks it before use)."""
        if not self.waiting and not self.pending and self.alive():
            self._request()

    def spared(self) -> set[int]:
        """Pids a sweep must leave alone: the fork server and the child waiting for the next job.

        A child whose pid has not come back yet is not spared: if the sweep kills it, ``spawn``
        notices and forks another.
        """
        self._settle(_perf() + 0.1)
        return {self.pid, *(pid for pid, _ in self.waiting)}

    def spawn(self, payload: dict, fds: list[int]) -> int:
        """A child running ``payload`` (``kind`` "call" or "stdin"); its pid. Raises ZygoteGone or OSError."""
        for _ in range(2):  # a waiting child that was killed meanwhile: fork another
            if not self.waiting:
                if not self.pending:
                    self._request()
                self._settle(_perf() + jobs.SETUP_S)
            if not self.waiting:
                if self.dead:
                    raise ZygoteGone("the fork server is gone")
                raise OSError(f"the fork server could not fork ({self.error or 'no answer'})")
            pid, channel = self.waiting.pop(0)
            if not self._intact(pid):
                channel.close()  # it exits when its socket closes; SIGKILL in case it was stopped
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                continue
            payload_fd = _payload_fd(payload)
            try:
                socket.send_fds(channel, [JOB], [payload_fd, *fds])
            except OSError:
                continue
            finally:
                os.close(payload_fd)
                channel.close()
            self.prepare()  # the next one is forked while this one runs
            return pid
        raise OSError("the fork server's children die before they get their job")

    def _intact(self, pid: int) -> bool:
        """A waiting child forked while a job ran: where jobs share its uid they could have stopped it
        or changed its limits or scheduling; it is used only if it is running and as it was forked."""
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)
        if self.baseline is None:
            self.baseline = reaper.fingerprint(self.pid)
        return self.baseline is not None and reaper.fingerprint(pid) == self.baseline

    def _request(self) -> None:
        self.resume()
        try:
            self.sock.send(FORK)
            self.pending += 1
        except OSError:
            self._gone()

    def _settle(self, deadline: float) -> None:
        """Wait for the answers to fork requests sent already."""
        if self.pending:
            self.resume()
        while self.pending and not self.dead and self._recv(deadline):
            pass

    # ---- exits

    def wait_exit(self, pid: int, timeout: float = jobs.CLEANUP_S) -> tuple[int | None, float, int]:
        """(wait status or None if lost, CPU seconds, max RSS in KB) of a child that was killed or ended."""
        deadline = _perf() + timeout
        self.resume()
        if pid not in self.exits and not self.dead:
            try:
                self.sock.send(_PID.pack(REPORT, pid))
            except OSError:
                self._gone()
        while pid not in self.exits:
            if self.dead or not self.alive():
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)  # dying (its socket closed): make sure, then reap it
                self._reap(0)
                return _wait_orphan(pid, deadline)
            if not self._recv(deadline) and _perf() >= deadline:
                return None, 0.0, 0
        return self.exits.pop(pid)

    def forget(self) -> None:
        """Drop reports nobody waited for (children of a finished job)."""
        self.exits.clear()

    def _recv(self, deadline: float) -> bool:
        """File one message (a new child, a failed fork, an exit); False when none came by ``deadline``."""
        while not self.dead:
            try:
                data, fds = _recv_fds(self.sock, socket.MSG_DONTWAIT)
            except BlockingIOError:
                left = deadline - _perf()
                if left <= 0:
                    return False
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                poller.poll(left * 1000 + 1)
                continue
            except OSError:
                data, fds = b"", []
            if not data:  # EOF: it died
                self._gone()
                return False
            kind = data[:1]
            if kind == b"X" and len(data) == _EXIT.size:
                _, pid, status, user, system, rss = _EXIT.unpack(data)
                self.exits[pid] = (status if status >= 0 else None, user + system, rss)
            elif kind == b"P" and len(data) == _PID.size and len(fds) == 1:
                self.pending -= 1
                self.waiting.append((_PID.unpack(data)[1], socket.socket(fileno=fds[0])))
                fds = []
            elif kind == b"E" and len(data) == _PID.size:
                self.pending -= 1
                self.error = os.strerror(_PID.unpack(data)[1])
            for fd in fds:
                os.close(fd)
            return True
        return False

    def _gone(self) -> None:
        self.dead = True
        self.pending = 0
        for _, channel in self.waiting:
            channel.close()
        self.waiting.clear()
        self.alive()  # reap it if it is a zombie already


def _recv_fds(sock: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    """One message and the fds sent with it (``socket.recv_fds`` of Python 3.11 drops ``flags``)."""
    data, ancillary, msg_flags, _ = sock.recvmsg(64, socket.CMSG_SPACE(MAX_FDS * 4), flags)
    if msg_flags & socket.MSG_CTRUNC:
        data = b"?"  # fds were lost: not a message to act on
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += struct.unpack(f"{usable // 4}i", payload[:usable])
    return data, fds


def _wait_orphan(pid: int, deadline: float) -> tuple[int | None, float, int]:
    """The fork server died: its children were re-parented to the server (a subreaper); reap one directly."""
    while True:
        try:
            reaped, status, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None, 0.0, 0
        if reaped:
            return status, usage.ru_utime + usage.ru_stime, usage.ru_maxrss
        if _perf() >= deadline:
            return None, 0.0, 0
        time.sleep(0.001)


def _payload_fd(payload: dict) -> int:
    """A child's payload in an anonymous file, marshalled: the server wrote it, the child reads it
    before any program runs (marshal is the interpreter's own format: fast, plain data only)."""
    data = marshal.dumps(payload)
    try:
        fd = os.memfd_create("ra3bench-job", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd: an unlinked temp file does the same
        with tempfile.TemporaryFile() as handle:
            fd = os.dup(handle.fileno())
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


# --------------------------------------------------------------------------- the fork server itself


def _serve(sock: socket.socket, opts: reaper.Options) -> NoReturn:
    """The fork server's loop: fork a waiting child per request; reap children, report one when asked."""
    reaper.prctl(reaper.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != opts.me:  # the server died before the line above
        os._exit(0)
    exits: dict[int, tuple[int, float, float, int]] = {}
    # Reap at once (a zombie still counts against the job uid's RLIMIT_NPROC): the handler runs
    # between bytecodes, e.g. when SIGCHLD interrupts the recv below, which then resumes.
    signal.signal(signal.SIGCHLD, lambda signum, frame: _reap(exits))
    while True:
        try:
            request = sock.recv(16)
        except InterruptedError:
            continue
        except OSError:
            os._exit(0)
        if not request:  # the server closed its end
            os._exit(0)
        _reap(exits)
        if request == FORK:
            _fork_one(sock, opts)
        elif request[:1] == REPORT and len(request) == _PID.size:
            _report(sock, exits, _PID.unpack(request)[1])
        else:
            _send(sock, _PID.pack(b"E", 22))  # EINVAL


def _fork_one(sock: socket.socket, opts: reaper.Options) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
    except OSError as exc:
        ours.close()
        theirs.close()
        _send(sock, _PID.pack(b"E", exc.errno or 11))
        return
    if pid == 0:
        ours.close()
        _child(theirs, sock, opts)
    theirs.close()
    try:
        socket.send_fds(sock, [_PID.pack(b"P", pid)], [ours.fileno()])
    except OSError:  # the server is gone
        os._exit(0)
    finally:
        ours.close()


def _reap(exits: dict[int, tuple[int, float, float, int]]) -> None:
    """Reap every child that ended, remembering how (zombies would count against the job uid's NPROC)."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid <= 0:
            return
        exits[pid] = (status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)
        while len(exits) > KEEP_EXITS:
            del exits[next(iter(exits))]


def _report(sock: socket.socket, exits: dict[int, tuple[int, float, float, int]], pid: int) -> None:
    """Send how child ``pid`` ended, waiting (bounded) for it to end: the server killed it already."""
    deadline = _perf() + jobs.CLEANUP_S
    while pid not in exits and _perf() < deadline:
        try:
            reaped, status, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if reaped:
            exits[pid] = (status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)
        else:
            time.sleep(0.0005)
    status, user, system, rss = exits.pop(pid, (-1, 0.0, 0.0, 0))
    _send(sock, _EXIT.pack(b"X", pid, status, user, system, rss))


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:  # the server is gone
        os._exit(0)


def _child(channel: socket.socket, sock: socket.socket, opts: reaper.Options) -> NoReturn:
    """A job's child: undo the fork server's own plumbing, wait for the job, run it; never returns."""
    code = CHILD_FAILED
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the fork server's reaper is not the program's business
        sock.close()
        # Waits for its job (should the server or the fork server die, its socket closes: it exits).
        message, fds = _recv_fds(channel, 0)
        channel.close()
        if message != JOB or len(fds) < 3:
            code = 0  # not needed after all (the server let go of it)
        else:
            _run_payload(fds, opts)
            code = 0
    except MemoryError:
        code = jobs.EXIT_MEMORY
    except BaseException:  # nothing may unwind into the fork server's loop
        code = CHILD_FAILED
    finally:
        os._exit(code)


def _run_payload(fds: list[int], opts: reaper.Options) -> None:
    payload_fd, wfd, out_fd, *extra = fds
    payload = marshal.loads(_read_all(payload_fd))
    os.close(payload_fd)
    if payload["kind"] == "stdin":
        stdin_runner.child(opts, payload, out_fd, wfd, extra[0], extra[1])
        return
    job = payload["job"]
    runner.setup_child(opts, job["limits"], job["cpu_limit"], payload["tmp"], out_fd, wfd)
    runner.Child(job, wfd, int(payload["start"]), int(job["limits"]["value_bytes"])).main()


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
