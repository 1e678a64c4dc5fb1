"""Data files from the Hugging Face Hub, read through ``huggingface_hub`` and checked by sha256.

Why ``huggingface_hub``: it is how every HF tool reads the Hub, so a user's setup works here unchanged:
the cache (``HF_HOME``, ``HF_HUB_CACHE``; files land in ``$HF_HUB_CACHE/datasets--owner--name`` and are
shared with ``datasets``, ``transformers`` and the ``hf`` CLI), the endpoint (``HF_ENDPOINT``, for a
mirror), offline mode (``HF_HUB_OFFLINE=1``), tokens (``HF_TOKEN``, ``hf auth login``), proxies, retries,
Xet transfers and download locks. Nothing of that is reimplemented here.

What is pinned: a :class:`~ra3bench.suites.base.HubFile` names a repository, a path and a commit sha, so
the bytes cannot move with a branch. The server is still not trusted: every :func:`fetch` checks the
sha256 of the file, against ``DataFile.sha256`` when this project pins it, else against the Hub's own
sha256 of that file at that commit (its LFS object id, which ``hf_hub_download`` takes from the
``X-Linked-Etag`` header and names the cached blob after; a file kept in git instead of LFS is checked
against its git blob id). That digest is recorded on first success, so later runs, offline ones
included, check against the same one. A file that fails the check is removed from the HF cache.

The official LiveCodeBench files reach 1.25 GB and are checked on every run, so :func:`sha256_of`
remembers digests per (resolved path, size, mtime_ns, inode) in ``$RA3BENCH_CACHE_DIR/data/verified.json``,
next to the recorded Hub digests (see :func:`memo_path`).

A cluster without Hub access: run ``ra3bench data fetch SUITE`` on a machine that has it and copy
``$HF_HOME/hub/datasets--owner--name`` (or all of ``$HF_HOME/hub``) to the same place on the cluster,
then set ``HF_HUB_OFFLINE=1`` there; or point ``HF_ENDPOINT`` at a Hub mirror. Note that
``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` once, when
it is imported (into ``huggingface_hub.constants``): set them before the process starts.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from ra3bench.errors import DataIntegrityError, DataNotFoundError
from ra3bench.paths import cache_root
from ra3bench.suites.base import DataFile, HubFile

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_OID = re.compile(r"[0-9a-f]{40}")
_CHUNK = 4 << 20


def fetch(data_file: DataFile, *, progress: bool = True) -> Path:
    """The verified local path of ``data_file`` (whose ``hub`` is set), downloaded into the HF cache if needed.

    ``hf_hub_download`` does the work: a file already cached at the pinned commit costs no request at all.
    ``RA3BENCH_OFFLINE=1`` reads the cache only, like ``HF_HUB_OFFLINE=1``. ``progress=False`` hides the
    download bar of this call. Raises :class:`DataNotFoundError` (cannot get the file) or
    :class:`DataIntegrityError` (got a file that is not the pinned one), each with one line saying what to do.
    """
    from huggingface_hub import hf_hub_download

    hub = _hub(data_file)
    local_only = _ra3bench_offline()
    try:
        path = hf_hub_download(
            hub.repo_id,
            filename=hub.path,
            revision=hub.revision,
            repo_type=hub.repo_type,
            local_files_only=local_only,
            tqdm_class=None if progress else _silent_tqdm(),
        )
    except Exception as exc:  # every huggingface_hub failure becomes one line
        raise _download_error(hub, exc, local_only) from None
    assert isinstance(path, str)
    return _verified(data_file, Path(path))


def cached(data_file: DataFile) -> Path | None:
    """The file in the HF cache at the pinned revision, without any request; None if it is not there.

    Not verified: :func:`fetch` verifies (and costs no request either when the file is cached).
    """
    from huggingface_hub import try_to_load_from_cache

    hub = _hub(data_file)
    found = try_to_load_from_cache(hub.repo_id, hub.path, revision=hub.revision, repo_type=hub.repo_type)
    return Path(found) if isinstance(found, str) else None  # also None for "known not to exist"


def hub_sha256(data_file: DataFile) -> str | None:
    """The sha256 ``data_file`` is checked against: pinned, else recorded at its first :func:`fetch`, else None."""
    if data_file.sha256:
        return data_file.sha256
    return _load().get("hub", {}).get(_hub_key(_hub(data_file)))


def sha256_of(path: Path) -> str:
    """The sha256 of ``path``, remembered per (resolved path, size, mtime_ns, inode) across runs.

    A file that changes in any of these is hashed again; the memo is ``verified.json`` (:func:`memo_path`).
    """
    real = os.path.realpath(path)
    stamp = _stamp(real)
    entry = _load().get("sha256", {}).get(real)
    if isinstance(entry, dict) and all(entry.get(key) == value for key, value in stamp.items()):
        return str(entry["sha256"])
    digest = _hash_file(real)
    if _stamp(real) == stamp:  # not changed while being read

        def remember(data: dict[str, Any]) -> None:
            data.setdefault("sha256", {})[real] = {**stamp, "sha256": digest}

        _update(remember)
    return digest


def memo_path() -> Path:
    """``$RA3BENCH_CACHE_DIR/data/verified.json``: ``{"sha256": {resolved path: {size, mtime_ns, ino,
    sha256}}, "hub": {"<repo_type>s/<repo_id>@<revision>/<path>": sha256}}``."""
    return cache_root() / "data" / "verified.json"


# --- verification ------------------------------------------------------------------------------


def _verified(data_file: DataFile, path: Path) -> Path:
    hub = _hub(data_file)
    size = path.stat().st_size
    if data_file.size is not None and size != data_file.size:
        _reject(data_file, path, f"has {size} bytes, not the pinned {data_file.size}")
    expected = _expected_digest(data_file, path)
    if expected is None:
        raise DataIntegrityError(
            f"{path}: cannot verify {_describe(hub)}: ra3bench pins no sha256 for it, none was recorded at a first "
            f"fetch and the Hub's cannot be read offline; fetch it once with Hub access (`ra3bench data fetch`)"
        )
    kind, digest, source = expected
    actual = _git_blob_id(path) if kind == "git" else sha256_of(path)
    if actual != digest:
        name = "git blob id" if kind == "git" else "sha256"
        _reject(data_file, path, f"has {name} {actual}, but {digest} is expected ({source})")
    if not data_file.sha256 and hub_sha256(data_file) != (sha := sha256_of(path)):

        def record(data: dict[str, Any]) -> None:
            data.setdefault("hub", {})[_hub_key(hub)] = sha

        _update(record)
    return path


def _expected_digest(data_file: DataFile, path: Path) -> tuple[str, str, str] | None:
    """(kind "sha256" or "git", digest, where it comes from) for the downloaded ``path``."""
    if data_file.sha256:
        return "sha256", data_file.sha256, "pinned by ra3bench"
    hub = _hub(data_file)
    recorded = _load().get("hub", {}).get(_hub_key(hub))
    if recorded:
        return "sha256", recorded, "the Hub's sha256, recorded when first fetched"
    # hf_hub_download names the blob the snapshot entry links to after the file's ETag: the LFS sha256, or the
    # git blob id of a non-LFS file. (One link only: with Xet, that blob may link on to a store named otherwise.)
    blob = os.path.basename(os.readlink(path)) if path.is_symlink() else ""
    if _SHA256.fullmatch(blob):
        return "sha256", blob, "the Hub's sha256 of it at that revision (its LFS oid)"
    if _GIT_OID.fullmatch(blob):
        return "git", blob, "the Hub's git blob id of it at that revision"
    if _ra3bench_offline():
        return None
    return _paths_info_digest(hub)


def _paths_info_digest(hub: HubFile) -> tuple[str, str, str] | None:
    """The Hub's digest of the file from its paths-info API (when the HF cache holds copies, not symlinks)."""
    from huggingface_hub import HfApi, is_offline_mode
    from huggingface_hub.hf_api import RepoFile

    if is_offline_mode():
        return None
    try:
        infos = HfApi().get_paths_info(hub.repo_id, [hub.path], revision=hub.revision, repo_type=hub.repo_type)
    except Exception as exc:
        raise _download_error(hub, exc, local_only=False) from None
    for info in infos:
        if isinstance(info, RepoFile) and info.path == hub.path:
            if info.lfs is not None:
                return "sha256", info.lfs.sha256, "the Hub's sha256 of it at that revision (its LFS oid)"
            return "git", info.blob_id, "the Hub's git blob id of it at that revision"
    return None


def _reject(data_file: DataFile, path: Path, problem: str) -> NoReturn:
    """Remove a bad download from the HF cache (so it is never taken for the pinned file) and raise."""
    hub = _hub(data_file)
    left = _discard(hub, path)
    fix = (
        f"delete {' and '.join(left)}, then fetch again"
        if left
        else "it was removed from the HF cache: fetch again from the official Hub, or fix the mirror"
    )
    raise DataIntegrityError(
        f"{path}: {_describe(hub)} {problem}: the mirror serves a different file, or the cached copy was damaged "
        f"(endpoint {_endpoint()}); {fix}"
    )


def _discard(hub: HubFile, path: Path) -> list[str]:
    """Delete the snapshot entry and the blob it links to from this repository's HF cache folder; returns
    what could not be deleted (a file elsewhere, such as the cache-wide Xet store, is left to the user)."""
    folder = _repo_cache_folder(hub).resolve()
    pointer = path.parent.resolve() / path.name
    real = Path(os.path.realpath(pointer))
    entries = [Path(os.path.normpath(pointer.parent / os.readlink(pointer))), pointer] if pointer.is_symlink() else []
    left = [] if folder in real.parents else [str(real)]
    for entry in entries or [pointer]:
        try:
            if folder not in entry.parents:
                raise PermissionError
            entry.unlink(missing_ok=True)
        except OSError:
            left.append(str(entry))
    return left


def _git_blob_id(path: Path) -> str:
    """The git object id of a file's content (how the Hub names a file kept in git, not LFS)."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp(real: str) -> dict[str, int]:
    st = os.stat(real)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


# --- the memo file -----------------------------------------------------------------------------


def _load() -> dict[str, Any]:
    try:
        with open(memo_path(), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _update(change: Callable[[dict[str, Any]], None]) -> None:
    """Read, change and atomically replace the memo, under a lock so concurrent runs lose no entry.

    Best effort: the memo only saves work (a read-only cache dir means hashing again next time)."""
    target = memo_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.with_name(target.name + ".lock")):
            data = _load()
            change(data)
            memo = data.get("sha256", {})
            for key in [key for key in memo if not os.path.exists(key)]:  # files since deleted
                del memo[key]
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    except OSError:
        pass


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; the replace is still atomic, an entry may be lost
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- errors and helpers ------------------------------------------------------------------------


def _download_error(hub: HubFile, exc: Exception, local_only: bool) -> DataNotFoundError:
    """One line for a failed ``hf_hub_download`` / Hub API call: what went wrong and what to do."""
    from huggingface_hub import get_token, is_offline_mode
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what, endpoint, folder = _describe(hub), _endpoint(), _repo_cache_folder(hub)
    elsewhere = (
        f"or fetch it where the Hub is reachable (`ra3bench data fetch SUITE`) and copy that machine's "
        f"$HF_HOME/hub/{folder.name} to {folder}"
    )
    login = "log in with `hf auth login` or set HF_TOKEN"
    if isinstance(exc, RevisionNotFoundError):
        return DataNotFoundError(
            f"{what}: {endpoint} does not have that commit (a mirror that lags behind, or rewritten history): "
            f"point HF_ENDPOINT at a Hub that has it, {elsewhere}"
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        return DataNotFoundError(
            f"{what}: {endpoint} has no {hub.path} in that commit: the pinned path is wrong or the mirror is "
            f"incomplete; point HF_ENDPOINT at a Hub that has it, {elsewhere}"
        )
    if isinstance(exc, GatedRepoError):
        return DataNotFoundError(
            f"{what}: {hub.repo_id} is gated on {endpoint}: accept its conditions at {_repo_page(hub)} with your "
            f"account, then {login}"
        )
    if isinstance(exc, RepositoryNotFoundError) or (isinstance(exc, HfHubHTTPError) and _status(exc) == 401):
        token = "a token was sent" if get_token() else "no token was sent: HF_TOKEN is unset and no `hf auth login`"
        return DataNotFoundError(
            f"{what}: {endpoint} refuses {hub.repo_id} (no such repository, a private or gated one, or a rejected "
            f"token; {token}): check the repository name, and {login} with a token that can read it"
        )
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        if local_only or is_offline_mode():
            flag = "RA3BENCH_OFFLINE=1" if local_only else "HF_HUB_OFFLINE=1"
            return DataNotFoundError(
                f"{what} is not in the HF cache ({folder}) and {flag} is set: unset it to download, {elsewhere}"
            )
        cause = exc.__cause__ or exc.__context__ or exc
        return DataNotFoundError(
            f"{what}: cannot download from {endpoint} ({_one_line(cause)}): check the network or proxy, {elsewhere}"
        )
    return DataNotFoundError(f"{what}: download from {endpoint} failed ({_one_line(exc)}): retry, {elsewhere}")


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _endpoint() -> str:
    from huggingface_hub import constants

    return f"HF_ENDPOINT={constants.ENDPOINT}" if os.environ.get("HF_ENDPOINT") else constants.ENDPOINT


def _repo_cache_folder(hub: HubFile) -> Path:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=hub.repo_id, repo_type=hub.repo_type)


def _describe(hub: HubFile) -> str:
    return f"{hub.path} of {hub.repo_type} {hub.repo_id} at revision {hub.revision}"


def _repo_page(hub: HubFile) -> str:
    from huggingface_hub import constants

    prefix = constants.REPO_TYPES_URL_PREFIXES.get(hub.repo_type, "")
    return f"{constants.ENDPOINT}/{prefix}{hub.repo_id}"


def _hub_key(hub: HubFile) -> str:
    return f"{hub.repo_type}s/{hub.repo_id}@{hub.revision}/{hub.path}"


def _hub(data_file: DataFile) -> HubFile:
    if data_file.hub is None:
        raise ValueError(f"{data_file.filename} has no Hub source")
    return data_file.hub


def _ra3bench_offline() -> bool:
    return os.environ.get("RA3BENCH_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


@functools.cache
def _silent_tqdm() -> type:
    """huggingface_hub's own tqdm, always disabled: no bar for one call, the bars of other calls untouched."""
    from huggingface_hub.utils import tqdm

    class SilentTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm
