"""`kafka-edge dns`: the DNS records a client network needs, as zone-file lines.

For every cluster routed by SNI: one wildcard record for its domain (the bootstrap name and
every broker name fall under it) pointing at the edge endpoint (the load balancer's DNS name).
Where the cluster's AWS region is configured, a TXT record holding the region, for MSK IAM
clients: a custom name does not contain the region, and the AWS MSK IAM library's Route 53
region provider (``awsMskRegionProvider``, aws-msk-iam-auth 2.3.6+) can read it from DNS. The
record sits at an explicit name (``_kafka-region.<domain>``) that the client's JAAS
configuration points the provider at with its ``host`` parameter; an explicit name wins over
the wildcard. Clients can instead set ``AWS_REGION``.
"""

from __future__ import annotations

from kafka_edge.config import Config
from kafka_edge.config.names import placeholder_of


def domain_of(pattern: str) -> str:
    """The domain under which a broker host pattern lives: ``b-{node}.orders.x`` -> ``orders.x``."""
    labels = pattern.split(".")
    while labels and placeholder_of(pattern) in labels[0]:
        labels = labels[1:]
    return ".".join(labels)


def dns_records(config: Config, *, target: str | None = None) -> str:
    endpoint = (target or "EDGE-ENDPOINT.example.").rstrip(".") + "."
    lines = [
        "; DNS records for kafka-edge client networks (zone-file syntax).",
        f"; {endpoint} is the edge endpoint: the load balancer's DNS name"
        + ("" if target else " (pass --target NAME)") + ".",
    ]
    for cluster in config.clusters:
        sni = cluster.sni_routing
        if sni is None:
            pr = cluster.port_routing
            assert pr is not None
            lines.append(f"; cluster {cluster.name}: port-per-broker mode; clients use "
                         f"{pr.advertised_host} (ports {pr.bootstrap_port}, "
                         f"{pr.advertised_port_base}..): point that name at the endpoint")
            continue
        domain = domain_of(sni.broker_host_pattern)
        lines.append(f"; cluster {cluster.name}: bootstrap {sni.bootstrap_host}:"
                     f"{sni.advertised_port}, brokers {sni.broker_host_pattern}")
        lines.append(f"*.{domain}. 300 IN CNAME {endpoint}")
        if not sni.bootstrap_host.endswith("." + domain):
            lines.append(f"{sni.bootstrap_host}. 300 IN CNAME {endpoint}")
        if cluster.aws_region:
            lines.append(f'_kafka-region.{domain}. 300 IN TXT "{cluster.aws_region}"')
            lines.append(
                f"; MSK IAM clients: awsMskRegionProvider=\"software.amazon.msk.auth.iam."
                f"internals.region.Route53RegionProvider?host=_kafka-region.{domain}\" "
                f"in sasl.jaas.config, or AWS_REGION={cluster.aws_region}")
    return "\n".join(lines)
