"""Reading the files a user hands in (samples to replay, training traces), plain or gzipped, with caps.

A gzipped file can hold far more than it weighs (a few MB of gzip can inflate to terabytes), so a
file is never decompressed whole first: it is read in bounded pieces and refused, with one line
that says the limit and how to raise it, as soon as it passes a cap:

* ``RA3BENCH_MAX_SAMPLES_BYTES`` (default 4 GiB): the whole file, decompressed. A file that is one
  JSON document (evalplus ``*eval_results.json``, a LiveCodeBench output) is held whole in memory,
  so this cap is also the most such a file can take;
* ``RA3BENCH_MAX_SAMPLES_LINE_BYTES`` (default 64 MiB): one line of a JSON-lines file, its newline
  included (a real sample, a long reasoning trace and its program, is well under 1 MiB);
* ``RA3BENCH_MAX_SAMPLES_LINES`` (default 5,000,000): the lines of a JSON-lines file. Each line
  costs time and, as a Python object, several times its bytes: 4 GiB of tiny or blank lines would
  take hours or all the memory before the byte cap was reached.

The byte caps take a number of bytes or a size such as ``512M`` or ``8G`` (powers of 1024).
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ra3bench.errors import UsageError

MAX_BYTES_ENV = "RA3BENCH_MAX_SAMPLES_BYTES"
MAX_LINE_BYTES_ENV = "RA3BENCH_MAX_SAMPLES_LINE_BYTES"
MAX_LINES_ENV = "RA3BENCH_MAX_SAMPLES_LINES"
DEFAULT_MAX_BYTES = 4 << 30
DEFAULT_MAX_LINE_BYTES = 64 << 20
DEFAULT_MAX_LINES = 5_000_000  # pass@1000 on all 1,055 LiveCodeBench v6 tasks is 1,055,000 lines
CHUNK = 1 << 20  # bytes decompressed per read: what reading holds beyond the data kept
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
_GZIP_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError


@dataclass(frozen=True)
class Limits:
    """The caps: bytes of the whole decompressed file and of one line of it, and its number of lines."""

    total: int
    line: int
    lines: int


def limits() -> Limits:
    """The caps now in force (read at each call, so a test or a wrapper script can change them)."""
    return Limits(
        total=_env_size(MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
        line=_env_size(MAX_LINE_BYTES_ENV, DEFAULT_MAX_LINE_BYTES),
        lines=_env_count(MAX_LINES_ENV, DEFAULT_MAX_LINES),
    )


def read_head(path: Path, size: int, what: str) -> bytes:
    """The first ``size`` bytes of the (decompressed) file: enough to tell its format."""
    with _reading(path, what) as stream:
        return stream.read(size)


def read_text(path: Path, what: str) -> str:
    """The whole (decompressed) file as UTF-8 text, for a format that is one JSON document; refused
    past the total cap (which also bounds the memory it takes: the line cap cannot apply)."""
    cap = limits().total
    data = bytearray()
    with _reading(path, what) as stream:
        while chunk := stream.read(min(CHUNK, cap + 1 - len(data))):
            data += chunk
            if len(data) > cap:
                raise _too_big(path, what, cap)
    return _decoded(data, path, what, 0)


def read_lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) for each line of a JSON-lines file, decoded as UTF-8 (its line
    break kept); one line may not pass the line cap, nor all of them the total cap or the line count."""
    caps = limits()
    seen = 0
    with _reading(path, what) as stream:
        for number in itertools.count(1):
            raw = stream.readline(caps.line + 1)
            if not raw:
                return
            if number > caps.lines:
                raise _too_many_lines(path, what, caps.lines)
            if len(raw) > caps.line:
                raise _line_too_long(path, number, caps.line)
            if seen + len(raw) > caps.total:
                raise _too_big(path, what, caps.total)
            yield number, _decoded(raw, path, what, seen)
            seen += len(raw)


# --- internals -------------------------------------------------------------------------------


def _env_size(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    m = _SIZE.fullmatch(value)
    size = int(m[1]) * _UNITS[m[2].upper()] if m else 0
    if size <= 0:
        raise UsageError(f"{name}={value!r} is not a size: give a number of bytes, or one with K, M, G or T (e.g. 8G)")
    return size


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdecimal() or int(value) <= 0:
        raise UsageError(f"{name}={value!r} is not a number of lines: give a whole number (e.g. 10000000)")
    return int(value)


@contextmanager
def _reading(path: Path, what: str) -> Iterator[BinaryIO]:
    """The file's bytes, gunzipped as they are read when it is gzip; a damaged gzip is one clear line."""
    with open(path, "rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raw.seek(0)
            yield raw
            return
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream  # type: ignore[misc]
        except _GZIP_ERRORS as exc:
            raise UsageError(f"{what} {path} cannot be read: not a valid gzip file ({exc})") from None


def _decoded(raw: bytes | bytearray, path: Path, what: str, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} {path} cannot be read: not UTF-8 text ({exc.reason} at byte {offset + exc.start})"
        ) from None


def _too_big(path: Path, what: str, cap: int) -> UsageError:
    size = f"{_size_text(cap)} once decompressed (a gzip bomb?)" if _is_gzip(path) else _size_text(cap)
    return UsageError(f"{what} {path} is larger than the limit of {size}; {_raise_it(MAX_BYTES_ENV, cap)}")


def _line_too_long(path: Path, number: int, cap: int) -> UsageError:
    limit = f"the limit of {_size_text(cap)} for one line"
    return UsageError(f"{path}:{number}: a line longer than {limit}; {_raise_it(MAX_LINE_BYTES_ENV, cap)}")


def _too_many_lines(path: Path, what: str, cap: int) -> UsageError:
    return UsageError(
        f"{what} {path} has more than {cap:,} lines, the limit; to read it anyway, "
        f"set {MAX_LINES_ENV} to a larger number, e.g. {MAX_LINES_ENV}={2 * cap}"
    )


def _raise_it(env: str, cap: int) -> str:
    return f"to read it anyway, set {env} to a larger size, e.g. {env}={_env_text(2 * cap)}"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _size_text(size: int) -> str:
    """``4 GiB``, ``64 MiB``, ``1000 bytes``: the largest unit that divides the size."""
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def _env_text(size: int) -> str:
    """The same size as the environment variable takes it: ``8G``, ``128M``, ``2000``."""
    for suffix in ("T", "G", "M", "K"):
        if size % _UNITS[suffix] == 0:
            return f"{size // _UNITS[suffix]}{suffix}"
    return str(size)
