"""`ra3bench run`: generate samples with a model and judge them."""

from __future__ import annotations

import argparse

from ra3bench.cli.common import add_execution_args, add_suite_args
from ra3bench.errors import UsageError

EXAMPLES = """\
examples:
  # self-check: the data set's own solutions must all pass
  ra3bench run --suite humaneval+ --model reference
  ra3bench run --suite mbpp+ --model reference --limit 20 --out results/mbpp-ref
  # several samples per problem, pass@1 and pass@5
  ra3bench run --suite humaneval --model reference -n 5 -k 1,5
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="generate with a model, execute every program in the sandbox, score pass@k",
        description="Generate samples with a model, run each program in the sandbox and score pass@k. "
        "A killed run resumes when the same command (same --out) is run again.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_suite_args(parser)
    parser.add_argument("--model", required=True, help="model: `reference` (the data set's solutions)")
    parser.add_argument("-n", type=int, default=1, help="samples per problem (default 1)")
    add_execution_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.cli.execute import execute

    if args.n < 1:
        raise UsageError("-n must be at least 1")
    if args.model != "reference":
        raise UsageError(
            f"model {args.model!r}: only `--model reference` is available in this version; "
            "score existing generations with `ra3bench evaluate --samples FILE`"
        )
    from ra3bench.backends.reference import ReferenceBackend

    return execute(args, ReferenceBackend(), args.n)
