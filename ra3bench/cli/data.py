"""`ra3bench data`: where each suite's data comes from, and fetching it ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  # the official LiveCodeBench files a release needs (release_v6: all six, 4.5 GB; v6: test6.jsonl)
  ra3bench data fetch livecodebench --release v6
  ra3bench data fetch livecodebench                      # every file of the default version
  ra3bench data fetch codeforces --version open-r1-test
  # from a mirror, or into a cache an offline cluster will copy ($HF_HOME/hub)
  HF_ENDPOINT=https://hf-mirror.example HF_HOME=/shared/hf ra3bench data fetch livecodebench
  ra3bench data where                                    # every suite version: here, or where from
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "data",
        help="fetch suites' data ahead of time, or show where it would come from",
        description="Suites' data comes from --data-dir / $RA3BENCH_DATA_DIR, the ra3bench cache, then its "
        "official source (the Hugging Face Hub at a pinned commit, through huggingface_hub and its cache: "
        "HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE and tokens apply; or a release URL). Every file is checked "
        "against its pinned sha256.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    fetch = actions.add_parser("fetch", help="fetch and verify a suite version's data files (progress bars)")
    fetch.add_argument("suite", help="suite name (see `ra3bench suites`)")
    fetch.add_argument("--version", default=None, help="data version (default: the suite's default)")
    fetch.add_argument("--release", default=None, help="livecodebench: only the files this release tag needs")
    fetch.add_argument("--data-dir", type=Path, default=None, help="a folder with data files to prefer")
    fetch.set_defaults(handler=handle_fetch)
    where = actions.add_parser("where", help="where each suite version's data would come from (no download)")
    where.add_argument("--data-dir", type=Path, default=None, help="a folder with data files to prefer")
    where.set_defaults(handler=handle_where)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def handle_fetch(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ra3bench.suites import get_suite
    from ra3bench.suites.data import sha256_of_located

    suite = get_suite(args.suite, args.version, args.data_dir)
    files = suite.files_for(release=args.release)
    rows = []
    for data_file in files:
        path = suite.located(data_file)
        rows.append([data_file.filename, _size(path.stat().st_size), sha256_of_located(data_file, path)[:16], path])
    print(f"{suite.name} {suite.version}: {len(files)} file(s) here and verified")
    print(tabulate(rows, headers=["file", "size", "sha256", "path"], tablefmt="github"))
    return 0


def handle_where(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ra3bench.suites import SUITES
    from ra3bench.suites.data import source_of

    rows = []
    for name in SUITES.names():
        cls = SUITES.get(name)
        for version, files in cls.versions.items():
            for data_file in files if isinstance(files, tuple) else (files,):
                default = " (default)" if version == cls.default_version else ""
                rows.append([name, version + default, data_file.filename, source_of(data_file, args.data_dir)])
    print(tabulate(rows, headers=["suite", "version", "file", "source"], tablefmt="github"))
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
