"""Hub data files end to end: ``ra3bench.suites.hub`` and the real ``huggingface_hub`` against a fake Hub.

Each test gets its own fake Hub (tests/hub_server.py), ``HF_HOME`` and ra3bench cache under ``tmp_path``;
``use_fake_hub`` also patches ``huggingface_hub.constants`` (read at import) so the settings take effect.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hub_server import FakeHub, commit_sha, git_blob_id, set_hf_offline, sha256, use_fake_hub

from ra3bench.errors import DataIntegrityError, DataNotFoundError
from ra3bench.suites import hub
from ra3bench.suites.base import DataFile, HubFile

REPO = "livecodebench-fake/code_generation_lite"
V1, V2 = commit_sha("v1"), commit_sha("v2")
OLD = b'{"question_id": "1", "tests": "old"}\n' * 50
NEW = b'{"question_id": "2", "tests": "new, and longer"}\n' * 50
README = b"# a fake data set\n"
NOTES = b"notes\n"


def repos() -> dict[str, dict[str, dict[str, bytes]]]:
    return {REPO: {V1: {"test6.jsonl": OLD, "README.md": README}, V2: {"test6.jsonl": NEW, "README.md": README}}}


def data_file(path: str = "test6.jsonl", revision: str = V1, digest: str | None = None, **hub_kw: Any) -> DataFile:
    """A DataFile for ``path`` at ``revision``; ``digest`` None pins the true sha256 of OLD, "" pins none."""
    pinned = sha256(OLD) if digest is None else digest
    return DataFile(filename=path, sha256=pinned, subdir="lcb", hub=HubFile(hub_kw.pop("repo", REPO), path, revision))


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``start(**FakeHub options) -> FakeHub``, serving ``repos()`` with main at V1, huggingface_hub pointed at it."""
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "ra3bench"))
    monkeypatch.delenv("RA3BENCH_OFFLINE", raising=False)
    started: list[FakeHub] = []

    def start_hub(**options: Any) -> FakeHub:
        fake = FakeHub(options.pop("repos", None) or repos(), {REPO: {"main": V1}}, **options).__enter__()
        started.append(fake)
        use_fake_hub(monkeypatch, fake.url, tmp_path / "hf")
        return fake

    yield start_hub
    for fake in started:
        fake.__exit__(None, None, None)


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text  # one line, and no huggingface_hub exception chained to it:
    assert exc.value.__cause__ is None and (exc.value.__context__ is None or exc.value.__suppress_context__)
    return text


# --- fetching and pinning ---------------------------------------------------------------------------


def test_fetch_checks_the_pinned_sha256(start: Callable[..., FakeHub], tmp_path: Path) -> None:
    fake = start()
    path = hub.fetch(data_file())
    assert path.read_bytes() == OLD
    assert path == hub.cached(data_file())
    assert str(path).startswith(str(tmp_path / "hf" / "hub" / "datasets--livecodebench-fake--code_generation_lite"))
    assert hub.hub_sha256(data_file()) == sha256(OLD)
    # the Hub's LFS flow: HEAD on resolve at the pinned commit, then the body from the CDN it redirects to
    assert [(r.server, r.method) for r in fake.file_calls("test6.jsonl")] == [("hub", "HEAD"), ("cdn", "GET")]
    assert f"/datasets/{REPO}/resolve/{V1}/test6.jsonl" in fake.file_calls("test6.jsonl")[0].path


def test_unpinned_file_is_checked_against_the_hubs_sha256_and_recorded(start: Callable[..., FakeHub]) -> None:
    start()
    unpinned = data_file(digest="")
    assert hub.hub_sha256(unpinned) is None and hub.cached(unpinned) is None
    assert hub.fetch(unpinned).read_bytes() == OLD
    assert hub.hub_sha256(unpinned) == sha256(OLD)  # recorded next to the sha256 memo
    assert hub.memo_path().is_file()


def test_a_file_kept_in_git_is_checked_against_its_git_blob_id(start: Callable[..., FakeHub]) -> None:
    files = repos()
    files[REPO][V2]["NOTES.md"] = NOTES
    fake = start(repos=files, plain={"README.md", "NOTES.md"})
    readme = data_file("README.md", digest="")
    assert hub.fetch(readme).read_bytes() == README
    assert hub.hub_sha256(readme) == sha256(README)
    assert [(r.server, r.method) for r in fake.file_calls("README.md")] == [("hub", "HEAD"), ("hub", "GET")]

    fake.tamper["NOTES.md"] = b"nodes\n"
    with pytest.raises(DataIntegrityError) as info:
        hub.fetch(data_file("NOTES.md", revision=V2, digest=""))
    assert f"{git_blob_id(NOTES)} is expected (the Hub's git blob id" in one_line(info)


def test_without_symlinks_the_hubs_sha256_comes_from_paths_info(
    start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_SYMLINKS", True)
    fake = start()
    unpinned = data_file(digest="")
    path = hub.fetch(unpinned)
    assert not path.is_symlink() and path.read_bytes() == OLD
    assert hub.hub_sha256(unpinned) == sha256(OLD)
    assert len(fake.calls("POST", f"/api/datasets/{REPO}/paths-info/{V1}")) == 1


def test_the_pinned_commit_wins_over_a_moved_branch(start: Callable[..., FakeHub]) -> None:
    fake = start()
    fake.move_branch(REPO, "main", V2)  # upstream published new bytes under the same name
    assert hub.fetch(data_file()).read_bytes() == OLD
    assert hub.fetch(data_file(revision=V2, digest=sha256(NEW))).read_bytes() == NEW
    assert not fake.calls(contains="/resolve/main/")
    with pytest.raises(DataIntegrityError):  # a pin on the wrong commit is caught by the sha256
        hub.fetch(data_file(revision=V2, digest=sha256(OLD)))


def test_a_cached_file_costs_no_request(start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = start()
    first = hub.fetch(data_file())
    before = len(fake.calls())
    assert hub.fetch(data_file()) == first
    assert hub.fetch(data_file(digest="")) == first
    assert len(fake.calls()) == before
    assert len(fake.file_calls("test6.jsonl", "GET")) == 1


def test_progress_bars_are_huggingface_hubs_own_and_can_be_hidden(
    start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    start()
    monkeypatch.setenv("TQDM_POSITION", "-1")  # huggingface_hub shows bars even without a terminal
    hub.fetch(data_file(), progress=False)
    assert "%|" not in capfd.readouterr().err
    hub.fetch(data_file(revision=V2, digest=sha256(NEW)))
    assert "100%|" in capfd.readouterr().err


# --- offline ----------------------------------------------------------------------------------------


def test_offline_after_the_first_fetch(start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = start()
    path = hub.fetch(data_file(digest=""))
    fake.__exit__(None, None, None)  # the Hub is gone too
    set_hf_offline(monkeypatch, True)
    assert hub.fetch(data_file(digest="")) == path
    assert hub.fetch(data_file()) == path
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    assert hub.fetch(data_file(digest="")) == path


def test_offline_with_a_copied_hf_cache_and_no_record(
    start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A cluster node: the HF cache folder was copied from a machine that fetched, the ra3bench cache was not."""
    fake = start()
    hub.fetch(data_file(digest=""))
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "another-ra3bench-cache"))
    fake.__exit__(None, None, None)
    set_hf_offline(monkeypatch, True)
    unpinned = data_file(digest="")
    assert hub.hub_sha256(unpinned) is None
    assert hub.fetch(unpinned).read_bytes() == OLD  # checked against the blob's name: the Hub's sha256
    assert hub.hub_sha256(unpinned) == sha256(OLD)


def test_the_hubs_sha256_is_the_name_of_the_blob_linked_not_of_a_shared_store_behind_it(
    start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With Xet, huggingface_hub may turn ``blobs/<sha256>`` into a link to ``<cache>/blobs/xx/<xet hash>``."""
    start()
    path = hub.fetch(data_file(digest=""))
    blob = Path(os.path.realpath(path))
    store = tmp_path / "hf" / "hub" / "blobs" / "ab" / ("ab" + "0" * 62)
    store.parent.mkdir(parents=True)
    blob.rename(store)
    blob.symlink_to(os.path.relpath(store, blob.parent))
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "another-ra3bench-cache"))  # nothing recorded
    set_hf_offline(monkeypatch, True)
    assert hub.fetch(data_file(digest="")).read_bytes() == OLD
    assert hub.hub_sha256(data_file(digest="")) == sha256(OLD)


def test_offline_before_any_fetch_says_what_to_do(
    start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = start()
    set_hf_offline(monkeypatch, True)
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file())
    line = one_line(info)
    assert "HF_HUB_OFFLINE=1 is set" in line and "ra3bench data fetch" in line
    assert "datasets--livecodebench-fake--code_generation_lite" in line
    assert hub.cached(data_file()) is None
    set_hf_offline(monkeypatch, False)
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="RA3BENCH_OFFLINE=1 is set"):
        hub.fetch(data_file())
    assert not fake.file_calls("test6.jsonl")


# --- what the Hub refuses ---------------------------------------------------------------------------


def test_missing_revision(start: Callable[..., FakeHub]) -> None:
    start()
    gone = commit_sha("force-pushed away")
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file(revision=gone))
    assert f"{REPO} at revision {gone}: HF_ENDPOINT=http" in one_line(info)
    assert "does not have that commit" in one_line(info)


def test_missing_file(start: Callable[..., FakeHub]) -> None:
    start()
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file("test7.jsonl"))
    assert f"test7.jsonl of dataset {REPO} at revision {V1}" in one_line(info)
    assert "has no test7.jsonl in that commit" in one_line(info)


def test_unknown_repository(start: Callable[..., FakeHub]) -> None:
    start()
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file(repo="nobody/nothing"))
    line = one_line(info)
    assert "refuses nobody/nothing" in line and "no token was sent" in line and "HF_TOKEN" in line


def test_a_private_repository_needs_the_token(start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = start(token="hf_secret")
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file())
    assert "no token was sent" in one_line(info) and "hf auth login" in one_line(info)

    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file())
    assert "a token was sent" in one_line(info)

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert hub.fetch(data_file()).read_bytes() == OLD
    head, body = fake.file_calls("test6.jsonl")[-2:]
    assert (head.server, head.authorization) == ("hub", "Bearer hf_secret")
    assert (body.server, body.authorization) == ("cdn", None)  # the token never leaves the Hub


def test_a_gated_repository(start: Callable[..., FakeHub]) -> None:
    start(gated={REPO})
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file())
    assert f"{REPO} is gated" in one_line(info) and "HF_TOKEN" in one_line(info)


def test_an_unreachable_endpoint(start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    fake = start()
    fake.__exit__(None, None, None)  # nothing listens on its port any more
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub's retries, without the waits
    with pytest.raises(DataNotFoundError) as info:
        hub.fetch(data_file())
    assert f"cannot download from HF_ENDPOINT={fake.url} (" in one_line(info)


# --- a tampering mirror -----------------------------------------------------------------------------


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "hub-sha256"])
def test_a_tampering_mirror_is_caught_and_its_file_never_accepted(start: Callable[..., FakeHub], pinned: bool) -> None:
    bad = OLD.replace(b"old", b"bad")  # same size: only the digest tells
    fake = start(tamper={"test6.jsonl": bad})
    target = data_file(digest=None if pinned else "")
    for attempt in (1, 2):  # not accepted from the cache the second time either: downloaded and refused again
        with pytest.raises(DataIntegrityError) as info:
            hub.fetch(target)
        line = one_line(info)
        assert f"has sha256 {sha256(bad)}, but {sha256(OLD)} is expected" in line
        assert f"test6.jsonl of dataset {REPO} at revision {V1}" in line
        assert "the mirror serves a different file" in line and "removed from the HF cache" in line
        assert hub.cached(target) is None
        assert len(fake.file_calls("test6.jsonl", "GET")) == attempt
    assert hub.hub_sha256(target) == (sha256(OLD) if pinned else None)  # nothing recorded from a bad file

    del fake.tamper["test6.jsonl"]  # the mirror is fixed
    assert hub.fetch(target).read_bytes() == OLD


def test_a_wrong_size_is_refused_before_hashing(start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch) -> None:
    start()
    hashed: list[str] = []
    monkeypatch.setattr(hub, "_hash_file", lambda path: hashed.append(path) or "")
    wrong = DataFile("test6.jsonl", sha256(OLD), "lcb", hub=HubFile(REPO, "test6.jsonl", V1), size=len(OLD) + 1)
    with pytest.raises(DataIntegrityError, match=f"has {len(OLD)} bytes, not the pinned {len(OLD) + 1}"):
        hub.fetch(wrong)
    assert hashed == []


# --- the sha256 memo --------------------------------------------------------------------------------


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hashed: list[str] = []
    real = hub._hash_file

    def counting(path: str) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(hub, "_hash_file", counting)
    return hashed


def test_the_memo_spares_rehashing_until_the_file_changes(
    start: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    start()
    hashed = count_hashes(monkeypatch)
    path = hub.fetch(data_file(digest=""))
    assert len(hashed) == 1
    for _ in range(3):
        hub.fetch(data_file(digest=""))
    assert len(hashed) == 1
    blob = os.path.realpath(path)
    assert hub._load()["sha256"][blob]["sha256"] == sha256(OLD)

    # the cached blob is damaged in place (same size): hashed again, refused, removed
    stat = os.stat(blob)
    os.chmod(blob, 0o644)
    Path(blob).write_bytes(OLD.replace(b"old", b"odd"))
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(DataIntegrityError, match="is expected \\(the Hub's sha256, recorded when first fetched\\)"):
        hub.fetch(data_file(digest=""))
    assert len(hashed) == 2
    assert not os.path.exists(blob) and hub.cached(data_file()) is None


def test_sha256_of_remembers_by_path_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "ra3bench"))
    hashed = count_hashes(monkeypatch)
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"one\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    assert hub.sha256_of(data) == hub.sha256_of(link) == sha256(b"one\n")
    assert len(hashed) == 1  # keyed by the resolved path
    data.write_bytes(b"two, longer\n")
    assert hub.sha256_of(link) == sha256(b"two, longer\n")
    assert len(hashed) == 2
    # a lost or corrupt memo only costs a rehash
    hub.memo_path().write_text("{not json")
    assert hub.sha256_of(data) == sha256(b"two, longer\n")
    assert len(hashed) == 3
    assert hub.sha256_of(data) == sha256(b"two, longer\n")
    assert len(hashed) == 3
    data.unlink()
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"x")
    hub.sha256_of(other)
    assert os.path.realpath(other) in hub._load()["sha256"]
    assert os.path.realpath(data) not in hub._load()["sha256"]  # entries of deleted files are dropped on the next write


# --- the fake Hub speaks enough of the API for huggingface_hub ----------------------------------------


def test_the_fake_hub_answers_the_api(start: Callable[..., FakeHub]) -> None:
    from huggingface_hub import HfApi

    start(plain={"README.md"})
    api = HfApi()
    assert api.list_repo_files(REPO, repo_type="dataset", revision=V2) == ["README.md", "test6.jsonl"]
    info = api.dataset_info(REPO, revision="main")
    assert info.sha == V1 and {s.rfilename for s in info.siblings or []} == {"README.md", "test6.jsonl"}
    files = {f.path: f for f in api.get_paths_info(REPO, ["test6.jsonl", "README.md", "nope"], revision=V1,
                                                   repo_type="dataset")}  # fmt: skip
    assert files["test6.jsonl"].lfs is not None and files["test6.jsonl"].lfs.sha256 == sha256(OLD)
    assert files["README.md"].lfs is None and files["README.md"].blob_id == git_blob_id(README)
    assert set(files) == {"test6.jsonl", "README.md"}


def _hash_all(paths: list[str]) -> None:
    for path in paths:
        hub.sha256_of(Path(path))


def test_concurrent_runs_lose_no_memo_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "ra3bench"))
    groups = []
    for group in range(3):
        paths = []
        for i in range(15):
            (path := tmp_path / f"f{group}-{i}").write_bytes(b"%d" % i)
            paths.append(str(path))
        groups.append(paths)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_hash_all, args=(paths,)) for paths in groups]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    memo = hub._load()["sha256"]
    assert {os.path.realpath(p) for paths in groups for p in paths} <= set(memo)
    assert not list(hub.memo_path().parent.glob("*.tmp"))
