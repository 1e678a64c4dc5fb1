"""Large return values travel as their bytes (``Job.raw_values``): hashed by the host, parsed only when needed.

Neither the server nor the host parses a value longer than ``RAW_MIN_BYTES`` on the way: the host
hashes the bytes, and bytes equal to the expected value's encoding (or to that of its int form:
``2`` for ``2.0``) pass. Anything else is parsed as strictly as a frame and judged as before. These
tests check that verdicts are the ones full parsing gives, that the expected value is then never
decoded, and that every raw frame a hostile child (or a subverted server) can write is the
program's failure, never a pass it did not earn or a ``sandbox_error``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
from test_harness_claims import PIPE
from test_local_sandbox import make_sandbox

from ra3bench.expected import GroupExpectation
from ra3bench.judge import answer_check, judge_group
from ra3bench.records import Status
from ra3bench.sandbox.base import CallStatus, Job, Limits
from ra3bench.sandbox.claims import MalformedClaim, RawValue
from ra3bench.sandbox.harness.jobs import RAW_MIN_BYTES
from ra3bench.sandbox.harness.protocol import encode_value
from ra3bench.sandbox.local import LocalSandbox
from ra3bench.suites.base import Problem, TestGroup

LIMITS = Limits(memory_mb=1024, load_time_s=5.0)
SIZE = 30_000  # list(range(SIZE)) encodes to ~170 KB, over RAW_MIN_BYTES
INPUTS = [[SIZE], [3], [SIZE + 1]]  # a large answer, a small one, a large one


def _problem(atol: float = 0.0, floats: bool = False) -> tuple[Problem, GroupExpectation]:
    convert = "float(i)" if floats else "i"
    reference = f"def f(n):\n    return [{convert} for i in range(n)]\n"
    problem = Problem("T/0", "", "", "f", reference, {"base": TestGroup("base", inputs=INPUTS)}, atol=atol)
    outputs = [[float(i) if floats else i for i in range(n)] for (n,) in INPUTS]
    expected = GroupExpectation(
        [encode_value(a) for a in INPUTS], [encode_value(o) for o in outputs], [0.01] * 3, ["ok"] * 3
    )
    return problem, expected


def _job(program: str, expected: GroupExpectation, **kw: Any) -> Job:
    return Job(program, "f", list(expected.args), [5.0] * 3, limits=LIMITS, **{"raw_values": True, **kw})


@pytest.fixture(scope="module", params=["bwrap", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "docker":
        from ra3bench.sandbox.docker import DockerSandbox

        box: Any = DockerSandbox(workers=1, image=request.getfixturevalue("docker_image"))
    else:
        box = make_sandbox(request.param)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any raw value is parsed."""

    def refuse(self: RawValue) -> Any:
        raise AssertionError("a raw value equal to the expected one was parsed")

    monkeypatch.setattr(RawValue, "encoded", refuse)


def test_a_large_value_equal_to_the_expected_one_passes_unparsed(sandbox, unparsed) -> None:
    problem, expected = _problem()
    result = sandbox.run(_job("def f(n):\n    return list(range(n))\n", expected))
    assert [type(c.value) for c in result.calls] == [RawValue, list, RawValue]
    assert len(result.calls[0].value.data) > RAW_MIN_BYTES
    assert judge_group(problem, "base", expected, result).status is Status.PASS


def test_ints_where_the_reference_returned_whole_floats_pass_unparsed(sandbox, unparsed) -> None:
    """HumanEval/130: ``[1, 3, 2, 8]`` for the reference's ``[1, 3, 2.0, 8.0]`` is right (``2 == 2.0``)."""
    problem, expected = _problem(floats=True)
    assert len(expected.sha256s(0)) == 2  # the encoding, and that of its int form
    result = sandbox.run(_job("def f(n):\n    return list(range(n))\n", expected))
    assert judge_group(problem, "base", expected, result).status is Status.PASS


@pytest.mark.parametrize(
    ("body", "status", "first_failure"),
    [
        ("return [float(i) for i in range(n)]", Status.PASS, None),  # parsed: floats for ints are equal
        ("return list(range(n))[:-1] + [0]", Status.FAIL, 0),  # one item wrong at the end
        ("return list(range(n)) if n < 100 else list(range(n))[::-1]", Status.FAIL, 0),
        ("return list(range(n)) if n != 30001 else list(range(n + 1))", Status.FAIL, 2),  # the last large one
        ("return list(range(n)) if n != 3 else [0, 1, 3]", Status.FAIL, 1),  # the small one
    ],
)
def test_a_large_value_not_byte_equal_is_parsed_and_judged_as_before(sandbox, body, status, first_failure) -> None:
    problem, expected = _problem()
    program = f"def f(n):\n    {body}\n"
    raw = judge_group(problem, "base", expected, sandbox.run(_job(program, expected)))
    parsed = judge_group(problem, "base", expected, sandbox.run(_job(program, expected, raw_values=False)))
    assert (raw.status, raw.first_failure) == (status, first_failure)
    assert (raw.status, raw.n_passed, raw.first_failure, raw.detail) == (
        parsed.status,
        parsed.n_passed,
        parsed.first_failure,
        parsed.detail,
    )


def test_floats_within_the_tolerance_pass_and_others_fail(sandbox) -> None:
    problem, expected = _problem(atol=1e-6, floats=True)
    near = sandbox.run(_job("def f(n):\n    return [i + 1e-9 for i in range(n)]\n", expected))
    far = sandbox.run(_job("def f(n):\n    return [i + 1e-3 for i in range(n)]\n", expected))
    assert judge_group(problem, "base", expected, near).status is Status.PASS
    assert judge_group(problem, "base", expected, far).status is Status.FAIL


def test_a_streaming_job_leaves_raw_values_to_its_final_answer(sandbox) -> None:
    """Raw values are never streamed; a wrong small answer after a large one still stops the job."""
    problem, expected = _problem()
    program = "import time\ndef f(n):\n    time.sleep(n == 30001)\n    return list(range(n)) if n != 3 else [9]\n"
    job = _job(program, expected, answer_fails=answer_check(problem, "base", expected, LIMITS.digest_min_bytes))
    result = sandbox.run(job)
    assert [c.status for c in result.calls] == [CallStatus.OK, CallStatus.OK, CallStatus.MISSING]
    assert type(result.calls[0].value) is RawValue
    verdict = judge_group(problem, "base", expected, result)
    assert (verdict.status, verdict.first_failure) == (Status.FAIL, 1)


# --------------------------------------------------------------------------- raw frames a hostile child writes

META = '{{"k":"call","i":0,"status":"ok","time_s":0.0,"error":"","raw":{n}}}'
BIG = RAW_MIN_BYTES + 10


def _forging(frames_code: str) -> str:
    """A program whose call 0 writes ``frames_code``'s frames itself, then exits without answering."""
    return f"{PIPE}def f(n):\n    if n == {SIZE}:\n{frames_code}        os._exit(0)\n    return list(range(n))\n"


def _meta(n: int) -> str:
    return f"        _frame({META.format(n=n)!r}.encode())\n"


def _body(expr: str) -> str:
    return f"        _frame({expr})\n"


DIGEST = "b'{\"h\":\"' + b'0' * 64 + b'\"}'"  # a digest claim's shape (72 bytes)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("a body that is not JSON", _meta(BIG) + _body(f"b'x' * {BIG}")),
        ("a body with a NaN token", _meta(BIG) + _body(f"b'[' + b' ' * {BIG - 5} + b'NaN]'")),
        ("a body nested beyond the parser", _meta(BIG) + _body(f"b'[' * {BIG // 2} + b']' * {BIG // 2}")),
        ("a body of invalid UTF-8", _meta(BIG) + _body(f"b'\"' + b'\\xff' * {BIG - 2} + b'\"'")),
        ("a digest claim padded out", _meta(BIG) + _body(f"{DIGEST} + b' ' * {BIG - 72}")),
    ],
)
def test_a_raw_body_that_is_not_a_value_is_the_programs_failure(sandbox, name, code) -> None:
    problem, expected = _problem()
    result = sandbox.run(_job(_forging(code), expected))
    assert not result.sandbox_error and not result.malformed
    assert result.calls[0].status is CallStatus.OK and type(result.calls[0].value) is RawValue
    verdict = judge_group(problem, "base", expected, result)
    assert verdict.status is Status.FAIL and verdict.first_failure == 0, name
    assert verdict.detail.startswith("malformed result"), verdict.detail


@pytest.mark.parametrize(
    ("name", "code", "raw_values"),
    [
        ("a body shorter than announced", _meta(BIG) + _body(f"b'1' * {BIG - 1}"), True),
        ("no body before the child ends", _meta(BIG), True),
        ("a size over the value limit", _meta(LIMITS.value_bytes + 1), True),
        ("a size a small value has", _meta(RAW_MIN_BYTES), True),
        ("a size that is not an int", _meta(BIG).replace(f"{BIG}", f"{BIG}.0"), True),
        ("a raw value the job did not ask for", _meta(BIG) + _body(f"b'1' * {BIG}"), False),
    ],
)
def test_a_misframed_raw_value_is_an_error_of_its_call(sandbox, name, code, raw_values) -> None:
    problem, expected = _problem()
    result = sandbox.run(_job(_forging(code), expected, raw_values=raw_values))
    assert not result.sandbox_error and not result.malformed, name
    assert result.calls[0].status is CallStatus.ERROR, (name, result.calls[0])
    verdict = judge_group(problem, "base", expected, result)
    assert verdict.status is Status.ERROR and verdict.first_failure == 0, name
    again = sandbox.run(_job("def f(n):\n    return list(range(n))\n", expected))  # the worker goes on
    assert judge_group(problem, "base", expected, again).status is Status.PASS


def test_a_raw_body_never_decides_a_pass_by_its_claims() -> None:
    """Only the host's own hash of the bytes can pass a value unparsed."""
    _, expected = _problem()
    value = RawValue(b"[" + b",".join(str(i).encode() for i in range(SIZE)) + b"]")
    assert value.sha256() in expected.sha256s(0)
    shifted = RawValue(b"[" + b",".join(str(i + 1).encode() for i in range(SIZE)) + b"]")
    assert shifted.sha256() not in expected.sha256s(0)
    with pytest.raises(MalformedClaim):
        RawValue(b"[1,2").encoded()


# --------------------------------------------------------------------------- what a subverted server answers


@pytest.mark.skipif(os.geteuid() != 0, reason="jobs that write to their server's stdout need root's own uid")
@pytest.mark.parametrize(
    "forged",
    [
        # a raw value of 5 bytes announced, then a frame of 4
        (b'{"load":{"status":"ok"},"calls":[{"status":"ok","raw":5},null,null],"script":null}', b"[1,2"),
        # a raw size that is not a size
        (b'{"load":{"status":"ok"},"calls":[{"status":"ok","raw":-1},null,null],"script":null}', b""),
    ],
)
def test_a_raw_answer_forged_on_the_servers_output_is_the_programs_failure(forged: tuple[bytes, bytes]) -> None:
    """In the weakest local mode (jobs run as root, no bubblewrap) a job can write on its server's
    stdout, as a subverted server would: its raw values are claims too."""
    problem, expected = _problem()
    answer, body = forged
    find_server = "SERVER = int(open(f'/proc/{os.getppid()}/stat').read().rpartition(')')[2].split()[1])\n"
    program = (
        f"import os\n{find_server}def f(n):\n"
        "    base = f'/proc/{SERVER}/fd'\n"
        f"    if n == {SIZE}:\n"
        "        for name in os.listdir(base):\n"
        "            flags = open(f'/proc/{SERVER}/fdinfo/{name}').read().split('flags:')[1].split()[0]\n"
        "            if os.readlink(f'{base}/{name}').startswith('pipe:') and int(flags, 8) & 3 == 1:\n"
        f"                data = len({answer!r}).to_bytes(4, 'big') + {answer!r}\n"
        f"                data += len({body!r}).to_bytes(4, 'big') + {body!r}\n"
        "                os.write(os.open(f'{base}/{name}', os.O_WRONLY), data)\n"
        "    return list(range(n))\n"  # right answers: only the forged frames can fail it
    )
    with LocalSandbox(workers=1, use_bwrap=False, uid=0) as weak:
        result = weak.run(_job(program, expected))
        verdict = judge_group(problem, "base", expected, result)
        assert not result.sandbox_error
        assert verdict.status is Status.FAIL and verdict.detail.startswith("malformed result"), verdict.detail
        again = weak.run(dataclasses.replace(_job(program, expected), program="def f(n):\n    return list(range(n))\n"))
        assert judge_group(problem, "base", expected, again).status is Status.PASS


def test_raw_values_over_an_answers_limit_are_refused_before_any_is_read() -> None:
    """Each raw frame is under the frame limit, but an answer's raw values together may not pass it
    either (one answer frame held every value before): a subverted server cannot fill the host's memory."""
    from types import SimpleNamespace

    from ra3bench.sandbox.harness.protocol import MAX_FRAME_BYTES
    from ra3bench.sandbox.pool import Worker, WorkerGarbage

    reads: list[bool] = []
    worker = SimpleNamespace(_read=lambda deadline, raw=False: reads.append(raw) or b"[]")
    half = MAX_FRAME_BYTES // 2 + 1
    answer = {"calls": [{"status": "ok", "raw": half}, {"status": "ok", "raw": half}]}
    with pytest.raises(WorkerGarbage, match="over the limit"):
        Worker._with_raws(worker, answer, 0.0, True)
    assert reads == []
    small = {"calls": [{"status": "ok", "raw": 2}, {"status": "ok", "value": 1}]}
    filled = Worker._with_raws(worker, small, 0.0, True)
    assert type(filled["calls"][0]["value"]) is RawValue and reads == [True]
