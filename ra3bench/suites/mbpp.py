"""MBPP (Google Research, replayed with its own asserts) and MBPP+ (evalplus, value tests)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path
from typing import ClassVar

from ra3bench.suites import SUITES
from ra3bench.suites.base import Comparison, DataFile, Problem, RowPerProblemSuite, Suite, TestGroup
from ra3bench.suites.data import read_jsonl
from ra3bench.suites.humaneval import evalplus_problem, sample_program
from ra3bench.suites.mbpp_inputs import restore_inputs

# The standard MBPP test split (README of google-research/mbpp): task ids 11..510; the training split 601..974.
MBPP_TEST_IDS = range(11, 511)
MBPP_TRAIN_IDS = range(601, 975)

# Special oracles for MBPP+ by entry point: evalplus 0.3.1's lists (evalplus/eval/_special_oracle.py and
# evalplus/eval/__init__.py), implemented in ra3bench.oracles. Names absent from v0.2.0 are kept for older data.
MBPP_PLUS_ORACLES: dict[str, str] = {
    **dict.fromkeys(
        (
            "similar_elements",
            "find_char_long",
            "common_in_nested_lists",
            "extract_singly",
            "larg_nnum",
            "intersection_array",
            "find_dissimilar",
            "Diff",
        ),
        "set_eq",  # the order of the returned elements is unspecified
    ),
    **dict.fromkeys(("check_str", "text_match_three", "text_starta_endb"), "not_none"),  # a match object, any
    "are_equivalent": "are_equivalent",
    "sum_div": "sum_div",
    "surface_Area": "surface_area",
    "digit_distance_nums": "digit_distance_nums",
}


def mbpp_entry_point(code: str, first_test: str) -> str:
    """The function the tests call: the first name called in the first assert that ``code`` defines."""
    with warnings.catch_warnings():  # some references have invalid escapes ("\w"): legal, but they warn
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        tree = ast.parse(code)
    defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    try:
        test_tree = ast.parse(first_test)
    except SyntaxError:
        test_tree = None
    if test_tree is not None:
        calls = [
            node
            for node in ast.walk(test_tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined
        ]
        if calls:
            # ast.walk is breadth-first: the outermost call comes first; sort by position to be explicit.
            calls.sort(key=lambda node: (node.lineno, node.col_offset))
            assert isinstance(calls[0].func, ast.Name)
            return calls[0].func.id
    if defined:
        return defined[0]
    raise ValueError("reference code defines no function")


def mbpp_instruction(text: str, tests: list[str]) -> str:
    """MBPP's standard (few-shot-free) instruction."""
    joined = "\n".join(tests)
    return (
        f"You are an expert Python programmer, and here is your task: {text} "
        f"Your code should pass these tests:\n\n{joined}\n"
    )


@SUITES.register("mbpp")
class MbppSuite(Suite):
    """The original MBPP test split (500 tasks), judged by replaying its asserts."""

    name = "mbpp"
    description = "Google Research MBPP, test split (task ids 11..510), judged by replaying its asserts"
    versions = {  # noqa: RUF012 - typed as in Suite; never mutated
        # Upstream serves mbpp.jsonl uncompressed; `sha256` pins the `gzip -9 -n` copy kept in shared/datasets,
        # member/member_sha256 the uncompressed upstream file. Either form is accepted (see suites.data).
        "google-research": DataFile(
            filename="mbpp.jsonl.gz",
            sha256="2809de2a637dffecb4bd58128bcfe1250d0a335779b019956b7f3c28f646e4a6",
            subdir="mbpp",
            url="https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl",
            member="mbpp.jsonl",
            member_sha256="ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f",
        )
    }
    default_version = "google-research"
    group_names = ("base",)
    task_ids: ClassVar[range] = MBPP_TEST_IDS

    def parse(self, path: Path) -> list[Problem]:
        problems = []
        for row in read_jsonl(path):
            if row["task_id"] not in self.task_ids:
                continue
            tests: list[str] = row["test_list"]
            text: str = row["text"]
            check = row.get("test_setup_code", "") + "\n" + "\n".join(tests) + "\n"
            problems.append(
                Problem(
                    task_id=f"Mbpp/{row['task_id']}",
                    prompt='"""\n' + text + "\n" + tests[0] + '\n"""\n',
                    instruction=mbpp_instruction(text, tests),
                    entry_point=mbpp_entry_point(row["code"], tests[0]),
                    reference=row["code"],
                    groups={"base": TestGroup(name="base", comparison=Comparison.REPLAY, check=check)},
                    metadata={"challenge_test_list": row.get("challenge_test_list", [])},
                )
            )
        return problems

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        return sample_program(problem, sample)


@SUITES.register("mbpp-train")
class MbppTrainSuite(MbppSuite):
    """MBPP's training split (374 tasks), built exactly as the test split: problems to train on (RLVR's
    ``mbpp-train`` problem set), never a benchmark. Task ids are ``Mbpp/<id>``, the form MBPP+ uses,
    so an overlap with an MBPP+ evaluation is visible by id."""

    name = "mbpp-train"
    description = "Google Research MBPP, training split (task ids 601..974): for training, not a benchmark"
    task_ids: ClassVar[range] = MBPP_TRAIN_IDS


@SUITES.register("mbpp+")
class MbppPlusSuite(RowPerProblemSuite):
    """MBPP+ : 378 cleaned MBPP tasks with evalplus's base and plus inputs, judged by value."""

    name = "mbpp+"
    description = "EvalPlus MBPP+ (378 tasks; base + plus inputs compared by value)"
    versions = {  # noqa: RUF012 - typed as in Suite; never mutated
        "v0.2.0": DataFile(
            filename="MbppPlus.jsonl.gz",
            sha256="af43697e8791c4c149bdfd6b489d8b5412507551ac20e28a439f650b8225db63",
            subdir="mbppplus",
            url="https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz",
        )
    }
    default_version = "v0.2.0"
    group_names = ("base", "plus")

    def problem_from_row(self, row: dict) -> Problem:
        return evalplus_problem(
            row,
            reference=row["canonical_solution"],
            oracle=MBPP_PLUS_ORACLES.get(row["entry_point"]),
            restore=restore_inputs,
        )

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        return sample_program(problem, sample)
