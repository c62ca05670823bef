"""The Grafana dashboard deploy/grafana/kafka-edge.json against a live kafka-edge.

A real kafka-edge with ``--workers 2`` (so the supervisor's own metrics exist) runs in front of
a test-bed broker, with a TLS port; traffic makes every kind of series the dashboard shows:
records produced and consumed, a plaintext client on the TLS port (a refusal), a client that
does not trust the certificate (a failed handshake), an oversized frame (a connection error),
a request for a broker the cluster does not have (an upstream connect failure), SIGHUP (the
reloads) and a killed worker (a restart). Then every metric name in every panel's query, read
with a PromQL parser, must be in the admin port's /metrics.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from testbed.clients import ClientSecurity, consume, produce
from testbed.cluster import KafkaCluster

from tests.e2e.edge import EdgeProcess, free_port_block, port_routing_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "kafka-edge.json"
OPERATIONS = REPO / "docs" / "operations.md"
EDGE_HOST = "127.0.0.23"
NODES = (0, 7)  # node 7 is no broker of the one-broker cluster
# what Grafana puts in place of its variables before the query reaches Prometheus
VARIABLES = {"__rate_interval": "1m", "__range": "1h", "__interval": "15s",
             "instance": ".*", "cluster": ".*", "datasource": "prometheus"}
# the issue's list: each must be on the dashboard
REQUIRED = {
    "kafka_edge_active_connections", "kafka_edge_connections_total",
    "kafka_edge_relayed_bytes_total", "kafka_edge_refused_connections_total",
    "kafka_edge_request_latency_seconds_bucket", "kafka_edge_upstream_connect_seconds_bucket",
    "kafka_edge_upstream_connect_failures_total", "kafka_edge_config_reloads_total",
    "kafka_edge_certificate_expiry_seconds", "kafka_edge_worker_restarts_total",
}


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def metric_names(expr: str) -> set[str]:
    """The metric names a Grafana Prometheus query reads, parsed as PromQL."""
    import promql_parser

    text = re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES[m.group(1)], expr)
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(text), visit)
    return names


def test_the_dashboard_file_is_current_and_well_formed() -> None:
    from kafka_edge_dashboard import render

    assert DASHBOARD.read_text() == render(), "stale: run `make deploy-files`"
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(refs), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    used = {m for p in _panels() for t in p["targets"]
            for m in re.findall(r"\$\{?(\w+)", t["expr"])}
    assert used - set(VARIABLES) == set() and {"datasource", "instance", "cluster"} <= variables


def test_the_dashboard_shows_what_operators_need_and_only_documented_metrics() -> None:
    names = {n for p in _panels() for t in p["targets"] for n in metric_names(t["expr"])}
    assert names >= REQUIRED, REQUIRED - names
    documented = set(re.findall(r"^\| `(kafka_edge_\w+)`", OPERATIONS.read_text(), re.M))
    suffixes = re.compile(r"_(bucket|sum|count)$")
    assert {suffixes.sub("", n) for n in names} <= documented, names


def _tls_cert(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    ca = trustme.CA()
    cert = ca.issue_cert(EDGE_HOST)
    pem, key, ca_file = tmp_path / "edge.pem", tmp_path / "edge.key", tmp_path / "ca.pem"
    pem.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return {"certificates": [{"cert_file": str(pem), "key_file": str(key)}]}, ca_file


def _api_versions() -> bytes:
    payload = struct.pack(">hhih", 18, 0, 1, 4) + b"dash"
    return struct.pack(">i", len(payload)) + payload


def _exchange(port: int, ca_file: Path, data: bytes) -> bytes:
    """TLS to the edge, send ``data``, everything it answers until it closes."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((EDGE_HOST, port), timeout=15) as raw, \
            context.wrap_socket(raw, server_hostname=EDGE_HOST) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (ssl.SSLError, ConnectionError):
            pass
        return got


def _make_traffic(kafka1: KafkaCluster, base: int, ca_file: Path) -> None:
    bootstrap = f"{EDGE_HOST}:{base}"
    topic = f"dashboard-{uuid.uuid4().hex[:8]}"
    records = [(b"k%d" % i, b"v%d" % i) for i in range(200)]
    tls = ClientSecurity(protocol="SSL", ca_file=str(ca_file))
    produce("confluent", bootstrap, topic, records, tls)
    assert len(consume("confluent", bootstrap, topic, len(records), tls)) == len(records)
    with socket.create_connection((EDGE_HOST, base), timeout=15) as plain:  # not TLS
        plain.sendall(_api_versions())
        assert plain.recv(100) == b""
    untrusting = ssl.create_default_context()  # the system CAs: not the edge's
    with socket.create_connection((EDGE_HOST, base), timeout=15) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        untrusting.wrap_socket(raw, server_hostname=EDGE_HOST)
    assert _exchange(base, ca_file, struct.pack(">i", 0x7FFFFFF0)) == b""  # frame too big
    broker_port = base + 1 + NODES[1] - NODES[0]
    assert _exchange(broker_port, ca_file, _api_versions()) == b""  # no broker 7


def _workers(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(x) for x in out.stdout.split())


def _sample_names(proc: EdgeProcess) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name for f in text_string_to_metric_families(proc.metrics()) for s in f.samples}


def test_every_metric_of_every_panel_is_in_a_live_scrape(kafka1: KafkaCluster,
                                                         tmp_path: Path) -> None:
    wanted = {n: p["title"] for p in _panels() for t in p["targets"]
              for n in metric_names(t["expr"])}
    tls, ca_file = _tls_cert(tmp_path)
    base = free_port_block(2 + NODES[1] - NODES[0], EDGE_HOST)
    config = port_routing_config(upstream=[kafka1.bootstrap()], bind_host=EDGE_HOST,
                                 base=base, node_ids=NODES)
    config["clusters"][0]["port_routing"]["tls"] = tls
    with EdgeProcess(config, tmp_path, args=["--workers", "2"]) as proc:
        assert proc.proc is not None
        _make_traffic(kafka1, base, ca_file)
        os.kill(proc.proc.pid, signal.SIGHUP)  # the same file: the certificates are read again
        missing = _missing(proc, {"kafka_edge_certificate_reloads_total": "Reloads"})
        changed = {**proc.config, "limits": {"max_connections": 5000}}
        proc.config_path.write_text(yaml.safe_dump(changed))
        os.kill(proc.proc.pid, signal.SIGHUP)  # a configuration reload that applies
        restarts = "kafka_edge_worker_restarts_total"
        # the supervisor has the workers' counts (it asks them about once a second) ...
        missing.update(_missing(proc, {n: t for n, t in wanted.items() if n != restarts}))
        before = _workers(proc.proc.pid)
        os.kill(before[0], signal.SIGKILL)  # ... before one of them dies
        missing.update(_missing(proc, wanted))
        deadline = time.monotonic() + 30
        while len(now := _workers(proc.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # started again after a short back-off
    assert not missing, f"metrics of panels not in the scrape: {missing}\n{proc.log()[-3000:]}"
    assert len(now) == 2 and before[0] not in now  # the killed worker was replaced


def _missing(proc: EdgeProcess, wanted: dict[str, str], timeout: float = 30.0
             ) -> dict[str, str]:
    """The wanted names not in the scrape, after waiting up to ``timeout`` for them."""
    deadline = time.monotonic() + timeout
    while True:
        names = _sample_names(proc)
        missing = {n: t for n, t in wanted.items() if n not in names}
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)
