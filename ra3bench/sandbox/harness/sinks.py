"""What a job's child writes to instead of fds 1/2, and the builtins swap around program code.

The program's prints share one size budget (the first bytes reach the job's output file, the
rest is dropped at the cost of a length check), and the harness works with the pristine
builtins whatever the program did to ``builtins``. Standard library only.
"""

from __future__ import annotations

import builtins
import operator
import os
from typing import Any, ClassVar

_os_write = os.write


class Output:
    """The budget shared by sys.stdout and sys.stderr: the first bytes go to fd 1, the rest is dropped."""

    def __init__(self, budget: int) -> None:
        self.remaining = budget
        self.pending = bytearray()

    def put(self, data: bytes) -> None:
        if self.remaining <= 0:
            return
        data = data[: self.remaining]
        self.remaining -= len(data)
        self.pending += data
        if len(self.pending) >= 1 << 16:
            self.flush()

    def flush(self) -> None:
        if not self.pending:  # after every call: mostly nothing was printed
            return
        data, self.pending = bytes(self.pending), bytearray()
        try:
            while data:
                data = data[_os_write(1, data) :]
        except OSError:  # EFBIG past RLIMIT_FSIZE, or fd 1 closed by the program
            self.remaining = 0


class _BinarySink:
    def __init__(self, out: Output) -> None:
        self._out = out

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._out.put(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class Sink:
    """sys.stdout / sys.stderr of a job: printing 100 MB costs a length check per write."""

    encoding = "utf-8"
    errors = "replace"
    newlines = None
    line_buffering = False
    closed = False

    def __init__(self, out: Output, name: str) -> None:
        self._out = out
        self.name = name
        self.buffer = _BinarySink(out)

    def write(self, text: str) -> int:
        if type(text) is not str:
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._out.remaining > 0:
            self._out.put(text[: self._out.remaining].encode("utf-8", "replace"))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._out.flush()

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        pass


class Builtins:
    """Swap the pristine builtins in while the harness works, and the program's back for the program."""

    pristine: ClassVar[dict] = {}  # taken once in the server, before any program ran
    keys: ClassVar[list] = []
    values: ClassVar[list] = []
    # What the harness and protocol.py call after the program has run (json's encoder is C).
    USED = (
        "BaseException", "Exception", "MemoryError", "SyntaxError", "ValueError", "TypeError", "OSError",
        "type", "isinstance", "len", "callable", "getattr", "repr", "object", "str", "int", "float", "list",
        "dict", "tuple", "bytes", "memoryview", "range", "max", "min",
    )  # fmt: skip

    @classmethod
    def snapshot(cls) -> None:
        cls.pristine = dict(builtins.__dict__)
        cls.keys = [k for k in cls.USED if k in cls.pristine]
        cls.values = [cls.pristine[k] for k in cls.keys]

    def __init__(self) -> None:
        if not Builtins.pristine:  # used without main(): the child has not run a program yet
            Builtins.snapshot()
        self.program: dict | None = None

    def to_harness(self) -> None:
        current = builtins.__dict__
        # Only the names the harness, protocol.py and json use are checked (a full check costs
        # ~10 us per call); by identity, never ==, which a planted __eq__ could answer.
        if all(map(operator.is_, map(current.get, Builtins.keys), Builtins.values)):
            self.program = None
            return
        self.program = dict(current)
        current.clear()
        current.update(self.pristine)

    def to_program(self) -> None:
        if self.program is not None:
            current = builtins.__dict__
            current.clear()
            current.update(self.program)
            self.program = None
