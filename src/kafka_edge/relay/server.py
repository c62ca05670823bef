"""The proxy process: binds listeners, routes accepted connections, and runs the lifecycle.

Lifecycle (as uvicorn does it): start -> serve -> drain -> stop. ``start`` binds every port and
starts the admin endpoint; ``drain`` stops accepting, reports not-ready, lets open connections
finish up to a timeout, then aborts the rest. Between start and stop, ``reload`` takes a new
configuration (relay/reload.py) and a probe of each cluster feeds readiness
(relay/readiness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kafka_edge.observability.http import HealthServer
from kafka_edge.observability.logs import Persisting
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.accept import SniAcceptor
from kafka_edge.relay.bindings import Binding, binding_names, binding_spec, drain, file_stamp
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.relay.connection import ProxyConnection, Route
from kafka_edge.relay.phases import Phase
from kafka_edge.relay.proxy_protocol import Origin, PortAcceptor, ProxyGate, serve_all
from kafka_edge.relay.readiness import ClusterProbe
from kafka_edge.relay.status_snapshot import build_snapshot, port_listener_name
from kafka_edge.routing.routes import Routes
from kafka_edge.tls.endpoint import TlsEndpoint

if TYPE_CHECKING:
    from kafka_edge.config import ClusterConfig, Config, Listener

log = logging.getLogger("kafka_edge.server")
Router = Callable[[asyncio.Transport], Route | None]
FIRST_PROBE_S = 2.0  # how long start-up waits for the first probe of the clusters


class Proxy:
    def __init__(self, config: Config, *, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path  # reloaded on SIGHUP and when the file changes
        self.generation = 1
        self.loaded_at = time.time()  # of the running configuration
        self.last_reload: tuple[str, str, float] | None = None  # outcome, message, time.time()
        self.metrics = Metrics()
        self.routes = Routes(config)
        self.clusters = {c.name: ClusterRuntime(c, self.metrics, self.routes)
                         for c in config.clusters}
        self.connections: set[ProxyConnection] = set()
        self.by_listener: dict[str, set[ProxyConnection]] = {}
        self.bindings: dict[str, Binding] = {}
        self.probe = ClusterProbe(self.metrics)
        self._health: HealthServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = False
        self.draining = False
        self.started_at = time.monotonic()
        self.reuse_port = False  # set for a supervised worker: its siblings bind the same ports
        self.admin_socket: str | None = None  # a supervised worker's pages, for the supervisor
        self._cert_trouble = Persisting(log)
        self.config_stamp = file_stamp(config_path)
        # reload(why): set by relay/process.py to relay/reload.py's (which imports this module)
        self.reload: Callable[[str], Awaitable[bool]] | None = None

    @property
    def tls_endpoints(self) -> list[TlsEndpoint]:
        return [b.tls for b in self.bindings.values() if b.tls is not None]

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        for name in binding_names(self.config):
            self.bindings[name] = await self.bind(self.config, name)
        self.export_expiries()
        obs = self.config.observability
        if self.admin_socket is not None:  # a supervised worker: its supervisor serves the port
            self._health = HealthServer(self.metrics.registry, self.readiness,
                                        status=lambda: build_snapshot(self))
            await self._health.start_unix(self.admin_socket)
        elif obs.http_address is not None:
            self._health = HealthServer(self.metrics.registry, self.readiness,
                                        status=lambda: build_snapshot(self))
            await self._health.start(*obs.http_address)
        self.spawn(self._housekeeping())
        # a first probe of every cluster before saying ready (bounded: an unreachable cluster
        # does not hold the start-up; /readyz then says why it is 503)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.probe.probe_all(
                self.clusters, self.config.observability.readiness.window_s), FIRST_PROBE_S)
        self.spawn(self._probe_loop())
        log.info("effective configuration", extra={"config": self.config.redacted_dict()})
        self.ready = True
        log.info("kafka-edge ready", extra={
            "listeners": sum(len(b.servers) + len(b.sockets) for b in self.bindings.values()),
            "clusters": sorted(self.clusters),
            "startup_s": round(time.monotonic() - self.started_at, 3)})

    async def bind(self, config: Config, name: str) -> Binding:
        """Bind listener ``name`` of ``config`` (closing what it bound if a part fails)."""
        binding = Binding(name, binding_spec(config, name))
        try:
            listener = next((x for x in config.listeners if x.name == name), None)
            if listener is not None:
                await self._bind_sni(binding, listener)
            else:
                cluster = next(c for c in config.clusters if port_listener_name(c.name) == name)
                await self._bind_ports(binding, cluster, Routes(config))
        except BaseException:
            binding.close()
            raise
        return binding

    async def _bind_ports(self, binding: Binding, cluster: ClusterConfig, routes: Routes) -> None:
        pr = cluster.port_routing
        assert pr is not None
        ssl_ctx = None
        if pr.tls is not None:
            binding.tls = TlsEndpoint.loaded(pr.tls)
            ssl_ctx = _port_tls(binding.tls)
        if pr.proxy_protocol is not None or ssl_ctx is not None:
            # the PROXY header comes before TLS, and a failed handshake is counted by reason:
            # accept in Python, hand each socket to the event loop (per connection, not per byte)
            self._bind_accepted_ports(binding, cluster, routes, ssl_ctx)
            return
        loop = asyncio.get_running_loop()
        for port, target in routes.port_targets(cluster.name):
            router = self._port_router(cluster.name, target.node)
            server = await loop.create_server(
                self._factory(binding.name, router), pr.bind_host or None, port, ssl=ssl_ctx,
                reuse_address=True, reuse_port=self.reuse_port,
                ssl_handshake_timeout=pr.tls.handshake_timeout_s if pr.tls else None,
                backlog=1024)
            binding.servers.append(server)
            for sock in server.sockets:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _bind_accepted_ports(self, binding: Binding, cluster: ClusterConfig, routes: Routes,
                             ssl_ctx: ssl.SSLContext | None) -> None:
        """Port-routed ports with the PROXY protocol or TLS on (relay/proxy_protocol.py)."""
        pr = cluster.port_routing
        assert pr is not None
        gate = (ProxyGate(pr.proxy_protocol, f"port_routing of cluster {cluster.name}")
                if pr.proxy_protocol is not None else None)
        served: list[tuple[PortAcceptor, socket.socket]] = []
        for port, target in routes.port_targets(cluster.name):
            sock = self._listen(binding, pr.bind_host, port)
            router = self._port_router(cluster.name, target.node)

            def factory(origin: Origin, router: Router = router) -> ProxyConnection:
                return self._factory(binding.name, router, origin)()

            served.append((PortAcceptor(
                gate, binding.name, factory, ssl_ctx,
                pr.tls.handshake_timeout_s if pr.tls else None, self.metrics,
                lambda: self.draining), sock))
        binding.task = self.spawn(serve_all(served, self.spawn))

    async def _bind_sni(self, binding: Binding, listener: Listener) -> None:
        """SNI listeners route on the ClientHello, before the handshake (relay/accept.py)."""
        binding.tls = TlsEndpoint.loaded(listener.tls)
        sock = self._listen(binding, *listener.bind_address)
        name = listener.name

        def factory(cluster: ClusterRuntime, node_id: int | None,
                    origin: Origin | None) -> ProxyConnection:
            return self._factory(name, self._fixed_router(cluster, node_id), origin)()

        acceptor = SniAcceptor(listener, binding.tls, self.resolve_name, self.clusters,
                               self.metrics, factory, lambda: self.draining)
        binding.acceptor = acceptor
        binding.task = self.spawn(acceptor.serve(sock, self.spawn))

    def _listen(self, binding: Binding, host: str, port: int) -> socket.socket:
        """A non-blocking listening socket for an accept loop of ``binding`` (which closes it)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=1024,
                                    reuse_port=self.reuse_port)
        binding.sockets.append(sock)
        sock.setblocking(False)
        return sock

    def _factory(self, listener: str, router: Router,
                 origin: Origin | None = None) -> Callable[[], ProxyConnection]:
        def factory() -> ProxyConnection:
            limits = self.config.limits  # read at each accept: a reload applies at once
            return ProxyConnection(
                router, self.connections, limits.max_frame_bytes, limits.max_connections,
                listener=listener, metrics=self.metrics,
                max_in_flight=limits.max_in_flight_requests,
                listener_set=self.by_listener.setdefault(listener, set()),
                client_address=origin.client_address if origin else None,
                conn_id=origin.conn if origin else None,
                vpc_endpoint_id=origin.vpc_endpoint_id if origin else None)
        return factory

    # -- routing ---------------------------------------------------------------------------------

    def _fixed_router(self, cluster: ClusterRuntime, target: int | None) -> Router:
        def route(transport: asyncio.Transport) -> Route | None:
            return None if self.draining else (cluster, target)
        return route

    def _port_router(self, cluster: str, target: int | None) -> Router:
        """A port's route: the cluster as configured now (a reload may have replaced it)."""
        def route(transport: asyncio.Transport) -> Route | None:
            runtime = self.clusters.get(cluster)
            return None if self.draining or runtime is None else (runtime, target)
        return route

    def resolve_name(self, listener: str, server_name: str) -> Route | None:
        """SNI name -> (cluster, target) among the clusters routed on ``listener``."""
        target = self.routes.by_server_name(listener, server_name)
        return None if target is None else (self.clusters[target.cluster], target.node)

    def export_expiries(self) -> None:
        """kafka_edge_certificate_expiry_seconds{listener, certificate}, computed at each scrape
        from the end of validity of each certificate the listeners serve now: rebuilt after
        start-up, a certificate reload and a configuration reload, so that a file no longer
        served (or a listener removed) leaves no series behind."""
        gauge = self.metrics.cert_expiry
        gauge.clear()
        for binding in self.bindings.values():
            if binding.tls is not None:
                for cert_file, not_after in binding.tls.expiries():
                    gauge.labels(binding.name, cert_file).set_function(_seconds_until(not_after))

    # -- operations -------------------------------------------------------------------------------

    def on_loop_exception(self, loop: asyncio.AbstractEventLoop,
                          context: dict[str, object]) -> None:
        """Resets and TLS errors the event loop reports are a client's problem: one line, no
        traceback. (Failed handshakes are counted where the edge awaits them: relay/accept.py,
        relay/proxy_protocol.py.)"""
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if not (isinstance(exc, (OSError, TimeoutError)) or "handshake" in message.lower()):
            loop.default_exception_handler(context)
            return
        transport = context.get("transport")
        get = getattr(transport, "get_extra_info", None)
        peer = get("peername") if get else None
        logging.getLogger("kafka_edge.tls").warning(
            "%s: %s", message, exc or "",
            extra={"peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None})

    def reload_certificates(self) -> None:
        """Load every listener's certificate files again (they changed, or SIGHUP)."""
        for binding in self.bindings.values():
            endpoint = binding.tls
            if endpoint is None:
                continue
            try:
                endpoint.load()
            except (OSError, ssl.SSLError, ValueError) as exc:
                endpoint.remember_files()  # retried when the files change again, not each second
                self.metrics.cert_reloads.labels("error").inc()
                self._cert_trouble.persists(
                    binding.name, "certificate reload failed for listener %s, keeping the "
                    "previous ones: %s", binding.name, exc)
                continue
            self.metrics.cert_reloads.labels("ok").inc()
            self._cert_trouble.ended(binding.name, "certificates of listener %s load again",
                                     binding.name)
            log.info("certificates reloaded", extra={
                "listener": binding.name, "files": [str(f) for f in endpoint.files()]})
        self.export_expiries()

    def readiness(self) -> tuple[bool, dict[str, object]]:
        settings = self.config.observability.readiness
        unreachable = self.probe.unreachable(self.clusters, settings.window_s)
        detail: dict[str, object] = {
            "draining": self.draining,
            "generation": self.generation,
            "connections": len(self.connections),
            "clusters": {
                name: {"reachable": name not in unreachable,
                       "known_brokers": len(c.directory.known_nodes())}
                for name, c in self.clusters.items()},
        }
        reason = None
        if self.draining:
            reason = "draining: the instance is stopping"
        elif not self.ready:
            reason = "starting: listeners not bound yet"
        elif unreachable and settings.require_clusters:
            reason = "; ".join(f"cluster {n} unreachable: {why}"
                               for n, why in sorted(unreachable.items()))
        if reason is not None:
            detail["reason"] = reason
        self.metrics.ready.set(0 if reason else 1)
        return reason is None, detail

    async def _probe_loop(self) -> None:
        while True:
            settings = self.config.observability.readiness
            await asyncio.sleep(settings.probe_interval_s)
            await self.probe.probe_all(self.clusters, settings.window_s)

    async def _housekeeping(self) -> None:
        """File watches (polling: portable, no extra dependency), metrics flush, and the
        per-connection timeouts (half-sent frames, first request, idle)."""
        while True:
            await asyncio.sleep(1.0)
            if self.config_path is not None and file_stamp(self.config_path) != self.config_stamp:
                self.config_stamp = file_stamp(self.config_path)
                if self.reload is not None:
                    await self.reload("the configuration file changed")
            elif any(t.changed() for t in self.tls_endpoints):
                self.reload_certificates()
            now = time.monotonic()
            self.probe.update_gauges(self.clusters, self.config.observability.readiness.window_s)
            self.readiness()  # kafka_edge_ready follows, asked or not
            limits = self.config.limits
            for conn in list(self.connections):
                conn.flush_counts()
                stuck = _stuck_client(conn, now, limits.incomplete_frame_timeout_s,
                                      limits.first_request_timeout_s)
                if stuck is not None:
                    self.metrics.limit_hits.labels(stuck[1]).inc()
                    conn.fail(stuck[0], kind="timeout")
                    continue
                self._check_idle(conn, now, limits.idle_timeout_s)

    def _check_idle(self, conn: ProxyConnection, now: float, idle_timeout: float) -> None:
        if idle_timeout <= 0:
            return
        # idle = no byte moved either way; compared here, not on the hot path
        moved = conn.bytes_up + conn.bytes_down
        if conn.idle_since[0] != moved:
            conn.idle_since = (moved, now)
        elif now - conn.idle_since[1] >= idle_timeout:
            self.metrics.limit_hits.labels("idle_timeout_s").inc()
            conn.close(f"idle for {idle_timeout:g} s (limits.idle_timeout_s)")

    def spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let open connections finish for ``timeout`` seconds, then abort."""
        self.draining = True
        for binding in self.bindings.values():
            binding.close()
        await drain(list(self.connections), timeout)
        for binding in self.bindings.values():
            for server in binding.servers:
                await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for cluster in self.clusters.values():
            cluster.close()
        if self._health is not None:
            await self._health.stop()
        self.ready = False


def _port_tls(endpoint: TlsEndpoint) -> ssl.SSLContext:
    """Server TLS for port-per-broker ports: the route is the port; SNI picks the cert."""
    assert endpoint.base is not None

    def sni_callback(sslobj: ssl.SSLObject, server_name: str | None,
                     ctx: ssl.SSLContext) -> int | None:
        chosen = endpoint.context_for(server_name) if server_name else None
        if chosen is not None:
            sslobj.context = chosen
        return None

    endpoint.base.sni_callback = sni_callback
    return endpoint.base


def _stuck_client(conn: ProxyConnection, now: float, incomplete_frame_timeout: float,
                  first_request_timeout: float) -> tuple[str, str] | None:
    """Why ``conn`` should be closed for a client that stopped half way, and the limit's key;
    or None.

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
                "(limits.first_request_timeout_s)", "first_request_timeout_s")
    if (incomplete_frame_timeout > 0 and mid_frame and not conn.client_paused
            and now - conn.up_since[1] >= incomplete_frame_timeout):
        return (f"a frame left half-sent for {incomplete_frame_timeout:g} s "
                "(limits.incomplete_frame_timeout_s)", "incomplete_frame_timeout_s")
    return None


def _seconds_until(when: float) -> Callable[[], float]:
    return lambda: when - time.time()
