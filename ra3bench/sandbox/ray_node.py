"""One node of a Ray cluster as ra3bench sees it: an actor that owns that node's sandbox pool.

The actor is trusted infrastructure, like the host side of a local pool: it starts the node's
Docker (or bubblewrapped local) workers, runs the jobs the driver sends in batches, and returns
what its pool returns, whose frames its own trusted code has already validated
(``pool.Worker``, ``claims``). It never sees an expected value: the driver keeps those and judges
(``ray_pool.py``). It reports what the driver needs to refuse a node that would judge under
other conditions: the harness and image it runs, its CPU and a short speed probe.

This module does not import Ray: the driver makes the class an actor (``ray.remote``).
"""

from __future__ import annotations

import os
import platform
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ra3bench.sandbox.base import Job, JobResult

PROBE_ROUNDS = 5


@dataclass
class NodeFacts:
    """What a node says about itself; the driver checks it and the manifest records it."""

    node_id: str
    host: str
    kind: str  # the node's sandbox: docker | local
    workers: int
    harness: str  # sha256 of the sandbox harness (and Dockerfile) this node runs
    image_id: str  # docker: the image's id; local: ""
    cpu: str
    cpus: int
    probe_s: float  # speed_probe() here
    sandbox: dict[str, Any] = field(default_factory=dict)  # the pool's own describe()


def speed_probe() -> float:
    """Fastest of a few runs of a fixed pure-Python workload (the kind of code a test runs), in seconds:
    a node's speed relative to the driver's scales the reference timings behind the per-test time
    limits. The fastest, not the median: other load on the machine (pools starting, other nodes'
    probes) only ever slows a run down."""
    times = []
    for _ in range(PROBE_ROUNDS):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += (i * i) % 7
        values = sorted(str(i * 7919 % 10007) for i in range(20_000))
        total += len(values)
        times.append(time.perf_counter() - started)
    return min(times)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class NodeSandbox:
    """The sandbox pool of one node, driven by the driver's :class:`~ra3bench.sandbox.ray_pool.RaySandbox`."""

    def __init__(self, kind: str, workers: int | None, node_id: str) -> None:
        from ra3bench.sandbox import make_sandbox
        from ra3bench.sandbox.image import harness_digest

        self.sandbox = make_sandbox(kind, workers)
        self.sandbox.prestart()
        info = self.sandbox.describe()
        self.facts = NodeFacts(
            node_id=node_id,
            host=socket.gethostname(),
            kind=self.sandbox.name,
            workers=self.sandbox.workers,
            harness=str(info.get("harness") or harness_digest()),
            image_id=str(info.get("image_id") or ""),
            cpu=cpu_model(),
            cpus=os.cpu_count() or 1,
            probe_s=speed_probe(),
            sandbox=info,
        )
        self._threads = ThreadPoolExecutor(max_workers=self.sandbox.workers * 2, thread_name_prefix="ra3bench-node")

    def describe(self) -> NodeFacts:
        return self.facts

    def probe(self) -> float:
        """The speed probe again, when the driver asks: one node at a time, on a quiet node (the one at
        start-up overlaps the pool's start and the other nodes')."""
        self.facts.probe_s = speed_probe()
        return self.facts.probe_s

    def run_batch(self, jobs: list[Job]) -> list[JobResult]:
        """Every job of the batch on this node's pool (``workers`` at a time, with any other batch in
        flight here), results in the batch's order."""
        return list(self._threads.map(self.sandbox.run, jobs))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.sandbox.close()
