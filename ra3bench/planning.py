"""How many problems, samples and seeds a method comparison needs, and what effect a design can detect.

The design is the one ``ra3bench compare`` and the seeds' hierarchical bootstrap analyse: two
methods A and B, each trained with S seeds, each run evaluated on the same P problems with n
samples each, the metric pass@1 (the mean over problems of c/n), the estimate of the effect
``D = mean(B runs) - mean(A runs)``. The model has three sources of variation:

* **problems** differ in difficulty: problem i's pass rate under A is drawn from a Beta with the
  base rate as mean and a concentration kappa (alpha + beta; small kappa: most problems always
  or never solved, as code benchmarks are). A method shifts every problem's log-odds by the same
  amount (a Rasch-type effect), so problems near 0 or 1 move little and the effect differs from
  problem to problem. Problems are shared by both arms: their difficulty cancels in D, what stays
  is how much the effect differs between problems;
* **seeds**: a run's log-odds are shifted by a normal seed offset, scaled so that the sd of a
  run's mean pass rate is ``seed_sd``; seeds of A and B are independent (not paired);
* **sampling**: a run's c out of n samples on a problem is binomial.

:func:`variance` gives Var(D) in closed form for this model (the law of total variance over
problems, then seeds and samples; expectations by quadrature: quantile nodes of the Beta, Gauss-
Hermite nodes of the seed offset). Power uses the normal approximation of a two-sided test that
estimates Var(D) (what an interval does): ``Phi(d/SE - z) + Phi(-d/SE - z)``, as in the
textbook sample size of a two-proportion test (Chow, Shao & Wang, *Sample Size Calculations in
Clinical Research*, 4.2) and E. Miller, *Adding Error Bars to Evals* (arXiv:2411.00640), 5.
:func:`simulate` draws whole experiments from the same model and checks both the variance and
the normal approximation. Only pass@1 is planned; scipy does the special functions and roots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from ra3bench.errors import UsageError

# Defaults, stated where they are used (docs/reports.md, "Planning an experiment"):
DEFAULT_CONCENTRATION = 1.0  # LiveCodeBench's official per-problem pass@1 (n = 10, T 0.2) fits 0.06-0.39
DEFAULT_SEED_SD = 0.01  # 1 pp: an assumption, not a measurement; --from-run with several seeds estimates it
QUADRATURE_NODES = 1000  # quantile nodes of the Beta
HERMITE_NODES = 24  # Gauss-Hermite nodes of a seed offset
_EPS = 1e-12
_NORMAL = NormalDist()


def _scipy():
    try:
        import scipy.optimize
        import scipy.special
        import scipy.stats
    except ImportError:  # a dev dependency; the harness itself does not need it
        raise UsageError("planning needs scipy: pip install scipy") from None
    return scipy


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))  # 1 / (1 + e^-x) without overflow


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Population:
    """Problems' pass rates under the base method: Beta(mean * kappa, (1 - mean) * kappa); kappa inf:
    every problem at the mean (the textbook two-proportion case)."""

    mean: float
    concentration: float = DEFAULT_CONCENTRATION

    def __post_init__(self) -> None:
        if not 0 < self.mean < 1:
            raise UsageError(f"the base rate must be between 0 and 100 %, got {100 * self.mean:g} %")
        if not self.concentration > 0:
            raise UsageError(f"the concentration must be > 0, got {self.concentration:g}")

    @property
    def beta_params(self) -> tuple[float, float]:
        return self.mean * self.concentration, (1 - self.mean) * self.concentration

    def logits(self) -> np.ndarray:
        """Quadrature nodes: the log-odds at the Beta's quantiles (j + 1/2) / J, equal weights."""
        return _nodes(self)

    def draw_logits(self, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
        if math.isinf(self.concentration):
            return np.full(size, float(_logit(np.array(self.mean))))
        a, b = self.beta_params
        return _logit(rng.beta(a, b, size))


@lru_cache(maxsize=64)
def _nodes(population: Population) -> np.ndarray:
    if math.isinf(population.concentration):
        return np.array([float(_logit(np.array(population.mean)))])
    a, b = population.beta_params
    quantiles = (np.arange(QUADRATURE_NODES) + 0.5) / QUADRATURE_NODES
    return _logit(_scipy().stats.beta.ppf(quantiles, a, b))


@dataclass(frozen=True)
class Design:
    """Per method: ``seeds`` training runs, each evaluated on the same ``problems`` with ``samples``
    (n) samples per problem."""

    problems: int
    samples: int
    seeds: int = 1
    seed_sd: float = DEFAULT_SEED_SD  # sd of a run's mean pass rate over seeds, a fraction (0.01 = 1 pp)
    alpha: float = 0.05
    power: float = 0.8

    def __post_init__(self) -> None:
        problems = []
        if self.problems < 1:
            problems.append(f"problems must be at least 1, got {self.problems}")
        if self.samples < 1:
            problems.append(f"samples per problem (n) must be at least 1, got {self.samples}")
        if self.seeds < 1:
            problems.append(f"seeds must be at least 1, got {self.seeds}")
        if not 0 <= self.seed_sd < 0.5:
            problems.append(f"the seed sd must be between 0 and 50 pp, got {100 * self.seed_sd:g} pp")
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            problems.append("alpha and power must be between 0 and 1")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def z_alpha(self) -> float:
        return _NORMAL.inv_cdf(1 - self.alpha / 2)


@dataclass(frozen=True)
class Arm:
    """One method on the logit scale: its shift (so its mean over problems and seeds is ``rate``) and
    the sd of its seed offsets (so the sd of a run's mean is the design's seed sd)."""

    rate: float
    shift: float
    seed_scale: float


def _hermite() -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite.hermgauss(HERMITE_NODES)
    return math.sqrt(2) * x, w / math.sqrt(math.pi)  # E f(Z) = sum w f(z), Z ~ N(0, 1)


def _rates(population: Population, shift: float, seed_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(rates at every problem node x seed node, seed weights): shape (H, J), (H,)."""
    z, w = _hermite()
    if seed_scale == 0:
        z, w = np.zeros(1), np.ones(1)
    return _expit(population.logits()[None, :] + shift + seed_scale * z[:, None]), w


def _mean_rate(population: Population, shift: float, seed_scale: float) -> float:
    rates, w = _rates(population, shift, seed_scale)
    return float(w @ rates.mean(axis=1))


def _seed_var(population: Population, shift: float, seed_scale: float) -> float:
    """Var over seed offsets of a run's mean pass rate over the population."""
    rates, w = _rates(population, shift, seed_scale)
    means = rates.mean(axis=1)
    return float(w @ means**2 - (w @ means) ** 2)


@lru_cache(maxsize=4096)
def arm(population: Population, rate: float, seed_sd: float) -> Arm:
    """The shift and seed scale that give the population mean ``rate`` and seed sd ``seed_sd``."""
    if not 0 < rate < 1:
        raise UsageError(f"a method's pass rate must stay between 0 and 100 %, got {100 * rate:g} %")
    optimize = _scipy().optimize

    def shift_for(scale: float) -> float:
        reach = 60 + 10 * scale  # beyond every problem node and seed node
        return optimize.brentq(lambda a: _mean_rate(population, a, scale) - rate, -reach, reach, xtol=1e-10)

    if seed_sd == 0:
        return Arm(rate, shift_for(0.0), 0.0)
    top = 0.05
    while _seed_var(population, shift_for(top), top) < seed_sd**2:
        if top > 100:
            raise UsageError(
                f"a seed sd of {100 * seed_sd:g} pp is more than a mean pass rate of {100 * rate:g} % can vary; "
                "give a smaller --seed-sd"
            )
        top *= 2
    scale = optimize.brentq(
        lambda s: _seed_var(population, shift_for(s), s) - seed_sd**2, 1e-9, top, xtol=1e-10, rtol=1e-10
    )
    return Arm(rate, shift_for(scale), scale)


@dataclass(frozen=True)
class Variance:
    """Var(D) split by source (fractions squared); ``effect`` is the difference it was computed at."""

    effect: float
    problems: float  # the effect differs between problems: Var(g_B - g_A) / P
    seeds: float  # seed offsets of a run's mean: sum over arms seed_sd^2 (1 - 1/P) / S
    seed_problem: float  # a seed moves problems unequally: sum over arms E Var_u(r) / (S P)
    sampling: float  # binomial noise of n samples: sum over arms E r(1 - r) / (S P n)

    @property
    def total(self) -> float:
        return self.problems + self.seeds + self.seed_problem + self.sampling

    @property
    def se(self) -> float:
        return math.sqrt(self.total)

    def shares(self) -> dict[str, float]:
        total = self.total or 1.0
        return {
            "problems": self.problems / total,
            "seeds": (self.seeds + self.seed_problem) / total,
            "sampling": self.sampling / total,
        }


def variance(population: Population, design: Design, effect: float) -> Variance:
    """Var(D) of the design when B's mean pass rate is the base rate + ``effect`` (closed form)."""
    P, S, n = design.problems, design.seeds, design.samples
    per_problem, seeds, seed_problem, sampling = [], 0.0, 0.0, 0.0
    for rate in (population.mean, population.mean + effect):
        a = arm(population, rate, design.seed_sd)
        rates, w = _rates(population, a.shift, a.seed_scale)
        g = w @ rates  # per problem node: mean over seeds
        per_problem.append(g)
        seeds += design.seed_sd**2 * (1 - 1 / P) / S
        seed_problem += float(np.mean(w @ rates**2 - g**2)) / (S * P)
        sampling += float(np.mean(w @ (rates * (1 - rates)))) / (S * P * n)
    diff = per_problem[1] - per_problem[0]
    return Variance(effect, float(np.var(diff)) / P, seeds, seed_problem, sampling)


def power(population: Population, design: Design, effect: float) -> float:
    """Power of the two-sided level-alpha test to detect ``effect`` (normal approximation)."""
    if effect == 0:
        return design.alpha
    ratio = abs(effect) / variance(population, design, effect).se
    z = design.z_alpha
    return _NORMAL.cdf(ratio - z) + _NORMAL.cdf(-ratio - z)


def largest_effect(population: Population, design: Design) -> float:
    """The largest improvement the base rate leaves room for: B's mean stays below 100 % by a margin
    its seeds can vary in."""
    return (1 - population.mean) - max(1e-3, 3 * design.seed_sd)


def mde(population: Population, design: Design) -> float | None:
    """The smallest improvement detected with the design's power; None if no effect up to 100 % is."""
    top = largest_effect(population, design)
    if top <= 0 or power(population, design, top) < design.power:
        return None
    low = min(1e-6, top / 2)
    if power(population, design, low) >= design.power:
        return low
    return float(_scipy().optimize.brentq(lambda d: power(population, design, d) - design.power, low, top, xtol=1e-6))


def _smallest(ok, low: int, high: int) -> int | None:
    """The smallest integer in [low, high] where the monotone ``ok`` holds, None if none does."""
    if not ok(high):
        return None
    while low < high:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid + 1
    return low


def min_problems(population: Population, design: Design, effect: float, cap: int) -> int | None:
    """Fewest problems that detect ``effect`` with the design's n and seeds; None if ``cap`` problems do not."""

    def ok(p: int) -> bool:
        return power(population, _with(design, problems=p), effect) >= design.power

    return _smallest(ok, 2, cap)


def min_samples(population: Population, design: Design, effect: float, cap: int = 4096) -> int | None:
    """Fewest samples per problem that detect ``effect`` with the design's problems and seeds."""

    def ok(n: int) -> bool:
        return power(population, _with(design, samples=n), effect) >= design.power

    return _smallest(ok, 1, cap)


def min_seeds(population: Population, design: Design, effect: float, cap: int = 32) -> int | None:
    """Fewest seeds per method that detect ``effect`` with the design's problems and n."""

    def ok(s: int) -> bool:
        return power(population, _with(design, seeds=s), effect) >= design.power

    return _smallest(ok, 1, cap)


def _with(design: Design, **changes: int) -> Design:
    return replace(design, **changes)


@dataclass(frozen=True)
class Simulation:
    """Monte Carlo of whole experiments drawn from the model: problems from the Beta, seed offsets,
    binomial samples. ``sd``: of D over the experiments; ``power``: how often |D| exceeded the test's
    critical value z * SE (the closed-form SE: a test that estimates Var(D) well), so a variance or a
    normal approximation that is off shows in the power."""

    effect: float
    experiments: int
    mean: float
    sd: float
    power: float

    @property
    def power_se(self) -> float:
        return math.sqrt(max(self.power * (1 - self.power), 1e-12) / self.experiments)


def simulate(population: Population, design: Design, effect: float, experiments: int, *, seed: int = 0) -> Simulation:
    """Draw ``experiments`` experiments (vectorised in chunks) and measure D's mean, sd and the test's power."""
    if experiments < 2:
        raise UsageError(f"--simulate needs at least 2 experiments, got {experiments}")
    rng = np.random.default_rng(seed)
    P, S, n = design.problems, design.seeds, design.samples
    arms = [arm(population, rate, design.seed_sd) for rate in (population.mean, population.mean + effect)]
    chunk = max(1, 2_000_000 // (S * P))
    deltas = np.empty(experiments)
    for start in range(0, experiments, chunk):
        size = min(chunk, experiments - start)
        logits = population.draw_logits(rng, (size, 1, P))  # shared by both arms and all seeds
        means = []
        for a in arms:
            offsets = a.seed_scale * rng.standard_normal((size, S, 1))
            counts = rng.binomial(n, _expit(logits + a.shift + offsets))
            means.append(counts.mean(axis=(1, 2)) / n)
        deltas[start : start + size] = means[1] - means[0]
    rejected = np.abs(deltas) > design.z_alpha * variance(population, design, effect).se
    return Simulation(effect, experiments, float(deltas.mean()), float(deltas.std(ddof=1)), float(rejected.mean()))


def simulated_mde(
    population: Population, design: Design, experiments: int, *, seed: int = 0, steps: int = 14
) -> float | None:
    """The MDE by simulation: bisection on the effect, every point drawn with the same random numbers
    (so the simulated power is monotone in the effect up to noise); None if the largest effect fails."""
    top = largest_effect(population, design)

    def ok(effect: float) -> bool:
        return simulate(population, design, effect, experiments, seed=seed).power >= design.power

    if top <= 0 or not ok(top):
        return None
    low, high = 0.0, top
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high


@dataclass(frozen=True)
class PopulationFit:
    """A Beta fitted to per-problem pass counts (beta-binomial maximum likelihood)."""

    mean: float
    concentration: float | None  # None: not identifiable (one sample per problem)
    problems: int
    note: str = ""


def fit_population(samples: np.ndarray, passed: np.ndarray) -> PopulationFit:
    """Maximum-likelihood Beta(mean, kappa) of per-problem pass rates from ``passed`` of ``samples``
    (one entry per problem and run); kappa capped at 1e4 (no spread beyond sampling noise)."""
    n = np.asarray(samples, dtype=int)
    c = np.asarray(passed, dtype=int)
    if n.size == 0:
        raise UsageError("no per-problem results to fit")
    mean = float(c.sum() / n.sum())
    if mean in (0.0, 1.0):
        word = "no" if mean == 0 else "every"
        return PopulationFit(mean, None, int(n.size), f"{word} sample passed: the spread of difficulty is not seen")
    if n.max() < 2:
        return PopulationFit(mean, None, int(n.size), "one sample per problem: the spread of difficulty is not seen")
    scipy = _scipy()

    def nll(x: np.ndarray) -> float:
        m, k = float(_expit(np.array(x[0]))), math.exp(x[1])
        return -float(scipy.stats.betabinom.logpmf(c, n, m * k, (1 - m) * k).sum())

    start = np.array([float(_logit(np.array(mean))), 0.0])
    bounds = [(-30.0, 30.0), (math.log(1e-3), math.log(1e4))]
    best = scipy.optimize.minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    kappa = math.exp(best.x[1])
    note = "no spread beyond sampling noise (kappa at its 1e4 cap)" if kappa > 0.99e4 else ""
    return PopulationFit(float(_expit(np.array(best.x[0]))), kappa, int(n.size), note)


def seed_sd_from_runs(samples: list[np.ndarray], passed: list[np.ndarray]) -> float | None:
    """The sd of a run's mean over seeds, net of sampling noise (method of moments): the variance of the
    runs' means minus each mean's estimated binomial variance; None with fewer than 2 runs or n = 1."""
    if len(samples) < 2 or any(np.asarray(n).min() < 2 for n in samples):
        return None
    means, noise = [], []
    for n, c in zip(samples, passed, strict=True):
        n, c = np.asarray(n, dtype=float), np.asarray(c, dtype=float)
        rate = c / n
        means.append(rate.mean())
        noise.append(float(np.sum(rate * (1 - rate) / (n - 1))) / n.size**2)
    return math.sqrt(max(0.0, float(np.var(means, ddof=1)) - float(np.mean(noise))))
