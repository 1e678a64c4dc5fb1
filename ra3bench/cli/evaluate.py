"""`ra3bench evaluate`: judge existing generations from a samples file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ra3bench.cli.common import add_execution_args, add_suite_args

EXAMPLES = """\
examples:
  # evalplus samples.jsonl (`solution` = full program, or `completion` after the prompt)
  ra3bench evaluate --suite humaneval+ --samples samples.jsonl
  # the same against the older data version a verdict file was made with
  ra3bench evaluate --suite humaneval+ --suite-version v0.1.9 --samples samples.jsonl.gz
  # human-eval samples on the original HumanEval tests
  ra3bench evaluate --suite humaneval --samples codegemma_7b_samples.jsonl.gz
  # an evalplus *_eval_results.json (>= 0.2) carries its programs too
  ra3bench evaluate --suite humaneval+ --samples model_eval_results.json --out results/model
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score existing generations (evalplus / human-eval / ra3bench samples files)",
        description="Judge every program of a samples file (plain or gzipped) in the sandbox. A file may cover "
        "some tasks only, or hold several samples per task; the summary says how many tasks it covered.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_suite_args(parser)
    parser.add_argument("--samples", type=Path, required=True, help="samples file (.jsonl, .jsonl.gz, .json)")
    add_execution_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.backends.replay import ReplayBackend
    from ra3bench.cli.execute import execute

    backend = ReplayBackend(args.samples)
    return execute(args, backend)
