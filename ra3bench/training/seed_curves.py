"""Several training seeds of one method as one curve: the seed mean, the min-max over seeds as its band.

A run's own band is the 95% interval over problems of that one run; it says nothing about how
much another seed of the same method would differ. With several seeds, the plot draws their mean
at each step, shaded from the lowest to the highest seed there. Min-max rather than +-1 sd: with
the 2 to 5 seeds a training comparison affords, an sd is itself a rough guess, while the range
shows every seed that was run; the seed-and-problem interval of a difference between methods is
``ra3bench compare``'s (:mod:`ra3bench.report.hierarchical`).

The mean is taken only at the steps every seed evaluated (a seed still running, or stopped, does
not pull the mean towards the seeds that got further); the training metric (loss, reward) is
averaged the same way, step by step.
"""

from __future__ import annotations

from collections.abc import Sequence

from ra3bench.training.curves import eval_series, train_series

BAND = "min-max over seeds"


def seed_label(label: str, n_seeds: int) -> str:
    """The legend entry of a method: ``"ntp (mean of 3 seeds, band: min-max)"``; a single run as named."""
    return label if n_seeds < 2 else f"{label} (mean of {n_seeds} seeds, band: min-max)"


def seed_band(curves: Sequence[Sequence[dict]]) -> list[dict]:
    """One curve from several seeds' ``curve.jsonl`` records, in the shape :func:`plot_curves` draws.

    An eval point carries the seeds' mean ``pass_at_k``, ``ci_low`` / ``ci_high`` as the lowest and
    highest seed, the values themselves (``seeds``), ``n_seeds`` and ``band``; x positions
    (``tokens_seen``, ``wall_time_s``) are the seeds' means. One curve comes back as it is.
    """
    if len(curves) == 1:
        return list(curves[0])
    if not curves:
        return []
    out: list[dict] = []
    per_seed = [eval_series(curve) for curve in curves]
    shared_keys = set.intersection(*(set(series) for series in per_seed))
    for key in sorted(shared_keys):
        by_step = [{int(p["step"]): p for p in series[key]} for series in per_seed]
        for step in sorted(set.intersection(*(set(steps) for steps in by_step))):
            points = [steps[step] for steps in by_step]
            values = [float(p["pass_at_k"]) for p in points]
            out.append(
                _mean_of(points, ("tokens_seen", "wall_time_s", "eval_time_s"))
                | {
                    "kind": "eval",
                    "step": step,
                    "suite": key[0],
                    "group": key[1],
                    "k": key[2],
                    "pass_at_k": sum(values) / len(values),
                    "ci_low": min(values),
                    "ci_high": max(values),
                    "seeds": values,
                    "n_seeds": len(values),
                    "band": BAND,
                    "n_problems": points[0].get("n_problems"),
                }
            )
    trains = [{int(p["step"]): p for p in train_series(curve)} for curve in curves]
    for step in sorted(set.intersection(*(set(steps) for steps in trains))):
        points = [steps[step] for steps in trains]
        numeric = {k for k, v in points[0].items() if _number(v)} - {"step"}
        shared = [k for k in sorted(numeric) if all(_number(p.get(k)) for p in points)]
        out.append({"kind": "train", "step": step} | _mean_of(points, shared) | {"n_seeds": len(points)})
    return out


def _mean_of(points: Sequence[dict], keys: Sequence[str]) -> dict:
    return {k: sum(float(p[k]) for p in points) / len(points) for k in keys if all(_number(p.get(k)) for p in points)}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
