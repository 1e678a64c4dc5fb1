"""The ``local`` sandbox: the harness (``harness/server.py``) as long-lived host processes.

Each worker is one ``python3 -s server.py`` started with an almost empty environment
(``PYTHONHASHSEED=0``, so set iteration order, and with it every verdict, is the same in
every worker and every run; ``-I`` would ignore that variable); it
forks a fresh child per job (fresh temp dir, rlimits, uid 65534 when we are root). Where
bubblewrap works, the server runs inside it: no network, a read-only view of only the
system directories and the interpreter (data sets, caches, ``/root``, ``/home`` and the
host's ``/tmp`` are not there), and private PID/IPC/UTS namespaces, so cleanup can kill
every other process it sees. Without bubblewrap the isolation is rlimits plus the uid:
weaker, and ``isolation`` says so. See docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ra3bench.errors import SandboxUnavailableError
from ra3bench.sandbox.base import Job, JobResult, Sandbox
from ra3bench.sandbox.harness import protocol
from ra3bench.sandbox.harness import server as harness

SERVER_PATH = Path(harness.__file__).resolve()
NOBODY = 65534
HOST_GRACE_S = 30.0  # beyond the harness's own worst case before a worker counts as hung
START_GRACE_S = 30.0
SHM_SIZE_MB = 64  # a fresh worker (bubblewrap + interpreter start) answers its first job late
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
HIDDEN_ROOTS = ("/root", "/home", "/tmp")
# What the root server inside bubblewrap needs: drop to the job uid, own its temp dir, kill and reap.
SERVER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL")

_BWRAP_PROBE: dict[str, bool] = {}
_PROBE_LOCK = threading.Lock()


class _WorkerFault(Exception):
    """The worker died, hung or answered garbage: an infrastructure fault, never the program's."""


def bwrap_works(bwrap: str | None = None) -> bool:
    """Whether bubblewrap can make the namespaces we use here (probed once per binary)."""
    bwrap = bwrap or shutil.which("bwrap")
    if not bwrap:
        return False
    with _PROBE_LOCK:
        if bwrap not in _BWRAP_PROBE:
            cmd = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev", "--proc", "/proc"]
            cmd += ["--size", str(1 << 20), "--tmpfs", "/tmp", "true"]
            try:
                done = subprocess.run(cmd, capture_output=True, timeout=20, env={"PATH": os.defpath}, check=False)
                _BWRAP_PROBE[bwrap] = done.returncode == 0
            except (OSError, subprocess.SubprocessError):
                _BWRAP_PROBE[bwrap] = False
        return _BWRAP_PROBE[bwrap]


def _interpreter_info(python: str) -> dict[str, Any]:
    """Version and install paths of the interpreter that will run the server."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        paths = sysconfig.get_paths()
        return {
            "executable": sys.executable,
            "version": sys.version.split()[0],
            "dirs": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
            + [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths],
        }
    code = (
        "import json, sys, sysconfig; p = sysconfig.get_paths(); print(json.dumps({'executable': sys.executable,"
        " 'version': sys.version.split()[0],"
        " 'dirs': [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]"
        " + [p[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib') if k in p]}))"
    )
    try:
        out = subprocess.run([python, "-I", "-c", code], capture_output=True, timeout=30, check=True, text=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxUnavailableError(f"cannot run the sandbox interpreter {python}: {exc}") from None


def _readable_by(path: str, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` (not root) could traverse to ``path`` and list it."""
    path = os.path.realpath(path)
    parts = [p for p in path.split("/") if p]
    current = "/"
    for i in range(len(parts) + 1):
        try:
            st = os.stat(current)
        except OSError:
            return False
        need = 0o5 if i == len(parts) else 0o1
        if st.st_uid == uid:
            mode = (st.st_mode >> 6) & 0o7
        elif st.st_gid == gid:
            mode = (st.st_mode >> 3) & 0o7
        else:
            mode = st.st_mode & 0o7
        if mode & need != need:
            return False
        if i < len(parts):
            current = os.path.join(current, parts[i])
    return True


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


class _Worker:
    """One server process and its pipes; used by one thread at a time."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
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

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, payload: bytes, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        self._write(payload, deadline)
        self.jobs += 1
        try:
            return self._read(deadline)
        except TimeoutError:
            raise _WorkerFault(f"worker did not answer within {timeout:.0f} s: killed") from None

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
                raise _WorkerFault(f"worker exited ({self._exit_text()}): {exc}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise _WorkerFault("worker did not take the job in time")
            poller.poll(left * 1000)

    def _read(self, deadline: float) -> dict:
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        while True:
            frame = self._frame()
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
                raise _WorkerFault(f"worker exited during the job ({self._exit_text()})")
            self.buf += data

    def _frame(self) -> dict | None:
        buf = self.buf
        if len(buf) < 4:
            return None
        size = int.from_bytes(buf[:4], "big")
        if size > protocol.MAX_FRAME_BYTES:
            raise _WorkerFault(f"worker sent a frame of {size} bytes")
        if len(buf) < 4 + size:
            return None
        body = bytes(buf[4 : 4 + size])
        del buf[: 4 + size]
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise _WorkerFault(f"worker sent a frame that is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise _WorkerFault("worker sent a frame that is not an object")
        return message

    def _exit_text(self) -> str:
        try:
            code = self.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"

    def stop(self, timeout: float = 2.0) -> None:
        """Close stdin (the server exits at EOF); kill the process group if it lingers."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()  # type: ignore[union-attr]

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap and everything in its group
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]


def _stop_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


class LocalSandbox(Sandbox):
    """Jobs in forked children of long-lived host servers; bubblewrap around them where it works."""

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        use_bwrap: bool | None = None,
        uid: int | None = None,
        max_jobs_per_worker: int = 1000,
        *,
        python: str | None = None,
        tmp_size_mb: int = 1024,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._n = max(1, workers or os.cpu_count() or 1)
        self._max_jobs = max(1, max_jobs_per_worker)
        self._python = os.path.abspath(shutil.which(python) or python) if python else sys.executable
        self._log_path = log_path
        is_root = os.geteuid() == 0
        if uid is None and is_root:
            uid = NOBODY
        if uid is not None and not is_root and uid != os.geteuid():
            raise SandboxUnavailableError(f"running jobs as uid {uid} needs root; leave uid unset")
        self._uid = uid if (uid is not None and uid != os.geteuid()) else None
        bwrap = shutil.which("bwrap")
        if use_bwrap is None:
            use_bwrap = bwrap is not None and bwrap_works(bwrap)
        elif use_bwrap and not (bwrap and bwrap_works(bwrap)):
            raise SandboxUnavailableError("bubblewrap (bwrap) is not installed or cannot create namespaces here")
        self._bwrap = bwrap if use_bwrap else None
        info = _interpreter_info(self._python)
        self._python = info["executable"] or self._python  # the binary itself, not a wrapper such as a pyenv shim
        self._python_version = info["version"]
        if self._bwrap is None and self._uid is not None:
            dirs = [d for d in info["dirs"] if os.path.isdir(d)]
            blocked = [d for d in dirs if not _readable_by(d, self._uid, self._uid)]
            if blocked:
                raise SandboxUnavailableError(
                    f"jobs run as uid {self._uid} but cannot read the interpreter's files ({blocked[0]}); "
                    "install bubblewrap, or pass python= an interpreter that uid can read (e.g. /usr/bin/python3)"
                )
        self._cleanup = "all-others" if self._bwrap else ("uid" if self._uid is not None else "tree")
        self._cmd = self._command(info["dirs"], tmp_size_mb)
        who = f"jobs as uid {self._uid}" if self._uid is not None else "jobs as the invoking user"
        if self._bwrap:
            self.isolation = (
                "host process in bubblewrap: no network, read-only system dirs only (no /root, /home, data), "
                f"private /tmp and pid/ipc/uts namespaces; {who}; rlimits"
            )
        elif self._uid is not None:
            self.isolation = (
                f"host process with rlimits, {who}; no bubblewrap: network and host files reachable (weaker)"
            )
        else:
            self.isolation = f"host process with rlimits only, {who}: weakest isolation (no bubblewrap, no uid change)"
        self._slots: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(self._n):
            self._slots.put(None)
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Workers are started from one long-lived thread: bubblewrap's --die-with-parent (and any
        # parent-death signal) fires when the *thread* that forked it exits, e.g. a pool thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ra3bench-local-spawn")
        self._finalizer = weakref.finalize(self, _stop_all, self._live)

    # ---- configuration

    def _command(self, python_dirs: list[str], tmp_size_mb: int) -> list[str]:
        server = [self._python, "-s", str(SERVER_PATH), "--cleanup", self._cleanup]
        if self._uid is not None:
            server += ["--uid", str(self._uid)]
        if not self._bwrap:
            return server
        server += ["--scratch", "/dev/shm", "--scratch", "/tmp"]  # private to the worker: wiped after each job
        cmd = [self._bwrap, "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        cmd += ["--new-session", "--dev", "/dev", "--proc", "/proc"]
        # /dev/shm for multiprocessing's semaphores: small, private to the worker, emptied after each job.
        cmd += ["--perms", "1777", "--size", str(SHM_SIZE_MB << 20), "--tmpfs", "/dev/shm"]
        for d in SYSTEM_DIRS:
            if os.path.islink(d):  # merged /usr: /bin -> usr/bin
                cmd += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                cmd += ["--ro-bind", d, d]
        cmd += ["--size", str(tmp_size_mb << 20), "--tmpfs", "/tmp"]
        keep: list[str] = []
        for p in [*python_dirs, os.path.dirname(self._python), str(SERVER_PATH.parent)]:
            for q in {os.path.abspath(p), os.path.realpath(p)}:
                if os.path.isdir(q) and not _under(q, SYSTEM_DIRS):
                    keep.append(q)
        made: set[str] = set()
        for q in sorted(set(keep)):
            if any(_under(q, (k,)) and q != k for k in keep):  # a parent is bound already
                continue
            # bubblewrap would copy the host's modes for the parents it creates (/root is 0700):
            # make them traversable, or the job uid cannot reach the interpreter.
            parents = [p for p in Path(q).parents if str(p) != "/"][::-1]
            for parent in map(str, parents):
                if parent not in made:
                    made.add(parent)
                    cmd += ["--perms", "0755", "--dir", parent]
            cmd += ["--ro-bind", q, q]
        if os.geteuid() == 0:
            cmd += ["--cap-drop", "ALL"]
            for cap in SERVER_CAPS:
                cmd += ["--cap-add", cap]
        return [*cmd, "--chdir", "/", "--", *server]

    @property
    def workers(self) -> int:
        return self._n

    def describe(self) -> dict:
        return {
            **super().describe(),
            "bwrap": self._bwrap is not None,
            "uid": self._uid,
            "cleanup": self._cleanup,
            "python": self._python_version,
            "max_jobs_per_worker": self._max_jobs,
        }

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (bwrap's when wrapped); for tests and diagnostics."""
        with self._lock:
            return [w.pid for w in self._live if w.alive()]

    # ---- running jobs

    def run(self, job: Job) -> JobResult:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        if len(job.time_limits_s) != len(job.calls):
            raise ValueError(f"job has {len(job.calls)} calls but {len(job.time_limits_s)} time limits")
        body = job.to_wire_json()
        payload = len(body).to_bytes(4, "big") + body
        budget = harness.job_budget_s(job.to_wire()) + HOST_GRACE_S
        worker = self._slots.get()
        try:
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            if worker is not None and not worker.alive():
                self._retire(worker, kill=True)
                worker = None
            fresh = worker is None
            if worker is None:
                worker = self._start()
            try:
                message = worker.request(payload, budget + (START_GRACE_S if fresh else 0.0))
                result = JobResult.from_wire(message)
            except (_WorkerFault, KeyError, ValueError, TypeError) as exc:
                self._retire(worker, kill=True)
                worker = None
                return JobResult.infrastructure_fault(f"local sandbox: {exc}")
            if worker.jobs >= self._max_jobs or result.sandbox_error:  # a harness fault: start afresh
                self._retire(worker, kill=False)
                worker = None
            return result
        except OSError as exc:  # the worker could not even start
            return JobResult.infrastructure_fault(f"local sandbox: cannot start a worker: {exc}")
        finally:
            if self._closed and worker is not None:
                self._retire(worker, kill=False)
                worker = None
            self._slots.put(worker)

    def _start(self) -> _Worker:
        env = {"PATH": os.environ.get("PATH") or os.defpath, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = self._spawner.submit(
                subprocess.Popen,
                self._cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd="/",
                close_fds=True,
                start_new_session=True,
                bufsize=0,
            ).result()
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        worker = _Worker(proc)
        with self._lock:
            self._live.add(worker)
        return worker

    def _retire(self, worker: _Worker, kill: bool) -> None:
        with self._lock:
            self._live.discard(worker)
        if kill:
            worker.kill()
        else:
            worker.stop()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                worker = self._slots.get_nowait()
            except queue.Empty:
                break
            if worker is not None:
                self._retire(worker, kill=False)
        with self._lock:
            busy = list(self._live)
        for worker in busy:  # still running a job in another thread: that job becomes a sandbox_error
            self._retire(worker, kill=True)
        self._spawner.shutdown(wait=False)
