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

    was = os.environ.get("RA3BENCH_OFFLINE")
    os.environ.setdefault("RA3BENCH_OFFLINE", "1")  # listing must not download
    try:
        rows = _rows(args.data_dir)
    finally:  # called in-process (a test, a notebook): leave the environment as it was
        if was is None:
            os.environ.pop("RA3BENCH_OFFLINE", None)
    print(tabulate(rows, headers=["suite", "version", "problems", "tests", "groups", "data here"], tablefmt="github"))
    print("where each file would come from: `ra3bench data where`; fetch ahead: `ra3bench data fetch SUITE`")
    return 0


def _rows(data_dir) -> list[list]:
    from ra3bench.errors import Ra3benchError
    from ra3bench.suites import SUITES
    from ra3bench.suites.data import source_of

    rows = []
    for name in SUITES.names():
        cls = SUITES.get(name)
        for version in cls.versions:
            suite = cls(version, data_dir)
            default = " (default)" if version == cls.default_version else ""
            groups = "/".join(suite.group_names)
            if any(f.hub is not None for f in suite.data_files):
                # Hub versions are large (LiveCodeBench: 4.5 GB): said, not read, here
                missing = sum(1 for f in suite.data_files if not source_of(f, data_dir).startswith("here"))
                where = f"no: {fetch_line(suite, missing)}" if missing else "yes"
                rows.append(
                    [name, version + default, f"{suite.n_problems():,}", "(official: not read here)", groups, where]
                )
                continue
            try:
                problems = suite.problems()
                test_text = " + ".join(_group_tests(problems, group) for group in suite.group_names)
                rows.append([name, version + default, len(problems), test_text, groups, "yes"])
            except Ra3benchError as exc:
                reason = type(exc).__name__.replace("Error", "")
                rows.append([name, version + default, "?", "?", groups, f"no ({reason})"])
    return rows


def fetch_line(suite, missing: int) -> str:
    """What a fetch of a Hub version would read, in a few words."""
    hub = suite.data_file.hub
    return f"{missing} of {len(suite.data_files)} file(s) from {hub.repo_id}@{hub.revision[:7]} (`ra3bench data fetch`)"


def _group_tests(problems: list, group: str) -> str:
    """Inputs of one group, or the kind of test program where the data has no inputs."""
    count = sum(len(p.groups[group].inputs) for p in problems)
    return f"{count} {group}" if count else f"{len(problems)} {group} test programs"
