"""Verdict forgery: wrong programs that try to be scored as right, judged end to end in both sandboxes.

The program owns its whole process, the harness inside it included (docs/sandbox.md, threat
model), so what comes back from the sandbox is its claim. Each attack below is a WRONG program;
it must be scored a failure of the program, never ``pass`` (the forgery worked) and never
``sandbox_error`` (RLVR drops those from the reward: a program able to cause one has a reward
hack), and judging must complete (a judge that raises aborts the whole run). Where the status
itself is what the program forges (a claimed timeout, the "memory" exit code, a self-sent
SIGXCPU), the allowed statuses leave that status out: the host decides it from what it observed.

Every program is judged like the ``judge`` fixture of test_hostile_verdicts.py: the Evaluator,
expected outputs from the reference (HumanEval+/0) or the data (LiveCodeBench abc333_a,
Codeforces 9/A), timeout re-runs and sandbox retries included. The attacks on HumanEval+/0 are
``ra3bench.sandbox.forgery.FORGERIES`` (also what ``ra3bench sandbox check`` runs), one test per
attack class; stdin answers (sNaN and friends) and a worker its job can kill are added here.
Cost: one module-scoped sandbox per backend, two workers; most programs fail on their first test.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator

import pytest

from ra3bench.expected import load_or_compute
from ra3bench.judge import TimePolicy
from ra3bench.pipeline import EvalSettings, Evaluator
from ra3bench.records import Sample, Status, Verdict
from ra3bench.sandbox import attacks, forgery
from ra3bench.sandbox.base import Limits, Sandbox
from ra3bench.sandbox.forgery import FAILED, Forgery
from ra3bench.suites import get_suite

Judge = Callable[[str], Verdict]
SETTINGS = EvalSettings(limits=Limits(memory_mb=1024), time_policy=TimePolicy(floor_s=1.0, factor=4.0))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("-1", "minus1")).strip("-")[:70]


def _cases(kind: str) -> list:
    return [pytest.param(f, id=_slug(f.name)) for f in forgery.FORGERIES if f.kind == kind]


# ---- fixtures: one sandbox per backend for the whole module


def _open(kind: str, request: pytest.FixtureRequest, workers: int = 2) -> Sandbox:
    if kind == "docker":
        from ra3bench.sandbox.docker import DockerSandbox

        return DockerSandbox(workers=workers, image=request.getfixturevalue("docker_image"))
    from ra3bench.sandbox.local import LocalSandbox

    return LocalSandbox(workers=workers)


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:  # expected outputs go to a cache of this module's own
        patch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.mktemp(f"cache-{request.param}")))
        sb = _open(request.param, request)
        try:
            yield sb
        finally:
            sb.close()


def _judge(suite_name: str, task_id: str, sandbox: Sandbox) -> Judge:
    suite = get_suite(suite_name)
    problem = suite.problem_map()[task_id]
    expectations = load_or_compute(suite, sandbox, [problem])
    evaluator = Evaluator(suite, sandbox, expectations, SETTINGS)
    return lambda program: evaluator.evaluate(problem, Sample(problem.task_id, 0, program))


@pytest.fixture(scope="module")
def humaneval(sandbox: Sandbox) -> Judge:
    return _judge("humaneval+", forgery.TASK_ID, sandbox)


@pytest.fixture(scope="module")
def stdin_judges(sandbox: Sandbox) -> dict[str, Judge]:
    return {
        "livecodebench": _judge("livecodebench@v6-public", "abc333_a", sandbox),
        "codeforces": _judge("codeforces", "9/A", sandbox),
    }


def judged(judge: Judge, program: str) -> Verdict:
    """The verdict; a judge that raises fails the test with what it raised (a real run would abort)."""
    try:
        return judge(program)
    except Exception as exc:
        pytest.fail(f"judging aborted with {type(exc).__name__}: {str(exc)[:300]}", pytrace=False)


def assert_programs_failure(verdict: Verdict, allowed: frozenset[Status]) -> None:
    seen = f"{verdict.status.value}: {forgery.first_failure(verdict)}"
    assert verdict.status is not Status.PASS, f"the forgery was scored pass ({seen})"
    assert verdict.status is not Status.SANDBOX_ERROR, f"the program caused a sandbox_error ({seen})"
    assert verdict.status in allowed, f"{seen}; allowed: {sorted(s.value for s in allowed)}"


def check(judge: Judge, attack: Forgery, sandbox: Sandbox) -> None:
    if attack.safe_only_with and not attacks.backend_capabilities(sandbox) & set(attack.safe_only_with):
        pytest.skip(f"{sandbox.name} has no {' or '.join(attack.safe_only_with)}: it would reach the host")
    assert_programs_failure(judged(judge, attack.program), attack.allowed)


# ---- the fixture can pass


def test_a_correct_program_passes_so_the_failures_mean_something(humaneval: Judge) -> None:
    verdict = judged(humaneval, forgery.CORRECT)
    assert verdict.status is Status.PASS, verdict.groups
    assert set(verdict.groups) == {"base", "plus"}


def test_the_wrong_body_alone_fails_on_the_first_test(humaneval: Judge) -> None:
    """Each forgery wraps this wrong answer: without the trick it is a plain fail at test 0."""
    verdict = judged(humaneval, forgery.SIGNATURE + forgery.WRONG_BODY)
    assert verdict.status is Status.FAIL
    assert all(g.first_failure == 0 for g in verdict.groups.values()), verdict.groups


def test_every_attack_class_has_forgeries() -> None:
    assert {f.kind for f in forgery.FORGERIES} == set(forgery.KINDS)
    assert len({f.name for f in forgery.FORGERIES}) == len(forgery.FORGERIES)
    for attack in forgery.FORGERIES:
        assert Status.PASS not in attack.allowed and Status.SANDBOX_ERROR not in attack.allowed


def test_a_check_row_fails_on_pass_sandbox_error_a_claimed_status_or_a_crash() -> None:
    """The `sandbox check` row logic, without a sandbox: OK only for an allowed failure of the program."""
    from ra3bench.records import GroupVerdict

    def verdict(status: Status) -> Verdict:
        return Verdict(forgery.TASK_ID, 0, status, {"base": GroupVerdict(status, 7, 0, 0, "why")}, "sha")

    claim = next(f for f in forgery.FORGERIES if f.name.endswith("every call claims timeout at once"))
    assert forgery.judge_forgery(claim, verdict(Status.ERROR)).result == "OK"
    for status in (Status.PASS, Status.SANDBOX_ERROR, Status.TIMEOUT):
        row = forgery.judge_forgery(claim, verdict(status))
        assert row.result == "FAIL" and not row.ok and row.verdict == status.value
    crashed = forgery.judge_forgery(claim, None, "InvalidOperation: sNaN")
    assert crashed.result == "FAIL" and crashed.verdict == "crashed"
    assert forgery.control_row(verdict(Status.FAIL)).result == "FAIL"
    assert forgery.control_row(verdict(Status.PASS)).result == "OK"


# ---- a. encoder patches


@pytest.mark.parametrize("attack", _cases(forgery.ENCODER))
def test_a_patching_the_encoder_does_not_forge_a_pass(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


# ---- b. frames written straight to the result pipe, and malformed encodings in them


@pytest.mark.parametrize("attack", _cases(forgery.FRAMES))
def test_b_frames_written_to_the_result_pipe_are_claims(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


@pytest.mark.parametrize("attack", _cases(forgery.MALFORMED))
def test_b_malformed_values_in_frames_are_the_programs_failure(
    humaneval: Judge, sandbox: Sandbox, attack: Forgery
) -> None:
    check(humaneval, attack, sandbox)


# ---- c. harness objects reached through gc and frames


@pytest.mark.parametrize("attack", _cases(forgery.HARNESS))
def test_c_harness_objects_reached_through_gc_and_frames(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


# ---- d. lying numpy-like objects


@pytest.mark.parametrize("attack", _cases(forgery.NUMPY_LIKE))
def test_d_lying_numpy_like_objects(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


# ---- e. deep nesting


@pytest.mark.parametrize("attack", _cases(forgery.NESTING))
def test_e_deep_nesting(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


# ---- f. non-finite numbers


@pytest.mark.parametrize("attack", _cases(forgery.NON_FINITE))
def test_f_non_finite_numbers(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


# ---- g. self-sent signals: not a timeout unless it ran out of time


@pytest.mark.parametrize("attack", _cases(forgery.SIGNALS))
def test_g_self_sent_signals_are_not_timeouts(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)


# ---- h. stdin answers that break number parsing (LiveCodeBench's Decimal rule, Codeforces' tokens)

_FIND_PIPE = (
    "import os\n"
    "def _pipes():\n"
    "    found = []\n"
    "    for name in os.listdir('/proc/self/fd'):\n"
    "        try:\n"
    "            if int(name) > 2 and os.readlink('/proc/self/fd/' + name).startswith('pipe:'):\n"
    "                found.append(int(name))\n"
    "        except (OSError, ValueError):\n"
    "            pass\n"
    "    return found or list(range(3, 21))\n"
)


def _claim_status(status: str) -> str:
    """A stdin program that writes the harness's status message itself, then exits."""
    message = json.dumps({"status": status, "error": "forged"})
    return _FIND_PIPE + f"for fd in _pipes():\n    os.write(fd, {message.encode()!r})\nos._exit(0)\n"


STDIN_CORRECT = {
    "livecodebench": "n = input().strip()\nprint(n * int(n))\n",
    "codeforces": (
        "from fractions import Fraction\ny, w = map(int, input().split())\np = Fraction(7 - max(y, w), 6)\n"
        'print(f"{p.numerator}/{p.denominator}")\n'
    ),
}
STDIN_WRONG = {
    "prints sNaN": ("print('sNaN')\n", FAILED),
    "prints -sNaN123": ("print('-sNaN123')\n", FAILED),
    "prints NaN": ("print('NaN')\n", FAILED),
    "prints Infinity": ("print('Infinity')\n", FAILED),
    "prints 1e999999": ("print('1e999999')\n", FAILED),
    "prints a 5,000-digit number": ("print('9' * 5000)\n", FAILED),
    # the program's own report of a MemoryError, as raising one would be: believed, gains nothing
    "writes a status message claiming memory": (_claim_status("memory"), FAILED | {Status.MEMORY}),
    "writes a status message claiming syntax": (_claim_status("syntax"), FAILED),
    "exits with the 'memory' exit code 3": ("import os\nos._exit(3)\n", FAILED),
    "sends itself SIGXCPU": ("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n", FAILED),
}


@pytest.mark.parametrize("suite", ["livecodebench", "codeforces"])
def test_h_a_correct_stdin_program_passes(stdin_judges: dict[str, Judge], suite: str) -> None:
    verdict = judged(stdin_judges[suite], STDIN_CORRECT[suite])
    assert verdict.status is Status.PASS, verdict.groups


@pytest.mark.parametrize("name", list(STDIN_WRONG))
@pytest.mark.parametrize("suite", ["livecodebench", "codeforces"])
def test_h_stdin_answers_that_break_number_parsing(stdin_judges: dict[str, Judge], suite: str, name: str) -> None:
    program, allowed = STDIN_WRONG[name]
    assert_programs_failure(judged(stdin_judges[suite], program), allowed)


# ---- i. a program that kills its worker


@pytest.mark.parametrize("attack", _cases(forgery.KILL_WORKER))
def test_i_killing_the_worker_in_the_default_setup(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    """Jobs run as another uid than the server (docker: the server is pid 1): the kill may not even land."""
    check(humaneval, attack, sandbox)


@pytest.fixture(scope="module")
def same_uid_judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judge]:
    """A bubblewrapped local sandbox whose jobs run as the server's own uid (what a non-root user gets):
    here a job *can* kill its worker. Bubblewrap's PID namespace keeps kill(-1) inside the worker."""
    from ra3bench.errors import SandboxUnavailableError
    from ra3bench.sandbox.local import LocalSandbox

    try:
        sb = LocalSandbox(workers=1, use_bwrap=True, uid=os.geteuid())
    except SandboxUnavailableError as exc:
        pytest.skip(f"needs bubblewrap (kill(-1) must stay in a PID namespace): {exc}")
    assert attacks.PRIVATE_PIDS in attacks.backend_capabilities(sb)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache-same-uid")))
        try:
            yield _judge("humaneval+", forgery.TASK_ID, sb)
        finally:
            sb.close()


@pytest.mark.parametrize("attack", _cases(forgery.KILL_WORKER))
def test_i_a_job_that_kills_its_worker_is_the_programs_failure(same_uid_judge: Judge, attack: Forgery) -> None:
    """The worker dies with the job in flight: after the pool's retries that is still the program's doing."""
    assert_programs_failure(judged(same_uid_judge, attack.program), attack.allowed)


def test_i_a_correct_program_passes_where_jobs_can_kill_the_worker(same_uid_judge: Judge) -> None:
    assert judged(same_uid_judge, forgery.CORRECT).status is Status.PASS


# ---- j. statuses claimed by exit code or frame


@pytest.mark.parametrize("attack", _cases(forgery.CLAIMS))
def test_j_claimed_statuses_are_not_believed(humaneval: Judge, sandbox: Sandbox, attack: Forgery) -> None:
    check(humaneval, attack, sandbox)
