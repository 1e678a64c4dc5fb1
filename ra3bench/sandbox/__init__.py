"""Sandboxes: where untrusted programs run. See base.py for the contract and threat model."""

from __future__ import annotations

import sys

from ra3bench.errors import SandboxUnavailableError
from ra3bench.registry import Registry
from ra3bench.sandbox.base import Sandbox

SANDBOXES: Registry = Registry("sandbox")


@SANDBOXES.register("local")
def _local(workers: int | None = None) -> Sandbox:
    from ra3bench.sandbox.local import LocalSandbox

    return LocalSandbox(workers=workers)


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


def make_sandbox(kind: str, workers: int | None = None) -> Sandbox:
    """``auto`` picks the strongest backend this machine can run, and says so when it is weak."""
    if kind == "auto":
        try:
            return _auto_docker(workers)
        except SandboxUnavailableError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"warning: using the local sandbox (weaker isolation): {reason}", file=sys.stderr)
            kind = "local"
    return SANDBOXES.get(kind)(workers=workers)
