"""`ra3bench report`: report.md and a self-contained report.html for one or more runs."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

EXAMPLES = """\
examples:
  # one evaluation run: pass@k with intervals, status breakdown, by difficulty/date where the suite has them
  ra3bench report results/humanevalplus-smollm2-135m-20250101-120000
  # several runs side by side, named in the report
  ra3bench report base=results/lcb-base candidate=results/lcb-ra3 --out results/report-lcb
  # training runs (folders with curve.jsonl) overlaid, a base model's evaluation as a reference level
  ra3bench report NTP=results/train-ntp RA3=results/train-ra3 base=results/mbppplus-base --threshold 30
  # methods with several training seeds (ra3bench train --seeds: folders of seed-N runs): seed means with
  # min-max bands, and each method against the first over seeds and problems
  ra3bench report NTP=results/ntp-seeds RA3=results/ra3-seeds --out results/report-seeds
  # the same seeds named one by one: a label given again adds a seed to that method
  ra3bench report NTP=results/ntp/seed-0 NTP=results/ntp/seed-1 RA3=results/ra3/seed-0 RA3=results/ra3/seed-1
The report is written to DIR/report.md (figures in DIR/plots/) and DIR/report.html (figures embedded).
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="report.md + self-contained report.html (tables and plots) for run folders",
        description="Write a report of evaluation runs (pass@k with 95% intervals, the status of every sample, "
        "pass@1 by difficulty and contest date where the suite's problems have them) and of training runs "
        "(curves overlaid, with AUC, steps to a threshold and final value; several seeds of a method as their "
        "mean with the min-max band), and every method against the first (over seeds and problems).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run folder, training run folder, folder of run folders or of seed-N runs; LABEL=PATH (a LABEL "
        "given again adds a seed to that method)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: results/report-<time>)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="PCT",
        help="training runs: the pass@k level (%%) for 'steps to threshold' (default: the highest level every "
        "run reaches)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="suite data, for difficulty/date (default: $RA3BENCH_DATA_DIR)"
    )
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="N",
        help="training runs: compare the methods at step N (default: the last step every run evaluated)",
    )
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--title", default="ra3bench report", help="the HTML page title")
    parser.set_defaults(handler=handle)


def parse_runs(specs: list[str]) -> tuple[list, dict[str, list[dict]], list[tuple[str, list[Path]]]]:
    """(evaluation runs, training curves by label, methods) from RUN arguments; labels made unique.

    A method is a label and its runs (seeds): a LABEL given again, or a folder of seed-N runs, adds
    seeds; the curves of a method with several seeds are drawn as their mean with the min-max band."""
    from ra3bench.errors import UsageError
    from ra3bench.report.base import find_runs, is_training_run
    from ra3bench.report.sides import seed_folders
    from ra3bench.training.curves import read_curve
    from ra3bench.training.seed_curves import seed_band, seed_label

    eval_runs: list = []
    trained: dict[str, list[list[dict]]] = {}
    methods: dict[str, list[Path]] = {}
    seen: set[str] = set()

    def unique(label: str) -> str:
        base, i = label, 2
        while label in seen:
            label, i = f"{base}-{i}", i + 1
        seen.add(label)
        return label

    for spec in specs:
        label, sep, path_text = spec.partition("=")
        if not sep or Path(spec).exists():
            label, path_text = "", spec
        path = Path(path_text)
        if not path.exists():
            raise UsageError(f"{path}: no such run folder")
        method, i = label or path.name, 2
        while not label and method in methods:  # an unlabelled folder is a method of its own
            method, i = f"{path.name}-{i}", i + 1
        seeds = seed_folders(path)
        methods.setdefault(method, []).extend(seeds or [path])
        for folder in seeds or [path]:
            if is_training_run(folder):
                curve = read_curve(folder)
                if not curve:
                    raise UsageError(f"{folder}/curve.jsonl is empty")
                if method not in trained:
                    seen.add(method)
                trained.setdefault(method, []).append(curve)
                continue
            runs = find_runs(folder)
            name = f"{method}/{folder.name}" if seeds else label
            for run in runs:
                run.label = unique(name if name and len(runs) == 1 else (f"{name}/{run.label}" if name else run.label))
            eval_runs += runs
    curves = {seed_label(label, len(c)): seed_band(c) for label, c in trained.items()}
    return eval_runs, curves, list(methods.items())


def handle(args: argparse.Namespace) -> int:
    from ra3bench.cli.common import env_default_data_dir
    from ra3bench.errors import UsageError
    from ra3bench.report.base import is_training_run
    from ra3bench.report.build import build_report
    from ra3bench.report.html import render_html
    from ra3bench.report.markdown import render_markdown

    if args.threshold is not None and not 0 <= args.threshold <= 100:
        raise UsageError(f"--threshold is a percentage between 0 and 100, got {args.threshold}")
    if args.resamples < 100:
        raise UsageError(f"--resamples must be at least 100, got {args.resamples}")
    eval_runs, curves, methods = parse_runs(args.runs)
    out = args.out or Path("results") / f"report-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc}") from None
    threshold = None if args.threshold is None else args.threshold / 100
    blocks = build_report(
        eval_runs,
        curves,
        out / "plots",
        threshold=threshold,
        data_dir=env_default_data_dir(args.data_dir),
        methods=methods,
        step=args.step,
        n_boot=args.resamples,
    )
    (out / "report.md").write_text(render_markdown(blocks, out), encoding="utf-8")
    (out / "report.html").write_text(render_html(blocks, args.title), encoding="utf-8")
    n = len(eval_runs) + sum(is_training_run(f) for _, folders in methods for f in folders)
    print(f"report of {n} run{'s' if n != 1 else ''}: {out / 'report.md'}, {out / 'report.html'}")
    return 0
