"""Sandboxes: where untrusted programs run. See base.py for the contract and threat model."""

from __future__ import annotations

import sys

from ra3bench.registry import Registry
from ra3bench.sandbox.base import Sandbox

SANDBOXES: Registry = Registry("sandbox")


@SANDBOXES.register("local")
def _local(workers: int | None = None) -> Sandbox:
    from ra3bench.sandbox.local import LocalSandbox

    return LocalSandbox(workers=workers)


def make_sandbox(kind: str, workers: int | None = None) -> Sandbox:
    """``auto`` picks the strongest backend this machine can run, and says so when it is weak."""
    if kind == "auto":
        names = SANDBOXES.names()
        kind = "docker" if "docker" in names else "local"
        if kind == "local":
            print("warning: no Docker sandbox available; using the local sandbox (weaker isolation)", file=sys.stderr)
    return SANDBOXES.get(kind)(workers=workers)
