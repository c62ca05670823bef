"""The second pass of reading a configuration: the rules that join sections, run on every entry
the first pass (``parse.py``) could read. Names are unique among listeners and among clusters;
names that refer to other entries (a listener's ``default_cluster``) name an entry that fits; no
client name (SNI) matches two clusters on one listener; and no port is bound twice by listeners,
port-per-broker clusters and ``observability.http_bind``.

An entry the first pass could not read is not there: a rule that would have needed it reports
nothing about it (its own errors come first). Errors are recorded at the key path of the entry
that breaks the rule, like every other error; :func:`check_cross_section` raises nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kafka_edge.config._reader import At, did_you_mean, valid
from kafka_edge.config.model import ClusterConfig, Listener, Observability
from kafka_edge.config.names import is_ip, is_wildcard, names_overlap

__all__ = ["check_cross_section"]


def check_cross_section(
    at: At,
    listeners: list[tuple[int, Listener]],
    clusters: list[tuple[int, ClusterConfig]],
    observability: Observability,
    *,
    some_cluster_broken: bool,
) -> None:
    """Run every cross-section rule on what was read: (index in its list, entry) pairs, and the
    observability section (POISON when it could not be read). ``some_cluster_broken``: some
    cluster could not be read, so a cluster name not found may well be that one."""
    _check_unique_names(at.key("listeners"), listeners)
    _check_unique_names(at.key("clusters"), clusters)
    _check_default_clusters(at, listeners, clusters, some_cluster_broken)
    _check_sni_names(at, clusters)
    _check_ports(at, listeners, clusters, observability)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def _check_unique_names(at: At, items: Sequence[tuple[int, _Named]]) -> None:
    first: dict[str, int] = {}
    for i, item in items:
        if item.name in first:
            at.index(i).key("name").error(
                f'expected a unique name, got "{item.name}" (already the name of '
                f"{at.index(first[item.name]).path})")
        else:
            first[item.name] = i


def _check_default_clusters(
    at: At,
    listeners: list[tuple[int, Listener]],
    clusters: list[tuple[int, ClusterConfig]],
    some_cluster_broken: bool,
) -> None:
    by_name = {cluster.name: cluster for _, cluster in reversed(clusters)}
    for i, listener in listeners:
        name = listener.default_cluster
        if name is None or (name not in by_name and some_cluster_broken):
            continue  # the broken cluster's own errors come first
        expected = f'expected the name of a cluster routed by SNI on listener "{listener.name}"'
        cluster = by_name.get(name)
        where = at.key("listeners").index(i).key("default_cluster")
        if cluster is None:
            on_listener = [c.name for _, c in clusters
                           if c.sni_routing and c.sni_routing.listener == listener.name]
            where.error(f'{expected}, got "{name}" (no such cluster)'
                        f"{did_you_mean(name, on_listener)}")
        elif cluster.sni_routing is None:
            where.error(f'{expected}, got "{name}" (it uses port_routing)')
        elif cluster.sni_routing.listener != listener.name:
            where.error(f'{expected}, got "{name}" (it is routed on listener '
                        f'"{cluster.sni_routing.listener}")')


def _check_sni_names(at: At, clusters: list[tuple[int, ClusterConfig]]) -> None:
    """No client name may match two clusters on one listener."""
    routed = [(i, c.name, c.sni_routing) for i, c in clusters if c.sni_routing is not None]
    for n, (i, name_a, a) in enumerate(routed):
        for j, _, b in routed[n + 1:]:
            if a.listener != b.listener:
                continue
            for key_b, value_b in (("bootstrap_host", b.bootstrap_host),
                                   ("broker_host_pattern", b.broker_host_pattern)):
                for key_a, value_a in (("bootstrap_host", a.bootstrap_host),
                                       ("broker_host_pattern", a.broker_host_pattern)):
                    if names_overlap(value_a, value_b):
                        at.key("clusters").index(j).key("sni_routing").key(key_b).error(
                            f'expected names no other cluster on listener "{b.listener}" uses, '
                            f'got "{value_b}", which overlaps {key_a} "{value_a}" of '
                            f'clusters[{i}] ("{name_a}")')


@dataclass(frozen=True, slots=True)
class _Bound:
    owner: str  # bindings of one owner were checked against each other already
    path: str
    host: str
    ports: range

    def describe(self) -> str:
        if len(self.ports) == 1:
            return f"port {self.ports[0]} on {self.host}"
        return f"ports {self.ports[0]}-{self.ports[-1]} on {self.host}"


def _hosts_overlap(a: str, b: str) -> bool:
    if a == b or is_wildcard(a) or is_wildcard(b):
        return True
    if is_ip(a) and is_ip(b):
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    return True  # a host name may resolve to either address: assume the worst


def _check_ports(
    at: At,
    listeners: list[tuple[int, Listener]],
    clusters: list[tuple[int, ClusterConfig]],
    observability: Observability,
) -> None:
    bound: list[_Bound] = []
    for i, listener in listeners:
        host, port = listener.bind_address
        bound.append(_Bound(f"listeners[{i}]", f"listeners[{i}].bind", host, range(port, port + 1)))
    for i, cluster in clusters:
        pr = cluster.port_routing
        if pr is None:
            continue
        where = f"clusters[{i}].port_routing"
        bound.append(_Bound(where, f"{where}.bootstrap_port", pr.bind_host,
                            range(pr.bootstrap_port, pr.bootstrap_port + 1)))
        bound.append(_Bound(where, f"{where}.broker_port_base", pr.bind_host, pr.broker_ports))
    if valid(observability) and observability.http_address is not None:
        host, port = observability.http_address
        bound.append(_Bound("observability", "observability.http_bind", host,
                            range(port, port + 1)))
    for n, b in enumerate(bound):
        for a in bound[:n]:
            if a.owner == b.owner or not _hosts_overlap(a.host, b.host):
                continue
            if a.ports.start < b.ports.stop and b.ports.start < a.ports.stop:
                At(at.ctx, b.path).error(
                    f"expected ports no other listener, cluster or http_bind uses, got "
                    f"{b.describe()}, which collides with {a.path} ({a.describe()})")

