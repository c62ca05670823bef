"""A minimal HTTP/1.1 endpoint: /metrics, /healthz, /readyz, the status page (/, /status.json).

Hand-written on asyncio streams (a request line and headers, maybe behind a PROXY header) so
the proxy needs no web framework and the endpoint runs on the proxy's own event loop: /healthz
answering proves the loop is not stuck.
The same request handling (``answer_http``) serves the supervisor's admin port, whose pages
gather the workers' (relay/supervisor.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kafka_edge.observability.status import StatusSnapshot
from kafka_edge.observability.status_page import CONTENT_SECURITY_POLICY, render
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.proxy_header import NEED_DATA, parse_proxy_header, sniff

Readiness = Callable[[], tuple[bool, dict[str, object]]]
StatusProvider = Callable[[], StatusSnapshot]
Page = tuple[int, str, bytes]  # status, content type, body
Handler = Callable[[str], Awaitable[Page]]
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
NOT_FOUND: Page = (404, "text/plain", b"not found\n")
MAX_REQUEST_HEAD = 16384
# on every answer: the status page is HTML showing names clients chose; nothing here is cached,
# framed, sniffed as another type, or allowed to load anything but the page's own style sheet
_SECURITY_HEADERS = (f"Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n"
                     "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n")


def readiness_page(ready: bool, detail: dict[str, object]) -> Page:
    body = json.dumps({"ready": ready, **detail}).encode() + b"\n"
    return (200 if ready else 503), "application/json", body


def status_page(snapshot: StatusSnapshot) -> Page:
    return 200, "text/html; charset=utf-8", render(snapshot)


def status_json(snapshot: StatusSnapshot) -> Page:
    return 200, "application/json", snapshot.to_json().encode() + b"\n"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """The request's head, after a PROXY protocol header if one comes first: a network load
    balancer with PROXY protocol on sends one on its health checks too. The header is skipped
    (its addresses are not used: the admin port serves no client data)."""
    data = b""
    while (starts := sniff(data)) is NEED_DATA:
        data = await _read_more(reader, data)
    if starts:
        # ProxyHeaderError: a bad header, closed
        while (header := parse_proxy_header(data)) is NEED_DATA:
            data = await _read_more(reader, data)
        data = data[header.length:]
    while b"\r\n\r\n" not in data:
        data = await _read_more(reader, data)
    return data


async def _read_more(reader: asyncio.StreamReader, data: bytes) -> bytes:
    """``data`` and the next bytes read; the head's size bounded, the peer's close an error."""
    if len(data) > MAX_REQUEST_HEAD:
        raise asyncio.LimitOverrunError("request head too long", len(data))
    chunk = await reader.read(4096)
    if not chunk:
        raise asyncio.IncompleteReadError(data, None)
    return data + chunk


async def answer_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      handle: Handler) -> None:
    """Read one request, answer it with ``handle(path)``, close."""
    try:
        request = await asyncio.wait_for(_read_request(reader), 5)
        parts = request.split(b" ", 2)
        path = parts[1].decode(errors="replace").split("?")[0] if len(parts) > 1 else ""
        status, ctype, body = await handle(path)
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{_SECURITY_HEADERS}Connection: close\r\n\r\n"
            .encode() + body
        )
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError,
            ProtocolError):
        pass
    finally:
        writer.close()


class HealthServer:
    def __init__(self, registry: CollectorRegistry, readiness: Readiness, *,
                 status: StatusProvider | None = None) -> None:
        self._registry = registry
        self._readiness = readiness
        self._status = status  # None: no status page (/ and /status.json answer 404)
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def start_unix(self, path: str) -> None:
        """Serve on a local socket: a supervised worker's pages, read by its supervisor."""
        self._server = await asyncio.start_unix_server(self._handle, path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_http(reader, writer, self._page)

    async def _page(self, path: str) -> Page:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            return readiness_page(*self._readiness())
        if path == "/" and self._status is not None:
            return status_page(self._status())
        if path == "/status.json" and self._status is not None:
            return status_json(self._status())
        return NOT_FOUND
