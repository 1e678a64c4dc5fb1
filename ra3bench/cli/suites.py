"""`ra3bench suites`: what can be run, at which version, and whether its data is here."""

from __future__ import annotations

import argparse

from tabulate import tabulate

EXAMPLES = """\
examples:
  ra3bench suites
  ra3bench suites --data-dir ../shared/datasets
"""


def register(commands: argparse._SubParsersAction) -> None:
    from pathlib import Path

    parser = commands.add_parser(
        "suites",
        help="list suites: name, version, problems, tests, data found or not",
        description="List every suite with its pinned version and whether its data file is available.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the data files")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import os

    from ra3bench.errors import Ra3benchError
    from ra3bench.suites import SUITES

    os.environ.setdefault("RA3BENCH_OFFLINE", "1")  # listing must not download
    rows = []
    for name in SUITES.names():
        cls = SUITES.get(name)
        for version in cls.versions:
            suite = cls(version, args.data_dir)
            default = " (default)" if version == cls.default_version else ""
            try:
                problems = suite.problems()
                test_text = " + ".join(_group_tests(problems, group) for group in cls.group_names)
                rows.append([name, version + default, len(problems), test_text, "/".join(cls.group_names), "yes"])
            except Ra3benchError as exc:
                reason = type(exc).__name__.replace("Error", "")
                rows.append([name, version + default, "?", "?", "/".join(cls.group_names), f"no ({reason})"])
    print(tabulate(rows, headers=["suite", "version", "problems", "tests", "groups", "data found"], tablefmt="github"))
    return 0


def _group_tests(problems: list, group: str) -> str:
    """Inputs of one group, or the kind of test program where the data has no inputs."""
    count = sum(len(p.groups[group].inputs) for p in problems)
    return f"{count} {group}" if count else f"{len(problems)} {group} test programs"
