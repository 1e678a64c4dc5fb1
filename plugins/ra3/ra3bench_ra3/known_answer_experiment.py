"""The known-answer experiment (docs/experiments/ra3_known_answer.md), end to end on CPU in minutes.

    python -m ra3bench_ra3.known_answer_experiment --out docs/experiments/ra3_known_answer

For each prior seed: pretrain the prior (``known_answer.pretrain_prior``), measure what a plan is
worth to it (``plan_gain``), then

1. **c sweep**: the real E-step at each cost c; think rate at the body line and elsewhere, plan
   accuracy, every few steps, on held-out snippets;
2. **horizons**: the same at one c under each ``reward_horizon``, with the act cross-talk;
3. **M-step against NTP**: the real trainer (E-step, annotate, M-step through ``ntp_steps``) and
   ``ntp_steps`` alone on the raw task corpus, the same M-step settings and steps; held-out code
   log-likelihood per token, each model with its own latents (it writes its comments, it is scored
   on the code) and without any.

Everything lands in ``--out``: ``results.jsonl`` (one row per measurement), ``manifest.json``
(versions, commit, settings), and the plots.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.estep import score
from ra3bench_ra3.known_answer import (
    PriorCorpus,
    marginal_lp,
    measure,
    plan_gain,
    pretrain_prior,
    run_estep,
    task_split,
)
from ra3bench_ra3.rollout import Policy, Rollout, Snippet, sample

COSTS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]
HORIZONS = ["until_next_think", "until_group_think", "next_line", "return_to_go"]
MSTEP_STEPS = [5, 10, 20, 40]
LEARN = dict(estep_lr=1e-3, estep_steps=40, estep_batch_size=8, group_size=4, max_latent_tokens=6)
MSTEP = dict(mstep_lr=1e-3, batch_size=8, warmup_steps=2, schedule="constant")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for results.jsonl, manifest.json, plots")
    parser.add_argument("--seeds", default="0,1,2", help="prior seeds (each: its own prior, E-steps, M-steps)")
    parser.add_argument("--quick", action="store_true", help="one seed, fewer costs and steps (a smoke run)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    costs, horizons, msteps = COSTS, HORIZONS, MSTEP_STEPS
    if args.quick:
        seeds, costs, horizons, msteps = seeds[:1], [0.05, 0.3], HORIZONS[:2], [5]
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    started, commit = time.perf_counter(), _commit()  # the code that runs: the commit at the start
    out = (args.out / "results.jsonl").open("w")

    def emit(row: dict) -> None:
        rows.append(row)
        out.write(json.dumps(row) + "\n")
        out.flush()

    train, held = task_split(0)
    for seed in seeds:
        t0 = time.perf_counter()
        prior, tokenizer = pretrain_prior(seed=seed)
        gain = plan_gain(prior, tokenizer, held, RA3Config())
        start = _measured(measure(prior, tokenizer, held, RA3Config()))
        emit({"part": "prior", "seed": seed, "gain_right": gain.right, "gain_wrong": gain.wrong,
              "pretrain_s": time.perf_counter() - t0, **start})  # fmt: skip
        print(
            f"seed {seed}: prior in {time.perf_counter() - t0:.0f} s; a right plan gains {gain.right:.3f}",
            flush=True,
        )
        for c in costs:
            cfg = RA3Config(penalty_c=c, **LEARN)
            for point in _estep_points(prior, tokenizer, cfg, train, held, seed):
                emit({"part": "c_sweep", "seed": seed, "c": c, "gain_right": gain.right, **point})
            print(f"  c={c}: think rate at the body line {rows[-1]['think_informative']:.2f}", flush=True)
        for horizon in horizons:
            cfg = RA3Config(penalty_c=0.05, reward_horizon=horizon, **LEARN)  # type: ignore[arg-type]
            for point in _estep_points(prior, tokenizer, cfg, train, held, seed):
                emit({"part": "horizon", "seed": seed, "horizon": horizon, **point})
        for steps in msteps:
            for method in ("ra3", "ntp"):
                emit({"part": "mstep", "seed": seed, "method": method, "steps": steps,
                      **_mstep(method, prior, tokenizer, train, held, steps, seed)})  # fmt: skip
            print(f"  M-step {steps} steps: " + ", ".join(
                f"{r['method']} {r['own_latents_lp']:.3f}" for r in rows[-2:]), flush=True)  # fmt: skip
    out.close()
    manifest = {
        "command": " ".join(["python -m ra3bench_ra3.known_answer_experiment", *(argv or sys.argv[1:])]),
        "seeds": seeds, "costs": costs, "horizons": horizons, "mstep_steps": msteps,
        "estep": LEARN, "mstep": MSTEP, "prior_corpus": asdict(PriorCorpus()),
        "train_snippets": len(train), "held_out_snippets": len(held),
        "versions": _versions(), "commit": commit, "machine": f"{platform.processor() or platform.machine()}",
        "torch_threads": 1, "wall_time_s": time.perf_counter() - started,
    }  # fmt: skip
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    from ra3bench_ra3.known_answer_plots import plot_all

    for path in plot_all(rows, args.out):
        print(f"wrote {path}")
    return 0


def _estep_points(prior: Any, tokenizer: Any, cfg: RA3Config, train: list, held: list, seed: int) -> list[dict]:
    crosstalk: list[float] = []
    _, points = run_estep(
        prior,
        tokenizer,
        cfg,
        train,
        held,
        seed=seed,
        every=5,
        on_line=lambda line: crosstalk.append(line["estep_act_crosstalk"]),
    )
    return [{**p, "act_crosstalk": sum(crosstalk) / len(crosstalk) if crosstalk else 0.0} for p in points]


def _measured(m: Any) -> dict:
    return {k: v for k, v in vars(m).items() if k != "comments"}


def _mstep(method: str, prior: Any, tokenizer: Any, train: list, held: list, steps: int, seed: int) -> dict:
    """Train a copy of the prior with ``method`` for ``steps`` M-step steps; its held-out code likelihood."""
    from ra3bench_ntp import NTPConfig, ntp_steps

    from ra3bench_ra3.trainer import RA3Trainer

    model = copy.deepcopy(prior)
    cfg = RA3Config(penalty_c=0.05, steps=steps, probe_snippets=0, **LEARN, **MSTEP)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = _context(Path(tmp), model, tokenizer, train, cfg, seed)
        try:
            if method == "ra3":
                RA3Trainer(cfg).train(ctx)
            else:
                examples = [_example(s, i) for i, s in enumerate(train)]
                ntp = NTPConfig(steps, cfg.batch_size, cfg.grad_accum, cfg.mstep_lr, cfg.warmup_steps, cfg.schedule)
                ntp_steps(ctx, examples, ntp, seed=seed)
        finally:
            ctx.close()
    model.eval()
    return {"train_s": time.perf_counter() - t0, **held_out_likelihood(model, tokenizer, held, cfg)}


def held_out_likelihood(model: Any, tokenizer: Any, held: list[Snippet], cfg: RA3Config) -> dict:
    """Mean log-likelihood per code token of ``held``: with the model's own latents (it is q and pi: it
    writes its comments, sampled, a fixed seed; only code tokens are scored) and without any."""
    policy = Policy.build(tokenizer, cfg, len(tokenizer))
    own = [Rollout(s) for s in held]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        sample(model, own, policy)
    bare = [Rollout(s) for s in held]
    _, scored = score(model, own + bare, policy)
    mine, none = scored[: len(own)], scored[len(own) :]
    measured = measure(model, tokenizer, held, cfg)
    return {
        "marginal_lp": marginal_lp(model, tokenizer, held),
        "own_latents_lp": sum(s.lp for s in mine) / sum(s.n for s in mine),
        "no_latents_lp": sum(s.lp for s in none) / sum(s.n for s in none),
        **_measured(measured),
    }


def _example(snippet: Snippet, i: int) -> Any:
    from ra3bench.training import TrainingExample

    return TrainingExample(snippet.prompt, snippet.code, f"known-answer/{i}")


def _context(folder: Path, model: Any, tokenizer: Any, train: list, cfg: RA3Config, seed: int) -> Any:
    """A training context around ``model``, configured as ``ra3bench train --trainer ra3`` would be."""
    from ra3bench.training import TrainContext, load_train_config

    knobs = {k: v for k, v in asdict(cfg).items() if not isinstance(v, (list, dict))}
    overrides = ["data.max_length=128", f"run.out={folder}", f"run.seed={seed}"]
    overrides += [f"trainer.{k}={v}" for k, v in knobs.items()]
    _, config = load_train_config("ra3", None, overrides)
    return TrainContext(
        config=config, trainer_name="ra3", run_dir=folder, model=model, tokenizer=tokenizer,
        examples=[_example(s, i) for i, s in enumerate(train)], schedule=NoEvaluation(cfg.steps), manifest={},
    )  # fmt: skip


class NoEvaluation:
    """An evaluation schedule that is never due: for runs that measure likelihoods, not pass@k (this
    experiment, the RA3 tests)."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = total_steps

    def due(self, step: int) -> bool:
        return False

    def close(self) -> None:
        pass


def _versions() -> dict[str, str]:
    import transformers

    import ra3bench

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "ra3bench": getattr(ra3bench, "__version__", "?")}  # fmt: skip


def _commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    raise SystemExit(main())
