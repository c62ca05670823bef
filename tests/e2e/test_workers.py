"""``kafka-edge run --workers 2`` against real brokers: one scrape of the admin port is the sum
over both workers, and a worker killed mid-run is replaced while records keep flowing.

Before the supervisor, each scrape answered from one worker at random, so counters jumped
between scrapes; these tests open more connections than one worker would get (SO_REUSEPORT
spreads them) and check every scrape reports all of them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from testbed.clients import consume, produce
from testbed.cluster import KafkaCluster

from .edge import API_VERSIONS_V0, EdgeProcess, api_versions, free_port_block, port_routing_config
from .producing import PRODUCER, PRODUCER_CONFIG, all_values, producer_process

__all__ = ["producer_process"]  # a fixture, used by name

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
RAW_CONNECTIONS = 24


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(x) for x in out.stdout.split())


def _api_versions(address: tuple[str, int]) -> int:
    """One ApiVersions v0 exchange on a new connection; the request's size in bytes."""
    with socket.create_connection(address, timeout=10) as sock:
        api_versions(sock)
    return len(API_VERSIONS_V0)


def _scrape(proc: EdgeProcess) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(proc.metrics()):
        for s in family.samples:
            key = s.name + json.dumps(s.labels, sort_keys=True)
            out[key] = out.get(key, 0.0) + s.value
    return out


def _total(scrape: dict[str, float], name: str, **labels: str) -> float:
    return sum(v for k, v in scrape.items() if k.startswith(name + "{")
               and all(f'"{a}": "{b}"' in k for a, b in labels.items()))


def test_one_scrape_sums_both_workers(kafka1: KafkaCluster, tmp_path: Path) -> None:
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=[kafka1.bootstrap()], bind_host=EDGE_HOST, base=base)
    config["observability"] = {"log_level": "debug"}  # closes by the client are debug lines
    topic = f"workers-{uuid.uuid4().hex[:8]}"
    kafka1.create_topic(topic)
    records = [(b"k%d" % i, b"v%05d" % i) for i in range(2000)]
    with EdgeProcess(config, tmp_path, args=["--workers", "2"]) as proc:
        assert proc.proc is not None
        workers = _children(proc.proc.pid)
        assert len(workers) == 2, workers
        sent = sum(_api_versions((EDGE_HOST, base)) for _ in range(RAW_CONNECTIONS))
        produce("confluent", f"{EDGE_HOST}:{base}", topic, records)
        assert len(consume("confluent", f"{EDGE_HOST}:{base}", topic, len(records))) == 2000
        time.sleep(2.5)  # each worker hands its counts to its registry once a second
        scrapes = [_scrape(proc) for _ in range(6)]
        status = json.loads(proc.get("/status.json")[1])  # merged from both workers
        page_status, page = proc.get("/")
        log = proc.log()
    assert sorted(status["instance"]["pids"]) == workers
    assert status["instance"]["workers"] == 2
    assert page_status == 200 and 'id="clusters"' in page
    # both workers served some of the raw connections (each logs its own closes)
    serving = {line.split("conn=")[1].split("-")[0] for line in log.splitlines()
               if "connection closed" in line and "conn=" in line}
    assert serving == {str(w) for w in workers}, serving
    first = scrapes[0]
    connections = _total(first, "kafka_edge_connections_total")
    assert connections >= RAW_CONNECTIONS + 2  # + the producer's and consumer's
    assert _total(first, "kafka_edge_requests_total", api="ApiVersions") >= RAW_CONNECTIONS
    assert _total(first, "kafka_edge_requests_total", api="Produce") >= 1
    assert _total(first, "kafka_edge_request_latency_seconds_count", api="Produce") >= 1
    up = _total(first, "kafka_edge_relayed_bytes_total", direction="client_to_broker")
    assert up >= sent + sum(len(k) + len(v) for k, v in records)
    for later in scrapes[1:]:  # every scrape is the same sum, not one worker's share
        for name in ("kafka_edge_connections_total", "kafka_edge_requests_total",
                     "kafka_edge_relayed_bytes_total"):
            assert _total(later, name) == _total(first, name), name
    assert _total(first, "kafka_edge_workers") == 2


def test_a_killed_worker_is_replaced_and_no_record_is_lost(
        kafka1: KafkaCluster, tmp_path: Path,
        producer_process: list[subprocess.Popen[str]]) -> None:
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=[kafka1.bootstrap()], bind_host=EDGE_HOST, base=base)
    topic = f"workers-kill-{uuid.uuid4().hex[:8]}"
    kafka1.create_topic(topic, partitions=3)
    count = 20_000
    spec = {"bootstrap": f"{EDGE_HOST}:{base}", "topic": topic, "count": count, "rate": 4_000,
            "config": {**PRODUCER_CONFIG, "enable.idempotence": True}, "timeout": 60}
    with EdgeProcess(config, tmp_path, args=["--workers", "2"]) as proc:
        assert proc.proc is not None
        before = _children(proc.proc.pid)
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER, json.dumps(spec)],
                                    stdout=subprocess.PIPE, text=True)
        producer_process.append(producer)
        assert producer.stdout is not None
        killed = None
        result: dict[str, object] = {}
        for line in producer.stdout:
            if line.startswith("progress") and killed is None and int(line.split()[2]) > 4000:
                killed = before[0]
                os.kill(killed, signal.SIGKILL)
                killed_at = time.monotonic()
            if line.startswith("result"):
                result = json.loads(line.split(" ", 1)[1])
        producer.stdout.close()
        assert producer.wait(30) == 0
        assert killed is not None, "the producer finished before a worker could be killed"
        deadline = killed_at + 15
        while time.monotonic() < deadline:
            now = _children(proc.proc.pid)
            if len(now) == 2 and killed not in now and proc.get("/readyz")[0] == 200:
                break
            time.sleep(0.2)
        replaced_after = time.monotonic() - killed_at
        now = _children(proc.proc.pid)
        assert len(now) == 2 and killed not in now, (before, now)
        assert proc.get("/readyz")[0] == 200
        assert proc.metric("kafka_edge_worker_restarts_total", reason="signal") == 1
        assert "worker exited (signal 9); starting it again" in proc.log()
    assert replaced_after < 15
    assert result["acked"] == result["once"] == count, result
    values = all_values(kafka1.bootstrap(), topic, 3)
    numbers = sorted(int(v[:8]) for v in values)
    assert numbers == list(range(count))  # idempotent: each exactly once
