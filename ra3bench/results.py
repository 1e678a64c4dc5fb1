"""The run folder: manifest, append-only JSONL records, summary.

Layout (``--out DIR``)::

    manifest.json    what produced the numbers: suite + data sha256, model, sandbox, limits, versions
    samples.jsonl    one line per sample: task_id, sample_index, program, program_sha256, raw text
    verdicts.jsonl   one line per sample: task_id, sample_index, status, groups, program_sha256, details
    summary.json     pass@k per group with intervals, status counts, coverage

JSONL files are only appended to and flushed line by line, so a killed run keeps what it
wrote; a torn last line (a kill in mid-write) is dropped when the folder is reopened.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ra3bench import __version__
from ra3bench.errors import UsageError

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
VERDICTS = "verdicts.jsonl"
SUMMARY = "summary.json"

# Manifest fields that must match for a folder to be resumed by a new command.
RESUME_KEYS = ("suite", "model", "settings", "n", "tasks")


def default_run_dir(suite: str, model: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_model = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:60]
    return Path("results") / f"{suite.replace('+', 'plus')}-{safe_model}-{stamp}"


def read_jsonl(path: Path) -> Iterator[dict]:
    """Complete records only: a torn last line from a killed writer is skipped."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                yield json.loads(raw)
            except ValueError:
                continue


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        _drop_torn_tail(path)
        self._fh = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _drop_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(cut)


class RunFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.manifest_path} is unreadable ({exc}); use another --out") from None

    def open(self, manifest: dict) -> None:
        """Create the folder, or resume it if it holds the same run."""
        if self.exists():
            old = self.read_manifest()
            diffs = [k for k in RESUME_KEYS if old.get(k) != manifest.get(k)]
            if diffs:
                raise UsageError(
                    f"{self.root} holds a different run (differs in: {', '.join(diffs)}); "
                    "pick another --out, or delete the folder to start over"
                )
            manifest = {**manifest, "run_id": old.get("run_id", manifest.get("run_id")), "resumed": True}
            manifest["created"] = old.get("created", manifest.get("created"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_json(MANIFEST, manifest)

    def write_json(self, name: str, data: dict) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.root / name)

    def samples(self) -> list[dict]:
        return list(read_jsonl(self.root / SAMPLES))

    def verdicts(self) -> list[dict]:
        return list(read_jsonl(self.root / VERDICTS))

    def writer(self, name: str) -> JsonlWriter:
        return JsonlWriter(self.root / name)


def host_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@functools.cache
def code_version() -> dict[str, Any]:
    """ra3bench's version, and the git commit (with a dirty flag) when run from a checkout.

    Read once per process, when the command starts (``cli.main``): the code a process runs is
    what it imported then, so a commit made while a long run (a sweep's later arms) goes on must
    not be recorded as its code.
    """
    here = str(Path(__file__).resolve().parent)

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "HEAD")
    info: dict[str, Any] = {"ra3bench": __version__, "git_sha": sha}
    if sha:
        info["git_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    return info


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
