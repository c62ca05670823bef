"""Scenarios for the metrics no other e2e test moved (see tests/e2e/test_zz_metrics_moved.py),
each for the reason the metric exists, against real brokers:

* ``kafka_edge_active_connections``: connections open while the edge runs (and when it stops);
* ``kafka_edge_node_endpoints_dropped``: a Fetch v16 answer that streams through the edge (it
  spans several reads) names other brokers in KIP-951 NodeEndpoints, and the edge's names for
  them are longer than the brokers' own, so they cannot be rewritten in place;
* ``kafka_edge_sasl_v0_refused``: a cluster that offers GSSAPI, and a client that asks for it
  with SaslHandshake v0, whose raw Kerberos tokens the edge cannot follow.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.clients import produce
from testbed.cluster import KafkaCluster

from kafka_edge.protocol import codec
from kafka_edge.protocol.messages import FETCH_RESPONSE, METADATA_RESPONSE
from kafka_edge.protocol.primitives import skip_tagged_section, uvarint_bytes

from .edge import EdgeProcess, free_port_block, port_routing_config, read_frame

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
CLIENT_ID = b"metrics-scenario"
NOT_LEADER_OR_FOLLOWER = 6
UNSUPPORTED_SASL_MECHANISM = 33


def _wait_metric(proc: EdgeProcess, name: str, wanted: float, timeout: float = 10.0,
                 **labels: str) -> float:
    """The metric once it equals ``wanted`` (counters of open connections reach /metrics on
    the proxy's next housekeeping pass, every second), or its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = proc.metric(name, **labels)
    while value != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        value = proc.metric(name, **labels)
    return value


def _request(api_key: int, version: int, corr: int, body: bytes, *, flexible: bool) -> bytes:
    header = struct.pack(">hhih", api_key, version, corr, len(CLIENT_ID)) + CLIENT_ID
    payload = header + (b"\x00" if flexible else b"") + body
    return struct.pack(">i", len(payload)) + payload


def _api_versions(sock: socket.socket) -> None:
    sock.sendall(_request(18, 0, 1, b"", flexible=False))
    assert struct.unpack_from(">ih", read_frame(sock)) == (1, 0)


# -- kafka_edge_active_connections -----------------------------------------------------------

def test_open_connections_are_counted_while_they_are_open(kafka3: KafkaCluster,
                                                          tmp_path: Path) -> None:
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base)
    active = "kafka_edge_active_connections"
    with EdgeProcess(config, tmp_path) as proc:
        first = socket.create_connection((EDGE_HOST, base), timeout=10)
        second = socket.create_connection((EDGE_HOST, base), timeout=10)
        try:
            _api_versions(first)
            _api_versions(second)
            assert _wait_metric(proc, active, 2) == 2
            second.close()
            assert _wait_metric(proc, active, 1) == 1
            # the edge is stopped (and scraped) with ``first`` still open
        except BaseException:
            first.close()
            raise
        finally:
            second.close()
    first.close()


# -- kafka_edge_node_endpoints_dropped ----------------------------------------------------------

def _compact_array(items: list[bytes]) -> bytes:
    return uvarint_bytes(len(items) + 1) + b"".join(items)


def _exchange(address: tuple[str, int], request: bytes) -> bytes:
    """One request, its whole answer (without size prefix) as the client received it."""
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(request)
        return read_frame(sock)


def _body(answer: bytes) -> int:
    """Where a flexible answer's body starts (after correlation id and header tags)."""
    return skip_tagged_section(answer, 4)


def _metadata_v12(address: tuple[str, int], topic: str) -> Any:
    name = topic.encode()
    topics = _compact_array([bytes(16) + uvarint_bytes(len(name) + 1) + name + b"\x00"])
    answer = _exchange(address, _request(3, 12, 7, topics + b"\x00\x00\x00", flexible=True))
    return codec.decode_all(METADATA_RESPONSE, 12, answer, _body(answer))


def _fetch_v16(topic_id: bytes, partitions: list[int], partition_max: int) -> bytes:
    parts = [struct.pack(">iiqiqi", p, -1, 0, -1, -1, partition_max) + b"\x00"
             for p in partitions]  # index, leader epoch, offset, last epoch, log start, max
    topic = topic_id + _compact_array(parts) + b"\x00"
    body = (struct.pack(">iiibii", 500, 1, 64 << 20, 0, 0, -1)  # wait, min, max, isolation,
            + _compact_array([topic]) + _compact_array([])      # session id, epoch: none
            + uvarint_bytes(1) + b"\x00")  # rack id "", tags
    return _request(1, 16, 9, body, flexible=True)


def test_node_endpoints_of_a_streamed_fetch_answer_are_dropped_when_longer(
        kafka3: KafkaCluster, tmp_path: Path) -> None:
    """The edge tells clients names longer than the brokers' own (a custom domain in front of
    brokers that advertise IP addresses). A Fetch v16 from broker X for partitions that live
    on other brokers is answered NOT_LEADER_OR_FOLLOWER, with those brokers in NodeEndpoints;
    X's own partitions fill the answer with records, so the edge streams it through across
    several reads (FetchWalk) and cannot grow its tail: the NodeEndpoints are left out and
    counted, and the client asks Metadata instead."""
    topic = f"dropped-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=6, replication_factor=1)
    value = b"v" * 2000
    produce("kafka-python", kafka3.bootstrap(), topic,
            [(f"k{i}".encode(), value) for i in range(3000)])  # ~6 MB over 6 partitions
    direct = kafka3.bootstrap().split(",")[0].rsplit(":", 1)
    meta = _metadata_v12((direct[0], int(direct[1])), topic)
    (described,) = meta["Topics"]
    leaders = {p["PartitionIndex"]: p["LeaderId"] for p in described["Partitions"]}
    x = leaders[0]
    elsewhere = sorted(p for p, leader in leaders.items() if leader != x)
    assert elsewhere, f"every partition on broker {x}: {leaders}"
    request = _fetch_v16(described["TopicId"].bytes, sorted(leaders), 1 << 20)

    # the broker itself names the other leaders in NodeEndpoints
    answer = _exchange((kafka3.host, kafka3.port(x)), request)
    direct_value = codec.decode_all(FETCH_RESPONSE, 16, answer, _body(answer))
    assert {e["NodeId"] for e in direct_value.get("NodeEndpoints") or []} == {
        leaders[p] for p in elsewhere}

    base = free_port_block(10, EDGE_HOST)
    longer = "brokers.kafka-edge.example.com"
    assert len(longer) > len(kafka3.host)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base, advertised_host=longer)
    with EdgeProcess(config, tmp_path) as proc:
        _metadata_v12((EDGE_HOST, base), topic)  # the edge learns the brokers
        answer = _exchange((EDGE_HOST, base + 1 + x), request)
        assert len(answer) > 256 << 10  # more than one read of the edge's buffer
        via_edge = codec.decode_all(FETCH_RESPONSE, 16, answer, _body(answer))
        errors = {p["PartitionIndex"]: p["ErrorCode"]
                  for t in via_edge["Responses"] for p in t["Partitions"]}
        assert {p for p, e in errors.items() if e == NOT_LEADER_OR_FOLLOWER} == set(elsewhere)
        assert not via_edge.get("NodeEndpoints")  # left out, not sent with a wrong length
        assert kafka3.host.encode() not in answer and longer.encode() not in answer
        assert _wait_metric(proc, "kafka_edge_node_endpoints_dropped_total", 1) == 1


# -- kafka_edge_sasl_v0_refused ---------------------------------------------------------------

REALM = "EDGE.TEST"


def _keytab(path: Path, principal: str, realm: str) -> None:
    """A keytab (MIT format 0x0502) with one random AES-256 key: enough for a broker to enable
    GSSAPI (an acceptor loads its key without asking a KDC). No Kerberos token is ever
    exchanged here: the edge refuses SaslHandshake v0 for GSSAPI before any."""
    def counted(data: bytes) -> bytes:
        return struct.pack(">H", len(data)) + data

    parts = principal.split("/")
    entry = (struct.pack(">H", len(parts)) + counted(realm.encode())
             + b"".join(counted(p.encode()) for p in parts)
             + struct.pack(">IIB", 1, int(time.time()), 1)  # NT-PRINCIPAL, timestamp, kvno
             + struct.pack(">H", 18) + counted(os.urandom(32))  # aes256-cts-hmac-sha1-96
             + struct.pack(">I", 1))
    path.write_bytes(b"\x05\x02" + struct.pack(">i", len(entry)) + entry)


@pytest.fixture(scope="module")
def kafka_gssapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One broker whose SASL_PLAINTEXT listener offers PLAIN and GSSAPI."""
    work = tmp_path_factory.mktemp("kafka-gssapi")
    keytab = work / "kafka.keytab"
    _keytab(keytab, "kafka/localhost", REALM)
    jaas = ("com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
            f'storeKey=true isInitiator=false keyTab="{keytab}" '
            f'principal="kafka/localhost@{REALM}";')
    cluster = KafkaCluster.start(
        work / "kafka", brokers=1, security=("PLAINTEXT", "SASL_PLAINTEXT"),
        mechanisms=["PLAIN"],
        config={"listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN,GSSAPI",
                "listener.name.sasl_plaintext.gssapi.sasl.jaas.config": jaas,
                "sasl.kerberos.service.name": "kafka"})
    try:
        yield cluster
    finally:
        cluster.stop()


def _handshake_v0(sock: socket.socket, mechanism: bytes) -> tuple[int, list[bytes]]:
    sock.sendall(_request(17, 0, 3, struct.pack(">h", len(mechanism)) + mechanism,
                          flexible=False))
    answer = read_frame(sock)
    corr, error, count = struct.unpack_from(">ihi", answer)
    assert corr == 3
    pos, offered = 10, []
    for _ in range(count):
        (n,) = struct.unpack_from(">h", answer, pos)
        offered.append(answer[pos + 2:pos + 2 + n])
        pos += 2 + n
    return error, offered


def test_sasl_handshake_v0_for_gssapi_is_refused_by_the_edge(kafka_gssapi: KafkaCluster,
                                                             tmp_path: Path) -> None:
    node = kafka_gssapi.node_ids[0]
    broker = kafka_gssapi.bootstrap("SASL_PLAINTEXT").split(",")[0].rsplit(":", 1)
    with socket.create_connection((broker[0], int(broker[1])), timeout=10) as s:
        assert _handshake_v0(s, b"GSSAPI") == (0, [b"PLAIN", b"GSSAPI"])  # the broker accepts
    base = free_port_block(4, EDGE_HOST)
    config = port_routing_config(upstream=kafka_gssapi.bootstrap("SASL_PLAINTEXT").split(","),
                                 bind_host=EDGE_HOST, base=base, node_ids=(node, node + 1))
    with EdgeProcess(config, tmp_path) as proc:
        with socket.create_connection((EDGE_HOST, base), timeout=10) as s:
            # the edge cannot follow GSSAPI's raw tokens: the protocol's own refusal, naming
            # what it can follow, then the connection closes
            assert _handshake_v0(s, b"GSSAPI") == (UNSUPPORTED_SASL_MECHANISM, [b"PLAIN"])
            s.settimeout(10)
            assert s.recv(1) == b""
        assert _wait_metric(proc, "kafka_edge_sasl_v0_refused_total", 1) == 1
        assert _wait_metric(proc, "kafka_edge_connection_errors_total", 1, kind="refused") == 1
        assert "refused for SaslHandshake v0" in proc.log()
