"""A real model end to end: `ra3bench run` with a preset, timed, and its scores recorded.

    python benchmarks/model_run.py                              # smollm2-135m, all of HumanEval+, greedy
    python benchmarks/model_run.py --suite mbpp+ --limit 50 --extra="-n 4 --temperature 0.8"

Runs the real CLI as a subprocess into a fresh run folder (``--out WORK/<suite>-<model>``, the
verdict cache off, so nothing is reused), measures its wall time, and writes the command, machine,
date, pass@k with intervals, the status breakdown, generation figures (tokens, finish reasons,
how the code was extracted) and the manifest's versions to the ``## Model run: MODEL on SUITE``
section of benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from results_md import write_section

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="humaneval+")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--extra", default="", help="more `ra3bench run` flags, one string")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ra3bench-model-run"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"), help="'' to print only")
    args = parser.parse_args()

    limit = f"-limit{args.limit}" if args.limit else ""
    out = args.work / f"{args.suite.replace('+', 'plus')}-{args.model.replace('/', '_')}{limit}"
    shutil.rmtree(out, ignore_errors=True)
    command = ["ra3bench", "run", "--suite", args.suite, "--model", args.model, "--no-cache", "--out", str(out)]
    if args.limit:
        command += ["--limit", str(args.limit)]
    command += shlex.split(args.extra)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ra3bench", *command[1:]], text=True, capture_output=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        return done.returncode
    print(done.stdout)
    body = report(out, command, wall)
    print(body)
    if args.results:
        heading = f"## Model run: {args.model} on {args.suite}" + (f" (--limit {args.limit})" if args.limit else "")
        write_section(Path(args.results), heading, body)
    return 0


def report(out: Path, command: list[str], wall: float) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    host = manifest["host"]
    tokens = sum(s.get("n_tokens", 0) for s in samples)
    rows = [
        f"| {group} | pass@{k} | {100 * v:.1f} | [{100 * lo:.1f}, {100 * hi:.1f}] |"
        for group, values in summary["pass_at_k"].items()
        for k, v in values.items()
        for lo, hi in [summary["pass_at_k_ci95"][group][k]]
    ]
    model = manifest["model"]
    lines = [
        f"Command: `{' '.join(command)}` (via `python benchmarks/model_run.py`)",
        f"Machine: {host['cores']} cores, {host['cpu']}, no GPU; date {datetime.now(timezone.utc):%Y-%m-%d}; "
        f"load average at the end {os.getloadavg()[0]:.2f}.",
        f"Model: {model.get('model')} ({model.get('backend')}, prompt style {model.get('prompt_style')}, "
        f"batch {model.get('batch_size', '-')}); generation {json.dumps(model.get('generation'))}; "
        f"sandbox {manifest['sandbox'].get('kind')}; ra3bench {manifest['code'].get('git_sha', '')[:10]}, "
        f"{json.dumps(model.get('versions', {}))}.",
        f"Suite: {summary['suite']} {summary['suite_version']}, {summary['n_problems']} problems, "
        f"{summary['n_samples']} samples.",
        "",
        "| group | metric | % | 95% CI |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        f"- Wall time, generation and judging together (they overlap): **{wall:.0f} s** "
        f"({wall / 60:.1f} min); {tokens} tokens generated, {tokens / wall:.1f} tokens/s over the whole run.",
        f"- Status: {_counts(summary['status_counts'])}.",
        f"- Finish: {_counts(Counter(s.get('finish_reason', '?') for s in samples))}; "
        f"extraction: {_counts(Counter(s.get('extraction', '?') for s in samples))}.",
        f"- Run folder (not kept in git): `{out}`.",
    ]
    return "\n".join(lines) + "\n"


def _counts(counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(dict(counter).items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    sys.exit(main())
