"""``--sandbox ray`` on Ray's own multi-node test cluster (``ray.cluster_utils.Cluster``), on this machine.

Each node runs its own bubblewrapped local pool (``ray:local``); the driver judges. Verdicts must
be those of a local run, whatever happens to the nodes: one removed mid-evaluation, one joining
later. Ray is installed by CI (``ra3bench[ray]``); without it these tests skip.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402
from test_rlvr import private_cache, toy  # noqa: E402, F401 (fixtures)

from ra3bench import EvalSpec, Session  # noqa: E402
from ra3bench.errors import SandboxUnavailableError  # noqa: E402
from ra3bench.sandbox.base import Job  # noqa: E402
from ra3bench.sandbox.local import LocalSandbox, bwrap_problem  # noqa: E402
from ra3bench.sandbox.ray_node import NodeFacts  # noqa: E402
from ra3bench.sandbox.ray_pool import NODE_POLL_S, RaySandbox, _DriverReference  # noqa: E402

pytestmark = pytest.mark.skipif(bool(bwrap_problem()), reason="the nodes' local sandbox needs bubblewrap")


@pytest.fixture
def cluster():
    """A head and two workers, one CPU each, all on this machine."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    c.workers = workers
    yield c
    ray.shutdown()
    c.shutdown()


def samples(session: Session, count: int) -> tuple[list[str], list[str]]:
    """Reference solutions and wrong programs, alternating (pass and fail verdicts both)."""
    ids, programs = [], []
    for problem in session.problems[:count]:
        ids += [problem.task_id, problem.task_id]
        programs += [problem.reference, f"def {problem.entry_point}(*args):\n    return None\n"]
    return ids, programs


def judged(sandbox, ids: list[str], programs: list[str]) -> list[tuple[str, str]]:
    session = Session(EvalSpec(suite="humaneval+", cache=False), sandbox=sandbox)
    return [(v.task_id, v.status.value) for v in session.judge(ids, programs)]


@pytest.fixture(scope="module")
def local_verdicts():
    """The same samples judged by a local pool: what every ray run must give."""
    with LocalSandbox(workers=2) as sandbox:
        session = Session(EvalSpec(suite="humaneval+", cache=False), sandbox=sandbox)
        ids, programs = samples(session, 12)
        return ids, programs, judged(sandbox, ids, programs)


def test_verdicts_are_a_local_runs_and_every_node_judges(cluster, local_verdicts):
    ids, programs, expected = local_verdicts
    with RaySandbox(1, inner="local") as sandbox:
        assert judged(sandbox, ids, programs) == expected
        record = sandbox.describe()
    assert {"pass", "fail"} <= {status for _, status in expected}
    assert len(record["nodes"]) == 3 and all(n["jobs"] > 0 for n in record["nodes"]), record["nodes"]
    assert record["refused"] == {} and record["lost"] == {}
    assert all(n["harness"] == record["driver"]["harness"] for n in record["nodes"])
    assert all(n["link"] == "tcp" for n in record["nodes"])  # jobs and results went through direct connections


def test_where_no_direct_connection_can_be_made_the_nodes_traffic_goes_through_ray(
    cluster, local_verdicts, monkeypatch, capsys
):
    """A driver that cannot reach the nodes (a Ray Client driver, a firewall) still judges, through Ray's messages."""
    import ra3bench.sandbox.ray_pool as ray_pool

    def unreachable(address, key):
        raise ConnectionRefusedError(f"{address[0]}:{address[1]} refused the connection")

    monkeypatch.setattr(ray_pool, "TcpLink", unreachable)
    ids, programs, expected = local_verdicts
    with RaySandbox(1, inner="local") as sandbox:
        assert judged(sandbox, ids, programs) == expected
        record = sandbox.describe()
    assert [n["link"] for n in record["nodes"]] == ["ray"] * 3
    said = [line for line in capsys.readouterr().err.splitlines() if "no direct connection" in line]
    assert len(said) == 3 and "ConnectionRefusedError" in said[0], said


def test_queued_jobs_go_to_each_node_in_batches_not_one_call_each(cluster):
    """Four workers a node: each node takes its first five jobs in one call, and never more than it holds."""
    job = Job(program="def f(x):\n    return x\n", entry_point="f", calls=[[1]], time_limits_s=[5.0])
    with RaySandbox(4, inner="local") as sandbox:
        results = dict(sandbox.run_many([job] * 30))
        record = sandbox.describe()
    assert sorted(results) == list(range(30)) and all(r.calls[0].value == 1 for r in results.values())
    assert sum(n["jobs"] for n in record["nodes"]) == 30
    assert all(n["largest_batch"] == 5 and n["batches"] < n["jobs"] for n in record["nodes"]), record["nodes"]


def test_a_round_sends_one_batch_per_node_and_only_what_each_node_has_room_for():
    """The dispatcher's rounds (``_assign``), without a cluster: a node of 8 workers holds 10 jobs; it gets its
    next batch once its 2 queued jobs have started (8 or fewer held), not a job at a time."""
    from collections import deque
    from concurrent.futures import Future

    from ra3bench.sandbox.ray_pool import Node, _Item

    sandbox = RaySandbox.__new__(RaySandbox)
    sandbox.nodes = {n: Node(NodeFacts(n, n, "local", 8, "h", "", "c", 8, 0.1), None, 1.0) for n in ("a", "b")}
    sandbox._queue = deque(_Item(k, Job(program=""), Future()) for k in range(40))
    sandbox._pinned_queued = 0
    first = sandbox._assign()
    assert sorted(len(items) for _, items in first) == [10, 10] and len(sandbox._queue) == 20
    a = sandbox.nodes["a"]
    a.running.pop(next(iter(a.running)))  # one job of a ended: 9 held, its queued part not run out
    assert sandbox._assign() == []
    a.running.pop(next(iter(a.running)))  # another: 8 held, one per worker
    ((node, items),) = sandbox._assign()
    assert node is a and len(items) == 2 and len(sandbox._queue) == 18


def test_the_driver_stops_a_job_on_its_node_at_a_failed_answer_and_gets_every_answer_back(cluster):
    """The answer check closes over expected values, so it runs on the driver: the node streams the answers,
    the driver sees test 0 fail and the node stops the job there, as a local pool does. A job whose answers
    all pass runs to the end, and its result holds every answer, the streamed ones put back."""
    from ra3bench.sandbox.base import CallStatus

    slow = "import time\ndef f(x):\n    time.sleep(0.05)\n    return x\n"
    calls = [[i] for i in range(60)]  # 3 s of tests in all
    seen: list[int] = []

    def fails_at_zero(i, call):
        seen.append(i)
        return i == 0

    job = Job(program=slow, entry_point="f", calls=calls, time_limits_s=[5.0] * 60)
    with RaySandbox(1, inner="local") as sandbox:
        stopped = sandbox.run(replace(job, answer_fails=fails_at_zero))
        whole = sandbox.run(replace(job, answer_fails=lambda i, call: False))
    ran = [c for c in stopped.calls if c.status is CallStatus.OK]
    assert seen and seen[0] == 0  # the check ran here, on the driver
    assert stopped.calls[0].value == 0 and 1 <= len(ran) < 30, len(ran)  # stopped within a few tests of the failure
    assert all(c.status is CallStatus.MISSING for c in stopped.calls[len(ran) :])
    assert [c.value for c in whole.calls] == list(range(60))  # nothing lost between the stream and the result
    assert all(c.status is CallStatus.OK for c in whole.calls)


def test_a_node_removed_mid_evaluation_costs_retries_not_verdicts(cluster, local_verdicts):
    ids, programs, expected = local_verdicts
    ids, programs, expected = ids * 3, programs * 3, expected * 3
    with RaySandbox(1, inner="local") as sandbox:
        victim = cluster.workers[0]
        removed, done = threading.Event(), threading.Event()

        def remove_soon() -> None:
            while not done.is_set():
                if any(n["jobs"] for n in sandbox.describe()["nodes"] if n["node_id"] == victim.node_id):
                    cluster.remove_node(victim)
                    removed.set()
                    return
                time.sleep(0.02)

        remover = threading.Thread(target=remove_soon)
        remover.start()
        try:
            verdicts = judged(sandbox, ids, programs)
        finally:
            done.set()
            remover.join()
        record = sandbox.describe()
    assert removed.is_set(), record
    assert verdicts == expected  # none lost, none judged twice, none a sandbox_error
    assert victim.node_id in record["lost"]
    assert record["retried_jobs"] > 0  # the node died with work in flight, which ran again elsewhere
    assert victim.node_id not in {n["node_id"] for n in record["nodes"]}


def test_a_node_that_joins_later_gets_work(cluster, local_verdicts):
    ids, programs, expected = local_verdicts
    with RaySandbox(1, inner="local") as sandbox:
        before = {n["node_id"] for n in sandbox.describe()["nodes"]}
        late = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        deadline = time.monotonic() + 30 + NODE_POLL_S
        while late.node_id not in {n["node_id"] for n in sandbox.describe()["nodes"]}:
            sandbox.run(Job(program="x = 1\n"))  # the dispatcher looks for nodes between rounds
            assert time.monotonic() < deadline, "the new node never joined"
            time.sleep(0.2)
        assert judged(sandbox, ids * 2, programs * 2) == expected * 2
        record = sandbox.describe()
    assert late.node_id not in before
    assert next(n for n in record["nodes"] if n["node_id"] == late.node_id)["jobs"] > 0


def test_an_error_raised_by_a_nodes_pool_reaches_the_caller_and_the_node_stays(cluster):
    """A pool that raises (here: a job with more calls than time limits, refused by the pool as locally) is not a
    dead node: the caller gets the pool's error, as from a local sandbox, and no node leaves the run."""
    bad = Job(program="def f():\n    return 1\n", entry_point="f", calls=[[]], time_limits_s=[])
    good = Job(program="def f():\n    return 1\n", entry_point="f", calls=[[]], time_limits_s=[5.0])
    with RaySandbox(1, inner="local") as sandbox:
        with LocalSandbox(workers=1) as local, pytest.raises(ValueError, match="1 calls but 0 time limits"):
            local.run(bad)
        with pytest.raises(ValueError, match="1 calls but 0 time limits"):
            sandbox.run(bad)
        assert sandbox.run(good).calls[0].value == 1
        record = sandbox.describe()
    assert len(record["nodes"]) == 3 and record["lost"] == {} and record["retried_jobs"] == 0


def test_jobs_that_hold_expected_values_never_leave_the_driver(cluster):
    with RaySandbox(1, inner="local") as sandbox:
        job = Job(program="def f():\n    return 2\n", entry_point="f", calls=[[]], time_limits_s=[5.0])
        result = sandbox.run(replace(job, holds_expected=True))
        assert result.calls[0].value == 2
        assert all(n["jobs"] == 0 for n in sandbox.describe()["nodes"])


def test_a_node_with_another_harness_is_refused_with_one_line(cluster, monkeypatch):
    import ra3bench.sandbox.image as image

    monkeypatch.setattr(image, "harness_digest", lambda: "f" * 64)  # the driver's harness, not the nodes'
    with pytest.raises(SandboxUnavailableError, match=r"no node of the Ray cluster .* its sandbox harness \w+ is not"):
        RaySandbox(1, inner="local")


def test_refusal_reasons():
    reference = _DriverReference.__new__(_DriverReference)
    reference.inner, reference.harness, reference.image_id, reference.probe_s = "docker", "a" * 64, "sha256:1", 0.1
    reference.code = ""
    facts = NodeFacts("n", "h", "docker", 1, "a" * 64, "sha256:1", "cpu", 1, 0.1)
    assert reference.refusal(facts, 3.0) == ""
    assert "sandbox code" in reference.refusal(replace(facts, code="c" * 64), 3.0)
    assert "image" in reference.refusal(NodeFacts("n", "h", "docker", 1, "a" * 64, "sha256:2", "c", 1, 0.1), 3.0)
    assert "3.5x slower" in reference.refusal(NodeFacts("n", "h", "docker", 1, "a" * 64, "sha256:1", "c", 1, 0.35), 3.0)


def test_sandbox_check_runs_the_hostile_suite_on_every_node(cluster, capsys):
    import json

    from ra3bench.cli.main import main

    code = main(["sandbox", "check", "--sandbox", "ray:local", "--ray-address", cluster.address, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"]
    assert len(report["nodes"]) == 3
    assert len({n["sandbox"]["node"]["node_id"] for n in report["nodes"]}) == 3
    assert all(n["attacks"] and n["verdict_integrity"]["forgeries"] for n in report["nodes"])
    # each node's connection, attacked from the network: its port closed once the driver connected
    assert all([a["ok"] for a in n["link"]] == [True] for n in report["nodes"])
    assert all(n["link"][0]["observed"].startswith("refused: nothing listens") for n in report["nodes"])


def test_a_slower_node_gets_proportionally_longer_limits():
    from ra3bench.sandbox.base import Limits
    from ra3bench.sandbox.ray_pool import _scaled

    job = Job(program="", calls=[[1], [2]], time_limits_s=[1.0, 2.0], script_time_s=10.0, limits=Limits(load_time_s=5))
    slow = _scaled(job, 1.5)
    assert slow.time_limits_s == [1.5, 3.0] and slow.script_time_s == 15.0 and slow.limits.load_time_s == 7.5
    assert _scaled(job, 1.0) is job  # a node as fast as the driver (or faster) gets the driver's limits


@pytest.mark.usefixtures("toy")
def test_a_training_run_judges_rewards_and_evaluations_on_the_cluster(cluster, tmp_path):
    import json

    from test_rlvr import SPEC, TOY, curve

    from ra3bench.training.runner import train

    sandbox_keys = ("eval.sandbox", "trainer.sandbox", "eval.workers", "trainer.workers")
    overrides = [o for o in TOY if not o.startswith(sandbox_keys)]
    overrides += ["eval.sandbox=ray:local", f"eval.ray_address={cluster.address}", "eval.workers=1"]
    run_dir = train(SPEC, None, [*overrides, "trainer.steps=2", f"run.out={tmp_path / 'run'}"])
    assert [p["step"] for p in curve(run_dir, "train")] == [1, 2]
    assert all(p["dropped_sandbox_error"] == 0 for p in curve(run_dir, "train"))
    evaluated = json.loads((run_dir / "evals" / "step-000002" / "mbppplus" / "manifest.json").read_text())
    assert evaluated["sandbox"]["kind"] == "ray" and len(evaluated["sandbox"]["nodes"]) == 3


def test_nodes_on_one_host_are_probed_one_at_a_time_and_other_hosts_at_the_same_time():
    """The probe rounds (``_probe``), without a cluster: a probe is sent when its round starts and read after."""
    events: list[str] = []

    class Call:
        def __init__(self, name: str, result) -> None:
            self.name, self.result = name, result

        def remote(self):
            events.append(f"send {self.name}")
            return self

    class Actor:
        def __init__(self, node_id: str) -> None:
            self.probe = Call(f"probe {node_id}", 0.25)

    class FakeRay:
        @staticmethod
        def get(call):
            events.append(f"get {call.name}")
            return call.result

    sandbox = RaySandbox.__new__(RaySandbox)
    sandbox.ray = FakeRay()
    hosts = {"a1": "a", "a2": "a", "b1": "b"}
    described = {n: NodeFacts(n, h, "local", 1, "h", "", "c", 1, 0.0) for n, h in hosts.items()}
    facts = sandbox._probe({n: Actor(n) for n in hosts}, described)
    assert {n: f.host for n, f in facts.items()} == hosts
    assert all(f.probe_s == 0.25 for f in facts.values())  # each node's facts carry its own probe
    probes = [e for e in events if "probe" in e]
    assert probes[:2] == ["send probe a1", "send probe b1"]  # the two hosts at once
    assert probes.index("send probe a2") > probes.index("get probe a1")  # a's second node after its first
