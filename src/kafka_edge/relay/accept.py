"""The first steps of a connection on an SNI listener, before it becomes a ``ProxyConnection``.

::

    socket accepted --(PROXY header read)--> ClientHello peeked --> admitted --TLS handshake-->
        |                 |                    |                  ProxyConnection (accepted)
        +--bad, untrusted or missing PROXY header--> closed (proxy_header)
        |                 |                    |
        |                 |                    +--handshake failed--> closed (tls_handshake)
        |                 +--no SNI, no default_cluster--> handshake_failure alert (no_sni)
        |                 +--a name that routes nowhere--> unrecognized_name alert (unknown_sni)
        +--not TLS, or no ClientHello in time--> closed (not_tls)

The ClientHello is read with MSG_PEEK, so the TLS layer reads it again; the decision
(``admit``) is pure: the listener, the hello, the routing, the certificates in, an admission
or a refusal out. The refusal is sent before any upstream connection exists, and every refusal
is logged (names shortened and escaped: a client chose them) and counted by reason. Where the
listener has ``proxy_protocol`` on, ``relay/proxy_protocol.py`` first reads the header, and the
client it names is the address in what follows. From the TLS handshake on,
``relay/connection.py`` follows the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafka_edge.protocol.proxy_header import NEED_DATA, NeedData
from kafka_edge.relay.proxy_protocol import (
    Origin,
    ProxyGate,
    accept_forever,
    peek_until,
    read_origin,
)
from kafka_edge.routing.directory import shorten
from kafka_edge.tls.clienthello import (
    ALERT_HANDSHAKE_FAILURE,
    ALERT_UNRECOGNIZED_NAME,
    ClientHello,
    NotTls,
    alert,
    handshake_failure_reason,
    parse_client_hello,
)

if TYPE_CHECKING:
    from kafka_edge.config import Listener
    from kafka_edge.observability.metrics import Metrics
    from kafka_edge.relay.cluster import ClusterRuntime
    from kafka_edge.relay.connection import ProxyConnection, Route
    from kafka_edge.tls.endpoint import TlsEndpoint

log = logging.getLogger("kafka_edge.server")
MAX_HELLO_PEEK = 65536


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # the metric label: no_sni, unknown_sni
    alert: int  # the TLS alert sent
    message: str  # the log line


@dataclass(frozen=True, slots=True)
class Admission:
    cluster: ClusterRuntime
    node_id: int | None
    context: ssl.SSLContext  # the certificate for the name


def admit(listener: Listener, hello: ClientHello,
          resolve: Callable[[str, str], Route | None],
          clusters: dict[str, ClusterRuntime], endpoint: TlsEndpoint) -> Admission | Refusal:
    """Where a ClientHello goes on ``listener``: a cluster and target with the certificate to
    present, or the refusal to send. Never raises on a name a client chose."""
    name = hello.server_name
    if name is None:
        default = listener.default_cluster
        if default is None:
            return Refusal("no_sni", ALERT_HANDSHAKE_FAILURE,
                           f"refused a TLS client that sent no server name (SNI); listener "
                           f"{listener.name} has no default_cluster")
        route: Route | None = (clusters[default], None)
        name = ""
    else:
        try:
            route = resolve(listener.name, name)
        except Exception:  # a routing bug must not leave the client without an answer
            log.exception("routing failed for server name %s", shorten(name))
            route = None
        if route is None:
            return Refusal("unknown_sni", ALERT_UNRECOGNIZED_NAME,
                           f"refused TLS server name '{shorten(name)}': no cluster on listener "
                           f"{listener.name}")
    assert route is not None
    context = (endpoint.context_for(name) if name else None) or endpoint.base
    assert context is not None
    return Admission(route[0], route[1], context)


Spawn = Callable[[Coroutine[Any, Any, None]], object]
Factory = Callable[["ClusterRuntime", "int | None", "Origin | None"], "ProxyConnection"]


class SniAcceptor:
    """Accepts on one SNI listener's socket and takes each connection through ``admit``."""

    def __init__(self, listener: Listener, endpoint: TlsEndpoint,
                 resolve: Callable[[str, str], Route | None],
                 clusters: dict[str, ClusterRuntime], metrics: Metrics, factory: Factory,
                 draining: Callable[[], bool]) -> None:
        self.listener = listener  # a reload may replace it
        self._gate: ProxyGate | None = None  # for the listener's current proxy_protocol
        self.endpoint = endpoint
        self.resolve = resolve
        self.clusters = clusters
        self.metrics = metrics
        self.factory = factory
        self.draining = draining

    async def serve(self, lsock: socket.socket, spawn: Spawn) -> None:
        await accept_forever(lsock, self.listener.name, self.draining, self.start, spawn)

    async def start(self, sock: socket.socket) -> None:
        listener = self.listener
        origin = await read_origin(self._proxy_gate(), sock, self.metrics, listener.name)
        if origin is None:
            return
        peer, note = origin.client, origin.note
        where = {"peer": peer, "conn": origin.conn}
        timeout = listener.tls.handshake_timeout_s
        try:
            hello = await asyncio.wait_for(_peek_client_hello(sock), timeout)
        except (TimeoutError, NotTls, ConnectionError, OSError) as exc:
            reason = exc if str(exc) else "no TLS ClientHello before the handshake timeout"
            message = f"refused a connection on TLS listener {listener.name}{note}: {reason}"
            self.metrics.refuse(listener.name, "not_tls", peer, message)
            log.warning("%s", message, extra=where)
            sock.close()
            return
        decision = admit(listener, hello, self.resolve, self.clusters, self.endpoint)
        if isinstance(decision, Refusal):
            self.metrics.refuse(listener.name, decision.reason, peer, decision.message + note)
            log.warning("%s", decision.message + note, extra=where)
            _refuse(sock, decision.alert)
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: self.factory(decision.cluster, decision.node_id, origin), sock,
                ssl=decision.context, ssl_handshake_timeout=timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            message = (f"TLS handshake failed on listener {listener.name} (server name "
                       f"'{shorten(hello.server_name or '')}'){note}: "
                       f"{exc or type(exc).__name__}")
            self.metrics.refuse(listener.name, "tls_handshake", peer, message)
            self.metrics.tls_failures.labels(listener.name, handshake_failure_reason(exc)).inc()
            log.warning("%s", message, extra=where)
            sock.close()


    def _proxy_gate(self) -> ProxyGate | None:
        """The PROXY header reader of the listener's current settings; None when it is off."""
        settings = self.listener.proxy_protocol
        if settings is None:
            return None
        if self._gate is None or self._gate.settings is not settings:
            self._gate = ProxyGate(settings, f"TLS listener {self.listener.name}")
        return self._gate


def _refuse(sock: socket.socket, description: int) -> None:
    """Answer a ClientHello with a fatal alert (best effort) and close."""
    with contextlib.suppress(OSError):
        sock.send(alert(description))
    sock.close()


async def _peek_client_hello(sock: socket.socket) -> ClientHello:
    """Wait for the ClientHello without consuming it (MSG_PEEK): the TLS layer reads it again."""

    def decide(data: bytes) -> ClientHello | NeedData:
        hello = parse_client_hello(data)
        return NEED_DATA if hello is None else hello

    return await peek_until(sock, decide, MAX_HELLO_PEEK,
                            "client closed before sending a ClientHello")
