"""How the server's jobs run (uid, cleanup mode) and how every process a job leaves behind dies.

The server is a child subreaper, so a ``setsid()`` double-fork escapee is re-parented to it and
stays a descendant. Per mode, a sweep after each job kills:

* ``tree``: every descendant of the server but the fork server (``zygote.py``);
* ``uid``: the same, plus every process of the job uid where the server cannot be a subreaper;
* ``all-others`` (a private PID namespace: bubblewrap, a container): every process it sees but
  its ancestors and the fork server. ``kill(-1, SIGSTOP)`` first freezes them all at once (a
  signal to every process is atomic against fork, so a fork bomb cannot outrun it), then each
  is killed, then the fork server, stopped with the rest, is let go.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

try:
    from . import jobs
except ImportError:  # run as a script inside the sandbox
    import jobs  # type: ignore[no-redef]

# RLIMIT_NPROC for a dropped uid: bounds a fork bomb. The kernel counts it per uid over the whole
# host, and every job of every worker (and every container) runs as the same uid, so it is a shared
# budget: room for a few jobs with dozens of threads each, still a ceiling for a bomb.
NPROC_LIMIT = 512
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

_perf = time.perf_counter
_PRCTL: Any = None


def log(message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"ra3bench-harness[{os.getpid()}]: {message}\n".encode(errors="replace"))


def prctl(option: int, arg: int) -> bool:
    """prctl(2) through ctypes (looked up once: a child pays microseconds, not a dlopen)."""
    global _PRCTL
    try:
        if _PRCTL is None:
            import ctypes

            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
        return _PRCTL(option, arg, 0, 0, 0) == 0
    except Exception:  # no ctypes or no prctl: the caller falls back
        _PRCTL = False
        return False


class Options:
    """The server's command line, resolved once: who jobs run as and how leftovers are found."""

    def __init__(
        self,
        cleanup: str,
        uid: int | None,
        gid: int | None,
        tmp_base: str,
        nproc: int | None,
        scratch: list[str] | None = None,
    ) -> None:
        self.cleanup = cleanup
        self.scratch = list(scratch or [])
        self.uid = uid
        self.gid = gid if gid is not None else uid
        self.tmp_base = tmp_base
        is_root = os.geteuid() == 0
        self.drop = uid is not None and (is_root or uid != os.geteuid())
        self.nproc = nproc if nproc is not None else (NPROC_LIMIT if self.drop else None)
        self.me = os.getpid()
        self.ancestors = ancestors(self.me)
        if cleanup == "all-others" and (_in_initial_pid_namespace() or not self.ancestors <= {1}):
            # Killing "everything else" is only sane in a private PID namespace where pid 1 is
            # our only ancestor (bubblewrap; a container). Anywhere else: descendants only.
            log("--cleanup all-others needs a private PID namespace; using tree")
            self.cleanup = cleanup = "tree"
        self.freeze_ok = cleanup == "all-others"
        self.subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1)


def ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    while pid > 1:
        stat = read_stat(pid)
        if stat is None:
            break
        pid = stat[1]
        if pid > 0:
            found.add(pid)
    return found


def _in_initial_pid_namespace() -> bool:
    try:
        return os.readlink("/proc/self/ns/pid") == "pid:[4026531836]"  # PROC_PID_INIT_INO
    except OSError:
        return True  # cannot tell: assume the host


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) from /proc/PID/stat; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rpartition(b")")[2].split()
    try:
        return fields[0].decode(), int(fields[1])
    except (IndexError, ValueError):
        return None


_WATCHED_LIMITS = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_STACK")


def fingerprint(pid: int) -> tuple | None:
    """What another process of the same uid can change about ``pid`` and its future children inherit
    (prlimit, setpriority, sched_setscheduler, sched_setaffinity); None if ``pid`` is gone."""
    try:
        limits = tuple(resource.prlimit(pid, getattr(resource, n)) for n in _WATCHED_LIMITS if hasattr(resource, n))
        scheduling = os.getpriority(os.PRIO_PROCESS, pid), os.sched_getscheduler(pid)
        return limits, scheduling, tuple(sorted(os.sched_getaffinity(pid)))
    except (OSError, AttributeError):
        return None


def has_ended(pid: int) -> bool:
    """Whether ``pid`` exited (a zombie, or gone): for kernels without pidfds."""
    stat = read_stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def _real_uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int] | None:
    """Children of every thread of ``pid`` (/proc/PID/task/TID/children); None if the kernel lacks the file."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += map(int, f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread is gone
            return None  # no CONFIG_PROC_CHILDREN
        except (OSError, ValueError):
            continue
    return found


def remove_tree(path: str) -> None:
    def fix(func: Any, target: str, exc: Any) -> None:  # a program may chmod 000 its own dirs
        for p in (os.path.dirname(target), target):
            try:
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
            except OSError:
                pass

    shutil.rmtree(path, onerror=fix)
    if os.path.lexists(path):  # second pass after the chmods
        shutil.rmtree(path, ignore_errors=True)


class Reaper:
    """Kills and reaps what jobs leave behind; never touches the server's ancestors or the fork server."""

    def __init__(self, opts: Options, spared: Callable[[], set[int]] = set) -> None:
        self.opts = opts
        self.spared = spared  # pids never to kill: the fork server and its child waiting for the next job
        self.zombies = False  # whether the last look found exited children of ours not reaped yet

    @staticmethod
    def kill_group(pid: int) -> None:
        for target in (-pid, pid):  # -pid: the child's own group (it called setsid)
            with contextlib.suppress(OSError):
                os.kill(target, signal.SIGKILL)

    def reap_orphans(self) -> None:
        """Reap the server's own exited children (escapees re-parented to it), never blocking."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid <= 0:
                return

    def sweep(self) -> bool:
        """Kill and reap until no process of any job is left; False if some survived CLEANUP_S."""
        give_up = _perf() + jobs.CLEANUP_S
        keep = {self.opts.me, *self.spared()} | self.opts.ancestors
        while True:
            self.reap_orphans()
            victims = self.leftovers(keep)
            if not victims and not self.zombies:  # our own zombies: reaped in the next round
                return True
            if self.opts.freeze_ok:
                self._kill_frozen(keep)
            else:
                for p in victims:
                    with contextlib.suppress(OSError):
                        os.kill(p, signal.SIGKILL)
            if _perf() > give_up:
                log("leftover processes survived the cleanup")
                return False
            time.sleep(0.001)

    def leftovers(self, keep: set[int]) -> set[int]:
        """Live processes the sweep must kill (zombies are already dead: their parents reap them)."""
        opts = self.opts
        if opts.cleanup == "all-others" and not opts.subreaper:  # orphans go to pid 1: look at everything
            found = {int(n) for n in _listdir("/proc") if n.isdigit()}
        else:  # every process of a job is a descendant (orphans are re-parented to us, the subreaper)
            found = self._descendants()
            if opts.cleanup == "uid" and not opts.subreaper and opts.uid is not None:
                found |= {p for p in map(int, filter(str.isdigit, _listdir("/proc"))) if _real_uid(p) == opts.uid}
        victims = set()
        self.zombies = False
        for p in found - keep:
            state, parent = read_stat(p) or ("X", 0)
            if state not in ("Z", "X"):
                victims.add(p)
            elif state == "Z" and parent == opts.me:
                self.zombies = True
        return victims

    def _descendants(self) -> set[int]:
        """Every descendant, from /proc/PID/task/TID/children (two small reads when nothing is left)."""
        found: set[int] = set()
        todo = [self.opts.me]
        while todo:
            kids = _children(todo.pop())
            if kids is None:
                return self._descendants_from_table()
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
        return found

    def _descendants_from_table(self) -> set[int]:
        """Without /proc/PID/task/TID/children: one pass over every process's parent."""
        children: dict[int, list[int]] = {}
        for name in _listdir("/proc"):
            if name.isdigit():
                stat = read_stat(int(name))
                if stat is not None:
                    children.setdefault(stat[1], []).append(int(name))
        found: set[int] = set()
        todo = list(children.get(self.opts.me, []))
        while todo:
            p = todo.pop()
            found.add(p)
            todo.extend(children.get(p, []))
        return found

    def _kill_frozen(self, keep: set[int]) -> None:
        """Freeze everything we may signal at once, kill all of it but ``keep``, let the spared go."""
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGSTOP)
        for name in _listdir("/proc"):
            if name.isdigit() and int(name) not in keep:
                with contextlib.suppress(OSError):
                    os.kill(int(name), signal.SIGKILL)
        for pid in keep - {self.opts.me} - self.opts.ancestors:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
