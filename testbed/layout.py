"""Where each broker of a test cluster lives and what it is called, when that is not the whole
cluster's one address: :class:`NodeLayout` for :meth:`testbed.cluster.KafkaCluster.start`.

By default every broker of a test cluster binds its listeners on one address (``host``) at free
ports and advertises one name (``advertised_host``). Amazon MSK's brokers each have an address
and a name of their own and all listen on the same port (9098 for IAM); a layout says so:
node N binds every listener on ``hosts[N]`` and advertises ``names[N]``, and a listener named in
``fixed_ports`` takes that port on every node (the addresses differ, so the ports may repeat).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLayout:
    hosts: Mapping[int, str]  # node id -> the address it binds every listener on
    names: Mapping[int, str]  # node id -> the name it advertises on every listener
    fixed_ports: Mapping[str, int] = field(default_factory=dict)  # listener -> port on all
    tls_names: tuple[str, ...] = ()  # more names for the broker certificate ("*.c1.example")

    def check(self, node_ids: list[int]) -> None:
        """ValueError unless every node has an address and a name, and fixed ports can repeat
        (each node has an address of its own)."""
        for what, table in (("hosts", self.hosts), ("names", self.names)):
            missing = [n for n in node_ids if n not in table]
            if missing:
                raise ValueError(f"layout {what}: no entry for node(s) {missing}")
        if self.fixed_ports and len({self.hosts[n] for n in node_ids}) < len(node_ids):
            raise ValueError("layout fixed_ports need a host of its own for every node")
