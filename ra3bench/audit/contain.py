"""``--contain``: run a judge under audit inside bubblewrap, as ra3bench's local sandbox runs a worker.

The judge's process gets no network (its own empty network namespace), its own PID namespace (it
can signal nothing of the host's), a private ``/tmp`` and ``/dev/shm``, the host's files read-only
(only its scratch folders are writable) and a cleared environment (the audit's secret is not
passed). Its false passes are still measured (scoring happens inside); its escapes cannot reach the
host, so the side-effect columns then say what the containment stopped, not what the judge would do
uncontained: a loopback listener is never reached, a host file never appears, the secret is not
there to read, leftover processes die with the namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ra3bench.errors import UsageError
from ra3bench.sandbox.attacks import ENV_SECRET_VAR

NOTE = (
    "contained in bubblewrap (no network, private PIDs, /tmp and /dev/shm, host files read-only, environment "
    "cleared): false passes are measured as before; side effects cannot reach the host, so none is expected"
)
KEEP_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "PYTHONPATH",
    "HUMANEVAL_OVERRIDE_PATH",
    "MBPP_OVERRIDE_PATH",
    "XDG_CACHE_HOME",
    "RA3BENCH_DATA_DIR",
)


def bwrap_wrapper():
    """A function turning a judge's argv into the same argv under bubblewrap; a one-line error if it cannot."""
    from ra3bench.sandbox.local import bwrap_problem

    bwrap = shutil.which("bwrap")
    problem = bwrap_problem(bwrap)
    if problem or bwrap is None:
        raise UsageError(f"--contain needs bubblewrap: {problem}")

    def wrap(argv: list[str], binds: list[Path], env: dict[str, str]) -> list[str]:
        cmd = [bwrap, "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--new-session"]
        cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
        for path in binds:
            cmd += ["--bind", str(path), str(path)]
        cmd += ["--clearenv"]
        for name in KEEP_ENV:
            if name in env and name != ENV_SECRET_VAR:
                cmd += ["--setenv", name, env[name]]
        return [*cmd, "--chdir", str(binds[0]), "--", *argv]

    return wrap
