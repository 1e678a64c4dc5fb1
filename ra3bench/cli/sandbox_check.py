"""`ra3bench sandbox check`: run the hostile-program suite (sandbox/attacks.py) against a backend.

A user should see, before trusting a machine with model-written code, what its sandbox
contains and what it does not; the exit status makes that a CI gate.
"""

from __future__ import annotations

import argparse
import json
import sys

from tabulate import tabulate

EXAMPLES = """\
examples:
  # the strongest backend this machine has
  ra3bench sandbox check
  # the local backend (needs bubblewrap), two workers
  ra3bench sandbox check --sandbox local --workers 2
  # what the weak mode without bubblewrap does not contain
  ra3bench sandbox check --sandbox local-unsafe
  # machine-readable, e.g. for CI
  ra3bench sandbox check --sandbox docker --format json > sandbox-check.json
"""


def register(sandbox_commands: argparse._SubParsersAction) -> None:
    parser = sandbox_commands.add_parser(
        "check",
        help="run hostile programs in a sandbox backend and report what it contains",
        description="Run every attack of the hostile-program suite (network, host files, fork bomb, memory, "
        "endless loops and output, leftover processes, planted modules, the caller's environment and files, "
        "killing the harness) in the chosen backend and print what happened. Attacks a backend does not "
        "claim to contain (e.g. network without bubblewrap) are shown as 'not contained', not hidden. "
        "Exit status 0 only if every attack the backend claims to contain is contained, else 1.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sandbox",
        default="auto",
        help="auto | docker | local | local-unsafe (default: auto = docker, else local with bubblewrap, else an "
        "error); local-unsafe checks the weak mode without bubblewrap",
    )
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers (default 2; each one is checked)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.errors import UsageError
    from ra3bench.sandbox import attacks, make_sandbox

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    attacks.plant_env_secret()  # before the sandbox starts: it must not reach the jobs
    with make_sandbox(args.sandbox, args.workers) as sandbox:
        caps = attacks.backend_capabilities(sandbox)
        if args.format == "table":
            print(f"sandbox: {sandbox.name} ({sandbox.isolation})", flush=True)
        reports = attacks.run_attacks(sandbox, capabilities=caps)
        info = sandbox.describe()
    ok = all(r.ok for r in reports)
    if args.format == "json":
        payload = {"sandbox": info, "capabilities": sorted(caps), "ok": ok, "attacks": [r.to_json() for r in reports]}
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        rows = [[r.attack, r.expected, r.observed, r.result] for r in reports]
        print(tabulate(rows, headers=["attack", "expected", "observed", "result"], tablefmt="github"))
        failed = [r.attack for r in reports if not r.ok]
        weak = [r.attack for r in reports if r.ok and r.result != "OK"]
        if failed:
            print(f"FAIL: {len(failed)} attack(s) the {sandbox.name} sandbox claims to contain were not contained")
        else:
            print(f"OK: every attack the {sandbox.name} sandbox claims to contain was contained")
        if weak:
            print(f"note: {len(weak)} attack(s) this backend does not contain by design; see docs/sandbox.md")
    return 0 if ok else 1
