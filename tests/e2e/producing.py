"""A numbered-record producer (librdkafka, in its own process) and a reader that reads a topic
straight from the cluster: what the fault tests count records with."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# librdkafka (confluent-kafka), non-idempotent, retrying; prints "progress SENT ACKED" lines and
# one "result {json}" line with how often each record number was acknowledged.
PRODUCER = r"""
import json, sys, time
from confluent_kafka import Producer

spec = json.loads(sys.argv[1])
n, rate = spec["count"], spec["rate"]
acks = [0] * n
errors = []
acked = 0

def on_delivery(err, msg):
    global acked
    if err is not None:
        errors.append(f"{msg.key()!r}: {err}")
        return
    acks[int(msg.key())] += 1
    acked += 1

producer = Producer({"bootstrap.servers": spec["bootstrap"], **spec["config"]})
start = last = time.monotonic()
for i in range(n):
    while True:
        try:
            producer.produce(spec["topic"], key=b"%d" % i, value=b"%08d" % i + b"." * 40,
                             on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
    if i % 50 == 49:
        producer.poll(0)
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        if time.monotonic() - last >= 0.1:
            last = time.monotonic()
            print("progress", i + 1, acked, flush=True)
deadline = time.monotonic() + spec["timeout"]
while acked + len(errors) < n and time.monotonic() < deadline:
    producer.flush(0.2)
    print("progress", n, acked, flush=True)
print("result", json.dumps({
    "acked": acked,
    "once": sum(1 for a in acks if a == 1),
    "never": [i for i, a in enumerate(acks) if a == 0][:20],
    "more": [i for i, a in enumerate(acks) if a > 1][:20],
    "errors": errors[:20],
    "elapsed": time.monotonic() - start,
}), flush=True)
"""

PRODUCER_CONFIG = {
    "acks": "all",
    "enable.idempotence": False,
    "retries": 2_147_483_647,
    "max.in.flight.requests.per.connection": 5,  # > 1: retried requests may be reordered
    "linger.ms": 5,
    "batch.num.messages": 100,
    "compression.type": "none",
    "message.timeout.ms": 60_000,
    "request.timeout.ms": 30_000,
    "retry.backoff.ms": 100,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
}


@pytest.fixture
def producer_process() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def end_offset(consumer: Any, partition: Any, deadline: float) -> int:
    """The partition's high watermark, asked again while the broker answers with a retriable
    error: just after a leader moves, the new leader answers ListOffsets with
    OFFSET_NOT_AVAILABLE ("leader high watermark is not caught up") until its followers have
    fetched, which Kafka defines as retriable (a CI run met it in leaders_moved). librdkafka
    does not flag these errors retriable here, so the codes Kafka's protocol marks retriable for
    ListOffsets are named."""
    from confluent_kafka import KafkaError, KafkaException

    retriable = {KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.LEADER_NOT_AVAILABLE,
                 KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART,
                 KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH}
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=30)[1])
        except KafkaException as exc:
            if exc.args[0].code() not in retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def all_values(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    """Every record of ``topic`` read straight from the cluster, from offset 0 to the end."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drain-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        deadline = time.monotonic() + 60
        ends = {p: end_offset(consumer, TopicPartition(topic, p), deadline)
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[bytes] = []
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < partitions and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                error, partition = msg.error(), msg.partition()
                assert partition is not None
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done.add(partition)
                        continue
                    raise AssertionError(f"consume error: {error}")
                value, offset = msg.value(), msg.offset()
                assert value is not None and offset is not None
                out.append(value)
                if offset + 1 >= ends[partition]:
                    done.add(partition)
        assert len(done) == partitions, f"not read to the end: {ends}, done {done}"
        assert len(out) == sum(ends.values())
        return out
    finally:
        consumer.close()
