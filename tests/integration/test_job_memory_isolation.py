"""A job's process holds its own job only: nothing of the jobs that ran before it on the worker.

A warm worker's server has read every earlier job (programs, arguments) and every child's
result frames (for a reference run: the expected outputs). A child forked from it would start
with that heap, freed copies included, and a program can read its own memory. Job A below
carries a unique secret in its program, its arguments and its return value; job B, the next
job on the same single worker, scans every readable region of its own memory
(/proc/self/maps + /proc/self/mem) for it. The secret travels to B in two halves, so B's own
arguments never contain it; a control run where B joins the halves itself proves the scan works.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_local_sandbox import FAST, job, make_sandbox, statuses, values

from ra3bench.sandbox.base import Job, Limits

SCAN = """
import ctypes

def f(head, tail, control):
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: the harness left it off; /proc/self/mem is then ours
    head, tail = head.encode(), tail.encode()
    keep = (head + tail) if control else None  # the control run plants the secret itself
    found = 0
    with open('/proc/self/maps') as maps:
        regions = maps.read().splitlines()
    with open('/proc/self/mem', 'rb', 0) as mem:
        for line in regions:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split('-'))
            if not perms.startswith('r') or end - start > 256 << 20:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            at = data.find(head)
            while at >= 0:
                found += data[at + len(head) : at + len(head) + len(tail)] == tail
                at = data.find(head, at + 1)
    return found, keep is not None
"""
LIMITS = Limits(memory_mb=1024, load_time_s=5.0)


@pytest.fixture(scope="module", params=["bwrap", "plain", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "docker":
        from ra3bench.sandbox.docker import DockerSandbox

        sb: Any = DockerSandbox(workers=1, image=request.getfixturevalue("docker_image"))
    else:
        sb = make_sandbox(request.param)  # one worker: job B runs where job A ran
    try:
        yield sb
    finally:
        sb.close()


def secret_halves() -> tuple[str, str]:
    token = uuid.uuid4().hex
    return f"ra3-isolation-{token[:16]}", f"{token[16:]}-end"


def scan(sandbox: Any, head: str, tail: str, control: bool = False) -> int:
    result = sandbox.run(job(SCAN, [[head, tail, control]], limit=30.0, limits=LIMITS))
    assert statuses(result) == ["ok"], result.calls[0].error
    return values(result)[0][0]


def test_the_scan_finds_a_secret_that_is_in_memory(sandbox: Any) -> None:
    head, tail = secret_halves()
    assert scan(sandbox, head, tail, control=True) >= 1


def test_the_next_job_cannot_find_the_previous_jobs_program_arguments_or_results(sandbox: Any) -> None:
    head, tail = secret_halves()
    secret = head + tail
    program = f"SECRET = {secret!r}\nKEEP = [SECRET * 3]\ndef f(x):\n    return [x, SECRET, {{SECRET: x}}]\n"
    first = sandbox.run(job(program, [[secret]] * 3, limits=LIMITS))
    assert statuses(first) == ["ok"] * 3 and secret in str(values(first))
    assert scan(sandbox, head, tail) == 0


def test_the_next_job_cannot_find_a_previous_stdin_jobs_input_or_answer(sandbox: Any) -> None:
    head, tail = secret_halves()
    secret = head + tail
    program = f"import sys\nprint(sys.stdin.read() + {secret!r})\n"
    first = sandbox.run(Job(program=program, calls=[[secret]] * 2, time_limits_s=[5.0] * 2, stdin=True, limits=FAST))
    assert statuses(first) == ["ok"] * 2
    assert scan(sandbox, head, tail) == 0


def test_a_recorded_reference_script_leaves_nothing_for_the_next_job(sandbox: Any) -> None:
    head, tail = secret_halves()
    secret = head + tail
    program = "def f(x):\n    return x[::-1]\n"
    script = f"assert f({secret[::-1]!r}) == {secret!r}\n"  # the expected value, as a reference run records it
    first = sandbox.run(Job(program=program, entry_point="f", script=script, record=True, limits=LIMITS))
    assert first.script is not None and first.script.status.value == "ok", first.script
    assert scan(sandbox, head, tail) == 0
