"""`kafka-edge doctor` for a cluster that maps broker names to names
(``upstream.broker_name_pattern``): the pattern against the metadata, and the edge names it
checks are those the names map to, not names by node id."""

from __future__ import annotations

from kafka_edge.config import parse_config
from kafka_edge.doctor.probes import MetadataResult
from kafka_edge.doctor.report import Status
from kafka_edge.doctor.run import _edge_hosts, _pattern_findings
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.routing.routes import Routes

SUFFIX = "-a1b2.c1.kafka-serverless.us-east-1.amazonaws.com"
PATTERN = f"b{{n}}{SUFFIX}:9098"


def _runtime() -> ClusterRuntime:
    config = parse_config({
        "listeners": [{"name": "edge", "bind": "0.0.0.0:9098", "tls": {"certificates": [
            {"cert_file": "c.pem", "key_file": "c.key"}]}}],
        "clusters": [{"name": "orders",
                      "upstream": {"bootstrap_servers": [f"boot{SUFFIX}:9098"],
                                   "broker_name_pattern": PATTERN},
                      "sni_routing": {"listener": "edge",
                                      "bootstrap_host": "boot.orders.example.com",
                                      "broker_host_pattern": "b-{n}.orders.example.com"}}],
    }, names_only=True)
    return ClusterRuntime(config.clusters[0], Metrics(), Routes(config))


def _meta(brokers: dict[int, tuple[str, int]]) -> MetadataResult:
    return MetadataResult(via=(f"boot{SUFFIX}", 9098), brokers=brokers, error=None)


def test_a_pattern_that_maps_every_broker_passes() -> None:
    rt = _runtime()
    [row] = _pattern_findings(rt, _meta({1: (f"b97{SUFFIX}", 9098), 2: (f"b12{SUFFIX}", 9098)}))
    assert (row.check, row.subject, row.status) == ("name-pattern", PATTERN, Status.PASS)
    hosts, port, unrouted = _edge_hosts(rt, {1: (f"b97{SUFFIX}", 9098)})
    assert hosts == {"boot.orders.example.com": ["bootstrap"],
                     "b-97.orders.example.com": ["broker 1"]}
    assert (port, unrouted) == (9098, [])


def test_a_broker_outside_the_pattern_or_on_another_port_fails() -> None:
    rt = _runtime()
    [row] = _pattern_findings(rt, _meta({1: (f"b97{SUFFIX}", 9098), 2: ("x.example", 9098),
                                         3: (f"b5{SUFFIX}", 9096)}))
    assert row.status is Status.FAIL
    assert "node 2: metadata x.example:9098, pattern none" in row.detail
    assert f"node 3: metadata b5{SUFFIX}:9096, pattern b5{SUFFIX}:9098" in row.detail
    _, _, unrouted = _edge_hosts(rt, {2: ("x.example", 9098)})
    assert [u.status for u in unrouted] == [Status.FAIL]
    assert "does not match upstream.broker_name_pattern" in unrouted[0].detail
