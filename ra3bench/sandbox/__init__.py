"""Sandboxes: where untrusted programs run. See base.py for the contract and threat model.

No silent weak mode: ``local`` is always bubblewrapped, ``auto`` picks docker or that, and
the sandbox without bubblewrap runs only when named (``local-unsafe``), with a warning that
says what it leaves open. See docs/sandbox.md, "Choosing a sandbox".
"""

from __future__ import annotations

import sys

from ra3bench.errors import SandboxUnavailableError
from ra3bench.registry import Registry
from ra3bench.sandbox.base import Sandbox

SANDBOXES: Registry = Registry("sandbox", group="ra3bench.sandboxes")

# Each worker's /tmp and /dev/shm are tmpfs, i.e. host memory a job may fill: the /tmp sizes
# come from one budget for all workers, so N workers do not claim N GB.
TMP_TOTAL_MB = 1024  # /tmp of all workers together, split evenly ...
TMP_FLOOR_MB = 64  # ... but never less per worker: a stdin job's input, answer and output files live there
SHM_MAX_MB = 64  # /dev/shm per worker: multiprocessing's semaphores, a little shared memory
SHM_FLOOR_MB = 16

INSTALL_HINT = "install Docker or bubblewrap (`.ci/setup` does both)"
UNSAFE_HINT = "or accept no isolation by naming it: --sandbox local-unsafe"


def scratch_mb(workers: int, tmp_total_mb: int = TMP_TOTAL_MB) -> tuple[int, int]:
    """(/tmp, /dev/shm) in MB for each of ``workers`` workers.

    /tmp = max(TMP_FLOOR_MB, tmp_total_mb // workers); /dev/shm = a quarter of that, within
    [SHM_FLOOR_MB, SHM_MAX_MB]. All workers together hold at most
    max(tmp_total_mb, workers * TMP_FLOOR_MB) + workers * /dev/shm.
    """
    tmp = max(TMP_FLOOR_MB, tmp_total_mb // max(1, workers))
    return tmp, max(SHM_FLOOR_MB, min(SHM_MAX_MB, tmp // 4))


@SANDBOXES.register("local")
def _local(workers: int | None = None) -> Sandbox:
    """Bubblewrapped, or one line saying why not: "local" never means the weak mode."""
    from ra3bench.sandbox.local import LocalSandbox, bwrap_problem

    problem = bwrap_problem()
    if problem:
        raise SandboxUnavailableError(
            f"the local sandbox needs bubblewrap, but {problem}: install it (`.ci/setup` does), "
            f"use --sandbox docker, {UNSAFE_HINT}"
        )
    return LocalSandbox(workers=workers, use_bwrap=True)


@SANDBOXES.register("local-unsafe")
def _local_unsafe(workers: int | None = None) -> Sandbox:
    """The local sandbox without bubblewrap: only on request, and it says what it does not protect."""
    from ra3bench.sandbox.local import LocalSandbox

    sandbox = LocalSandbox(workers=workers, use_bwrap=False)
    print(f"warning: sandbox local-unsafe: {sandbox.unprotected()}", file=sys.stderr, flush=True)
    return sandbox


@SANDBOXES.register("docker")
def _docker(workers: int | None = None) -> Sandbox:
    from ra3bench.sandbox.docker import DockerSandbox

    return DockerSandbox(workers=workers)


def _auto_docker(workers: int | None) -> Sandbox:
    """The docker sandbox; its image is built offline first if the engine answers but has none."""
    from ra3bench.sandbox.docker import DockerSandbox
    from ra3bench.sandbox.image import ImageMissingError, ensure_image

    try:
        return DockerSandbox(workers=workers)
    except ImageMissingError:
        print("ra3bench: building the Docker sandbox image (offline, once; ~1 min)", file=sys.stderr, flush=True)
        return DockerSandbox(workers=workers, image=ensure_image(offline=True, verbose=False))


def _auto(workers: int | None) -> Sandbox:
    """Docker if the engine answers, else bubblewrapped local (with a warning), else one line that refuses."""
    from ra3bench.sandbox.local import LocalSandbox, bwrap_problem

    try:
        return _auto_docker(workers)
    except SandboxUnavailableError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    problem = bwrap_problem()
    if problem:
        raise SandboxUnavailableError(
            f"no isolating sandbox on this machine (docker: {reason}; local: {problem}): {INSTALL_HINT}, {UNSAFE_HINT}"
        )
    print(f"warning: using the local sandbox (weaker isolation): {reason}", file=sys.stderr)
    return LocalSandbox(workers=workers, use_bwrap=True)


@SANDBOXES.register("ray")
def _ray(workers: int | None = None, address: str = "", inner: str = "auto") -> Sandbox:
    """Jobs on a Ray cluster, each node's own pool (``inner``: auto | docker | local); judged here."""
    from ra3bench.sandbox.ray_pool import RaySandbox

    return RaySandbox(workers, address=address or None, inner=inner)


def make_sandbox(kind: str, workers: int | None = None, *, ray_address: str = "") -> Sandbox:
    """``auto`` picks the strongest backend this machine can run, says so when it is weaker, never the weakest.
    ``ray`` (each node's auto sandbox), ``ray:docker`` or ``ray:local``: a Ray cluster at ``ray_address``
    (default ``$RAY_ADDRESS``, else a local one)."""
    if kind == "auto":
        return _auto(workers)
    name, _, inner = kind.partition(":")
    if name == "ray":
        return SANDBOXES.get("ray")(workers=workers, address=ray_address, inner=inner or "auto")
    return SANDBOXES.get(kind)(workers=workers)
