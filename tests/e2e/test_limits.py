"""Operational limits and lifecycle: max connections, idle timeout, readiness and draining;
the open-files limit each process raises at start-up."""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, free_port_block, port_routing_config, read_frame

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"


@contextlib.contextmanager
def _soft_open_files_limit(limit: int) -> Iterator[None]:
    """Processes started inside inherit this soft RLIMIT_NOFILE (this one's comes back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _api_versions(sock: socket.socket, corr: int) -> int:
    payload = struct.pack(">hhih", 18, 0, corr, 1) + b"l"
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    return int(struct.unpack_from(">i", read_frame(sock))[0])


def test_max_connections_idle_timeout_readiness_and_drain(kafka3: KafkaCluster,
                                                           tmp_path: Path) -> None:
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base)
    config["limits"] = {"max_connections": 2, "idle_timeout_s": 2, "drain_timeout_s": 5}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with _soft_open_files_limit(hard // 2):  # the edge raises what it inherits to the hard limit
        proc = EdgeProcess(config, tmp_path).start()
    try:
        assert (f"open files limit (RLIMIT_NOFILE) {hard}: the soft limit raised from "
                f"{hard // 2} to the hard limit") in proc.log()
        assert "is below the" not in proc.log()  # 2 x 2 connections + 9 ports + 100
        status, body = proc.get("/readyz")
        assert status == 200 and '"ready": true' in body
        assert proc.get("/healthz")[0] == 200
        a = socket.create_connection((EDGE_HOST, base), timeout=10)
        b = socket.create_connection((EDGE_HOST, base), timeout=10)
        assert _api_versions(a, 1) == 1 and _api_versions(b, 2) == 2
        with socket.create_connection((EDGE_HOST, base), timeout=10) as third:
            assert third.recv(1) == b""  # refused: two are open
        assert "limits.max_connections (2) reached" in proc.log()
        # idle: b stays silent and is closed; a keeps talking and stays open
        for i in range(5):
            time.sleep(0.8)
            assert _api_versions(a, 10 + i) == 10 + i
        b.settimeout(5)
        assert b.recv(1) == b""
        assert "idle for 2 s" in proc.log()
        b.close()
        # drain: not ready any more, the idle-between-requests connection is closed, exit 0
        proc.signal(signal.SIGTERM)
        a.settimeout(10)
        assert a.recv(1) == b""
        a.close()
        assert proc.proc is not None and proc.proc.wait(15) == 0
        assert "proxy draining" in proc.log() and "stopped" in proc.log()
    finally:
        proc.stop()


def test_workers_share_the_ports(kafka3: KafkaCluster, tmp_path: Path) -> None:
    """--workers 2: two processes bind the same ports (SO_REUSEPORT); clients work throughout
    and SIGTERM stops all of them."""
    from testbed.clients import consume, produce

    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base)
    proc = EdgeProcess(config, tmp_path, args=["--workers", "2"]).start()
    try:
        deadline = time.monotonic() + 15
        while proc.log().count("kafka-edge ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.log().count("kafka-edge ready") == 2
        # each worker: its open-files limit, and whether the default limits.max_connections
        # (10000, x 2 descriptors, + 9 ports + 100) may need more
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert (proc.log().count(f"RLIMIT_NOFILE) {hard} (hard limit {hard})")
                + proc.log().count(f"RLIMIT_NOFILE) {hard}: the soft limit raised")) == 2
        warned = proc.log().count(f"RLIMIT_NOFILE) {hard} is below the 20109 descriptors")
        assert warned == (2 if hard < 20109 else 0)
        topic = f"workers-{time.monotonic_ns()}"
        kafka3.create_topic(topic, partitions=3, replication_factor=3)
        sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(300)]
        produce("kafka-python", f"{EDGE_HOST}:{base}", topic, sent)
        assert sorted(consume("confluent", f"{EDGE_HOST}:{base}", topic, 300)) == sorted(sent)
        assert proc.get("/readyz")[0] == 200
        proc.signal(signal.SIGTERM)
        assert proc.proc is not None and proc.proc.wait(20) == 0
        assert proc.log().count("stopped") >= 2
    finally:
        proc.stop()


def test_requests_in_flight_beyond_the_limit_are_held_back_not_lost(
        kafka3: KafkaCluster, tmp_path: Path) -> None:
    """limits.max_in_flight_requests: a client that pipelines 300 requests in one write gets
    all 300 answers, in order; the edge held its reads back (counted) instead of refusing."""
    base = free_port_block(10, EDGE_HOST)
    config = port_routing_config(upstream=kafka3.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base)
    config["limits"] = {"max_in_flight_requests": 4}
    with EdgeProcess(config, tmp_path) as proc, \
            socket.create_connection((EDGE_HOST, base), timeout=20) as sock:
        frames = b""
        for corr in range(300):
            payload = struct.pack(">hhih", 18, 0, corr, 1) + b"l"
            frames += struct.pack(">i", len(payload)) + payload
        sock.sendall(frames)
        answered = [int(struct.unpack_from(">i", read_frame(sock))[0]) for _ in range(300)]
        assert answered == list(range(300))
        deadline = time.monotonic() + 5
        while (proc.metric("kafka_edge_limit_hits_total", limit="max_in_flight_requests") < 1
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert proc.metric("kafka_edge_limit_hits_total", limit="max_in_flight_requests") >= 1
        while (proc.metric("kafka_edge_requests_total", api="ApiVersions") < 300
               and time.monotonic() < deadline + 5):
            time.sleep(0.1)  # counts reach the registry once a second
        assert proc.metric("kafka_edge_requests_total", api="ApiVersions", version="0") == 300
