"""TLS details of both sides: a client certificate towards a cluster that requires one (mTLS),
and the TLS handshake timeout on an SNI listener."""

from __future__ import annotations

import socket
import ssl
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from testbed.clients import consume, produce
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, free_port, free_port_block, port_routing_config, read_frame

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def kafka_mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster.start(tmp_path_factory.mktemp("kafka-mtls"), brokers=1,
                                 security=("PLAINTEXT", "SSL"),
                                 config={"listener.name.ssl.ssl.client.auth": "required"})
    try:
        yield cluster
    finally:
        cluster.stop()


def _config(cluster: KafkaCluster, base: int, with_client_cert: bool) -> dict[str, object]:
    tls_dir = Path(str(cluster.ca_file)).parent
    upstream_tls: dict[str, object] = {"ca_file": cluster.ca_file}
    if with_client_cert:
        # a certificate the cluster's CA signed (the test CA issues one for the brokers, with
        # the clientAuth usage): the proxy presents it to the cluster
        upstream_tls |= {"cert_file": str(tls_dir / "broker-cert.pem"),
                         "key_file": str(tls_dir / "broker-key.pem")}
    node = cluster.node_ids[0]
    return port_routing_config(upstream=cluster.bootstrap("SSL").split(","), bind_host=EDGE_HOST,
                               base=base, node_ids=(node, node + 1), upstream_tls=upstream_tls)


def test_client_certificate_to_a_cluster_that_requires_one(kafka_mtls: KafkaCluster,
                                                           tmp_path: Path) -> None:
    topic = f"mtls-{uuid.uuid4().hex[:6]}"
    kafka_mtls.create_topic(topic)
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    base = free_port_block(4, EDGE_HOST)
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    with EdgeProcess(_config(kafka_mtls, base, True), tmp_path / "with") as proc:
        produce("kafka-python", f"{EDGE_HOST}:{base}", topic, sent)
        assert sorted(consume("kafka-python", f"{EDGE_HOST}:{base}", topic, 50)) == sorted(sent)
        assert proc.metric("kafka_edge_connections_total") > 0
    base = free_port_block(4, EDGE_HOST)
    with EdgeProcess(_config(kafka_mtls, base, False), tmp_path / "without") as proc:
        with socket.create_connection((EDGE_HOST, base), timeout=10) as s:
            s.sendall(b"\x00\x00\x00\x0b\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01x")
            s.settimeout(15)
            assert s.recv(1) == b""  # the cluster refused the proxy: the client is closed
        deadline = time.monotonic() + 10
        while "broker connection lost" not in proc.log() and "cannot reach upstream" \
                not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "broker connection lost" in proc.log() or "cannot reach upstream" in proc.log()


def test_sni_listener_handshake_timeout(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("*.timeout.example.com")
    cert.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
    (tmp_path / "edge.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    port = free_port(EDGE_HOST)
    config = {
        "listeners": [{"name": "edge", "bind": f"{EDGE_HOST}:{port}", "tls": {
            "handshake_timeout_s": 1,
            "certificates": [{"cert_file": str(tmp_path / "edge.pem"),
                              "key_file": str(tmp_path / "edge.key")}]}}],
        "clusters": [{"name": "t", "upstream": {"bootstrap_servers": ["127.0.0.1:1"]},
                      "sni_routing": {"listener": "edge",
                                      "bootstrap_host": "boot.timeout.example.com",
                                      "broker_host_pattern": "b-{node}.timeout.example.com"}}],
    }
    with EdgeProcess(config, tmp_path) as proc:
        started = time.monotonic()
        with socket.create_connection((EDGE_HOST, port), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(1) == b""  # silent client: closed after the handshake timeout
        assert 0.8 <= time.monotonic() - started < 5
        assert "no TLS ClientHello before the handshake timeout" in proc.log()


def test_client_without_sni_goes_to_the_default_cluster(kafka3: KafkaCluster,
                                                        tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert = ca.issue_cert("*.default.example.com", EDGE_HOST)
    cert.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
    (tmp_path / "edge.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    port = free_port(EDGE_HOST)
    config = {
        "listeners": [{"name": "edge", "bind": f"{EDGE_HOST}:{port}", "default_cluster": "d",
                       "tls": {"certificates": [{"cert_file": str(tmp_path / "edge.pem"),
                                                 "key_file": str(tmp_path / "edge.key")}]}}],
        "clusters": [{"name": "d",
                      "upstream": {"bootstrap_servers": kafka3.bootstrap().split(",")},
                      "sni_routing": {"listener": "edge",
                                      "bootstrap_host": "boot.default.example.com",
                                      "broker_host_pattern": "b-{node}.default.example.com"}}],
    }
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    ctx.check_hostname = False  # no server name is sent, so none can be checked
    with EdgeProcess(config, tmp_path), \
            socket.create_connection((EDGE_HOST, port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=None) as s:
        payload = struct.pack(">hhih", 18, 0, 5, 1) + b"n"
        s.sendall(struct.pack(">i", len(payload)) + payload)
        assert struct.unpack_from(">i", read_frame(s))[0] == 5
