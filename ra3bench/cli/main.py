"""`ra3bench`: entry point. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ra3bench import __version__
from ra3bench.cli import audit, compare, data, evaluate, models, plan, plugins, report, run, sandbox, suites, train
from ra3bench.errors import Ra3benchError

SUBCOMMANDS = (run, evaluate, train, compare, report, plan, suites, data, models, plugins, sandbox, audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ra3bench",
        description="Evaluate code LLMs in a sandbox and score pass@k with trusted verdicts.",
        epilog=(
            "examples:\n"
            "  ra3bench suites\n"
            "  ra3bench run --suite humaneval+ --model smollm2-135m --limit 10\n"
            "  ra3bench run --suite humaneval+ --model reference --limit 10\n"
            "  ra3bench evaluate --suite humaneval+ --samples samples.jsonl\n"
            "  ra3bench data fetch livecodebench --release v6\n"
            "  ra3bench sandbox build --offline\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ra3bench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ra3bench.results import code_version

    code_version()  # the commit this process runs, read before anything long starts
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # `train ... --each X key=value`: argparse cannot take positionals after an option
        if getattr(args, "overrides", None) is not None and all("=" in x and not x.startswith("-") for x in extras):
            args.overrides.extend(extras)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except Ra3benchError as exc:
        for line in str(exc).splitlines() or [""]:  # a ConfigError holds one problem per line
            print(f"ra3bench: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ra3bench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())
