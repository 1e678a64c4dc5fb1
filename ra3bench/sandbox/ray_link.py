"""The data path between the driver and one node's actor: a direct TCP connection, or Ray's messages.

Ray places the node actors, starts and kills them, and tells the driver when one dies. Jobs, stop
orders and the node's stream (``NodeSandbox.events``) are many small messages: through Ray each
costs about a millisecond of CPU between the two processes (a task or a generator item, each with
its own bookkeeping), through a socket about a tenth of that. On a node whose CPUs also run the
sandbox that is judging time lost, and the stream's latency decides how many tests a failing job
runs before its stop order arrives. So each node opens one TCP connection for the driver
(:class:`NodeEnd`), on the node's own address, and the driver connects (:class:`TcpLink`).

The connection is authenticated both ways with a fresh 32-byte key per node, sent through Ray
(``multiprocessing.connection``'s HMAC challenge): nobody without it can send the node a job or the
driver a result, and a sandboxed program has no network to try. Where the driver cannot reach a
node (a Ray Client driver outside the cluster, a firewall), the node's traffic goes through Ray
(:class:`RayLink`): slower, said in one line and in the manifest.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, Listener, answer_challenge, deliver_challenge
from typing import Any

# What the driver sends: GO once, when it takes this connection as the node's link (until then the node's stream
# stays unread, for the Ray link the driver falls back to if the handshake fails on its side); then jobs (a pickled
# batch, ``NodeSandbox.submit``) and stop orders (a pickled list of job keys).
GO, JOBS, STOP = b"G", b"J", b"S"
CONNECT_TIMEOUT_S = 5.0
MAX_REFUSED = 100  # callers a node refuses (no key, or gone mid-handshake) before it stops listening


class NodeEnd:
    """The node's side: listens on ``host`` until the driver connects with ``key``, then serves one connection:
    items of ``events`` go out as they come; jobs and stop orders that come in go to ``on_jobs`` / ``on_stop``."""

    def __init__(
        self,
        host: str,
        key: bytes,
        events: Callable[[], Iterator[bytes]],
        on_jobs: Callable[[bytes], None],
        on_stop: Callable[[list[int]], None],
    ) -> None:
        self._listener = Listener((host, 0), authkey=key)
        self.address: tuple[str, int] = self._listener.address
        self._events, self._on_jobs, self._on_stop = events, on_jobs, on_stop
        self._closing = threading.Lock()  # a descriptor is shut down only while it is still this connection's
        self._closed = False
        threading.Thread(target=self._serve, name="ra3bench-link", daemon=True).start()

    def _serve(self) -> None:
        conn, refused = None, 0
        while conn is None:
            try:
                conn = self._listener.accept()
            except Exception:  # a caller without the key (AuthenticationError), or one that left: wait for ours
                refused += 1
                if self._closed or refused > MAX_REFUSED:  # the node closes before the driver connected
                    return
        self._listener.close()
        _no_delay(conn)
        try:
            while True:
                message = conn.recv_bytes()
                if message == GO:
                    threading.Thread(target=self._send, args=(conn,), name="ra3bench-link-out", daemon=True).start()
                elif message[:1] == JOBS:
                    self._on_jobs(message[1:])
                elif message[:1] == STOP:
                    self._on_stop(pickle.loads(message[1:]))
        except (EOFError, OSError):  # the driver went away, or the stream ended (_send shut it)
            pass
        finally:
            with self._closing:
                conn.close()

    def _send(self, conn: Connection) -> None:
        try:
            for item in self._events():
                conn.send_bytes(item)
        except OSError:  # the driver went away
            pass
        finally:  # the stream ended (the node closes): the driver reads the end
            with self._closing:
                _shut(conn)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()


class TcpLink:
    """The driver's side of a node's connection."""

    kind = "tcp"

    def __init__(self, address: tuple[str, int], key: bytes, timeout: float = CONNECT_TIMEOUT_S) -> None:
        conn = _connect(address, timeout)
        try:
            _no_delay(conn)
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
            _receive_timeout(conn, 0.0)
            conn.send_bytes(GO)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.address = (str(address[0]), int(address[1]))
        self._sending = threading.Lock()  # the dispatcher sends jobs, the receivers send stop orders
        self._closing = threading.Lock()  # a descriptor is shut down only while it is still this connection's

    def send_jobs(self, pickled: bytes) -> None:
        with self._sending:
            self._conn.send_bytes(JOBS + pickled)

    def send_stop(self, keys: list[int]) -> None:
        with self._sending:
            self._conn.send_bytes(STOP + pickle.dumps(keys))

    def items(self) -> Iterator[bytes]:
        """The node's stream until it ends: its close, or its death (the connection ends with its process)."""
        try:
            while True:
                yield self._conn.recv_bytes()
        except (EOFError, OSError):
            return
        finally:
            with self._closing:
                self._conn.close()

    def close(self) -> None:
        """Ends :meth:`items` in the thread that reads it."""
        with self._closing:
            _shut(self._conn)


class RayLink:
    """A node's traffic through Ray: its actor's methods and its stream as a Ray streaming generator."""

    kind = "ray"

    def __init__(self, actor: Any, ray: Any) -> None:
        self._actor, self._ray = actor, ray
        self._stream = actor.events.options(num_returns="streaming").remote()

    def send_jobs(self, pickled: bytes) -> None:
        self._actor.submit.remote(pickled)

    def send_stop(self, keys: list[int]) -> None:
        self._actor.stop.remote(keys)

    def items(self) -> Iterator[bytes]:
        """Raises what Ray raises when the actor or its node died."""
        for ref in self._stream:
            yield self._ray.get(ref)

    def close(self) -> None:
        """The stream ends with the actor's close."""


def _connect(address: tuple[str, int], timeout: float) -> Connection:
    """A connection to ``address`` whose reads block at most ``timeout`` until :func:`_receive_timeout` lifts it
    (bounds a handshake with a peer that does not answer)."""
    sock = socket.create_connection(tuple(address), timeout=timeout)
    sock.setblocking(True)  # Connection reads the descriptor itself: a socket timeout would make it non-blocking
    conn = Connection(sock.detach())
    try:
        _receive_timeout(conn, timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def _socket_of(conn: Connection) -> socket.socket:
    """A socket over a duplicate of ``conn``'s descriptor, to set options on (close it after)."""
    return socket.socket(fileno=os.dup(conn.fileno()))


def _receive_timeout(conn: Connection, seconds: float) -> None:
    """How long a read of ``conn`` may block (0: for ever)."""
    whole = int(seconds)
    with _socket_of(conn) as duplicate:
        duplicate.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds % 1) * 1e6)))


def _no_delay(conn: Connection) -> None:
    """Each message goes out at once (Nagle would hold a small one until the last was acknowledged)."""
    with _socket_of(conn) as duplicate:
        duplicate.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _shut(conn: Connection) -> None:
    """Shut the connection down for both sides: a thread blocked reading it wakes to its end (and closes it).
    Nothing where it is closed already."""
    with contextlib.suppress(OSError), _socket_of(conn) as duplicate:  # closed: fileno() raises
        duplicate.shutdown(socket.SHUT_RDWR)


def intrude(address: tuple[str, int], timeout: float = 5.0) -> str:
    """Try to take a node's connection over without its key, as anyone on the network could: what happened, in
    words. A node closes its port once its driver is connected, so this should find nothing listening; a port
    still open must refuse the handshake. Used by ``ra3bench sandbox check --sandbox ray``."""
    import secrets
    from multiprocessing.connection import AuthenticationError

    try:
        conn = _connect(address, timeout)
    except ConnectionRefusedError:
        return "refused: nothing listens on the node's port any more"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"
    try:
        if not conn.poll(timeout):  # a keyed node challenges a caller at once
            conn.send_bytes(STOP + pickle.dumps([0]))
            return "ACCEPTED: the port took a caller without asking for a key"
        answer_challenge(conn, secrets.token_bytes(32))
        conn.send_bytes(STOP + pickle.dumps([0]))
        return "ACCEPTED: the node took a caller without its key"
    except AuthenticationError:
        return "refused: the handshake failed without the key"
    except (EOFError, OSError) as exc:
        return f"refused: the node closed the connection ({type(exc).__name__})"
    finally:
        conn.close()
