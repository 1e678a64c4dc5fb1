"""The ``docker`` sandbox: the harness server as the entrypoint of long-lived, locked-down containers.

Each worker is one ``docker run -i --rm ...`` client process whose stdin/stdout are attached
to the container's: framed jobs go in, framed results come out (``pool.py`` does the rest:
deadlines, replacement after a crash, a hang or ``max_jobs_per_worker`` jobs). Inside, the
server forks a fresh child per job exactly as in the ``local`` sandbox; the container adds
the outer wall: no network, a read-only root, a private ``/tmp`` and ``/dev/shm`` sized from a
total budget split across the workers (``scratch_mb``), uid 65534 with no
capabilities and ``no-new-privileges``, a pids limit, a memory cgroup, and a private PID
namespace in which the server is pid 1, so its cleanup kills every other process it sees.

Containers carry the label ``ra3bench.sandbox=1`` and this sandbox's session id; ``close()``
(and a finalizer at exit) removes every container the sandbox started. If this process dies
without that, each container still ends: the client dies with us, the container's stdin
closes, the server exits at EOF and ``--rm`` removes it. See docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import threading
from typing import Any

from ra3bench.errors import SandboxUnavailableError
from ra3bench.sandbox import TMP_TOTAL_MB, scratch_mb
from ra3bench.sandbox.base import Job, JobResult, Limits
from ra3bench.sandbox.image import LABEL, ImageMissingError, docker_client, find_image, image_info
from ra3bench.sandbox.pool import Launch, PooledSandbox, Worker

MEMORY_HEADROOM_MB = 512  # cgroup limit = the largest job RLIMIT_AS seen + this (the server, tmpfs pages)
SESSION_LABEL = LABEL + ".session"
# What the docker client needs from our environment to reach the same engine as the SDK.
CLIENT_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def _remove_container(client: Any, name: str) -> None:
    """Force-remove one container (gone already is fine); the kill hook of a worker."""
    with contextlib.suppress(Exception):
        client.api.remove_container(name, force=True)


def remove_containers(client: Any, session: str | None = None) -> int:
    """Remove containers with our label (of one session, or all of them); return how many."""
    label = f"{SESSION_LABEL}={session}" if session else f"{LABEL}=1"
    removed = 0
    for container in client.api.containers(all=True, filters={"label": label}):  # plain dicts: no lookups that race
        with contextlib.suppress(Exception):
            client.api.remove_container(container["Id"], force=True)
            removed += 1
    return removed


class DockerSandbox(PooledSandbox):
    """Jobs in forked children of harness servers that run as the entrypoint of locked-down containers."""

    name = "docker"
    stop_timeout_s = 15.0  # EOF -> server exit -> container removed by the daemon (--rm)

    def __init__(
        self,
        workers: int | None = None,
        image: str | None = None,
        max_jobs_per_worker: int = 1000,
        *,
        memory_mb: int | None = None,
        pids_limit: int = 256,
        tmp_total_mb: int = TMP_TOTAL_MB,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._client = docker_client()
        if image is None:
            image = find_image(self._client)
            if image is None:
                raise ImageMissingError(
                    "no Docker sandbox image for this version of the harness: run `ra3bench sandbox build --offline`"
                )
        self._image = image_info(self._client, image)
        try:
            self._server_version = str(self._client.version().get("Version", "?"))
        except Exception as exc:
            raise SandboxUnavailableError(f"the Docker engine does not answer: {exc}") from None
        self._docker = shutil.which("docker") or "docker"
        self._memory_mb = memory_mb or Limits().memory_mb + MEMORY_HEADROOM_MB
        self._memory_lock = threading.Lock()
        self._pids_limit = pids_limit
        self._tmp_total_mb = tmp_total_mb
        self._session = secrets.token_hex(6)
        self._env = {k: os.environ[k] for k in CLIENT_ENV if k in os.environ}
        self._env.setdefault("PATH", os.defpath)
        self.isolation = (
            "container: no network, read-only root, private /tmp, uid 65534 without capabilities "
            f"(no-new-privileges), pids <= {pids_limit}, memory cgroup, private pid namespace; "
            "shares the host kernel"
        )
        super().__init__(workers, max_jobs_per_worker, log_path)
        # After the pool knows its size: each container's share of the in-memory /tmp budget.
        self._tmp_mb, self._shm_mb = scratch_mb(self.workers, tmp_total_mb)

    @property
    def image(self) -> str:
        return self._image["tag"]

    @property
    def session(self) -> str:
        """The value of the ``ra3bench.sandbox.session`` label on this sandbox's containers."""
        return self._session

    def _run_args(self, name: str, memory_mb: int) -> list[str]:
        memory = f"{memory_mb}m"
        return [
            *("run", "-i", "--rm", "--pull", "never", "--sig-proxy=false"),
            *("--name", name, "--label", f"{LABEL}=1", "--label", f"{SESSION_LABEL}={self._session}"),
            *("--network", "none", "--ipc", "private", "--read-only"),
            *("--tmpfs", f"/tmp:rw,noexec,nosuid,nodev,size={self._tmp_mb}m", "--shm-size", f"{self._shm_mb}m"),
            *("--user", "65534:65534", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"),
            *("--pids-limit", str(self._pids_limit), "--memory", memory, "--memory-swap", memory),
            *("-e", "PYTHONHASHSEED=0", "--log-driver", "none", "--workdir", "/"),
            self._image["id"],  # the id, not the tag: every container runs exactly what describe() reports
            *("--scratch", "/tmp", "--scratch", "/dev/shm"),
        ]

    def _launch(self) -> Launch:
        name = f"ra3bench-sandbox-{self._session}-{secrets.token_hex(4)}"
        memory_mb = self._memory_mb
        return Launch(
            argv=[self._docker, *self._run_args(name, memory_mb)],
            env=self._env,
            name=name,
            on_kill=functools.partial(_remove_container, self._client, name),
            memory_mb=memory_mb,
        )

    def run(self, job: Job) -> JobResult:
        # A job allowed more address space than its container has would be OOM-killed by the cgroup
        # (an "error", not "memory"): raise the ceiling; idle containers below it are replaced.
        need = job.limits.memory_mb + MEMORY_HEADROOM_MB
        if need > self._memory_mb:
            with self._memory_lock:
                self._memory_mb = max(self._memory_mb, need)
        return super().run(job)

    def _stale(self, worker: Worker) -> bool:
        return worker.launch.memory_mb < self._memory_mb

    def describe(self) -> dict:
        return {
            **super().describe(),
            "image": self._image["tag"],
            "image_id": self._image["id"],
            "image_digests": self._image["digests"],
            "harness": self._image["labels"].get("ra3bench.sandbox.harness", "?"),
            "docker_server": self._server_version,
            "memory_mb": self._memory_mb,
            "pids_limit": self._pids_limit,
            "tmp_total_mb": self._tmp_total_mb,  # in-memory scratch: the budget, and each container's share (MB)
            "tmp_mb_per_worker": self._tmp_mb,
            "shm_mb_per_worker": self._shm_mb,
            "max_jobs_per_worker": self._max_jobs,
        }

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):  # whatever is left (e.g. a container that never attached)
            remove_containers(self._client, self._session)
