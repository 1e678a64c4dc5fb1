"""Wire format shared by the trusted side and the in-sandbox harness.

This module runs *inside* the sandbox too, so it imports only the standard library.

Frames: a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.

Values: a plain tagged encoding, so that what a program returns reaches the trusted
side as data, never as an object whose methods the program wrote. JSON scalars and lists
stand for themselves (except non-finite floats); everything else is a one-key object:
``{"t": [...]}`` tuple, ``{"s": [...]}`` set, ``{"fs": [...]}`` frozenset,
``{"d": [[k, v], ...]}`` dict, ``{"f": "nan"|"inf"|"-inf"}`` float, ``{"b": "<hex>"}``
bytes, ``{"ix": "<hex>"}`` an int too big for a JSON number (Python refuses decimal
conversion past 4,300 digits; hex has no such limit), ``{"c": [re, im]}`` complex,
``{"r": "<repr>", "type": "<name>"}`` anything else
(decoded to :class:`Opaque`, which equals nothing).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import struct
import sys
from typing import Any, BinaryIO

MAX_FRAME_BYTES = 1 << 30
MAX_DEPTH = 64
BIG_INT_BITS = 4096  # ~1,233 decimal digits; larger ints travel as hex
# Standard-library mappings whose content is plain data: they travel (and compare) as dicts.
_DICT_TYPES = (dict, collections.Counter, collections.OrderedDict, collections.defaultdict)
_HEADER = struct.Struct(">I")
# Exact types that stand for themselves in the encoding (subclasses are not among them).
_PLAIN = frozenset({type(None), bool, str, int, float})
_PLAIN_NO_NUMBERS = frozenset({type(None), bool, str})
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on every class defined in Python code


# What JSONEncoder.encode goes through, as they were when this module was imported.
_JSONEncoder = json.JSONEncoder
_json_encoder = json.encoder
_HOOKS = (
    _JSONEncoder.encode,
    _JSONEncoder.iterencode,
    _json_encoder.c_make_encoder,
    _json_encoder.encode_basestring_ascii,
)


class _ValueEncoder(json.JSONEncoder):
    """Compact JSON, non-finite floats refused; one C encoder made once rather than one per ``encode``.

    ``JSONEncoder.encode`` builds a new C encoder on every call (~1 us, more than encoding a small
    value takes). The text is the same. Should a program have replaced any of what
    ``JSONEncoder.encode`` goes through (the method, ``iterencode``, ``c_make_encoder``,
    ``encode_basestring_ascii``), this falls back to ``JSONEncoder.encode`` as it now is, exactly
    as a plain encoder would (what comes back is checked on the host either way). Without
    circular-reference markers: what it encodes (``encode_value``'s output, frames) is built
    fresh and acyclic, and anything nested too deep still ends in ``RecursionError``.
    """

    def __init__(self) -> None:
        super().__init__(separators=(",", ":"), allow_nan=False)
        self._encode_c = None
        make = _HOOKS[2]
        if make is not None:
            try:
                encode_c = make(None, self.default, _HOOKS[3], None, ":", ",", False, False, False)
                sample = ["a\u00e9", 1, 2.5, None, True, {"k": [1]}]
                if "".join(encode_c(sample, 0)) == _JSONEncoder.encode(self, sample):
                    self._encode_c = encode_c
            except Exception:  # another interpreter's C encoder: JSONEncoder.encode does it all
                self._encode_c = None

    def encode(self, o: Any) -> str:
        encode_c = self._encode_c
        if (
            encode_c is None
            or _JSONEncoder.encode is not _HOOKS[0]
            or _JSONEncoder.iterencode is not _HOOKS[1]
            or _json_encoder.c_make_encoder is not _HOOKS[2]
            or _json_encoder.encode_basestring_ascii is not _HOOKS[3]
        ):
            return _JSONEncoder.encode(self, o)
        return "".join(encode_c(o, 0))


VALUE_ENCODER = _ValueEncoder()


def value_digest(text: str) -> dict:
    """What travels instead of a large encoded value whose comparison is plain equality."""
    return {"h": hashlib.sha256(text.encode()).hexdigest()}


class ProtocolError(Exception):
    """A frame could not be read: the peer died, or wrote garbage."""


def write_frame(stream: BinaryIO, message: dict) -> None:
    data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> dict | None:
    """Return the next message, or None at a clean end of stream."""
    header = _read_exact(stream, _HEADER.size, allow_eof=True)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes is over the limit")
    body = _read_exact(stream, size, allow_eof=False)
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def _read_exact(stream: BinaryIO, size: int, allow_eof: bool) -> bytes | None:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if allow_eof and remaining == size:
                return None
            raise ProtocolError("stream ended inside a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Opaque:
    """A value the encoding cannot carry. It equals nothing, itself included."""

    __slots__ = ("text", "type_name")

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name = type_name
        self.text = text

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


def encode_value(value: Any, depth: int = 0) -> Any:
    """Encode a Python value; types are checked exactly so subclasses cannot slip through."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if value.bit_length() <= BIG_INT_BITS else {"ix": hex(value)}
    if kind is float:
        if math.isfinite(value):
            return value
        return {"f": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if depth >= MAX_DEPTH:
        return _opaque(value, "too deep")
    if kind is list:
        if _plain_scalars(value):
            return list(value)
        return [encode_value(item, depth + 1) for item in value]
    if kind is tuple:
        return {"t": [encode_value(item, depth + 1) for item in value]}
    if kind is set or kind is frozenset:
        items = [encode_value(item, depth + 1) for item in value]
        return {"s" if kind is set else "fs": items}
    if kind in _DICT_TYPES:
        return {"d": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in dict.items(value)]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [encode_value(value.real), encode_value(value.imag)]}
    if _is_numpy_scalar(value, kind):
        return encode_value(kind.item(value), depth + 1)  # numpy's own C method: the type is not the program's
    return _opaque(value)


def _is_numpy_scalar(value: Any, kind: type) -> bool:
    """True for an instance of a real numpy scalar type, or an exact 0-d ``numpy.ndarray``.

    A class the program defines can claim ``__module__ = "numpy"`` and an ``item()`` of its own;
    it cannot be a static (C) type. Static types cannot be patched from Python either, so
    ``kind.item`` is numpy's method. Nothing here looks anything up on the value itself.
    """
    if "numpy" not in sys.modules or type(kind) is not type or kind.__flags__ & _HEAPTYPE:
        return False
    if kind.__module__ != "numpy":  # of a static type: fixed by its C definition ("numpy.int64")
        return False
    if kind.__name__ == "ndarray":
        return kind.ndim.__get__(value) == 0
    return any(base.__name__ == "generic" and base.__module__ == "numpy" for base in kind.__mro__)


def _plain_scalars(items: list) -> bool:
    """True if every item encodes as itself: checked at C speed, for the long lists tests return."""
    kinds = set(map(type, items))
    if not kinds <= _PLAIN:
        return False
    if kinds <= _PLAIN_NO_NUMBERS:
        return True
    if int in kinds:
        ints = [x for x in items if type(x) is int] if len(kinds) > 1 else items
        if ints and max(map(int.bit_length, ints)) > BIG_INT_BITS:
            return False
    if float in kinds:
        floats = [x for x in items if type(x) is float] if len(kinds) > 1 else items
        if not all(map(math.isfinite, floats)):
            return False
    return True


def _opaque(value: Any, note: str = "") -> dict:
    try:
        text = object.__repr__(value) if note else repr(value)
    except BaseException:
        text = "<unrepresentable>"
    return {"r": text[:200] + (f" ({note})" if note else ""), "type": type(value).__name__}


def decode_value(data: Any) -> Any:
    if isinstance(data, list):
        if set(map(type, data)) <= _PLAIN:  # no tags inside: a copy will do
            return list(data)
        return [decode_value(item) for item in data]
    if not isinstance(data, dict):
        return data
    if len(data) != 1:
        return Opaque(str(data.get("type", "?")), str(data.get("r", "")))
    ((tag, payload),) = data.items()
    if tag == "t":
        return tuple(decode_value(item) for item in payload)
    if tag == "s":
        return {_hashable(decode_value(item)) for item in payload}
    if tag == "fs":
        return frozenset(_hashable(decode_value(item)) for item in payload)
    if tag == "d":
        return {_hashable(decode_value(k)): decode_value(v) for k, v in payload}
    if tag == "f":
        return float(payload)
    if tag == "b":
        return bytes.fromhex(payload)
    if tag == "ix":
        return int(payload, 16)
    if tag == "c":
        return complex(decode_value(payload[0]), decode_value(payload[1]))
    return Opaque(str(data.get("type", "?")), str(data.get("r", "")))


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return Opaque(type(value).__name__, "unhashable")
    return value
