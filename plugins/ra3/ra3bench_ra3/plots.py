"""``estep.png``: what each E-step did, from the run's ``curve.jsonl`` (redrawn after every iteration)."""

from __future__ import annotations

import json
from pathlib import Path

ESTEP_PNG = "estep.png"


def estep_lines(curve: Path) -> list[dict]:
    """The E-step's lines (per policy-gradient step) and the probe's (one per E-step) of a curve file."""
    if not curve.exists():
        return []
    lines = [json.loads(text) for text in curve.read_text().splitlines() if text.strip()]
    return [line for line in lines if "estep_step" in line or "probe_think_rate_before" in line]


def plot_estep(curve: Path, out: Path) -> Path | None:
    """Four panels against the E-step's steps, all iterations in a row: its reward, its think rate with the
    probe's before and after, the probe's gain before and after, the act cross-talk. None: nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = estep_lines(curve)
    steps = [line for line in lines if "estep_step" in line]
    probes = [line for line in lines if "probe_think_rate_before" in line]
    if not steps and not probes:
        return None
    x: list[int] = []
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    base = 0
    for line in steps:  # one x per policy-gradient step, iterations after one another
        it = line.get("em_iteration", 1)
        if it not in starts:
            base = max(x, default=0)
            starts[it] = base
        x.append(base + line["estep_step"])
        ends[it] = x[-1]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    (reward, think), (gain, cross) = axes
    reward.plot(x, [line["estep_reward"] for line in steps], marker=".")
    reward.set_title("E-step reward (its training batches)")
    think.plot(x, [line["estep_think_rate"] for line in steps], marker=".", label="training batches")
    cross.plot(x, [line.get("estep_act_crosstalk", float("nan")) for line in steps], marker=".")
    cross.set_title("act cross-talk: |A| where the whole group acted / mean |A|")
    for p in probes:
        it = p.get("em_iteration", 1)
        x0, x1 = starts.get(it, 0), ends.get(it, starts.get(it, 0))
        think.plot([x0, x1], [p["probe_think_rate_before"], p["probe_think_rate_after"]], "s--", color="C3",
                   label="held-out probe" if p is probes[0] else None)  # fmt: skip
        gain.plot([x0, x1], [p["probe_gain_before"], p["probe_gain_after"]], "s--", color="C3",
                  label="gain (c aside)" if p is probes[0] else None)  # fmt: skip
        gain.plot([x0, x1], [p["probe_reward_before"], p["probe_reward_after"]], "o:", color="C2",
                  label="gain - c x comments" if p is probes[0] else None)  # fmt: skip
    think.set_title("think rate")
    think.set_ylim(-0.02, 1.02)
    think.legend(loc="best", fontsize=8)
    gain.set_title(
        f"held-out probe: what comments buy pi ({probes[0]['probe_snippets']} snippets)" if probes else "probe"
    )
    gain.axhline(0.0, color="grey", lw=0.5)
    if probes:
        gain.legend(loc="best", fontsize=8)
    for ax in (gain, cross):
        ax.set_xlabel("E-step step (iterations in a row)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
