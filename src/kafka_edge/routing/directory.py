"""Per-cluster broker directory: which upstream address serves each node id, and the allowlist.

Pure bookkeeping, no I/O. The directory only ever learns addresses from the configured cluster's
own responses (Metadata, FindCoordinator, DescribeCluster, KIP-951 NodeEndpoints) or from its
configured bootstrap servers and broker address pattern, so the relay can never be steered into
dialling anything else: it is the proxy's open-relay guard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Address = tuple[str, int]
# node id -> the address clients are told to use for that node
EdgeAddressFn = Callable[[int], Address]


class BrokerDirectory:
    __slots__ = ("_bootstrap", "_edge_address", "_nodes", "_pattern", "generation")

    def __init__(
        self,
        *,
        bootstrap: Iterable[Address],
        edge_address: EdgeAddressFn,
        pattern: Callable[[int], Address | None] | None = None,
    ) -> None:
        self._bootstrap = tuple(bootstrap)
        self._edge_address = edge_address
        self._pattern = pattern
        self._nodes: dict[int, Address] = {}
        self.generation = 0  # bumps whenever a node's address changes

    @property
    def bootstrap(self) -> tuple[Address, ...]:
        return self._bootstrap

    def learn(self, node_id: int, host: str, port: int) -> None:
        address = (host, port)
        if node_id >= 0 and self._nodes.get(node_id) != address:
            self._nodes[node_id] = address
            self.generation += 1

    def upstream_for(self, node_id: int) -> Address | None:
        """Where node ``node_id`` lives upstream: as the cluster told us, or by the pattern."""
        address = self._nodes.get(node_id)
        if address is None and self._pattern is not None:
            address = self._pattern(node_id)
        return address

    def known_nodes(self) -> dict[int, Address]:
        return dict(self._nodes)

    def is_allowed(self, address: Address) -> bool:
        """May the proxy dial ``address``? Only bootstrap servers and learned brokers."""
        return address in self._bootstrap or address in self._nodes.values()

    def map_address(self, node_id: int, host: str, port: int,
                    is_broker: bool) -> Address:
        """The codecs' AddressMapper: learn a broker's real address, return the edge's."""
        if is_broker:
            self.learn(node_id, host, port)
        return self._edge_address(node_id)
