"""`ra3bench plugins`: every registered suite, backend, sandbox and trainer, and where it came from."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  ra3bench plugins
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "plugins",
        help="list registered suites, backends, sandboxes and trainers with their origin",
        description="Built-ins register with a decorator; plugins through the entry-point groups "
        "ra3bench.suites, ra3bench.backends, ra3bench.sandboxes and ra3bench.trainers. A plugin that "
        "fails to load is listed with its error and does not affect the others.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    rows = []
    for kind, registry in registries().items():
        origins = registry.origins()
        for name in registry.names():
            rows.append([kind, name, origins.get(name, "?"), "ok"])
        for name, error in sorted(registry.broken().items()):
            rows.append([kind, name, "entry point", f"BROKEN: {error}"])
    print(tabulate(rows, headers=["kind", "name", "from", "status"], tablefmt="github"))
    return 0


def registries() -> dict:
    from ra3bench.backends import BACKENDS
    from ra3bench.sandbox import SANDBOXES
    from ra3bench.suites import SUITES
    from ra3bench.training.base import TRAINERS

    return {"suite": SUITES, "backend": BACKENDS, "sandbox": SANDBOXES, "trainer": TRAINERS}
