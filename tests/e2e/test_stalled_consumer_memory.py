"""Memory stays flat when a consumer stops reading while a large fetch answer is on its way.

A real librdkafka consumer reads a topic of 512 KiB records through kafka-edge (plaintext, port
routing) with large fetches, then is stopped (SIGSTOP: it reads nothing more from its socket)
while the broker sends it a 40 MiB fetch answer. The edge must stop reading from the broker
once its write buffer towards the client is full (relay/connection.py: ``WRITE_HIGH``, 1 MiB)
instead of holding the answer. Then the consumer resumes and must read every record, intact.

Making sure the stall overlaps a large answer: the consumer's fetches carry ``fetch.min.bytes``
of exactly BATCH records, so once it has read a batch its next fetch waits at the broker (up to
``fetch.wait.max.ms``). The next batch is written straight to the cluster while the consumer
is stopped: the broker answers the waiting fetch when the batch's last record lands, with the
whole batch in one answer. One partition, so that answer holds every record of the batch.

One round in ``make test`` (160 records, 80 MiB); seven in ``make chaos`` (640, 320 MiB).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from testbed.cluster import KafkaCluster

from tests.chaos.scenarios import long_suite, record_memory, rss_mib

from .edge import EdgeProcess, free_port_block, port_routing_config

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
VALUE_BYTES = 512 << 10
BATCH = 80  # records per fetch answer: 40 MiB
ROUNDS = 7 if long_suite() else 1  # stalls; a batch is written before the first and in each
RECORDS = BATCH * (1 + ROUNDS)
STALL_S = 6.0
# Without flow control the edge would read the whole 40 MiB answer from the broker while the
# consumer is stopped: the kernel takes at most the edge's send buffer towards the client
# (tcp_wmem's maximum, 4 MiB here) and the consumer's receive buffer (2 x 64 KiB), so 35 MiB
# or more would sit in its write queue (measured with pause_writing made a no-op, through
# KAFKA_EDGE_SRC: +46 MiB). With it the edge holds the 1 MiB high-water mark, a 256 KiB read
# buffer and what views of earlier read buffers pin (measured: +0 to +1 MiB).
BOUND_MIB = 16.0

CONSUMER = r"""
import hashlib, json, sys, time
from confluent_kafka import Consumer, TopicPartition

spec = json.loads(sys.argv[1])
consumer = Consumer(spec["config"])
consumer.assign([TopicPartition(spec["topic"], 0, 0)])
digest = hashlib.sha256()
count = 0
deadline = time.monotonic() + spec["timeout"]
while count < spec["count"] and time.monotonic() < deadline:
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error() is not None:
        print("error", msg.error(), flush=True)
        continue
    digest.update(msg.value())
    count += 1
    print("progress", count, msg.offset(), digest.hexdigest(), flush=True)
consumer.close()
print("done", count, digest.hexdigest(), flush=True)
"""


def value(i: int) -> bytes:
    """Record ``i``'s value: incompressible and reproducible."""
    return hashlib.shake_256(b"stalled-consumer-%d" % i).digest(VALUE_BYTES)


def produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    """Write records ``first`` .. ``first + count - 1`` straight to the cluster (acks=all)."""
    from confluent_kafka import Producer

    errors: list[str] = []

    def done(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "compression.type": "none", "enable.idempotence": True})
    for i in range(first, first + count):
        producer.produce(topic, key=b"%d" % i, value=value(i), on_delivery=done)
        producer.poll(0)
    assert producer.flush(60) == 0, "records left unacknowledged"
    assert not errors, errors[:5]


class ConsumerProcess:
    """The consumer script in its own process; a thread collects its stdout lines."""

    def __init__(self, spec: dict[str, Any], stderr: Path) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        with stderr.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", CONSUMER, json.dumps(spec)],
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def progress(self) -> list[tuple[int, int, str]]:
        """(count, offset, running digest) per record read so far."""
        with self._changed:
            rows = [line.split()[1:] for line in self.lines if line.startswith("progress ")]
        return [(int(c), int(o), d) for c, o, d in rows]

    def consumed(self) -> int:
        rows = self.progress()
        return rows[-1][0] if rows else 0

    def wait_for(self, records: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.consumed() < records:
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, (
                    f"the consumer read {self.consumed()} of {records} records: "
                    f"{self.lines[-5:]}")
                self._changed.wait(min(left, 1.0))

    def stop(self) -> None:
        """Kill it (first resumed, if stopped) and close its pipe."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def broker_bytes_unread(edge_pid: int, broker_port: int) -> int:
    """Bytes the broker sent that sit unread in the receive queues of the edge's sockets to it
    (``ss``: Recv-Q of the edge process's connections to ``broker_port``)."""
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        cols = line.split()
        if (len(cols) >= 6 and cols[0] == "ESTAB" and cols[4].endswith(f":{broker_port}")
                and f"pid={edge_pid}," in cols[5]):
            total += int(cols[1])
    return total


def relayed_down(edge: EdgeProcess) -> float:
    """Bytes the edge has read from the broker for its clients (flushed once a second)."""
    return edge.metric("kafka_edge_relayed_bytes_total", direction="broker_to_client")


def test_memory_stays_flat_while_a_consumer_stops_reading_large_fetches(
        kafka1: KafkaCluster, tmp_path: Path) -> None:
    node = kafka1.node_ids[0]
    bootstrap = kafka1.bootstrap()
    broker_port = kafka1.port(node, "PLAINTEXT")
    topic = f"stalled-{uuid.uuid4().hex[:8]}"
    kafka1.create_topic(topic, partitions=1)
    produce(bootstrap, topic, 0, BATCH)
    expected = hashlib.sha256()
    for i in range(RECORDS):
        expected.update(value(i))
    base = free_port_block(4, EDGE_HOST)
    config = port_routing_config(upstream=bootstrap.split(","), bind_host=EDGE_HOST, base=base,
                                 node_ids=(node, node + 1))
    # KAFKA_EDGE_SRC: run another build (e.g. one without flow control, to see the bound fail)
    src = os.environ.get("KAFKA_EDGE_SRC")
    spec = {"topic": topic, "count": RECORDS, "timeout": 60 + 30 * ROUNDS, "config": {
        "bootstrap.servers": f"{EDGE_HOST}:{base}", "group.id": f"stalled-{uuid.uuid4().hex}",
        "enable.auto.commit": False, "socket.receive.buffer.bytes": 65536,
        "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 48 << 20,
        # a fetch is answered once a whole batch is there (BATCH records of VALUE_BYTES and
        # their batch headers), else after 10 s: longer than a stall takes to write a batch
        "fetch.min.bytes": BATCH * VALUE_BYTES, "fetch.wait.max.ms": 10_000}}
    rounds: list[dict[str, float]] = []
    with EdgeProcess(config, tmp_path, env={"PYTHONPATH": src} if src else None) as edge:
        assert edge.proc is not None
        pid = edge.proc.pid
        consumer = ConsumerProcess(spec, tmp_path / "consumer.stderr")
        try:
            consumer.wait_for(BATCH, 60)
            for r in range(1, ROUNDS + 1):
                # its next fetch now waits at the broker; 1.5 s: the edge's counters (flushed
                # each second) include everything relayed so far
                time.sleep(1.5)
                read_before = consumer.consumed()
                down_before = relayed_down(edge)
                rss_before = rss_mib(pid)
                consumer.proc.send_signal(signal.SIGSTOP)
                produce(bootstrap, topic, BATCH * r, BATCH)
                samples = []
                deadline = time.monotonic() + STALL_S
                while time.monotonic() < deadline:
                    samples.append(rss_mib(pid))
                    time.sleep(0.25)
                unread = broker_bytes_unread(pid, broker_port)
                down_stalled = relayed_down(edge) - down_before
                consumer.proc.send_signal(signal.SIGCONT)
                rounds.append({"rss_before_mib": round(rss_before, 1),
                               "rss_peak_mib": round(max(samples), 1),
                               "growth_mib": round(max(samples) - rss_before, 1),
                               "relayed_while_stopped_mib": round(down_stalled / 2**20, 1),
                               "unread_at_edge_mib": round(unread / 2**20, 1)})
                # the stall overlapped the answer: the broker sent part of it while the consumer
                # was stopped (it had read exactly the earlier batches, not one of this one)
                assert read_before == BATCH * r
                assert down_stalled > 0, rounds[-1]
                assert max(samples) - rss_before <= BOUND_MIB, rounds[-1]
                # flow control: the edge stopped reading the broker, whose bytes wait for it
                assert down_stalled < BATCH * VALUE_BYTES and unread > 0, rounds[-1]
                consumer.wait_for(BATCH * (r + 1), 60)
            consumer.proc.wait(60)
        finally:
            consumer.stop()
        assert edge.proc.poll() is None, edge.log()[-2000:]
    progress = consumer.progress()
    assert [o for _, o, _ in progress] == list(range(RECORDS)), "records lost or repeated"
    assert consumer.lines[-1] == f"done {RECORDS} {expected.hexdigest()}", consumer.lines[-3:]
    worst = max(x["growth_mib"] for x in rounds)
    record_memory("stalled_consumer", {
        "records": RECORDS, "value_bytes": VALUE_BYTES, "stalls": ROUNDS, "stall_s": STALL_S,
        "answer_mib": BATCH * VALUE_BYTES / 2**20, "bound_mib": BOUND_MIB, "rounds": rounds,
        "summary": f"a consumer stopped ({ROUNDS} x {STALL_S:g} s) while a "
                   f"{BATCH * VALUE_BYTES >> 20} MiB fetch answer was sent to it: RSS growth at "
                   f"most {worst:+.1f} MiB (bound {BOUND_MIB:g}); all {RECORDS} records of "
                   f"{VALUE_BYTES >> 10} KiB read intact after it resumed"})
