"""`ra3bench sandbox check`: run the hostile-program suite (sandbox/attacks.py) against a backend.

A user should see, before trusting a machine with model-written code, what its sandbox
contains and what it does not; the exit status makes that a CI gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from tabulate import tabulate

if TYPE_CHECKING:
    from ra3bench.sandbox.forgery import ForgeryReport

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
  # every node of a Ray cluster, each in its own Docker sandbox
  ra3bench sandbox check --sandbox ray:docker --ray-address head-node:6379
"""


def register(sandbox_commands: argparse._SubParsersAction) -> None:
    parser = sandbox_commands.add_parser(
        "check",
        help="run hostile programs in a sandbox backend and report what it contains",
        description="Run every attack of the hostile-program suite (network, host files, fork bomb, memory, "
        "endless loops and output, leftover processes, planted modules, the caller's environment and files, "
        "killing the harness) in the chosen backend and print what happened. Attacks a backend does not "
        "claim to contain (e.g. network without bubblewrap) are shown as 'not contained', not hidden. "
        "Then the verdict-integrity section: wrong programs that try to forge their verdict (patched encoders, "
        "frames written to the result pipe, harness objects reached through gc, lying numpy-like objects, deep "
        "nesting, non-finite numbers, self-sent signals, claimed statuses, killing the worker) are judged on "
        "HumanEval+/0 by the real judge; each must be scored a failure of the program, never pass and never "
        "sandbox_error. Exit status 0 only if every attack the backend claims to contain is contained and "
        "every forgery failed, else 1.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sandbox",
        default="auto",
        help="auto | docker | local | local-unsafe | ray[:docker|:local] (default: auto = docker, else local with "
        "bubblewrap, else an error); local-unsafe checks the weak mode without bubblewrap; ray checks every node "
        "of the cluster",
    )
    parser.add_argument(
        "--ray-address", default="", help="--sandbox ray: the cluster (default: $RAY_ADDRESS, else a local one)"
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
    results = []
    with make_sandbox(args.sandbox, args.workers, ray_address=getattr(args, "ray_address", "")) as sandbox:
        # a Ray cluster is checked node by node: every node judges, so every node must contain the attacks
        targets = sandbox.node_sandboxes() if hasattr(sandbox, "node_sandboxes") else [("", sandbox)]
        for label, target in targets:
            if args.format == "table":
                where = f" on node {label}" if label else ""
                print(f"sandbox: {target.name}{where} ({target.isolation})", flush=True)
            results.append(_check(target, label, args.format == "table"))
    ok = all(r["ok"] for r in results)
    if args.format == "json":
        payload = results[0] if len(results) == 1 else {"ok": ok, "nodes": results}
        json.dump(payload, sys.stdout, indent=2)
        print()
    return 0 if ok else 1


def _check(sandbox, label: str, table: bool) -> dict:
    """The attacks and the forgeries on one sandbox; printed as tables when ``table``; the JSON record."""
    from ra3bench.errors import Ra3benchError
    from ra3bench.sandbox import attacks, forgery

    caps = attacks.backend_capabilities(sandbox)
    reports = attacks.run_attacks(sandbox, capabilities=caps)
    skipped = ""
    try:  # needs the HumanEval+ data (expected outputs come from its reference)
        forgeries = forgery.run_forgeries(sandbox, capabilities=caps)
    except Ra3benchError as exc:
        forgeries, skipped = [], str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    contained = all(r.ok for r in reports)
    integrity = all(r.ok for r in forgeries)
    # a Ray node: its connection to the driver, attacked from the network
    links = sandbox.link_attacks() if hasattr(sandbox, "link_attacks") else []
    record = {
        "sandbox": sandbox.describe(),
        "capabilities": sorted(caps),
        "ok": contained and integrity and all(ok for *_, ok in links),
        "attacks": [r.to_json() for r in reports],
        "link": [{"attack": a, "expected": e, "observed": o, "ok": ok} for a, e, o, ok in links],
        "verdict_integrity": {
            "task": f"humaneval+ {forgery.TASK_ID}",
            "ok": integrity,
            "skipped": skipped or None,
            "forgeries": [r.to_json() for r in forgeries],
        },
    }
    if table:
        _print_tables(sandbox, reports, forgeries, skipped)
        if links:
            rows = [[a, e, o, "OK" if ok else "FAIL"] for a, e, o, ok in links]
            print()
            print("the node's connection to the driver (ray_link.py)")
            print(tabulate(rows, headers=["attack", "expected", "observed", "result"], tablefmt="github"))
    return record


def _print_tables(sandbox, reports: list, forgeries: list, skipped: str) -> None:
    from ra3bench.sandbox import forgery

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
    print()
    print(f"verdict integrity (wrong programs that forge their verdict, judged on humaneval+ {forgery.TASK_ID})")
    if skipped:
        print(f"not run: {skipped}")
        return
    rows = [[r.attack, " / ".join(r.allowed), _verdict_cell(r), r.result] for r in forgeries]
    print(tabulate(rows, headers=["forgery", "expected", "verdict", "result"], tablefmt="github"))
    forged = [r for r in forgeries if not r.ok]
    not_run = [r for r in forgeries if r.result.startswith("not run")]
    if forged:
        print(
            f"FAIL: {len(forged)} row(s): a forgery was believed (pass), caused a sandbox_error, got a status "
            "the program only claimed, or crashed the judge (or the control did not pass)"
        )
    else:
        print("OK: every forgery was scored a failure of the program, and the control passed")
    if not_run:
        print(f"note: {len(not_run)} forgery(ies) not run: they would reach the host on this backend")
    print()


def _verdict_cell(report: ForgeryReport) -> str:
    """The status and the first line of why, short enough for a table."""
    text = f"{report.verdict}: {report.detail}" if report.detail else report.verdict
    return text if len(text) <= 90 else text[:87] + "..."
