"""Bad input against a running kafka-edge, in port mode (plaintext and TLS ports) and SNI mode:
one table, each row the input and the outcome it must have (the connection closed with a log
line naming the problem, or the protocol's own error answer), while a canary producer writes
numbered records through the same edge the whole time and must lose and duplicate nothing.

A truncated frame then silence is tried against two edges: this one, with
limits.incomplete_frame_timeout_s set and no idle timeout, and a second kafka-edge process (limits
are process-wide) with limits.idle_timeout_s set and the half-sent frame and first-request
timeouts off, so that only the idle timeout can close it.

Rows already covered in depth elsewhere (SASL v0 desynchronisation: test_security_desync.py;
refused SNI names against real clients: test_sni_edge.py; limits: test_limits.py) appear here
once each, as one row of the table, with the same raw-socket technique. With
KAFKA_EDGE_RESULTS_DIR set, the rows and their observed outcomes are written there
(reliability/results/latest.json via reliability/collect.py).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from testbed.cluster import KafkaCluster

from .bad_input_rows import IDLE_TIMEOUT_S, INCOMPLETE_TIMEOUT_S, ROWS, Row, Target
from .edge import EdgeProcess, free_port, free_port_block
from .producing import all_values

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
SNI_HOST = "127.0.0.3"
DOMAIN = "bad.example.com"
MAX_FRAME = 1 << 20


@dataclass
class Canary:
    """Numbered records produced through the edge until stopped (idempotent, acks=all)."""

    bootstrap: str
    topic: str
    sent: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                      "acks": "all", "linger.ms": 5})

        def done(err: object, msg: object) -> None:
            if err is not None:
                self.errors += 1

        while not self.stop.is_set():
            p.produce(self.topic, value=b"%08d" % self.sent, on_delivery=done)
            self.sent += 1
            p.poll(0.01)
        assert p.flush(60) == 0


@dataclass
class World:
    edges: dict[str, EdgeProcess]  # "main", "idle": see Row.edge
    targets: dict[tuple[str, str], Target]  # (edge, mode)
    kafka: KafkaCluster
    canary: Canary


@pytest.fixture(scope="module")
def world(kafka1: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("bad-input")
    ca = trustme.CA()
    cert = ca.issue_cert(EDGE_HOST, f"*.{DOMAIN}", DOMAIN)
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    cert.private_key_pem.write_to_path(str(work / "edge.key"))
    (work / "edge.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    certs = {"certificates": [{"cert_file": str(work / "edge.pem"),
                               "key_file": str(work / "edge.key")}],
             "handshake_timeout_s": 3}
    node = kafka1.node_ids[0]
    upstream = {"bootstrap_servers": kafka1.bootstrap("PLAINTEXT").split(",")}
    ca_file = work / "ca.pem"

    def start_edge(name: str, limits: dict[str, Any]) -> tuple[EdgeProcess, dict[str, Target]]:
        """A kafka-edge process with a plaintext port cluster, a TLS port cluster and an SNI
        cluster, all to kafka1, with ``limits``; started (its ports are picked here, after the
        previous edge bound its own)."""
        plain, tls = free_port_block(3, EDGE_HOST), free_port_block(3, EDGE_HOST)
        sni = free_port(SNI_HOST)

        def port_cluster(cluster: str, base: int, with_tls: bool) -> dict[str, Any]:
            routing: dict[str, Any] = {"bind_host": EDGE_HOST, "bootstrap_port": base,
                                       "broker_port_base": base + 1, "node_id_min": node,
                                       "node_id_max": node + 1, "advertised_host": EDGE_HOST}
            if with_tls:
                routing["tls"] = certs
            return {"name": cluster, "upstream": upstream, "port_routing": routing}

        config = {
            "listeners": [{"name": "sni", "bind": f"{SNI_HOST}:{sni}", "tls": certs}],
            "clusters": [
                port_cluster("plainport", plain, False), port_cluster("tlsport", tls, True),
                {"name": "snimode", "upstream": upstream, "sni_routing": {
                    "listener": "sni", "bootstrap_host": f"bootstrap.{DOMAIN}",
                    "broker_host_pattern": f"b-{{node}}.{DOMAIN}", "advertised_port": sni}}],
            "limits": {"max_frame_bytes": MAX_FRAME, **limits},
        }
        return EdgeProcess(config, work, name=name).start(), {
            "plain": Target("plain", EDGE_HOST, plain, None, ca_file, DOMAIN, node),
            "tls-port": Target("tls-port", EDGE_HOST, tls, EDGE_HOST, ca_file, DOMAIN, node),
            "sni": Target("sni", SNI_HOST, sni, f"bootstrap.{DOMAIN}", ca_file, DOMAIN, node),
        }

    topic = f"canary-{uuid.uuid4().hex[:8]}"
    kafka1.create_topic(topic, partitions=3)
    main, main_targets = start_edge("edge", {"incomplete_frame_timeout_s": INCOMPLETE_TIMEOUT_S})
    idle: EdgeProcess | None = None
    plain = main_targets["plain"]
    canary = Canary(f"{plain.host}:{plain.port}", topic)
    try:
        # only the idle timeout can close a silent connection on this one
        idle, idle_targets = start_edge("idle-edge", {"idle_timeout_s": IDLE_TIMEOUT_S,
                                                      "incomplete_frame_timeout_s": 0,
                                                      "first_request_timeout_s": 0})
        targets = {("main", m): t for m, t in main_targets.items()}
        targets |= {("idle", m): t for m, t in idle_targets.items()}
        canary.thread.start()
        yield World({"main": main, "idle": idle}, targets, kafka1, canary)
    finally:
        canary.stop.set()
        canary.thread.join(90)
        main.stop()
        if idle is not None:
            idle.stop()


OUTCOMES: list[dict[str, Any]] = []


def _log_since(edge: EdgeProcess, start: int) -> str:
    return edge.log()[start:]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.mode}-{r.name}")
def test_bad_input(row: Row, world: World) -> None:
    edge = world.edges[row.edge]
    target = world.targets[row.edge, row.mode]
    start = len(edge.log())
    observed = row.run(target)
    deadline = time.monotonic() + row.log_within_s
    while row.log_line is not None and row.log_line not in _log_since(edge, start) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    log = _log_since(edge, start)
    OUTCOMES.append({"mode": row.mode, "input": row.name, "expected": row.expected,
                     "observed": observed, "log_line": row.log_line,
                     "logged": row.log_line is None or row.log_line in log})
    assert observed == row.expected, log[-2000:]
    if row.log_line is not None:
        assert row.log_line in log, log[-2000:]
    assert edge.proc is not None and edge.proc.poll() is None, "the edge died"
    assert "Traceback" not in log


class MalformedUpstream:
    """A fake broker for one row only: it answers every request with a Metadata v1 answer whose
    broker array claims 2^31-1 entries."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                if len(data) >= 12:
                    corr = data[8:12]
                    body = corr + struct.pack(">i", 2**31 - 1) + b"\x00" * 16
                    conn.sendall(struct.pack(">i", len(body)) + body)
                    time.sleep(0.5)

    def close(self) -> None:
        self.server.close()


def test_malformed_answer_from_the_broker_side(world: World, tmp_path: Path) -> None:
    upstream = MalformedUpstream()
    base = free_port_block(3, EDGE_HOST)
    config = {"clusters": [{"name": "fake", "upstream": {
        "bootstrap_servers": [f"127.0.0.1:{upstream.port}"]}, "port_routing": {
            "bind_host": EDGE_HOST, "bootstrap_port": base, "broker_port_base": base + 1,
            "node_id_min": 1, "node_id_max": 2, "advertised_host": EDGE_HOST}}]}
    try:
        with EdgeProcess(config, tmp_path) as edge:
            with socket.create_connection((EDGE_HOST, base), timeout=10) as sock:
                payload = struct.pack(">hhih", 3, 1, 5, 3) + b"bad" + struct.pack(">i", 0)
                sock.sendall(struct.pack(">i", len(payload)) + payload)
                sock.settimeout(10)
                got = sock.recv(65536)
            deadline = time.monotonic() + 10
            while "bad frame from broker" not in edge.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            log = edge.log()
    finally:
        upstream.close()
    OUTCOMES.append({"mode": "plain", "input": "malformed answer from the broker side",
                     "expected": "closed", "observed": "closed" if got == b"" else "answered",
                     "log_line": "bad frame from broker",
                     "logged": "bad frame from broker" in log})
    assert got == b"", "the client got bytes of a malformed answer"
    assert "bad frame from broker" in log, log[-2000:]
    assert "Traceback" not in log


def test_zz_canary_lost_and_duplicated_nothing(world: World) -> None:
    """Last in the module: the canary stops; every record it sent is in the topic once."""
    canary = world.canary
    time.sleep(1)
    canary.stop.set()
    canary.thread.join(90)
    assert not canary.thread.is_alive() and canary.errors == 0
    assert canary.sent > 100, "the canary hardly ran"
    values = all_values(world.kafka.bootstrap("PLAINTEXT"), canary.topic, 3)
    numbers = sorted(int(v) for v in values)
    assert numbers == list(range(canary.sent)), (len(numbers), canary.sent)
    _write_results(canary.sent)


def _write_results(canary_records: int) -> None:
    out = os.environ.get("KAFKA_EDGE_RESULTS_DIR")
    if not out:
        return
    import json

    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "bad_input.json").write_text(json.dumps(
        {"rows": OUTCOMES, "canary": {"records": canary_records, "lost": 0, "duplicated": 0}},
        indent=2))

