"""Advice about a valid configuration: what it leaves to chance, said where it matters.

A configuration can be valid and still leave a fresh instance unable to serve a broker: an
instance learns broker addresses from the metadata it relays, and before it has relayed any it
asks the cluster itself (discovery). When the cluster's listener requires SASL, that request is
refused unless ``upstream.discovery.sasl`` gives the proxy its own credentials; with
``upstream.broker_address_pattern`` (or ``upstream.broker_name_pattern``, with SNI routing)
the instance needs no metadata at all. Whether the listener
requires SASL is not in the file, so ``kafka-edge check`` can only say what is missing and
``kafka-edge doctor`` asks the cluster. The relay's log line says the same when discovery fails.
"""

from __future__ import annotations

from kafka_edge.config.model import ClusterConfig, Config

DISCOVERY_FIX = (
    "set upstream.discovery.sasl (PLAIN or SCRAM credentials for the proxy's own metadata "
    "requests), upstream.broker_address_pattern (each broker's upstream address from its "
    "node id, e.g. \"b-{node}.my-cluster.example:9096\") or, with SNI routing, "
    "upstream.broker_name_pattern (each broker's upstream name from the number in its name, "
    "as MSK Serverless names them)"
)


def discovery_unassisted(cluster: ClusterConfig) -> bool:
    """Neither discovery credentials nor a broker address or name pattern: a fresh instance can
    find a broker only by an unauthenticated Metadata request."""
    up = cluster.upstream
    return (up.discovery.sasl is None and up.broker_address_pattern is None
            and up.broker_name_pattern is None)


def config_warnings(config: Config) -> list[str]:
    """What ``kafka-edge check`` warns about (the configuration is valid all the same)."""
    warnings = []
    for i, cluster in enumerate(config.clusters):
        if discovery_unassisted(cluster):
            warnings.append(
                f'clusters[{i}] ("{cluster.name}"): none of upstream.discovery.sasl, '
                "upstream.broker_address_pattern and upstream.broker_name_pattern is set. If "
                "the cluster's listener requires authentication (SASL), a freshly started "
                "instance cannot find a broker whose "
                "address it has not yet seen in relayed metadata, and refuses a client's first "
                "connection to it (behind a load balancer, any client whose broker connection "
                f"lands on such an instance): {DISCOVERY_FIX}. `kafka-edge doctor` asks the "
                "cluster whether it answers Metadata without authentication.")
    return warnings
