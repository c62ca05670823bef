"""A real client on SaslHandshake v0 through kafka-edge: IBM/sarama (Go) with
``Net.SASL.Handshake = true`` and ``Net.SASL.Version = SASLHandshakeV0`` (raw, header-less SASL
tokens after the handshake), TLS on both sides, PLAIN and SCRAM, in front of the ``kafka3``
SASL_SSL cluster: port-per-broker mode, and SNI mode with a wildcard certificate (sarama maps
the custom names to the edge's loopback address itself, ``--resolve``, while TLS still verifies
the names).

The client is ``testbed/go/sarama_v0`` (built once into ``.cache/go-bin`` by
:mod:`testbed.gobuild`; without a Go toolchain the tests skip, and fail under CI). Its password
comes from an environment variable, never from the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from testbed import gobuild
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, free_port, free_port_block, port_routing_config

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
SNI_DOMAIN = "sarama.example.com"
SNI_BOOT = f"boot.{SNI_DOMAIN}"
SNI_PATTERN = f"b-{{node}}.{SNI_DOMAIN}"
RECORDS = 200
V0_METRIC = "kafka_edge_sasl_v0_sessions_total"
PASSWORD_ENV = "SARAMA_SASL_PASSWORD"


@dataclass(frozen=True)
class EdgeTls:
    ca: Path
    ip_cert: Path  # for EDGE_HOST (port-per-broker mode)
    ip_key: Path
    wildcard_cert: Path  # for *.SNI_DOMAIN (SNI mode)
    wildcard_key: Path


@dataclass(frozen=True)
class Edge:
    proc: EdgeProcess
    bootstrap: str
    broker_addresses: dict[int, str]  # node id -> the address clients must be given
    resolve: dict[str, str]  # host name -> IP, for sarama's --resolve


@pytest.fixture(scope="session")
def sarama_bin() -> Path:
    try:
        return gobuild.build("sarama_v0")
    except gobuild.GoMissing as exc:
        if os.environ.get("CI"):  # CI must run every client: a missing toolchain is a failure
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def edge_tls(tmp_path_factory: pytest.TempPathFactory) -> EdgeTls:
    d = tmp_path_factory.mktemp("sarama-edge-ca")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    for name, names in (("ip", (EDGE_HOST, "localhost")), ("wildcard", (f"*.{SNI_DOMAIN}",))):
        cert = ca.issue_cert(*names)
        cert.private_key_pem.write_to_path(str(d / f"{name}.key"))
        (d / f"{name}.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    return EdgeTls(d / "ca.pem", d / "ip.pem", d / "ip.key", d / "wildcard.pem",
                   d / "wildcard.key")


def _upstream(kafka3: KafkaCluster) -> dict[str, Any]:
    return {"bootstrap_servers": kafka3.bootstrap("SASL_SSL").split(","),
            "tls": {"ca_file": kafka3.ca_file},
            "discovery": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "admin",
                                   "password_env": "DISCOVERY_PASSWORD"}}}


def _start(config: dict[str, Any], workdir: Path, kafka3: KafkaCluster) -> EdgeProcess:
    return EdgeProcess(config, workdir, env={"DISCOVERY_PASSWORD": kafka3.users["admin"]}).start()


@pytest.fixture(scope="module")
def port_edge(kafka3: KafkaCluster, edge_tls: EdgeTls,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """Port-per-broker mode: TLS on the edge ports, SASL_SSL to the cluster."""
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=[], bind_host=EDGE_HOST, base=base)
    config["clusters"][0]["upstream"] = _upstream(kafka3)
    config["clusters"][0]["port_routing"]["tls"] = {
        "certificates": [{"cert_file": str(edge_tls.ip_cert), "key_file": str(edge_tls.ip_key)}]}
    proc = _start(config, tmp_path_factory.mktemp("sarama-port-edge"), kafka3)
    try:
        yield Edge(proc, f"{EDGE_HOST}:{base}",
                   {n: f"{EDGE_HOST}:{base + 1 + n}" for n in kafka3.node_ids}, {})
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def sni_edge(kafka3: KafkaCluster, edge_tls: EdgeTls,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """SNI mode: one TLS listener with a wildcard certificate for *.SNI_DOMAIN."""
    port = free_port(EDGE_HOST)
    config = {
        "listeners": [{"name": "edge", "bind": f"{EDGE_HOST}:{port}", "tls": {"certificates": [
            {"cert_file": str(edge_tls.wildcard_cert),
             "key_file": str(edge_tls.wildcard_key)}]}}],
        "clusters": [{"name": "sarama", "upstream": _upstream(kafka3),
                      "sni_routing": {"listener": "edge", "bootstrap_host": SNI_BOOT,
                                      "broker_host_pattern": SNI_PATTERN}}],
    }
    proc = _start(config, tmp_path_factory.mktemp("sarama-sni-edge"), kafka3)
    brokers = {n: SNI_PATTERN.format(node=n) for n in kafka3.node_ids}
    try:
        yield Edge(proc, f"{SNI_BOOT}:{port}", {n: f"{h}:{port}" for n, h in brokers.items()},
                   {h: EDGE_HOST for h in (SNI_BOOT, *brokers.values())})
    finally:
        proc.stop()


def sarama(binary: Path, command: str, edge: Edge, topic: str, *, mechanism: str, password: str,
           ca: Path, count: int = RECORDS, prefix: str = "r", handshake: str = "v0",
           timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run ``sarama_v0 produce|consume``; its JSON output lines."""
    argv = [str(binary), command, "--bootstrap", edge.bootstrap, "--topic", topic,
            "--count", str(count), "--prefix", prefix, "--mechanism", mechanism,
            "--user", "alice", "--password-env", PASSWORD_ENV, "--ca-file", str(ca),
            "--sasl-handshake", handshake, "--timeout", f"{timeout:.0f}s"]
    for name, ip in edge.resolve.items():
        argv += ["--resolve", f"{name}={ip}"]
    assert password not in argv
    env = {**os.environ, PASSWORD_ENV: password}
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                              timeout=timeout + 30)
    except subprocess.TimeoutExpired as exc:  # the client's own watchdog failed
        raise AssertionError(f"sarama {command} hung:\n{exc.stderr!r}") from exc
    assert proc.returncode == 0, (
        f"sarama {command} ({mechanism}, handshake {handshake}) exited {proc.returncode} after "
        f"{time.monotonic() - started:.1f} s:\n{proc.stderr[-4000:]}\n"
        f"--- kafka-edge log (tail) ---\n{edge.proc.log()[-4000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def wait_metric(proc: EdgeProcess, name: str, at_least: float, timeout: float = 10.0) -> float:
    """The metric's value once it reaches ``at_least`` (counters of open connections are
    reported periodically), or its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = proc.metric(name)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def settled_metric(proc: EdgeProcess, name: str, timeout: float = 15.0) -> float:
    """The metric's value once it stopped moving for longer than the 2 s in which counters of
    open connections are reported."""
    value = proc.metric(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(2.5)
        previous, value = value, proc.metric(name)
        if value == previous:
            break
    return value


def produce_and_consume(binary: Path, edge: Edge, kafka3: KafkaCluster, ca: Path,
                        mechanism: str, *, handshake: str = "v0", partitions: int = 2) -> None:
    topic = f"sarama-{handshake}-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=partitions, replication_factor=3)
    password = kafka3.users["alice"]
    prefix = uuid.uuid4().hex[:8]
    kw: dict[str, Any] = {"mechanism": mechanism, "password": password, "ca": ca,
                          "prefix": prefix, "handshake": handshake}

    (acked,) = sarama(binary, "produce", edge, topic, **kw)
    assert acked["acked"] == RECORDS
    assert sum(p["count"] for p in acked["partitions"].values()) == RECORDS
    assert sorted(acked["brokers"]) == sorted(edge.broker_addresses.values())

    got = sarama(binary, "consume", edge, topic, **kw)
    expected = {(f"{prefix}-k-{i}", f"{prefix}-v-{i}") for i in range(RECORDS)}
    assert len(got) == RECORDS
    assert {(r["key"], r["value"]) for r in got} == expected
    for part, ack in acked["partitions"].items():
        offsets = sorted(r["offset"] for r in got if r["partition"] == int(part))
        assert offsets == list(range(ack["first"], ack["last"] + 1))

    assert password not in edge.proc.log()


MECHANISMS = ["PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sarama_v0_port_per_broker(mechanism: str, sarama_bin: Path, kafka3: KafkaCluster,
                                   edge_tls: EdgeTls, port_edge: Edge) -> None:
    before = port_edge.proc.metric(V0_METRIC)
    produce_and_consume(sarama_bin, port_edge, kafka3, edge_tls.ca, mechanism)
    # at least the producer's and the consumer's bootstrap connections, and a broker each
    assert wait_metric(port_edge.proc, V0_METRIC, before + 4) >= before + 4


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sarama_v0_sni_wildcard(mechanism: str, sarama_bin: Path, kafka3: KafkaCluster,
                                edge_tls: EdgeTls, sni_edge: Edge) -> None:
    before = sni_edge.proc.metric(V0_METRIC)
    produce_and_consume(sarama_bin, sni_edge, kafka3, edge_tls.ca, mechanism)
    assert wait_metric(sni_edge.proc, V0_METRIC, before + 4) >= before + 4


def test_sarama_v1_control_counts_no_v0_session(sarama_bin: Path, kafka3: KafkaCluster,
                                                edge_tls: EdgeTls, port_edge: Edge) -> None:
    """The same client on SaslHandshake v1 (SaslAuthenticate): a baseline for the v0 tests that
    must not count as a v0 session."""
    before = settled_metric(port_edge.proc, V0_METRIC)
    produce_and_consume(sarama_bin, port_edge, kafka3, edge_tls.ca, "SCRAM-SHA-512",
                        handshake="v1")
    assert settled_metric(port_edge.proc, V0_METRIC) == before


def test_sarama_v0_wrong_password_is_refused(sarama_bin: Path, kafka3: KafkaCluster,
                                             edge_tls: EdgeTls, port_edge: Edge) -> None:
    """A failed raw-token exchange closes the connection; the client fails instead of hanging,
    and the edge keeps serving."""
    topic = f"sarama-badpw-{uuid.uuid4().hex[:6]}"
    argv: Sequence[str] = [
        str(sarama_bin), "produce", "--bootstrap", port_edge.bootstrap, "--topic", topic,
        "--count", "1", "--mechanism", "SCRAM-SHA-512", "--user", "alice",
        "--password-env", PASSWORD_ENV, "--ca-file", str(edge_tls.ca), "--timeout", "20s",
        "--retries", "1"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, PASSWORD_ENV: "not-the-password"})
    assert proc.returncode != 0
    assert "not-the-password" not in port_edge.proc.log()
    produce_and_consume(sarama_bin, port_edge, kafka3, edge_tls.ca, "PLAIN", partitions=1)
