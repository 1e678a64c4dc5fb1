"""The direct connection between the driver and a node's actor (ray_link.py), without Ray: both ends in this process."""

from __future__ import annotations

import pickle
import queue
import secrets
import socket
import threading
from multiprocessing.connection import AuthenticationError, Client

import pytest

from ra3bench.sandbox.ray_link import NodeEnd, TcpLink, intrude


class FakeNode:
    """What a NodeSandbox gives its NodeEnd: a stream of items, and where jobs and stop orders go."""

    def __init__(self) -> None:
        self.out: queue.Queue[bytes | None] = queue.Queue()
        self.received: queue.Queue[tuple[str, object]] = queue.Queue()
        self.stream_read = threading.Event()

    def events(self):
        self.stream_read.set()
        while (item := self.out.get()) is not None:
            yield item

    def open(self, key: bytes) -> NodeEnd:
        return NodeEnd(
            "127.0.0.1",
            key,
            self.events,
            lambda body: self.received.put(("jobs", pickle.loads(body))),
            lambda keys: self.received.put(("stop", keys)),
        )


def test_jobs_stop_orders_and_the_stream_cross_in_order_and_the_stream_ends_at_the_nodes_close():
    node, key = FakeNode(), secrets.token_bytes(32)
    end = node.open(key)
    link = TcpLink(end.address, key)
    link.send_jobs(pickle.dumps([(1, "job one", True)]))
    link.send_stop([1])
    link.send_jobs(pickle.dumps([(2, "job two", False)]))
    assert [node.received.get(timeout=5) for _ in range(3)] == [
        ("jobs", [(1, "job one", True)]),
        ("stop", [1]),
        ("jobs", [(2, "job two", False)]),
    ]
    items = link.items()
    for n in range(50):
        node.out.put(b"item %d" % n)
    assert [next(items) for _ in range(50)] == [b"item %d" % n for n in range(50)]
    node.out.put(None)  # the node closes: its stream ends, and so does the driver's reading
    assert list(items) == []


def test_a_caller_without_the_key_is_refused_and_the_driver_still_connects_after_it():
    """Nobody without the node's key can send it a job, or read what it streams; the node waits for its driver."""
    node, key = FakeNode(), secrets.token_bytes(32)
    end = node.open(key)
    with pytest.raises(AuthenticationError):
        Client(end.address, authkey=secrets.token_bytes(32))
    with socket.create_connection(end.address) as raw:  # no handshake at all: garbage, then gone
        raw.sendall(b"\x00\x00\x00\x05JJJJJ")
    assert not node.stream_read.is_set()
    link = TcpLink(end.address, key)
    link.send_stop([7])
    assert node.received.get(timeout=5) == ("stop", [7])
    node.out.put(b"hello")
    assert next(link.items()) == b"hello"


def test_the_driver_refuses_a_listener_without_the_key():
    """Both ways: a node end that does not hold the driver's key gets no jobs (the driver raises, and falls back)."""
    node = FakeNode()
    end = node.open(secrets.token_bytes(32))
    with pytest.raises(AuthenticationError):
        TcpLink(end.address, secrets.token_bytes(32))
    assert node.received.empty()


def test_the_nodes_stream_is_not_read_before_the_driver_takes_the_connection():
    """A handshake that fails on the driver's side leaves the stream unread, for the Ray link it falls back to."""
    node, key = FakeNode(), secrets.token_bytes(32)
    end = node.open(key)
    from multiprocessing.connection import answer_challenge, deliver_challenge

    conn = Client(end.address)  # handshake done by hand, then the connection dropped before GO
    answer_challenge(conn, key)
    deliver_challenge(conn, key)
    conn.close()
    assert not node.stream_read.wait(0.5)


def test_closing_the_drivers_end_wakes_its_reader():
    node, key = FakeNode(), secrets.token_bytes(32)
    link = TcpLink(node.open(key).address, key)
    ended = threading.Event()

    def read() -> None:
        assert list(link.items()) == []
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    link.close()
    assert ended.wait(5)


def test_a_nodes_port_closes_once_its_driver_is_connected_and_the_intruder_check_sees_it():
    node, key = FakeNode(), secrets.token_bytes(32)
    end = node.open(key)
    assert intrude(end.address) == "refused: the handshake failed without the key"  # still listening: refused
    link = TcpLink(end.address, key)
    link.send_stop([3])
    assert node.received.get(timeout=5) == ("stop", [3])  # the node has taken its driver (and closed its port)
    assert intrude(link.address) == "refused: nothing listens on the node's port any more"
    link.send_stop([4])
    assert node.received.get(timeout=5) == ("stop", [4])  # the driver's connection is untouched
    assert node.received.empty()  # and nothing the intruder sent arrived


def test_the_intruder_check_reports_a_port_that_takes_anyone():
    """The check itself can fail: a listener that accepts any caller is reported as such."""
    from multiprocessing.connection import Listener

    open_door = Listener(("127.0.0.1", 0))  # no key at all
    taken = threading.Thread(target=lambda: open_door.accept().recv_bytes(), daemon=True)
    taken.start()
    assert intrude(open_door.address, timeout=2).startswith("ACCEPTED")
