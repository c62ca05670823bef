"""Live configuration reload against real brokers and real clients (relay/reload.py).

* an invalid file keeps the running routing (logged, counted); a valid one, picked up from the
  file change alone, adds a cluster that a client then reaches and removes one whose open
  connection is drained and whose ports close;
* a producer writes numbered records through the edge across a reload of each kind (log
  level, limits, a cluster added, the cluster's own upstream settings, an invalid file): every
  record is acknowledged once and stored once.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from testbed.clients import consume, produce
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, api_versions, free_port_block, port_routing_config, wait_until
from .producing import PRODUCER, PRODUCER_CONFIG, all_values, producer_process

__all__ = ["producer_process"]  # a fixture, used by name

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"


def _cluster(name: str, kafka: KafkaCluster, base: int, **extra: Any) -> dict[str, Any]:
    (cluster,) = port_routing_config(upstream=kafka.bootstrap().split(","), bind_host=EDGE_HOST,
                                     base=base, name=name, **extra)["clusters"]
    return cluster  # type: ignore[no-any-return]


def _rewrite(proc: EdgeProcess, change: Callable[[dict[str, Any]], None]) -> None:
    """Put a changed configuration in place of the running one's file (no signal), whole: the
    edge's file watch never reads a half-written file."""
    config = yaml.safe_load(proc.config_path.read_text())
    change(config)
    staged = proc.config_path.with_name(proc.config_path.name + ".new")
    staged.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(staged, proc.config_path)


def test_invalid_file_kept_out_valid_file_adds_and_removes_clusters(
        kafka1: KafkaCluster, kafka3: KafkaCluster, tmp_path: Path) -> None:
    one, two = free_port_block(10, EDGE_HOST), free_port_block(10, EDGE_HOST)
    config = {"clusters": [_cluster("one", kafka1, one)], "limits": {"drain_timeout_s": 10}}
    topic = f"reload-{uuid.uuid4().hex[:8]}"
    kafka3.create_topic(topic, partitions=3)
    with EdgeProcess(config, tmp_path) as proc:
        held = socket.create_connection((EDGE_HOST, one), timeout=10)
        try:
            api_versions(held)
            # an invalid file: refused whole, the running configuration stays
            _rewrite(proc, lambda c: c["limits"].update(max_connections=-1))
            proc.signal(signal.SIGHUP)
            assert wait_until(lambda: proc.metric("kafka_edge_config_reloads_total",
                                             outcome="error") >= 1)
            assert "configuration reload failed, keeping the running configuration" in proc.log()
            assert "limits.max_connections" in proc.log()
            assert proc.metric("kafka_edge_config_last_reload_success") == 0
            with socket.create_connection((EDGE_HOST, one), timeout=10) as again:
                api_versions(again)
            # a valid file, noticed without a signal: cluster two added, cluster one removed
            _rewrite(proc, lambda c: c.update(clusters=[_cluster("two", kafka3, two)],
                                              limits={"drain_timeout_s": 10}))
            assert wait_until(lambda: proc.metric("kafka_edge_config_generation") == 2)
            assert proc.metric("kafka_edge_config_last_reload_success") == 1
            records = [(b"%d" % i, b"two-%d" % i) for i in range(500)]
            produce("confluent", f"{EDGE_HOST}:{two}", topic, records)
            got = consume("confluent", f"{EDGE_HOST}:{two}", topic, len(records))
            assert sorted(v for _, v in got) == sorted(v for _, v in records)
            held.settimeout(15)
            assert held.recv(100) == b""  # drained: the proxy finished the connection
            with pytest.raises(OSError):
                socket.create_connection((EDGE_HOST, one), timeout=5).close()
        finally:
            held.close()
        log = proc.log()
    assert "draining 1 connection(s) of removed cluster(s)" in log
    assert "configuration reloaded" in log and "the configuration file changed" in log


RELOADS: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], None]]] = [
    ("log level", lambda c, _: c["observability"].update(log_level="debug")),
    ("limits", lambda c, _: c["limits"].update(max_in_flight_requests=200, idle_timeout_s=300)),
    ("cluster added", lambda c, extra: c["clusters"].append(extra)),
    ("upstream settings", lambda c, _: c["clusters"][0]["upstream"].update(
        connect_timeout_s=7)),
    ("invalid file", lambda c, _: c["clusters"][0].update(port_routing={"bind_host": 5})),
]


def _apply(change: Callable[[dict[str, Any], dict[str, Any]], None], added: dict[str, Any],
           config: dict[str, Any]) -> None:
    change(config, added)


def test_records_flow_through_a_reload_of_each_kind(
        kafka1: KafkaCluster, kafka3: KafkaCluster, tmp_path: Path,
        producer_process: list[subprocess.Popen[str]]) -> None:
    main, extra = free_port_block(10, EDGE_HOST), free_port_block(10, EDGE_HOST)
    config = {"clusters": [_cluster("main", kafka3, main)], "limits": {}}
    topic = f"reload-flow-{uuid.uuid4().hex[:8]}"
    kafka3.create_topic(topic, partitions=3)
    count = 24_000
    spec = {"bootstrap": f"{EDGE_HOST}:{main}", "topic": topic, "count": count, "rate": 3_000,
            "config": {**PRODUCER_CONFIG, "enable.idempotence": True}, "timeout": 60}
    with EdgeProcess(config, tmp_path) as proc:
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER, json.dumps(spec)],
                                    stdout=subprocess.PIPE, text=True)
        producer_process.append(producer)
        assert producer.stdout is not None
        pending = list(RELOADS)
        result: dict[str, Any] = {}
        for line in producer.stdout:
            if line.startswith("progress") and pending and \
                    int(line.split()[2]) > (len(RELOADS) - len(pending) + 1) * 3_000:
                name, change = pending.pop(0)
                print("reload:", name)
                added = _cluster("extra", kafka1, extra)
                _rewrite(proc, functools.partial(_apply, change, added))
                proc.signal(signal.SIGHUP)
            if line.startswith("result"):
                result = json.loads(line.split(" ", 1)[1])
        producer.stdout.close()
        assert producer.wait(30) == 0
        assert not pending, f"the producer finished before: {[n for n, _ in pending]}"
        # the invalid file is refused; the file watch may see it before the signal does, and
        # then both try it (twice refused, each logged with the key)
        assert wait_until(lambda: proc.metric("kafka_edge_config_reloads_total", outcome="error")
                     >= 1)
        log = proc.log()
        refusals = log.count("configuration reload failed")
        assert refusals == proc.metric("kafka_edge_config_reloads_total", outcome="error")
        assert log.count("port_routing.bind_host") == refusals, log[-3000:]
        assert proc.metric("kafka_edge_config_reloads_total", outcome="ok") == 4
        assert proc.metric("kafka_edge_config_generation") == 5
        with socket.create_connection((EDGE_HOST, extra), timeout=10) as sock:
            api_versions(sock)  # the cluster added on the way is served
    assert result["acked"] == result["once"] == count, result
    numbers = sorted(int(v[:8]) for v in all_values(kafka3.bootstrap(), topic, 3))
    assert numbers == list(range(count))


def test_a_certificate_no_longer_served_leaves_no_expiry_series(kafka1: KafkaCluster,
                                                                tmp_path: Path) -> None:
    """A reload that points a TLS port listener at other certificate files: the expiry gauge
    reports the files served now, not the ones it replaced."""
    ca = trustme.CA()
    for name in ("old", "new"):
        leaf = ca.issue_cert(EDGE_HOST)
        leaf.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
        (tmp_path / f"{name}.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))

    def certificates(name: str) -> dict[str, Any]:
        return {"certificates": [{"cert_file": str(tmp_path / f"{name}.pem"),
                                  "key_file": str(tmp_path / f"{name}.key")}]}

    cluster = _cluster("main", kafka1, free_port_block(10, EDGE_HOST))
    cluster["port_routing"]["tls"] = certificates("old")
    with EdgeProcess({"clusters": [cluster]}, tmp_path) as proc:
        series = "kafka_edge_certificate_expiry_seconds{"
        assert f'{tmp_path / "old.pem"}"' in proc.metrics()
        _rewrite(proc, lambda c: c["clusters"][0]["port_routing"].update(
            tls=certificates("new")))
        proc.signal(signal.SIGHUP)
        assert wait_until(lambda: proc.metric("kafka_edge_config_reloads_total", outcome="ok") == 1)
        lines = [line for line in proc.metrics().splitlines() if line.startswith(series)]
        assert any(f'{tmp_path / "new.pem"}"' in line for line in lines), lines
        assert not any(f'{tmp_path / "old.pem"}"' in line for line in lines), lines
