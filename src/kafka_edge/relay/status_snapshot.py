"""A running proxy's state as a :class:`StatusSnapshot` (for the status page and /status.json).

Read-only: it looks at the proxy's configuration, open connections, broker directories, recent
refusals and certificate files, and changes nothing. Certificates are read from their files at
each call (``tls.context``: ``certificate_names``, ``certificate_not_after``), so after a failed
reload the page shows the new file while the listener still serves the previous one (the log
and ``kafka_edge_certificate_reloads_total{outcome="error"}`` say so).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kafka_edge import __version__
from kafka_edge.config.names import format_host_port
from kafka_edge.observability.status import (
    BrokerStatus,
    CertificateStatus,
    ClusterStatus,
    ConfigurationStatus,
    InstanceStatus,
    ListenerStatus,
    RefusalStatus,
    ReloadResult,
    StatusSnapshot,
)
from kafka_edge.tls.context import certificate_names, certificate_not_after

if TYPE_CHECKING:
    from kafka_edge.config import ClusterConfig, Config, TlsServerConfig
    from kafka_edge.observability.metrics import Metrics
    from kafka_edge.relay.cluster import ClusterRuntime
    from kafka_edge.relay.connection import ProxyConnection


class ProxyView(Protocol):
    """What a snapshot reads from ``relay.server.Proxy`` (which this module cannot import:
    the server imports it)."""

    config: Config
    metrics: Metrics
    clusters: dict[str, ClusterRuntime]
    connections: set[ProxyConnection]
    draining: bool
    started_at: float  # time.monotonic()
    generation: int  # configurations loaded since start
    loaded_at: float  # time.time() the running configuration was loaded
    last_reload: tuple[str, str, float] | None  # outcome ("ok"/"error"), message, time.time()

    def readiness(self) -> tuple[bool, dict[str, object]]: ...


def port_listener_name(cluster: str) -> str:
    """The listener name a port-routed cluster's connections are counted under (configured
    listener names have no dot, so it cannot clash)."""
    return f"{cluster}.port_routing"


def build_snapshot(proxy: ProxyView) -> StatusSnapshot:
    now, mono = time.time(), time.monotonic()
    by_target: Counter[tuple[str, int | None]] = Counter()
    by_listener: Counter[str] = Counter()
    for conn in list(proxy.connections):
        by_listener[conn.listener] += 1
        if conn.cluster is not None:
            by_target[conn.cluster.name, conn.node_id] += 1
    ready, detail = proxy.readiness()
    reason = str(detail.get("reason", "")) or ("draining" if proxy.draining else "starting")
    started_at = now - (mono - proxy.started_at)
    return StatusSnapshot(
        generated_at=now,
        instance=InstanceStatus(
            version=__version__, pids=(os.getpid(),), workers=1, started_at=started_at,
            uptime_s=mono - proxy.started_at, draining=proxy.draining, ready=ready,
            ready_reason="" if ready else reason),
        configuration=ConfigurationStatus(
            generation=proxy.generation, loaded_at=proxy.loaded_at,
            last_reload=None if proxy.last_reload is None else ReloadResult(
                ok=proxy.last_reload[0] == "ok", message=proxy.last_reload[1],
                at=proxy.last_reload[2])),
        clusters=tuple(_cluster(c, by_target) for c in proxy.clusters.values()),
        listeners=_listeners(proxy.config, by_listener),
        certificates=_certificates(proxy.config, now),
        refusals=tuple(RefusalStatus(at=r.at, listener=r.listener, reason=r.reason,
                                     peer=r.peer, detail=r.detail)
                       for r in reversed(proxy.metrics.recent_refusals)),
    )


def _named_brokers(cluster: ClusterRuntime,
                   by_target: Mapping[tuple[str, int | None], int]) -> list[BrokerStatus]:
    """Name mapping (``upstream.broker_name_pattern``): each broker the metadata named, by node
    id, with the edge name its upstream name maps to; connections are counted by that name's
    number (what a client's SNI names), so they are told per broker, not per node id."""
    rows = []
    for node_id, (host, port) in sorted(cluster.directory.known_nodes().items()):
        number = cluster.config.upstream.number_in_name(host)
        edge = cluster.routes.edge_address_for_host(cluster.name, host)
        rows.append(BrokerStatus(
            node_id=node_id, edge_address=format_host_port(*edge) if edge else "",
            upstream_address=format_host_port(host, port),
            connections=by_target.get((cluster.name, number), 0) if number is not None else 0))
    return rows


def _cluster(cluster: ClusterRuntime,
             by_target: Mapping[tuple[str, int | None], int]) -> ClusterStatus:
    cfg = cluster.config
    if cfg.upstream.maps_names:
        brokers = _named_brokers(cluster, by_target)
    else:
        nodes = set(cluster.directory.known_nodes())
        nodes.update(n for (name, n) in by_target if name == cluster.name and n is not None)
        brokers = []
        for node_id in sorted(nodes):
            edge = cluster.routes.edge_address(cluster.name, node_id)
            upstream = cluster.directory.upstream_for(node_id)
            brokers.append(BrokerStatus(
                node_id=node_id, edge_address=format_host_port(*edge) if edge else "",
                upstream_address=format_host_port(*upstream) if upstream else "",
                connections=by_target.get((cluster.name, node_id), 0)))
    sni, pr = cfg.sni_routing, cfg.port_routing
    if sni is not None:
        listener = sni.listener
        bootstrap = format_host_port(sni.bootstrap_host, sni.advertised_port)
    else:
        assert pr is not None
        listener = port_listener_name(cfg.name)
        bootstrap = format_host_port(pr.advertised_host, pr.bootstrap_port)
    return ClusterStatus(
        name=cfg.name, routing="sni" if sni is not None else "port", listener=listener,
        bootstrap_edge=bootstrap, upstream_bootstrap=cfg.upstream.bootstrap_servers,
        bootstrap_connections=by_target.get((cluster.name, None), 0), brokers=tuple(brokers))


def _listeners(config: Config, by_listener: Mapping[str, int]) -> tuple[ListenerStatus, ...]:
    out = [ListenerStatus(name=x.name, routing="sni", bind=x.bind,
                          connections=by_listener.get(x.name, 0))
           for x in config.listeners]
    for cfg in config.clusters:
        if cfg.port_routing is not None:
            name = port_listener_name(cfg.name)
            out.append(ListenerStatus(name=name, routing="port", bind=_port_bind(cfg),
                                      connections=by_listener.get(name, 0)))
    return tuple(out)


def _port_bind(cfg: ClusterConfig) -> str:
    pr = cfg.port_routing
    assert pr is not None
    ports = pr.broker_ports
    return (f"{format_host_port(pr.bind_host or '*', pr.bootstrap_port)} (bootstrap), "
            f"ports {ports[0]}-{ports[-1]} (nodes {pr.node_id_min}-{pr.node_id_max})")


def _certificates(config: Config, now: float) -> tuple[CertificateStatus, ...]:
    served: list[tuple[str, TlsServerConfig]] = [(x.name, x.tls) for x in config.listeners]
    served += [(port_listener_name(c.name), c.port_routing.tls) for c in config.clusters
               if c.port_routing is not None and c.port_routing.tls is not None]
    return tuple(_certificate(listener, pair.cert_file, now)
                 for listener, tls in served for pair in tls.certificates)


def _certificate(listener: str, path: Path, now: float) -> CertificateStatus:
    try:
        names = tuple(certificate_names(path))
        not_after = certificate_not_after(path)
    except (OSError, ValueError) as exc:
        return CertificateStatus(listener=listener, file=str(path), names=(), not_after=None,
                                 days_left=None, error=f"cannot read: {exc}")
    return CertificateStatus(listener=listener, file=str(path), names=names,
                             not_after=not_after, days_left=(not_after - now) / 86400)
