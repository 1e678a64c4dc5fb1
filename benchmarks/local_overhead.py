"""Overhead of the local sandbox: trivial jobs per second (fork, rlimits, cleanup, round trip).

    python benchmarks/local_overhead.py                   # auto: bubblewrap if it works
    python benchmarks/local_overhead.py --no-bwrap --python /usr/bin/python3 --jobs 2000

A trivial job loads a one-line function and makes one call; what it measures is the fixed
cost per job, which bounds how fast many small tests (HumanEval, MBPP) can be judged.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from proc_cpu import tree_cpu_s

from ra3bench.sandbox.base import CallStatus, Job
from ra3bench.sandbox.local import LocalSandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    parser.add_argument("--no-bwrap", action="store_true", help="run the servers without bubblewrap")
    parser.add_argument("--python", default=None, help="interpreter for the servers (default: this one)")
    parser.add_argument("--calls", type=int, default=1, help="calls per job")
    args = parser.parse_args()

    sandbox = LocalSandbox(
        workers=args.workers,
        use_bwrap=False if args.no_bwrap else None,
        python=args.python,
        max_jobs_per_worker=1 << 30,  # no replacement mid-run: its CPU would escape the count
    )
    job = Job(
        program="def f(x):\n    return x + 1\n",
        entry_point="f",
        calls=[[i] for i in range(args.calls)],
        time_limits_s=[1.0] * args.calls,
    )
    try:
        for _ in sandbox.run_many([job] * (4 * sandbox.workers)):  # start and warm every worker
            pass
        workers_before = tree_cpu_s(sandbox.worker_pids())
        host_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        bad = sum(
            1
            for _, result in sandbox.run_many([job] * args.jobs)
            if any(c.status is not CallStatus.OK for c in result.calls) or result.sandbox_error
        )
        elapsed = time.perf_counter() - start
        host_after = resource.getrusage(resource.RUSAGE_SELF)
        workers_cpu = tree_cpu_s(sandbox.worker_pids()) - workers_before
    finally:
        sandbox.close()
    host_cpu = host_after.ru_utime + host_after.ru_stime - host_before.ru_utime - host_before.ru_stime
    info = sandbox.describe()
    print(
        f"{args.jobs / elapsed:.0f} jobs/s ({args.jobs} jobs x {args.calls} call(s), {elapsed:.2f} s, "
        f"{info['workers']} workers on {os.cpu_count()} cores, bwrap={info['bwrap']}, uid={info['uid']}, "
        f"python {info['python']}); failed: {bad}"
    )
    per_job = (host_cpu + workers_cpu) / args.jobs
    print(
        f"CPU per job: {1000 * per_job:.2f} ms (host {1000 * host_cpu / args.jobs:.2f}, "
        f"workers and jobs {1000 * workers_cpu / args.jobs:.2f}): CPU-bound at ~{(os.cpu_count() or 1) / per_job:.0f} "
        "jobs/s on this machine when nothing else runs"
    )


if __name__ == "__main__":
    main()
