"""Compatibility subset against Apache Kafka 3.9.1 brokers (older ApiVersions, still in use)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from testbed.clients import ClientSecurity, consume, produce
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, free_port_block, port_routing_config

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
VERSION = "3.9.1"


@pytest.fixture(scope="module")
def kafka39(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster.start(tmp_path_factory.mktemp("kafka39"), brokers=1,
                                 kafka_version=VERSION, security=("PLAINTEXT", "SASL_SSL"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.parametrize("client", ["java", "confluent", "kafka-python", "kcat"])
def test_clients_through_the_proxy_to_kafka_39(client: str, kafka39: KafkaCluster,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    base = free_port_block(4, EDGE_HOST)
    node = kafka39.node_ids[0]
    config = port_routing_config(upstream=kafka39.bootstrap("SASL_SSL").split(","),
                                 bind_host=EDGE_HOST, base=base, node_ids=(node, node + 1),
                                 upstream_tls={"ca_file": kafka39.ca_file})
    # kcat's librdkafka 2.0.2 does SCRAM fine against 3.x brokers; PLAIN for the others
    mechanism = "SCRAM-SHA-512" if client == "kcat" else "PLAIN"
    security = ClientSecurity(protocol="SASL_PLAINTEXT", mechanism=mechanism, username="alice",
                              password=kafka39.users["alice"])
    topic = f"k39-{client}-{uuid.uuid4().hex[:6]}"
    kafka39.create_topic(topic, partitions=2, replication_factor=1)
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(200)]
    with EdgeProcess(config, tmp_path_factory.mktemp(f"edge39-{client}")):
        bootstrap = f"{EDGE_HOST}:{base}"
        extra = {"KAFKA_TESTBED_KCAT_SCRAM": "1"} if client == "kcat" else None
        with pytest.MonkeyPatch.context() as mp:
            for k, v in (extra or {}).items():
                mp.setenv(k, v)
            produce(client, bootstrap, topic, sent, security)
            got = consume(client, bootstrap, topic, len(sent), security, group=f"g-{topic}")
        assert sorted(got) == sorted(sent)
