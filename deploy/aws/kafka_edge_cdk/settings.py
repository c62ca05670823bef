"""What the stacks are built for: a kafka-edge configuration (CDK users) or CloudFormation
parameters (the shipped templates).

With a settings file (``cdk synth -c settings=FILE``), the app reads the kafka-edge configuration
it names and builds the stacks for exactly that configuration: one NLB listener per port its
SNI clusters are advertised on, one egress rule per cluster network, one private hosted zone
per domain, a region TXT record for each cluster with ``aws_region``. Without one, it builds
the parameterised templates shipped in deploy/aws/: the configuration is a parameter, one
listener port, one cluster network, up to :data:`DOMAIN_SLOTS` domains.

Settings file (YAML)::

    kafka_edge_config: kafka-edge.yaml      # relative to the settings file
    upstream_cidrs:                         # where each cluster's brokers are (egress rules)
      orders: 10.20.0.0/16
      payments: 10.30.0.0/16
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from kafka_edge.config import Config, load_config
from kafka_edge.routing.dns import domain_of

DOMAIN_SLOTS = 3  # domains the shipped client template takes (DomainName1..3)
MAX_NLB_LISTENERS = 50


class SettingsError(ValueError):
    """The settings file or the kafka-edge configuration cannot be deployed by the stacks."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One NLB listener: the port clients dial and the port the instances bind (numbers, or
    CloudFormation parameters' tokens)."""

    port: float
    target_port: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterNetwork:
    """Egress rules of the edge: a cluster's network and its brokers' port ranges."""

    name: str
    cidr: str
    ports: tuple[tuple[float, float], ...]  # (from, to)


@dataclass(frozen=True, slots=True, kw_only=True)
class Zone:
    """A private hosted zone of the client stack: ``*.name`` (or the apex alone, for a
    bootstrap name outside every broker domain) pointing at the endpoint."""

    name: str
    wildcard: bool
    region: str | None  # the TXT record _kafka-region.<name>, for MSK IAM clients


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """The stacks' shape from a kafka-edge configuration."""

    config_text: str
    routes: tuple[Route, ...]
    networks: tuple[ClusterNetwork, ...]
    zones: tuple[Zone, ...]


def load_settings(path: Path) -> Deployment:
    """Read a settings file and the kafka-edge configuration it names; SettingsError on what
    the stacks cannot deploy (every problem at once)."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or set(data) - {"kafka_edge_config", "upstream_cidrs"}:
        raise SettingsError(f"{path}: a mapping with kafka_edge_config and upstream_cidrs")
    config_path = path.parent / str(data.get("kafka_edge_config", ""))
    cidrs = data.get("upstream_cidrs") or {}
    if not isinstance(cidrs, dict):
        raise SettingsError(f"{path}: upstream_cidrs maps cluster names to CIDRs")
    # names only: the certificates are on the instances (from Secrets Manager), not here
    config = load_config(config_path, names_only=True)
    return deployment(config, config_path.read_text(),
                      {str(k): str(v) for k, v in cidrs.items()})


def deployment(config: Config, config_text: str, cidrs: dict[str, str]) -> Deployment:
    problems: list[str] = []
    routes: dict[int, int] = {}
    for cluster in config.clusters:
        sni = cluster.sni_routing
        if sni is None:
            problems.append(f"cluster {cluster.name}: port_routing; the AWS stacks put one "
                            "NLB listener per port and serve SNI routing (sni_routing)")
            continue
        bind_port = config.listener(sni.listener).bind_address.port
        if routes.setdefault(sni.advertised_port, bind_port) != bind_port:
            problems.append(f"cluster {cluster.name}: advertised port {sni.advertised_port} "
                            "already leads to another listener")
    if len(routes) > MAX_NLB_LISTENERS:
        problems.append(f"{len(routes)} ports: a network load balancer has at most "
                        f"{MAX_NLB_LISTENERS} listeners")
    networks = []
    for cluster in config.clusters:
        cidr = cidrs.get(cluster.name)
        try:
            ipaddress.ip_network(cidr or "")
        except ValueError:
            problems.append(f"upstream_cidrs.{cluster.name}: the CIDR of its brokers' network "
                            f"(got {cidr!r})")
            continue
        ports = {a.port for a in cluster.upstream.bootstrap_addresses}
        if cluster.upstream.broker_address_pattern:
            ports.add(int(cluster.upstream.broker_address_pattern.rpartition(":")[2]))
        networks.append(ClusterNetwork(name=cluster.name, cidr=str(cidr),
                                       ports=tuple((p, p) for p in sorted(ports))))
    unknown = sorted(set(cidrs) - {c.name for c in config.clusters})
    if unknown:
        problems.append(f"upstream_cidrs names no cluster of the configuration: {unknown}")
    if problems:
        raise SettingsError("\n".join(problems))
    return Deployment(config_text=config_text,
                      routes=tuple(Route(port=p, target_port=t) for p, t in sorted(routes.items())),
                      networks=tuple(networks), zones=zones(config))


def zones(config: Config) -> tuple[Zone, ...]:
    """One zone per broker domain (a wildcard), one per bootstrap name outside them (its apex);
    the region of a cluster with ``aws_region`` on its broker domain."""
    found: dict[str, Zone] = {}
    for cluster in config.clusters:
        sni = cluster.sni_routing
        if sni is None:
            continue
        domain = domain_of(sni.broker_host_pattern)
        zone = found.get(domain)
        if zone is not None and zone.region != cluster.aws_region:
            raise SettingsError(f"domain {domain}: clusters with different aws_region")
        found[domain] = Zone(name=domain, wildcard=True, region=cluster.aws_region)
    for cluster in config.clusters:
        sni = cluster.sni_routing
        if sni is not None and not any(sni.bootstrap_host.endswith("." + d) for d in found):
            found.setdefault(sni.bootstrap_host,
                             Zone(name=sni.bootstrap_host, wildcard=False, region=None))
    return tuple(found.values())
