"""kafka-edge in port-per-broker mode in front of the real 3-broker cluster, with real clients."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.clients import CLIENTS, ClientSecurity, consume, produce, produce_transactional
from testbed.cluster import KafkaCluster, java_classpath

from kafka_edge.protocol.addresses import MAX_PARSED_VERSION
from kafka_edge.protocol.messages import API_KEYS

from .edge import EdgeProcess, free_port_block, port_routing_config, read_frame

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"  # the upstream brokers live on 127.0.0.1: any "127.0.0.1" seen is a leak


def records(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    return [(f"key-{tag}-{i}".encode(), f"value-{tag}-{i}-{'x' * (i % 50)}".encode())
            for i in range(n)]


@pytest.fixture(scope="module")
def edge_plain(kafka3: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[EdgeProcess, str]]:
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap("PLAINTEXT").split(","),
                                 bind_host=EDGE_HOST, base=base, node_ids=(0, 7))
    proc = EdgeProcess(config, tmp_path_factory.mktemp("edge-plain")).start()
    try:
        yield proc, f"{EDGE_HOST}:{base}"
    finally:
        proc.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_client_produces_and_consumes_in_a_group_through_the_proxy(
        client: str, kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    proc, bootstrap = edge_plain
    topic = f"port-{client}-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    sent = records(300, client)
    produce(client, bootstrap, topic, sent)
    got = consume(client, bootstrap, topic, len(sent), group=f"g-{topic}")
    assert sorted(got) == sorted(sent)
    assert proc.metric("kafka_edge_connections_total", target="broker") > 0


def test_java_transactional_producer_through_the_proxy(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    _, bootstrap = edge_plain
    topic = f"port-tx-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    committed = records(200, "tx")
    produce_transactional(bootstrap, topic, committed, batches=4)
    produce_transactional(bootstrap, topic, records(50, "aborted"), commit=False)
    got = consume("java", bootstrap, topic, len(committed),
                  extra={"isolation.level": "read_committed"})
    assert sorted(got) == sorted(committed)


def _api_versions(address: tuple[str, int], version: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """Send ApiVersions at ``version``; return (error, {key: (min, max)})."""
    cid = b"probe"
    payload = struct.pack(">hhih", 18, version, 7, len(cid)) + cid
    if version >= 3:  # flexible: header tags, then ClientSoftwareName/Version + body tags
        payload += b"\x00" + b"\x06probe" + b"\x041.0" + b"\x00"
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        data = read_frame(s)
    corr, error = struct.unpack_from(">ih", data)
    assert corr == 7
    keys: dict[int, tuple[int, int]] = {}
    if error == 0 and version >= 3:
        n, pos = data[6] - 1, 7  # compact array length (< 128 keys)
        for _ in range(n):
            key, lo, hi = struct.unpack_from(">hhh", data, pos)
            keys[key] = (lo, hi)
            pos += 7  # + empty tagged fields
    else:
        (n,) = struct.unpack_from(">i", data, 6)
        for i in range(n):
            key, lo, hi = struct.unpack_from(">hhh", data, 10 + 6 * i)
            keys[key] = (lo, hi)
    return error, keys


def test_api_versions_never_offer_what_the_proxy_cannot_parse(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    _, bootstrap = edge_plain
    host, port = bootstrap.split(":")
    error, via_edge = _api_versions((host, int(port)), 3)
    direct_host, direct_port = kafka3.bootstrap().split(",")[0].split(":")
    _, direct = _api_versions((direct_host, int(direct_port)), 3)
    assert error == 0 and via_edge
    for key, (lo, hi) in via_edge.items():
        assert key in API_KEYS, f"unknown api key {key} offered"
        assert hi <= API_KEYS[key].max_version
        assert hi <= MAX_PARSED_VERSION.get(key, hi)
        # the broker's minimum is kept (Kafka 4 still advertises Produce v0 for old clients);
        # the maximum is capped at what the proxy knows
        assert (lo, hi) == (direct[key][0], min(direct[key][1], API_KEYS[key].max_version))
    # a version above what the proxy knows is answered by the proxy itself, UNSUPPORTED_VERSION
    error, offered = _api_versions((host, int(port)), API_KEYS[18].max_version + 1)
    assert error == 35 and offered[18][1] == API_KEYS[18].max_version


def test_fresh_instance_serves_a_broker_port_first(
        kafka3: KafkaCluster, tmp_path: Path) -> None:
    """No bootstrap through this instance: it must learn node N's address from the cluster."""
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base, node_ids=(0, 7))
    node = kafka3.node_ids[-1]
    with EdgeProcess(config, tmp_path) as proc:
        out = subprocess.run(["kcat", "-b", f"{EDGE_HOST}:{base + 1 + node}", "-L", "-m", "15"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert f"from broker {node}: {EDGE_HOST}:{base + 1 + node}" in out.stdout
        assert "127.0.0.1" not in out.stdout
        assert proc.metric("kafka_edge_discovery_requests_total", outcome="ok") >= 1


def test_unknown_node_is_refused_and_nothing_else_is_dialled(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    proc, bootstrap = edge_plain
    host, port = bootstrap.split(":")
    missing_node = 7  # in the configured range, but no such broker
    with socket.create_connection((host, int(port) + 1 + missing_node), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(1) == b""  # closed without relaying anything
    deadline = time.monotonic() + 5
    while "broker node 7 is not in cluster" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "broker node 7 is not in cluster test's metadata" in proc.log()
    assert proc.metric("kafka_edge_refused_connections_total", reason="unknown_node") >= 1
    assert proc.metric("kafka_edge_upstream_connect_failures_total", reason="unknown_node") >= 1


def test_malformed_frame_closes_only_that_connection(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    proc, bootstrap = edge_plain
    host, port = bootstrap.split(":")
    healthy = socket.create_connection((host, int(port)), timeout=10)
    try:
        assert _api_versions((host, int(port)), 3)[0] == 0
        with socket.create_connection((host, int(port)), timeout=10) as bad:
            bad.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)
            assert bad.recv(1) == b""
        assert "a TLS handshake arrived on a plaintext Kafka port" in proc.log()
        with socket.create_connection((host, int(port)), timeout=10) as bad:
            bad.sendall(struct.pack(">i", 0x7FFFFFF0) + b"\x00" * 16)
            assert bad.recv(1) == b""
        assert "out of range" in proc.log()
        # the connection opened before the bad ones still works
        cid = b"ok"
        payload = struct.pack(">hhih", 18, 0, 9, len(cid)) + cid
        healthy.sendall(struct.pack(">i", len(payload)) + payload)
        assert struct.unpack_from(">i", read_frame(healthy))[0] == 9
    finally:
        healthy.close()


def test_kafka_admin_tool_lists_only_edge_addresses(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    """DescribeCluster (Admin API) through the proxy: the Java admin tool sees only the edge."""
    _, bootstrap = edge_plain
    out = subprocess.run(
        ["java", "-cp", java_classpath(kafka3.kafka_version),
         "org.apache.kafka.tools.ClusterTool", "list-endpoints", "--bootstrap-server", bootstrap],
        capture_output=True, text=True, timeout=120, check=False)
    if "list-endpoints" in out.stderr and out.returncode != 0:
        out = subprocess.run(
            ["java", "-cp", java_classpath(kafka3.kafka_version),
             "org.apache.kafka.tools.BrokerApiVersionsCommand", "--bootstrap-server", bootstrap],
            capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert EDGE_HOST in out.stdout
    assert "127.0.0.1" not in out.stdout


def test_client_security_default_is_plaintext() -> None:
    assert ClientSecurity().protocol == "PLAINTEXT"


def test_pattern_mode_maps_node_ids_without_discovery(kafka1: KafkaCluster,
                                                      tmp_path: Path) -> None:
    """broker_address_pattern (Amazon MSK style names): the upstream of node N comes from the
    pattern alone. A fresh instance's first connection is to a broker port; no discovery."""
    node = kafka1.node_ids[0]
    real_port = kafka1.port(node)
    base = free_port_block(4, EDGE_HOST)
    config = port_routing_config(upstream=kafka1.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base, node_ids=(node, node + 1))
    # "127.0.0.{node}" stands for b-{node}.<cluster>.kafka.<region>.amazonaws.com: node 1 -> the
    # broker's real address on loopback, derived by substitution only
    config["clusters"][0]["upstream"]["broker_address_pattern"] = f"127.0.0.{{node}}:{real_port}"
    topic = f"pattern-{uuid.uuid4().hex[:6]}"
    kafka1.create_topic(topic, partitions=1, replication_factor=1)
    sent = records(50, "pattern")
    with EdgeProcess(config, tmp_path) as proc:
        produce("kafka-python", f"{EDGE_HOST}:{base + 1}", topic, sent)  # node_id_min's port
        assert sorted(consume("confluent", f"{EDGE_HOST}:{base}", topic, 50)) == sorted(sent)
        assert proc.metric("kafka_edge_discovery_requests_total") == 0


def test_back_pressure_keeps_memory_bounded_for_a_client_that_does_not_read(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    """A client pipelines 60,000 requests and reads nothing for a while: the proxy must stop
    reading from the broker (and the broker from the proxy) instead of buffering every answer;
    afterwards every answer arrives, in order."""
    proc, bootstrap = edge_plain
    assert proc.proc is not None
    host, port = bootstrap.split(":")
    n = 60_000
    cid = b"bp"
    def api_versions_v3(corr: int) -> bytes:
        payload = (struct.pack(">hhih", 18, 3, corr, len(cid)) + cid
                   + b"\x00" + b"\x03bp" + b"\x021" + b"\x00")  # tags, name, version, tags
        return struct.pack(">i", len(payload)) + payload

    frames = b"".join(api_versions_v3(i) for i in range(n))
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        rss_before = _rss_kib(proc.proc.pid)
        sender = threading.Thread(target=s.sendall, args=(frames,), daemon=True)
        sender.start()
        time.sleep(6)
        rss_stalled = _rss_kib(proc.proc.pid)
        # each answer is ~600 bytes: ~36 MB of answers would sit in the proxy without flow control
        assert rss_stalled - rss_before < 16 * 1024, (rss_before, rss_stalled)
        for i in range(n):
            assert struct.unpack_from(">i", read_frame(s))[0] == i
        sender.join(30)


def test_large_answers_to_a_slow_small_window_client_arrive_intact(
        kafka3: KafkaCluster, edge_plain: tuple[EdgeProcess, str]) -> None:
    """Fetch answers of up to 2 MiB stream through the proxy (a view of its shared read buffer
    per read) to a consumer with a 4 KiB receive buffer: every record arrives byte for byte
    (the Java consumer checks each batch's CRC, and the values are compared here). Views left
    queued for a stalled peer are covered deterministically in tests/unit/relay/
    test_read_buffer.py."""
    _, bootstrap = edge_plain
    topic = f"port-window-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    sent = [(f"k{i}".encode(), (f"{i:06d}" + uuid.uuid4().hex * 64).encode())
            for i in range(3000)]  # ~6 MB in ~2 KiB values
    produce("java", kafka3.bootstrap("PLAINTEXT"), topic, sent)
    got = consume("java", bootstrap, topic, len(sent),
                  extra={"receive.buffer.bytes": "4096", "max.partition.fetch.bytes": "2097152",
                         "fetch.min.bytes": "1000000", "fetch.max.wait.ms": "200"})
    assert sorted(got) == sorted(sent)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
