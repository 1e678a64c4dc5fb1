"""The docker sandbox against hostile programs.

The attacks that do not depend on how the outer wall is built are the local sandbox's own
tests, imported from ``test_local_sandbox.py`` and run here against a ``DockerSandbox``
(pytest resolves their ``sandbox`` fixture in this module). Below them: what only a
container shows (read-only root, no network at all, pid namespace, ``docker kill``,
leftover containers). Skips with the reason when no engine or image can be had, unless
``RA3BENCH_REQUIRE_DOCKER=1`` (CI, after building the image), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_local_sandbox as local_tests
import test_stdin_jobs as stdin_tests
from test_local_sandbox import job, statuses, values, wait_until

from ra3bench.errors import SandboxUnavailableError
from ra3bench.sandbox.base import CallStatus, JobResult, Limits
from ra3bench.sandbox.harness.protocol import decode_value

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]

# ---- the local sandbox's attack cases, unchanged, against the docker sandbox

REUSED = (
    "test_correct_function_returns_encoded_values",
    "test_typing_and_numpy_style_imports_work",
    "test_program_semantics_are_plain_python",
    "test_syntax_error_is_a_load_syntax_status",
    "test_missing_entry_point_is_an_error",
    "test_exit_at_top_level_is_never_ok",
    "test_exit_inside_a_call_is_never_ok",
    "test_a_crash_in_one_call_does_not_lose_the_next_calls",
    "test_always_equal_object_comes_back_opaque",
    "test_monkeypatched_builtins_and_json_do_not_change_the_encoding",
    "test_a_value_over_the_size_limit_is_an_error",
    "test_scribbling_on_every_fd_cannot_forge_results",
    "test_infinite_loop_in_a_call_times_out_and_the_next_call_runs",
    "test_a_loop_that_swallows_the_timer_still_times_out",
    "test_max_timeouts_stops_a_group_and_says_why",
    "test_max_timeouts_also_counts_timeouts_that_kill_the_child",
    "test_budget_stops_only_a_group_that_already_failed",
    "test_infinite_loop_at_top_level_is_a_load_timeout",
    "test_huge_allocation_at_top_level_is_memory",
    "test_growing_list_in_a_call_is_memory",
    "test_printing_100_mb_is_truncated_and_cheap",
    "test_setsid_double_fork_escapee_is_killed",
    "test_writes_outside_the_temp_dir_do_not_reach_the_host",
    "test_planted_modules_do_not_affect_the_program_or_the_next_job",
    "test_multiprocessing_works_and_dev_shm_does_not_carry_over",
    "test_the_environment_of_the_caller_is_not_readable",
    "test_record_mode_records_the_calls_a_script_makes",
    "test_seed_makes_random_deterministic",
    "test_many_trivial_jobs",
)
for _name in REUSED:
    globals()[_name] = getattr(local_tests, _name)
for _name in dir(stdin_tests):  # stdin jobs and Class.method entry points, all of them
    if _name.startswith("test_"):
        globals()[_name] = getattr(stdin_tests, _name)


# ---- fixtures


@pytest.fixture(scope="module")
def client(docker_client: Any) -> Any:
    return docker_client


@pytest.fixture(scope="module")
def image(docker_image: str) -> str:
    return docker_image


@pytest.fixture(scope="module")
def sandbox(image: str) -> Iterator[Any]:
    from ra3bench.sandbox.docker import DockerSandbox

    old = os.environ.get("RA3BENCH_SECRET")
    os.environ["RA3BENCH_SECRET"] = local_tests.SECRET  # set before the sandbox starts: it must not leak in
    sb = DockerSandbox(workers=2, image=image)
    sb.mode = "docker"  # type: ignore[attr-defined]
    try:
        yield sb
    finally:
        sb.close()
        if old is None:
            os.environ.pop("RA3BENCH_SECRET", None)
        else:
            os.environ["RA3BENCH_SECRET"] = old


def our_containers(client: Any, session: str) -> list[str]:
    found = client.api.containers(all=True, filters={"label": f"ra3bench.sandbox.session={session}"})
    return [name.lstrip("/") for c in found for name in c["Names"]]


PIDS = "import os\ndef f():\n    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"


def pids_seen_by_a_job(sandbox: Any) -> list[int]:
    """Every pid in the container as the next job sees it: the server (pid 1), the job's child, nothing else."""
    result = sandbox.run(job(PIDS, [[]]))
    assert statuses(result) == ["ok"], result
    return values(result)[0]


# ---- what only a container shows


def test_describe_names_the_image_by_id(sandbox: Any, client: Any, image: str) -> None:
    info = sandbox.describe()
    assert info["kind"] == "docker" and info["workers"] == 2
    assert info["image"] == image and info["image_id"] == client.images.get(image).id
    assert info["image_id"].startswith("sha256:") and info["docker_server"]
    assert "no network" in sandbox.isolation and "read-only" in sandbox.isolation


def test_the_root_is_read_only_and_tmp_is_private(sandbox: Any) -> None:
    name = f"ra3bench_pwned_{uuid.uuid4().hex}"
    program = (
        "def f(path):\n    try:\n        open(path, 'w').write('pwned')\n        return 'written'\n"
        "    except OSError as exc:\n        return type(exc).__name__\n"
    )
    read_only = [f"/{name}", f"/etc/{name}", f"/opt/ra3bench/harness/{name}", f"/usr/lib/python3/{name}"]
    result = sandbox.run(job(program, [[p] for p in [*read_only, f"/tmp/{name}", f"/dev/shm/{name}"]]))
    assert values(result)[: len(read_only)] == ["OSError"] * len(read_only)  # EROFS
    assert values(result)[len(read_only) :] == ["written", "written"]  # the container's own tmpfs
    for path in (f"/{name}", f"/tmp/{name}", f"/dev/shm/{name}", str(REPO / name)):
        assert not os.path.exists(path), path
    check = "import os\ndef f(path):\n    return os.path.exists(path)\n"
    for _ in range(sandbox.workers):  # whichever container it ran in, its /tmp and /dev/shm were emptied
        assert values(sandbox.run(job(check, [[f"/tmp/{name}"], [f"/dev/shm/{name}"]]))) == [False, False]


def test_host_files_are_not_there(sandbox: Any, tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("{}")
    paths = [str(REPO / "pyproject.toml"), str(tmp_path / "data.jsonl"), "/root/.bash_history", "/var/run/docker.sock"]
    result = sandbox.run(job("import os\ndef f(path):\n    return os.path.exists(path)\n", [[p] for p in paths]))
    assert values(result) == [False] * len(paths)


def test_no_network_not_even_the_host_loopback(sandbox: Any, client: Any) -> None:
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    hosts = ["127.0.0.1"]
    with contextlib.suppress(Exception):  # the default bridge's gateway: how containers usually reach the host
        hosts += [c["Gateway"] for c in client.networks.get("bridge").attrs["IPAM"]["Config"] if c.get("Gateway")]
    program = (
        "import socket\n"
        "def f(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=1).close()\n"
        "        return 'connected'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
    )
    try:
        result = sandbox.run(job(program, [[h, port] for h in hosts], limit=3.0, fail_fast=False))
        assert statuses(result) == ["ok"] * len(hosts)
        assert "connected" not in values(result)
        with pytest.raises(BlockingIOError):
            listener.accept()
        interfaces = "import socket\ndef f():\n    return [name for _, name in socket.if_nameindex()]\n"
        assert values(sandbox.run(job(interfaces, [[]]))) == [["lo"]]
    finally:
        listener.close()


def test_fork_bomb_is_contained_and_nothing_is_left(sandbox: Any) -> None:
    bombs = [
        "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        "import os\ntry:\n    while True:\n        os.fork()\nexcept OSError:\n    pass\ndef f():\n    return 1\n",
    ]
    for in_call, program in zip((True, False), bombs, strict=True):
        start = time.monotonic()
        result = sandbox.run(job(program, [[]], limit=1.0))
        assert result.sandbox_error == ""
        assert result.calls[0].status is not CallStatus.OK or not in_call  # at top level it stops at EAGAIN
        assert time.monotonic() - start < 15
        for _ in range(sandbox.workers):
            start = time.monotonic()
            pids = pids_seen_by_a_job(sandbox)
            # the server, its fork server, the child forked ahead for the next job, and the job's own child
            assert pids[0] == 1 and len(pids) <= 4, pids
            assert time.monotonic() - start < 2


def test_docker_kill_of_a_container_costs_a_retry_and_it_is_replaced(sandbox: Any, client: Any) -> None:
    """A container killed from outside is the infrastructure's fault: the job runs again on a fresh
    container (after a trivial job shows that one works) and gets its own verdict, not sandbox_error."""
    before = set(sandbox.worker_names())
    long_job = job("import time\ndef f():\n    time.sleep(3)\n    return 'done'\n", [[]], limit=30.0)
    box: dict[str, JobResult] = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", sandbox.run(long_job)))
    thread.start()
    time.sleep(1.0)  # the job is running in one of the containers
    busy = sandbox.worker_names()  # every container: the one running the job among them
    assert busy
    subprocess.run(["docker", "kill", *busy], check=True, capture_output=True)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert box["result"].sandbox_error == "" and values(box["result"]) == ["done"]
    results = dict(sandbox.run_many([job("def f():\n    return 'alive'\n", [[]])] * 4))
    assert all(values(r) == ["alive"] for r in results.values())
    after = set(sandbox.worker_names())
    assert not after & set(busy) and len(after) == sandbox.workers and after != before
    assert wait_until(lambda: not set(busy) & set(our_containers(client, sandbox.session)), timeout=10)


def test_replacement_after_max_jobs_or_for_more_memory_and_close_leaves_no_container(image: str, client: Any) -> None:
    from ra3bench.sandbox.docker import DockerSandbox

    sb = DockerSandbox(workers=1, image=image, max_jobs_per_worker=2)
    try:
        names = []
        for _ in range(3):
            assert sb.run(job("def f():\n    return 1\n", [[]])).calls[0].status is CallStatus.OK
            names.append(tuple(sb.worker_names()))
        assert names[1] == () and len(names[0]) == len(names[2]) == 1 and names[0] != names[2]  # retired after 2
        assert names[0][0] not in our_containers(client, sb.session)  # the retired one is gone
        # A job allowed more memory than the container has: the container is replaced by a larger one.
        big = job("def f():\n    return 1\n", [[]], limits=Limits(memory_mb=6000, load_time_s=2.0))
        assert sb.run(big).calls[0].status is CallStatus.OK
        (bigger,) = sb.worker_names()
        assert bigger != names[2][0] and sb.describe()["memory_mb"] == 6000 + 512
        assert client.api.inspect_container(bigger)["HostConfig"]["Memory"] == (6000 + 512) << 20
    finally:
        sb.close()
    assert sb.worker_names() == []
    assert our_containers(client, sb.session) == []


def test_a_killed_caller_leaves_no_container(image: str, client: Any) -> None:
    """SIGKILL gives no finalizer a chance: the client dies, stdin closes, the server exits, --rm removes."""
    script = (
        "import os, signal, sys\n"
        "from ra3bench.sandbox.docker import DockerSandbox\n"
        "from ra3bench.sandbox.base import Job\n"
        f"sb = DockerSandbox(workers=1, image={image!r})\n"
        "sb.run(Job(program='x = 1'))\n"
        "print(sb.session, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    session = done.stdout.strip()
    assert session, done.stderr
    assert wait_until(lambda: our_containers(client, session) == [], timeout=20), our_containers(client, session)


def test_requested_docker_without_an_engine_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ra3bench.sandbox import make_sandbox

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxUnavailableError) as err:
        make_sandbox("docker", workers=1)
    assert "\n" not in str(err.value) and "start it" in str(err.value)


def test_auto_without_an_engine_falls_back_to_local_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ra3bench.sandbox import make_sandbox

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    sb = make_sandbox("auto", workers=1)
    try:
        assert sb.name == "local"
    finally:
        sb.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weaker isolation" in err[0]


def test_job_output_is_decodable(sandbox: Any) -> None:
    result = sandbox.run(job("print('hello')\ndef f():\n    return {'a': (1, 2.5)}\n", [[]]))
    assert result.output == "hello\n"
    assert decode_value(result.calls[0].value) == {"a": (1, 2.5)}


def test_a_job_cannot_kill_the_server_and_ctypes_callbacks_work(sandbox: Any) -> None:
    """The server is pid 1 of the container: signals from a job are ignored. noexec /tmp does not break libffi."""
    program = (
        "import ctypes, os, signal\n"
        "def f(sig):\n"
        "    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)\n"
        "    try:\n        os.kill(1, sig)\n    except OSError as exc:\n        return type(exc).__name__\n"
        "    return callback(41)\n"
    )
    for sig in (9, 15, 14):
        result = sandbox.run(job(program, [[sig]]))
        assert result.sandbox_error == "" and values(result) == [42], result
    assert values(sandbox.run(job("def f():\n    return 'alive'\n", [[]]))) == ["alive"]


def test_sandbox_help_ends_with_examples() -> None:
    for command in (["sandbox"], ["sandbox", "build"]):
        done = subprocess.run(
            [sys.executable, "-m", "ra3bench", *command, "--help"], capture_output=True, text=True, cwd=REPO, check=True
        )
        tail = done.stdout.strip().split("\n\n")[-1]
        assert tail.startswith("examples:") and "ra3bench sandbox build --offline" in tail


# ---- a whole run


def _verdicts(folder: Path) -> dict:
    import json

    rows = [json.loads(line) for line in (folder / "verdicts.jsonl").read_text().splitlines()]
    return {(r["task_id"], r["sample_index"]): (r["status"], r["groups"], r["details"]) for r in rows}


def _evaluate(*extra: str) -> list[str]:
    data = Path(os.environ["RA3BENCH_DATA_DIR"])
    samples = data / "samples/evalplus/llama3-exp/70-bad/samples.jsonl.gz"
    args = ["evaluate", "--suite", "humaneval+", "--suite-version", "v0.1.9", "--samples", str(samples)]
    return [sys.executable, "-m", "ra3bench.cli.main", *args, "--limit", "30", "--no-cache", "--no-fail-fast", *extra]


def test_docker_kill_during_a_run_costs_a_retry_and_the_verdicts_stay_the_same(
    image: str, client: Any, tmp_path: Path
) -> None:
    """A run on real samples, with one container killed mid-run, equals the undisturbed run (and the local one)."""
    whole, local, killed = tmp_path / "whole", tmp_path / "local", tmp_path / "killed"
    subprocess.run(_evaluate("--sandbox", "docker", "--out", str(whole)), check=True, capture_output=True)
    subprocess.run(_evaluate("--sandbox", "local", "--out", str(local)), check=True, capture_output=True)

    proc = subprocess.Popen(
        _evaluate("--sandbox", "docker", "--out", str(killed)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    verdicts = killed / "verdicts.jsonl"
    assert wait_until(lambda: verdicts.exists() and verdicts.read_text().count("\n") >= 5, timeout=120)

    def busy() -> list[str]:  # containers running a job: the server and the job's child
        found = client.api.containers(filters={"label": "ra3bench.sandbox=1"})
        return [c["Id"] for c in found if len(client.containers.get(c["Id"]).top()["Processes"]) > 1]

    found: list[str] = []
    assert wait_until(lambda: bool(found.extend(busy()) or found), timeout=10), "no container was running a job"
    subprocess.run(["docker", "kill", found[0]], check=True, capture_output=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert verdicts.read_text().count("\n") == 30

    def statuses(folder: Path) -> dict:
        return {key: value[:2] for key, value in _verdicts(folder).items()}

    assert statuses(killed) == statuses(whole) == statuses(local)
    assert "sandbox_error" not in {status for status, _ in statuses(killed).values()}
