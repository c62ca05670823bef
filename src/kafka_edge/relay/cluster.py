"""Everything one configured cluster needs at run time: its broker directory, how clients see its
brokers (edge addresses), how to reach it (TLS, discovery) and its metrics."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING

from kafka_edge.config.advice import DISCOVERY_FIX, discovery_unassisted
from kafka_edge.protocol.stream import api_name
from kafka_edge.relay.discovery import DiscoveryCredentials, closed_without_answer, discover
from kafka_edge.routing.directory import Address, BrokerDirectory, Learned, shorten
from kafka_edge.routing.policy import UpstreamPolicy
from kafka_edge.routing.routes import Routes
from kafka_edge.tls.context import upstream_context

if TYPE_CHECKING:
    from kafka_edge.config import ClusterConfig
    from kafka_edge.observability.metrics import Metrics

log = logging.getLogger("kafka_edge.cluster")
_MAX_UNMAPPED = 64  # broker names outside broker_name_pattern, each logged once


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
                                  broker_address_pattern=up.broker_address_pattern,
                                  broker_name_pattern=up.broker_name_pattern),
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
        self.maps_names = up.maps_names
        self._unmapped: set[str] = set()  # broker names outside broker_name_pattern (logged)
        self._discovering: asyncio.Task[None] | None = None
        self._last_discovery = -1e9
        self._discovery_failure: str | None = None  # why the last discovery learned nothing
        self._next_bootstrap = 0
        self.last_upstream_ok = 0.0  # monotonic time of the last successful upstream dial
        self._bytes_up = metrics.bytes.labels(self.name, "client_to_broker")
        self._bytes_down = metrics.bytes.labels(self.name, "broker_to_client")

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
        """The codecs' AddressMapper: every address in an answer becomes the edge's (by node
        id, or name to name under ``upstream.broker_name_pattern``)."""
        if not self.maps_names:
            return self.edge_address(node_id)
        address = self.routes.edge_address_for_host(self.name, host)
        if address is not None:
            return address
        # Never hand out the real address; an unusable one makes the mistake visible.
        if len(self._unmapped) < _MAX_UNMAPPED and host not in self._unmapped:
            self._unmapped.add(host)
            log.error("cluster %s: broker node %d is called %s, which does not match "
                      "upstream.broker_name_pattern (%s): clients are given no usable address "
                      "for it; fix the pattern", self.name, node_id, shorten(host),
                      self.config.upstream.broker_name_pattern)
        return "invalid.invalid", 0

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
        if self.maps_names:  # node_id is the number in the name: no metadata needed
            address = self.routes.upstream_by_name(self.name, node_id)
            return [address] if address is not None else []
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
                self.metrics.upstream_failures.labels(self.name, "unknown_node").inc()
                why = (f"; discovery failed: {self._discovery_failure}"
                       if self._discovery_failure else "")
                raise LookupError(
                    f"broker node {node_id} is not in cluster {self.name}'s metadata{why}")
        loop = asyncio.get_running_loop()
        last: BaseException | None = None
        for host, port in candidates:
            if not self.directory.is_allowed((host, port)):
                # defence in depth: the directory only learns allowed addresses
                self.metrics.dials_refused.labels(self.name).inc()
                self.metrics.upstream_failures.labels(self.name, "policy").inc()
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
                self.metrics.upstream_failures.labels(self.name, _failure_reason(exc)).inc()
                last = with_text(exc, self.connect_timeout)
                log.warning("cannot connect to %s:%d for cluster %s: %s", host, port, self.name,
                            last)
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
                self._discovery_failure = discovery_failure(exc, self.config)
                log.warning("discovery via %s:%d failed for cluster %s: %s",
                            address[0], address[1], self.name, self._discovery_failure)
                continue
            self._discovery_failure = None
            self.metrics.discovery.labels(self.name, "ok").inc()
            self.metrics.known_brokers.labels(self.name).set(len(self.directory.known_nodes()))
            log.info("discovered brokers of cluster %s: %s", self.name, sorted(seen))
            return

    def close(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()

    # -- connection accounting --------------------------------------------------------------------

    def on_accept(self, listener: str, *, is_broker: bool) -> None:
        self.metrics.connections.labels(listener, self.name,
                                        "broker" if is_broker else "bootstrap").inc()
        self.metrics.active.labels(listener, self.name).inc()

    def on_error(self, kind: str) -> None:
        self.metrics.errors.labels(self.name, kind).inc()

    def on_close(self, listener: str) -> None:
        self.metrics.active.labels(listener, self.name).dec()

    def record_requests(self, counts: dict[int, int], latency: dict[int, list[float]]) -> None:
        """Requests a connection relayed since it last reported (``ConnectionState.counts``
        and ``.latency``: plain ints and lists off the hot path)."""
        for key, count in counts.items():
            self.metrics.requests.labels(self.name, api_name(key >> 16),
                                         str(key & 0xFFFF)).inc(count)
        if latency:
            self.metrics.latency.add(self.name, {api_name(k): h for k, h in latency.items()})

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


def discovery_failure(exc: BaseException, config: ClusterConfig) -> str:
    """What a failed discovery says in the log: the error, and for a connection the cluster
    closed without answering, what the configuration is missing (a SASL listener drops an
    unauthenticated Metadata request without a word)."""
    if isinstance(exc, TimeoutError):
        return ("no answer within upstream.connect_timeout_s "
                f"({config.upstream.connect_timeout_s} s)")
    if not closed_without_answer(exc):
        return str(exc) or type(exc).__name__
    text = "the cluster closed the connection without answering"
    if discovery_unassisted(config):
        return (f"{text}; its listener probably requires SASL authentication, and cluster "
                f"{config.name} has no discovery credentials: {DISCOVERY_FIX}")
    return text


def with_text(exc: BaseException, timeout_s: float) -> BaseException:
    """``exc`` if it says what went wrong; a connect that timed out (asyncio's TimeoutError
    carries no text) as a TimeoutError that says after how long, anything else wordless as its
    type's name."""
    if str(exc):
        return exc
    if isinstance(exc, TimeoutError):
        return TimeoutError(f"timed out after {timeout_s:g} s (upstream.connect_timeout_s)")
    return type(exc)(type(exc).__name__)


def _failure_reason(exc: BaseException) -> str:
    """The kafka_edge_upstream_connect_failures_total reason for a failed connect."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, socket.gaierror):
        return "dns"
    return "unreachable"
