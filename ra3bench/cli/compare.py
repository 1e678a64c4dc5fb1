"""`ra3bench compare`: a regression gate for CI, with statistics a reviewer can check."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  # a candidate run against a baseline run of the same suite, tasks and settings
  ra3bench compare results/baselines/humanevalplus-smollm2-135m results/candidate
  # fail (exit 1) only on a significant drop of more than 2 percentage points
  ra3bench compare BASE CANDIDATE --max-drop 2 --alpha 0.05
  # folders of run folders are paired suite by suite; JUnit XML for the CI test report
  ra3bench compare results/baselines results/candidate --format junit --output compare.xml
  # several samples per problem: pass@1 and pass@10 only
  ra3bench compare BASE CANDIDATE -k 1,10 --format json
  # two methods with three training seeds each (ra3bench train --seeds 0,1,2): folders of seed-N runs,
  # compared at the last step all runs evaluated, over seeds and problems (hierarchical bootstrap)
  ra3bench compare results/ntp-seeds results/ra3-seeds
  # the same with the runs named one by one, at step 48 of their training
  ra3bench compare results/ntp/seed-* --vs results/ra3/seed-* --step 48
  # a training run's evaluation at a step against the base model's evaluation
  ra3bench compare results/ntp/evals/step-000000 results/ntp/evals/step-000048
exit status: 0 no significant regression, 1 a significant regression beyond --max-drop,
2 bad usage or runs that are not comparable (the message names what differs).
Under GitHub Actions ($GITHUB_STEP_SUMMARY set) the Markdown report is appended to the job summary.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="paired comparison of two runs (or two methods over seeds): delta, CI, test, regression verdict",
        description="Compare a candidate run with a base run problem by problem, per suite, test group and k: "
        "both scores, the delta with a paired bootstrap 95% interval over problems, a paired test "
        "(exact McNemar for pass/fail outcomes, a sign-flip permutation test for pass rates), the "
        "verdict, and the problems that changed. With several runs per side (training seeds: BASE... --vs "
        "CANDIDATE..., or folders of seed-N runs) the delta of the seed means gets a hierarchical bootstrap "
        "interval over seeds and problems. The runs must be comparable (same suite version, "
        "data, n, tasks and settings); what differs is named otherwise.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="BASE",
        help="BASE CANDIDATE: a run folder, a folder of run folders, a training run (at --step) or a folder of "
        "seed-N runs each; with --vs, every folder given is a base run (a seed)",
    )
    parser.add_argument(
        "--vs",
        type=Path,
        nargs="+",
        default=None,
        metavar="CANDIDATE",
        help="the candidate's runs (seeds), after the base's: BASE... --vs CANDIDATE...",
    )
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="N",
        help="training runs: compare their evaluations at step N (default: the last step every one evaluated)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.0,
        metavar="PCT",
        help="tolerated drop in percentage points: fail only on a significant drop larger than this (default 0)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level of the paired test (default 0.05)"
    )
    parser.add_argument("-k", default=None, help="comma-separated k (default: the ks both summaries report)")
    parser.add_argument(
        "--format",
        default="table",
        choices=("table", "markdown", "json", "junit"),
        help="output format (default table)",
    )
    parser.add_argument("--output", type=Path, default=None, metavar="FILE", help="write there instead of stdout")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap / permutation seed (default 0)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.cli.common import parse_ks
    from ra3bench.errors import UsageError
    from ra3bench.report.compare import compare_paths
    from ra3bench.report.formats import outcome, render, render_markdown

    if args.vs is None and len(args.runs) != 2:
        raise UsageError(
            f"give BASE and CANDIDATE, or several runs per side as BASE... --vs CANDIDATE... (got {len(args.runs)} "
            "folders and no --vs)"
        )
    base, candidate = (args.runs, args.vs) if args.vs is not None else ([args.runs[0]], [args.runs[1]])
    comparison = compare_paths(
        base,
        candidate,
        ks=parse_ks(args.k),
        alpha=args.alpha,
        max_drop_pct=args.max_drop,
        n_boot=args.resamples,
        seed=args.seed,
        step=args.step,
    )
    text = render(comparison, args.format)
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write --output {args.output}: {exc}") from None
        print(outcome(comparison))
    else:
        sys.stdout.write(text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(render_markdown(comparison) + "\n")
        except OSError as exc:
            print(f"ra3bench: warning: cannot append to $GITHUB_STEP_SUMMARY ({exc})", file=sys.stderr)
    return comparison.exit_code
