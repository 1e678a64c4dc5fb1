"""``--sandbox ray``: sandbox jobs on a Ray cluster, one pool per node, judged on the driver.

The driver keeps everything a verdict depends on: suites, expected values, the verdict cache
and the judge. It sends nodes only jobs (programs and test inputs) and gets back their results,
validated by the node's own trusted pool code (``ray_node.py``). Jobs that hold expected values
(reference runs, checkers given the correct output) never leave the driver: they run on a pool
of the driver's own.

Scheduling: one dispatcher thread sends work. ``run`` and ``run_many`` put jobs on its queue and
wait for their results. It hands queued jobs to the nodes with the most free room: a node holds a
job per worker and a few queued (``Node.capacity``), and takes a new batch once its queued part has
run out, one ``submit`` call per batch, not one per job. Each node's results come back on its own
stream (``NodeSandbox.events``), read by a thread per node, each job's as soon as it ends.

Early stop: a fail-fast job's answers come back on that stream as they come out of the sandbox;
the driver checks each with the job's ``answer_fails`` (it closes over expected values, which stay
here) and tells the node to stop the job at the first failed test, as a local pool does.

Faults: the jobs of a node whose actor or node died go back to the queue, to run on the nodes
left, up to ``max_retries`` times per job; only then are they ``sandbox_error``. A result is taken
once, from the one node that ran the job last: no job is lost or judged twice. Nodes that join later are found
every ``NODE_POLL_S`` and get work after passing the same checks.

Same conditions everywhere: a node whose harness or Docker image differs from the driver's is
refused (one line, in the manifest and on stderr); so is one slower than ``max_slowdown`` times the
driver by a speed probe. On the others the time limits are scaled by the node's measured slowness
(never below the driver's), and the manifest lists every node that judged.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import pickle
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ra3bench.errors import SandboxUnavailableError, UsageError
from ra3bench.sandbox.base import CallResult, Job, JobResult, Sandbox
from ra3bench.sandbox.ray_link import RayLink, TcpLink
from ra3bench.sandbox.ray_node import NodeEvents, NodeFacts, NodeSandbox, code_digest, speed_probe

INSTALL_HINT = 'the ray sandbox needs Ray: pip install "ra3bench[ray]"'
NODE_POLL_S = 2.0  # how often the dispatcher looks for nodes that joined
# A node holds a job per worker and a quarter as many again, queued on it: enough that a large node's
# pool never waits for the network, and batches of a quarter of its workers; few enough that no job
# waits long behind a slow one while another node is free (with a whole node's worth queued, a run
# without fail-fast took twice as long). A node of under 4 workers holds no queue.
QUEUED_PER_WORKER = 0.25


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
    running: dict[int, _Item] = field(default_factory=dict)  # sent to it, result not back yet
    link: TcpLink | RayLink | None = None  # its data path (ray_link.py): RayLink where no connection could be made
    receiver: threading.Thread | None = None  # reads its stream
    watcher: threading.Thread | None = None  # with a TcpLink: waits for Ray to say the actor or node died
    batches: int = 0
    jobs: int = 0
    largest_batch: int = 0

    @property
    def capacity(self) -> int:
        """Jobs it holds at most: one per worker and QUEUED_PER_WORKER more."""
        return self.facts.workers + int(self.facts.workers * QUEUED_PER_WORKER)

    @property
    def room(self) -> int:
        return self.capacity - len(self.running)


@dataclass
class _Item:
    key: int
    job: Job  # as sent: without its answer check
    future: Future
    answer_fails: Callable[[int, CallResult], bool] | None = None  # the driver's check of a streamed answer
    answers: dict[int, CallResult] = field(default_factory=dict)  # streamed by the node that runs it now
    stop_sent: bool = False
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
        self._keys = itertools.count()
        self._pinned_queued = 0  # queued jobs pinned to a node (`sandbox check`)
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
        alive = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in self.ray.nodes() if n.get("Alive")}
        fresh = [node_id for node_id in alive if node_id not in known]
        if not fresh:
            return
        actor_class = self.ray.remote(NodeSandbox)
        started = {}
        for node_id in fresh:
            strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            options = {"num_cpus": 0, "max_concurrency": 8, "scheduling_strategy": strategy, "max_restarts": 0}
            started[node_id] = actor_class.options(**options).remote(self.inner, self.workers_per_node, node_id)
        described: dict[str, NodeFacts] = {}
        for node_id, actor in started.items():
            try:
                described[node_id] = self.ray.get(actor.describe.remote())  # its pool is up
            except Exception as exc:  # the node's sandbox could not start (no Docker, no image...)
                self._refuse(node_id, actor, f"its sandbox did not start: {_first_line(exc)}")
        for node_id, facts_or_error in self._probe(started, described).items():
            actor = started[node_id]
            if isinstance(facts_or_error, BaseException):
                self._refuse(node_id, actor, f"its speed probe failed: {_first_line(facts_or_error)}")
                continue
            facts = facts_or_error
            why = self.reference.refusal(facts, self.max_slowdown)
            if why:
                self._refuse(node_id, actor, why, facts.host)
                continue
            slowdown = max(1.0, facts.probe_s / self.reference.probe_s)
            node = Node(facts, actor, slowdown, link=self._open_link(actor, alive[node_id], facts.host))
            name = f"ra3bench-ray-{node_id[:8]}"
            node.receiver = threading.Thread(target=self._receive, args=(node,), name=name, daemon=True)
            if node.link.kind == "tcp":
                node.watcher = threading.Thread(target=self._watch, args=(node,), name=f"{name}-alive", daemon=True)
            with self._wake:
                self.nodes[node_id] = node
                self._wake.notify()
            node.receiver.start()
            if node.watcher is not None:
                node.watcher.start()

    def _probe(self, actors: dict[str, Any], described: dict[str, NodeFacts]) -> dict[str, NodeFacts | BaseException]:
        """Each node's facts with its speed probe, measured once every pool is up. Nodes on one host are probed
        one at a time (probes that compete for its cores make a node look slow), nodes on other hosts at the
        same time (a cluster of 64 machines is probed in the time of one)."""
        rounds: dict[str, list[str]] = {}
        for node_id, facts in described.items():
            rounds.setdefault(facts.host, []).append(node_id)
        out: dict[str, NodeFacts | BaseException] = {}
        while any(rounds.values()):
            probing = [ids.pop(0) for ids in rounds.values() if ids]
            refs = {node_id: actors[node_id].probe.remote() for node_id in probing}
            for node_id, ref in refs.items():
                try:
                    out[node_id] = replace(described[node_id], probe_s=self.ray.get(ref))
                except Exception as exc:
                    out[node_id] = exc
        return out

    def _open_link(self, actor: Any, node_address: str, host: str) -> TcpLink | RayLink:
        """A direct connection to the node's actor if the driver can reach the node, else Ray's messages."""
        key = secrets.token_bytes(32)
        try:
            if not node_address:
                raise OSError("Ray does not say the node's address")
            return TcpLink(self.ray.get(actor.listen.remote(node_address, key), timeout=60), key)
        except Exception as exc:
            print(
                f"ra3bench: ray node {host}: no direct connection ({_first_line(exc)}); its jobs go through "
                "Ray's messages, which cost more CPU a job (docs/cluster.md)",
                file=sys.stderr,
                flush=True,
            )
            return RayLink(actor, self.ray)

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
        """Jobs worth keeping in flight (callers run this many at a time): what the nodes hold, and a worker's
        worth more queued here, so that a worker that frees gets its next job in one round trip."""
        with self._lock:
            return max(1, sum(n.capacity + n.facts.workers for n in self.nodes.values()))

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
            # the answer check closes over expected values: it stays here, and the node streams the answers
            check = job.answer_fails if job.streams else None
            self._queue.append(_Item(next(self._keys), replace(job, answer_fails=None), future, check, pinned=pinned))
            self._pinned_queued += bool(pinned)
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
        """Send queued jobs to nodes with room, as they come and as room frees; look for new nodes now and then."""
        polled = time.monotonic()
        while True:
            with self._wake:
                while not self._closed and not self._sendable() and time.monotonic() - polled < NODE_POLL_S:
                    self._wake.wait(timeout=NODE_POLL_S)
                if self._closed:
                    return
                batches = self._assign()
                if self._queue and not self.nodes:
                    self._fail_queue_locked("every node of the Ray cluster has left")
            for node, items in batches:
                sent = [(item.key, _scaled(item.job, node.slowdown), item.answer_fails is not None) for item in items]
                try:
                    batch = pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # a job that cannot be sent (it does not pickle): the caller's error
                    with self._lock:
                        for item in items:
                            node.running.pop(item.key, None)
                    for item in items:
                        item.future.set_exception(exc)
                    continue
                with contextlib.suppress(Exception):  # a node gone meanwhile: its receiver finds it, the jobs go again
                    node.link.send_jobs(batch)
            if time.monotonic() - polled > NODE_POLL_S and not self._joining.is_alive():
                polled = time.monotonic()  # a node's pool takes seconds to start: not on this thread
                self._joining = threading.Thread(target=self._join_new_nodes, name="ra3bench-ray-join", daemon=True)
                self._joining.start()

    def _sendable(self) -> bool:
        """Whether a queued job can go out now (under the lock)."""
        if not self._queue:
            return False
        if not self.nodes:
            return True  # to fail it
        if len(self._queue) > self._pinned_queued and any(_open(n) for n in self.nodes.values()):
            return True
        if self._pinned_queued:  # `sandbox check`'s jobs, pinned to a node each: few
            for item in self._queue:
                node = self.nodes.get(item.pinned) if item.pinned else None
                if item.pinned and (node is None or node.room > 0):
                    return True
        return False

    def _receive(self, node: Node) -> None:
        """Read one node's stream until it ends (our close) or fails (its actor or node died)."""
        try:
            for item in node.link.items():
                self._take(node, pickle.loads(item))
        except Exception as exc:
            if not self._closed:
                self._node_lost(node, exc)
            return
        if not self._closed:
            self._node_lost(node, RuntimeError("its connection ended (its actor or node died)"))

    def _watch(self, node: Node) -> None:
        """Wait for Ray to say that the node's actor or the node died: a machine that vanished ends no connection."""
        try:
            self.ray.get(node.actor.wait_closed.remote())
        except Exception as exc:
            if not self._closed:
                self._node_lost(node, exc)

    def _take(self, node: Node, events: NodeEvents) -> None:
        """Check streamed answers (stop a job at its first failed test) and hand ended jobs their results."""
        with self._lock:
            answers = [(node.running.get(key), i, call) for key, i, call in events.answers]
            ended = [(node.running.pop(key, None), result) for key, result in events.done]
            raised = [(node.running.pop(key, None), exc) for key, exc in events.errors]
            if ended or raised:
                self._wake.notify()
        stops = []
        for item, i, call in answers:
            if item is None:
                continue
            item.answers[i] = call
            if item.stop_sent or item.answer_fails is None:
                continue
            try:
                failed = bool(item.answer_fails(i, call))
            except Exception:  # only an optimization: the final judging decides
                failed = False
            if failed:
                item.stop_sent = True
                stops.append(item.key)
        if stops:
            with contextlib.suppress(Exception):  # a node that died meanwhile: its stream says so
                node.link.send_stop(stops)
        for item, result in ended:
            if item is not None:
                item.future.set_result(_with_streamed(result, item.answers))
        for item, exc in raised:
            if item is not None:  # the node is alive and its pool raised: the caller sees it, as from a local pool
                item.future.set_exception(exc)

    def _assign(self) -> list[tuple[Node, list[_Item]]]:
        """Queued jobs to the nodes with the most free room, one batch per node (called under the lock).

        A node takes a batch once its own queue has run dry (``_open``: its workers still busy with what
        they have), so batches hold about a node's workers each, not one job per freed worker."""
        batches: dict[str, list[_Item]] = {}
        opened = [n for n in self.nodes.values() if _open(n)]
        waiting: collections.deque[_Item] = collections.deque()
        while self._queue:
            free = [n for n in opened if n.room > 0]
            if not free and not self._pinned_queued:
                break  # the rest waits for room
            item = self._queue.popleft()
            if item.pinned:
                self._pinned_queued -= 1
                node = self.nodes.get(item.pinned)
                if node is None:
                    why = f"ray sandbox: node {item.pinned[:8]} is not in the cluster any more"
                    item.future.set_result(JobResult.infrastructure_fault(why))
                    continue
            else:
                node = max(free, key=lambda n: n.room, default=None)
            if node is None or node.room <= 0:
                waiting.append(item)
                continue
            item.attempts += 1
            item.nodes.append(node.facts.host)
            item.stop_sent = False
            item.answers = {}
            node.running[item.key] = item
            node.jobs += 1
            batches.setdefault(node.facts.node_id, []).append(item)
        self._pinned_queued += sum(1 for item in waiting if item.pinned)
        self._queue.extendleft(reversed(waiting))  # in their order, before the ones not looked at
        out = []
        for node_id, items in batches.items():
            node = self.nodes[node_id]
            node.batches += 1
            node.largest_batch = max(node.largest_batch, len(items))
            out.append((node, items))
        return out

    def _node_lost(self, node: Node, exc: BaseException) -> None:
        """The node's actor or the node died: it leaves the run, and the jobs it had run elsewhere."""
        why = _first_line(exc)
        with self._wake:
            if self.nodes.pop(node.facts.node_id, None) is not None:
                self.lost[node.facts.node_id] = why
                print(f"ra3bench: ray node {node.facts.host} left mid-run: {why}", file=sys.stderr, flush=True)
            items, node.running = list(node.running.values()), {}
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
                    self._pinned_queued += bool(item.pinned)
            self._wake.notify()
        if node.link is not None:
            node.link.close()  # its receiver stops reading
        self._kill(node.actor)

    def _fail_queue(self, why: str) -> None:
        with self._lock:
            self._fail_queue_locked(why)

    def _fail_queue_locked(self, why: str) -> None:
        self._pinned_queued = 0
        while self._queue:
            self._queue.popleft().future.set_result(JobResult.infrastructure_fault(f"ray sandbox: {why}"))

    # -- the record ----------------------------------------------------------------------------

    def describe(self) -> dict:
        with self._lock:
            nodes = [
                {**asdict(n.facts), "slowdown": round(n.slowdown, 3), "batches": n.batches, "jobs": n.jobs}
                | {"largest_batch": n.largest_batch, "link": n.link.kind if n.link is not None else ""}
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
        closing = []
        for node in list(self.nodes.values()):  # every node closes its pool at the same time
            with contextlib.suppress(Exception):  # a node that died meanwhile
                closing.append(node.actor.close.remote())
        with contextlib.suppress(Exception):
            self.ray.wait(closing, num_returns=len(closing), timeout=30)
        for node in list(self.nodes.values()):
            for thread in (node.receiver, node.watcher):
                if thread is not None:
                    thread.join(timeout=10)
            self._kill(node.actor)
            with self._lock:
                items, node.running = list(node.running.values()), {}
            for item in items:
                item.future.set_result(JobResult.infrastructure_fault("the ray sandbox closed before the job ran"))
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
        return self.node.capacity

    @property
    def capabilities(self) -> frozenset[str]:
        from ra3bench.sandbox.attacks import capabilities_of

        return capabilities_of(self.node.facts.sandbox)

    def run(self, job: Job) -> JobResult:
        if job.holds_expected:
            return self.parent.run(job)
        return self.parent._submit(job, self.node.facts.node_id).result()

    def link_attacks(self) -> list[tuple[str, str, str, bool]]:
        """The node's connection attacked from the network (``ray_link.intrude``): (attack, expected, observed,
        contained) rows for ``sandbox check``. A node reached through Ray has no connection of its own."""
        from ra3bench.sandbox.ray_link import intrude

        attack = "take over the node's connection without its key"
        link = self.node.link
        if not isinstance(link, TcpLink):
            return [(attack, "refused", "no connection: Ray's messages", True)]
        observed = intrude(link.address)
        return [(attack, "refused", observed, observed.startswith("refused"))]

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
    code: str = ""

    def __post_init__(self) -> None:
        from ra3bench.sandbox.image import harness_digest

        self.harness = harness_digest()
        self.code = code_digest()
        self.image_id = _driver_image_id() if self.inner in ("docker", "auto") else ""
        self.probe_s = speed_probe()

    def refusal(self, facts: NodeFacts, max_slowdown: float) -> str:
        """Why a node may not judge for this driver ("" if it may)."""
        if facts.harness != self.harness:
            theirs, ours = facts.harness[:12], self.harness[:12]
            return f"its sandbox harness {theirs} is not the driver's {ours} (install this ra3bench there)"
        if facts.code != self.code:
            theirs, ours = facts.code[:12], self.code[:12]
            return f"its ra3bench sandbox code {theirs} is not the driver's {ours} (install this ra3bench there)"
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


def _with_streamed(result: JobResult, answers: dict[int, CallResult]) -> JobResult:
    """The node's result with the calls it left out (streamed before, ``None`` here) put back."""
    if not answers or all(call is not None for call in result.calls):
        return result
    missing = [i for i, call in enumerate(result.calls) if call is None and i not in answers]
    if missing:  # the node's own code streams each before it ends the job: a fault of ours, not the program's
        return JobResult.infrastructure_fault(f"ray sandbox: the node left out calls {missing[:5]} it never streamed")
    return replace(result, calls=[answers[i] if call is None else call for i, call in enumerate(result.calls)])


def _open(node: Node) -> bool:
    """Whether ``node`` takes a batch now: it has room, and what it holds beyond its workers' own jobs has run out."""
    return node.room > 0 and len(node.running) <= node.facts.workers


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
