"""`ra3bench audit`: run a judge (a reward function, evalplus, ra3bench) against hostile programs.

A team that trains against a judge should know whether a wrong program can be scored right by it
and whether a program it judges can reach the machine; the exit status makes that a CI gate.
"""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  # a TRL reward function (or a verl compute_score): it runs programs in-process, so consent is needed
  ra3bench audit --judge my_rewards.code:code_reward --i-understand-this-runs-attacks
  # the same, inside bubblewrap: false passes measured, escapes kept off this machine
  ra3bench audit --judge my_rewards.code:code_reward --i-understand-this-runs-attacks --contain
  # evalplus (installed in this interpreter, or name one with --python), on HumanEval+ and MBPP+
  ra3bench audit --judge evalplus --suites humaneval+,mbpp+ --i-understand-this-runs-attacks
  # ra3bench itself, the reference row, in each sandbox
  ra3bench audit --judge ra3bench --sandbox docker --format markdown
  ra3bench audit --judge ra3bench --sandbox local --sets attacks,references --format json > audit.json
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "audit",
        help="check whether a code judge can be fooled or escaped (false passes, side effects)",
        description="Send a judge three sets of programs: hostile ones (every one wrong: always-equal objects, "
        "expected outputs read from the judge's frames, early exits, empty output, fake reports, endless loops, "
        "network, host files, the caller's environment, leftover processes, killing the judge), the suite's "
        "reference solutions, and recorded model outputs. Each gets the judge's score next to ra3bench's verdict; "
        "side effects are observed from outside the judge, which runs in a child process with a deadline. "
        "Exit status 1 when any false pass or escape is found.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--judge", required=True, help="pkg.module:func (TRL reward or verl compute_score) | evalplus | ra3bench"
    )
    parser.add_argument(
        "--suites", default="humaneval+,codeforces", help="comma-separated (default humaneval+,codeforces)"
    )
    parser.add_argument("--problems", type=int, default=1, help="problems attacked per suite (default 1)")
    parser.add_argument("--recorded", type=int, default=20, help="recorded model outputs to compare (default 20)")
    parser.add_argument("--sets", default="attacks,references,recorded", help="which sets to run (default all)")
    parser.add_argument(
        "--sandbox", default="auto", help="ra3bench's sandbox for trusted verdicts and --judge ra3bench (default auto)"
    )
    parser.add_argument(
        "--contain",
        action="store_true",
        help="run an in-process judge inside bubblewrap (no network, private "
        "PIDs and /tmp, read-only host files, no environment secret)",
    )
    parser.add_argument(
        "--i-understand-this-runs-attacks",
        dest="understood",
        action="store_true",
        help="required for judges that run programs in their own process (evalplus, a reward function)",
    )
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds per judge call and program (default 60)")
    parser.add_argument("--python", default="", help="--judge evalplus: the interpreter that has evalplus")
    parser.add_argument(
        "--completion-format", choices=("chat", "text"), default="chat", help="completions a reward function gets"
    )
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import sys

    from ra3bench.audit.prepare import AuditOptions, audit_judge
    from ra3bench.audit.render import render
    from ra3bench.errors import UsageError

    if args.problems < 1 or args.recorded < 0 or args.deadline <= 0:
        raise UsageError("--problems must be at least 1, --recorded at least 0, --deadline positive")
    options = AuditOptions(
        judge=args.judge,
        suites=tuple(s.strip() for s in args.suites.split(",") if s.strip()),
        problems=args.problems,
        recorded=args.recorded,
        sets=tuple(s.strip() for s in args.sets.split(",") if s.strip()),
        sandbox=args.sandbox,
        contain=args.contain,
        understood=args.understood,
        deadline_s=args.deadline,
        python=args.python,
        completion=args.completion_format,
    )
    card = audit_judge(options, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(render(card, args.format))
    return 0 if card.ok else 1
