"""The sandbox choice and the per-worker scratch sizes, with real bubblewrap, Docker and CLI processes.

Unit tests with simulated machines: tests/unit/test_choose_sandbox.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ra3bench.errors import SandboxUnavailableError
from ra3bench.pipeline import sandbox_identity
from ra3bench.sandbox import make_sandbox
from ra3bench.sandbox.base import CallStatus, Job, JobResult, Limits
from ra3bench.sandbox.harness.protocol import decode_value, encode_value
from ra3bench.sandbox.local import LocalSandbox, bwrap_works

REPO = Path(__file__).resolve().parents[2]
MB = 1 << 20

# Sizes of the job's /tmp and /dev/shm file systems, as the job sees them.
SIZES = "import os\ndef f(path):\n    s = os.statvfs(path)\n    return s.f_blocks * s.f_frsize // (1 << 20)\n"


def sizes(sandbox: Any) -> list[int]:
    calls = [["/tmp"], ["/dev/shm"]]
    job = Job(
        program=SIZES,
        entry_point="f",
        calls=[encode_value(c) for c in calls],
        time_limits_s=[5.0] * len(calls),
        limits=Limits(memory_mb=1024),
    )
    result: JobResult = sandbox.run(job)
    assert not result.sandbox_error, result.sandbox_error
    assert [c.status for c in result.calls] == [CallStatus.OK] * 2, result.calls
    return [decode_value(c.value) for c in result.calls]


needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot create namespaces here")


def cli(*argv: str, path: str) -> subprocess.CompletedProcess[str]:
    """`ra3bench ...` in a child whose PATH is ``path`` (e.g. one without bwrap and docker)."""
    env = {**os.environ, "PATH": path, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    return subprocess.run(
        [sys.executable, "-m", "ra3bench", *argv], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )


# ---- local


@needs_bwrap
@pytest.mark.parametrize(("workers", "tmp", "shm"), [(4, 256, 64), (16, 64, 16)])
def test_local_worker_scratch_is_its_share_of_the_budget(workers: int, tmp: int, shm: int) -> None:
    with LocalSandbox(workers=workers, use_bwrap=True) as sandbox:  # one job starts one worker only
        info = sandbox.describe()
        assert (info["tmp_total_mb"], info["tmp_mb_per_worker"], info["shm_mb_per_worker"]) == (1024, tmp, shm)
        assert sizes(sandbox) == [tmp, shm]


@needs_bwrap
def test_local_by_name_is_bubblewrapped() -> None:
    sandbox = make_sandbox("local", workers=1)
    try:
        assert isinstance(sandbox, LocalSandbox) and sandbox.describe()["bwrap"] is True
    finally:
        sandbox.close()


def test_local_unsafe_warns_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import ra3bench.sandbox.local as local_mod

    try:
        make_sandbox("local-unsafe", workers=1).close()
    except SandboxUnavailableError as exc:  # as root: uid 65534 cannot read a Python under /root
        assert "\n" not in str(exc)
        if not os.access("/usr/bin/python3", os.X_OK):
            pytest.skip(f"no interpreter the job uid can read: {exc}")

        class SystemPython(LocalSandbox):  # the same sandbox on an interpreter uid 65534 can read
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(python="/usr/bin/python3", **kwargs)

        monkeypatch.setattr(local_mod, "LocalSandbox", SystemPython)
    capsys.readouterr()
    with make_sandbox("local-unsafe", workers=1) as sandbox:
        info = sandbox.describe()
        assert info["kind"] == "local" and info["bwrap"] is False and info["tmp_mb_per_worker"] is None
        assert "no bubblewrap" in sandbox.isolation
        assert sizes(sandbox)[0] > 0  # it runs jobs (on the host's /tmp)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: sandbox local-unsafe:"), err
    for words in ("no bubblewrap", "network", "verdict cache", "run folder"):
        assert words in err[0], words


# ---- the CLI on a machine with neither docker nor bwrap


@pytest.mark.parametrize("kind", ["auto", "local"])
def test_cli_refuses_without_bubblewrap_in_one_line(kind: str, tmp_path: Path) -> None:
    done = cli("sandbox", "check", "--sandbox", kind, "--workers", "1", path=str(tmp_path))  # an empty PATH dir
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ra3bench: error:") and "no `bwrap` on PATH" in lines[0]
    assert "local-unsafe" in lines[0] and ".ci/setup" in lines[0]
    assert done.stdout == ""  # no attack ran


# ---- docker (and the cache identity across real backends)


@pytest.fixture(scope="module")
def docker_sandboxes(docker_image: str) -> Iterator[tuple[Any, Any]]:
    from ra3bench.sandbox.docker import DockerSandbox

    four, one = DockerSandbox(workers=4, image=docker_image), DockerSandbox(workers=1, image=docker_image)
    try:
        yield four, one
    finally:
        four.close()
        one.close()


@pytest.mark.docker
def test_docker_container_scratch_is_its_share_of_the_budget(docker_sandboxes: tuple[Any, Any]) -> None:
    four, one = docker_sandboxes
    args = four._run_args("ra3bench-sandbox-test", 1000)
    assert "/tmp:rw,noexec,nosuid,nodev,size=256m" in args
    assert args[args.index("--shm-size") + 1] == "64m"
    info = four.describe()
    assert (info["tmp_total_mb"], info["tmp_mb_per_worker"], info["shm_mb_per_worker"]) == (1024, 256, 64)
    assert one.describe()["tmp_mb_per_worker"] == 1024
    assert sizes(four) == [256, 64]


@pytest.mark.docker
def test_cache_identity_separates_backends_not_worker_counts(docker_sandboxes: tuple[Any, Any]) -> None:
    four, one = docker_sandboxes
    assert sandbox_identity(four) == sandbox_identity(one)  # another session, worker count and /tmp share
    assert sandbox_identity(four)["image_id"] == four.describe()["image_id"]
    if not bwrap_works():
        pytest.skip("bubblewrap cannot create namespaces here")
    with LocalSandbox(workers=1, use_bwrap=True) as a, LocalSandbox(workers=3, use_bwrap=True) as b:
        assert sandbox_identity(a) == sandbox_identity(b)
        assert sandbox_identity(a) != sandbox_identity(four)
        try:
            unsafe = LocalSandbox(workers=1, use_bwrap=False)
        except SandboxUnavailableError:  # as root with a Python uid 65534 cannot read
            unsafe = LocalSandbox(workers=1, use_bwrap=False, python="/usr/bin/python3")
        with unsafe:
            assert sandbox_identity(unsafe) not in (sandbox_identity(a), sandbox_identity(four))
