"""The admin port answers a load balancer that sends a PROXY protocol header before its HTTP
health check (an AWS NLB with proxy_protocol_v2.enabled does, on health checks too)."""

from __future__ import annotations

import asyncio
import struct

from prometheus_client import CollectorRegistry

from kafka_edge.observability.http import HealthServer

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_LOCAL = V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack(">H", 0)
V2_PROXY_TCP4 = (V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack(">H", 12)
                 + bytes([198, 18, 0, 7, 198, 18, 0, 1]) + struct.pack(">HH", 40000, 9180))
V1 = b"PROXY TCP4 198.18.0.7 198.18.0.1 40000 9180\r\n"


async def _ask(port: int, data: bytes, split: int | None = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if split is None:
        writer.write(data)
    else:  # the header and request in pieces: the reader waits for whole ones
        writer.write(data[:split])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(data[split:])
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def _scenario() -> list[bytes]:
    server = HealthServer(CollectorRegistry(), lambda: (True, {}))
    port = await server.start("127.0.0.1", 0)
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        return [await _ask(port, get),
                await _ask(port, V2_LOCAL + get),
                await _ask(port, V2_PROXY_TCP4 + get, split=7),
                await _ask(port, V1 + get, split=len(V1) + 3),
                await _ask(port, V2_SIGNATURE + bytes([0x21, 0x11, 0, 3]) + b"abc" + get)]
    finally:
        await server.stop()


def test_health_check_after_a_proxy_header() -> None:
    plain, local, proxied, v1, malformed = asyncio.run(_scenario())
    for answer in (plain, local, proxied, v1):
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"ok\n")
    assert malformed == b""  # a TCP4 header with 3 address bytes: closed without an answer
