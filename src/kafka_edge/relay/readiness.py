"""Readiness a load balancer can trust: the edge probes each cluster's bootstrap itself.

/readyz answers 200 only when the configuration is loaded, the listeners are bound, the process
is not draining, and (``observability.readiness.require_clusters``, default on) every cluster's
bootstrap was reachable within ``window_s``: a TCP connect and, where the cluster's upstream
uses TLS, a verified TLS handshake, made every ``probe_interval_s`` by the edge itself. A
connection the relay opened to the cluster counts as a success too. Otherwise 503 with the
reason in JSON.

The trade-off of ``require_clusters``: when a cluster is down, every instance is unready at
once, and a load balancer that routes to no healthy target drops connections (an AWS NLB with
every target unhealthy fails open and sends to all of them); with it off, an instance stays
ready while a cluster is unreachable and its clients' connections fail at the edge instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import TYPE_CHECKING

from kafka_edge.observability.logs import Persisting
from kafka_edge.relay.cluster import with_text

if TYPE_CHECKING:
    from kafka_edge.observability.metrics import Metrics
    from kafka_edge.relay.cluster import ClusterRuntime

log = logging.getLogger("kafka_edge.readiness")


async def probe_once(cluster: ClusterRuntime) -> str | None:
    """Reach one of the cluster's bootstrap servers (TCP, and TLS where configured): None on
    success, else why not (the last server's error)."""
    why = "no bootstrap server"
    for host, port in cluster.directory.bootstrap:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=cluster.tls,
                                        server_hostname=host if cluster.tls else None),
                cluster.connect_timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            why = f"{host}:{port}: {with_text(exc, cluster.connect_timeout)}"
            continue
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return None
    return why


class ClusterProbe:
    """The periodic probe of every cluster, and what /readyz says."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.last_ok: dict[str, float] = {}  # cluster -> monotonic time of the last success
        self.last_error: dict[str, str] = {}
        self._unreachable = Persisting(log)

    async def probe_all(self, clusters: dict[str, ClusterRuntime], window_s: float) -> None:
        names = list(clusters)
        results = await asyncio.gather(*(probe_once(clusters[n]) for n in names))
        now = time.monotonic()
        for name, error in zip(names, results, strict=True):
            self.metrics.probes.labels(name, "ok" if error is None else "error").inc()
            if error is None:
                self.last_ok[name] = now
                self.last_error.pop(name, None)
                self._unreachable.ended(name, "cluster %s: bootstrap reachable again", name)
            else:
                self.last_error[name] = error
                self._unreachable.persists(name, "cluster %s: bootstrap unreachable: %s",
                                           name, error)
        for name in (self.last_ok.keys() | self.last_error.keys()) - clusters.keys():
            self.last_ok.pop(name, None)  # a cluster removed by a reload
            self.last_error.pop(name, None)
        self.update_gauges(clusters, window_s)

    def reachable(self, cluster: ClusterRuntime, window_s: float) -> bool:
        seen = max(self.last_ok.get(cluster.name, 0.0), cluster.last_upstream_ok)
        return seen > 0 and time.monotonic() - seen <= window_s

    def update_gauges(self, clusters: dict[str, ClusterRuntime], window_s: float) -> None:
        for name, cluster in clusters.items():
            self.metrics.reachable.labels(name).set(1 if self.reachable(cluster, window_s) else 0)

    def unreachable(self, clusters: dict[str, ClusterRuntime], window_s: float) -> dict[str, str]:
        """cluster -> why it counts as unreachable now."""
        out = {}
        for name, cluster in clusters.items():
            if not self.reachable(cluster, window_s):
                out[name] = self.last_error.get(name, "not probed successfully yet")
        return out
