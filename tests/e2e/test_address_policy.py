"""The upstream address policy against real brokers: addresses outside it are never learned or
dialled, with a log line naming the key to widen; inside it, everything works."""

from __future__ import annotations

import socket
import struct
import uuid
from pathlib import Path

import pytest
from testbed.clients import consume, produce
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, free_port_block, port_routing_config, read_frame

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"


def _metadata_v1(sock: socket.socket, corr: int) -> bytes:
    payload = struct.pack(">hhih", 3, 1, corr, 1) + b"p" + struct.pack(">i", 0)
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    return read_frame(sock)


def _config(kafka3: KafkaCluster, base: int, allowed: list[str] | None) -> dict[str, object]:
    # bootstrap by the name "localhost": the brokers advertise 127.0.0.1, which the default
    # policy (the bootstrap hosts, and a parent domain "localhost" does not have) leaves out
    servers = [s.replace("127.0.0.1", "localhost") for s in kafka3.bootstrap().split(",")]
    config = port_routing_config(upstream=servers, bind_host=EDGE_HOST, base=base)
    upstream = config["clusters"][0]["upstream"]
    if allowed is not None:
        upstream["allowed_hosts"] = allowed
    return config


def test_addresses_outside_the_policy_are_not_learned_or_dialled(
        kafka3: KafkaCluster, tmp_path: Path) -> None:
    assert all(s.startswith("127.0.0.1:") for s in kafka3.bootstrap().split(","))
    base = free_port_block(10, EDGE_HOST)
    with EdgeProcess(_config(kafka3, base, None), tmp_path) as proc:
        with socket.create_connection((EDGE_HOST, base), timeout=10) as s:
            answer = _metadata_v1(s, 1)
        assert b"127.0.0.1" not in answer and EDGE_HOST.encode() in answer  # still rewritten
        assert proc.metric("kafka_edge_upstream_addresses_refused_total") >= 3
        log = proc.log()
        assert "outside the upstream address policy" in log and "allowed_hosts" in log
        assert log.count("named broker address 127.0.0.1:") == len(kafka3.node_ids)  # once each
        # a broker port: nothing learned, discovery refused too, so the client is closed
        node = kafka3.node_ids[0]
        with socket.create_connection((EDGE_HOST, base + 1 + node), timeout=10) as s:
            s.settimeout(10)
            try:
                _metadata_v1(s, 2)
                reached = True
            except (ConnectionError, OSError):
                reached = False
        assert not reached
        assert proc.metric("kafka_edge_known_brokers") == 0


def test_allowed_hosts_widens_the_policy(kafka3: KafkaCluster, tmp_path: Path) -> None:
    base = free_port_block(10, EDGE_HOST)
    config = _config(kafka3, base, ["127.0.0.0/8"])
    with EdgeProcess(config, tmp_path) as proc:
        topic = f"policy-{uuid.uuid4().hex[:6]}"
        kafka3.create_topic(topic, partitions=3, replication_factor=3)
        sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)]
        bootstrap = f"{EDGE_HOST}:{base}"
        produce("kafka-python", bootstrap, topic, sent)
        assert sorted(consume("kafka-python", bootstrap, topic, len(sent))) == sorted(sent)
        assert proc.metric("kafka_edge_upstream_addresses_refused_total") == 0
        assert proc.metric("kafka_edge_known_brokers") == len(kafka3.node_ids)
