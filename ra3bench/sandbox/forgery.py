"""Verdict integrity: wrong programs that try to forge their verdict, judged end to end.

The containment suite (``attacks.py``) asks whether a program can get *out*; this one asks
whether a wrong program can get *scored as right*. The program owns its whole process, the
harness code inside it included (docs/sandbox.md, threat model): it can patch the encoder the
harness uses, write frames to the result pipe it holds, reach harness objects through ``gc``
and frames, signal itself, exit with any code. So everything that comes back is a claim.

Each :class:`Forgery` is a wrong solution of HumanEval+/0 (``has_close_elements``) that
tries one such trick. :func:`run_forgeries` judges each through the real judge (the
:class:`~ra3bench.pipeline.Evaluator`, expected outputs computed from the reference in the
same sandbox, timeout re-runs and sandbox retries included) and reports the verdict. A
forgery is contained when the verdict is one of its ``allowed`` statuses: a failure of the
program, never ``pass`` (the forgery worked) and never ``sandbox_error`` (which RLVR drops
from the reward, so a program able to cause it has a reward hack too). A correct program
runs first as a control: if it does not pass, the other rows mean nothing.

Used by ``ra3bench sandbox check`` (the "verdict integrity" table) and by
tests/integration/test_verdict_forgery.py, which adds stdin suites and more backends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from ra3bench.records import Status, Verdict
from ra3bench.sandbox.attacks import PRIVATE_PIDS
from ra3bench.sandbox.base import Limits, Sandbox

TASK_ID = "HumanEval/0"
SIGNATURE = "def has_close_elements(numbers, threshold):\n"
CORRECT_BODY = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
CORRECT = "from typing import List\n" + SIGNATURE + CORRECT_BODY
# Wrong on every test: the judge reports test 0. The host stops a group at its first wrong answer
# (its answers stream in, harness/jobs.py's Progress), but a trick that keeps the host from seeing
# them would run every call, so a trick must cost little per call: the plus group has 999.
WRONG_BODY = "    return not any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
FORGERY_LIMITS = Limits(memory_mb=1024)

FAILED = frozenset({Status.FAIL, Status.ERROR})  # a wrong answer, a malformed result, or a crash
FAILED_OR_TIMEOUT = FAILED | {Status.TIMEOUT}  # where the program really did spend its time

# Attack classes (the ``kind`` of a forgery), as in the issue that found the first one.
ENCODER = "encoder patch"
FRAMES = "forged frames"
HARNESS = "harness objects"
NUMPY_LIKE = "numpy-like object"
NESTING = "deep nesting"
NON_FINITE = "non-finite numbers"
MALFORMED = "malformed values"
SIGNALS = "self-sent signals"
KILL_WORKER = "kill the worker"
CLAIMS = "claimed statuses"
STREAM = "the answer stream"
RAW = "raw values"
KINDS = (
    ENCODER,
    FRAMES,
    HARNESS,
    NUMPY_LIKE,
    NESTING,
    NON_FINITE,
    MALFORMED,
    SIGNALS,
    KILL_WORKER,
    CLAIMS,
    STREAM,
    RAW,
)


@dataclass(frozen=True)
class Forgery:
    """One wrong program that tries to forge its verdict; ``name`` says what it tries, in one line."""

    name: str
    kind: str
    program: str
    allowed: frozenset[Status] = FAILED
    # Without any of these backend capabilities running it would reach the host (kill(-1) outside a
    # private PID namespace): it is reported as not run.
    safe_only_with: tuple[str, ...] = ()


@dataclass
class ForgeryReport:
    """One row of the "verdict integrity" table."""

    attack: str
    kind: str
    allowed: list[str]
    verdict: str  # the status the judge gave, "crashed" if judging raised, "-" if not run
    detail: str
    result: str  # OK | FAIL | not run (...)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result != "FAIL"

    def to_json(self) -> dict:
        return {**asdict(self), "wall_s": round(self.wall_s, 3), "ok": self.ok}


# ---- program parts: how a hostile program finds what it forges with


def _program(*parts: str, body: str = WRONG_BODY) -> str:
    return "".join(parts) + SIGNATURE + body


# Frames of the harness on the stack (the program runs under it), and the job it is running.
_FIND = """\
import gc, os, sys

def _frames():
    f = sys._getframe()
    while f is not None:
        yield f
        f = f.f_back

def _job():
    for f in _frames():
        job = f.f_locals.get('job')
        if type(job) is dict and 'calls' in job:
            return job
    for o in gc.get_objects():
        if type(o) is dict and 'calls' in o and 'time_limits_s' in o:
            return o
    return {'calls': [None] * 1000}

def _child():
    for f in _frames():
        me = f.f_locals.get('self')
        if me is not None and 'job' in getattr(me, '__dict__', {}):
            return me
    for o in gc.get_objects():
        d = getattr(o, '__dict__', None)
        if type(d) is dict and 'job' in d and 'wfd' in d:
            return o
    raise RuntimeError('no harness object found')

def _harness_globals():
    seen = set()
    for f in _frames():
        if id(f.f_globals) not in seen and f.f_globals is not globals():
            seen.add(id(f.f_globals))
            yield f.f_globals
    for m in list(sys.modules.values()):
        d = getattr(m, '__dict__', None)
        if type(d) is dict and id(d) not in seen and ('encode_value' in d or '_encode_value' in d):
            seen.add(id(d))
            yield d
"""

# The result pipe: the only pipe among the fds >= 3 (fds 3..20 if /proc cannot say).
_PIPE = """\
import os

def _pipes():
    found = []
    for name in os.listdir('/proc/self/fd'):
        try:
            if int(name) > 2 and os.readlink('/proc/self/fd/' + name).startswith('pipe:'):
                found.append(int(name))
        except (OSError, ValueError):
            pass
    return found or list(range(3, 21))

def _send(body):
    data = body if isinstance(body, bytes) else body.encode()
    for fd in _pipes():
        try:
            os.write(fd, len(data).to_bytes(4, 'big') + data)
        except OSError:
            pass

def _claim_all(value, status='ok', shift=0, load=True):
    n = len(_job()['calls'])
    if load:
        _send('{"k":"load","status":"ok","time_s":0.01,"error":""}')
    for i in range(n):
        _send('{"k":"call","i":%d,"status":"%s","time_s":0.001,"error":"","value":%s}' % (i + shift, status, value))
"""


def _claims(value: str, *, status: str = "ok", shift: int = 0, then: str = "os._exit(0)") -> str:
    """A program that, at top level, claims the load and every call (``value`` as raw JSON), then ``then``."""
    return _program(_FIND, _PIPE, f"_claim_all({value!r}, status={status!r}, shift={shift})\n{then}\n")


_NULL_DIGEST = '{"h":null}'
# Inside a call: the call's index from the harness's frame, one forged frame for it, then exit.
_CLAIM_THIS_CALL = """\
    for f in _frames():
        i = f.f_locals.get('i')
        if type(i) is int:
            break
    _send('{"k":"call","i":%d,"status":"ok","time_s":0.001,"error":"","value":{"h":null}}' % i)
    os._exit(0)
"""
_GUESSED_DIGEST = '{"h":"' + "0" * 64 + '"}'
# The server streams {"progress": [[i, result], ...]} to the host: the same shape, on the child's pipe.
_STREAM_EVERY_CALL = """\
for _i in range(len(_job()['calls'])):
    _send('{"progress":[[%d,{"status":"ok","value":true,"time_s":0.0,"error":""}]]}' % _i)
"""
# A large value travels as its bytes (harness/jobs.py's RAW_MIN_BYTES), passed on unparsed: the
# load, then every call announcing ``body``'s bytes and sending them, in the child's own format.
_RAW_ALL = """\
def _raw_all(body, then_exit=False):
    _send('{"k":"load","status":"ok","time_s":0.01,"error":""}')
    for i in range(len(_job()['calls'])):
        _send('{"k":"call","i":%d,"status":"ok","time_s":0.001,"error":"","raw":%d}' % (i, len(body)))
        if then_exit:
            os._exit(0)
        _send(body)
"""
_RAW_SIZE = (1 << 16) + 8


def _raws(body: str, then_exit: bool = False) -> str:
    """A program that, at top level, claims the load and every call with the raw bytes ``body`` (an expression)."""
    return _program(_FIND, _PIPE, _RAW_ALL, f"_raw_all({body}, then_exit={then_exit})\nos._exit(0)\n")


_STOP_EVERYWHERE = """\
import os
_stop = b'\\x00\\x00\\x00\\x0d{"stop":true}'
for _fd in range(64):
    try:
        os.write(_fd, _stop)
    except OSError:
        pass
"""
# Inside a call: a grandchild in a new session that ignores SIGTERM and writes passing frames.
_OUTLIVE_THE_STOP = """\
    import signal
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for i in range(len(_job()['calls'])):
            _send('{"k":"call","i":%d,"status":"ok","time_s":0.001,"error":"","value":true}' % i)
        os._exit(0)
    return not any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
"""
_DEEP_ARRAYS = "[" * 100_000 + "]" * 100_000
_DEEP_TAGS = '{"t":[' * 100_000 + "]}" * 100_000
_DEEP_900 = "[" * 900 + "]" * 900  # under JSON's own recursion limit, far past the encoding's depth

_ENCODE_PATCH = """\
import json
_o = json.JSONEncoder.encode
json.JSONEncoder.encode = lambda s, o: _o(s, o) if type(o) is dict and "k" in o else '{"h":null}'
"""

_ITERENCODE_PATCH = """\
import json
_o = json.JSONEncoder.iterencode
json.JSONEncoder.iterencode = lambda s, o, _one_shot=False: (
    _o(s, o, _one_shot) if type(o) is dict and "k" in o else iter(['{"h":null}']))
"""

_C_ENCODER_PATCH = """\
import json.encoder as je
_make = je.c_make_encoder
def _fake(*args):
    real = _make(*args)
    return lambda o, level: real(o, level) if type(o) is dict and "k" in o else ('{"h":null}',)
je.c_make_encoder = _fake
"""

_DUMPS_PATCH = """\
import json
json.dumps = lambda *a, **k: '{"h":null}'
json.dump = lambda o, fp, *a, **k: fp.write('{"h":null}')
"""

_PROTOCOL_PATCH = (
    _FIND
    + """\
def _null(*args, **kwargs):
    return {"h": None}
for _g in list(_harness_globals()):
    for _name in ('encode_value', '_encode_value', 'value_digest', '_value_digest'):
        if _name in _g:
            _g[_name] = _null
    _p = _g.get('protocol')
    if _p is not None:
        _p.encode_value = _p.value_digest = _null
for _o in gc.get_objects():
    if type(_o) is dict and 'encode_value' in _o and 'value_digest' in _o:
        _o['encode_value'] = _o['value_digest'] = _null
"""
)

_CODE_PATCH = (
    _FIND
    + """\
for _g in list(_harness_globals()):
    for _name in ('encode_value', '_encode_value'):
        _fn = _g.get(_name)
        if callable(_fn) and hasattr(_fn, '__code__'):
            _fn.__code__ = (lambda value, depth=0: {"h": None}).__code__
"""
)

_SEND_OK_PATCH = (
    _FIND
    + """\
for _o in gc.get_objects():
    if type(_o).__name__ == '_Child' or hasattr(type(_o), 'send_ok'):
        _orig = _o.send_ok
        _o.send_ok = lambda i, elapsed, raw, _orig=_orig: _orig(i, elapsed, '{"h":null}')
"""
)

_ENCODE_METHOD_PATCH = (
    _FIND
    + """\
_c = _child()
_c.encode = lambda value, budget: ("ok", '{"h":null}')
"""
)

_SEND_TEXT_PATCH = (
    _FIND
    + """\
import json
_c = _child()
_orig = _c.send_text
def _rewrite(text, _orig=_orig):
    frame = json.loads(text)
    if frame.get('k') == 'call':
        frame.update(status='ok', error='', value={'h': None})
    _orig(json.JSONEncoder().encode(frame))
_c.send_text = _rewrite
"""
)

_ENCODER_GLOBAL_PATCH = (
    _FIND
    + """\
import json
class _Liar(json.JSONEncoder):
    def encode(self, o):
        return json.JSONEncoder.encode(self, o) if type(o) is dict and 'k' in o else '{"h":null}'
for _g in list(_harness_globals()):
    for _name in ('_encoder', 'VALUE_ENCODER'):
        if _name in _g:
            _g[_name] = _Liar(separators=(',', ':'))
"""
)

# Every call becomes a "digest call" (the job dict and the child's set, mutated in place) and
# returns 70 KB: only a sha256 travels; with the digest function replaced it is a null hash.
_DIGEST_ALL = (
    _FIND
    + """\
for _f in _frames():
    _d = _f.f_locals.get('digest_calls')
    if isinstance(_d, set):
        _d.update(range(10000))
_job().setdefault('digest_calls', set())
if isinstance(_job()['digest_calls'], set):
    _job()['digest_calls'].update(range(10000))
"""
)
_NULL_DIGEST_FN = """\
for _g in list(_harness_globals()):
    if '_value_digest' in _g:
        _g['_value_digest'] = lambda text: {"h": None}
"""
_BIG_WRONG = "    return 'x' * 70000\n"

_LIAR_CLASS = """\
_NULL = '{"h":null}'
class _Scalar:
    ndim = 0
    def item(self):
{item}
_Scalar.__module__ = 'numpy'
"""


def _numpy_like(item: str) -> str:
    return _program(_LIAR_CLASS.replace("{item}", item), body="    return _Scalar()\n")


_KILL = "import os\n"


def _in_call(statement: str, *imports: str) -> str:
    """A program whose entry point does ``statement``, then (if it still runs) returns a wrong answer."""
    return _program(*imports, body=f"    {statement}\n" + WRONG_BODY)


FORGERIES: list[Forgery] = [
    # a. the encoder classes and functions the harness uses
    Forgery("json.JSONEncoder.encode patched: every value encodes as {'h': null}", ENCODER, _program(_ENCODE_PATCH)),
    Forgery("json.JSONEncoder.iterencode patched to the same effect", ENCODER, _program(_ITERENCODE_PATCH)),
    Forgery("json.encoder.c_make_encoder replaced by a lying factory", ENCODER, _program(_C_ENCODER_PATCH)),
    Forgery("json.dumps / json.dump patched to emit {'h': null}", ENCODER, _program(_DUMPS_PATCH)),
    Forgery(
        "protocol.encode_value / value_digest replaced (sys.modules, frame globals, gc)",
        ENCODER,
        _program(_PROTOCOL_PATCH),
    ),
    Forgery("encode_value's __code__ swapped for one returning {'h': null}", ENCODER, _program(_CODE_PATCH)),
    # b. frames written straight to the result pipe
    Forgery("frames on the pipe: load ok + every call ok with {'h': null}", FRAMES, _claims(_NULL_DIGEST)),
    Forgery("frames on the pipe: every call ok with a guessed sha256", FRAMES, _claims(_GUESSED_DIGEST)),
    Forgery("frames on the pipe: every call ok with the value true", FRAMES, _claims("true")),
    Forgery("frames on the pipe: wrong call indices (i + 1)", FRAMES, _claims(_NULL_DIGEST, shift=1)),
    Forgery(
        "frames on the pipe: then the harness's own frames (extra frames)",
        FRAMES,
        _claims("true", then="pass"),
    ),
    Forgery(
        "frames on the pipe: written by a fork after the child's os._exit",
        FRAMES,
        _program(_FIND, _PIPE, "if os.fork() == 0:\n    _claim_all('{\"h\":null}')\n    os._exit(0)\nos._exit(0)\n"),
    ),
    Forgery(
        "frames on the pipe: one frame per call, from inside the call, then os._exit",
        FRAMES,
        _program(_FIND, _PIPE, body=_CLAIM_THIS_CALL),
    ),
    Forgery(
        "frames on the pipe: a 4 GB length header, then nothing",
        FRAMES,
        _program(_FIND, _PIPE, "for fd in _pipes():\n    os.write(fd, b'\\xff\\xff\\xff\\xff{')\nos._exit(0)\n"),
    ),
    Forgery(
        "frames on the pipe: a truncated frame, then exit",
        FRAMES,
        _program(
            _FIND, _PIPE, "for fd in _pipes():\n    os.write(fd, (1000).to_bytes(4, 'big') + b'{\"k\":')\nos._exit(0)\n"
        ),
    ),
    Forgery(
        "frames on the pipe: invalid UTF-8, a JSON array, a bare string",
        FRAMES,
        _program(_FIND, _PIPE, "_send(b'\\xff\\xfe{}')\n_send('[1]')\n_send('\"ok\"')\nos._exit(0)\n"),
    ),
    Forgery(
        "frames on the pipe: a frame carrying sandbox_error",
        FRAMES,
        _claims('true,"sandbox_error":"forged infrastructure fault"'),
    ),
    # c. harness objects reached through gc and frames
    Forgery("gc: the harness's child object's send_ok replaced to send {'h': null}", HARNESS, _program(_SEND_OK_PATCH)),
    Forgery(
        "sys._getframe: the harness's child object's encode method replaced", HARNESS, _program(_ENCODE_METHOD_PATCH)
    ),
    Forgery(
        "sys._getframe: send_text rewrites every error frame to ok",
        HARNESS,
        _program(_SEND_TEXT_PATCH, body="    raise ValueError('wrong')\n"),
    ),
    Forgery("frame globals: the harness's JSON encoder replaced by a liar", HARNESS, _program(_ENCODER_GLOBAL_PATCH)),
    Forgery(
        "every call made a digest call (job mutated), digest function -> null hash",
        HARNESS,
        _program(_DIGEST_ALL, _NULL_DIGEST_FN, body=_BIG_WRONG),
    ),
    Forgery(
        "every call made a digest call (job mutated), true sha256 of a wrong value",
        HARNESS,
        _program(_DIGEST_ALL, body=_BIG_WRONG),
    ),
    # d. lying numpy-like objects (encoded by calling their item())
    Forgery("numpy-like scalar whose item() returns True", NUMPY_LIKE, _numpy_like("        return True")),
    Forgery("numpy-like scalar whose item() returns itself", NUMPY_LIKE, _numpy_like("        return self")),
    Forgery(
        "numpy-like scalar whose item() patches JSONEncoder.encode first",
        NUMPY_LIKE,
        _numpy_like(
            "        import json\n        _o = json.JSONEncoder.encode\n"
            "        json.JSONEncoder.encode = lambda s, o: _o(s, o) if type(o) is dict and 'k' in o else _NULL\n"
            "        return False"
        ),
    ),
    Forgery(
        "numpy-like scalar whose item() calls os._exit(0)", NUMPY_LIKE, _numpy_like("        import os; os._exit(0)")
    ),
    Forgery(
        "numpy-like scalar whose item() sleeps 60 s",
        NUMPY_LIKE,
        _numpy_like("        import time; time.sleep(60)"),
        allowed=FAILED_OR_TIMEOUT,
    ),
    # e. deep nesting
    Forgery(
        "returns a list nested 10,000 deep",
        NESTING,
        _program(body="    x = []\n    for _ in range(10000):\n        x = [x]\n    return x\n"),
    ),
    Forgery("frames on the pipe: a value of 100,000 nested arrays", NESTING, _claims(_DEEP_ARRAYS)),
    Forgery("frames on the pipe: a value of 100,000 nested tuple tags", NESTING, _claims(_DEEP_TAGS)),
    Forgery("frames on the pipe: a value of 900 nested arrays", NESTING, _claims(_DEEP_900)),
    # f. non-finite numbers
    Forgery("returns 1e999 (inf)", NON_FINITE, _program(body="    return 1e999\n")),
    Forgery("returns NaN", NON_FINITE, _program(body="    return float('nan')\n")),
    Forgery("frames on the pipe: a raw NaN token", NON_FINITE, _claims("NaN")),
    Forgery("frames on the pipe: a raw Infinity token", NON_FINITE, _claims("Infinity")),
    Forgery("frames on the pipe: a raw 1e999 number", NON_FINITE, _claims("1e999")),
    Forgery("frames on the pipe: a time_s of 1e999", NON_FINITE, _claims('true,"time_s":1e999')),
    # malformed encodings of values
    Forgery("frames on the pipe: {'f': 'bogus'} float tag", MALFORMED, _claims('{"f":"bogus"}')),
    Forgery("frames on the pipe: {'ix': 'zz'} big-int tag", MALFORMED, _claims('{"ix":"zz"}')),
    Forgery("frames on the pipe: {'b': 'xyz'} bytes tag", MALFORMED, _claims('{"b":"xyz"}')),
    Forgery("frames on the pipe: {'d': 5} dict tag", MALFORMED, _claims('{"d":5}')),
    Forgery("frames on the pipe: {'c': []} complex tag", MALFORMED, _claims('{"c":[]}')),
    Forgery("frames on the pipe: {'h': 1} digest with a number", MALFORMED, _claims('{"h":1}')),
    Forgery("frames on the pipe: a 5,000-digit JSON integer", MALFORMED, _claims("1" + "0" * 5000)),
    # g. signals sent to itself: not a timeout unless it ran out of time
    Forgery(
        "SIGXCPU to itself in a call", SIGNALS, _in_call("os.kill(os.getpid(), signal.SIGXCPU)", "import os, signal\n")
    ),
    Forgery(
        "SIGALRM to itself in a call", SIGNALS, _in_call("os.kill(os.getpid(), signal.SIGALRM)", "import os, signal\n")
    ),
    Forgery(
        "SIGKILL to itself in a call", SIGNALS, _in_call("os.kill(os.getpid(), signal.SIGKILL)", "import os, signal\n")
    ),
    Forgery(
        "SIGSEGV to itself in a call", SIGNALS, _in_call("os.kill(os.getpid(), signal.SIGSEGV)", "import os, signal\n")
    ),
    Forgery(
        "SIGXCPU to itself while loading",
        SIGNALS,
        _program("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n"),
    ),
    # i. killing the worker (the server: pid 1 of a container, or the parent)
    Forgery(
        "kill the worker: os.kill(os.getppid(), 9)",
        KILL_WORKER,
        _in_call("os.kill(os.getppid(), 9)", _KILL),
    ),
    Forgery("kill the worker: os.kill(1, 9)", KILL_WORKER, _in_call("os.kill(1, 9)", _KILL)),
    Forgery(
        "kill the worker: os.kill(-1, 9)",
        KILL_WORKER,
        _in_call("os.kill(-1, 9)", _KILL),
        safe_only_with=(PRIVATE_PIDS,),
    ),
    # j. statuses claimed by exit code or frame
    Forgery("os._exit(3), the harness's 'memory' exit code", CLAIMS, _in_call("os._exit(3)", "import os\n")),
    Forgery("os._exit(3) while loading", CLAIMS, _program("import os\nos._exit(3)\n")),
    Forgery("frames on the pipe: every call claims timeout at once", CLAIMS, _claims("null", status="timeout")),
    # A frame that says "memory" is the program's own report of a MemoryError, which it can also
    # raise itself (the last row): nothing to observe, nothing gained (no re-run, no reward).
    Forgery(
        "frames on the pipe: every call claims memory at once",
        CLAIMS,
        _claims("null", status="memory"),
        allowed=FAILED | {Status.MEMORY},
    ),
    Forgery(
        "frames on the pipe: load claims syntax (the program compiles)",
        CLAIMS,
        _program(_PIPE, '_send(\'{"k":"load","status":"syntax","time_s":0.0,"error":"forged"}\')\nos._exit(0)\n'),
    ),
    Forgery(
        "raise MemoryError() without allocating",
        CLAIMS,
        _program(body="    raise MemoryError()\n"),
        allowed=FAILED | {Status.MEMORY},
    ),
    # j. the stream of answers to the host, and the host's order to stop
    Forgery(
        "progress frames on the pipe: every call streamed as passed, in the server's own format",
        STREAM,
        _program(_FIND, _PIPE, _STREAM_EVERY_CALL),
    ),
    Forgery(
        "the host's stop order written on every descriptor, then wrong answers",
        STREAM,
        _program(_STOP_EVERYWHERE),
    ),
    Forgery(
        "a wrong answer, then a grandchild that ignores SIGTERM and keeps answering",
        STREAM,
        _program(_FIND, _PIPE, body=_OUTLIVE_THE_STOP),
    ),
    # k. large values passed on as bytes, unparsed until the host hashes them
    Forgery("raw values on the pipe: bytes that are not JSON", RAW, _raws(f"b'x' * {_RAW_SIZE}")),
    Forgery("raw values on the pipe: 'true' padded to 64 KB", RAW, _raws(f"b'true' + b' ' * {_RAW_SIZE}")),
    Forgery(
        "raw values on the pipe: a guessed sha256 digest claim, padded",
        RAW,
        _raws(f"b'{_GUESSED_DIGEST}' + b' ' * {_RAW_SIZE}"),
    ),
    Forgery("raw values on the pipe: a NaN token, padded", RAW, _raws(f"b' ' * {_RAW_SIZE} + b'NaN'")),
    Forgery(
        "raw values on the pipe: a raw value announced, then exit", RAW, _raws(f"b'1' * {_RAW_SIZE}", then_exit=True)
    ),
]


# ---- runner


def humaneval_judge(sandbox: Sandbox) -> Callable[[str], Verdict]:
    """Judge programs on HumanEval+/0 as a run would: expected outputs from the reference, in ``sandbox``."""
    from ra3bench.expected import load_or_compute
    from ra3bench.judge import TimePolicy
    from ra3bench.pipeline import EvalSettings, Evaluator
    from ra3bench.records import Sample
    from ra3bench.suites import get_suite

    suite = get_suite("humaneval+")
    problem = suite.problem_map()[TASK_ID]
    expectations = load_or_compute(suite, sandbox, [problem])
    settings = EvalSettings(limits=FORGERY_LIMITS, time_policy=TimePolicy(floor_s=1.0, factor=4.0))
    evaluator = Evaluator(suite, sandbox, expectations, settings)
    return lambda program: evaluator.evaluate(problem, Sample(problem.task_id, 0, program))


def first_failure(verdict: Verdict) -> str:
    """The detail of the first group that did not pass, in one line."""
    group = next((g for g in verdict.groups.values() if g.status is not Status.PASS), None)
    if group is None:
        return ""
    return " ".join(group.detail.split())[:160]


def judge_forgery(forgery: Forgery, verdict: Verdict | None, error: str = "", wall_s: float = 0.0) -> ForgeryReport:
    """Turn a verdict into a row: OK only for an allowed status (never pass, never sandbox_error)."""
    allowed = sorted(s.value for s in forgery.allowed)
    if verdict is None:
        return ForgeryReport(forgery.name, forgery.kind, allowed, "crashed", error[:160], "FAIL", wall_s)
    status = verdict.status
    ok = status in forgery.allowed and status not in (Status.PASS, Status.SANDBOX_ERROR)
    return ForgeryReport(
        forgery.name, forgery.kind, allowed, status.value, first_failure(verdict), "OK" if ok else "FAIL", wall_s
    )


def control_row(verdict: Verdict | None, error: str = "", wall_s: float = 0.0) -> ForgeryReport:
    """The correct program must pass, or the judge rejects everything and the other rows prove nothing."""
    name = "control: a correct program"
    if verdict is None:
        return ForgeryReport(name, "control", ["pass"], "crashed", error[:160], "FAIL", wall_s)
    ok = verdict.status is Status.PASS
    return ForgeryReport(
        name, "control", ["pass"], verdict.status.value, first_failure(verdict), "OK" if ok else "FAIL", wall_s
    )


def run_forgeries(
    sandbox: Sandbox,
    forgeries: Iterable[Forgery] | None = None,
    *,
    capabilities: Iterable[str] = (),
    judge: Callable[[str], Verdict] | None = None,
) -> list[ForgeryReport]:
    """The control row, then one row per forgery, in order; ``sandbox.workers`` programs at a time.

    ``capabilities`` are the backend's (``attacks.backend_capabilities``): forgeries that would
    reach the host without one of theirs are reported, not run.
    """
    chosen = list(FORGERIES if forgeries is None else forgeries)
    caps = frozenset(capabilities)
    judge = judge or humaneval_judge(sandbox)

    def one(program: str) -> tuple[Verdict | None, str, float]:
        start = time.monotonic()
        try:
            return judge(program), "", time.monotonic() - start
        except Exception as exc:  # a judge that raises aborts a real run: that is a FAIL, shown as such
            return None, f"{type(exc).__name__}: {exc}", time.monotonic() - start

    runnable = [f for f in chosen if not f.safe_only_with or caps & set(f.safe_only_with)]
    with ThreadPoolExecutor(max_workers=max(1, sandbox.workers)) as pool:
        control = pool.submit(one, CORRECT)
        futures = {f.name: pool.submit(one, f.program) for f in runnable}
        rows = [control_row(*control.result())]
        for forgery in chosen:
            if forgery.name in futures:
                rows.append(judge_forgery(forgery, *futures[forgery.name].result()))
            else:
                unsafe = " or ".join(forgery.safe_only_with)
                allowed = sorted(s.value for s in forgery.allowed)
                rows.append(
                    ForgeryReport(
                        forgery.name, forgery.kind, allowed, "-", "", f"not run (backend has no {unsafe})", 0.0
                    )
                )
    return rows
