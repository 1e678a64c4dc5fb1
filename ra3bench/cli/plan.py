"""`ra3bench plan`: how many problems, samples and seeds a comparison needs, and what it costs here."""

from __future__ import annotations

import argparse
import json
import math
import sys

EXAMPLES = """\
examples:
  # what can 164 HumanEval+ problems x 10 samples, 3 seeds per method detect at a 30 % base rate?
  ra3bench plan --suite humaneval+ --base-rate 30 -n 10 --seeds 3
  # how many problems, samples, seeds to detect +3 pp; the closed form checked by 2000 simulated experiments
  ra3bench plan --suite humaneval+ --base-rate 30 --effect 3 -n 10 --seeds 3 --simulate 2000
  # the design, pass rate, spread of difficulty and speed of a measured run; the cost of 5 points x 3 seeds x 2 arms
  ra3bench plan --suite mbpp+ --from-run docs/experiments/ntp_smollm2 --effect 5 --seeds 3 --points 5
  # several seeds of one method: their spread gives the seed sd (net of sampling noise)
  ra3bench plan --suite mbpp+ --from-run results/ntp/seed-0/evals/step-000048/mbppplus \\
      results/ntp/seed-1/evals/step-000048/mbppplus --json
Effects and the seed sd are in percentage points, the base rate in percent; the metric is pass@1.
"""


def register(commands: argparse._SubParsersAction) -> None:
    from ra3bench.cli.common import add_suite_args
    from ra3bench.planning import DEFAULT_CONCENTRATION, DEFAULT_SEED_SD

    parser = commands.add_parser(
        "plan",
        help="sample sizes and detectable effects of a method comparison; its cost from measured speed",
        description="Plan a comparison of two methods, each trained with S seeds and evaluated on P problems x n "
        "samples (pass@1): the minimum detectable effect (alpha two-sided, power), and for --effect the "
        "power and the problems, samples and seeds needed. Closed form (variance decomposition, normal "
        "approximation); --simulate N checks it on N simulated experiments. Each number says which produced "
        "it. The cost of one evaluation point and of the schedule comes from a measured run (--from-run).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_suite_args(parser)
    model = parser.add_argument_group("what the runs look like")
    model.add_argument("--base-rate", type=float, default=None, metavar="PCT", help="method A's pass@1 in percent")
    model.add_argument(
        "--from-run",
        nargs="+",
        default=[],
        metavar="RUN",
        help="run folders (a `run` folder, a training run, or its evals/step-N/<suite>): their design, pass "
        "rate, per-problem spread (a Beta fitted to the verdicts), seed sd (from several runs) and speed",
    )
    model.add_argument("--group", default=None, help="test group of --from-run (default: the strictest, e.g. plus)")
    model.add_argument(
        "--concentration",
        type=float,
        default=None,
        metavar="KAPPA",
        help=f"spread of problems' pass rates: Beta(mean, kappa = alpha + beta); small: most problems always or "
        f"never solved; inf: all at the base rate (default: fitted from --from-run, else {DEFAULT_CONCENTRATION:g})",
    )
    model.add_argument(
        "--seed-sd",
        type=float,
        default=None,
        metavar="PP",
        help=f"sd of a run's mean pass rate over training seeds (default: from several --from-run runs, else "
        f"{100 * DEFAULT_SEED_SD:g} pp, an assumption)",
    )
    design = parser.add_argument_group("design")
    design.add_argument("--effect", type=float, default=None, metavar="PP", help="the improvement to detect")
    design.add_argument("--problems", type=int, default=None, help="problems (default: --from-run's, else the suite)")
    design.add_argument("-n", type=int, default=None, help="samples per problem (default: --from-run's, else 1)")
    design.add_argument(
        "--seeds", default=None, help="seeds per method: a count or a list as train takes it, 0,1,2 (default 1)"
    )
    design.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    design.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    design.add_argument("--simulate", type=int, default=0, metavar="N", help="check by N simulated experiments")
    design.add_argument("--sim-seed", type=int, default=0, help="seed of the simulation (default 0)")
    cost = parser.add_argument_group("cost")
    cost.add_argument("--points", type=int, default=1, help="evaluation points per training run (default 1)")
    cost.add_argument("--arms", type=int, default=2, help="methods compared (default 2)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ra3bench.experiment_plan import make_plan

    plan = make_plan(**_inputs(args))
    sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n" if args.json else render(plan))
    return 0


def _seeds(text: str | None) -> int | None:
    from ra3bench.errors import UsageError

    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--seeds takes a count (3) or a list of seeds (0,1,2), got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(set(values)) != len(values):
        raise UsageError(f"--seeds {text}: a seed is repeated")
    return len(values)


def _suite_size(args: argparse.Namespace) -> tuple[int, str]:
    """The suite's problems (after --release/--start-date... filters), read offline."""
    import os

    from ra3bench.cli.common import selection_filters
    from ra3bench.suites import get_suite

    was = os.environ.get("RA3BENCH_OFFLINE")
    os.environ.setdefault("RA3BENCH_OFFLINE", "1")  # planning must not download
    try:
        suite = get_suite(args.suite, args.suite_version, args.data_dir)
        filters = selection_filters(args)
        if filters:
            return len(suite.selected(**filters)), ", ".join(f"{k} {v}" for k, v in filters.items())
        return suite.n_problems(), ""
    finally:
        if was is None:
            os.environ.pop("RA3BENCH_OFFLINE", None)


def _inputs(args: argparse.Namespace) -> dict:
    """Flags, run folders and suite -> make_plan's arguments; every bad flag said in one line."""
    from ra3bench import planning as pl
    from ra3bench.errors import UsageError
    from ra3bench.planning_runs import pooled_counts, read_run, seed_counts

    runs = [read_run(path, args.suite, args.group) for path in args.from_run]
    size, selection = _suite_size(args)
    sources: dict[str, str] = {}
    where = ", ".join(run.what for run in runs)
    if args.base_rate is not None:
        mean, sources["base_rate"] = args.base_rate / 100, "given"
    elif runs:
        mean = sum(run.rate for run in runs) / len(runs)
        sources["base_rate"] = f"pass@1 {runs[0].group} of {where}"
        if mean in (0.0, 1.0):
            raise UsageError(f"pass@1 of {where} is {100 * mean:g} %: no base rate to plan from; give --base-rate PCT")
    else:
        raise UsageError("give the base pass rate (--base-rate PCT) or a measured run (--from-run RUN)")
    if args.concentration is not None:
        kappa, sources["concentration"] = args.concentration, "given"
    else:
        kappa, sources["concentration"] = pl.DEFAULT_CONCENTRATION, "default"
        counts = pooled_counts(runs)
        if counts is not None:
            fit = pl.fit_population(*counts)
            if fit.concentration is not None:
                kappa = fit.concentration
                sources["concentration"] = f"fitted to {fit.problems} per-problem results of {where}"
            sources["concentration"] += f"; {fit.note}" if fit.note else ""
        elif runs:
            sources["concentration"] += "; the run folders hold no verdicts.jsonl to fit it to"
    if args.seed_sd is not None:
        seed_sd, sources["seed_sd"] = args.seed_sd / 100, "given"
    else:
        seed_sd, sources["seed_sd"] = pl.DEFAULT_SEED_SD, "default, an assumption"
        per_run = seed_counts(runs)
        estimate = pl.seed_sd_from_runs(*per_run) if per_run else None
        if estimate is not None:
            seed_sd, sources["seed_sd"] = estimate, f"spread of {len(runs)} runs' means, net of sampling noise"
    problems = args.problems or (runs[0].problems if runs else size)
    if problems > size:
        scope = f" ({selection})" if selection else ""
        raise UsageError(f"--problems {problems}: {args.suite}{scope} has {size} problems")
    n = args.n or (runs[0].samples if runs else 1)
    seeds = _seeds(args.seeds) or max(1, len(runs))
    if args.effect is not None and not args.effect > 0:
        raise UsageError(f"--effect is the improvement to detect in pp, > 0; got {args.effect:g}")
    if args.points < 1 or args.arms < 1:
        raise UsageError("--points and --arms must be at least 1")
    if args.simulate < 0:
        raise UsageError("--simulate takes a number of experiments (0: no simulation)")
    kappa = math.inf if math.isinf(kappa) else kappa
    throughput = next((run.throughput for run in runs if run.throughput is not None), None)
    return {
        "population": pl.Population(mean, kappa),
        "design": pl.Design(problems, n, seeds, seed_sd, args.alpha, args.power),
        "suite": args.suite + (f" ({selection})" if selection else ""),
        "suite_problems": size,
        "group": runs[0].group if runs else (args.group or ""),
        "sources": sources,
        "effect": args.effect / 100 if args.effect is not None else None,
        "experiments": args.simulate,
        "throughput": throughput,
        "points": args.points,
        "arms": args.arms,
        "seed": args.sim_seed,
    }


def render(plan) -> str:
    """The plan as a terminal page: the design and where each input came from, the numbers, the cost."""
    from tabulate import tabulate

    from ra3bench.experiment_plan import duration, pp

    d, pop = plan.design, plan.population
    kappa = "inf (every problem at the base rate)" if math.isinf(pop.concentration) else f"{pop.concentration:.3g}"
    group = f" of group {plan.group}" if plan.group else ""
    out = [
        f"plan: {plan.suite}, {plan.suite_problems} problems, pass@1{group}",
        f"design: {d.problems} problems x n={d.samples} samples, {d.seeds} seed(s) per method; "
        f"alpha {d.alpha:g} two-sided, power {d.power:g}",
        f"base rate {100 * pop.mean:.1f} % ({plan.sources['base_rate']})",
        f"problems' spread: Beta, kappa {kappa} ({plan.sources['concentration']})",
        f"seed sd {pp(d.seed_sd)} ({plan.sources['seed_sd']})",
        "",
        tabulate(
            [[line.quantity, line.text, line.method] for line in plan.lines],
            headers=["quantity", "value", "method"],
            tablefmt="github",
        ),
        "",
    ]
    if plan.cost:
        c = plan.cost
        judging = ""
        if c.judging_seconds_per_sample is not None:
            judging = f", judging {c.judging_seconds_per_sample:.2f} s of it"
        out.append(f"cost: {c.seconds_per_sample:.2f} s per sample{judging}; measured: {c.source}")
        rows = [
            ["one evaluation point (one run)", f"{c.point_samples:,}", duration(c.point_s)],
            [
                f"the schedule: {c.points} point(s) x {c.seeds} seed(s) x {c.arms} arm(s)",
                f"{c.point_samples * c.points * c.runs:,}",
                duration(c.total_s),
            ],
        ]
        out.append(tabulate(rows, headers=["evaluation", "samples", "time"], tablefmt="github"))
        out.append("(evaluation only, at the measured seconds per sample; training time is not in it)")
    else:
        out.append(plan.no_cost)
    out.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(out) + "\n"
