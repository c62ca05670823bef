"""The upstream address policy: which hosts the edge may dial for one cluster (pure, no I/O).

Broker addresses come from the cluster's answers (Metadata, FindCoordinator, DescribeCluster,
KIP-951 NodeEndpoints), which pass through connections that clients drive. The proxy parses
every answer as the answer to the request it answers (see ``protocol.stream``), so those bytes
are the broker's; this policy is the second line: an address outside it is never learned and
never dialled, whatever went wrong before.

A host is allowed when it is

* one of the configured bootstrap hosts (any port: brokers of one cluster often share a host);
* a name ``broker_address_pattern`` or ``broker_name_pattern`` produces (any number of 1 to 10
  digits);
* and, per ``upstream.allowed_hosts`` when set, an exact host name, a name under a ``*.domain``
  suffix (at any depth), an IP address, or an address in a CIDR network. When
  ``allowed_hosts`` is not set, the default is the parent domain of each bootstrap host name
  that has one (``b-1.orders.abc123.c2.kafka.eu-west-1.amazonaws.com`` allows
  ``*.orders.abc123.c2.kafka.eu-west-1.amazonaws.com``); IP bootstraps add nothing but
  themselves, so a cluster reached by IP whose brokers have other addresses needs its network
  in ``allowed_hosts``.

Names compare case-insensitively, with one trailing dot ignored. Ports are not restricted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from kafka_edge.config.names import (
    IpNetwork,
    is_ip,
    parse_allowed_host,
    placeholder_of,
)

_MAX_NODE_DIGITS = 10  # node ids are int32


def _normal(host: str) -> str:
    host = host.lower()
    return host[:-1] if host.endswith(".") else host


class UpstreamPolicy:
    """May the edge dial ``host`` for this cluster? See the module docstring."""

    __slots__ = ("_hosts", "_networks", "_patterns", "_suffixes", "description")

    def __init__(self, *, bootstrap_hosts: Iterable[str],
                 allowed_hosts: Iterable[str] | None = None,
                 broker_address_pattern: str | None = None,
                 broker_name_pattern: str | None = None) -> None:
        bootstrap = [_normal(h) for h in bootstrap_hosts]
        self._hosts: set[str] = set()
        self._suffixes: list[str] = []
        self._networks: list[IpNetwork] = []
        self._patterns: list[tuple[str, str, str]] = []  # (prefix, placeholder, suffix)
        for host in bootstrap:
            self._add(host)
        if allowed_hosts is None:
            for host in bootstrap:
                if not is_ip(host) and "." in host:
                    self._suffixes.append("." + host.split(".", 1)[1])
        else:
            for entry in allowed_hosts:
                self._add_entry(parse_allowed_host(entry))
        for pattern in (broker_address_pattern, broker_name_pattern):
            if pattern is not None:
                host_template = pattern.rpartition(":")[0].lower()
                self._patterns.append(host_template.partition(placeholder_of(host_template)))
        self.description = self._describe()

    def _add(self, host: str) -> None:
        if is_ip(host):
            self._networks.append(ipaddress.ip_network(host))
        else:
            self._hosts.add(host)

    def _add_entry(self, entry: str | IpNetwork) -> None:
        if isinstance(entry, str):
            if entry.startswith("."):
                self._suffixes.append(entry)
            else:
                self._hosts.add(entry)
        else:
            self._networks.append(entry)

    def _describe(self) -> str:
        parts = sorted(self._hosts) + ["*" + s for s in self._suffixes]
        parts += [str(n) for n in self._networks]
        parts += ["".join(pattern) for pattern in self._patterns]
        return ", ".join(parts)

    def allows(self, host: str) -> bool:
        name = _normal(host)
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            address = None
        if address is not None:
            return any(address in network for network in self._networks)
        if not name.isascii() or name in self._hosts:
            return name in self._hosts
        for suffix in self._suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return True
        for prefix, _, suffix in self._patterns:
            digits = name[len(prefix):len(name) - len(suffix)] if suffix else name[len(prefix):]
            if (name.startswith(prefix) and name.endswith(suffix)
                    and len(name) > len(prefix) + len(suffix)
                    and 0 < len(digits) <= _MAX_NODE_DIGITS
                    and digits.isascii() and digits.isdigit()):
                return True
        return False
