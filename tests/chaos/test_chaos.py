"""The long reliability suite's own test (``make chaos``): ten minutes of mixed load whose
resident-set trend must be flat. (The fault scenarios, the bad-input matrix and the other memory
tests run in ``make test`` at a smaller size and in ``make chaos`` at full size.)"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import trustme
from testbed.cluster import KafkaCluster

from tests.chaos.scenarios import IDEMPOTENT, record_memory, rss_mib
from tests.e2e.edge import EdgeProcess, free_port_block, port_routing_config
from tests.e2e.producing import PRODUCER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIXED_S = 600
SAMPLE_S = 10
SLOPE_BOUND_MIB_PER_MIN = 1.0  # over the last 8 minutes: under 8 MiB in all
EDGE_HOST = "127.0.0.2"


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MiB)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


async def _churn(port: int, ctx: ssl.SSLContext, stop: threading.Event) -> int:
    """TLS connections opened, used for one request and closed, about 20 a second."""
    done = 0
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(EDGE_HOST, port, ssl=ctx)
        writer.write(struct.pack(">ihhih", 12, 18, 0, done, 2) + b"mx")
        await reader.readexactly(struct.unpack(">i", await reader.readexactly(4))[0])
        writer.close()
        done += 1
        await asyncio.sleep(0.05)
    return done


@pytest.mark.timeout(MIXED_S + 300)
def test_mixed_load_rss_is_flat(kafka1: KafkaCluster, tmp_path: Path) -> None:
    """A producer (2,000 records/s), a consumer and TLS connection churn through one edge for
    ten minutes: the resident set's trend over the last eight is flat."""
    from confluent_kafka import Consumer

    ca = trustme.CA()
    leaf = ca.issue_cert(EDGE_HOST)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
    (tmp_path / "edge.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    base = free_port_block(4, EDGE_HOST)
    node = kafka1.node_ids[0]
    config = port_routing_config(upstream=kafka1.bootstrap().split(","), bind_host=EDGE_HOST,
                                 base=base, node_ids=(node, node + 1))
    config["clusters"][0]["port_routing"]["tls"] = {"certificates": [
        {"cert_file": str(tmp_path / "edge.pem"), "key_file": str(tmp_path / "edge.key")}]}
    tls = {"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "ca.pem")}
    topic = f"mixed-{uuid.uuid4().hex[:6]}"
    kafka1.create_topic(topic, partitions=3)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    stop = threading.Event()
    consumed = [0]

    def consume() -> None:
        c = Consumer({"bootstrap.servers": f"{EDGE_HOST}:{base}", "group.id": "mixed",
                      "auto.offset.reset": "earliest", **tls})
        c.subscribe([topic])
        while not stop.is_set():
            consumed[0] += len(c.consume(500, timeout=0.5))
        c.close()

    with EdgeProcess(config, tmp_path) as edge:
        assert edge.proc is not None
        spec = {"bootstrap": f"{EDGE_HOST}:{base}", "topic": topic, "count": 2000 * MIXED_S,
                "rate": 2000, "config": {**IDEMPOTENT, **tls}, "timeout": 120}
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER, json.dumps(spec)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        consumer = threading.Thread(target=consume, daemon=True)
        churned: list[int] = []
        churner = threading.Thread(
            target=lambda: churned.append(asyncio.run(_churn(base, ctx, stop))), daemon=True)
        consumer.start()
        churner.start()
        started = time.monotonic()
        samples: list[tuple[float, float]] = []
        try:
            while time.monotonic() - started < MIXED_S:
                time.sleep(SAMPLE_S)
                samples.append(((time.monotonic() - started) / 60, rss_mib(edge.proc.pid)))
        finally:
            stop.set()
            producer.kill()
            producer.wait(10)
            consumer.join(30)
            churner.join(30)
    late = [p for p in samples if p[0] >= 2]
    slope = _slope(late)
    record_memory("mixed_load", {
        "seconds": MIXED_S, "samples_mib": [round(y, 1) for _, y in samples],
        "slope_mib_per_min": round(slope, 3), "bound_mib_per_min": SLOPE_BOUND_MIB_PER_MIN,
        "consumed": consumed[0], "churned_connections": churned[0] if churned else 0,
        "summary": f"{MIXED_S // 60} min of a producer (2,000 records/s), a consumer and TLS "
                   f"connection churn over TLS: RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f}"
                   f" MiB, slope over the last 8 min {slope:+.3f} MiB/min (bound "
                   f"{SLOPE_BOUND_MIB_PER_MIN})"})
    assert consumed[0] > 0 and churned and churned[0] > 100
    assert slope < SLOPE_BOUND_MIB_PER_MIN, [round(y, 1) for _, y in samples]
