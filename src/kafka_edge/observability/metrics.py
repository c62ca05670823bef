"""Prometheus metrics. One registry per proxy instance (no global state shared across tests)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RECENT_REFUSALS = 50  # kept for the status page


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusalRecord:
    at: float  # time.time()
    listener: str
    reason: str  # the kafka_edge_refused_connections_total label
    peer: str  # the client address (from the PROXY header where one was accepted)
    detail: str  # the log line's text; names a client chose are shortened and escaped


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Counter(
            "kafka_edge_connections", "Client connections accepted",
            ["cluster", "target"], registry=r)
        self.active = Gauge(
            "kafka_edge_active_connections", "Client connections open now",
            ["cluster"], registry=r)
        self.bytes = Counter(
            "kafka_edge_relayed_bytes", "Bytes relayed",
            ["cluster", "direction"], registry=r)
        self.rewritten = Counter(
            "kafka_edge_rewritten_responses", "Responses whose broker addresses were rewritten",
            ["cluster", "api"], registry=r)
        self.endpoints_dropped = Counter(
            "kafka_edge_node_endpoints_dropped",
            "Fetch answers streamed through whose KIP-951 NodeEndpoints were left out because "
            "the rewritten addresses are longer than the broker's, or 1 to 5 bytes shorter "
            "(too little room for padding); clients then ask Metadata",
            ["cluster"], registry=r)
        self.sasl_handshakes = Counter(
            "kafka_edge_sasl_handshakes", "SASL handshakes relayed (re-authentications included)",
            ["cluster"], registry=r)
        self.sasl_v0 = Counter(
            "kafka_edge_sasl_v0_sessions", "SaslHandshake v0 exchanges (raw SASL tokens) relayed",
            ["cluster"], registry=r)
        self.sasl_v0_refused = Counter(
            "kafka_edge_sasl_v0_refused",
            "SaslHandshake v0 refused because the proxy cannot follow the mechanism's raw "
            "tokens (GSSAPI, unknown mechanisms); SaslHandshake v1 supports them",
            ["cluster"], registry=r)
        self.addresses_refused = Counter(
            "kafka_edge_upstream_addresses_refused",
            "Broker addresses named in a cluster's answers and not learned: outside the "
            "upstream address policy (upstream.allowed_hosts)",
            ["cluster"], registry=r)
        self.dials_refused = Counter(
            "kafka_edge_upstream_dials_refused",
            "Upstream connections not attempted: the address is outside the upstream address "
            "policy", ["cluster"], registry=r)
        self.refused = Counter(
            "kafka_edge_refused_connections", "Connections refused before relaying",
            ["listener", "reason"], registry=r)
        self.errors = Counter(
            "kafka_edge_connection_errors",
            "Connections closed on an error, by kind: client_protocol, broker_protocol (bad "
            "frames), timeout (a frame left half-sent, no first request), refused (SASL v0)",
            ["cluster", "kind"], registry=r)
        self.upstream_connect = Histogram(
            "kafka_edge_upstream_connect_seconds", "Time to open an upstream connection",
            ["cluster"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
        self.discovery = Counter(
            "kafka_edge_discovery_requests", "Metadata requests made by the proxy itself",
            ["cluster", "outcome"], registry=r)
        self.known_brokers = Gauge(
            "kafka_edge_known_brokers", "Broker node ids this instance can route to",
            ["cluster"], registry=r)
        self.recent_refusals: deque[RefusalRecord] = deque(maxlen=RECENT_REFUSALS)
        self.cert_reloads = Counter(
            "kafka_edge_certificate_reloads", "Certificate reloads", ["outcome"], registry=r)

    def refuse(self, listener: str, reason: str, peer: str, detail: str) -> None:
        """Count a connection refused before relaying and keep it among the recent ones."""
        self.refused.labels(listener, reason).inc()
        self.recent_refusals.append(RefusalRecord(at=time.time(), listener=listener,
                                                  reason=reason, peer=peer, detail=detail))
