"""The ``local`` sandbox: the harness (``harness/server.py``) as long-lived host processes.

Each worker is one ``python3 -s server.py`` started with an almost empty environment
(``PYTHONHASHSEED=0``, so set iteration order, and with it every verdict, is the same in
every worker and every run; ``-I`` would ignore that variable); it
forks a fresh child per job (fresh temp dir, rlimits, uid 65534 when we are root). Where
bubblewrap works, the server runs inside it: no network, a read-only view of only the
system directories and the interpreter (data sets, caches, ``/root``, ``/home`` and the
host's ``/tmp`` are not there), a private ``/tmp`` and ``/dev/shm`` sized from a total
budget split across the workers (``scratch_mb``), and private PID/IPC/UTS namespaces, so
cleanup can kill every other process it sees. Without bubblewrap the isolation is rlimits
plus the uid: weaker, and ``isolation`` says so; the registry only builds that one under
the explicit name ``local-unsafe`` (``ra3bench/sandbox/__init__.py``). The pool itself
(queue, deadlines, replacement) is ``pool.py``, shared with the docker sandbox. See
docs/sandbox.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any

from ra3bench.errors import SandboxUnavailableError
from ra3bench.sandbox import TMP_TOTAL_MB, scratch_mb
from ra3bench.sandbox.harness import server as harness
from ra3bench.sandbox.pool import HOST_GRACE_S, START_GRACE_S, Launch, PooledSandbox

__all__ = ["HOST_GRACE_S", "NOBODY", "SERVER_PATH", "START_GRACE_S", "LocalSandbox", "bwrap_problem", "bwrap_works"]

SERVER_PATH = Path(harness.__file__).resolve()
NOBODY = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
HIDDEN_ROOTS = ("/root", "/home", "/tmp")
# What the root server inside bubblewrap needs: drop to the job uid, own its temp dir, kill and reap.
SERVER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL")

_BWRAP_PROBE: dict[str, str] = {}  # binary -> "" if it works, else why not
_PROBE_LOCK = threading.Lock()


def bwrap_problem(bwrap: str | None = None) -> str:
    """Why bubblewrap cannot give us the namespaces we use here, in a few words ("" if it can).

    Probed once per binary, so callers that must refuse a weaker sandbox can say what is missing.
    """
    bwrap = bwrap or shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap is not installed (no `bwrap` on PATH)"
    with _PROBE_LOCK:
        if bwrap not in _BWRAP_PROBE:
            cmd = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev", "--proc", "/proc"]
            cmd += ["--size", str(1 << 20), "--tmpfs", "/tmp", "true"]
            try:
                done = subprocess.run(cmd, capture_output=True, timeout=20, env={"PATH": os.defpath}, check=False)
                lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
                why = "" if done.returncode == 0 else (lines[0] if lines else f"exit status {done.returncode}")
            except (OSError, subprocess.SubprocessError) as exc:
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _BWRAP_PROBE[bwrap] = f"{bwrap} cannot create namespaces here ({why[:200]})" if why else ""
        return _BWRAP_PROBE[bwrap]


def bwrap_works(bwrap: str | None = None) -> bool:
    """Whether bubblewrap can make the namespaces we use here (probed once per binary)."""
    return not bwrap_problem(bwrap)


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


class LocalSandbox(PooledSandbox):
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
        tmp_total_mb: int = TMP_TOTAL_MB,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._python = os.path.abspath(shutil.which(python) or python) if python else sys.executable
        is_root = os.geteuid() == 0
        if uid is None and is_root:
            uid = NOBODY
        if uid is not None and not is_root and uid != os.geteuid():
            raise SandboxUnavailableError(f"running jobs as uid {uid} needs root; leave uid unset")
        self._uid = uid if (uid is not None and uid != os.geteuid()) else None
        bwrap = shutil.which("bwrap")
        problem = bwrap_problem(bwrap)
        if use_bwrap is None:
            use_bwrap = not problem
        elif use_bwrap and problem:
            raise SandboxUnavailableError(problem)
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
        super().__init__(workers, max_jobs_per_worker, log_path)
        # After the pool knows its size: each worker's share of the in-memory /tmp budget.
        self._tmp_total_mb = tmp_total_mb
        self._tmp_mb, self._shm_mb = scratch_mb(self.workers, tmp_total_mb)
        self._cmd = self._command(info["dirs"])

    def unprotected(self) -> str:
        """What this sandbox leaves open, in one line ("" with bubblewrap): the warning of ``local-unsafe``."""
        if self._bwrap:
            return ""
        if self._uid is None:
            return (
                f"no bubblewrap and jobs run as you (uid {os.geteuid()}): a program can use the network, "
                "read and write every file you can (the verdict cache and the run folder included) and "
                "signal your other processes; only rlimits and a fresh temp dir apply"
            )
        return (
            f"no bubblewrap; jobs run as uid {self._uid}: a program can use the network, read every host file "
            "that uid can (data sets included), write world-writable places (the host's /tmp, /dev/shm) and "
            f"signal other processes of uid {self._uid} (other workers' jobs); the verdict cache and run folder "
            "are safe only while not writable by that uid"
        )

    # ---- configuration

    def _command(self, python_dirs: list[str]) -> list[str]:
        server = [self._python, "-s", str(SERVER_PATH), "--cleanup", self._cleanup]
        if self._uid is not None:
            server += ["--uid", str(self._uid)]
        if not self._bwrap:
            return server
        server += ["--scratch", "/dev/shm", "--scratch", "/tmp"]  # private to the worker: wiped after each job
        cmd = [self._bwrap, "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        cmd += ["--new-session", "--dev", "/dev", "--proc", "/proc"]
        # /dev/shm for multiprocessing's semaphores: small, private to the worker, emptied after each job.
        cmd += ["--perms", "1777", "--size", str(self._shm_mb << 20), "--tmpfs", "/dev/shm"]
        for d in SYSTEM_DIRS:
            if os.path.islink(d):  # merged /usr: /bin -> usr/bin
                cmd += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                cmd += ["--ro-bind", d, d]
        cmd += ["--size", str(self._tmp_mb << 20), "--tmpfs", "/tmp"]
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

    def describe(self) -> dict:
        return {
            **super().describe(),
            "bwrap": self._bwrap is not None,
            "uid": self._uid,
            "cleanup": self._cleanup,
            "python": self._python_version,
            "max_jobs_per_worker": self._max_jobs,
            # in-memory scratch per worker (MB); without bubblewrap jobs use the host's /tmp: not ours to size
            "tmp_total_mb": self._tmp_total_mb if self._bwrap else None,
            "tmp_mb_per_worker": self._tmp_mb if self._bwrap else None,
            "shm_mb_per_worker": self._shm_mb if self._bwrap else None,
        }

    def _launch(self) -> Launch:
        env = {"PATH": os.environ.get("PATH") or os.defpath, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        return Launch(argv=self._cmd, env=env)
