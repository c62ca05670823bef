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
import struct
from types import SimpleNamespace
from typing import Any

import uvloop

from kafka_edge.relay.connection import ProxyConnection


def request(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    payload = struct.pack(">hhih", api_key, version, corr, 1) + b"t" + body
    return struct.pack(">i", len(payload)) + payload


def response(corr: int, body: bytes) -> bytes:
    return struct.pack(">ii", 4 + len(body), corr) + body


class _Cluster:
    name = "t"
    directory = SimpleNamespace(map_address=lambda node, host, port, broker: (host, port))

    def on_accept(self, conn: ProxyConnection) -> None:
        pass

    def on_close(self, conn: ProxyConnection, reason: str) -> None:
        pass


async def _proxy_to(upstream_port: int) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    cluster: Any = _Cluster()

    async def dial(conn: ProxyConnection, _cluster: Any, _node: int | None) -> None:
        await loop.create_connection(lambda: conn.upstream, "127.0.0.1", upstream_port)
        conn.start_relay()

    registry: set[ProxyConnection] = set()
    server = await loop.create_server(
        lambda: ProxyConnection(lambda _t: (cluster, None), dial, registry, 100 << 20),
        "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_requests_queued_for_a_stalled_upstream_arrive_intact() -> None:
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

    assert uvloop.run(scenario()) == frames


def test_answers_queued_for_a_stalled_client_arrive_intact() -> None:
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

    assert uvloop.run(scenario()) == b"".join(answers)
