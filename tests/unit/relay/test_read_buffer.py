"""The relay's shared read buffer under back-pressure, with real sockets on loopback.

Every socket is read into one buffer and the frame streams forward views of it. When a peer
reads slowly, a view waits in a transport's queue while later reads go on; those reads must not
land on the bytes still queued. These tests make a peer stall, check that the proxy paused
reading the other side while it stalled (flow control) and that the shared read buffer was
renewed while a view of it sat queued, then compare every byte.
(The peer here is a byte sink or source for the relay's buffering, not a Kafka stand-in: the
relay's Kafka behaviour is tested end to end against real brokers in tests/e2e.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import trustme
import uvloop
from relay_fakes import FakeCluster

from kafka_edge.relay.connection import ProxyConnection
from kafka_edge.relay.phases import Phase
from kafka_edge.relay.read_buffer import READ_BUFFER


def request(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    payload = struct.pack(">hhih", api_key, version, corr, 1) + b"t" + body
    return struct.pack(">i", len(payload)) + payload


def response(corr: int, body: bytes) -> bytes:
    return struct.pack(">ii", 4 + len(body), corr) + body


class _Cluster(FakeCluster):
    """Dials a fixed local port (or fails); leaves addresses as they are."""

    def __init__(self, upstream_port: int = 0, error: Exception | None = None) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.error = error

    async def dial(self, node_id: int | None, protocol: asyncio.BaseProtocol
                   ) -> asyncio.Transport:
        if self.error is not None:
            raise self.error
        transport, _ = await asyncio.get_running_loop().create_connection(
            lambda: protocol, "127.0.0.1", self.upstream_port)
        return transport

    def map_address(self, node: int, host: str, port: int, broker: bool) -> tuple[str, int]:
        return host, port


Run = Callable[[Coroutine[Any, Any, Any]], Any]
# the proxy runs on uvloop; on a platform without it (relay.process.serve falls back) on
# asyncio's loop
LOOPS = pytest.mark.parametrize("run", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])


async def _proxy_to(upstream_port: int, tls: ssl.SSLContext | None = None,
                    registry: set[ProxyConnection] | None = None) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    cluster: Any = _Cluster(upstream_port)
    conns = set() if registry is None else registry
    server = await loop.create_server(
        lambda: ProxyConnection(lambda _t: (cluster, None), conns, 100 << 20),
        "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` every few milliseconds; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.005)


async def _accepted(registry: set[ProxyConnection]) -> ProxyConnection:
    await _until(lambda: len(registry) == 1, "the proxy accepted the connection")
    return next(iter(registry))


def _read_buffer() -> bytearray:
    """The shared read buffer's storage now (``renew`` replaces it with a new bytearray)."""
    return READ_BUFFER.buf


def _stalled_peer_socket() -> socket.socket:
    """A non-blocking socket with a small receive window (a peer that reads slowly, or not at
    all until the test says so: plain sockets, so that no event loop reads for it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    sock.setblocking(False)
    return sock


async def _recv_exactly(sock: socket.socket, n: int, timeout: float = 20.0) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    async with asyncio.timeout(timeout):
        while len(got) < n:
            chunk = await loop.sock_recv(sock, min(1 << 16, n - len(got)))
            if not chunk:
                break
            got += chunk
    return bytes(got)


async def _tear_down(conns: set[ProxyConnection], *closables: Any) -> None:
    """Close what a scenario opened, also when it failed half way (a transport left paused
    with data queued would otherwise keep the event loop from closing)."""
    for closable in closables:
        if closable is not None:
            closable.close()
    for conn in list(conns):
        conn.abort()
    await asyncio.sleep(0.05)  # let the transports' close callbacks run before the loop ends


@LOOPS
def test_requests_queued_for_a_stalled_upstream_arrive_intact(run: Run) -> None:
    frames = b"".join(request(3, 1, i, os.urandom(50_000)) for i in range(120))  # 6 MB

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        listener = _stalled_peer_socket()  # accepted sockets inherit the small window
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        conns: set[ProxyConnection] = set()
        proxy, port = await _proxy_to(listener.getsockname()[1], registry=conns)
        upstream: socket.socket | None = None
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            conn = await _accepted(conns)
            client = conn.client
            assert client is not None
            # relaying: the proxy reads the client (it did not while dialling)
            await _until(client.is_reading, "the proxy reads the client once the upstream is up")
            first = _read_buffer()  # held: its identity cannot be reused
            writer.write(frames)
            # the upstream reads nothing: the proxy's queue towards it fills up (views of the
            # shared buffer among what it holds), so the proxy stops reading the client...
            await _until(lambda: not client.is_reading() and conn.client_paused,
                         "the proxy paused reading the client while the upstream stalled")
            # ... and the reads it made while views of the buffer sat queued went to a new one
            renewed = _read_buffer() is not first
            assert renewed, "the shared read buffer was never renewed"
            assert conn.bytes_up < len(frames)  # it is holding the client back
            accepted, _ = await asyncio.wait_for(loop.sock_accept(listener), 10)
            upstream = accepted
            accepted.setblocking(False)
            received = await _recv_exactly(accepted, len(frames))
            await _until(client.is_reading, "the proxy resumed reading the client")
        finally:
            await _tear_down(conns, writer, proxy, upstream, listener)
        return received

    assert run(scenario()) == frames


@LOOPS
def test_answers_queued_for_a_stalled_client_arrive_intact(run: Run) -> None:
    count = 120
    answers = [response(i, os.urandom(50_000)) for i in range(count)]  # 6 MB

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()

        class Source(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport
                self.seen = 0

            def data_received(self, data: bytes) -> None:
                # answer once every request has arrived (each is 15 bytes: no body)
                self.seen += len(data)
                if self.seen == 15 * count:
                    for answer in answers:
                        self.transport.write(answer)

        upstream = await loop.create_server(Source, "127.0.0.1", 0)
        conns: set[ProxyConnection] = set()
        proxy, port = await _proxy_to(upstream.sockets[0].getsockname()[1], registry=conns)
        client = _stalled_peer_socket()
        try:
            await loop.sock_connect(client, ("127.0.0.1", port))
            conn = await _accepted(conns)
            await _until(lambda: conn.upstream.transport is not None
                         and conn.client is not None and conn.client.is_reading(),
                         "relaying (the upstream is up and the client read)")
            up = conn.upstream.transport
            assert up is not None
            first = _read_buffer()  # held: its identity cannot be reused
            await loop.sock_sendall(client, b"".join(request(2, 5, i, b"") for i in range(count)))
            # the client reads nothing: the proxy's queue towards it fills up (views of the
            # shared buffer among what it holds), so the proxy stops reading the upstream...
            await _until(lambda: not up.is_reading(),
                         "the proxy paused reading the upstream while the client stalled")
            # ... and the reads it made while views of the buffer sat queued went to a new one
            renewed = _read_buffer() is not first
            assert renewed, "the shared read buffer was never renewed"
            assert conn.bytes_down < sum(map(len, answers))  # it is holding the upstream back
            got = await _recv_exactly(client, sum(map(len, answers)))
            await _until(up.is_reading, "the proxy resumed reading the upstream")
        finally:
            await _tear_down(conns, client, proxy, upstream)
        return got

    assert run(scenario()) == b"".join(answers)


@LOOPS
def test_tls_reads_of_several_records_reach_the_broker_intact(run: Run) -> None:
    # One read of the TLS layer decrypts several records into the buffer the proxy lends it;
    # asyncio's writes each record after the first into a slice of that buffer, which must be
    # a view of it, not a copy (the proxy would then forward stale bytes).
    ca = trustme.CA()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    frames = b"".join(request(3, 1, i, os.urandom(100_000)) for i in range(30))  # 3 MB

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        received = bytearray()
        done: asyncio.Future[None] = loop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.extend(data)
                if len(received) >= len(frames) and not done.done():
                    done.set_result(None)

            def connection_lost(self, exc: Exception | None) -> None:  # the proxy gave up
                if not done.done():
                    done.set_result(None)

        upstream = await loop.create_server(Sink, "127.0.0.1", 0)
        proxy, port = await _proxy_to(upstream.sockets[0].getsockname()[1], server_tls)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
        writer.write(frames)
        await asyncio.wait_for(done, 20)
        writer.close()
        proxy.close()
        upstream.close()
        return bytes(received)

    assert run(scenario()) == frames


@LOOPS
@pytest.mark.parametrize("error", [UnicodeError("label too long"), RuntimeError("a bug")],
                         ids=["idna", "bug"])
def test_a_failed_dial_closes_the_client_connection(run: Run, error: Exception) -> None:
    # getaddrinfo raises UnicodeError for a host name IDNA cannot encode; whatever the dial
    # raises, the client must not stay connected to nothing
    async def scenario() -> tuple[bytes, int]:
        loop = asyncio.get_running_loop()
        cluster: Any = _Cluster(error=error)
        registry: set[ProxyConnection] = set()
        server = await loop.create_server(
            lambda: ProxyConnection(lambda _t: (cluster, None), registry, 1 << 20),
            "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(request(18, 3, 1, b""))
        try:  # closed with the request unread: a reset, or an end of stream
            got = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            got = b""
        writer.close()
        server.close()
        return got, len(registry)

    assert run(scenario()) == (b"", 0)


class _Recorder:
    """A transport that records what is written to it (no socket: the early-bytes path)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | memoryview) -> None:
        assert not self.closed
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> object:
        return ("198.18.0.9", 9092) if name == "peername" else None

    def resume_reading(self) -> None:
        pass


def test_nothing_after_a_bad_early_frame_reaches_the_broker() -> None:
    # bytes that arrived while dialling are fed when the upstream is up; a bad frame among
    # them closes the connection and what followed it is not parsed or forwarded
    conn = ProxyConnection(lambda _t: None, set(), 1 << 20)
    client, upstream = _Recorder(), _Recorder()
    conn.client, conn.upstream.transport = client, upstream  # type: ignore[assignment]
    conn.cluster = _Cluster()  # type: ignore[assignment]
    conn.phase = Phase.DIALLING
    good = request(18, 3, 1, b"")
    conn._early = [good, struct.pack(">i", -5), request(3, 1, 2, b"")]
    conn.on_upstream_connected(upstream)  # type: ignore[arg-type]
    assert conn.phase is Phase.CLOSED and client.closed and upstream.closed
    assert bytes(upstream.written) == good
