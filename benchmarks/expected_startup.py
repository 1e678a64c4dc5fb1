"""Start-up cost of expected outputs on HumanEval+ v0.1.9: the previous code (whole records, decoded at
load) against this tree (records checked at load, decoded on first use), in one invocation.

    RA3BENCH_DATA_DIR=/work/shared/datasets python benchmarks/expected_startup.py \\
        --old-store ~/.cache/ra3bench/expected/humaneval+-v0.1.9-e62f4130146963d9-h6-py311.sqlite

Old code: ``ra3bench/expected.py`` and ``ra3bench/expected_store.py`` as they are at ``--base`` (default
HEAD), taken with ``git show`` into a temporary folder and imported under other names (the rest of
ra3bench is this tree's). Old store: a copy of ``--old-store`` (never modified), whose records must
match the problems' old fingerprints. New store: made from the old store's records (each one decoded
and written by this tree's ``ExpectedStore.save``, with this tree's fingerprints); with
``--compute`` instead, computed by ``load_or_compute`` in the local sandbox (~25 s). Unless
``--no-verify``, every value of the new store is checked against the old one first (arguments,
outputs, ``calls_json``, digests, NaN flags, times, statuses, notes).

Rows, each the median of ``--repeats`` runs, old and new taking turns, CPU seconds of this process
(wall time beside; ``gc.collect()`` between runs, outside the timing):

* **fingerprint, all tasks**: ``problem_fingerprint`` of the 164 problems;
* **load, all tasks**: ``load_or_compute(suite, <no sandbox>, all problems)`` on a warm store: what
  ``ra3bench evaluate`` pays before judging a full run (fingerprints included);
* **load, 1 task**: the same for HumanEval/0 alone, and for HumanEval/15 (the largest record: 147 MB
  of JSON in the old store, mostly 6.9 MB texts);
* **load all + first judging use**: the load, then what judging one correct sample of every task
  reads of the expectations (``calls_json``, ``digests(1 << 16)``, every output that does not travel
  as a digest, ``nan_free``): where the lazy store's decoding went;
* of the new load: the sha256 check of the rows (``expected_store._row_digest`` over the rows read).

And, each in a fresh process: the resident memory the loaded expectations of all tasks hold.

Prints a markdown report (command, machine, date, table); nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import importlib.util
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from results_md import machine
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # ra3bench itself, installed or not

from ra3bench import expected as new_expected  # noqa: E402
from ra3bench import expected_store as new_store  # noqa: E402
from ra3bench.suites import get_suite  # noqa: E402

SUITE, VERSION = "humaneval+", "v0.1.9"
ONE_TASKS = ("HumanEval/0", "HumanEval/15")
DIGEST_MIN_BYTES = 1 << 16  # Limits.digest_min_bytes


class NoSandbox:
    """The store must answer everything: a load that would compute is a broken benchmark."""

    name = "none"
    workers = 1

    def run_many(self, jobs):
        raise AssertionError("the store was expected to hold every record; it would compute")


# --------------------------------------------------------------------------- the previous code


def import_old(base: str, folder: Path) -> ModuleType:
    """``ra3bench.expected`` at ``base``, importing its own ``expected_store`` at ``base``."""
    sources = {}
    for name in ("expected", "expected_store"):
        text = subprocess.run(
            ["git", "show", f"{base}:ra3bench/{name}.py"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        sources[name] = text.replace("from ra3bench.expected_store import", "from old_expected_store import")
    modules = {}
    for name in ("expected_store", "expected"):  # the store first: expected imports it
        path = folder / f"old_{name}.py"
        path.write_text(sources[name])
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = module
        spec.loader.exec_module(module)
        modules[name] = module
    return modules["expected"]


# --------------------------------------------------------------------------- stores


def place_old_store(source: Path, root: Path, old: ModuleType, suite, problems) -> Path:
    """A copy of the old store where the old code looks for it, checked against the old fingerprints."""
    path = root / "expected" / f"{old.expectations_key(suite)}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    with sqlite3.connect(path) as db:
        stored = dict(db.execute("SELECT task_id, fingerprint FROM tasks"))
    stale = [p.task_id for p in problems if stored.get(p.task_id) != old.problem_fingerprint(p)]
    if stale:
        sys.exit(f"{len(stale)} records of {source} are not for these problems (first: {stale[0]}): use --compute")
    return path


def convert(old_path: Path, root: Path, suite, problems) -> float:
    """This tree's store, written from the old store's records; seconds."""
    by_id = {p.task_id: p for p in problems}
    store = new_store.ExpectedStore(new_store.store_path(root, new_expected.expectations_key(suite)))
    start = time.perf_counter()
    with sqlite3.connect(old_path) as db:
        for task_id, _, payload in db.execute("SELECT task_id, fingerprint, payload FROM tasks"):
            groups = {
                name: new_expected.GroupExpectation(**g) for name, g in json.loads(zlib.decompress(payload)).items()
            }
            store.save({task_id: (new_expected.problem_fingerprint(by_id[task_id]), groups)})
    return time.perf_counter() - start


def compute_new(suite, problems, workers: int) -> float:
    from ra3bench.sandbox import make_sandbox

    start = time.perf_counter()
    with make_sandbox("local", workers) as sandbox:
        new_expected.load_or_compute(suite, sandbox, problems)
    return time.perf_counter() - start


def verify(old: ModuleType, suite, problems) -> int:
    """Every stored value of the new store against the old store's; the number of groups compared."""
    old_all = old.load_or_compute(suite, NoSandbox(), problems)
    new_all = new_expected.load_or_compute(suite, NoSandbox(), problems)
    compared = 0
    for task_id, groups in old_all.tasks.items():
        assert list(new_all.tasks[task_id]) == list(groups), task_id
        for name, was in groups.items():
            now = new_all.tasks[task_id][name]
            for min_bytes in (1000, new_store.BIG_OUTPUT_CHARS, DIGEST_MIN_BYTES):
                assert now.digests(min_bytes) == was.digests(min_bytes), (task_id, name, min_bytes)
            n = len(was.outputs)
            assert [now.nan_free(i) for i in range(n)] == [was.nan_free(i) for i in range(n)], (task_id, name)
            assert now.calls_json() == was.calls_json(), (task_id, name)
            assert now.times_s == was.times_s and now.statuses == was.statuses, (task_id, name)
            assert now.problem_note == was.problem_note, (task_id, name)
            assert list(now.args) == was.args and list(now.outputs) == was.outputs, (task_id, name)
            compared += 1
    return compared


# --------------------------------------------------------------------------- measurements


def first_judging_use(expectations) -> None:
    """What judging one correct sample of every task reads of its expectations."""
    for groups in expectations.tasks.values():
        for g in groups.values():
            g.calls_json()
            digested = g.digests(DIGEST_MIN_BYTES)
            outputs = g.outputs
            for i in range(len(outputs)):
                if i not in digested:
                    outputs[i]  # the read is the point
                    g.nan_free(i)


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(CPU s, wall s) of ``fn()``; what it returns is dropped outside the timing."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    del result
    gc.collect()
    return cpu, wall


def row_check_s(root: Path, suite) -> float:
    """Seconds of the sha256 check over every row of the new store (already read)."""
    path = new_store.store_path(root, new_expected.expectations_key(suite))
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT task_id, fingerprint, meta, payload FROM records").fetchall()
    start = time.process_time()
    for task_id, fingerprint, meta, payload in rows:
        new_store._row_digest(task_id, fingerprint, meta, payload)
    return time.process_time() - start


def measure(old: ModuleType, suite, problems, repeats: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    by_id = {p.task_id: p for p in problems}
    codes = {"old": old, "new": new_expected}

    def fingerprints(code: ModuleType) -> Callable[[], Any]:
        return lambda: [code.problem_fingerprint(p) for p in problems]

    def load(chosen: list, code: ModuleType) -> Callable[[], Any]:
        return lambda: code.load_or_compute(suite, NoSandbox(), chosen)

    def load_and_use(code: ModuleType) -> Callable[[], Any]:
        return lambda: first_judging_use(code.load_or_compute(suite, NoSandbox(), problems))

    cases: dict[str, Callable[[ModuleType], Callable[[], Any]]] = {
        "fingerprint, all 164 tasks": fingerprints,
        "load, all 164 tasks": functools.partial(load, problems),
        **{f"load, 1 task ({t})": functools.partial(load, [by_id[t]]) for t in ONE_TASKS},
        "load all + first judging use": load_and_use,
    }
    times: dict[str, dict[str, list[tuple[float, float]]]] = {case: {"old": [], "new": []} for case in cases}
    for _ in range(repeats):
        for case, make in cases.items():
            for which, code in codes.items():
                times[case][which].append(timed(make(code)))
    return times


def rss_probe(which: str, base: str) -> None:
    """Child process: resident memory held by the loaded expectations of all tasks (MB)."""
    with tempfile.TemporaryDirectory() as folder:
        code = import_old(base, Path(folder)) if which == "old" else new_expected
        suite = get_suite(SUITE, VERSION)
        problems = suite.problems()
        gc.collect()
        before = rss_mb()
        held = code.load_or_compute(suite, NoSandbox(), problems)
        gc.collect()
        print(f"{rss_mb() - before:.1f}")
        del held


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def rss_of(which: str, base: str) -> str:
    out = subprocess.run(
        [sys.executable, __file__, "--probe-rss", which, "--base", base],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return out.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------- report


def cell(samples: list[tuple[float, float]]) -> str:
    cpu = statistics.median(s[0] for s in samples)
    wall = statistics.median(s[1] for s in samples)
    return f"{cpu:.4f} ({wall:.4f})" if cpu < 0.1 else f"{cpu:.3f} ({wall:.3f})"


def ratio(times: dict[str, list[tuple[float, float]]]) -> str:
    old = statistics.median(s[0] for s in times["old"])
    new = statistics.median(s[0] for s in times["new"])
    return f"{old / new:.1f}x" if new > 0 else "-"


def git_sha(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True).stdout.strip()


def report(args, times, extra: dict[str, Any]) -> str:
    rows = [[case, cell(t["old"]), cell(t["new"]), ratio(t)] for case, t in times.items()]
    rows.append(["of the new load: sha256 check of the rows", "-", f"{extra['check_s']:.4f}", ""])
    rows.append(["memory held by all tasks' expectations (MB RSS)", extra["rss_old"], extra["rss_new"], ""])
    head = ["measurement", f"old ({args.base} = {git_sha(args.base)}) CPU s (wall)", "new (this tree)", "old / new"]
    return "\n".join(
        [
            f"Command: `{' '.join(shlex.quote(a) for a in sys.argv)}`  ",
            f"Machine: {machine()}  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
            f"Data: {SUITE} {VERSION}, 164 tasks; medians of {args.repeats} runs, old and new taking turns.  ",
            f"Stores: old {extra['old_mb']:.1f} MB (copy of `{args.old_store}`), new {extra['new_mb']:.1f} MB "
            f"({extra['made']}); {extra['verified']}.",
            "",
            tabulate(rows, headers=head, tablefmt="github"),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-store", type=Path, help="a schema-1 store of HumanEval+ v0.1.9 (copied, never changed)")
    parser.add_argument("--base", default="HEAD", help="git revision of the previous code (default HEAD)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compute", action="store_true", help="compute the new store in the local sandbox")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local sandbox workers (--compute)")
    parser.add_argument("--no-verify", action="store_true", help="skip comparing every value new against old")
    parser.add_argument("--probe-rss", choices=("old", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_rss:
        rss_probe(args.probe_rss, args.base)
        return
    if args.old_store is None or not args.old_store.exists():
        sys.exit("--old-store: a schema-1 store of HumanEval+ v0.1.9 is needed (the previous code's file)")
    with tempfile.TemporaryDirectory(prefix="expected-startup-") as folder:
        root = Path(folder) / "cache"
        os.environ["RA3BENCH_CACHE_DIR"] = str(root)  # both codes, and the memory probes, read stores here
        old = import_old(args.base, Path(folder))
        suite = get_suite(SUITE, VERSION)
        problems = suite.problems()
        old_path = place_old_store(args.old_store, root, old, suite, problems)
        if args.compute:
            made = f"computed in the local sandbox in {compute_new(suite, problems, args.workers):.1f} s"
        else:
            made = f"converted from the old records in {convert(old_path, root, suite, problems):.1f} s"
        new_path = new_store.store_path(root, new_expected.expectations_key(suite))
        verified = "not compared" if args.no_verify else f"all {verify(old, suite, problems)} groups equal, old vs new"
        times = measure(old, suite, problems, args.repeats)
        extra = {
            "check_s": statistics.median(row_check_s(root, suite) for _ in range(args.repeats)),
            "rss_old": rss_of("old", args.base),
            "rss_new": rss_of("new", args.base),
            "old_mb": old_path.stat().st_size / 1e6,
            "new_mb": new_path.stat().st_size / 1e6,
            "made": made,
            "verified": verified,
        }
        print(report(args, times, extra))


if __name__ == "__main__":
    main()
