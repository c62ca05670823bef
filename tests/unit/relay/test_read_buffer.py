"""The relay's shared read buffer under back-pressure, with real sockets on loopback.

Every socket is read into one buffer and the frame streams forward views of it. When a peer
reads slowly, a view waits in a transport's queue while later reads go on; those reads must not
land on the bytes still queued. These tests make a peer stall, then compare every byte.
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

from kafka_edge.relay.connection import ProxyConnection


def request(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    payload = struct.pack(">hhih", api_key, version, corr, 1) + b"t" + body
    return struct.pack(">i", len(payload)) + payload


def response(corr: int, body: bytes) -> bytes:
    return struct.pack(">ii", 4 + len(body), corr) + body


class _Cluster:
    name = "t"

    def map_address(self, node: int, host: str, port: int, broker: bool) -> tuple[str, int]:
        return host, port

    def learn(self, entries: object, source: str) -> bool:
        return True

    def on_error(self, kind: str) -> None:
        pass

    def on_accept(self, conn: ProxyConnection) -> None:
        pass

    def on_close(self, conn: ProxyConnection, reason: str) -> None:
        pass


Run = Callable[[Coroutine[Any, Any, Any]], Any]
# the proxy runs on uvloop; on a platform without it (relay.process.serve falls back) on
# asyncio's loop
LOOPS = pytest.mark.parametrize("run", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])


async def _proxy_to(upstream_port: int, tls: ssl.SSLContext | None = None,
                    registry: set[ProxyConnection] | None = None) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    cluster: Any = _Cluster()

    async def dial(conn: ProxyConnection, _cluster: Any, _node: int | None) -> None:
        await loop.create_connection(lambda: conn.upstream, "127.0.0.1", upstream_port)
        conn.start_relay()

    conns = set() if registry is None else registry
    server = await loop.create_server(
        lambda: ProxyConnection(lambda _t: (cluster, None), dial, conns, 100 << 20),
        "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


@LOOPS
def test_requests_queued_for_a_stalled_upstream_arrive_intact(run: Run) -> None:
    frames = b"".join(request(3, 1, i, os.urandom(50_000)) for i in range(120))  # 6 MB

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        received = bytearray()
        sink: asyncio.Future[asyncio.Transport] = loop.create_future()

        class Sink(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                transport.pause_reading()  # stalled: the proxy's writes to it back up
                sink.set_result(transport)

            def data_received(self, data: bytes) -> None:
                received.extend(data)

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)  # a small window
        listener.bind(("127.0.0.1", 0))
        upstream = await loop.create_server(Sink, sock=listener)
        proxy, port = await _proxy_to(upstream.sockets[0].getsockname()[1])
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frames)
        stalled = await asyncio.wait_for(sink, 10)
        await asyncio.sleep(1.0)  # the proxy reads on while views wait in its upstream queue
        stalled.resume_reading()
        for _ in range(200):
            if len(received) >= len(frames):
                break
            await asyncio.sleep(0.05)
        writer.close()
        proxy.close()
        upstream.close()
        return bytes(received)

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
        proxy, port = await _proxy_to(upstream.sockets[0].getsockname()[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        writer.transport.pause_reading()  # stalled: the proxy's writes to it back up
        writer.write(b"".join(request(2, 5, i, b"") for i in range(count)))
        await asyncio.sleep(1.5)
        writer.transport.resume_reading()
        got = await asyncio.wait_for(reader.readexactly(sum(map(len, answers))), 20)
        writer.close()
        proxy.close()
        upstream.close()
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
        cluster: Any = _Cluster()
        registry: set[ProxyConnection] = set()

        async def dial(conn: ProxyConnection, _cluster: Any, _node: int | None) -> None:
            raise error

        server = await loop.create_server(
            lambda: ProxyConnection(lambda _t: (cluster, None), dial, registry, 1 << 20),
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
    """A transport that records what is written to it (no socket: start_relay's early path)."""

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

    def resume_reading(self) -> None:
        pass


def test_nothing_after_a_bad_early_frame_reaches_the_broker() -> None:
    # bytes that arrived while dialling are fed when the upstream is up; a bad frame among
    # them closes the connection and what followed it is not parsed or forwarded
    conn = ProxyConnection(lambda _t: None, None, set(), 1 << 20)  # type: ignore[arg-type]
    client, upstream = _Recorder(), _Recorder()
    conn.client, conn.upstream.transport = client, upstream  # type: ignore[assignment]
    conn.cluster = _Cluster()  # type: ignore[assignment]
    good = request(18, 3, 1, b"")
    conn._early = [good, struct.pack(">i", -5), request(3, 1, 2, b"")]
    conn.start_relay()
    assert conn.closed and client.closed and upstream.closed
    assert bytes(upstream.written) == good
