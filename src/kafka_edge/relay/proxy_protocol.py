"""The PROXY protocol on a listener: the header read off a just-accepted socket before anything
else reads it, and the accept loop of port-routed ports that have it on.

::

    accepted --mode required, peer outside trusted_sources-----------------> refused
        |--mode optional, first bytes are no PROXY signature---------------> on (client: the peer)
        |--a signature from a peer outside trusted_sources-----------------> refused
        |--a whole, valid header: exactly its bytes are read---------------> on (client: the
        |                                                                     header's source)
        +--malformed, closed, or nothing decisive within header_timeout_s--> refused

Every refusal is logged and counted (``kafka_edge_refused_connections_total{reason=
"proxy_header"}``) with the socket's peer. The header is peeked (MSG_PEEK) and parsed by the pure
``protocol/proxy_header.py``; then exactly its length is read, so the next reader (the ClientHello
peek, the TLS layer, the Kafka frame stream) starts at the first byte after it. A header whose
command is LOCAL (a load balancer's health check) or whose family names no TCP client leaves the
real peer as the client. Behind a header the client's address is the one in log lines and
refusals; the load balancer's is mentioned beside it.

Port-routed ports without the PROXY protocol keep ``loop.create_server`` (relay/server.py); with
it, :class:`PortAcceptor` accepts itself, as the SNI listeners do, because the header must be
read before the TLS handshake starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kafka_edge.protocol.proxy_header import (
    MAX_HEADER,
    NEED_DATA,
    NeedData,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
    sniff,
)
from kafka_edge.relay.connection import next_conn_id
from kafka_edge.routing.directory import shorten
from kafka_edge.tls.clienthello import handshake_failure_reason

if TYPE_CHECKING:
    from kafka_edge.config import ProxyProtocol
    from kafka_edge.observability.metrics import Metrics
    from kafka_edge.relay.connection import ProxyConnection

log = logging.getLogger("kafka_edge.server")
T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, None]], object]
PEEK_POLL_S = 0.005  # a partial header leaves the socket readable: poll instead of add_reader


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """Where an accepted connection comes from."""

    peer: str  # the socket's peer, "host:port" (the load balancer, behind one)
    header: ProxyHeader | None = None
    # the connection's id on every log line, from its first (relay/connection.py)
    conn: str = field(default_factory=next_conn_id, compare=False)

    @property
    def client_address(self) -> str | None:
        """The client a PROXY header named ("host:port"), or None: the peer is the client."""
        client = self.header.client if self.header is not None else None
        return None if client is None else f"{client[0]}:{client[1]}"

    @property
    def client(self) -> str:
        """The address for log lines and refusals."""
        return self.client_address or self.peer

    @property
    def vpc_endpoint_id(self) -> str | None:
        endpoint = self.header.aws_vpc_endpoint_id if self.header is not None else None
        return None if endpoint is None else shorten(endpoint, 64)

    @property
    def note(self) -> str:
        """Appended to messages about the client: the load balancer it came through."""
        return f" (through {self.peer}, a PROXY header named the client)" if (
            self.client_address is not None) else ""


@dataclass(frozen=True, slots=True)
class HeaderRefusal:
    peer: str
    message: str

    def report(self, metrics: Metrics, listener: str) -> None:
        metrics.refuse(listener, "proxy_header", self.peer, self.message)
        log.warning("%s", self.message, extra={"peer": self.peer})


class ProxyGate:
    """Reads the PROXY header of every connection accepted on one listener or port-routed
    cluster (``where`` names it in messages, e.g. ``listener edge``)."""

    def __init__(self, settings: ProxyProtocol, where: str) -> None:
        self.settings = settings
        self.where = where
        self._networks = settings.trusted_networks()

    def trusts(self, host: str) -> bool:
        """Is ``host`` (a peer's IP address text) in ``trusted_sources``?"""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's IPv4 peer
        return any(address in network for network in self._networks)

    async def admit(self, sock: socket.socket) -> Origin | HeaderRefusal:
        """Read the header (or find there is none, where that is allowed); never raises for
        what a peer did."""
        host, peer = _peer(sock)
        timeout = self.settings.header_timeout_s
        refused = f"refused a connection on {self.where} from {peer}"
        try:
            result = await asyncio.wait_for(self._read(sock, host, peer), timeout)
        except TimeoutError:
            what = ("complete PROXY header" if self.settings.mode == "required" else
                    "complete PROXY header or other first bytes")
            return HeaderRefusal(peer, f"{refused}: no {what} within {timeout:g} s "
                                       "(proxy_protocol.header_timeout_s)")
        except ProxyHeaderError as exc:
            return HeaderRefusal(peer, f"{refused}: malformed PROXY header: {exc}")
        except OSError as exc:  # ConnectionError included: the peer closed or reset
            return HeaderRefusal(peer, f"{refused}: {exc}")
        if isinstance(result, Origin) and result.header is not None:
            header = result.header
            destination = (None if header.destination_address is None else
                           f"{header.destination_address}:{header.destination_port}")
            log.debug("PROXY v%d %s header on %s", header.version, header.family.value,
                      self.where, extra={"peer": result.client, "proxy": peer,
                                         "destination": destination,
                                         "vpc_endpoint": result.vpc_endpoint_id})
        return result

    async def _read(self, sock: socket.socket, host: str, peer: str) -> Origin | HeaderRefusal:
        required = self.settings.mode == "required"
        trusted = self.trusts(host)
        if required and not trusted:
            return HeaderRefusal(peer, f"refused a connection on {self.where} from {peer}: not "
                                       "in proxy_protocol.trusted_sources (mode required)")

        def decide(data: bytes) -> ProxyHeader | HeaderRefusal | NeedData | None:
            if not required:
                seen = sniff(data)
                if seen is not True:
                    return None if seen is False else NEED_DATA
                if not trusted:
                    return HeaderRefusal(peer, f"refused a connection on {self.where} from "
                                               f"{peer}: it sent a PROXY header but is not in "
                                               "proxy_protocol.trusted_sources")
            return parse_proxy_header(data)

        found = await peek_until(sock, decide, MAX_HEADER, "the connection closed before a "
                                 "PROXY header (or other first bytes) was complete")
        if found is None:
            return Origin(peer=peer)
        if isinstance(found, HeaderRefusal):
            return found
        _discard(sock, found.length)
        return Origin(peer=peer, header=found)


async def peek_until(sock: socket.socket, decide: Callable[[bytes], T | NeedData], limit: int,
                     closed: str) -> T:
    """Peek at the socket's first bytes (up to ``limit``) until ``decide`` returns something
    other than NEED_DATA; nothing is consumed. ConnectionError(``closed``) if the peer closes
    first; whatever ``decide`` raises propagates."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data: bytes | None = sock.recv(limit, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data == b"":
            raise ConnectionError(closed)
        if data:
            result = decide(data)
            if not isinstance(result, NeedData):
                return result
            await asyncio.sleep(PEEK_POLL_S)
            continue
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _set_once, ready)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _discard(sock: socket.socket, count: int) -> None:
    """Read exactly ``count`` bytes that were peeked (so they are in the socket's buffer)."""
    while count:
        chunk = sock.recv(min(count, 65536))
        if not chunk:
            raise ConnectionError("the peer closed while its PROXY header was read")
        count -= len(chunk)


def _peer(sock: socket.socket) -> tuple[str, str]:
    """(IP address, "host:port") of the socket's peer; ("", "?") if it is gone."""
    try:
        peer = sock.getpeername()
    except OSError:
        return "", "?"
    if isinstance(peer, tuple):
        return str(peer[0]), f"{peer[0]}:{peer[1]}"
    return "", str(peer)


async def read_origin(gate: ProxyGate | None, sock: socket.socket, metrics: Metrics,
                      listener: str) -> Origin | None:
    """Where a just-accepted ``sock`` comes from: its PROXY header when ``gate`` is on (a
    refusal is reported on ``listener`` and the socket closed: None), else its peer."""
    if gate is None:
        return Origin(peer=_peer(sock)[1])
    origin = await gate.admit(sock)
    if isinstance(origin, HeaderRefusal):
        origin.report(metrics, listener)
        sock.close()
        return None
    return origin


async def accept_forever(lsock: socket.socket, name: str, draining: Callable[[], bool],
                         start: Callable[[socket.socket], Coroutine[Any, Any, None]],
                         spawn: Spawn) -> None:
    """Accept on ``lsock`` and spawn ``start(sock)`` for each connection (closed at once while
    the proxy drains) until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sock, _ = await loop.sock_accept(lsock)
        except OSError as exc:  # e.g. EMFILE: back off instead of spinning
            log.error("accept failed on listener %s: %s", name, exc)
            await asyncio.sleep(0.1)
            continue
        if draining():
            sock.close()
            continue
        spawn(start(sock))


async def serve_all(acceptors: list[tuple[PortAcceptor, socket.socket]], spawn: Spawn) -> None:
    """Run the accept loops of one port-routed cluster's ports (cancelled together)."""
    await asyncio.gather(*(acceptor.serve(sock, spawn) for acceptor, sock in acceptors))


class PortAcceptor:
    """One port of a port-routed cluster with the PROXY protocol or TLS on: the header (if
    on) is read, then the socket becomes a ``ProxyConnection`` (after the TLS handshake on TLS
    ports; a failed one is counted by reason)."""

    def __init__(self, gate: ProxyGate | None, listener: str,
                 factory: Callable[[Origin], ProxyConnection], context: ssl.SSLContext | None,
                 handshake_timeout: float | None, metrics: Metrics,
                 draining: Callable[[], bool]) -> None:
        self.gate = gate
        self.listener = listener  # the metrics label
        self.factory = factory
        self.context = context
        self.handshake_timeout = handshake_timeout
        self.metrics = metrics
        self.draining = draining

    async def serve(self, lsock: socket.socket, spawn: Spawn) -> None:
        await accept_forever(lsock, self.listener, self.draining, self.start, spawn)

    async def start(self, sock: socket.socket) -> None:
        origin = await read_origin(self.gate, sock, self.metrics, self.listener)
        if origin is None:
            return
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: self.factory(origin), sock, ssl=self.context,
                ssl_handshake_timeout=self.handshake_timeout if self.context else None)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            if self.context is None:  # no handshake: the socket was already gone
                log.debug("connection on %s lost before relaying: %s", self.listener, exc,
                          extra={"peer": origin.client, "conn": origin.conn})
            else:
                message = (f"TLS handshake failed on {self.listener}{origin.note}: "
                           f"{exc or type(exc).__name__}")
                self.metrics.refuse(self.listener, "tls_handshake", origin.client, message)
                self.metrics.tls_failures.labels(self.listener,
                                                 handshake_failure_reason(exc)).inc()
                log.warning("%s", message, extra={"peer": origin.client, "conn": origin.conn})
            sock.close()
