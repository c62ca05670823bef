"""Every routing decision, in one place (pure, no I/O).

* (listener, TLS server name) -> (cluster, bootstrap or node N): ``Routes.by_server_name``;
* (cluster, port) -> the target each port-per-broker port serves: ``Routes.port_targets``;
* node N -> the address clients are given (edge name or port): ``Routes.edge_address``;
* node N -> the upstream address by ``broker_address_pattern``: ``Routes.upstream_by_pattern``;
* name to name, for clusters whose broker names carry their own number
  (``upstream.broker_name_pattern``, MSK Serverless's ``b97-<id>...``): an upstream broker name
  -> the edge name with the same number (``Routes.edge_address_for_host``, when rewriting
  answers), and the number in an edge name -> the upstream address
  (``Routes.upstream_by_name``, when dialling); node ids play no part;
* whether the edge may dial an upstream address: the cluster's ``UpstreamPolicy``
  (``routing.policy``), asked by the broker directory before it learns an address and by the
  dialler right before every connect.

The per-section arithmetic (a pattern with a node number, a port base plus an offset) lives on
the configuration model (``SniRouting.host_for_node``, ``PortRouting.port_for_node``, ...);
this module is what the relay asks, so there is one implementation of each decision. Names a
client sends are bytes it chose: anything that is not an ASCII DNS name routes nowhere, and
nothing here raises on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_edge.config.model import ClusterConfig, Config
from kafka_edge.config.names import node_for_name

Address = tuple[str, int]
_MAX_NAME = 253


@dataclass(frozen=True, slots=True)
class Target:
    """Where a client connection goes: a cluster's bootstrap (``node`` None) or broker: its node
    id, or, for a cluster that maps names to names, the number its names carry."""

    cluster: str
    node: int | None


class Routes:
    __slots__ = ("_by_listener", "_clusters")

    def __init__(self, config: Config) -> None:
        self._clusters = {c.name: c for c in config.clusters}
        self._by_listener: dict[str, list[ClusterConfig]] = {}
        for cluster in config.clusters:
            if cluster.sni_routing is not None:
                self._by_listener.setdefault(cluster.sni_routing.listener, []).append(cluster)

    def by_server_name(self, listener: str, server_name: str) -> Target | None:
        """The target a TLS server name asks for on ``listener`` (case-insensitive, one
        trailing dot ignored), or None: the listener refuses it (``unrecognized_name``)."""
        name = server_name.lower()
        if name.endswith("."):
            name = name[:-1]
        if not name.isascii() or not name or len(name) > _MAX_NAME or name.endswith("."):
            return None  # configured names are ASCII DNS names (checked at load)
        for cluster in self._by_listener.get(listener, ()):
            sni = cluster.sni_routing
            assert sni is not None
            if name == sni.bootstrap_host:
                return Target(cluster.name, None)
            node = node_for_name(sni.broker_host_pattern, name)
            if node is not None:
                return Target(cluster.name, node)
        return None

    def port_targets(self, cluster: str) -> list[tuple[int, Target]]:
        """(port, target) for every port a port-per-broker cluster binds: the bootstrap port,
        then node ``node_id_min`` .. ``node_id_max`` in order."""
        pr = self._clusters[cluster].port_routing
        if pr is None:
            return []
        nodes = range(pr.node_id_min, pr.node_id_max + 1)
        return [(pr.bootstrap_port, Target(cluster, None)),
                *((pr.port_for_node(n), Target(cluster, n)) for n in nodes)]

    def edge_address(self, cluster: str, node_id: int) -> Address | None:
        """The address clients are given for node ``node_id``; None when the node has none
        (outside the port range, or a negative id): never the real address."""
        try:
            host, port = self._clusters[cluster].advertised_address_for_node(node_id)
        except ValueError:
            return None
        return host, port

    def maps_names(self, cluster: str) -> bool:
        """Does ``cluster`` map broker names to names (``upstream.broker_name_pattern``)?"""
        return self._clusters[cluster].upstream.maps_names

    def edge_address_for_host(self, cluster: str, host: str) -> Address | None:
        """Name mapping: the edge address of the upstream broker called ``host`` (the edge name
        with the number ``host`` carries), or None when ``host`` does not match
        ``broker_name_pattern``."""
        config = self._clusters[cluster]
        number = config.upstream.number_in_name(host)
        if number is None or config.sni_routing is None:
            return None
        host_name, port = config.sni_routing.advertised_address_for_node(number)
        return host_name, port

    def upstream_by_name(self, cluster: str, number: int) -> Address | None:
        """Name mapping: the upstream address of the broker whose name carries ``number``."""
        address = self._clusters[cluster].upstream.name_address(number)
        return None if address is None else (address.host, address.port)

    def upstream_by_pattern(self, cluster: str, node_id: int) -> Address | None:
        """Node ``node_id``'s upstream address by ``broker_address_pattern`` (None without)."""
        if node_id < 0:
            return None
        address = self._clusters[cluster].upstream.pattern_address(node_id)
        return None if address is None else (address.host, address.port)
