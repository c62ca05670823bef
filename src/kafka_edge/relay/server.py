"""The proxy process: binds listeners, routes accepted connections, and runs the lifecycle.

Lifecycle (as uvicorn does it): start -> serve -> drain -> stop. ``start`` binds every port and
starts the health endpoint; ``drain`` stops accepting, reports not-ready, lets open connections
finish up to a timeout, then aborts the rest.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kafka_edge.observability.http import HealthServer
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.accept import SniAcceptor
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.relay.connection import Phase, ProxyConnection, Route
from kafka_edge.relay.status_snapshot import build_snapshot, port_listener_name
from kafka_edge.routing.routes import Routes
from kafka_edge.tls.endpoint import TlsEndpoint

if TYPE_CHECKING:
    from kafka_edge.config import Config, Listener, TlsServerConfig

log = logging.getLogger("kafka_edge.server")


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
        self._max_frame = config.limits.max_frame_bytes
        self.reuse_port = False  # set for a supervised worker: its siblings bind the same ports
        self.admin_socket: str | None = None  # a supervised worker's pages, for the supervisor

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
                                 pr.tls.handshake_timeout_s if pr.tls else None,
                                 listener=port_listener_name(cluster.name))
        for listener in self.config.listeners:
            await self._bind_sni(listener)
        obs = self.config.observability
        if self.admin_socket is not None:  # a supervised worker: its supervisor serves the port
            self._health = HealthServer(self.metrics.registry, self.readiness,
                                        status=lambda: build_snapshot(self))
            await self._health.start_unix(self.admin_socket)
        elif obs.http_address is not None:
            self._health = HealthServer(self.metrics.registry, self.readiness,
                                        status=lambda: build_snapshot(self))
            await self._health.start(*obs.http_address)
        self._spawn(self._housekeeping())
        log.info("effective configuration", extra={"config": self.config.redacted_dict()})
        self.ready = True
        log.info("kafka-edge ready", extra={
            "listeners": len(self._servers) + len(self._sni_sockets),
            "clusters": sorted(self.clusters),
            "startup_s": round(time.monotonic() - self.started_at, 3)})

    async def _bind(self, loop: asyncio.AbstractEventLoop, host: str, port: int,
                    router: Callable[[asyncio.Transport], Route | None],
                    ssl_ctx: ssl.SSLContext | None, handshake_timeout: float | None, *,
                    listener: str) -> None:
        def factory() -> ProxyConnection:
            return ProxyConnection(router, self.connections, self._max_frame,
                                   self.config.limits.max_connections, listener=listener)

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

    @property
    def tls_endpoints(self) -> tuple[TlsEndpoint, ...]:
        """The server-side TLS of every bound socket (read by the status page)."""
        return tuple(self._tls)

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

    # -- SNI listeners: route on the ClientHello, before the handshake (relay/accept.py) -------

    async def _bind_sni(self, listener: Listener) -> None:
        endpoint = self._tls_endpoint(listener.tls)
        host, port = listener.bind_address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=1024,
                                    reuse_port=self.reuse_port)
        sock.setblocking(False)
        self._sni_sockets.append(sock)

        def factory(cluster: ClusterRuntime, node_id: int | None) -> ProxyConnection:
            return ProxyConnection(self._fixed_router(cluster, node_id), self.connections,
                                   self._max_frame, self.config.limits.max_connections,
                                   listener=listener.name)

        acceptor = SniAcceptor(listener, endpoint, self.resolve_name, self.clusters,
                               self.metrics, factory, lambda: self.draining)
        self._spawn(acceptor.serve(sock, self._spawn))

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
                conn.flush_counts()
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
        # A Kafka connection never ends by itself: each takes no new request after the frame
        # it is in, and finishes once every answer to what reached the broker has left the
        # proxy; clients reconnect (to another instance) and resend the rest.
        for conn in list(self.connections):
            conn.on_drain()
        while self.connections and time.monotonic() < deadline:
            for conn in list(self.connections):
                conn.check_drained()  # the client's buffer may have emptied since
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
    if conn.phase is not Phase.RELAYING or requests is None:
        return None  # dialling (the connect timeout applies), draining (its own deadline)
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
