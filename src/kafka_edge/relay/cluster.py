"""Everything one configured cluster needs at run time: its broker directory, how clients see its
brokers (edge addresses), how to reach it (TLS, discovery) and its metrics."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING

from kafka_edge.protocol.stream import api_name
from kafka_edge.relay.discovery import DiscoveryCredentials, discover
from kafka_edge.routing.directory import Address, BrokerDirectory, Learned, shorten
from kafka_edge.routing.policy import UpstreamPolicy
from kafka_edge.routing.routes import Routes
from kafka_edge.tls.context import upstream_context

if TYPE_CHECKING:
    from kafka_edge.config import ClusterConfig
    from kafka_edge.observability.metrics import Metrics

log = logging.getLogger("kafka_edge.cluster")


class ClusterRuntime:
    def __init__(self, config: ClusterConfig, metrics: Metrics, routes: Routes) -> None:
        self.config = config
        self.routes = routes
        self.name = config.name
        self.metrics = metrics
        up = config.upstream
        self.connect_timeout = float(up.connect_timeout_s)
        self.tls: ssl.SSLContext | None = None
        if up.tls is not None:
            self.tls = upstream_context(
                ca_file=up.tls.ca_file, verify_hostname=up.tls.verify_hostname,
                cert_file=up.tls.cert_file, key_file=up.tls.key_file)
        self.directory = BrokerDirectory(
            bootstrap=up.bootstrap_addresses,
            edge_address=self.edge_address,
            policy=UpstreamPolicy(bootstrap_hosts=[h for h, _ in up.bootstrap_addresses],
                                  allowed_hosts=up.allowed_hosts,
                                  broker_address_pattern=up.broker_address_pattern),
            pattern=(lambda n: routes.upstream_by_pattern(self.name, n))
            if up.broker_address_pattern else None,
            name=self.name,
        )
        sasl = up.discovery.sasl
        self.credentials = (
            DiscoveryCredentials(mechanism=sasl.mechanism, username=sasl.username,
                                 password=sasl.password.reveal())
            if sasl is not None else None)
        self.refresh_interval = float(up.discovery.refresh_interval_s)
        self._discovering: asyncio.Task[None] | None = None
        self._last_discovery = -1e9
        self._next_bootstrap = 0
        self.last_upstream_ok = 0.0  # monotonic time of the last successful upstream dial
        self._bytes_up = metrics.bytes.labels(self.name, "client_to_broker")
        self._bytes_down = metrics.bytes.labels(self.name, "broker_to_client")
        self._active = metrics.active.labels(self.name)

    # -- addresses ---------------------------------------------------------------------------

    def edge_address(self, node_id: int) -> Address:
        """The address clients are given for broker ``node_id`` (``Routes.edge_address``)."""
        address = self.routes.edge_address(self.name, node_id)
        if address is not None:
            return address
        # Never hand out the real address; an unusable one makes the mistake visible.
        pr = self.config.port_routing
        log.error("broker node id %d has no edge address in cluster %s (port_routing: outside "
                  "node_id_min..node_id_max, %s): clients cannot reach it; widen the range",
                  node_id, self.name,
                  f"{pr.node_id_min}..{pr.node_id_max}" if pr is not None else "n/a")
        return (pr.advertised_host if pr is not None else "invalid.invalid"), 0

    def map_address(self, node_id: int, host: str, port: int, is_broker: bool) -> Address:
        """The codecs' AddressMapper: every address in an answer becomes the edge's."""
        return self.edge_address(node_id)

    def learn(self, entries: list[Learned], source: str) -> bool:
        """Broker addresses one whole answer named (relayed or asked by discovery)."""
        refused = self.directory.learn_answer(entries, source)
        if refused:
            self.metrics.addresses_refused.labels(self.name).inc(refused)
        return not refused

    # -- dialling ------------------------------------------------------------------------------

    def _candidates(self, node_id: int | None) -> list[Address]:
        if node_id is None:
            boot = list(self.directory.bootstrap)
            start = self._next_bootstrap % len(boot)
            self._next_bootstrap += 1
            return boot[start:] + boot[:start]
        address = self.directory.upstream_for(node_id)
        return [address] if address is not None else []

    async def dial(self, node_id: int | None, protocol: asyncio.BaseProtocol) -> asyncio.Transport:
        """Connect ``protocol`` to the bootstrap (``node_id`` None) or to broker ``node_id``,
        checking the upstream address policy right before each connect; the connected
        transport (its ``connection_made`` has run). Raises the last error if none connects."""
        candidates = self._candidates(node_id)
        if not candidates and node_id is not None:
            await self.discover()
            candidates = self._candidates(node_id)
            if not candidates:
                raise LookupError(f"broker node {node_id} is not in cluster {self.name}'s metadata")
        loop = asyncio.get_running_loop()
        last: BaseException | None = None
        for host, port in candidates:
            if not self.directory.is_allowed((host, port)):
                # defence in depth: the directory only learns allowed addresses
                self.metrics.dials_refused.labels(self.name).inc()
                log.error("cluster %s: refused to dial %s:%d: outside the upstream address "
                          "policy (%s)", self.name, shorten(host), port,
                          self.directory.policy.description)
                last = PermissionError(f"{shorten(host)}:{port} is outside the upstream "
                                       "address policy")
                continue
            started = time.monotonic()
            try:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: protocol, host, port, ssl=self.tls,
                                           server_hostname=host if self.tls else None),
                    self.connect_timeout)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                last = exc
                log.warning("cannot connect to %s:%d for cluster %s: %s", host, port, self.name,
                            exc or type(exc).__name__)
                continue
            now = time.monotonic()
            self.last_upstream_ok = now
            self.metrics.upstream_connect.labels(self.name).observe(now - started)
            return transport
        assert last is not None
        raise last if isinstance(last, Exception) else OSError(str(last))

    async def discover(self) -> None:
        """Learn the cluster's brokers from its own metadata (single flight, rate limited)."""
        if self._discovering is None or self._discovering.done():
            if time.monotonic() - self._last_discovery < self.refresh_interval:
                return
            self._discovering = asyncio.get_running_loop().create_task(self._discover())
        await asyncio.shield(self._discovering)

    async def _discover(self) -> None:
        self._last_discovery = time.monotonic()
        for address in self.directory.bootstrap:
            try:
                seen = await discover(self.directory, address, learn=self.learn, tls=self.tls,
                                      credentials=self.credentials,
                                      timeout=self.connect_timeout)
            except Exception as exc:
                self.metrics.discovery.labels(self.name, "error").inc()
                log.warning("discovery via %s:%d failed for cluster %s: %s",
                            address[0], address[1], self.name, exc)
                continue
            self.metrics.discovery.labels(self.name, "ok").inc()
            self.metrics.known_brokers.labels(self.name).set(len(self.directory.known_nodes()))
            log.info("discovered brokers of cluster %s: %s", self.name, sorted(seen))
            return

    def close(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()

    # -- connection accounting --------------------------------------------------------------------

    def on_accept(self, *, is_broker: bool) -> None:
        self.metrics.connections.labels(self.name, "broker" if is_broker else "bootstrap").inc()
        self._active.inc()

    def on_error(self, kind: str) -> None:
        self.metrics.errors.labels(self.name, kind).inc()

    def on_close(self) -> None:
        self._active.dec()

    def record_bytes(self, up: int, down: int) -> None:
        """Bytes a connection relayed since it last reported (plain ints off the hot path)."""
        if up:
            self._bytes_up.inc(up)
        if down:
            self._bytes_down.inc(down)

    def record_answers(self, *, rewritten: dict[int, int], endpoints_dropped: int,
                       sasl_handshakes: int, sasl_v0_sessions: int, sasl_v0_refused: int) -> None:
        """What a connection's response stream counted since it last reported."""
        m, name = self.metrics, self.name
        for api_key, count in rewritten.items():
            m.rewritten.labels(name, api_name(api_key)).inc(count)
        if endpoints_dropped:
            m.endpoints_dropped.labels(name).inc(endpoints_dropped)
        if sasl_handshakes:
            m.sasl_handshakes.labels(name).inc(sasl_handshakes)
        if sasl_v0_sessions:
            m.sasl_v0.labels(name).inc(sasl_v0_sessions)
        if sasl_v0_refused:
            m.sasl_v0_refused.labels(name).inc(sasl_v0_refused)
        m.known_brokers.labels(name).set(len(self.directory.known_nodes()))
