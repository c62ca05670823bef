"""One connection's life as transcripts, without sockets (in the style of mitmproxy's Playbook):
events go in (``>>``), and what the connection does to its two transports comes out (``<<``).

The transports and the cluster are recorders; the event loop only runs the dial task."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from relay_fakes import FakeCluster

import kafka_edge.relay.phases as phases_module
from kafka_edge.relay.accept import Admission, Refusal, admit
from kafka_edge.relay.connection import ProxyConnection
from kafka_edge.relay.phases import TRANSITIONS, Phase
from kafka_edge.relay.read_buffer import READ_BUFFER
from kafka_edge.tls.clienthello import ALERT_HANDSHAKE_FAILURE, ALERT_UNRECOGNIZED_NAME, ClientHello


def request(api_key: int, version: int, corr: int, body: bytes = b"") -> bytes:
    payload = struct.pack(">hhih", api_key, version, corr, 1) + b"c" + body
    return struct.pack(">i", len(payload)) + payload


def response(corr: int, body: bytes) -> bytes:
    return struct.pack(">ii", 4 + len(body), corr) + body


class Transport:
    """Records what the connection does to one side: ("write", bytes), ("pause",), ..."""

    def __init__(self, side: str, log: list[tuple[Any, ...]]) -> None:
        self.side = side
        self.log = log
        self.reading = True
        self.buffered = 0  # pretend write buffer size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.log.append((self.side, "write", bytes(data)))

    def pause_reading(self) -> None:
        self.reading = False
        self.log.append((self.side, "pause"))

    def resume_reading(self) -> None:
        self.reading = True
        self.log.append((self.side, "resume"))

    def close(self) -> None:
        self.log.append((self.side, "close"))

    def abort(self) -> None:
        self.log.append((self.side, "abort"))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.log.append((self.side, "eof"))

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str) -> object:
        return ("198.18.1.2", 40000) if name == "peername" else None


class Cluster(FakeCluster):
    """Dials by a future the test completes."""

    def __init__(self) -> None:
        super().__init__()
        self.dialled: asyncio.Future[Any] | None = None

    async def dial(self, node_id: int | None, protocol: Any) -> Any:
        self.dialled = asyncio.get_running_loop().create_future()
        return await self.dialled


class Playbook:
    """Drives one ProxyConnection through events; ``out()`` returns and clears what it did."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.cluster = Cluster()
        self.client = Transport("client", self.log)
        self.upstream = Transport("upstream", self.log)
        self.registry: set[ProxyConnection] = set()
        self.conn = ProxyConnection(lambda _t: (self.cluster, 1), self.registry,  # type: ignore
                                    1 << 20)

    def phase(self) -> Phase:
        return self.conn.phase

    def out(self) -> list[tuple[Any, ...]]:
        got, self.log[:] = list(self.log), []
        return got

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    async def accept(self) -> None:  # >> client connected, routed to node 1
        self.conn.connection_made(self.client)  # type: ignore[arg-type]
        await self.settle()

    async def upstream_up(self) -> None:  # >> the dial completes
        self.conn.upstream.connection_made(self.upstream)  # type: ignore[arg-type]
        assert self.cluster.dialled is not None
        self.cluster.dialled.set_result(self.upstream)
        await self.settle()

    async def dial_fails(self, exc: BaseException) -> None:
        assert self.cluster.dialled is not None
        self.cluster.dialled.set_exception(exc)
        await self.settle()

    def client_sends(self, data: bytes) -> None:
        read = READ_BUFFER
        read.view[:len(data)] = data
        self.conn.buffer_updated(len(data))

    def broker_sends(self, data: bytes) -> None:
        read = READ_BUFFER
        read.view[:len(data)] = data
        self.conn.upstream.buffer_updated(len(data))


def run(scenario: Callable[[Playbook], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        await scenario(Playbook())
    asyncio.run(main())


def test_the_docstring_diagram_is_the_transition_table() -> None:
    doc = phases_module.__doc__ or ""
    drawn = {(Phase(a), event, Phase(b))
             for a, event, b in re.findall(r"^\s+(\w+)\s+--(\w+)-->\s+(\w+)\s*$", doc, re.M)}
    assert drawn == {(a, event, b) for (a, event), b in TRANSITIONS.items()}


def test_happy_path_dial_relay_close() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        assert p.out() == [("client", "pause")] and p.phase() is Phase.DIALLING
        # >> bytes that arrive before the upstream is connected are held, not forwarded
        early = request(12, 0, 1)  # Heartbeat: an answer relayed as it is
        p.client_sends(early)
        assert p.out() == []
        await p.upstream_up()
        assert p.out() == [("upstream", "write", early), ("client", "resume")]
        assert p.phase() is Phase.RELAYING
        # >> answer; << it reaches the client
        p.broker_sends(response(1, b"\x00\x00"))
        assert p.out() == [("client", "write", response(1, b"\x00\x00"))]
        # >> client EOF; << both closed
        p.conn.eof_received()
        assert p.out() == [("client", "close"), ("upstream", "close")]
        assert p.phase() is Phase.CLOSED and not p.registry
    run(scenario)


def test_dial_failure_closes_the_client() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        p.out()
        await p.dial_fails(ConnectionRefusedError("refused"))
        assert p.out() == [("client", "close")] and p.phase() is Phase.CLOSED
    run(scenario)


def test_close_while_dialling_drops_the_late_upstream() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        p.conn.eof_received()  # the client leaves while the dial is in progress
        assert p.phase() is Phase.CLOSED
        p.out()
        p.conn.on_upstream_connected(p.upstream)  # type: ignore[arg-type]
        assert p.out() == [("upstream", "close")]
        assert p.phase() is Phase.CLOSED
    run(scenario)


@pytest.mark.parametrize(("side", "data", "kind"), [
    ("client", struct.pack(">i", -5), "client_protocol"),
    ("broker", struct.pack(">ii", 8, 99), "broker_protocol"),  # answers no request
])
def test_a_bad_frame_from_either_side_closes(side: str, data: bytes, kind: str) -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        await p.upstream_up()
        p.out()
        (p.client_sends if side == "client" else p.broker_sends)(data)
        assert p.out() == [("client", "close"), ("upstream", "close")]
        assert p.cluster.errors == [kind]
    run(scenario)


def test_pause_and_resume_in_both_directions() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        await p.upstream_up()
        p.out()
        p.conn.pause_writing()  # the client reads slowly: stop reading the broker
        p.conn.resume_writing()
        p.conn.upstream.pause_writing()  # the broker reads slowly: stop reading the client
        p.conn.upstream.resume_writing()
        assert p.out() == [("upstream", "pause"), ("upstream", "resume"),
                           ("client", "pause"), ("client", "resume")]
    run(scenario)


def test_drain_waits_for_a_half_streamed_answer() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        await p.upstream_up()
        p.client_sends(request(1, 12, 7))
        answer = response(7, b"r" * 1000)
        p.broker_sends(answer[:300])
        p.out()
        p.conn.on_drain()
        # the answer is half written: nothing closes
        assert p.out() == [] and p.phase() is Phase.DRAINING
        p.client_sends(request(3, 12, 8))  # a request after the drain began: dropped
        assert p.out() == []
        p.client.buffered = 4096  # the rest is written but still in the client's buffer
        p.broker_sends(answer[300:])
        assert p.out() == [("client", "write", answer[300:])]
        assert p.phase() is Phase.DRAINING
        p.client.buffered = 0
        p.conn.check_drained()  # the proxy's drain loop asks again
        # << the upstream closes, the client gets a FIN after the last byte; reading goes on
        assert p.out() == [("upstream", "close"), ("client", "eof")]
        assert p.phase() is Phase.FINISHING
        p.conn.upstream.connection_lost(None)  # our own close of the broker side: expected
        p.client_sends(request(3, 12, 9))  # still read (and dropped): no reset
        assert p.out() == [] and p.phase() is Phase.FINISHING
        p.conn.eof_received()  # >> the client closes
        assert p.out() == [("client", "close")] and p.phase() is Phase.CLOSED
    run(scenario)


def test_drain_lets_a_half_sent_request_finish_then_waits_for_its_answer() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        await p.upstream_up()
        big = request(0, 3, 9, struct.pack(">hhii", -1, 1, 1000, 0) + b"x" * 500)
        p.client_sends(big[:100])
        p.out()
        p.conn.on_drain()
        assert p.out() == [] and p.phase() is Phase.DRAINING  # still reading the request
        p.client_sends(big[100:] + request(3, 12, 10))
        assert p.out() == [("upstream", "write", big[100:])]  # the next request is dropped
        p.broker_sends(response(9, b"ok"))
        assert p.out() == [("client", "write", response(9, b"ok")),
                           ("upstream", "close"), ("client", "eof")]
    run(scenario)


def test_drain_deadline_aborts_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        await p.upstream_up()
        p.client_sends(request(1, 12, 7))
        p.conn.on_drain()
        p.out()
        p.conn.abort()
        assert ("client", "abort") in p.out() and p.phase() is Phase.CLOSED
    run(scenario)
    assert "drain deadline cut" in caplog.text


def test_drain_while_dialling_closes_at_once() -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        p.out()
        p.conn.on_drain()
        assert p.out() == [("client", "close")] and p.phase() is Phase.CLOSED
    run(scenario)


def test_an_illegal_event_closes_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(p: Playbook) -> None:
        await p.accept()
        await p.upstream_up()
        p.out()
        p.conn.on_upstream_connected(p.upstream)  # type: ignore[arg-type]  # twice: a bug
        assert ("client", "close") in p.out() and p.phase() is Phase.CLOSED
    run(scenario)
    assert "has no transition" in caplog.text


# -- the SNI accept decision ------------------------------------------------------------------


class Endpoint:
    base = object()

    def context_for(self, name: str) -> object | None:
        return "ctx-" + name if name.endswith(".example.com") else None


class Listener:
    name = "edge"

    def __init__(self, default: str | None) -> None:
        self.default_cluster = default


def resolve(listener: str, name: str) -> Any:
    if name == "boot.orders.example.com":
        return ("orders-runtime", None)
    if name == "crash.example.com":
        raise RuntimeError("a routing bug")
    return None


@pytest.mark.parametrize(("name", "default", "expected"), [
    ("boot.orders.example.com", None, Admission("orders-runtime", None,  # type: ignore[arg-type]
                                                "ctx-boot.orders.example.com")),  # type: ignore
    (None, "orders", Admission("default-runtime", None, Endpoint.base)),  # type: ignore[arg-type]
    (None, None, "no_sni"),
    ("b-9" + "9" * 5000 + ".orders.example.com", None, "unknown_sni"),
    ("crash.example.com", None, "unknown_sni"),
])
def test_sni_admission(name: str | None, default: str | None, expected: object) -> None:
    got = admit(Listener(default), ClientHello(name), resolve,  # type: ignore[arg-type]
                {"orders": "default-runtime"}, Endpoint())  # type: ignore[arg-type, dict-item]
    if isinstance(expected, str):
        assert isinstance(got, Refusal) and got.reason == expected
        assert got.alert == (ALERT_HANDSHAKE_FAILURE if expected == "no_sni"
                             else ALERT_UNRECOGNIZED_NAME)
        assert len(got.message) < 300  # a 5,000-digit name is shortened in the log line
    else:
        assert got == expected
