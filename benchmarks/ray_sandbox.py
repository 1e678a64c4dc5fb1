"""`--sandbox docker` against `--sandbox ray:docker` on a local Ray cluster: wall time, jobs/s, the Ray path's cost.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/ray_sandbox.py
    python benchmarks/ray_sandbox.py --runs llama3-exp/8b-instruct-base --no-write     # one run

The same real evalplus sample runs (``$RA3BENCH_DATA_DIR/samples``, as benchmarks/sandbox_throughput.py
picks them) are judged by ``ra3bench evaluate`` twice per workload, one after the other:

* ``docker``: one pool of ``--workers`` containers on this machine;
* ``ray``: ``--sandbox ray:docker`` on a Ray cluster of ``--nodes`` nodes (``ray.cluster_utils.Cluster``,
  all on this machine, one CPU each), ``--workers / --nodes`` containers per node: the same number
  of workers in all, so the difference is what the Ray path costs.

Workloads: a whole run (every sample of HumanEval+, fail-fast as by default), and an RLVR step's
batch (the first 32 samples of the run). Verdicts must be identical between the two. The driver's
own cost per job (its CPU seconds over the jobs, from the ray run's process accounting) gives the
node count at which one driver saturates: ``node jobs/s x nodes = 1 / driver cost per job``.

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


def warm_steps(samples: Path, workers: int, per_node: int, steps: int = 3) -> list[str]:
    """An RLVR run's view: one sandbox kept warm for the run, a batch of RLVR_BATCH samples judged per step
    (``Session.judge``, the reward's call, verdict cache off), the median step over ``steps``."""
    import statistics

    from ra3bench import EvalSpec, Session
    from ra3bench.sandbox import make_sandbox

    lines = [json.loads(line) for line in samples.read_text().splitlines()][: RLVR_BATCH * steps]
    out = {}
    for kind, count in (("docker", workers), ("ray:docker", per_node)):
        with make_sandbox(kind, count) as sandbox:
            session = Session(EvalSpec(suite="humaneval+", suite_version="v0.1.9", cache=False), sandbox=sandbox)
            times = []
            for step in range(steps):
                batch = lines[step * RLVR_BATCH : (step + 1) * RLVR_BATCH]
                suite = session.suite
                programs = [suite.program_from_sample(session.problem(s["task_id"]), s) for s in batch]
                started = time.perf_counter()
                session.judge([s["task_id"] for s in batch], programs)
                times.append(time.perf_counter() - started)
            out[kind] = statistics.median(times)
            session.close()
    extra = out["ray:docker"] / out["docker"] - 1
    return [
        f"A warm sandbox, as an RLVR run keeps one: {RLVR_BATCH} samples judged per step (`Session.judge`, the "
        f"reward's call), median of {steps} steps: docker {out['docker']:.2f} s, ray {out['ray:docker']:.2f} s "
        f"({100 * extra:+.0f} %).",
        "",
    ]


def saturation(measured: list[tuple[int, dict, dict]], workers: int) -> list[str]:
    """Where one driver stops scaling: its CPU per sample beyond start-up (the whole run's CPU less the
    small batch's, over the samples between them) against what one worker judges per second."""
    if len(measured) < 2:
        return []
    (n_big, docker_big, ray_big), (n_small, _, ray_small) = measured[0], measured[1]
    marginal = (ray_big["cpu_s"] - ray_small["cpu_s"]) / max(1, n_big - n_small)
    per_worker = n_big / docker_big["wall_s"] / workers
    driver_rate = 1.0 / marginal if marginal > 0 else float("inf")
    return [
        f"Driver cost per sample beyond start-up (judging, results, dispatch): {1000 * marginal:.1f} ms of CPU, so "
        f"one driver keeps up with about {driver_rate:.0f} samples/s. One worker judges {per_worker:.1f} samples/s "
        f"here (docker, this run), so one driver saturates at about {driver_rate / per_worker:.0f} workers in all "
        f"(e.g. {driver_rate / per_worker / 32:.1f} nodes of 32 workers) on this workload.",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="workers in all (ray: divided among the nodes)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RA3BENCH_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    import ray
    from ray.cluster_utils import Cluster

    data_dir = Path(os.environ["RA3BENCH_DATA_DIR"])
    rows, agree, measured = [], [], []
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    per_node = max(1, args.workers // args.nodes)
    warm: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ra3bench-ray-bench-") as tmp:
            work = Path(tmp)
            for run in pick_runs(data_dir, args.runs):
                whole = work / f"{run['name']}.jsonl"
                n = write_samples(run, whole, None)
                batch = work / f"{run['name']}-batch.jsonl"
                batch.write_text("".join(whole.read_text().splitlines(keepends=True)[:RLVR_BATCH]))
                workloads = (("whole run", whole, n), (f"RLVR batch ({RLVR_BATCH})", batch, RLVR_BATCH))
                for workload, samples, count in workloads:
                    docker = judge("docker", samples, work / f"d-{run['name']}-{count}", args.workers, "")
                    on_ray = judge("ray:docker", samples, work / f"r-{run['name']}-{count}", per_node, cluster.address)
                    same = docker["verdicts"] == on_ray["verdicts"]
                    measured.append((count, docker, on_ray))
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
                            f"{count / docker['wall_s']:.1f}",
                            f"{count / on_ray['wall_s']:.1f}",
                            f"{1000 * extra / count:.1f}",
                            f"{1000 * on_ray['cpu_s'] / count:.1f}",
                            "yes" if same else "NO",
                        ]
                    )
                    print(rows[-1], file=sys.stderr, flush=True)
                if not warm:
                    os.environ["RAY_ADDRESS"] = cluster.address
                    warm = warm_steps(whole, args.workers, per_node)
                    print(warm[0], file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    headers = ["run", "workload", "samples", "docker s", "ray s", "ray extra", "docker samples/s", "ray samples/s"]
    headers += ["extra ms/sample", "driver CPU ms/sample", "verdicts identical"]
    body = "\n".join(
        [
            f"Command: `python benchmarks/ray_sandbox.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine()}; Ray {ray.__version__}; a {args.nodes}-node local cluster "
            f"(ray.cluster_utils.Cluster, 1 CPU each), {per_node} worker(s) per node; docker: {args.workers} workers  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "",
            "`ra3bench evaluate --suite humaneval+ --suite-version v0.1.9 --samples F --no-cache` with "
            "`--sandbox docker` and with `--sandbox ray:docker --ray-address <the cluster>`, one after the other; "
            "wall time from start to exit (start-up included). Driver CPU: the ray run's ra3bench process, "
            "user + system, per job.",
            "",
            tabulate(rows, headers=headers, tablefmt="github"),
            "",
            *warm,
            *saturation(measured, args.workers),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", HEADING, body)
    return 0 if all(agree) else 1


if __name__ == "__main__":
    raise SystemExit(main())
