"""Host-side parsing of what a sandbox sends back: every byte of it is the program's claim.

The program owns its whole process, the harness code inside it included: it can patch the
encoder, write frames to any descriptor it holds, reach harness objects through ``gc``. So the
host takes nothing on trust. This module is the one gate between those bytes and the judge:

* :func:`parse_result` turns a worker's answer into a :class:`JobResult`, or into a result
  marked ``malformed`` (a failure of the program, judged ``fail``): it never raises, whatever
  arrives, and never yields ``sandbox_error`` for something a program can write;
* :func:`decode_claim` turns one encoded value into plain Python data, accepting only the tags
  ``harness/protocol.py`` defines, bounded depth, finite numbers, well-formed payloads; anything
  else raises :class:`MalformedClaim`;
* :func:`digest_claim` accepts a ``{"h": <sha256>}`` digest only where the job asked for one.

Nothing here executes code the program wrote: decoded values are ints, floats, strings, bytes,
lists, tuples, sets, dicts, ``None``, bools and :class:`~ra3bench.sandbox.harness.protocol.Opaque`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from ra3bench.sandbox.base import CallResult, CallStatus, JobResult, RecordedCall
from ra3bench.sandbox.harness.protocol import MAX_DEPTH, Opaque

# The encoder turns anything deeper than MAX_DEPTH into an opaque record; a claim may go one
# container and one record further, no more.
MAX_CLAIM_DEPTH = MAX_DEPTH + 2
MAX_TEXT = 2000  # error texts, opaque reprs and type names are cut to this on the host
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX_INT = re.compile(r"-?0x[0-9a-f]+")
_HEX_BYTES = re.compile(r"(?:[0-9a-f]{2})*")
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_INF = math.inf
_STATUSES = {s.value: s for s in CallStatus}
_CALL_STATUSES = frozenset({"ok", "error", "timeout", "memory", "missing"})
_LOAD_STATUSES = frozenset({"ok", "error", "timeout", "memory", "syntax"})
MALFORMED = "malformed result"


class MalformedClaim(ValueError):
    """What came back is not a well-formed encoding: the program's failure, never a crash."""


def _reject_constant(name: str) -> Any:
    raise MalformedClaim(f"non-finite number {name} in a frame")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_frame(body: bytes) -> dict:
    """A frame body as a JSON object; raises :class:`MalformedClaim` for anything else.

    ``NaN``/``Infinity`` tokens, invalid UTF-8, nesting deep enough to exhaust the parser and
    integers too long for Python's decimal conversion all end here, as malformed.
    """
    message = _json(body, "frame")
    if type(message) is not dict:
        raise MalformedClaim("frame is not a JSON object")
    return message


def _json(body: bytes, what: str) -> Any:
    """``body`` as one JSON value (strict: see ``parse_frame``); raises :class:`MalformedClaim`."""
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except MalformedClaim:
        raise
    except (ValueError, RecursionError, MemoryError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedClaim(f"{what} is not JSON: {type(exc).__name__}") from None


# --------------------------------------------------------------------------- values


class RawValue:
    """A large encoded value as the bytes that came back (``Job.raw_values``), not yet parsed.

    The judge hashes them: bytes equal to the expected value's encoding pass without either side
    being parsed. Anything else is parsed by :meth:`encoded`, as strictly as a frame.
    """

    __slots__ = ("_sha256", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._sha256: str | None = None

    def sha256(self) -> str:
        """What ``protocol.value_digest`` gives for the same text."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.data).hexdigest()
        return self._sha256

    def encoded(self) -> Any:
        """The encoded value these bytes claim (JSON); raises :class:`MalformedClaim` if they are not one."""
        return _json(self.data, "a raw value")

    def __repr__(self) -> str:
        return f"RawValue({len(self.data)} bytes)"


def decode_claim(data: Any) -> Any:
    """Plain Python data for an encoded value; raises :class:`MalformedClaim` unless well formed."""
    if type(data) is RawValue:
        data = data.encoded()
    try:
        return _decode(data, 0)
    except MalformedClaim:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise MalformedClaim(f"bad value: {type(exc).__name__}") from None


def _decode(data: Any, depth: int) -> Any:
    kind = type(data)
    if data is None or kind is bool or kind is str or kind is int:
        return data
    if kind is float:
        if not math.isfinite(data):
            raise MalformedClaim("a non-finite float outside its tag")
        return data
    if depth >= MAX_CLAIM_DEPTH:
        raise MalformedClaim(f"nested deeper than {MAX_CLAIM_DEPTH}")
    if kind is list:
        return [_decode(item, depth + 1) for item in data]
    if kind is not dict:
        raise MalformedClaim(f"unexpected {kind.__name__}")
    if len(data) == 2 and type(data.get("r")) is str and type(data.get("type")) is str:
        return Opaque(data["type"][:MAX_TEXT], data["r"][:MAX_TEXT])
    if len(data) != 1:
        raise MalformedClaim("a tagged value has exactly one key")
    ((tag, payload),) = data.items()
    if tag in ("t", "s", "fs"):
        items = [_decode(item, depth + 1) for item in _list(payload, tag)]
        if tag == "t":
            return tuple(items)
        for item in items:
            _require_hashable(item)
        return set(items) if tag == "s" else frozenset(items)
    if tag == "d":
        out = {}
        for pair in _list(payload, tag):
            if type(pair) is not list or len(pair) != 2:
                raise MalformedClaim("a dict item is not a [key, value] pair")
            key = _decode(pair[0], depth + 1)
            _require_hashable(key)
            out[key] = _decode(pair[1], depth + 1)
        return out
    if tag == "f":
        if type(payload) is not str or payload not in _FLOATS:
            raise MalformedClaim("a float tag is not nan, inf or -inf")
        return _FLOATS[payload]
    if tag == "b":
        if type(payload) is not str or not _HEX_BYTES.fullmatch(payload):
            raise MalformedClaim("bytes are not lower-case hex")
        return bytes.fromhex(payload)
    if tag == "ix":
        if type(payload) is not str or not _HEX_INT.fullmatch(payload):
            raise MalformedClaim("a big int is not hex")
        return int(payload, 16)
    if tag == "c":
        parts = _list(payload, tag)
        if len(parts) != 2:
            raise MalformedClaim("a complex is not [real, imag]")
        real, imag = (_decode(p, depth + 1) for p in parts)
        if type(real) not in (int, float) or type(imag) not in (int, float):
            raise MalformedClaim("a complex part is not a number")
        return complex(real, imag)
    raise MalformedClaim(f"unknown tag {tag[:20]!r}")


def _list(payload: Any, tag: str) -> list:
    if type(payload) is not list:
        raise MalformedClaim(f"the payload of {tag!r} is not a list")
    return payload


def _require_hashable(value: Any) -> None:
    try:
        hash(value)
    except TypeError:
        raise MalformedClaim(f"unhashable {type(value).__name__} as a set item or dict key") from None


def is_digest_claim(value: Any) -> bool:
    """Whether a value has the shape of a digest (the judge decides whether one was asked for)."""
    return type(value) is dict and len(value) == 1 and "h" in value


def digest_claim(value: Any) -> str:
    """The sha256 of a ``{"h": "<64 hex>"}`` claim; raises :class:`MalformedClaim` for anything else."""
    if not is_digest_claim(value) or type(value["h"]) is not str or not _SHA256.fullmatch(value["h"]):
        raise MalformedClaim("a digest is not a sha256 in hex")
    return value["h"]


# --------------------------------------------------------------------------- results


def parse_result(data: Any, n_calls: int | None = None) -> JobResult:
    """A worker's answer as a :class:`JobResult`; a malformed one comes back ``malformed`` (never raises).

    ``n_calls``: how many call results the job must have (the harness always sends one per
    call, ``missing`` for those it did not run); any other count is malformed.
    """
    try:
        return _parse_result(data, n_calls)
    except MalformedClaim as exc:
        return malformed(str(exc))
    except Exception as exc:  # a bug here must still not crash a run nor blame the infrastructure
        return malformed(f"{type(exc).__name__}")


def malformed(why: str) -> JobResult:
    """The result of a job whose answer could not be believed: the program's failure."""
    detail = f"{MALFORMED}: {why}"[:MAX_TEXT]
    return JobResult(load=CallResult(CallStatus.ERROR, error=detail), malformed=detail)


def _parse_result(data: Any, n_calls: int | None) -> JobResult:
    if type(data) is not dict:
        raise MalformedClaim("the answer is not an object")
    fault = _text(data.get("sandbox_error", ""), "sandbox_error")
    if fault:  # the harness failed before any program code ran (harness/server.py's _fault)
        return JobResult.infrastructure_fault(fault)
    load = _call(data.get("load"), _LOAD_STATUSES, "load")
    calls_data = data.get("calls", [])
    if type(calls_data) is not list:
        raise MalformedClaim("calls is not a list")
    calls = [_call(c, _CALL_STATUSES, "call") for c in calls_data]
    if n_calls is not None and load.status is CallStatus.OK and len(calls) != n_calls:
        raise MalformedClaim(f"{len(calls)} call results for {n_calls} calls")
    script_data = data.get("script")
    script = _call(script_data, _CALL_STATUSES, "script") if script_data is not None else None
    recorded_data = data.get("recorded", [])
    if type(recorded_data) is not list:
        raise MalformedClaim("recorded is not a list")
    recorded = [_recorded(r) for r in recorded_data]
    return JobResult(
        load=load,
        calls=calls,
        script=script,
        recorded=recorded,
        output=_text(data.get("output", ""), "output", 1 << 16),
        wall_s=_seconds(data.get("wall_s", 0.0), "wall_s"),
    )


def parse_call(data: Any) -> CallResult:
    """One streamed call result (harness/jobs.py's Progress); raises :class:`MalformedClaim`."""
    return _call(data, _CALL_STATUSES, "call")


def _call(data: Any, statuses: frozenset[str], what: str) -> CallResult:
    """One call's result. Once per test: ``_seconds`` and ``_text`` inline, messages made only on failure."""
    if type(data) is not dict:
        raise MalformedClaim(f"{what} is not an object")
    status = data.get("status")
    if type(status) is not str or status not in statuses:
        raise MalformedClaim(f"{what} has a bad status")
    time_s = data.get("time_s", 0.0)
    if type(time_s) is not float or not 0.0 <= time_s < _INF:  # else a finite, non-negative float already
        time_s = _seconds(time_s, f"{what} time_s")
    error = data.get("error", "")
    if type(error) is not str:
        raise MalformedClaim(f"{what} error is not text")
    return CallResult(_STATUSES[status], data.get("value") if status == "ok" else None, time_s, error[:MAX_TEXT])


def _recorded(data: Any) -> RecordedCall:
    call = _call(data, _CALL_STATUSES - {"missing"}, "recorded call")
    args = data.get("args")
    if type(args) is not list:
        raise MalformedClaim("recorded args are not a list")
    return RecordedCall(args, data.get("value"), call.status, call.time_s, call.error)


def _seconds(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise MalformedClaim(f"{what} is not a duration")
    return float(value)


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if type(value) is not str:
        raise MalformedClaim(f"{what} is not text")
    return value[:limit]
