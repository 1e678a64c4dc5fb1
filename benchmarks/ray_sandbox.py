"""`--sandbox docker` against `--sandbox ray:docker` on a local Ray cluster: wall time, jobs/s, the Ray path's cost.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/ray_sandbox.py
    python benchmarks/ray_sandbox.py --runs llama3-exp/8b-instruct-base --no-write     # one run

The same real evalplus sample run (``$RA3BENCH_DATA_DIR/samples``, as benchmarks/sandbox_throughput.py
picks it) is judged by both, with the same number of workers in all, so the difference is what the
Ray path costs:

* ``docker``: one pool of ``--workers`` containers on this machine;
* ``ray``: ``--sandbox ray:docker`` on a Ray cluster of ``--nodes`` nodes (``ray.cluster_utils.Cluster``,
  all on this machine, one CPU each), ``--workers / --nodes`` containers per node.

Workloads: a whole run (every sample of HumanEval+), an RLVR step's batch (its first 32 samples), and
several runs' samples in one batch (``--pooled-runs``: 4 samples a task, a pass@k run's size).
Measured two ways: **warm** (both sandboxes open, each batch judged by each in turn, medians; with
fail-fast, the default, and without, as pass-fraction rewards run), and **start to exit** (one
``ra3bench evaluate`` each, start-up included). Verdicts must be identical. The driver's CPU per
sample (warm) gives the worker count at which one driver saturates.

Results go to the "Ray sandbox" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import machine, write_section
from sandbox_throughput import pick_runs, ra3bench_command, write_samples
from tabulate import tabulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADING = "## Ray sandbox (`--sandbox ray:docker` on a local cluster vs `--sandbox docker`)"
DEFAULT_RUNS = "llama3-exp/8b-instruct-base"
# several samples a task, as a pass@k evaluation has: these runs' samples judged in one invocation
POOLED_RUNS = ",".join(
    f"llama3-exp/{name}"
    for name in ("8b-instruct-base", "8b-instruct-repeatlittle", "8b-instruct-repeatlots", "70B-instruct-base")
)
RLVR_BATCH = 32


def judge(kind: str, samples: Path, out: Path, workers: int, address: str) -> dict:
    """One ``ra3bench evaluate``: wall seconds, its CPU seconds, and its verdicts."""
    command = ra3bench_command(kind, samples, out, workers, [])
    if address:
        command += ["--ray-address", address]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed: {done.stderr.strip()[-800:]}")
    verdicts = {}
    for line in (out / "verdicts.jsonl").read_text().splitlines():
        v = json.loads(line)
        verdicts[(v["task_id"], v["sample_index"])] = v["status"]
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "kind": kind,
        "wall_s": wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "jobs": len(verdicts),
        "verdicts": verdicts,
        "nodes": manifest.get("sandbox", {}).get("nodes", []),
    }


def warm_batches(
    samples: Path, workers: int, per_node: int, reps: int = 3, pooled: tuple[Path, str] | None = None
) -> tuple[list[list], dict]:
    """What an RLVR run or a long evaluation sees: both sandboxes open and warm, the same batch judged by each in
    turn (``Session.judge``, the reward's call, verdict cache off), ``reps`` times; medians. With fail-fast (the
    default) and without (pass-fraction rewards run every test). Also the driver's CPU per sample on the ray side."""
    import statistics

    from ra3bench import EvalSpec, Session
    from ra3bench.sandbox import make_sandbox

    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    many = [json.loads(line) for line in pooled[0].read_text().splitlines()] if pooled else []
    sandboxes = {"docker": make_sandbox("docker", workers), "ray": make_sandbox("ray:docker", per_node)}
    rows, driver = [], {}
    try:
        for fail_fast in (True, False):
            spec = EvalSpec(suite="humaneval+", suite_version="v0.1.9", cache=False, fail_fast=fail_fast)
            sessions = {kind: Session(spec, sandbox=sandbox) for kind, sandbox in sandboxes.items()}
            suite = sessions["docker"].suite
            workloads = [(lines, "whole run"), (lines[:RLVR_BATCH], f"RLVR batch ({RLVR_BATCH})")]
            if pooled and fail_fast:  # several samples a task, judged in one call (a pass@k run's size)
                workloads.append((many, pooled[1]))
            for batch, workload in workloads:
                count = len(batch)
                ids = [s["task_id"] for s in batch]
                programs = [suite.program_from_sample(sessions["docker"].problem(s["task_id"]), s) for s in batch]
                times: dict[str, list[float]] = {"docker": [], "ray": []}
                verdicts = {}
                for _ in range(reps):
                    for kind, session in sessions.items():
                        cpu = resource.getrusage(resource.RUSAGE_SELF)
                        started = time.perf_counter()
                        verdicts[kind] = [v.status for v in session.judge(ids, programs)]
                        times[kind].append(time.perf_counter() - started)
                        after = resource.getrusage(resource.RUSAGE_SELF)
                        if kind == "ray" and fail_fast and workload == "whole run":
                            used = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
                            driver.setdefault("cpu_per_sample", []).append(used / count)
                            driver["samples_per_s_per_worker"] = count / times["docker"][-1] / workers
                docker, ray_s = statistics.median(times["docker"]), statistics.median(times["ray"])
                rows.append(
                    [
                        "fail-fast" if fail_fast else "every test",
                        workload,
                        count,
                        f"{docker:.2f}",
                        f"{ray_s:.2f}",
                        f"{100 * (ray_s / docker - 1):+.0f} %",
                        f"{count / ray_s:.1f}",
                        "yes" if verdicts["docker"] == verdicts["ray"] else "NO",
                    ]
                )
                print(rows[-1], file=sys.stderr, flush=True)
            for session in sessions.values():
                session.close()
    finally:
        for sandbox in sandboxes.values():
            sandbox.close()
    return rows, driver


def saturation(driver: dict) -> list[str]:
    """Where one driver stops scaling: its CPU per sample judged (warm, whole run, fail-fast: judging, results,
    dispatch, the streamed answers' checks) against what one worker judges per second."""
    if not driver.get("cpu_per_sample"):
        return []
    import statistics

    per_sample = statistics.median(driver["cpu_per_sample"])
    rate = 1.0 / per_sample
    per_worker = driver["samples_per_s_per_worker"]
    return [
        f"Driver CPU per sample (warm, whole run, fail-fast; judging, results, dispatch and the streamed answers' "
        f"checks): {1000 * per_sample:.1f} ms, so one driver keeps up with about {rate:.0f} samples/s. One docker "
        f"worker judges {per_worker:.1f} samples/s here, so one driver saturates at about {rate / per_worker:.0f} "
        f"workers in all (e.g. {rate / per_worker / 32:.1f} nodes of 32 workers) on this workload.",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="workers in all (ray: divided among the nodes)")
    parser.add_argument("--reps", type=int, default=3, help="warm batches: times each is judged by each sandbox")
    parser.add_argument(
        "--pooled-runs",
        default=POOLED_RUNS,
        help="warm (fail-fast) and start to exit: these runs' samples in one batch ('' to skip)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RA3BENCH_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    import ray
    from ray.cluster_utils import Cluster

    data_dir = Path(os.environ["RA3BENCH_DATA_DIR"])
    rows, agree = [], []
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    per_node = max(1, args.workers // args.nodes)
    warm_rows: list[list] = []
    driver: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ra3bench-ray-bench-") as tmp:
            work = Path(tmp)
            pooled_runs = pick_runs(data_dir, args.pooled_runs) if args.pooled_runs else []
            pooled, pooled_n = work / "pooled.jsonl", 0
            with pooled.open("w") as out:
                for other in pooled_runs:
                    part = work / f"part-{other['name']}.jsonl"
                    pooled_n += write_samples(other, part, None)
                    out.write(part.read_text())
            pooled_label = f"{len(pooled_runs)} runs at once"
            for index, run in enumerate(pick_runs(data_dir, args.runs)):
                whole = work / f"{run['name']}.jsonl"
                n = write_samples(run, whole, None)
                batch = work / f"{run['name']}-batch.jsonl"
                batch.write_text("".join(whole.read_text().splitlines(keepends=True)[:RLVR_BATCH]))
                if not warm_rows:
                    os.environ["RAY_ADDRESS"] = cluster.address
                    many = (pooled, pooled_label) if pooled_n else None
                    warm_rows, driver = warm_batches(whole, args.workers, per_node, args.reps, many)
                    agree += [row[-1] == "yes" for row in warm_rows]
                workloads = [("whole run", whole, n), (f"RLVR batch ({RLVR_BATCH})", batch, RLVR_BATCH)]
                if pooled_n and index == 0:
                    workloads.append((pooled_label, pooled, pooled_n))
                for workload, samples, count in workloads:
                    docker = judge("docker", samples, work / f"d-{run['name']}-{count}", args.workers, "")
                    on_ray = judge("ray:docker", samples, work / f"r-{run['name']}-{count}", per_node, cluster.address)
                    same = docker["verdicts"] == on_ray["verdicts"]
                    agree.append(same)
                    extra = on_ray["wall_s"] - docker["wall_s"]
                    rows.append(
                        [
                            run["name"],
                            workload,
                            count,
                            f"{docker['wall_s']:.1f}",
                            f"{on_ray['wall_s']:.1f}",
                            f"{100 * extra / docker['wall_s']:+.0f} %",
                            f"{1000 * extra / count:.1f}",
                            "yes" if same else "NO",
                        ]
                    )
                    print(rows[-1], file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    warm_headers = ["mode", "workload", "samples", "docker s", "ray s", "ray extra", "ray samples/s"]
    warm_headers += ["verdicts identical"]
    headers = ["run", "workload", "samples", "docker s", "ray s", "ray extra", "extra ms/sample", "verdicts identical"]
    body = "\n".join(
        [
            f"Command: `python benchmarks/ray_sandbox.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine()}; Ray {ray.__version__}; a {args.nodes}-node local cluster "
            f"(ray.cluster_utils.Cluster, 1 CPU each), {per_node} worker(s) per node; docker: {args.workers} workers  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "",
            f"**Warm** (what an RLVR run and a long evaluation see): both sandboxes open, the same batch of "
            f"`{DEFAULT_RUNS}`'s HumanEval+ samples judged by each in turn (`Session.judge`, the reward's call, "
            f"verdict cache off), median of {args.reps}:",
            "",
            tabulate(warm_rows, headers=warm_headers, tablefmt="github"),
            "",
            "**Start to exit**: `ra3bench evaluate --suite humaneval+ --suite-version v0.1.9 --samples F --no-cache` "
            "with `--sandbox docker` and with `--sandbox ray:docker --ray-address <the cluster>`, one after the other "
            "(start-up included: on the ray side, a Ray worker process and a pool started on every node, and the "
            f'speed probes). "{len(args.pooled_runs.split(",")) if args.pooled_runs else 0} runs at once": the '
            f"samples of {args.pooled_runs or 'no runs'} in one invocation, several a task as a pass@k run has.",
            "",
            tabulate(rows, headers=headers, tablefmt="github"),
            "",
            *saturation(driver),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", HEADING, body)
    return 0 if all(agree) else 1


if __name__ == "__main__":
    raise SystemExit(main())
