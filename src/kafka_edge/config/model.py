"""The validated configuration: frozen dataclasses, no I/O.

Build one with :func:`kafka_edge.config.load_config`, :func:`~kafka_edge.config.parse_config` or
:func:`~kafka_edge.config.quick_config`, which check everything documented in
docs/configuration.md; constructing these classes directly skips those checks.

Field names are the YAML keys, so ``config.clusters[0].upstream.connect_timeout_s`` is the value of
``clusters[0].upstream.connect_timeout_s``. Values are stored normalised: file paths absolute,
SNI names lowercased, defaults filled in (``advertised_host``, ``advertised_port_base`` and
``advertised_port`` hold the effective values). Every ``host:port`` string also has a parsed
``(host, port)`` form (:class:`HostPort`) next to it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kafka_edge.config.names import (
    MAX_NODE_ID,
    NODE,
    NUMBER,
    HostPort,
    IpNetwork,
    name_for_node,
    node_for_name,
    parse_host_port,
)
from kafka_edge.config.secret import Secret

TlsVersion = Literal["TLSv1.2", "TLSv1.3"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
ProxyProtocolMode = Literal["optional", "required"]


# -- TLS the edge serves -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificatePair:
    """A PEM certificate chain and its private key (both absolute paths, checked to match)."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsServerConfig:
    """Server-side TLS: ``listeners[].tls`` and ``port_routing.tls``."""

    certificates: tuple[CertificatePair, ...]  # one or more; chosen by the client's SNI
    min_version: TlsVersion
    ciphers: str | None  # OpenSSL cipher string for TLS 1.2; None = OpenSSL's defaults
    handshake_timeout_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyProtocol:
    """``proxy_protocol`` of a listener or of ``port_routing`` when it is on: each connection
    may (``optional``) or must (``required``) start with a PROXY protocol header (v1 or v2)
    naming the client; only peers in ``trusted_sources`` may send one."""

    mode: ProxyProtocolMode
    trusted_sources: tuple[str, ...]  # IP networks, normalised ("10.0.0.0/16"); never empty
    header_timeout_s: float  # time a connection has to deliver its header (or first bytes)

    def trusted_networks(self) -> tuple[IpNetwork, ...]:
        return tuple(ipaddress.ip_network(source) for source in self.trusted_sources)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A TLS port shared by the clusters that route by SNI on it."""

    name: str
    bind: str  # "host:port" as written
    tls: TlsServerConfig
    default_cluster: str | None  # for clients that send no SNI; None = refuse them
    proxy_protocol: ProxyProtocol | None = None  # None: off

    @property
    def bind_address(self) -> HostPort:
        return parse_host_port(self.bind)


# -- the upstream cluster ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamTls:
    """TLS from the edge to the cluster's brokers."""

    ca_file: Path | None  # None = the system trust store
    verify_hostname: bool
    cert_file: Path | None  # client certificate (mTLS); set together with key_file
    key_file: Path | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslCredentials:
    """How the edge authenticates its own discovery connections.

    ``password`` holds the value (read at load time); ``password_env`` / ``password_file`` record
    where it came from (neither set: it was written literally in the file).
    """

    mechanism: SaslMechanism
    username: str
    password: Secret
    password_env: str | None = None
    password_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """How the edge learns the upstream address of a node id it has not seen in metadata yet."""

    sasl: SaslCredentials | None
    refresh_interval_s: float  # minimum seconds between discovery metadata requests


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    bootstrap_servers: tuple[str, ...]  # "host:port" each, as written
    tls: UpstreamTls | None  # None = plaintext
    connect_timeout_s: float
    broker_address_pattern: str | None  # "b-{node}.example:9098": node N's upstream address
    discovery: Discovery
    # hosts the edge may learn and dial besides the bootstrap hosts and the pattern's names:
    # names, "*.domain" suffixes, IP networks; None = the bootstrap hosts' parent domains
    allowed_hosts: tuple[str, ...] | None = None
    # "b{n}-abc.c1.kafka-serverless.us-east-1.amazonaws.com:9098": the brokers' upstream names
    # carry a number (not necessarily the node id), mapped name to name to the edge names of
    # sni_routing.broker_host_pattern ("b-{n}.orders.example.com"); None = map by node id
    broker_name_pattern: str | None = None

    @property
    def maps_names(self) -> bool:
        """Are brokers mapped name to name (``broker_name_pattern``) rather than by node id?"""
        return self.broker_name_pattern is not None

    @property
    def bootstrap_addresses(self) -> tuple[HostPort, ...]:
        return tuple(parse_host_port(server) for server in self.bootstrap_servers)

    def pattern_address(self, node_id: int) -> HostPort | None:
        """Node ``node_id``'s upstream address by ``broker_address_pattern``; None without one."""
        if self.broker_address_pattern is None:
            return None
        return _fill_address(self.broker_address_pattern, NODE, node_id)

    def name_address(self, number: int) -> HostPort | None:
        """The upstream address of the broker whose name carries ``number``, by
        ``broker_name_pattern``; None without one (or for a number outside 0..2**31-1)."""
        if self.broker_name_pattern is None or not 0 <= number <= MAX_NODE_ID:
            return None
        return _fill_address(self.broker_name_pattern, NUMBER, number)

    def number_in_name(self, host: str) -> int | None:
        """The number an upstream broker host name carries by ``broker_name_pattern`` (canonical
        decimal, at most 2**31-1), or None: no pattern, or the name does not match it."""
        if self.broker_name_pattern is None:
            return None
        return node_for_name(self.broker_name_pattern.rpartition(":")[0].lower(), host)


def _fill_address(pattern: str, placeholder: str, number: int) -> HostPort:
    """A checked ``"host-pattern:port"`` with ``number`` in place of ``placeholder``."""
    host_template, _, port = pattern.rpartition(":")
    return HostPort(host_template.replace(placeholder, str(number)), int(port))


# -- how clients reach the edge --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PortRouting:
    """Port per broker: the bootstrap on one port, node N on
    ``broker_port_base + N - node_id_min``."""

    bind_host: str
    bootstrap_port: int
    broker_port_base: int
    node_id_min: int
    node_id_max: int
    advertised_host: str  # the host clients are given (effective value)
    advertised_port_base: int  # the port clients are given for node_id_min (effective value)
    tls: TlsServerConfig | None
    proxy_protocol: ProxyProtocol | None = None  # on the bootstrap and broker ports; None: off

    @property
    def node_count(self) -> int:
        return self.node_id_max - self.node_id_min + 1

    @property
    def broker_ports(self) -> range:
        """The ports the edge binds for brokers, in node id order."""
        return range(self.broker_port_base, self.broker_port_base + self.node_count)

    def has_node(self, node_id: int) -> bool:
        return self.node_id_min <= node_id <= self.node_id_max

    def port_for_node(self, node_id: int) -> int:
        """The port the edge serves node ``node_id`` on; ValueError outside the node id range."""
        self._require(node_id)
        return self.broker_port_base + node_id - self.node_id_min

    def advertised_port_for_node(self, node_id: int) -> int:
        """The port clients are told for node ``node_id``; ValueError outside the range."""
        self._require(node_id)
        return self.advertised_port_base + node_id - self.node_id_min

    def advertised_address_for_node(self, node_id: int) -> HostPort:
        return HostPort(self.advertised_host, self.advertised_port_for_node(node_id))

    def _require(self, node_id: int) -> None:
        if not self.has_node(node_id):
            raise ValueError(
                f"node id {node_id} is outside node_id_min..node_id_max "
                f"({self.node_id_min}..{self.node_id_max})"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SniRouting:
    """Name per broker on a shared TLS listener, chosen by the client's SNI."""

    listener: str
    bootstrap_host: str  # lowercased
    # lowercased; contains {node} exactly once, or {n} when upstream.broker_name_pattern is set
    broker_host_pattern: str
    advertised_port: int  # the port clients are given (effective value)

    def host_for_node(self, node_id: int) -> str:
        """The name of node ``node_id`` (under name mapping: of the broker whose upstream name
        carries that number); ValueError for a negative number."""
        return name_for_node(self.broker_host_pattern, node_id)

    def advertised_address_for_node(self, node_id: int) -> HostPort:
        return HostPort(self.host_for_node(node_id), self.advertised_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """One upstream Kafka cluster and how clients reach it: exactly one of ``port_routing`` and
    ``sni_routing`` is set."""

    name: str
    upstream: Upstream
    aws_region: str | None
    port_routing: PortRouting | None = None
    sni_routing: SniRouting | None = None

    def __post_init__(self) -> None:
        if (self.port_routing is None) == (self.sni_routing is None):
            raise ValueError("exactly one of port_routing and sni_routing must be set")

    @property
    def routing(self) -> PortRouting | SniRouting:
        routing = self.port_routing or self.sni_routing
        assert routing is not None  # __post_init__
        return routing

    def advertised_address_for_node(self, node_id: int) -> HostPort:
        """The address clients are given for node ``node_id`` (ValueError if it has none)."""
        return self.routing.advertised_address_for_node(node_id)


# -- process-wide settings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_frame_bytes: int
    max_connections: int
    idle_timeout_s: float  # 0 = none
    drain_timeout_s: float  # on shutdown: how long open connections may take to finish
    incomplete_frame_timeout_s: float = 30.0  # a frame left half-sent that long closes; 0 = none
    first_request_timeout_s: float = 30.0  # no complete first frame that long after accept
    max_in_flight_requests: int = 1000  # per connection: more hold the client's reads back


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    """``observability.readiness``: the edge's own probe of each cluster's bootstrap."""

    probe_interval_s: float = 5.0
    window_s: float = 30.0  # a cluster is reachable if a probe succeeded this recently
    require_clusters: bool = True  # an unreachable cluster makes /readyz 503


@dataclass(frozen=True, slots=True, kw_only=True)
class Observability:
    http_bind: str | None  # "host:port" of /metrics, /healthz, /readyz; None = disabled
    log_level: LogLevel
    log_format: LogFormat
    readiness: Readiness = Readiness()

    @property
    def http_address(self) -> HostPort | None:
        return None if self.http_bind is None else parse_host_port(self.http_bind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    listeners: tuple[Listener, ...]
    clusters: tuple[ClusterConfig, ...]
    limits: Limits
    observability: Observability

    def cluster(self, name: str) -> ClusterConfig:
        """The cluster called ``name``; KeyError if there is none."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    def listener(self, name: str) -> Listener:
        """The listener called ``name``; KeyError if there is none."""
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)

    def redacted_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data in the YAML file's shape, safe to log.

        Secrets never appear: a password read from an environment variable or a file is shown as
        its source (``password_env`` / ``password_file``), a literal one as ``"***"``. Feeding
        the result back to ``parse_config`` gives an equal ``Config`` unless a password was
        literal.
        """
        data = _plain(self)
        assert isinstance(data, dict)
        return data


def _plain(value: object) -> object:
    """Model -> JSON/YAML-ready data (dicts, lists, str, int, float, bool, None)."""
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):  # HostPort never occurs as a field; plain tuples of items do
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, SaslCredentials):
            for source in ("password_env", "password_file"):
                if out[source] is None:
                    del out[source]
                else:
                    out.pop("password", None)
        if isinstance(value, ClusterConfig):
            for routing in ("port_routing", "sni_routing"):
                if out[routing] is None:
                    del out[routing]
        return out
    return value
