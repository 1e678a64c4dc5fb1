"""``--sandbox ray``: sandbox jobs on a Ray cluster, one pool per node, judged on the driver.

The driver keeps everything a verdict depends on: suites, expected values, the verdict cache
and the judge. It sends nodes only jobs (programs and test inputs) and gets back their results,
validated by the node's own trusted pool code (``ray_node.py``). Jobs that hold expected values
(reference runs, checkers given the correct output) never leave the driver: they run on a pool
of the driver's own.

Scheduling: one dispatcher thread owns every Ray call. ``run`` and ``run_many`` put jobs on its
queue and wait for their results. Each round it hands the queued jobs to the nodes with the most
free room (a node takes up to twice its workers, so its pool never waits for the network), one
``run_batch`` call per node per round, not one per job.

Faults: a batch whose actor or node died goes back to the queue, to run on the nodes left, up to
``max_retries`` times per job; only then is it ``sandbox_error``. A result is taken once, from the
one batch that returned it: no job is lost or judged twice. Nodes that join later are found
every ``NODE_POLL_S`` and get work after passing the same checks.

Same conditions everywhere: a node whose harness or Docker image differs from the driver's is
refused (one line, in the manifest and on stderr); so is one slower than ``max_slowdown`` times the
driver by a speed probe. On the others the time limits are scaled by the node's measured slowness
(never below the driver's), and the manifest lists every node that judged.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ra3bench.errors import SandboxUnavailableError, UsageError
from ra3bench.sandbox.base import Job, JobResult, Sandbox
from ra3bench.sandbox.ray_node import NodeFacts, NodeSandbox, speed_probe

INSTALL_HINT = 'the ray sandbox needs Ray: pip install "ra3bench[ray]"'
NODE_POLL_S = 2.0  # how often the dispatcher looks for nodes that joined
PREFETCH = 2  # jobs in flight per node worker: its pool's own, and as many queued on the node
WAIT_S = 0.01  # the dispatcher's round: results collected, queued jobs sent


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


@dataclass
class Node:
    """A node that passed the checks, as the dispatcher tracks it."""

    facts: NodeFacts
    actor: Any
    slowdown: float  # its probe over the driver's, at least 1: the factor its time limits get
    in_flight: int = 0
    batches: int = 0
    jobs: int = 0

    @property
    def room(self) -> int:
        return PREFETCH * self.facts.workers - self.in_flight


@dataclass
class _Item:
    job: Job
    future: Future
    pinned: str = ""  # a node id: the job runs there or not at all (`sandbox check`, node by node)
    attempts: int = 0
    nodes: list[str] = field(default_factory=list)  # where it was tried (a dead node each time but the last)


class RaySandbox(Sandbox):
    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        inner: str = "auto",
        max_retries: int = 2,
        max_slowdown: float = 3.0,
    ) -> None:
        """``address``: a running cluster (``ray://`` or ``host:port``; default ``$RAY_ADDRESS``, else a
        local one started here); ``inner``: each node's sandbox (auto | docker | local); ``workers``:
        per node (default: that node's CPUs)."""
        self.ray = import_ray()
        self.inner = inner
        self.workers_per_node = workers
        self.max_retries = max(0, max_retries)
        self.max_slowdown = max_slowdown
        address = address or os.environ.get("RAY_ADDRESS") or None
        self._started_ray = not self.ray.is_initialized()
        if self._started_ray:
            try:
                self.ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a new local one"
                raise SandboxUnavailableError(f"cannot reach the Ray cluster at {where}: {_first_line(exc)}") from None
        self.address = address or "local"
        self.reference = _DriverReference(inner)
        self.nodes: dict[str, Node] = {}
        self.refused: dict[str, str] = {}
        self.lost: dict[str, str] = {}  # node id -> why it left (died mid-run)
        self.retried = 0  # jobs sent again after their node died
        self._lock = threading.Lock()
        self._queue: collections.deque[_Item] = collections.deque()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._local: Sandbox | None = None
        self._local_lock = threading.Lock()
        self._joining = threading.Thread()  # the thread that looks for new nodes, when one runs
        self._join_new_nodes()
        if not self.nodes:
            reasons = "; ".join(f"{node[:8]}: {why}" for node, why in self.refused.items()) or "it has no alive node"
            self.close()
            raise SandboxUnavailableError(f"no node of the Ray cluster ({self.address}) can run the sandbox: {reasons}")
        self._dispatcher = threading.Thread(target=self._dispatch, name="ra3bench-ray-dispatch", daemon=True)
        self._dispatcher.start()

    # -- nodes ---------------------------------------------------------------------------------

    def _join_new_nodes(self) -> None:
        """Start an actor on every alive node that has none, check it, and keep it or refuse it."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        known = set(self.nodes) | set(self.refused) | set(self.lost)
        fresh = [n["NodeID"] for n in self.ray.nodes() if n.get("Alive") and n["NodeID"] not in known]
        if not fresh:
            return
        actor_class = self.ray.remote(NodeSandbox)
        started = {}
        for node_id in fresh:
            strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            options = {"num_cpus": 0, "max_concurrency": 4, "scheduling_strategy": strategy, "max_restarts": 0}
            started[node_id] = actor_class.options(**options).remote(self.inner, self.workers_per_node, node_id)
        up = {}
        for node_id, actor in started.items():
            try:
                self.ray.get(actor.describe.remote())  # its pool is up
                up[node_id] = actor
            except Exception as exc:  # the node's sandbox could not start (no Docker, no image...)
                self._refuse(node_id, actor, f"its sandbox did not start: {_first_line(exc)}")
        for node_id, actor in up.items():
            try:  # probed one node at a time, once every pool is up: probes must not compete for cores
                self.ray.get(actor.probe.remote())
                facts = self.ray.get(actor.describe.remote())
            except Exception as exc:
                self._refuse(node_id, actor, f"its speed probe failed: {_first_line(exc)}")
                continue
            why = self.reference.refusal(facts, self.max_slowdown)
            if why:
                self._refuse(node_id, actor, why, facts.host)
                continue
            slowdown = max(1.0, facts.probe_s / self.reference.probe_s)
            with self._lock:
                self.nodes[node_id] = Node(facts, actor, slowdown)

    def _refuse(self, node_id: str, actor: Any, why: str, host: str = "") -> None:
        """The node does not judge for this driver: one line on stderr, and in the manifest."""
        with self._lock:
            self.refused[node_id] = why
        where = f"{host} ({node_id[:8]})" if host else node_id[:8]
        print(f"ra3bench: ray node {where} refused: {why}", file=sys.stderr, flush=True)
        self._kill(actor)

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(actor)

    # -- running jobs --------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Jobs worth keeping in flight: every node's workers, and as many queued on each."""
        with self._lock:
            return max(1, sum(PREFETCH * n.facts.workers for n in self.nodes.values()))

    def run(self, job: Job) -> JobResult:
        if job.holds_expected:
            return self._local_sandbox().run(job)
        return self._submit(job).result()

    def run_many(self, jobs: Iterable[Job]) -> Iterator[tuple[int, JobResult]]:
        from concurrent.futures import as_completed

        jobs = list(jobs)
        local = [(i, job) for i, job in enumerate(jobs) if job.holds_expected]
        if local:
            sandbox = self._local_sandbox()
            for k, result in sandbox.run_many([job for _, job in local]):
                yield local[k][0], result
        futures = {self._submit(job): i for i, job in enumerate(jobs) if not job.holds_expected}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def _submit(self, job: Job, pinned: str = "") -> Future:
        future: Future = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            # the answer check closes over expected values: it stays here (the node judges nothing)
            self._queue.append(_Item(replace(job, answer_fails=None), future, pinned))
            self._wake.notify()
        return future

    def node_sandboxes(self) -> list[tuple[str, Sandbox]]:
        """One sandbox per node, each running its jobs on that node only: ``sandbox check`` checks every node."""
        with self._lock:
            return [(f"{n.facts.host} ({n.facts.node_id[:8]})", NodeView(self, n)) for n in self.nodes.values()]

    @property
    def capabilities(self) -> frozenset[str]:
        """What every node's sandbox contains (the weakest node decides)."""
        from ra3bench.sandbox.attacks import capabilities_of

        with self._lock:
            sets = [capabilities_of(n.facts.sandbox) for n in self.nodes.values()]
        return frozenset.intersection(*sets) if sets else frozenset()

    def _local_sandbox(self) -> Sandbox:
        """The driver's own pool, for jobs that hold expected values (they never cross the network)."""
        with self._local_lock:
            if self._local is None:
                from ra3bench.sandbox import make_sandbox

                self._local = make_sandbox(self.inner, None)
            return self._local

    def _dispatch(self) -> None:
        in_flight: dict[Any, tuple[Node, list[_Item]]] = {}
        polled = time.monotonic()
        while True:
            with self._wake:
                while not self._closed and not self._queue and not in_flight:
                    self._wake.wait(timeout=NODE_POLL_S)
                if self._closed:
                    break
                batches = self._assign()
            for node, items in batches:
                jobs = [_scaled(item.job, node.slowdown) for item in items]
                ref = node.actor.run_batch.remote(jobs)
                in_flight[ref] = (node, items)
            if time.monotonic() - polled > NODE_POLL_S and not self._joining.is_alive():
                polled = time.monotonic()  # a node's pool takes seconds to start: not on this thread
                self._joining = threading.Thread(target=self._join_new_nodes, name="ra3bench-ray-join", daemon=True)
                self._joining.start()
            if not in_flight:
                if self._queue and not self.nodes:
                    self._fail_queue("every node of the Ray cluster has left")
                continue
            # the first batch back (at most WAIT_S: jobs queued meanwhile go out next round), and any other back by then
            ready, rest = self.ray.wait(list(in_flight), num_returns=1, timeout=WAIT_S)
            if ready and rest:
                ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                node, items = in_flight.pop(ref)
                try:
                    results = self.ray.get(ref)
                except self.ray.exceptions.RayTaskError as exc:
                    # the node is alive and its pool raised, as a local pool's run() would: the caller sees
                    # that error, as with a local sandbox; not a dead node, so nothing to retry elsewhere
                    with self._lock:
                        node.in_flight -= len(items)
                    for item in items:
                        item.future.set_exception(exc.as_instanceof_cause())
                    continue
                except Exception as exc:  # the actor, its node or the batch's result is gone
                    self._node_lost(node, exc, items)
                    continue
                with self._lock:
                    node.in_flight -= len(items)
                for item, result in zip(items, results, strict=True):
                    item.future.set_result(result)
        for _, items in in_flight.values():
            for item in items:
                item.future.set_result(JobResult.infrastructure_fault("the ray sandbox closed before the job ran"))

    def _assign(self) -> list[tuple[Node, list[_Item]]]:
        """Queued jobs to the nodes with the most free room, one batch per node (called under the lock)."""
        batches: dict[str, list[_Item]] = {}
        waiting: collections.deque[_Item] = collections.deque()
        while self._queue:
            item = self._queue.popleft()
            if item.pinned:
                node = self.nodes.get(item.pinned)
                if node is None:
                    why = f"ray sandbox: node {item.pinned[:8]} is not in the cluster any more"
                    item.future.set_result(JobResult.infrastructure_fault(why))
                    continue
            else:
                node = max(self.nodes.values(), key=lambda n: n.room, default=None)
            if node is None or node.room <= 0:
                waiting.append(item)
                continue
            item.attempts += 1
            item.nodes.append(node.facts.host)
            node.in_flight += 1
            node.jobs += 1
            batches.setdefault(node.facts.node_id, []).append(item)
        self._queue.extend(waiting)
        out = []
        for node_id, items in batches.items():
            node = self.nodes[node_id]
            node.batches += 1
            out.append((node, items))
        return out

    def _node_lost(self, node: Node, exc: BaseException, items: list[_Item]) -> None:
        """A batch failed because its actor or node died: the node leaves, its jobs run elsewhere."""
        why = _first_line(exc)
        with self._wake:
            if self.nodes.pop(node.facts.node_id, None) is not None:
                self.lost[node.facts.node_id] = why
                print(f"ra3bench: ray node {node.facts.host} left mid-run: {why}", file=sys.stderr, flush=True)
            for item in items:
                if item.attempts > self.max_retries:
                    item.future.set_result(
                        JobResult.infrastructure_fault(
                            f"ray sandbox: the job's node died {item.attempts} times ({', '.join(item.nodes)}): {why}"
                        )
                    )
                else:
                    self.retried += 1
                    self._queue.appendleft(item)
            self._wake.notify()
        self._kill(node.actor)

    def _fail_queue(self, why: str) -> None:
        with self._lock:
            while self._queue:
                self._queue.popleft().future.set_result(JobResult.infrastructure_fault(f"ray sandbox: {why}"))

    # -- the record ----------------------------------------------------------------------------

    def describe(self) -> dict:
        with self._lock:
            nodes = [
                {**asdict(n.facts), "slowdown": round(n.slowdown, 3), "batches": n.batches, "jobs": n.jobs}
                for n in self.nodes.values()
            ]
        for node in nodes:
            node.pop("sandbox", None)
        return {
            "kind": self.name,
            "isolation": self.isolation,
            "workers": self.workers,
            "address": self.address,
            "inner": self.inner,
            "driver": {"probe_s": round(self.reference.probe_s, 4), "harness": self.reference.harness},
            "nodes": nodes,
            "refused": dict(self.refused),
            "lost": dict(self.lost),
            "retried_jobs": self.retried,
            "max_retries": self.max_retries,
        }

    @property
    def isolation(self) -> str:  # type: ignore[override]
        kinds = sorted({n.facts.kind for n in self.nodes.values()})
        return f"ray cluster: each node's {'/'.join(kinds) or self.inner} sandbox"

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        dispatcher = getattr(self, "_dispatcher", None)
        if dispatcher is not None:
            dispatcher.join(timeout=10)
        for node in list(self.nodes.values()):
            with contextlib.suppress(Exception):  # a node that died meanwhile
                self.ray.get(node.actor.close.remote(), timeout=30)
            self._kill(node.actor)
        self.nodes.clear()
        self._fail_queue("the sandbox closed")
        if self._local is not None:
            self._local.close()
        if self._started_ray and self.ray.is_initialized():
            self.ray.shutdown()


class NodeView(Sandbox):
    """One node of a :class:`RaySandbox` as a sandbox of its own (jobs pinned to it)."""

    name = "ray"

    def __init__(self, parent: RaySandbox, node: Node) -> None:
        self.parent = parent
        self.node = node
        self.isolation = f"ray node {node.facts.host}: its {node.facts.kind} sandbox"

    @property
    def workers(self) -> int:
        return PREFETCH * self.node.facts.workers

    @property
    def capabilities(self) -> frozenset[str]:
        from ra3bench.sandbox.attacks import capabilities_of

        return capabilities_of(self.node.facts.sandbox)

    def run(self, job: Job) -> JobResult:
        if job.holds_expected:
            return self.parent.run(job)
        return self.parent._submit(job, self.node.facts.node_id).result()

    def describe(self) -> dict:
        facts = {k: v for k, v in asdict(self.node.facts).items() if k != "sandbox"}
        return {"kind": self.name, "isolation": self.isolation, "workers": self.workers, "node": facts}

    def close(self) -> None:
        """The parent owns the node."""


@dataclass
class _DriverReference:
    """What every node must match: the driver's harness (and image), and its speed."""

    inner: str
    harness: str = ""
    image_id: str = ""
    probe_s: float = 0.0

    def __post_init__(self) -> None:
        from ra3bench.sandbox.image import harness_digest

        self.harness = harness_digest()
        self.image_id = _driver_image_id() if self.inner in ("docker", "auto") else ""
        self.probe_s = speed_probe()

    def refusal(self, facts: NodeFacts, max_slowdown: float) -> str:
        """Why a node may not judge for this driver ("" if it may)."""
        if facts.harness != self.harness:
            theirs, ours = facts.harness[:12], self.harness[:12]
            return f"its sandbox harness {theirs} is not the driver's {ours} (install this ra3bench there)"
        if self.image_id and facts.kind == "docker" and facts.image_id != self.image_id:
            return (
                f"its sandbox image {facts.image_id[:19]} is not the driver's {self.image_id[:19]} "
                "(`ra3bench sandbox build` there, or load the driver's image: docs/cluster.md)"
            )
        slowdown = facts.probe_s / self.probe_s
        if slowdown > max_slowdown:
            return f"it is {slowdown:.1f}x slower than the driver by the speed probe (limit {max_slowdown:g}x)"
        return ""


def _driver_image_id() -> str:
    """The id of the sandbox image the driver would run, "" when the driver has no Docker."""
    try:
        from ra3bench.sandbox.image import docker_client, find_image

        client = docker_client(timeout=10)
        tag = find_image(client)
        return str(client.images.get(tag).id) if tag else ""
    except Exception:
        return ""


def _scaled(job: Job, slowdown: float) -> Job:
    """``job`` with its time limits scaled for a node ``slowdown`` times slower than the driver."""
    if slowdown <= 1.0:
        return job
    return replace(
        job,
        time_limits_s=[t * slowdown for t in job.time_limits_s],
        script_time_s=job.script_time_s * slowdown,
        limits=replace(job.limits, load_time_s=job.limits.load_time_s * slowdown),
    )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
