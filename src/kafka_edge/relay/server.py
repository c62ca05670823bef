"""The proxy process: binds listeners, routes accepted connections, and runs the lifecycle.

Lifecycle (as uvicorn does it): start -> serve -> drain -> stop. ``start`` binds every port and
starts the health endpoint; ``drain`` stops accepting, reports not-ready, lets open connections
finish up to a timeout, then aborts the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kafka_edge.observability.http import HealthServer
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.relay.connection import ProxyConnection, Route
from kafka_edge.routing.directory import shorten
from kafka_edge.routing.routes import Routes
from kafka_edge.tls.clienthello import (
    ALERT_HANDSHAKE_FAILURE,
    ALERT_UNRECOGNIZED_NAME,
    ClientHello,
    NotTls,
    alert,
    parse_client_hello,
)
from kafka_edge.tls.context import Certificate, load_certificates

if TYPE_CHECKING:
    from kafka_edge.config import Config, Listener, TlsServerConfig

log = logging.getLogger("kafka_edge.server")
MAX_HELLO_PEEK = 65536



@dataclass
class TlsEndpoint:
    """Server-side TLS of one bound socket: certificates chosen by SNI, hot-reloadable."""

    config: TlsServerConfig
    certificates: list[Certificate] = field(default_factory=list)
    base: ssl.SSLContext | None = None
    mtimes: tuple[float, ...] = ()

    def files(self) -> list[Path]:
        return [Path(p) for c in self.config.certificates for p in (c.cert_file, c.key_file)]

    def load(self) -> None:
        pairs = [(c.cert_file, c.key_file) for c in self.config.certificates]
        certs = load_certificates(pairs, min_version=self.config.min_version,
                                  ciphers=self.config.ciphers)
        if self.base is None:
            self.base = load_certificates(pairs[:1], min_version=self.config.min_version,
                                          ciphers=self.config.ciphers)[0].context
        else:  # new handshakes on the base context (no SNI) pick up the new chain too
            self.base.load_cert_chain(str(pairs[0][0]), str(pairs[0][1]))
        self.certificates = certs
        self.mtimes = tuple(f.stat().st_mtime for f in self.files())

    def changed(self) -> bool:
        try:
            return tuple(f.stat().st_mtime for f in self.files()) != self.mtimes
        except OSError:
            return False

    def context_for(self, server_name: str) -> ssl.SSLContext | None:
        for cert in self.certificates:
            if cert.covers(server_name):
                return cert.context
        return None


class Proxy:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.routes = Routes(config)
        self.clusters = {c.name: ClusterRuntime(c, self.metrics, self.routes)
                         for c in config.clusters}
        self.connections: set[ProxyConnection] = set()
        self._servers: list[asyncio.Server] = []
        self._tls: list[TlsEndpoint] = []
        self._sni_sockets: list[socket.socket] = []
        self._health: HealthServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = False
        self.draining = False
        self.started_at = time.monotonic()
        self.health_port: int | None = None
        self._max_frame = config.limits.max_frame_bytes
        self.reuse_port = False  # set by the multi-worker launcher

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for cluster in self.clusters.values():
            pr = cluster.config.port_routing
            if pr is None:
                continue
            ssl_ctx = self._port_tls(pr.tls) if pr.tls else None
            for port, target in self.routes.port_targets(cluster.name):
                router = self._fixed_router(cluster, target.node)
                await self._bind(loop, pr.bind_host, port, router, ssl_ctx,
                                 pr.tls.handshake_timeout_s if pr.tls else None)
        for listener in self.config.listeners:
            await self._bind_sni(listener)
        obs = self.config.observability
        if obs.http_address is not None:
            self._health = HealthServer(self.metrics.registry, self.readiness)
            self.health_port = await self._health.start(*obs.http_address,
                                                        reuse_port=self.reuse_port)
        self._spawn(self._housekeeping())
        log.info("effective configuration", extra={"config": self.config.redacted_dict()})
        self.ready = True
        log.info("kafka-edge ready", extra={
            "listeners": len(self._servers) + len(self._sni_sockets),
            "clusters": sorted(self.clusters),
            "startup_s": round(time.monotonic() - self.started_at, 3)})

    async def _bind(self, loop: asyncio.AbstractEventLoop, host: str, port: int,
                    router: Callable[[asyncio.Transport], Route | None],
                    ssl_ctx: ssl.SSLContext | None, handshake_timeout: float | None) -> None:
        def factory() -> ProxyConnection:
            return ProxyConnection(router, _dial, self.connections, self._max_frame,
                                   self.config.limits.max_connections)

        server = await loop.create_server(
            factory, host or None, port, ssl=ssl_ctx, reuse_address=True,
            reuse_port=self.reuse_port,
            ssl_handshake_timeout=handshake_timeout if ssl_ctx else None, backlog=1024)
        self._servers.append(server)
        for sock in server.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- routing ---------------------------------------------------------------------------------

    def _fixed_router(self, cluster: ClusterRuntime,
                      target: int | None) -> Callable[[asyncio.Transport], Route | None]:
        def route(transport: asyncio.Transport) -> Route | None:
            if self.draining:
                return None
            return cluster, target
        return route

    def resolve_name(self, listener: str, server_name: str) -> Route | None:
        """SNI name -> (cluster, target) among the clusters routed on ``listener``."""
        target = self.routes.by_server_name(listener, server_name)
        return None if target is None else (self.clusters[target.cluster], target.node)

    def _tls_endpoint(self, tls: TlsServerConfig) -> TlsEndpoint:
        endpoint = TlsEndpoint(tls)
        endpoint.load()
        self._tls.append(endpoint)
        return endpoint

    def _port_tls(self, tls: TlsServerConfig) -> ssl.SSLContext:
        """Server TLS for port-per-broker ports: the route is the port; SNI picks the cert."""
        endpoint = self._tls_endpoint(tls)
        assert endpoint.base is not None

        def sni_callback(sslobj: ssl.SSLObject, server_name: str | None,
                         ctx: ssl.SSLContext) -> int | None:
            chosen = endpoint.context_for(server_name) if server_name else None
            if chosen is not None:
                sslobj.context = chosen
            return None

        endpoint.base.sni_callback = sni_callback
        return endpoint.base

    # -- SNI listeners: route on the ClientHello, before the handshake ----------------------------

    async def _bind_sni(self, listener: Listener) -> None:
        endpoint = self._tls_endpoint(listener.tls)
        host, port = listener.bind_address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=1024,
                                    reuse_port=self.reuse_port)
        sock.setblocking(False)
        self._sni_sockets.append(sock)
        self._spawn(self._accept_sni(sock, listener, endpoint))

    async def _accept_sni(self, lsock: socket.socket, listener: Listener,
                          endpoint: TlsEndpoint) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.error("accept failed on listener %s: %s", listener.name, exc)
                await asyncio.sleep(0.1)
                continue
            if self.draining:
                sock.close()
                continue
            self._spawn(self._start_sni(sock, listener, endpoint))

    async def _start_sni(self, sock: socket.socket, listener: Listener,
                         endpoint: TlsEndpoint) -> None:
        loop = asyncio.get_running_loop()
        peer = _sock_peer(sock)
        timeout = listener.tls.handshake_timeout_s
        try:
            hello = await asyncio.wait_for(_peek_client_hello(sock), timeout)
        except (TimeoutError, NotTls, ConnectionError, OSError) as exc:
            reason = exc if str(exc) else "no TLS ClientHello before the handshake timeout"
            self.metrics.refused.labels(listener.name, "not_tls").inc()
            log.warning("refused a connection on TLS listener %s: %s", listener.name, reason,
                        extra={"peer": peer})
            sock.close()
            return
        name = hello.server_name
        route: Route | None
        if name is None:
            default = listener.default_cluster
            route = (self.clusters[default], None) if default else None
            if route is None:
                self.metrics.refused.labels(listener.name, "no_sni").inc()
                log.warning("refused a TLS client that sent no server name (SNI); listener %s "
                            "has no default_cluster", listener.name, extra={"peer": peer})
                _refuse(sock, ALERT_HANDSHAKE_FAILURE)
                return
        else:
            try:
                route = self.resolve_name(listener.name, name)
            except Exception:  # a routing bug must not leave the client without an answer
                log.exception("routing failed for server name %s", shorten(name),
                              extra={"peer": peer})
                route = None
            if route is None:
                self.metrics.refused.labels(listener.name, "unknown_sni").inc()
                log.warning("refused TLS server name '%s': no cluster on listener %s",
                            shorten(name), listener.name, extra={"peer": peer})
                _refuse(sock, ALERT_UNRECOGNIZED_NAME)
                return
        ctx = (endpoint.context_for(name) if name else None) or endpoint.base
        assert ctx is not None
        cluster, target = route

        def factory() -> ProxyConnection:
            return ProxyConnection(self._fixed_router(cluster, target), _dial, self.connections,
                                   self._max_frame, self.config.limits.max_connections)

        try:
            await loop.connect_accepted_socket(factory, sock, ssl=ctx,
                                               ssl_handshake_timeout=timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.metrics.refused.labels(listener.name, "tls_handshake").inc()
            log.warning("TLS handshake failed on listener %s (server name %r): %s",
                        listener.name, name, exc or type(exc).__name__, extra={"peer": peer})
            sock.close()

    # -- operations -------------------------------------------------------------------------------

    def reload_certificates(self) -> None:
        for endpoint in self._tls:
            try:
                endpoint.load()
                self.metrics.cert_reloads.labels("ok").inc()
                log.info("certificates reloaded", extra={
                    "files": [str(f) for f in endpoint.files()]})
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.metrics.cert_reloads.labels("error").inc()
                log.error("certificate reload failed, keeping the previous ones: %s", exc)

    def readiness(self) -> tuple[bool, dict[str, object]]:
        detail: dict[str, object] = {
            "draining": self.draining,
            "connections": len(self.connections),
            "clusters": {
                name: {"known_brokers": len(c.directory.known_nodes()),
                       "last_upstream_ok_s_ago": (round(time.monotonic() - c.last_upstream_ok, 1)
                                                  if c.last_upstream_ok else None)}
                for name, c in self.clusters.items()},
        }
        return self.ready and not self.draining, detail

    async def _housekeeping(self) -> None:
        """Certificate file watch (polling: portable, no extra dependency), metrics flush, and
        the per-connection timeouts (half-sent frames, first request, idle)."""
        while True:
            await asyncio.sleep(1.0)
            if any(t.changed() for t in self._tls):
                self.reload_certificates()
            now = time.monotonic()
            limits = self.config.limits
            idle_timeout = limits.idle_timeout_s
            for conn in list(self.connections):
                if conn.cluster is not None:
                    conn.cluster.flush(conn)
                stuck = _stuck_client(conn, now, limits.incomplete_frame_timeout_s,
                                      limits.first_request_timeout_s)
                if stuck is not None:
                    conn.fail(stuck, kind="timeout")
                    continue
                if idle_timeout > 0:
                    # idle = no byte moved either way; compared here, not on the hot path
                    moved = conn.bytes_up + conn.bytes_down
                    if conn.idle_since[0] != moved:
                        conn.idle_since = (moved, now)
                    elif now - conn.idle_since[1] >= idle_timeout:
                        conn.close(f"idle for {idle_timeout:g} s (limits.idle_timeout_s)")

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let open connections finish for ``timeout`` seconds, then abort."""
        self.draining = True
        for server in self._servers:
            server.close()
        for sock in self._sni_sockets:
            sock.close()
        deadline = time.monotonic() + timeout
        for conn in list(self.connections):
            conn.drain()
        while self.connections and time.monotonic() < deadline:
            # A Kafka connection never ends by itself: each takes no new request after the
            # frame it is in, and is closed once every answer to what reached the broker has
            # been written whole; clients reconnect (to another instance) and resend the rest.
            for conn in list(self.connections):
                if conn.drained():
                    conn.close("proxy draining")
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for server in self._servers:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for cluster in self.clusters.values():
            cluster.close()
        if self._health is not None:
            await self._health.stop()
        self.ready = False


def _stuck_client(conn: ProxyConnection, now: float, incomplete_frame_timeout: float,
                  first_request_timeout: float) -> str | None:
    """Why ``conn`` should be closed for a client that stopped half way, or None.

    A client that leaves a frame half-sent (and is not held back by the proxy's own flow
    control) or has not sent a whole first frame holds two sockets and a peek buffer for
    nothing; Kafka clients send their first request at once and frames whole."""
    requests = conn.requests
    if requests is None or conn.closed:
        return None  # still dialling: the connect timeout applies
    moved = conn.bytes_up
    if conn.up_since[0] != moved:
        conn.up_since = (moved, now)
    mid_frame = requests.mid_frame()
    if (first_request_timeout > 0 and now - conn.accepted_at >= first_request_timeout
            and not requests.first_frame_done()):
        return (f"no complete request within {first_request_timeout:g} s of connecting "
                "(limits.first_request_timeout_s)")
    if (incomplete_frame_timeout > 0 and mid_frame and not conn.client_paused
            and now - conn.up_since[1] >= incomplete_frame_timeout):
        return (f"a frame left half-sent for {incomplete_frame_timeout:g} s "
                "(limits.incomplete_frame_timeout_s)")
    return None


async def _dial(conn: ProxyConnection, cluster: ClusterRuntime, node_id: int | None) -> None:
    await cluster.dial(conn, node_id)


def _sock_peer(sock: socket.socket) -> str:
    try:
        peer = sock.getpeername()
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _refuse(sock: socket.socket, description: int) -> None:
    """Answer a ClientHello with a fatal alert (best effort) and close."""
    with contextlib.suppress(OSError):
        sock.send(alert(description))
    sock.close()


async def _peek_client_hello(sock: socket.socket) -> ClientHello:
    """Wait for the ClientHello without consuming it (MSG_PEEK): the TLS layer reads it again."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = sock.recv(MAX_HELLO_PEEK, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data == b"":
            raise ConnectionError("client closed before sending a ClientHello")
        if data:
            hello = parse_client_hello(data)
            if hello is not None:
                return hello
            # a partial ClientHello: the socket stays readable, so poll gently
            await asyncio.sleep(0.005)
            continue
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _set_once, ready)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
