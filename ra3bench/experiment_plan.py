"""The answer of ``ra3bench plan``: every number with what produced it.

:func:`make_plan` puts together the closed-form numbers of :mod:`ra3bench.planning`, the simulation
that checks them when asked (``experiments`` > 0), and the cost of the schedule from a measured
throughput (:mod:`ra3bench.planning_runs`). The CLI only prints a :class:`Plan`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ra3bench import planning as pl
from ra3bench.planning_runs import Throughput

CLOSED = "closed form"


def pp(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f} pp"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass
class Line:
    """One number: ``value`` (fractions for rates and effects, counts for problems, samples, seeds),
    ``text`` as printed, ``method``: closed form or simulation."""

    quantity: str
    value: float | int | None
    text: str
    method: str


@dataclass
class Cost:
    """What the schedule costs at the measured speed (evaluation only; training is not in it)."""

    seconds_per_sample: float
    judging_seconds_per_sample: float | None
    source: str
    same_machine: bool
    point_samples: int
    point_s: float
    points: int
    seeds: int
    arms: int

    @property
    def runs(self) -> int:
        return self.seeds * self.arms

    @property
    def total_s(self) -> float:
        return self.point_s * self.points * self.runs


@dataclass
class Plan:
    suite: str
    suite_problems: int
    group: str
    population: pl.Population
    design: pl.Design
    sources: dict[str, str]  # base_rate, concentration, seed_sd: where each value came from
    effect: float | None
    lines: list[Line] = field(default_factory=list)
    cost: Cost | None = None
    no_cost: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        cost = None
        if self.cost:
            cost = {**asdict(self.cost), "runs": self.cost.runs, "total_s": self.cost.total_s}
        return {
            "suite": self.suite,
            "suite_problems": self.suite_problems,
            "group": self.group,
            "metric": "pass@1",
            "base_rate": self.population.mean,
            "concentration": _finite(self.population.concentration),  # null: every problem at the base rate
            "design": asdict(self.design),
            "sources": self.sources,
            "effect": self.effect,
            "results": [asdict(line) for line in self.lines],
            "cost": cost,
            "no_cost": self.no_cost,
            "notes": self.notes,
        }


def make_plan(
    population: pl.Population,
    design: pl.Design,
    *,
    suite: str,
    suite_problems: int,
    group: str,
    sources: dict[str, str],
    effect: float | None = None,
    experiments: int = 0,
    throughput: Throughput | None = None,
    points: int = 1,
    arms: int = 2,
    seed: int = 0,
) -> Plan:
    """Closed-form MDE and (given ``effect``) power and the problems, samples and seeds it needs; the same
    by simulation of ``experiments`` experiments when > 0; the cost when ``throughput`` is known."""
    plan = Plan(suite, suite_problems, group, population, design, sources, effect)
    simulated = f"simulation ({experiments:,} experiments)"
    mde = pl.mde(population, design)
    plan.lines.append(Line("minimum detectable effect", mde, pp(mde), CLOSED))
    if mde is not None:
        se = pl.variance(population, design, mde).se
        plan.lines.append(Line(f"sd of the difference at {pp(mde)}", se, pp(se), CLOSED))
    if experiments:
        sim_mde = pl.simulated_mde(population, design, experiments, seed=seed)
        plan.lines.append(Line("minimum detectable effect", sim_mde, pp(sim_mde), simulated))
        if mde is not None:
            sim = pl.simulate(population, design, mde, experiments, seed=seed)
            plan.lines.append(Line(f"sd of the difference at {pp(mde)}", sim.sd, pp(sim.sd), simulated))
            if effect is None:  # with an effect, its power is the check (below)
                plan.lines.append(Line(f"power at {pp(mde)}", sim.power, _percent(sim), simulated))
            if abs(sim.power - design.power) > 3 * sim.power_se:
                plan.notes.append(
                    f"the simulated power at the closed-form MDE is {100 * sim.power:.0f} %, not "
                    f"{100 * design.power:.0f} %: the normal approximation is off for this design; "
                    "trust the simulated MDE"
                )
    if effect is not None:
        _for_effect(plan, effect, experiments, simulated, seed)
    shares = pl.variance(population, design, effect if effect is not None else (mde or 0.0)).shares()
    plan.lines.append(
        Line(
            "variance: problems / seeds / sampling",
            None,
            " / ".join(f"{100 * shares[k]:.0f} %" for k in ("problems", "seeds", "sampling")),
            CLOSED,
        )
    )
    if design.seeds == 1 and design.seed_sd > 0:
        plan.notes.append(
            "one seed per method: the runs cannot measure seed variation, so a paired interval over "
            "problems (ra3bench compare of two runs) leaves it out and is too narrow for a method "
            f"comparison; these numbers include the seed sd ({pp(design.seed_sd)})"
        )
    if throughput is not None:
        plan.cost = _cost(design, throughput, points, arms)
        if not plan.cost.same_machine:
            host = throughput.host
            plan.notes.append(
                f"the speed was measured on another machine ({host.get('cores', '?')} cores, "
                f"{host.get('cpu') or '?'}): the cost is that machine's"
            )
    else:
        plan.no_cost = (
            "cost: not estimated, no measured run. Give --from-run with a run measured on this machine: a "
            "`ra3bench run` folder, or a training run folder (its curve.jsonl has each evaluation's eval_time_s)"
        )
    return plan


def _percent(sim: pl.Simulation) -> str:
    return f"{100 * sim.power:.0f} % ± {100 * sim.power_se:.1f}"


def _for_effect(plan: Plan, effect: float, experiments: int, simulated: str, seed: int) -> None:
    population, design = plan.population, plan.design
    p = pl.power(population, design, effect)
    plan.lines.append(Line(f"power at {pp(effect)}", p, f"{100 * p:.0f} %", CLOSED))
    if experiments:
        sim = pl.simulate(population, design, effect, experiments, seed=seed)
        plan.lines.append(Line(f"power at {pp(effect)}", sim.power, _percent(sim), simulated))
    S, n, P = design.seeds, design.samples, design.problems
    problems = pl.min_problems(population, design, effect, plan.suite_problems)
    text = str(problems) if problems else f"more than the suite's {plan.suite_problems}"
    plan.lines.append(Line(f"problems needed for {pp(effect)} (n={n}, {S} seed(s))", problems, text, CLOSED))
    if experiments and problems:
        sim = pl.simulate(population, pl.Design(**{**asdict(design), "problems": problems}), effect, experiments)
        plan.lines.append(Line(f"power with {problems} problems", sim.power, _percent(sim), simulated))
    samples = pl.min_samples(population, design, effect)
    text = str(samples) if samples else "more than 4096: problems or seeds limit it"
    plan.lines.append(Line(f"samples per problem needed for {pp(effect)} ({P} problems)", samples, text, CLOSED))
    seeds = pl.min_seeds(population, design, effect)
    text = str(seeds) if seeds else "more than 32"
    plan.lines.append(Line(f"seeds per method needed for {pp(effect)} ({P} problems, n={n})", seeds, text, CLOSED))


def _cost(design: pl.Design, throughput: Throughput, points: int, arms: int) -> Cost:
    samples = design.problems * design.samples
    return Cost(
        seconds_per_sample=throughput.seconds_per_sample,
        judging_seconds_per_sample=throughput.judging_seconds_per_sample,
        source=throughput.source,
        same_machine=throughput.same_machine(),
        point_samples=samples,
        point_s=samples * throughput.seconds_per_sample,
        points=points,
        seeds=design.seeds,
        arms=arms,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
