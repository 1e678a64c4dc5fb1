"""The part of `run` and `evaluate` after the samples' source is known: a Session does the work."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ra3bench.backends.base import Backend
from ra3bench.cli.common import print_summary, spec_from_args
from ra3bench.evaluate import Session


def execute(args: argparse.Namespace, backend: Backend | Callable[[], Backend], n: int = 1) -> int:
    """Judge ``backend``'s samples. A factory is called only once every flag has been checked and
    the suite is loaded, so a bad flag costs no model load."""
    session = Session(spec_from_args(args, n))
    if not isinstance(backend, Backend):
        backend = backend()
    backend.check(session.suite, session.problems)  # before the sandbox starts
    with session:
        summary = session.evaluate(backend, args.out, manifest={"command": command_line(sys.argv[1:])})
    print_summary(summary)
    return 0


SECRET_FLAGS = ("--api-key",)


def command_line(argv: list[str]) -> str:
    """The command as the manifest records it, secrets (``--api-key``'s value) left out."""
    shown, hide_next = ["ra3bench"], False
    for arg in argv:
        if hide_next:
            shown.append("***")
        elif arg.startswith(tuple(f"{flag}=" for flag in SECRET_FLAGS)):
            shown.append(arg.split("=", 1)[0] + "=***")
        else:
            shown.append(arg)
        hide_next = arg in SECRET_FLAGS
    return " ".join(shown)
