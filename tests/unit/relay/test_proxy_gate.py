"""Reading the PROXY header off accepted loopback sockets (relay/proxy_protocol.py): what is
trusted, what is refused and why, and that exactly the header's bytes are consumed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from kafka_edge.config import ProxyProtocol
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.proxy_protocol import HeaderRefusal, Origin, ProxyGate

Run = Callable[[Coroutine[Any, Any, Any]], Any]
LOOPS = pytest.mark.parametrize("run", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
CLIENT_HELLO_START = bytes([0x16, 0x03, 0x01, 0x00, 0x05]) + b"hello"
KAFKA_FRAME = struct.pack(">ihhih", 11, 18, 3, 7, -1) + b"x"


def v2_tcp4(src: str, sport: int, tlvs: bytes = b"", command: int = 1) -> bytes:
    block = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address("10.9.9.9").packed
             + struct.pack(">HH", sport, 9098) + tlvs)
    return SIGNATURE + bytes([0x20 | command, 0x11]) + struct.pack(">H", len(block)) + block


def gate(mode: str, *trusted: str, timeout: float = 5.0) -> ProxyGate:
    settings = ProxyProtocol(mode=mode, trusted_sources=trusted,  # type: ignore[arg-type]
                             header_timeout_s=timeout)
    return ProxyGate(settings, "listener test")


async def connected(client_host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket]:
    """(the accepted socket, the client's), both non-blocking, on loopback."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        lsock.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        client.bind((client_host, 0))
        await loop.sock_connect(client, lsock.getsockname())
        accepted, _ = await loop.sock_accept(lsock)
    accepted.setblocking(False)
    return accepted, client


async def admit(the_gate: ProxyGate, *chunks: bytes, client_host: str = "127.0.0.1",
                pause: float = 0.05) -> tuple[Origin | HeaderRefusal, bytes, str]:
    """Send ``chunks`` (``pause`` apart) and admit: (the outcome, what the next reader of the
    accepted socket sees, the client's own address)."""
    loop = asyncio.get_running_loop()
    accepted, client = await connected(client_host)
    try:
        host, port = client.getsockname()

        async def send() -> None:
            for chunk in chunks:
                await loop.sock_sendall(client, chunk)
                await asyncio.sleep(pause)

        sender = loop.create_task(send())
        outcome = await the_gate.admit(accepted)
        await sender
        rest = b""
        if isinstance(outcome, Origin):
            await asyncio.sleep(0.05)
            try:
                rest = accepted.recv(65536)
            except BlockingIOError:
                rest = b""
        return outcome, rest, f"{host}:{port}"
    finally:
        accepted.close()
        client.close()


@LOOPS
def test_a_v2_header_names_the_client_and_only_its_bytes_are_read(run: Run) -> None:
    header = v2_tcp4("203.0.113.9", 40001, tlvs=bytes([0xEA, 0, 7, 1]) + b"vpce-1")
    outcome, rest, peer = run(admit(gate("required", "127.0.0.0/8"), header + CLIENT_HELLO_START))
    assert isinstance(outcome, Origin)
    assert (outcome.peer, outcome.client_address, outcome.client) == (
        peer, "203.0.113.9:40001", "203.0.113.9:40001")
    assert outcome.vpc_endpoint_id == "vpce-1"
    assert outcome.note == f" (through {peer}, a PROXY header named the client)"
    assert rest == CLIENT_HELLO_START  # the TLS layer sees only TLS


@LOOPS
def test_a_header_in_pieces_is_waited_for(run: Run) -> None:
    line = b"PROXY TCP4 198.51.100.7 10.0.0.1 5555 9092\r\n"
    outcome, rest, _ = run(admit(gate("required", "127.0.0.1"), line[:3], line[3:20],
                                 line[20:] + KAFKA_FRAME))
    assert isinstance(outcome, Origin) and outcome.client == "198.51.100.7:5555"
    assert rest == KAFKA_FRAME


@LOOPS
def test_local_and_unknown_keep_the_real_peer(run: Run) -> None:
    for header in (v2_tcp4("203.0.113.9", 1, command=0), b"PROXY UNKNOWN\r\n"):
        outcome, rest, peer = run(admit(gate("required", "127.0.0.1"), header + b"after"))
        assert isinstance(outcome, Origin) and outcome.header is not None
        assert (outcome.client_address, outcome.client, outcome.note) == (None, peer, "")
        assert rest == b"after"


@LOOPS
def test_required_refuses_a_peer_outside_trusted_sources_unread(run: Run) -> None:
    header = v2_tcp4("203.0.113.9", 1)
    outcome, _, peer = run(admit(gate("required", "10.0.0.0/8"), header))
    assert outcome == HeaderRefusal(peer, f"refused a connection on listener test from {peer}: "
                                          "not in proxy_protocol.trusted_sources (mode required)")


@LOOPS
def test_required_refuses_a_connection_without_a_header(run: Run) -> None:
    outcome, _, peer = run(admit(gate("required", "127.0.0.1"), CLIENT_HELLO_START))
    assert isinstance(outcome, HeaderRefusal) and outcome.peer == peer
    assert outcome.message.startswith(f"refused a connection on listener test from {peer}: "
                                      "malformed PROXY header: not a PROXY protocol header: "
                                      "the bytes start 16 03 01 00 05")


@LOOPS
def test_optional_lets_a_connection_without_a_header_through_untouched(run: Run) -> None:
    for trusted in ("127.0.0.1", "10.0.0.0/8"):  # trusted or not: no header, nothing to trust
        for first in (CLIENT_HELLO_START, KAFKA_FRAME):
            outcome, rest, peer = run(admit(gate("optional", trusted), first))
            assert isinstance(outcome, Origin) and (outcome.peer, outcome.header) == (peer, None)
            assert rest == first


@LOOPS
def test_optional_refuses_a_header_from_outside_trusted_sources(run: Run) -> None:
    outcome, _, peer = run(admit(gate("optional", "10.0.0.0/8"), b"PROXY TCP4 1.2.3.4 "))
    assert outcome == HeaderRefusal(peer, f"refused a connection on listener test from {peer}: "
                                          "it sent a PROXY header but is not in "
                                          "proxy_protocol.trusted_sources")


@LOOPS
def test_trust_is_by_the_peer_address(run: Run) -> None:
    header = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    trusted, _, _ = run(admit(gate("optional", "127.0.0.2/32"), header, client_host="127.0.0.2"))
    assert isinstance(trusted, Origin) and trusted.client == "1.2.3.4:1"
    other, _, _ = run(admit(gate("optional", "127.0.0.2/32"), header, client_host="127.0.0.3"))
    assert isinstance(other, HeaderRefusal) and "not in proxy_protocol" in other.message


def test_an_ipv4_mapped_peer_is_trusted_as_ipv4() -> None:
    the_gate = gate("required", "10.0.0.0/8")
    assert the_gate.trusts("::ffff:10.1.2.3") and the_gate.trusts("10.1.2.3")
    assert not the_gate.trusts("::ffff:11.1.2.3") and not the_gate.trusts("")


@LOOPS
@pytest.mark.parametrize(("data", "message"), [
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n", 'source port "080"'),
    (SIGNATURE + b"\x21\x11\x00\x0c" + b"\x00" * 11, ""),  # announced 12, sent 11: a timeout
    (SIGNATURE + b"\x23\x11\x00\x00", "command 0x3"),
])
def test_malformed_or_incomplete_headers_are_refused(run: Run, data: bytes, message: str) -> None:
    outcome, _, _ = run(admit(gate("required", "127.0.0.1", timeout=0.5), data))
    assert isinstance(outcome, HeaderRefusal)
    if message:
        assert "malformed PROXY header: " in outcome.message and message in outcome.message
    else:
        assert outcome.message.endswith(": no complete PROXY header within 0.5 s "
                                        "(proxy_protocol.header_timeout_s)")


@LOOPS
@pytest.mark.parametrize("sent", [b"", b"PROXY TCP4"], ids=["nothing", "part"])
def test_a_peer_that_closes_first_is_refused(run: Run, sent: bytes) -> None:
    async def scenario() -> Origin | HeaderRefusal:
        accepted, client = await connected()
        client.sendall(sent)
        client.close()
        try:
            return await gate("required", "127.0.0.1", timeout=0.5).admit(accepted)
        finally:
            accepted.close()

    outcome = run(scenario())
    assert isinstance(outcome, HeaderRefusal)
    # a close is seen once no byte is left to peek at; bytes left unread mean the timeout
    assert outcome.message.endswith(
        "no complete PROXY header within 0.5 s (proxy_protocol.header_timeout_s)" if sent else
        "the connection closed before a PROXY header (or other first bytes) was complete")


@LOOPS
def test_optional_and_silent_times_out(run: Run) -> None:
    outcome, _, _ = run(admit(gate("optional", "127.0.0.1", timeout=0.3)))
    assert isinstance(outcome, HeaderRefusal)
    assert outcome.message.endswith("no complete PROXY header or other first bytes within 0.3 s "
                                    "(proxy_protocol.header_timeout_s)")


def test_a_refusal_is_counted_and_kept_among_the_recent_ones() -> None:
    metrics = Metrics()
    HeaderRefusal("10.0.0.1:5", "refused: because").report(metrics, "edge")
    assert metrics.refused.labels("edge", "proxy_header")._value.get() == 1
    (record,) = metrics.recent_refusals
    assert (record.listener, record.reason, record.peer, record.detail) == (
        "edge", "proxy_header", "10.0.0.1:5", "refused: because")
