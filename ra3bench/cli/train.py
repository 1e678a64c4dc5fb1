"""`ra3bench train`: a mid-training method, measured by the harness along the way."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  # NTP on the MBPP training split, SmolLM2-135M, MBPP+ (50 problems, n=4) every 25 steps
  ra3bench train --trainer ntp --config examples/train/ntp_smollm2.yaml
  # the same, a quick dry run with a random tiny model
  ra3bench train --trainer ntp --config examples/train/ntp_smollm2.yaml model.name=tiny-random \\
      trainer.steps=10 eval.every=5 eval.limit=3 eval.n=1 run.out=results/dry
  # continue a run that was killed, from its newest checkpoint
  ra3bench train --trainer ntp --config examples/train/ntp_smollm2.yaml run.out=results/ntp --resume
  # a trainer that is not registered
  ra3bench train --trainer mypkg.method:MyTrainer --config my.yaml
  # one run per value, in RUN_OUT/<label>, curves side by side in RUN_OUT/curves.png (RLVR from each init)
  ra3bench train --trainer rlvr --config examples/train/rlvr_smollm2.yaml run.out=results/rlvr-by-init \\
      --each trainer.init=base:,ntp:results/ntp-smollm2/checkpoints/step-000048
  # the same, each run's step 0 taken from the evaluation that already measured its init
  ra3bench train --trainer rlvr --config examples/train/rlvr_smollm2.yaml run.out=results/rlvr-by-init \\
      --each trainer.init=base:,ntp:results/ntp-smollm2/checkpoints/step-000048 \\
      --each eval.start_from=base:results/ntp-smollm2/evals/step-000000,ntp:results/ntp-smollm2/evals/step-000048
  # three training seeds, in RUN_OUT/seed-0 .. seed-2; curves.png draws their mean and min-max band
  ra3bench train --trainer ntp --config examples/train/ntp_smollm2.yaml run.out=results/ntp-seeds --seeds 0,1,2
  # each init with seeds 0-4 (RUN_OUT/<label>/seed-<s>), then the two methods compared over seeds and problems
  ra3bench train --trainer rlvr --config examples/train/rlvr_smollm2.yaml run.out=results/rlvr \\
      --each trainer.init=base:,ntp:results/ntp-smollm2/checkpoints/step-000048 --seeds 0-4
  ra3bench compare results/rlvr/base results/rlvr/ntp
Config precedence: the trainer's defaults < the YAML file < key=value overrides (dotted keys).
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train with a mid-training method; evaluate on a schedule; draw pass@k vs step",
        description="Run a trainer plugin. The model is evaluated at step 0, every eval.every steps and at "
        "the end, through the same pipeline and sandbox as `ra3bench run`; curve.jsonl and curves.png "
        "land in the run folder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--trainer", required=True, help="a registered name (`ra3bench plugins`) or package.module:Class"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML file (sections: model, data, eval, run, trainer)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="folder with the data files (default: $RA3BENCH_DATA_DIR, cache)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in run.out from its newest checkpoint")
    parser.add_argument("--check", action="store_true", help="check the config and print it resolved; train nothing")
    parser.add_argument(
        "--each",
        metavar="KEY=LABEL:VALUE,...",
        action="append",
        default=None,
        help="one run per value of KEY, in run.out/LABEL; every config checked first; one PNG of all "
        "(with --resume: finished runs kept, stopped ones continued). Repeat it, same labels, to set "
        "several keys per run",
    )
    parser.add_argument(
        "--seeds",
        metavar="S,S,...",
        default=None,
        help="one run per training seed (0,1,2 or 0-4), in run.out/seed-S (with --each: run.out/LABEL/seed-S); "
        "sets run.seed, and trainer.seed where the trainer has one; every config checked first; "
        "curves.png draws each arm's seed mean with the min-max band; --resume as with --each",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.lr=1e-4")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.config import ConfigError
    from ra3bench.training.runner import load_train_config, start_from_errors, train
    from ra3bench.training.sweep import COMBINED, Arm, parse_seeds, plan_each, train_each, with_seeds, zip_each

    if args.each is not None or args.seeds is not None:
        arms = zip_each(args.each) if args.each is not None else [Arm("", ())]
        if args.seeds is not None:
            arms = with_seeds(arms, parse_seeds(args.seeds))
        if args.check:
            plan_each(args.trainer, args.config, args.overrides, arms, resume=args.resume, data_dir=args.data_dir)
            print(f"{len(arms)} configs check out: {', '.join(a.folder for a in arms)}")
            return 0
        parent = train_each(args.trainer, args.config, args.overrides, arms, resume=args.resume, data_dir=args.data_dir)
        print(f"runs: {', '.join(str(parent / a.folder) for a in arms)}; all curves: {parent / COMBINED}")
        return 0
    if args.check:
        import yaml

        from ra3bench.config import config_to_dict

        _, config = load_train_config(args.trainer, args.config, args.overrides)
        if errors := start_from_errors(config, args.data_dir):
            raise ConfigError(errors)
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
        return 0
    run_dir = train(args.trainer, args.config, args.overrides, resume=args.resume, data_dir=args.data_dir)
    print(f"run folder: {run_dir} (curve.jsonl, curves.png, manifest.json)")
    return 0
