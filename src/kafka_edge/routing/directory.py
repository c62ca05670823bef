"""Per-cluster broker directory: which upstream address serves each node id (pure, no I/O).

The directory learns addresses only from the configured cluster's own answers (Metadata,
FindCoordinator, DescribeCluster, KIP-951 NodeEndpoints), relayed or asked by the proxy itself
(discovery), and from the configured bootstrap servers and broker address pattern. Every address
an answer names is checked against the cluster's :class:`UpstreamPolicy` first: an answer that
names any address outside it teaches nothing (not even its other addresses), the refused address
is reported once, and counted. ``is_allowed`` is asked again right before every dial.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from kafka_edge.routing.policy import UpstreamPolicy

Address = tuple[str, int]
# node id -> the address clients are told to use for that node
EdgeAddressFn = Callable[[int], Address]
# (node id, upstream host, upstream port) as an answer named them
Learned = tuple[int, str, int]

log = logging.getLogger("kafka_edge.directory")
_MAX_REPORTED = 1024  # refused addresses remembered for log-once (beyond that: counted only)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` escaped (repr, so control and non-ASCII characters show as escapes) and cut to
    about ``limit`` characters, for log lines about values a peer chose."""
    shown = ascii(text)[1:-1]
    return shown if len(shown) <= limit else f"{shown[:limit]}...({len(text)} chars)"


class BrokerDirectory:
    __slots__ = ("_bootstrap", "_edge_address", "_nodes", "_pattern", "_reported",
                 "name", "policy")

    def __init__(
        self,
        *,
        bootstrap: Iterable[Address],
        edge_address: EdgeAddressFn,
        policy: UpstreamPolicy,
        pattern: Callable[[int], Address | None] | None = None,
        name: str = "",
    ) -> None:
        self._bootstrap = tuple(bootstrap)
        self._edge_address = edge_address
        self._pattern = pattern
        self._nodes: dict[int, Address] = {}
        self._reported: set[Address] = set()
        self.policy = policy
        self.name = name  # the cluster's, for log lines

    @property
    def bootstrap(self) -> tuple[Address, ...]:
        return self._bootstrap

    def learn_answer(self, entries: Sequence[Learned], source: str) -> int:
        """Learn the broker addresses one answer named (``source``: what answered, for the log).
        All or nothing: the number of addresses outside the policy, and nothing learned if it is
        not 0."""
        bad = [(host, port) for _, host, port in entries if not self.policy.allows(host)]
        for address in bad:
            self._report(address, source)
        if bad:
            return len(bad)
        for node_id, host, port in entries:
            address = (host, port)
            if node_id >= 0:
                self._nodes[node_id] = address
        return 0

    def _report(self, address: Address, source: str) -> None:
        if address in self._reported:
            return
        if len(self._reported) < _MAX_REPORTED:
            self._reported.add(address)
        log.warning("cluster %s: %s named broker address %s:%d, which is outside the upstream "
                    "address policy (%s); nothing learned from that answer. If the address is "
                    "right, add it to upstream.allowed_hosts", self.name, source,
                    shorten(address[0]), address[1], self.policy.description)

    def upstream_for(self, node_id: int) -> Address | None:
        """Where node ``node_id`` lives upstream: as the cluster told us, or by the pattern."""
        address = self._nodes.get(node_id)
        if address is None and self._pattern is not None:
            address = self._pattern(node_id)
        return address

    def known_nodes(self) -> dict[int, Address]:
        return dict(self._nodes)

    def is_allowed(self, address: Address) -> bool:
        """May the proxy dial ``address``? A configured bootstrap server, or a host the policy
        allows."""
        return address in self._bootstrap or self.policy.allows(address[0])

    def edge_address(self, node_id: int) -> Address:
        return self._edge_address(node_id)
