"""SASL passes through untouched (v1, v0 raw tokens, re-authentication), TLS on both sides, and
no upstream address ever reaches a client, even while partition leaders move (KIP-951)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from testbed.clients import ClientSecurity, ClientUnsupported, consume, produce
from testbed.cluster import KafkaCluster, java_classpath

from kafka_edge.protocol.scram import ScramClient

from .edge import EdgeProcess, RecordingRelay, free_port_block, port_routing_config, read_frame

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
LB_HOST = "127.0.0.3"
UPSTREAM_HOST = b"127.0.0.1"


def records(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    return [(f"k-{tag}-{i}".encode(), f"v-{tag}-{i}".encode()) for i in range(n)]


@pytest.fixture(scope="module")
def edge_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for the edge's address; returns (ca, cert, key)."""
    d = tmp_path_factory.mktemp("edge-ca")
    ca = trustme.CA()
    cert = ca.issue_cert(EDGE_HOST, LB_HOST, "localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    cert.private_key_pem.write_to_path(str(d / "edge.key"))
    cert.cert_chain_pems[0].write_to_path(str(d / "edge.pem"))
    for pem in cert.cert_chain_pems[1:]:
        with (d / "edge.pem").open("ab") as f:
            f.write(pem.bytes())
    return d / "ca.pem", d / "edge.pem", d / "edge.key"


def _sasl_edge_config(kafka3: KafkaCluster, cert: Path, key: Path, base: int) -> dict[str, Any]:
    config = port_routing_config(
        upstream=kafka3.bootstrap("SASL_SSL").split(","), bind_host=EDGE_HOST, base=base,
        upstream_tls={"ca_file": kafka3.ca_file})
    config["clusters"][0]["port_routing"]["tls"] = {
        "certificates": [{"cert_file": str(cert), "key_file": str(key)}]}
    config["clusters"][0]["upstream"]["discovery"] = {"sasl": {
        "mechanism": "SCRAM-SHA-512", "username": "admin", "password_env": "DISCOVERY_PASSWORD"}}
    return config


@pytest.fixture(scope="module")
def edge_sasl(kafka3: KafkaCluster, edge_ca: tuple[Path, Path, Path],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, str]]:
    """TLS client->edge, TLS edge->cluster's SASL_SSL listener; SASL end to end."""
    _, cert, key = edge_ca
    base = free_port_block(10, EDGE_HOST)
    proc = EdgeProcess(_sasl_edge_config(kafka3, cert, key, base),
                       tmp_path_factory.mktemp("edge-sasl"),
                       env={"DISCOVERY_PASSWORD": kafka3.users["admin"]}).start()
    try:
        yield proc, f"{EDGE_HOST}:{base}"
    finally:
        proc.stop()


def _security(kafka3: KafkaCluster, ca: Path, mechanism: str) -> ClientSecurity:
    return ClientSecurity(protocol="SASL_SSL", ca_file=str(ca), mechanism=mechanism,
                          username="alice", password=kafka3.users["alice"])


@pytest.mark.parametrize(("client", "mechanism"), [
    ("java", "SCRAM-SHA-512"), ("confluent", "SCRAM-SHA-512"), ("kafka-python", "SCRAM-SHA-512"),
    ("aiokafka", "SCRAM-SHA-512"),
    ("java", "PLAIN"), ("confluent", "PLAIN"), ("kafka-python", "PLAIN"), ("kcat", "PLAIN"),
    ("java", "OAUTHBEARER"), ("confluent", "OAUTHBEARER"), ("kafka-python", "OAUTHBEARER"),
])
def test_sasl_ssl_through_the_proxy(client: str, mechanism: str, kafka3: KafkaCluster,
                                    edge_ca: tuple[Path, Path, Path],
                                    edge_sasl: tuple[EdgeProcess, str]) -> None:
    _, bootstrap = edge_sasl
    topic = f"sasl-{client}-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=2, replication_factor=3)
    security = _security(kafka3, edge_ca[0], mechanism)
    sent = records(200, client)
    try:
        produce(client, bootstrap, topic, sent, security)
    except ClientUnsupported as exc:
        pytest.skip(str(exc))
    got = consume(client, bootstrap, topic, len(sent), security, group=f"g-{topic}")
    assert sorted(got) == sorted(sent)


def test_fresh_instance_discovers_brokers_with_its_own_scram_credentials(
        kafka3: KafkaCluster, edge_ca: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A new instance whose first client connection is to a broker port: it must learn that
    broker's address from the cluster, authenticating with its own discovery credentials."""
    _, cert, key = edge_ca
    base = free_port_block(10, EDGE_HOST)
    node = kafka3.node_ids[0]
    security = _security(kafka3, edge_ca[0], "SCRAM-SHA-512")
    with EdgeProcess(_sasl_edge_config(kafka3, cert, key, base), tmp_path,
                     env={"DISCOVERY_PASSWORD": kafka3.users["admin"]}) as proc:
        produce("kafka-python", f"{EDGE_HOST}:{base + 1 + node}", f"disc-{uuid.uuid4().hex[:6]}",
                records(10, "disc"), security)
        assert proc.metric("kafka_edge_discovery_requests_total", outcome="ok") >= 1
        assert kafka3.users["admin"] not in proc.log()


# -- SaslHandshake v0: raw, header-less tokens ---------------------------------------------------

def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _request(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    cid = b"v0-client"
    return _frame(struct.pack(">hhih", api_key, version, corr, len(cid)) + cid + body)


def _metadata_v1_brokers(frame: bytes) -> list[tuple[int, str, int]]:
    pos = 4  # correlation id
    (n,) = struct.unpack_from(">i", frame, pos)
    pos += 4
    brokers = []
    for _ in range(n):
        node, hlen = struct.unpack_from(">ih", frame, pos)
        pos += 6
        host = frame[pos:pos + hlen].decode()
        pos += hlen
        (port, rack_len) = struct.unpack_from(">ih", frame, pos)
        pos += 6 + max(rack_len, 0)
        brokers.append((node, host, port))
    return brokers


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_sasl_handshake_v0_raw_tokens_pass_through(
        mechanism: str, kafka3: KafkaCluster, edge_ca: tuple[Path, Path, Path],
        edge_sasl: tuple[EdgeProcess, str]) -> None:
    """A client that speaks SaslHandshake v0, then raw unframed tokens, then Kafka requests."""
    _, bootstrap = edge_sasl
    host, port = bootstrap.split(":")
    ctx = ssl.create_default_context(cafile=str(edge_ca[0]))
    password = kafka3.users["alice"]
    with socket.create_connection((host, int(port)), timeout=15) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as s:
        mech = mechanism.encode()
        s.sendall(_request(17, 0, 1, struct.pack(">h", len(mech)) + mech))
        answer = read_frame(s)
        assert struct.unpack_from(">ih", answer) == (1, 0)
        if mechanism == "PLAIN":
            s.sendall(_frame(b"\0alice\0" + password.encode()))
            assert read_frame(s) == b""  # PLAIN's empty server token, passed through raw
        else:
            scram = ScramClient(mechanism, "alice", password)
            s.sendall(_frame(scram.first_message()))
            s.sendall(_frame(scram.final_message(read_frame(s))))
            scram.verify_server_final(read_frame(s))
        s.sendall(_request(3, 1, 2, struct.pack(">i", 0)))  # Metadata v1, no topics
        meta = read_frame(s)
    assert struct.unpack_from(">i", meta)[0] == 2
    brokers = _metadata_v1_brokers(meta)
    assert sorted(n for n, _, _ in brokers) == sorted(kafka3.node_ids)
    assert all(h == EDGE_HOST and p == int(port) + 1 + n for n, h, p in brokers)


def test_kafka_python_pinned_to_old_api_uses_handshake_v0(
        kafka3: KafkaCluster, edge_ca: tuple[Path, Path, Path],
        edge_sasl: tuple[EdgeProcess, str]) -> None:
    """A real client configured for SaslHandshake v0 (kafka-python pinned to 0.11: SaslHandshake v1
    came with Kafka 1.0)."""
    proc, bootstrap = edge_sasl
    before = proc.metric("kafka_edge_sasl_v0_sessions_total")
    topic = f"v0-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=1, replication_factor=3)
    security = _security(kafka3, edge_ca[0], "PLAIN")
    sent = records(50, "v0")
    pinned = {"api_version": "[0, 11, 0]"}
    produce("kafka-python", bootstrap, topic, sent, security, extra=pinned)
    assert sorted(consume("kafka-python", bootstrap, topic, 50, security, extra=pinned)) == sorted(
        sent)
    assert proc.metric("kafka_edge_sasl_v0_sessions_total") >= before + 1


# -- re-authentication (KIP-368) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def kafka_reauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster.start(
        tmp_path_factory.mktemp("kafka-reauth"), brokers=1, security=("PLAINTEXT", "SASL_SSL"),
        config={"connections.max.reauth.ms": "3000"})
    try:
        yield cluster
    finally:
        cluster.stop()


def test_reauthentication_mid_connection_while_producing(
        kafka_reauth: KafkaCluster, edge_ca: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, cert, key = edge_ca
    base = free_port_block(4, EDGE_HOST)
    lb = free_port_block(4, LB_HOST)
    node = kafka_reauth.node_ids[0]
    config = port_routing_config(
        upstream=kafka_reauth.bootstrap("SASL_SSL").split(","), bind_host=EDGE_HOST, base=base,
        advertised_host=LB_HOST, advertised_port_base=lb + 1, node_ids=(node, node + 2),
        upstream_tls={"ca_file": kafka_reauth.ca_file})
    config["clusters"][0]["port_routing"]["tls"] = {
        "certificates": [{"cert_file": str(cert), "key_file": str(key)}]}
    routes = {lb + i: (EDGE_HOST, base + i) for i in range(4)}
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    kafka_reauth.create_topic(topic, partitions=1, replication_factor=1)
    security = _security(kafka_reauth, edge_ca[0], "SCRAM-SHA-512")
    with EdgeProcess(config, tmp_path) as proc, RecordingRelay(LB_HOST, routes):
        props = tmp_path / "producer.properties"
        props.write_text("\n".join(_java_sasl_props(security)) + "\n")
        perf = subprocess.run(
            ["java", "-cp", java_classpath(kafka_reauth.kafka_version),
             "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
             "--num-records", "2000", "--record-size", "100", "--throughput", "200",
             "--producer.config", str(props),
             "--producer-props", f"bootstrap.servers={LB_HOST}:{lb}", "acks=all"],
            capture_output=True, text=True, timeout=120, check=False)
        assert perf.returncode == 0, perf.stderr[-3000:]
        assert "2000 records sent" in perf.stdout
        time.sleep(2.5)  # metrics of open connections are flushed every 2 s
        handshakes = proc.metric("kafka_edge_sasl_handshakes_total")
        connections = proc.metric("kafka_edge_connections_total")
    # a ~10 s run with a 3 s session lifetime: connections re-authenticated mid-stream, each
    # handshake after the first on a connection is a KIP-368 re-authentication
    assert connections >= 1
    assert handshakes >= connections + 2, (handshakes, connections)


def _java_sasl_props(security: ClientSecurity) -> list[str]:
    module = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
              "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}
    assert security.mechanism is not None and security.username and security.password
    jaas = (f'{module[security.mechanism]} required username="{security.username}" '
            f'password="{security.password}";')
    return ["security.protocol=SASL_SSL", f"sasl.mechanism={security.mechanism}",
            f"sasl.jaas.config={jaas}", "ssl.truststore.type=PEM",
            f"ssl.truststore.location={security.ca_file}"]


# -- the leak check -------------------------------------------------------------------------------

def test_no_upstream_address_reaches_clients_while_leaders_move(
        kafka3: KafkaCluster, tmp_path: Path) -> None:
    """Every byte sent to clients is recorded (the relay in front stands for a load balancer)
    while a broker restarts and a preferred-leader election moves leaders back: clients then
    hit the old leader and get KIP-951 NodeEndpoints in Produce and Fetch responses."""
    base = free_port_block(10, EDGE_HOST)
    lb = free_port_block(10, LB_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base, advertised_host=LB_HOST, advertised_port_base=lb + 1,
                                 node_ids=(0, 8))
    routes = {lb + i: (EDGE_HOST, base + i) for i in range(10)}
    topic = f"leak-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=6, replication_factor=3)
    cp = java_classpath(kafka3.kafka_version)
    boot = f"{LB_HOST}:{lb}"
    victim = kafka3.node_ids[1]
    with EdgeProcess(config, tmp_path) as proc, RecordingRelay(LB_HOST, routes) as relay:
        perf = subprocess.Popen(
            ["java", "-cp", cp, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
             "--num-records", "36000", "--record-size", "200", "--throughput", "900",
             "--producer-props", f"bootstrap.servers={boot}", "acks=all", "linger.ms=5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        consumed: dict[str, Any] = {}
        consumer = threading.Thread(target=lambda: consumed.update(out=subprocess.run(
            ["java", "-cp", cp, "org.apache.kafka.tools.consumer.ConsoleConsumer",
             "--bootstrap-server", boot, "--topic", topic, "--from-beginning",
             "--max-messages", "36000", "--timeout-ms", "60000"],
            capture_output=True, text=True, timeout=150, check=False)))
        consumer.start()
        try:
            time.sleep(5)
            kafka3.stop_broker(victim)
            time.sleep(4)
            kafka3.start_broker(victim)
            _wait_in_sync(kafka3, topic, victim)
            # this topic's partitions only: others (such as __consumer_offsets) may not have
            # the victim back in sync yet, and their election would fail the command
            partitions = tmp_path / "elect.json"
            partitions.write_text(json.dumps(
                {"partitions": [{"topic": topic, "partition": p} for p in range(6)]}))
            election = subprocess.run(
                ["java", "-cp", cp, "org.apache.kafka.tools.LeaderElectionCommand",
                 "--bootstrap-server", kafka3.bootstrap(), "--election-type", "PREFERRED",
                 "--path-to-json-file", str(partitions)], capture_output=True, text=True,
                timeout=60, check=False)
            assert election.returncode == 0, election.stderr[-2000:]
            out, err = perf.communicate(timeout=120)
        finally:
            if perf.poll() is None:
                perf.kill()
            kafka3.start_broker(victim)
        consumer.join(180)
        assert perf.returncode == 0, err[-3000:]
        assert "36000 records sent" in out
        assert consumed["out"].stdout.count("\n") == 36000, consumed["out"].stderr[-2000:]
        seen = relay.client_bytes()
        assert len(seen) > 2_000_000
        assert UPSTREAM_HOST not in seen, "an upstream broker address reached a client"
        for addr in kafka3.broker_addresses():
            assert addr.encode() not in seen
        node_endpoints = (proc.metric("kafka_edge_rewritten_responses_total", api="Produce")
                          + proc.metric("kafka_edge_rewritten_responses_total", api="Fetch"))
        assert node_endpoints > 0, "no KIP-951 NodeEndpoints were exercised"


def _wait_in_sync(cluster: KafkaCluster, topic: str, node: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = cluster.describe_topic(topic)["partitions"]
        if all(node in p.get("isr_nodes", p.get("isr", [])) for p in parts):
            return
        time.sleep(1)
    raise AssertionError(f"node {node} did not rejoin the ISR of {topic}")


# -- secrets never reach the output ---------------------------------------------------------------

def test_no_password_or_token_in_any_output(kafka3: KafkaCluster, edge_ca: tuple[Path, Path, Path],
                                            tmp_path: Path) -> None:
    """A SASL run at debug level (PLAIN, SCRAM and OAUTHBEARER clients, a fresh instance's own
    SCRAM discovery): neither password, nor the OAUTHBEARER token, appears in the log, the
    metrics, /readyz or the status page."""
    ca, cert, key = edge_ca
    base = free_port_block(10, EDGE_HOST)
    config = _sasl_edge_config(kafka3, cert, key, base)
    config["observability"] = {"log_level": "debug"}
    topic = f"secrets-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=2, replication_factor=3)
    # the unsecured OAUTHBEARER token librdkafka builds starts with the JOSE header
    # {"alg":"none"}, base64url-encoded; its payload names the principal
    token_marks = [b"eyJhbGciOiJub25lIn0", b"eyJzdWIiOiJhbGljZSI"]
    with EdgeProcess(config, tmp_path, env={"DISCOVERY_PASSWORD": kafka3.users["admin"]}) as proc:
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"):
            security = _security(kafka3, ca, mechanism)
            produce("confluent", f"{EDGE_HOST}:{base + 2}" if mechanism == "PLAIN"
                    else f"{EDGE_HOST}:{base}", topic, records(50, mechanism), security)
        outputs = [proc.get(path)[1] for path in ("/metrics", "/readyz", "/", "/status.json")]
        log = proc.log_path.read_bytes()
    assert b"connection closed" in log and b"DEBUG" in log  # the log is the debug one
    assert b"discovered brokers" in log  # the broker port first: the edge's own SCRAM login
    # every line about a client connection names it: its id, the client and the broker
    lines = [x for x in log.decode().splitlines() if " peer=" in x]
    assert lines and all(" conn=" in x for x in lines), [x for x in lines if " conn=" not in x]
    closed = [x for x in lines if "connection closed" in x]
    # a connection that got answers had a broker connection: its close line names it (a client
    # may also close one while the edge is still dialling: no broker to name then)
    answered = [x for x in closed if re.search(r" bytes_down=[1-9]", x)]
    assert answered and all(" upstream=127.0.0.1:" in x for x in answered), [
        x for x in answered if " upstream=" not in x]
    everything = log + "".join(outputs).encode()
    for secret in (kafka3.users["alice"], kafka3.users["admin"]):
        assert secret.encode() not in everything
    for mark in token_marks:
        assert mark not in everything
