"""The known-answer experiment's plots, from its ``results.jsonl`` rows (one PNG per question)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean


def plot_all(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    return [p for p in (_learning(rows, out), _sweep(rows, out), _horizons(rows, out), _mstep(rows, out)) if p]


def _by(rows: list[dict], part: str, key: str) -> dict:
    """{key value: {seed: [points in step order]}} for one part of the experiment."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("part") == part:
            out[row[key]][row["seed"]].append(row)
    return out


def _learning(rows: list[dict], out: Path) -> Path | None:
    """Think rates and plan accuracy along the E-step, one line per seed, per c."""
    import matplotlib.pyplot as plt

    by_c = _by(rows, "c_sweep", "c")
    if not by_c:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharex=True)
    for n, (c, seeds) in enumerate(sorted(by_c.items())):
        for s, points in seeds.items():
            x = [p["estep_step"] for p in points]
            label = f"c={c}" if s == min(seeds) else None
            axes[0].plot(x, [p["think_informative"] for p in points], color=f"C{n}", label=label, alpha=0.8)
            axes[1].plot(x, [p["think_other"] for p in points], color=f"C{n}", alpha=0.8)
            axes[2].plot(x, [p["plan_accuracy"] for p in points], color=f"C{n}", alpha=0.8)
    axes[0].set_title("think rate at the body line (informative)")
    axes[1].set_title("think rate at the other boundaries")
    axes[2].set_title("plans naming the right kind")
    for ax in axes:
        ax.set_xlabel("E-step step")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    return _save(fig, out / "estep_learning.png")


def _sweep(rows: list[dict], out: Path) -> Path | None:
    """Final think rate at the body line against c, with each seed's measured gain of a right plan."""
    import matplotlib.pyplot as plt

    by_c = _by(rows, "c_sweep", "c")
    if not by_c:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    costs = sorted(by_c)
    for s in sorted({s for seeds in by_c.values() for s in seeds}):
        ax.plot(costs, [by_c[c][s][-1]["think_informative"] for c in costs], marker="o", label=f"seed {s}")
    for g in {round(r["gain_right"], 4) for r in rows if r.get("part") == "prior"}:
        ax.axvline(g, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("penalty c per comment (dashed: each prior's gain from a right plan)")
    ax.set_ylabel("think rate at the body line, end of E-step")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return _save(fig, out / "c_sweep.png")


def _horizons(rows: list[dict], out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    by_h = _by(rows, "horizon", "horizon")
    if not by_h:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for n, (h, seeds) in enumerate(sorted(by_h.items())):
        for s, points in seeds.items():
            x = [p["estep_step"] for p in points]
            label = h if s == min(seeds) else None
            axes[0].plot(x, [p["think_informative"] for p in points], color=f"C{n}", label=label, alpha=0.8)
            axes[1].plot(x, [p["plan_accuracy"] for p in points], color=f"C{n}", alpha=0.8)
    axes[0].set_title("think rate at the body line, c = 0.05")
    axes[1].set_title("plans naming the right kind")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("E-step step")
    return _save(fig, out / "horizons.png")


def _mstep(rows: list[dict], out: Path) -> Path | None:
    """Held-out code log-likelihood per token against M-step steps: RA3 (own latents) and NTP."""
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.get("part") == "mstep"]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    series = {  # (method, field): (label, line style)
        ("ra3", "marginal_lp"): ("RA3, log p(code) over its own plans", "-"),
        ("ntp", "marginal_lp"): ("NTP, log p(code) over its own plans", "-"),
        ("ra3", "own_latents_lp"): ("RA3, code given its sampled comments", "--"),
    }
    for n, ((method, field), (label, style)) in enumerate(series.items()):
        steps = sorted({r["steps"] for r in points if r["method"] == method and field in r})
        values = [mean(r[field] for r in points if r["method"] == method and r["steps"] == s) for s in steps]
        ax.plot(steps, values, style, marker="o", color=f"C{n}", label=f"{label} (seed mean)")
        for r in points:
            if r["method"] == method and field in r:
                ax.scatter([r["steps"]], [r[field]], color=f"C{n}", s=8, alpha=0.4)
    ax.set_xlabel("M-step optimizer steps (same data, same settings)")
    ax.set_ylabel("held-out code log-likelihood per token")
    ax.legend(fontsize=8)
    return _save(fig, out / "mstep_vs_ntp.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
