"""Judging throughput on real HumanEval+ runs: ra3bench (docker and local sandbox) against evalplus 0.3.1.

    python benchmarks/sandbox_throughput.py            # 3 runs (weak, middling, strong model), both modes
    python benchmarks/sandbox_throughput.py --runs 70-bad,70-g --modes default --skip local --results ''
    python benchmarks/sandbox_throughput.py --limit 3 --repeat 2 --results ''   # smoke: 3 tasks per run

What it measures, all in one invocation on the same cores, one evaluator at a time:

* Runs: real evalplus sample runs from ``$RA3BENCH_DATA_DIR/samples/MANIFEST.jsonl`` scored
  against HumanEval+ v0.1.9 (default: LLaMA-7B, 19/17 passes; Llama-3-8B-Instruct, 98/90;
  GPT-4-Turbo MapCoder, 152/137). Each run is one invocation of each evaluator, as a user
  would evaluate it.
* Modes. ``default`` (the headline): ``ra3bench evaluate --no-cache`` (fail-fast: a group stops
  at its first failed test; no verdict reuse) against evalplus's default ``evaluate``, which is
  fail-fast too (``fast_check = not test_details``: each of base and plus stops at its first
  failed test, and plus runs even when base failed, as in ra3bench). ``no-fail-fast``:
  ``ra3bench evaluate --no-fail-fast --no-cache`` against ``evalplus evaluate --test-details``
  (every test of both groups, every failing input reported).
* The physical floor of each ra3bench run: the sum over its samples of the programs' own test
  times (``details.<group>.time_s`` in verdicts.jsonl) divided by the workers, against the
  run's judging time (from manifest.json's write to the last verdict's). evalplus's time until
  its results file is shown beside its wall time: its process then waits up to 20 s for a
  stall-watch thread.
* The fixed cost per invocation: wall time of ``ra3bench evaluate`` on one sample with warm
  expected outputs (median of ``--repeat``), per sandbox; evalplus's equivalent is ``evaluate``
  on a one-problem dataset file with its ground truth warm (evalplus refuses a samples file that
  does not cover its whole dataset).
* The fixed cost per job (``Sandbox.run`` of trivial jobs from 2 threads), and verdict agreement:
  docker vs local, each against evalplus (base/plus pass per sample), fail-fast vs not.

Caches. evalplus keeps its ground truth under ``$XDG_CACHE_HOME/evalplus``; ra3bench its
expected outputs and verdicts under ``$RA3BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ra3bench``.
Both are computed first into caches of this script's own and timed separately (evalplus's ground
truth; ra3bench's expected outputs, in the local sandbox: both backends then judge with the
same expected outputs and time limits). Every measured invocation gets a fresh cache folder
holding a copy of those and nothing else (XDG_CACHE_HOME and RA3BENCH_CACHE_DIR both point
there), and a fresh output folder: nothing is reused from one measured run to another. The
report shows each ra3bench run's own count of executed samples.

evalplus runs from the venv ``.bench-venv/``, with ``--parallel <workers>``:

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install --no-deps evalplus==0.3.1   # its deps pull transformers, openai, ...
    .bench-venv/bin/pip install wget tempdir multipledispatch appdirs numpy tqdm termcolor fire \\
        psutil rich tree-sitter tree-sitter-python datasets     # what `evalplus.evaluate` imports

Prints a markdown report and, unless ``--results ''``, writes it as the ``## Sandbox throughput``
section of benchmarks/RESULTS.md (other sections are kept). Partial results are saved in
``<work>/result.json`` after every step; ``--report-only --work DIR`` renders them again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from results_md import write_section
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # ra3bench itself, installed or not
HEADING = "## Sandbox throughput"
V0_1_9_MD5 = "84f4b93a1270b492e4c54d5212da7a5b"  # evalplus's hash of HumanEvalPlus v0.1.9 (the runs' data)
DEFAULT_RUNS = "tyfann/llama_7b_hf_samples,llama3-exp/8b-instruct-base,GPT4-Turbo-MapCoder-5-5-Human-Python3-0-1"
KINDS = ("evalplus", "docker", "local")
MODES = {
    # mode: (ra3bench flags, evalplus flags, what it is)
    "default": ([], [], "fail-fast (each group stops at its first failed test), no verdict reuse"),
    "no-fail-fast": (["--no-fail-fast"], ["--test-details"], "every test of every group"),
}
LABEL = {"evalplus": "evalplus 0.3.1", "docker": "ra3bench, docker", "local": "ra3bench, local"}

# Run in the evalplus venv: its ground truth (expected outputs) into its cache, timed; then the
# warm load of the data and ground truth that every `evaluate` pays, timed.
GROUND_TRUTH = """\
import time
from evalplus.data import get_human_eval_plus, get_human_eval_plus_hash
from evalplus.evaluate import get_groundtruth
start = time.perf_counter()
problems = get_human_eval_plus()
digest = get_human_eval_plus_hash()
get_groundtruth(problems, digest, [])
cold = time.perf_counter() - start
start = time.perf_counter()
get_groundtruth(get_human_eval_plus(), get_human_eval_plus_hash(), [])
print(digest, cold, time.perf_counter() - start)
"""


def machine() -> dict[str, Any]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "ra3bench"], cwd=REPO, capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "git": (code.stdout.strip() or "?") + (" + uncommitted changes in ra3bench/" if dirty.stdout.strip() else ""),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---- runs and their samples


def manifest_runs(data_dir: Path) -> list[dict[str, Any]]:
    """The evalplus runs of MANIFEST.jsonl scored against HumanEval+ v0.1.9 (what they are judged on here)."""
    runs = []
    for line in (data_dir / "samples" / "MANIFEST.jsonl").read_text().splitlines():
        entry = json.loads(line)
        rel = entry["path"].split("datasets/samples/", 1)[-1]
        if rel.startswith("evalplus/") and entry.get("dataset_hash") == V0_1_9_MD5:
            path = data_dir / "samples" / rel
            runs.append(
                {
                    "id": rel.removeprefix("evalplus/"),
                    "name": Path(rel).name,
                    "path": str(path),
                    "model": entry.get("model", "?"),
                    "recorded": f"{entry.get('base_pass')}/{entry.get('plus_pass')}",
                }
            )
    return runs


def pick_runs(data_dir: Path, spec: str) -> list[dict[str, Any]]:
    """Runs named by their path under samples/evalplus/ (or its last part, when that is unique)."""
    known = manifest_runs(data_dir)
    picked = []
    for want in [s.strip().strip("/") for s in spec.split(",") if s.strip()]:
        hits = [r for r in known if r["id"] == want] or [r for r in known if r["id"].endswith("/" + want)]
        if len(hits) != 1:
            why = "ambiguous" if hits else "unknown"
            raise SystemExit(f"{why} run {want!r}; known (HumanEval+ v0.1.9): {', '.join(r['id'] for r in known)}")
        picked.append(hits[0])
    names = [r["name"] for r in picked]
    if len(set(names)) != len(names):
        raise SystemExit(f"runs need distinct last path parts: {names}")
    return picked


def task_number(task_id: str) -> int:
    return int(task_id.rsplit("/", 1)[1])


def write_samples(run: dict[str, Any], path: Path, tasks: set[str] | None) -> int:
    """The run's samples (task_id with solution or completion, as recorded) as plain JSONL; only ``tasks`` if given."""
    n = 0
    with path.open("w") as out, gzip.open(Path(run["path"]) / "samples.jsonl.gz", "rt") as src:
        for line in src:
            record = json.loads(line)
            if tasks is not None and record["task_id"] not in tasks:
                continue
            keep = {k: record[k] for k in ("task_id", "solution", "completion") if record.get(k) is not None}
            out.write(json.dumps(keep) + "\n")
            n += 1
    return n


def write_dataset(data_dir: Path, path: Path, tasks: set[str] | None) -> str:
    """HumanEvalPlus v0.1.9 as evalplus reads it (HUMANEVAL_OVERRIDE_PATH), only ``tasks`` if given; its md5."""
    raw = gzip.decompress((data_dir / "humanevalplus" / "HumanEvalPlus-v0.1.9.jsonl.gz").read_bytes())
    if tasks is not None:
        lines = raw.decode().splitlines(keepends=True)
        raw = "".join(line for line in lines if line.strip() and json.loads(line)["task_id"] in tasks).encode()
    path.write_bytes(raw)
    return hashlib.md5(raw).hexdigest()


# ---- running and timing commands

LOAD: dict[str, list[float]] = {}  # log name -> 1-minute load average sampled during the command


def timed(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> float:
    """Wall seconds of ``cmd``; the host's load average is sampled meanwhile (other users' work shows up there)."""
    samples = LOAD.setdefault(log.stem, [os.getloadavg()[0]])
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        start = time.perf_counter()
        with log.open("w") as out:
            done = subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    finally:
        stop.set()
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall


def fresh_cache(folder: Path, seeds: dict[str, Path]) -> dict[str, str]:
    """A new, empty XDG_CACHE_HOME holding copies of ``seeds`` (name -> warm folder), and the env that points both
    tools there (RA3BENCH_CACHE_DIR = its ra3bench/, as ra3bench's XDG rule would pick)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, src in seeds.items():
        shutil.copytree(src, folder / name)
    return {"XDG_CACHE_HOME": str(folder), "RA3BENCH_CACHE_DIR": str(folder / "ra3bench")}


# ---- evalplus


def evalplus_ground_truth(venv: Path, dataset: Path, xdg: Path, log: Path) -> tuple[str, float, float]:
    """Compute evalplus's ground truth of ``dataset`` into ``xdg``/evalplus: (md5, seconds, warm reload seconds)."""
    xdg.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(dataset), "XDG_CACHE_HOME": str(xdg)}
    timed([str(venv / "bin" / "python"), "-c", GROUND_TRUTH], env, log, log.parent)
    digest, cold, warm = log.read_text().split()[-3:]
    return digest, float(cold), float(warm)


def evalplus_command(venv: Path, samples: Path, workers: int, flags: list[str]) -> list[str]:
    py = str(venv / "bin" / "python")
    common = ["--dataset", "humaneval", "--samples", str(samples), "--parallel", str(workers), "--i-just-wanna-run"]
    return [py, "-m", "evalplus.evaluate", *common, *flags]


def evalplus_verdicts(folder: Path) -> dict[tuple[str, int], dict[str, bool]]:
    data = json.loads((folder / "samples_eval_results.json").read_text())
    out = {}
    for task_id, rows in data["eval"].items():
        for i, row in enumerate(rows):
            out[(task_id, i)] = {"base": row["base_status"] == "pass", "plus": row["plus_status"] == "pass"}
    return out


# ---- ra3bench


def ra3bench_command(kind: str, samples: Path, out: Path, workers: int, flags: list[str]) -> list[str]:
    suite = ["--suite", "humaneval+", "--suite-version", "v0.1.9", "--samples", str(samples)]
    execution = ["--sandbox", kind, "--workers", str(workers), "--no-cache", *flags, "--out", str(out)]
    return [sys.executable, "-m", "ra3bench", "evaluate", *suite, *execution]


def ra3bench_run(folder: Path) -> dict[str, Any]:
    """Verdicts, the programs' own test time, the judging time and the execution counters of a run folder."""
    verdicts, test_s = {}, 0.0
    for line in (folder / "verdicts.jsonl").read_text().splitlines():
        v = json.loads(line)
        verdicts[(v["task_id"], v["sample_index"])] = {"status": v["status"], "groups": v["groups"]}
        test_s += sum(float(d.get("time_s") or 0.0) for d in (v.get("details") or {}).values())
    judging = None
    manifest, last = folder / "manifest.json", folder / "verdicts.jsonl"
    if manifest.exists() and last.exists():  # written just before the first sample is judged / after the last
        judging = max(0.0, last.stat().st_mtime - manifest.stat().st_mtime)
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else {}
    return {"verdicts": verdicts, "test_s": test_s, "judging_s": judging, "execution": summary.get("execution", {})}


def cache_expected_outputs(workers: int, tasks: set[str] | None) -> float:
    """Compute HumanEval+ v0.1.9's expected outputs (``tasks`` only, if given) into $RA3BENCH_CACHE_DIR in the
    local sandbox (what `evaluate` then reads); seconds, sandbox start included."""
    from ra3bench.expected import load_or_compute
    from ra3bench.sandbox import make_sandbox
    from ra3bench.suites import get_suite

    suite = get_suite("humaneval+", "v0.1.9")
    problems = [p for p in suite.problems() if tasks is None or p.task_id in tasks]
    start = time.perf_counter()
    with make_sandbox("local", workers) as sandbox:
        load_or_compute(suite, sandbox, problems)
    return time.perf_counter() - start


def sandbox_available(kind: str) -> str:
    """'' if ``make_sandbox(kind)`` works here, else why not."""
    from ra3bench.errors import Ra3benchError
    from ra3bench.sandbox import make_sandbox

    try:
        make_sandbox(kind, workers=1).close()
    except Ra3benchError as exc:
        return str(exc)
    return ""


def local_label() -> str:
    from ra3bench.sandbox import make_sandbox

    with make_sandbox("local", 1) as sb:
        return "ra3bench, local (bubblewrap)" if sb.describe().get("bwrap") else "ra3bench, local (no bubblewrap)"


def per_job_overhead(kind: str, jobs: int, threads: int) -> dict[str, float]:
    """Wall time per trivial job through ``Sandbox.run`` from ``threads`` threads, after a warm-up."""
    from ra3bench.sandbox import make_sandbox
    from ra3bench.sandbox.base import CallStatus, Job

    job = Job(program="def f(x):\n    return x + 1\n", entry_point="f", calls=[[1]], time_limits_s=[1.0])
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = []
        for _ in range(n):
            t0 = time.perf_counter()
            result = sandbox.run(job)
            mine.append(time.perf_counter() - t0)
            if result.sandbox_error or result.calls[0].status is not CallStatus.OK:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)

    with make_sandbox(kind, workers=threads) as sandbox:
        for _ in range(2 * threads):  # start every worker
            sandbox.run(job)
        pool = [threading.Thread(target=worker, args=(n,)) for n in [jobs // threads] * threads]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        wall = time.perf_counter() - start
    n = len(latencies)
    return {
        "jobs": n,
        "ms_per_job": 1000 * wall / n,
        "latency_ms": 1000 * statistics.mean(latencies),
        "fail": failures[0],
    }


# ---- the measurement


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, data_dir: Path) -> None:
        self.args, self.work, self.data_dir = args, work, data_dir
        self.workers = args.workers
        self.venv: Path = args.venv
        self.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
        self.base_env = {**os.environ, "RA3BENCH_DATA_DIR": str(data_dir)}
        self.base_env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.warm_ra3bench = work / "warm" / "ra3bench"  # expected outputs, computed once
        self.warm_evalplus = work / "warm" / "evalplus-xdg"  # ground truth (XDG_CACHE_HOME of its computation)
        self.warm_evalplus_one = work / "warm" / "evalplus-xdg-one"  # ground truth of the one-problem dataset
        self.res: dict[str, Any] = {}

    def save(self) -> None:
        save(self.work, self.res)

    def run(self) -> dict[str, Any]:
        args, work = self.args, self.work
        runs = pick_runs(self.data_dir, args.runs)
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if not modes or any(m not in MODES for m in modes):
            raise SystemExit(f"--modes takes a comma list of {', '.join(MODES)}")
        tasks = {f"HumanEval/{i}" for i in range(args.limit)} if args.limit else None
        for run in runs:
            run["samples"] = str(work / "samples" / f"{run['name']}.jsonl")
            Path(run["samples"]).parent.mkdir(parents=True, exist_ok=True)
            run["n"] = write_samples(run, Path(run["samples"]), tasks)
        dataset = work / "data" / "HumanEvalPlus-v0.1.9.jsonl"
        dataset.parent.mkdir(parents=True, exist_ok=True)
        md5 = write_dataset(self.data_dir, dataset, tasks)
        if tasks is None and md5 != V0_1_9_MD5:
            raise SystemExit(f"HumanEvalPlus-v0.1.9.jsonl has md5 {md5}, not v0.1.9's {V0_1_9_MD5}")
        # the fixed cost's one sample: the strong model's (last run's) first, on a dataset of its problem alone
        with open(runs[-1]["samples"]) as f:
            one = json.loads(f.readline())
        one_samples = work / "samples" / "one.jsonl"
        one_samples.write_text(json.dumps(one) + "\n")
        one_dataset = work / "data" / "HumanEvalPlus-one.jsonl"
        write_dataset(self.data_dir, one_dataset, {one["task_id"]})

        res = self.res
        this = "benchmarks/sandbox_throughput.py"
        res.update(
            machine=machine(),
            runs=runs,
            n_samples=sum(r["n"] for r in runs),
            limit=args.limit,
            workers=self.workers,
            modes=modes,
            repeat=args.repeat,
            one_sample=f"{one['task_id']} of {runs[-1]['name']}",
            wall={m: {r["name"]: {} for r in runs} for m in modes},
            to_results={m: {r["name"]: {} for r in runs} for m in modes},
            fixed={},
            fixed_to_results={},
            skipped={},
            overhead={},
            label=dict(LABEL),
            commands=[f"RA3BENCH_DATA_DIR={self.data_dir} python {this} {shlex.join(sys.argv[1:])}".rstrip()],
        )
        print(f"work dir {work}; {res['n_samples']} samples from {', '.join(r['id'] for r in runs)}", file=sys.stderr)

        # which evaluators can run
        if "evalplus" in self.skip or not (self.venv / "bin" / "python").exists():
            res["skipped"]["evalplus"] = "skipped" if "evalplus" in self.skip else f"no venv at {self.venv}"
        for kind in ("docker", "local"):
            why = "skipped" if kind in self.skip else sandbox_available(kind)
            if why:
                res["skipped"][kind] = why
        if "local" not in res["skipped"]:
            res["label"]["local"] = local_label()
        kinds = [k for k in KINDS if k not in res["skipped"]]

        # expected outputs / ground truth: computed once, timed apart from the runs
        if "evalplus" in kinds:
            print("evalplus ground truth ...", file=sys.stderr)
            digest, cold, warm = evalplus_ground_truth(self.venv, dataset, self.warm_evalplus, work / "gt.log")
            if digest != md5:
                raise SystemExit(f"evalplus sees data hash {digest}, not {md5}")
            res["ground_truth_s"], res["ground_truth_reload_s"] = cold, warm
            evalplus_ground_truth(self.venv, one_dataset, self.warm_evalplus_one, work / "gt-one.log")
        if "docker" in kinds or "local" in kinds:
            print("ra3bench expected outputs ...", file=sys.stderr)
            os.environ.update(RA3BENCH_DATA_DIR=str(self.data_dir), RA3BENCH_CACHE_DIR=str(self.warm_ra3bench))
            res["expected_s"] = cache_expected_outputs(self.workers, tasks)
            if (self.warm_ra3bench / "verdicts.sqlite").exists():
                raise SystemExit("the warm ra3bench cache holds verdicts: it must hold expected outputs only")
        self.save()

        # the runs: one invocation per run, evaluator and mode
        for mode in modes:
            for run in runs:
                for kind in kinds:
                    print(f"{mode}: {run['name']} ({run['n']} samples), {kind} ...", file=sys.stderr)
                    started = time.time()
                    res["wall"][mode][run["name"]][kind] = self.measure(mode, run, kind)
                    result = self.work / mode / run["name"] / kind
                    result /= "samples_eval_results.json" if kind == "evalplus" else "summary.json"
                    if result.exists():
                        res["to_results"][mode][run["name"]][kind] = result.stat().st_mtime - started
                    self.save()

        # fixed cost per invocation: one sample, warm expected outputs / ground truth
        if "fixed" not in self.skip:
            for kind in kinds:
                print(f"fixed cost per invocation, {kind} ...", file=sys.stderr)
                res["fixed"][kind], res["fixed_to_results"][kind] = [], []
                for i in range(args.repeat):
                    wall, to_results = self.fixed_cost(kind, one_samples, one_dataset, i)
                    res["fixed"][kind].append(wall)
                    res["fixed_to_results"][kind].append(to_results)
                self.save()
        if "overhead" not in self.skip:
            for kind in ("docker", "local"):
                if kind in kinds:
                    print(f"per-job overhead {kind} ...", file=sys.stderr)
                    res["overhead"][kind] = per_job_overhead(kind, args.trivial_jobs, 2)
        return res

    def measure(self, mode: str, run: dict[str, Any], kind: str) -> float:
        """One measured invocation in fresh output and cache folders; its wall seconds."""
        ra3_flags, ev_flags, _ = MODES[mode]
        here = self.work / mode / run["name"]
        out = here / kind
        if out.exists():
            shutil.rmtree(out)
        log = self.work / "logs" / f"{mode}--{run['name']}--{kind}.log"
        log.parent.mkdir(exist_ok=True)
        first = run is self.res["runs"][0]
        if kind == "evalplus":
            env = {
                **self.base_env,
                **fresh_cache(here / "evalplus-cache", {"evalplus": self.warm_evalplus / "evalplus"}),
            }
            env["HUMANEVAL_OVERRIDE_PATH"] = str(self.work / "data" / "HumanEvalPlus-v0.1.9.jsonl")
            out.mkdir(parents=True)
            shutil.copy(run["samples"], out / "samples.jsonl")
            cmd = evalplus_command(self.venv, out / "samples.jsonl", self.workers, ev_flags)
            wall = timed(cmd, env, log, out)
            if first:
                shown_env = (
                    "HUMANEVAL_OVERRIDE_PATH=HumanEvalPlus-v0.1.9.jsonl XDG_CACHE_HOME=<fresh, ground truth only>"
                )
                self.res["commands"].append(f"{shown_env} {self.shown(cmd)}")
        else:
            env = {**self.base_env, **fresh_cache(here / f"{kind}-cache", {"ra3bench": self.warm_ra3bench})}
            cmd = ra3bench_command(kind, Path(run["samples"]), out, self.workers, ra3_flags)
            wall = timed(cmd, env, log, REPO)
            if (here / f"{kind}-cache" / "ra3bench" / "verdicts.sqlite").exists():
                print(f"warning: {mode} {run['name']} {kind} wrote a verdict cache despite --no-cache", file=sys.stderr)
            if first:
                shown_env = "XDG_CACHE_HOME=<fresh> RA3BENCH_CACHE_DIR=<fresh, expected outputs only>"
                self.res["commands"].append(f"{shown_env} {self.shown(cmd)}")
        return wall

    def fixed_cost(self, kind: str, samples: Path, dataset: Path, i: int) -> tuple[float, float | None]:
        """Wall seconds of one invocation on one sample, and seconds until its results file."""
        here = self.work / "fixed" / f"{kind}-{i}"
        if here.exists():
            shutil.rmtree(here)
        here.mkdir(parents=True)
        log = self.work / "logs" / f"fixed--{kind}-{i}.log"
        if kind == "evalplus":
            env = {**self.base_env, **fresh_cache(here / "cache", {"evalplus": self.warm_evalplus_one / "evalplus"})}
            env["HUMANEVAL_OVERRIDE_PATH"] = str(dataset)
            shutil.copy(samples, here / "samples.jsonl")
            cmd = evalplus_command(self.venv, here / "samples.jsonl", self.workers, [])
            started = time.time()
            wall = timed(cmd, env, log, here)
            result = here / "samples_eval_results.json"
            shown_env = "HUMANEVAL_OVERRIDE_PATH=<one-problem dataset> XDG_CACHE_HOME=<fresh, its ground truth only>"
        else:
            env = {**self.base_env, **fresh_cache(here / "cache", {"ra3bench": self.warm_ra3bench})}
            cmd = ra3bench_command(kind, samples, here / "out", self.workers, [])
            started = time.time()
            wall = timed(cmd, env, log, REPO)
            result = here / "out" / "summary.json"
            shown_env = "XDG_CACHE_HOME=<fresh> RA3BENCH_CACHE_DIR=<fresh, expected outputs only>"
        if i == 0:
            self.res["commands"].append(f"{shown_env} {self.shown(cmd)}  # fixed cost, x{self.args.repeat}")
        return wall, (result.stat().st_mtime - started if result.exists() else None)

    def shown(self, cmd: list[str]) -> str:
        """A command as a reader would type it: no temp paths, `python` for this interpreter."""
        names = {sys.executable: "python", str(self.venv / "bin" / "python"): ".bench-venv/bin/python"}
        out = []
        for a in cmd:
            a = names.get(a, a)
            if a.startswith(str(self.work) + "/"):
                a = Path(a).name
            out.append(a)
        return shlex.join(out)


# ---- analysis and report


def pass_map(verdicts: dict) -> dict:
    """(task, index) -> {group: passed} of ra3bench verdicts (the shape evalplus_verdicts gives)."""
    return {k: {g: s == "pass" for g, s in v["groups"].items()} for k, v in verdicts.items()}


def compare(a: dict, b: dict) -> tuple[int, int, list[str]]:
    keys = sorted(set(a) | set(b))
    diffs = [f"{k[0]} #{k[1]}: {a.get(k)} vs {b.get(k)}" for k in keys if a.get(k) != b.get(k)]
    return len(keys) - len(diffs), len(keys), diffs


def analyse(res: dict[str, Any], work: Path) -> None:
    """Per run, mode and evaluator: passes, executed samples, test time, judging time; verdict agreement."""
    stats: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    agreement: list[str] = []
    verdicts: dict[tuple[str, str, str], dict] = {}
    for mode, by_run in res["wall"].items():
        stats[mode] = {}
        for run, walls in by_run.items():
            stats[mode][run] = {}
            for kind in walls:
                folder = work / mode / run / kind
                if kind == "evalplus":
                    v = evalplus_verdicts(folder)
                    s = {"pass": sum(x["base"] and x["plus"] for x in v.values()), "executed": len(v)}
                else:
                    r = ra3bench_run(folder)
                    v = pass_map(r["verdicts"])
                    executed = r["execution"].get("executed")
                    s = {
                        "pass": sum(x["status"] == "pass" for x in r["verdicts"].values()),
                        "executed": executed,
                        "reused": r["execution"].get("from_verdict_cache", 0),
                        "test_s": r["test_s"],
                        "judging_s": r["judging_s"],
                    }
                    verdicts[(mode, run, kind + "-status")] = {k: x["status"] for k, x in r["verdicts"].items()}
                verdicts[(mode, run, kind)] = v
                stats[mode][run][kind] = s
    res["stats"] = stats

    def tally(label: str, pairs: list[tuple[dict, dict]]) -> None:
        same = total = 0
        diffs: list[str] = []
        for a, b in pairs:
            s, t, d = compare(a, b)
            same, total, diffs = same + s, total + t, diffs + d
        if total:
            agreement.append(f"{label}: {same}/{total} samples agree.")
            agreement.extend(f"  differs: {d}" for d in diffs[:8])
            if len(diffs) > 8:
                agreement.append(f"  ... and {len(diffs) - 8} more")

    runs = [r["name"] for r in res["runs"]]
    for mode in res["wall"]:

        def pairs(a: str, b: str, m: str = mode) -> list[tuple[dict, dict]]:
            return [
                (verdicts[(m, r, a)], verdicts[(m, r, b)])
                for r in runs
                if (m, r, a) in verdicts and (m, r, b) in verdicts
            ]

        tally(f"{mode}: ra3bench docker vs local, status and per-group status", pairs("docker-status", "local-status"))
        tally(f"{mode}: ra3bench docker vs local, per-group pass", pairs("docker", "local"))
        for kind in ("docker", "local"):
            tally(f"{mode}: ra3bench {kind} vs evalplus, base and plus pass per sample", pairs(kind, "evalplus"))
    if len(res["wall"]) > 1:
        a, b = list(res["wall"])[:2]
        for kind in KINDS:
            both = [
                (verdicts[(a, r, kind)], verdicts[(b, r, kind)])
                for r in runs
                if (a, r, kind) in verdicts and (b, r, kind) in verdicts
            ]
            tally(f"{LABEL[kind]}: {a} vs {b}, per-group pass", both)
    res["agreement"] = agreement


def f1(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def f2(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def mode_table(res: dict[str, Any], mode: str) -> tuple[str, dict[str, Any]]:
    """The table of one mode: per run, each evaluator and the physical floor, then the totals; and its headline."""
    workers, stats, walls = res["workers"], res["stats"][mode], res["wall"][mode]
    until = res.get("to_results", {}).get(mode, {})
    head = [
        "run (recorded base/plus)",
        "evaluator",
        "samples",
        "wall s",
        "samples/s",
        "x evalplus",
        "to results s",
        "judging s",
        "judging / floor",
        "executed",
        "pass",
    ]
    rows: list[list[Any]] = []
    total: dict[str, dict[str, float]] = {}
    speedups: list[float] = []  # docker vs evalplus, per run
    over_floor: list[float] = []  # docker judging / floor, per run
    floor_speedups: list[float] = []  # the physical floor vs evalplus, per run

    def add(title: str, kind: str, n: int, wall: float, ev: float | None, k: dict, to_results: float | None) -> None:
        own_floor = k["test_s"] / workers if k.get("test_s") else None
        executed = k.get("executed", "-")
        if k.get("reused"):
            executed = f"{executed} (+{k['reused']} reused)"
        rows.append(
            [
                title,
                res["label"][kind],
                n,
                f1(wall),
                f1(n / wall),
                f2(ratio(ev, wall)),
                f1(to_results),
                f1(k.get("judging_s")),
                f2(ratio(k.get("judging_s"), own_floor)),
                executed,
                k["pass"],
            ]
        )

    def add_floor(title: str, kind: str | None, n: int, test_s: float, ev: float | None) -> None:
        if kind is None:
            return
        floor = test_s / workers
        label = f"physical floor (sum of test times / {workers}, {kind})"
        rows.append([title, label, n, f2(floor), f1(n / floor) if floor else "-", f2(ratio(ev, floor))] + [""] * 5)

    for run in res["runs"]:
        name, n = run["name"], run["n"]
        w, s, u = walls.get(name, {}), stats.get(name, {}), until.get(name, {})
        ev = w.get("evalplus")
        title = f"{name} ({run['recorded']})"
        for kind in KINDS:
            if kind not in w:
                continue
            k = s[kind]
            add(title, kind, n, w[kind], ev, k, u.get(kind))
            title = ""
            t = total.setdefault(kind, {"wall": 0.0, "judging": 0.0, "test": 0.0, "n": 0, "pass": 0, "until": 0.0})
            for key, value in (
                ("wall", w[kind]),
                ("n", n),
                ("pass", k["pass"]),
                ("judging", k.get("judging_s") or 0.0),
                ("test", k.get("test_s", 0.0)),
                ("until", u.get(kind) or 0.0),
            ):
                t[key] += value
        floor_kind = next((k for k in ("docker", "local") if k in w), None)
        add_floor(title, floor_kind, n, s[floor_kind]["test_s"] if floor_kind else 0.0, ev)
        if ev and "docker" in w:
            speedups.append(ev / w["docker"])
            if s["docker"].get("test_s"):
                floor_speedups.append(ev / (s["docker"]["test_s"] / workers))
            if s["docker"].get("judging_s") is not None and s["docker"]["test_s"]:
                over_floor.append(s["docker"]["judging_s"] / (s["docker"]["test_s"] / workers))
    title = f"**all {len(res['runs'])} runs**"
    ev_total = total.get("evalplus", {}).get("wall")
    for kind in KINDS:
        if kind in total:
            t = total[kind]
            k = {"pass": t["pass"], "test_s": t["test"], "judging_s": t["judging"] if kind != "evalplus" else None}
            add(title, kind, int(t["n"]), t["wall"], ev_total, k, t["until"] or None)
            title = ""
    floor_kind = next((k for k in ("docker", "local") if k in total), None)
    if floor_kind:
        add_floor(title, floor_kind, int(total[floor_kind]["n"]), total[floor_kind]["test"], ev_total)
    docker = total.get("docker", {})
    headline = {
        "speedup": ratio(ev_total, docker.get("wall")),
        "speedup_min": min(speedups) if speedups else None,
        # the floor's own x evalplus on the run where ra3bench gained least: the most any evaluator could get there
        "floor_speedup_at_min": floor_speedups[speedups.index(min(speedups))] if floor_speedups else None,
        "speedup_to_results": ratio(total.get("evalplus", {}).get("until"), docker.get("until")),
        "judging_floor": ratio(docker.get("judging"), docker.get("test", 0.0) / workers),
        "judging_floor_max": max(over_floor) if over_floor else None,
    }
    align = ("left", "left") + ("right",) * (len(head) - 2)
    return tabulate(rows, headers=head, tablefmt="github", disable_numparse=True, colalign=align), headline


def render(res: dict[str, Any]) -> str:
    m, workers = res["machine"], res["workers"]
    runs = ", ".join(f"{r['id']} ({r['n']})" for r in res["runs"])
    limited = f", first {res['limit']} tasks of each" if res.get("limit") else ""
    lines = [
        f"Command: `{res['commands'][0]}`  ",
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m.get('python', '?')}, "
        f"ra3bench at git {m.get('git', '?')}  ",
        f"Date: {m['date']}  ",
        f"Runs (HumanEval+ v0.1.9{limited}): {runs}; {res['n_samples']} samples, one invocation per run, evaluator "
        f"and mode, {workers} workers each, one evaluator at a time.",
        "",
    ]
    for kind, why in res["skipped"].items():
        lines.append(f"Not measured: {res['label'].get(kind, kind)}: {why[:200]}  ")
    headlines = {}
    for mode in res["wall"]:
        ra3, ev, what = MODES[mode]
        table, headlines[mode] = mode_table(res, mode)
        lines += [
            "",
            f"### {'Default' if mode == 'default' else 'No fail-fast'}: {what}",
            "",
            f"ra3bench `evaluate {' '.join([*ra3, '--no-cache'])}` vs evalplus `{' '.join(['evaluate', *ev])}`"
            + (" (fail-fast too: `fast_check = not test_details`)" if mode == "default" else "")
            + ".",
            "",
            table,
        ]
    lines += [
        "",
        "*wall*: the whole invocation, start-up and exit included; *samples/s* and *x evalplus* (evalplus's wall / "
        "this one's, i.e. the ratio of samples/s) come from it. *to results*: from the start to the results file "
        "(evalplus: samples_eval_results.json; ra3bench: summary.json); evalplus's process then waits for its "
        "stall-watch thread (`stucking_checker` in evalplus/evaluate.py, not a daemon, sleeps in 20 s steps), up to "
        "20 s per invocation. *judging*: ra3bench's run folder, from manifest.json (written just before the first "
        "sample is judged) to the last verdict. *physical floor*: the sum over the samples of the time each group "
        "took in the sandbox (`details.<group>.time_s` of verdicts.jsonl: the harness server's clock from reading "
        "the job to its answer: forking the program's process, loading the program, its calls and the encoding of "
        "their values), divided by the workers; what it leaves out is the host's share (sending jobs, reading and "
        "judging answers, scheduling) and workers left idle. Its *x evalplus* is the most any evaluator could gain "
        "with this sandbox. *executed*: samples run, as ra3bench's summary counts "
        "them (a reused verdict would show as +N reused); evalplus's: its verdicts. *pass*: base and plus.",
    ]

    fixed = res.get("fixed") or {}
    if fixed:
        rows = []
        for kind, walls in fixed.items():
            what = (
                "`evaluate` on a one-problem dataset file, its ground truth warm"
                if kind == "evalplus"
                else "`evaluate --no-cache` on one sample, expected outputs warm"
            )
            until = [t for t in res.get("fixed_to_results", {}).get(kind, []) if t is not None]
            rows.append(
                [
                    res["label"][kind],
                    what,
                    len(walls),
                    f2(statistics.median(walls)),
                    f2(min(walls)),
                    f2(max(walls)),
                    f2(statistics.median(until)) if until else "-",
                ]
            )
        head = ["evaluator", "what", "invocations", "median s", "min s", "max s", "median s to results"]
        lines += [
            "",
            f"### Fixed cost per invocation ({res.get('one_sample', 'one sample')}, {workers} workers)",
            "",
            tabulate(rows, headers=head, tablefmt="github"),
        ]
        if "ground_truth_reload_s" in res:
            lines.append(
                "\nevalplus cannot judge fewer than all problems of its dataset file, so its row uses a dataset of "
                "one problem: it leaves out loading the whole data and ground truth, "
                f"{res['ground_truth_reload_s']:.2f} s in-process (warm), which every real evalplus invocation pays."
            )

    targets = []
    d = headlines.get("default", {})
    if d.get("speedup") is not None:
        to_results = d.get("speedup_to_results")
        also = f"; {to_results:.2f}x to the results files (leaves out evalplus's exit wait)" if to_results else ""
        targets.append(
            [
                "default, docker: samples/s >= 2x evalplus's, same runs, same invocation",
                f"{d['speedup']:.2f}x over all runs (lowest per run: {d['speedup_min']:.2f}x, where the physical "
                f"floor itself is {d.get('floor_speedup_at_min') or 0:.2f}x){also}",
                f"all runs: {'yes' if d['speedup'] >= 2 else 'no'}; "
                f"each run: {'yes' if d['speedup_min'] >= 2 else 'no'}",
            ]
        )
    if d.get("judging_floor") is not None:
        targets.append(
            [
                "default, docker: judging wall time <= 1.2x the physical floor",
                f"{d['judging_floor']:.2f}x over all runs (highest per run: {d['judging_floor_max']:.2f}x)",
                f"all runs: {'yes' if d['judging_floor'] <= 1.2 else 'no'}; "
                f"each run: {'yes' if d['judging_floor_max'] <= 1.2 else 'no'}",
            ]
        )
    if "docker" in fixed:
        med = statistics.median(fixed["docker"])
        targets.append(
            [
                "fixed cost per invocation < 1 s (docker, warm cache)",
                f"{med:.2f} s (median)",
                "yes" if med < 1 else "no",
            ]
        )
    if targets:
        lines += ["", "### Targets", "", tabulate(targets, headers=["target", "measured", "met"], tablefmt="github")]
        if res.get("limit"):
            lines.append(f"\n(--limit {res['limit']}: a smoke test; the targets are for the whole runs.)")

    lines += ["", "### Notes", ""]
    if "ground_truth_s" in res:
        lines.append(f"evalplus ground truth (computed once, not in the times above): {res['ground_truth_s']:.1f} s.  ")
    if "expected_s" in res:
        lines.append(
            f"ra3bench expected outputs (reference solutions in the local sandbox, computed once, not in the times "
            f"above): {res['expected_s']:.1f} s.  "
        )
    lines.append(
        "Caches: each measured invocation had a fresh XDG_CACHE_HOME (and RA3BENCH_CACHE_DIR inside it) holding only "
        "a copy of that ground truth / those expected outputs, and a fresh output folder.  "
    )
    for note in res.get("agreement", []):
        lines.append(note + "  ")
    if res.get("agreement"):
        lines.append("Differences with evalplus are explained per task in docs/verdict_agreement.md.  ")
    for mode in res["wall"]:
        for kind in KINDS:
            values = [
                v
                for name, vs in load_samples(res).items()
                if name.startswith(f"{mode}--") and name.endswith(f"--{kind}")
                for v in vs
            ]
            if values:
                lines.append(
                    f"1-minute load average during {mode} {kind}: mean {statistics.mean(values):.2f}, "
                    f"range {min(values):.2f}-{max(values):.2f} ({m['cores']} cores).  "
                )
    lines.append(
        "Cost of a failing group without fail-fast: evalplus bounds each group's process at min(60 s, sum of the "
        "test limits) + 2 s and counts the tests not reached as failed (`untrusted_check` in "
        "evalplus/eval/__init__.py). ra3bench stops a group after 3 timeouts or, once it has failed, after 60 s "
        "(`--max-timeouts`, `--failed-group-budget`). Neither rule changes a group's status."
    )
    if res.get("overhead"):
        over = [[k, o["jobs"], f2(o["ms_per_job"]), f2(o["latency_ms"]), o["fail"]] for k, o in res["overhead"].items()]
        lines += [
            "",
            "Fixed cost per job (`Sandbox.run` of a one-line function, one call, 2 threads):",
            "",
            tabulate(
                over, headers=["sandbox", "jobs", "wall ms / job", "mean latency ms", "failed"], tablefmt="github"
            ),
        ]
    lines += ["", "Commands (first run of each; every run, mode and the fixed cost alike):", "", "```"]
    lines += res["commands"][1:]
    lines += ["```"]
    return "\n".join(lines) + "\n"


def load_samples(res: dict[str, Any]) -> dict[str, list[float]]:
    return res.get("load_samples", {})


def save(work: Path, res: dict[str, Any]) -> None:
    """Partial results survive a crash in a later step (work/result.json)."""
    if LOAD:  # a --report-only render keeps what the measuring process sampled
        res["load_samples"] = {name: [round(v, 2) for v in values] for name, values in LOAD.items() if values}
    (work / "result.json").write_text(json.dumps(res, indent=2, default=str))


def finish(res: dict[str, Any], work: Path, results: str) -> None:
    analyse(res, work)
    report = render(res)
    print(report)
    save(work, res)
    if results:
        write_section(Path(results), HEADING, report)
        print(f"written to {results}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs", default=DEFAULT_RUNS, help="comma list of runs: paths under samples/evalplus/ or their last part"
    )
    parser.add_argument("--modes", default="default,no-fail-fast", help="comma list of: default, no-fail-fast")
    parser.add_argument("--limit", type=int, default=0, help="only HumanEval/0..N-1 of each run (smoke tests)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel jobs (default: cores)")
    parser.add_argument("--repeat", type=int, default=5, help="invocations for the fixed cost (median)")
    parser.add_argument("--skip", default="", help="comma list of: evalplus, docker, local, fixed, overhead")
    parser.add_argument("--venv", type=Path, default=REPO / ".bench-venv", help="venv with evalplus==0.3.1")
    parser.add_argument("--trivial-jobs", type=int, default=2000, help="jobs for the per-job overhead")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temp dir)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="'' to only print")
    parser.add_argument("--report-only", action="store_true", help="only re-render --work's result.json")
    args = parser.parse_args()
    if args.report_only:
        if args.work is None:
            raise SystemExit("--report-only needs --work")
        finish(json.loads((args.work / "result.json").read_text()), args.work, args.results)
        return
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    data_dir = Path(os.environ.get("RA3BENCH_DATA_DIR") or "/work/shared/datasets").resolve()
    work = (args.work or Path(tempfile.mkdtemp(prefix="ra3bench-throughput-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work, data_dir)
    res = bench.run()
    finish(res, work, args.results)


if __name__ == "__main__":
    main()
