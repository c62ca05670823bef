"""Prometheus metrics. One registry per proxy instance (no global state shared across tests)."""

from __future__ import annotations

import platform
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kafka_edge import __version__
from kafka_edge.protocol.stream import LATENCY_BUCKETS

RECENT_REFUSALS = 50  # kept for the status page


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusalRecord:
    at: float  # time.time()
    listener: str
    reason: str  # the kafka_edge_refused_connections_total label
    peer: str  # the client address (from the PROXY header where one was accepted)
    detail: str  # the log line's text; names a client chose are shortened and escaped


class LatencyHistograms(Collector):
    """kafka_edge_request_latency_seconds{cluster, api}: from a request passing the proxy to
    the first bytes of its answer. Fed in batches (``add``) from the counts the frame streams
    keep in plain lists, so the hot path does no metric call per request."""

    def __init__(self) -> None:
        # (cluster, api) -> per-bucket counts (the last one is +Inf) and the sum
        self._data: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def add(self, cluster: str, latency: dict[str, list[float]]) -> None:
        """Add per-API bucket counts and sums (``ConnectionState.latency``'s layout: a count
        per LATENCY_BUCKETS bucket, one for +Inf, then the sum)."""
        data = self._data
        for api, histogram in latency.items():
            entry = data.get((cluster, api))
            if entry is None:
                entry = data[(cluster, api)] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
            counts = entry[0]
            for i in range(len(counts)):
                counts[i] += int(histogram[i])
            entry[1][0] += histogram[-1]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "kafka_edge_request_latency_seconds",
            "Seconds from a request passing the proxy to the first bytes of its answer, by "
            "API (Fetch includes the broker's wait for data, fetch.max.wait.ms)",
            labels=["cluster", "api"])
        for (cluster, api), (counts, total) in sorted(self._data.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([cluster, api], buckets, total[0])
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Counter(
            "kafka_edge_connections", "Client connections accepted and routed, by listener "
            "(port:<cluster> for port routing), cluster and target (bootstrap or broker)",
            ["listener", "cluster", "target"], registry=r)
        self.active = Gauge(
            "kafka_edge_active_connections", "Client connections open now",
            ["listener", "cluster"], registry=r)
        self.requests = Counter(
            "kafka_edge_requests", "Requests relayed, by API and version",
            ["cluster", "api", "version"], registry=r)
        self.latency = LatencyHistograms()
        r.register(self.latency)
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
            "kafka_edge_upstream_connect_seconds", "Time to open an upstream connection "
            "(TCP and, where configured, the TLS handshake)",
            ["cluster"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
        self.upstream_failures = Counter(
            "kafka_edge_upstream_connect_failures", "Upstream connections that failed, by "
            "reason: refused, timeout, tls, dns, unreachable, policy, unknown_node",
            ["cluster", "reason"], registry=r)
        self.tls_failures = Counter(
            "kafka_edge_tls_handshake_failures", "Client TLS handshakes that failed, by reason: "
            "timeout, closed, protocol_version, no_shared_cipher, certificate, other",
            ["listener", "reason"], registry=r)
        self.limit_hits = Counter(
            "kafka_edge_limit_hits", "Times a limit was reached, by its limits.* key",
            ["limit"], registry=r)
        self.probes = Counter(
            "kafka_edge_upstream_probes", "Readiness probes of each cluster's bootstrap, by "
            "outcome", ["cluster", "outcome"], registry=r)
        self.reachable = Gauge(
            "kafka_edge_cluster_reachable", "1 when the cluster's bootstrap answered a probe "
            "within observability.readiness.window_s", ["cluster"], registry=r)
        self.ready = Gauge("kafka_edge_ready", "1 when /readyz answers 200", registry=r)
        self.config_reloads = Counter(
            "kafka_edge_config_reloads", "Configuration reloads (SIGHUP or file change), by "
            "outcome: ok, error (the running configuration stays)", ["outcome"], registry=r)
        self.config_generation = Gauge(
            "kafka_edge_config_generation", "Configurations loaded since start (1 = the first)",
            registry=r)
        self.config_last_ok = Gauge(
            "kafka_edge_config_last_reload_success", "0 when the last reload failed",
            registry=r)
        self.cert_expiry = Gauge(
            "kafka_edge_certificate_expiry_seconds", "Seconds until each served certificate "
            "expires", ["listener", "certificate"], registry=r)
        Gauge("kafka_edge_build_info", "The running version", ["version", "python"],
              registry=r).labels(__version__, platform.python_version()).set(1)
        self.discovery = Counter(
            "kafka_edge_discovery_requests", "Metadata requests made by the proxy itself",
            ["cluster", "outcome"], registry=r)
        self.known_brokers = Gauge(
            "kafka_edge_known_brokers", "Broker node ids this instance can route to",
            ["cluster"], registry=r)
        self.recent_refusals: deque[RefusalRecord] = deque(maxlen=RECENT_REFUSALS)
        self.cert_reloads = Counter(
            "kafka_edge_certificate_reloads", "Certificate reloads (file change, SIGHUP, "
            "configuration reload), by outcome", ["outcome"], registry=r)
        self.config_generation.set(1)
        self.config_last_ok.set(1)

    def refuse(self, listener: str, reason: str, peer: str, detail: str) -> None:
        """Count a connection refused before relaying and keep it among the recent ones."""
        self.refused.labels(listener, reason).inc()
        self.recent_refusals.append(RefusalRecord(at=time.time(), listener=listener,
                                                  reason=reason, peer=peer, detail=detail))
