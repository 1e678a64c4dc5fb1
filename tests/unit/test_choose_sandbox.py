"""Choosing a sandbox never falls back silently to the weak mode; the verdict cache knows the sandbox.

Everything here runs without Docker or bubblewrap: their absence is simulated, and the
sandboxes are stand-ins that record how they were built (tests/integration/test_sandbox_choice.py
does the real thing; the two files need different basenames for pytest).
"""

from __future__ import annotations

import argparse
import shutil
from types import SimpleNamespace
from typing import Any

import pytest

import ra3bench.sandbox as sandboxes
import ra3bench.sandbox.local as local_mod
from ra3bench.errors import SandboxUnavailableError
from ra3bench.expected import Expectations
from ra3bench.pipeline import EvalSettings, Evaluator, sandbox_identity
from ra3bench.sandbox import SANDBOXES, TMP_FLOOR_MB, TMP_TOTAL_MB, make_sandbox, scratch_mb
from ra3bench.sandbox.base import Job, JobResult, Sandbox


class FakeLocal:
    """Stands in for LocalSandbox: records its arguments, starts nothing."""

    built: list[dict[str, Any]] = []  # noqa: RUF012 - reset per test by the fixture

    def __init__(self, **kwargs: Any) -> None:
        FakeLocal.built.append(kwargs)
        self.kwargs = kwargs
        self.name = "local"

    def unprotected(self) -> str:
        return "" if self.kwargs.get("use_bwrap") else "LEFT OPEN"


@pytest.fixture
def fake_local(monkeypatch: pytest.MonkeyPatch) -> type[FakeLocal]:
    FakeLocal.built = []
    monkeypatch.setattr(local_mod, "LocalSandbox", FakeLocal)
    return FakeLocal


def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(workers: int | None) -> Sandbox:
        raise SandboxUnavailableError("Docker is not installed (no `docker` command): `apt-get install docker.io`")

    monkeypatch.setattr(sandboxes, "_auto_docker", unavailable)


def bwrap(monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    monkeypatch.setattr(local_mod, "bwrap_problem", lambda bwrap=None: problem)


# ---- auto / local / local-unsafe


def test_auto_without_docker_nor_bubblewrap_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal], capsys: pytest.CaptureFixture[str]
) -> None:
    no_docker(monkeypatch)
    bwrap(monkeypatch, "bubblewrap is not installed (no `bwrap` on PATH)")
    with pytest.raises(SandboxUnavailableError) as err:
        make_sandbox("auto", workers=2)
    text = str(err.value)
    assert "\n" not in text
    assert "Docker is not installed" in text and "bubblewrap is not installed" in text  # what is missing
    assert ".ci/setup" in text and "--sandbox local-unsafe" in text  # the two ways forward
    assert fake_local.built == []  # no weak sandbox was even built
    assert capsys.readouterr().err == ""


def test_auto_without_bubblewrap_on_path_refuses(monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal]) -> None:
    """The real probe, with nothing on PATH: no `docker`, no `bwrap`."""
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(SandboxUnavailableError, match=r"no `bwrap` on PATH.*local-unsafe"):
        make_sandbox("auto", workers=1)
    assert fake_local.built == []


def test_auto_without_docker_uses_bubblewrapped_local_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal], capsys: pytest.CaptureFixture[str]
) -> None:
    no_docker(monkeypatch)
    bwrap(monkeypatch, "")
    sandbox = make_sandbox("auto", workers=3)
    assert isinstance(sandbox, FakeLocal)
    assert fake_local.built == [{"workers": 3, "use_bwrap": True}]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weaker isolation" in err[0] and "Docker is not installed" in err[0]


def test_auto_prefers_docker(monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal]) -> None:
    marker = object()
    monkeypatch.setattr(sandboxes, "_auto_docker", lambda workers: marker)
    bwrap(monkeypatch, "not consulted")
    assert make_sandbox("auto", workers=1) is marker
    assert fake_local.built == []


def test_local_requires_bubblewrap(monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal]) -> None:
    bwrap(monkeypatch, "/usr/bin/bwrap cannot create namespaces here (setting up uid map: Permission denied)")
    with pytest.raises(SandboxUnavailableError) as err:
        make_sandbox("local", workers=1)
    text = str(err.value)
    assert "\n" not in text and "needs bubblewrap" in text and "Permission denied" in text
    assert ".ci/setup" in text and "--sandbox local-unsafe" in text
    assert fake_local.built == []


def test_local_with_bubblewrap_asks_for_it(monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal]) -> None:
    bwrap(monkeypatch, "")
    make_sandbox("local", workers=2)
    assert fake_local.built == [{"workers": 2, "use_bwrap": True}]


def test_local_unsafe_is_opt_in_and_warns(
    monkeypatch: pytest.MonkeyPatch, fake_local: type[FakeLocal], capsys: pytest.CaptureFixture[str]
) -> None:
    assert "local-unsafe" in SANDBOXES.names()
    bwrap(monkeypatch, "")  # even where bubblewrap works: the name decides
    make_sandbox("local-unsafe", workers=2)
    assert fake_local.built == [{"workers": 2, "use_bwrap": False}]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: sandbox local-unsafe: LEFT OPEN"]


def _bare_local(uid: int | None, use_bwrap: bool) -> local_mod.LocalSandbox:
    """A LocalSandbox object with only what unprotected() reads (no interpreter, no probe)."""
    sandbox = object.__new__(local_mod.LocalSandbox)
    sandbox._bwrap = "/usr/bin/bwrap" if use_bwrap else None
    sandbox._uid = uid
    return sandbox


def test_the_unsafe_warning_says_what_is_open() -> None:
    as_user = _bare_local(None, False).unprotected()
    for words in ("network", "verdict cache", "run folder", "signal your other processes", "no bubblewrap"):
        assert words in as_user, words
    as_root = _bare_local(65534, False).unprotected()
    for words in ("network", "uid 65534", "verdict cache", "run folder", "world-writable", "/tmp"):
        assert words in as_root, words
    assert "\n" not in as_user + as_root
    assert _bare_local(65534, True).unprotected() == ""


def test_cli_help_lists_every_name(capsys: pytest.CaptureFixture[str]) -> None:
    from ra3bench.cli import common, sandbox_check

    run = argparse.ArgumentParser(prog="ra3bench run")
    common.add_execution_args(run)
    assert run.parse_args(["--sandbox", "local-unsafe"]).sandbox == "local-unsafe"
    assert run.parse_args([]).sandbox == "auto"
    check = argparse.ArgumentParser(prog="ra3bench sandbox")
    sandbox_check.register(check.add_subparsers(dest="command"))
    assert check.parse_args(["check", "--sandbox", "local-unsafe"]).sandbox == "local-unsafe"
    for parser, argv in ((run, ["--help"]), (check, ["check", "--help"])):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "auto | docker | local | local-unsafe" in text, text


def test_training_configs_take_the_name() -> None:
    from ra3bench.training.base import EvalConfig

    assert EvalConfig(sandbox="local-unsafe").sandbox == "local-unsafe"


# ---- in-memory /tmp and /dev/shm per worker


@pytest.mark.parametrize(
    ("workers", "tmp", "shm"), [(1, 1024, 64), (2, 512, 64), (4, 256, 64), (8, 128, 32), (16, 64, 16), (64, 64, 16)]
)
def test_scratch_is_a_budget_split_across_workers(workers: int, tmp: int, shm: int) -> None:
    assert scratch_mb(workers) == (tmp, shm)


def test_scratch_total_stays_bounded() -> None:
    for workers in range(1, 129):
        tmp, shm = scratch_mb(workers)
        assert tmp >= TMP_FLOOR_MB and 16 <= shm <= 64
        assert workers * tmp <= max(TMP_TOTAL_MB, workers * TMP_FLOOR_MB)
    assert scratch_mb(4, tmp_total_mb=8192) == (2048, 64)
    assert scratch_mb(0) == scratch_mb(1)


# ---- the verdict cache key


class DescribedSandbox(Sandbox):
    """A sandbox that is only a description: what cache_key may read of it."""

    def __init__(self, **info: Any) -> None:
        self.info = info

    @property
    def workers(self) -> int:
        return int(self.info.get("workers", 1))

    def run(self, job: Job) -> JobResult:  # pragma: no cover - never called
        raise AssertionError("not run")

    def describe(self) -> dict:
        return dict(self.info)


DOCKER = {
    "kind": "docker",
    "isolation": "container: no network, ...",
    "workers": 2,
    "image": "ra3bench-sandbox-python:abc",
    "image_id": "sha256:1111",
    "memory_mb": 4608,
    "tmp_total_mb": 1024,
    "tmp_mb_per_worker": 512,
    "shm_mb_per_worker": 64,
}
LOCAL = {
    "kind": "local",
    "isolation": "host process in bubblewrap: ...",
    "workers": 2,
    "bwrap": True,
    "uid": 65534,
    "python": "3.11.7",
    "tmp_mb_per_worker": 512,
}
UNSAFE = {**LOCAL, "isolation": "host process with rlimits, jobs as uid 65534; no bubblewrap (weaker)", "bwrap": False}


def key(info: dict) -> str:
    suite = SimpleNamespace(name="tiny", version="1", data_sha256="0" * 64)
    expectations = Expectations(key="tiny-1", path=None, sha256="", fingerprints={"T/0": "f0"})
    evaluator = Evaluator(suite, DescribedSandbox(**info), expectations, EvalSettings())  # type: ignore[arg-type]
    return evaluator.cache_key(SimpleNamespace(task_id="T/0"), "def f(x):\n    return x\n")  # type: ignore[arg-type]


def test_cache_keys_differ_across_sandboxes() -> None:
    keys = {
        key(DOCKER),
        key({**DOCKER, "image_id": "sha256:2222"}),  # another image
        key(LOCAL),
        key(UNSAFE),  # same kind, weaker isolation
        key({**UNSAFE, "uid": None, "isolation": "host process with rlimits only, jobs as the invoking user"}),
        key({**LOCAL, "python": "3.12.1"}),
        key({**LOCAL, "kind": "plugin"}),
    }
    assert len(keys) == 7


def test_cache_keys_ignore_what_varies_between_runs() -> None:
    assert key(DOCKER) == key({**DOCKER, "workers": 16, "tmp_mb_per_worker": 64, "shm_mb_per_worker": 16})
    assert key(DOCKER) == key({**DOCKER, "memory_mb": 9000, "session": "f00d", "max_jobs_per_worker": 5})
    assert key(LOCAL) == key({**LOCAL, "workers": 7, "tmp_mb_per_worker": 146})
    assert sandbox_identity(DescribedSandbox(**DOCKER)) == {
        "kind": "docker",
        "isolation": DOCKER["isolation"],
        "image_id": "sha256:1111",
    }
