"""RA3's reward horizons on real code: how much of an act decision's advantage comes from other decisions.

    RA3BENCH_DATA_DIR=../shared/datasets python benchmarks/ra3_horizons.py --out docs/experiments/ra3_known_answer

Loads the model and the MBPP training split exactly as ``ra3bench train --trainer ra3`` does, samples
one E-step step's rollouts (q = the model, as every E-step starts) and scores them with pi once, then
computes every ``reward_horizon``'s rewards and group advantages from the same rollouts and scores
(``ra3bench_ra3.horizon_measure``). Writes ``horizons_<model>_bias<b>.json``. The default think_bias is
the shipped config's (0): the think rate of a real run's start; ``--think-bias`` raises it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--snippets", type=int, default=32, help="the first N MBPP training snippets with a boundary")
    parser.add_argument("--think-bias", type=float, default=0.0)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from ra3bench_ra3 import RA3Config
    from ra3bench_ra3.horizon_measure import measure_horizons
    from ra3bench_ra3.rollout import Snippet

    from ra3bench.training.context import load_training_model, seed_everything
    from ra3bench.training.data import load_examples
    from ra3bench.training.runner import load_train_config

    _, config = load_train_config("ra3", None, [f"model.name={args.model}", "data.source=mbpp-train"])
    seed_everything(0)
    model, tokenizer, _ = load_training_model(config.model, 0)
    model.eval()
    examples = load_examples(config.data, None)
    snippets = [s for s in (Snippet(e.prompt, e.code, i) for i, e in enumerate(examples)) if s.bounds]
    cfg = RA3Config(group_size=args.group_size, think_bias=args.think_bias, estep_micro_batch=4)
    torch.set_num_threads(2)
    started = time.perf_counter()
    result = measure_horizons(model, tokenizer, snippets[: args.snippets], cfg)
    result |= {
        "model": args.model, "snippets": args.snippets, "think_bias": args.think_bias, "group_size": cfg.group_size,
        "reward_norm": cfg.reward_norm, "seconds": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/ra3_horizons.py " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                   for k, v in vars(args).items()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"horizons_{args.model}_bias{args.think_bias:g}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
