"""/readyz a load balancer can trust, against a real broker: 503 with a reason while the cluster
is down (the edge's own probe), 200 again once it is back, 503 while draining; and with
``require_clusters: false`` the instance stays ready, as documented."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, api_versions, free_port_block, port_routing_config

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"


def _ready(proc: EdgeProcess) -> tuple[int, dict[str, object]]:
    status, body = proc.get("/readyz")
    return status, json.loads(body)


def _wait_status(proc: EdgeProcess, wanted: int, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    status, body = _ready(proc)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        status, body = _ready(proc)
    assert status == wanted, body
    return body


def test_readyz_follows_the_cluster_and_the_drain(kafka1: KafkaCluster, tmp_path: Path) -> None:
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=[kafka1.bootstrap("SSL")], bind_host=EDGE_HOST,
                                 base=base, upstream_tls={"ca_file": kafka1.ca_file,
                                                          "verify_hostname": False})
    config["observability"] = {"readiness": {"probe_interval_s": 0.5, "window_s": 2}}
    config["limits"] = {"drain_timeout_s": 5}
    other = free_port_block(10, EDGE_HOST)
    relaxed_config = port_routing_config(upstream=[kafka1.bootstrap("SSL")], bind_host=EDGE_HOST,
                                         base=other, upstream_tls=config["clusters"][0]
                                         ["upstream"]["tls"])
    relaxed_config["observability"] = {"readiness": {"probe_interval_s": 0.5, "window_s": 2,
                                                     "require_clusters": False}}
    relaxed = EdgeProcess(relaxed_config, tmp_path, name="relaxed")
    with EdgeProcess(config, tmp_path) as proc, relaxed:
        _wait_status(proc, 200)
        assert proc.metric("kafka_edge_cluster_reachable", cluster="test") == 1
        kafka1.stop_broker(1)
        try:
            body = _wait_status(proc, 503)
            assert "cluster test unreachable" in str(body["reason"]), body
            assert proc.metric("kafka_edge_cluster_reachable", cluster="test") == 0
            assert proc.metric("kafka_edge_ready") == 0
            assert proc.metric("kafka_edge_upstream_probes_total", outcome="error") >= 1
            assert _ready(relaxed)[0] == 200  # require_clusters: false
        finally:
            kafka1.start_broker(1)
        _wait_status(proc, 200, timeout=60)
        assert "cluster test: bootstrap unreachable" in proc.log()
        assert "cluster test: bootstrap reachable again" in proc.log()
        # draining: a client holds a connection open, so the drain lasts; /readyz says 503
        held = socket.create_connection((EDGE_HOST, base), timeout=10)
        try:
            api_versions(held)  # the connection is relaying
            proc.record_metrics()
            proc.signal(signal.SIGTERM)
            body = _wait_status(proc, 503, timeout=5)
            assert body["draining"] is True and "draining" in str(body["reason"])
        finally:
            held.close()
