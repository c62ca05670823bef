"""Draining on SIGTERM, port-per-broker mode, the 3-broker cluster over PLAINTEXT.

On SIGTERM each connection takes no new request after the frame it is in and is closed only once
every answer to what reached the broker has been written whole; ``limits.drain_timeout_s`` later
the rest are aborted.

1. A multi-MB Fetch answer (v16, streamed through the edge) stuck half way inside the edge at
   SIGTERM (flow control towards a client with a small receive buffer that stalls, then reads
   slowly) reaches the client whole, then the edge closes the connection and exits 0: the whole
   of it, including what the edge had queued for the client when it closed. The same with a
   request pipelined after SIGTERM, which the edge must not forward and which it leaves unread
   (closing a socket with unread input resets the connection, and a reset throws away what the
   kernel still had to send). Control: with a drain time-out shorter than the client's stall the
   answer is cut, so these checks can tell a cut (the previous behaviour, closing a connection
   as soon as its last answer's header had arrived, fails them).
2. A non-idempotent producer (acks=all, retries, five requests in flight per connection) runs
   through SIGTERM and a restart of the edge on the same ports, twice: every record is
   acknowledged exactly once and the topic holds every record exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testbed.clients import produce
from testbed.cluster import KafkaCluster

from kafka_edge.protocol.codec import decode_all
from kafka_edge.protocol.messages import FETCH_RESPONSE, METADATA_RESPONSE
from kafka_edge.protocol.primitives import read_varint, read_varlong
from kafka_edge.protocol.primitives import skip_tagged_section as skip_tags

from .edge import EdgeProcess, free_port_block, port_routing_config, read_frame
from .producing import PRODUCER, PRODUCER_CONFIG, all_values, producer_process

__all__ = ["producer_process"]  # a fixture, used by name

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"  # the brokers listen on 127.0.0.1

RECORD_BYTES = 8 * 1024
RECORD_COUNT = 1024  # 8 MiB of values in one partition
METADATA_VERSION = 12  # topic ids (v10+)
FETCH_VERSION = 16  # streamed through the edge (FetchWalk), topic ids
HEAD_BYTES = 64 * 1024  # what the client reads before SIGTERM
CLIENT_RCVBUF = 16 * 1024


# --------------------------------------------------------------------------------------------
# Kafka requests and answers by hand (request header v2: flexible versions only)


def _request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"drain-test"
    payload = (struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
               + b"\x00" + body)
    return struct.pack(">i", len(payload)) + payload


def _metadata_request(topic: str, correlation_id: int) -> bytes:
    name = topic.encode()
    assert len(name) < 126  # one-byte compact lengths
    body = (b"\x02" + bytes(16) + bytes([len(name) + 1]) + name + b"\x00"  # [topic id, name]
            + b"\x00\x00\x00")  # no auto-creation, no authorized operations, no tags
    return _request(3, METADATA_VERSION, correlation_id, body)


def _fetch_request(topic_id: uuid.UUID, correlation_id: int, max_bytes: int) -> bytes:
    body = (struct.pack(">iiibii", 500, 1, max_bytes, 0, 0, -1)  # wait, min, max, isolation,
                                                                  # no fetch session
            + b"\x02" + topic_id.bytes
            + b"\x02" + struct.pack(">iiqiqi", 0, -1, 0, -1, -1, max_bytes) + b"\x00"
            + b"\x00"  # topic tags
            + b"\x01"  # no forgotten topics
            + b"\x01"  # rack id ""
            + b"\x00")
    return _request(1, FETCH_VERSION, correlation_id, body)


@dataclass(frozen=True)
class Leader:
    topic_id: uuid.UUID
    node_id: int
    address: tuple[str, int]  # as the edge advertises it


def _find_leader(bootstrap: tuple[str, int], topic: str) -> Leader:
    """Metadata v12 through the edge: the topic's id and its partition 0 leader's edge port."""
    with socket.create_connection(bootstrap, timeout=10) as s:
        s.sendall(_metadata_request(topic, 1))
        frame = read_frame(s)
    assert struct.unpack_from(">i", frame)[0] == 1
    answer = decode_all(METADATA_RESPONSE, METADATA_VERSION, frame, skip_tags(frame, 4))
    (info,) = answer["Topics"]
    assert info["ErrorCode"] == 0, info
    (partition,) = info["Partitions"]
    brokers = {b["NodeId"]: (b["Host"], b["Port"]) for b in answer["Brokers"]}
    leader = partition["LeaderId"]
    assert brokers[leader][0] == EDGE_HOST, brokers
    return Leader(info["TopicId"], leader, brokers[leader])


def _record_values(batches: bytes) -> list[bytes]:
    """Values of the records in uncompressed v2 record batches (a partial batch at the end is
    an error: the answer asked for everything)."""
    values: list[bytes] = []
    pos = 0
    view = memoryview(batches)
    while pos < len(view):
        _base, length, _epoch, magic = struct.unpack_from(">qiib", view, pos)
        end = pos + 12 + length
        assert magic == 2 and end <= len(view), (pos, magic, length, len(view))
        attributes = struct.unpack_from(">h", view, pos + 21)[0]
        assert attributes & 0x07 == 0, "compressed batch"
        (count,) = struct.unpack_from(">i", view, pos + 57)
        at = pos + 61
        for _ in range(count):
            size, at = read_varint(view, at)
            record_end = at + size
            at += 1  # attributes
            _, at = read_varlong(view, at)  # timestamp delta
            _, at = read_varint(view, at)  # offset delta
            key_len, at = read_varint(view, at)
            at += max(key_len, 0)
            value_len, at = read_varint(view, at)
            values.append(bytes(view[at:at + value_len]))
            at = record_end
        assert at == end, (at, end)
        pos = end
    return values


def _fetched_values(answer: bytes, correlation_id: int) -> list[bytes]:
    """Decode a whole Fetch answer (with its size prefix): the partition's record values."""
    assert struct.unpack_from(">ii", answer) == (len(answer) - 4, correlation_id)
    body = decode_all(FETCH_RESPONSE, FETCH_VERSION, answer, skip_tags(answer, 8))
    assert body["ErrorCode"] == 0
    (topic,) = body["Responses"]
    (partition,) = topic["Partitions"]
    assert partition["ErrorCode"] == 0, partition
    return _record_values(partition["Records"] or b"")


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def big_topic(kafka3: KafkaCluster) -> tuple[str, list[bytes]]:
    """A one-partition topic holding RECORD_COUNT values of RECORD_BYTES (random bytes),
    produced straight to the cluster."""
    topic = f"drain-big-{uuid.uuid4().hex[:6]}"
    kafka3.create_topic(topic, partitions=1, replication_factor=3)
    values = [b"%08d" % i + os.urandom(RECORD_BYTES - 8) for i in range(RECORD_COUNT)]
    produce("confluent", kafka3.bootstrap("PLAINTEXT"), topic,
            [(b"%d" % i, v) for i, v in enumerate(values)],
            extra={"compression.type": "none", "linger.ms": "20"})
    return topic, values


def _edge_config(kafka3: KafkaCluster, base: int, drain_timeout_s: float) -> dict[str, Any]:
    config = port_routing_config(upstream=kafka3.bootstrap("PLAINTEXT").split(","),
                                 bind_host=EDGE_HOST, base=base)
    config["limits"] = {"drain_timeout_s": drain_timeout_s}
    return config


# --------------------------------------------------------------------------------------------
# 1. a large Fetch answer in flight at SIGTERM


@dataclass
class DrainedFetch:
    size: int  # the answer's size prefix
    answer: bytes = field(repr=False)  # every byte the client read
    ended: str  # "eof" or "reset"
    read_at_sigterm: int  # by the client
    edge_read_at_sigterm: int  # from the brokers, by the edge (its metric)
    alive_after_stall: bool  # the edge still ran when the client started reading again
    exit_code: int | None
    exit_after: float  # seconds from SIGTERM to the edge's exit
    log: str = field(repr=False)


def _wait_until_stalled(proc: EdgeProcess) -> int:
    """Bytes the edge has read from brokers, once that stops growing: flow control holds the
    rest of the answer back (the metric is updated once a second)."""
    last = -1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(1.1)
        now = int(proc.metric("kafka_edge_relayed_bytes_total", direction="broker_to_client"))
        if now == last:
            return now
        last = now
    raise AssertionError(f"the edge kept reading from the broker ({last} bytes)")


def _read_until_closed(sock: socket.socket, pause: float) -> tuple[bytes, str]:
    """Everything until the edge closes, ``pause`` seconds between small reads."""
    got = bytearray()
    while True:
        try:
            chunk = sock.recv(16 * 1024)
        except ConnectionResetError:
            return bytes(got), "reset"
        if not chunk:
            return bytes(got), "eof"
        got += chunk
        time.sleep(pause)


def _fetch_through_sigterm(kafka3: KafkaCluster, topic: str, workdir: Path, *,
                           drain_timeout_s: float, stall_s: float,
                           after_sigterm: bytes = b"") -> DrainedFetch:
    """Ask for the whole partition, read HEAD_BYTES of the answer, SIGTERM the edge, read
    nothing for ``stall_s`` seconds (sending ``after_sigterm`` half way through), then read the
    rest slowly until the edge closes."""
    base = free_port_block(10, EDGE_HOST)
    proc = EdgeProcess(_edge_config(kafka3, base, drain_timeout_s), workdir).start()
    try:
        leader = _find_leader((EDGE_HOST, base), topic)
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)  # before connect
            sock.settimeout(30)
            sock.connect(leader.address)
            sock.sendall(_fetch_request(leader.topic_id, 7, 64 << 20))
            head = b""
            while len(head) < HEAD_BYTES:
                chunk = sock.recv(HEAD_BYTES - len(head))
                assert chunk, "closed before SIGTERM"
                head += chunk
            (size,) = struct.unpack_from(">i", head)
            edge_read = _wait_until_stalled(proc)
            popen = proc.proc
            assert popen is not None and popen.poll() is None
            exited_at: list[float] = []

            def watch() -> None:
                popen.wait()
                exited_at.append(time.monotonic())

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            proc.signal(signal.SIGTERM)
            sigterm_at = time.monotonic()
            if after_sigterm:
                time.sleep(stall_s / 2)
                sock.sendall(after_sigterm)
                time.sleep(stall_s / 2)
            else:
                time.sleep(stall_s)
            alive = not exited_at
            rest, ended = _read_until_closed(sock, pause=0.004)
        finally:
            sock.close()
        watcher.join(drain_timeout_s + 5)
        exit_after = exited_at[0] - sigterm_at if exited_at else float("inf")
        return DrainedFetch(size, head + rest, ended, len(head), edge_read, alive, popen.poll(),
                            exit_after, proc.log())
    finally:
        proc.stop()


def test_large_fetch_answer_in_flight_at_sigterm_arrives_whole(
        kafka3: KafkaCluster, big_topic: tuple[str, list[bytes]], tmp_path: Path) -> None:
    topic, values = big_topic
    drain_timeout_s = 20.0
    got = _fetch_through_sigterm(kafka3, topic, tmp_path, drain_timeout_s=drain_timeout_s,
                                 stall_s=2.0)
    # stuck half way: the edge had read part of the answer from the broker, the client less
    assert got.size > RECORD_COUNT * RECORD_BYTES
    assert got.read_at_sigterm < got.edge_read_at_sigterm < got.size, got
    assert len(got.answer) == got.size + 4, (
        f"cut: {len(got.answer)} of {got.size + 4} bytes arrived, then {got.ended}")
    assert got.ended == "eof"
    assert got.alive_after_stall, "the edge exited while an answer was half written"
    fetched = _fetched_values(got.answer, 7)
    assert len(fetched) == RECORD_COUNT
    assert sum(map(len, fetched)) == RECORD_COUNT * RECORD_BYTES
    assert fetched == values
    assert got.exit_code == 0, got.log[-3000:]
    assert got.exit_after < drain_timeout_s
    assert "proxy shutting down" not in got.log  # nothing was left to abort
    assert "Traceback" not in got.log


def test_request_sent_after_sigterm_is_dropped_and_does_not_cut_the_answer(
        kafka3: KafkaCluster, big_topic: tuple[str, list[bytes]], tmp_path: Path) -> None:
    """A client that pipelines another request while the edge drains (a producer with several
    requests in flight does): that request never reaches the broker (the client resends it on
    its next connection) and the answer being written still arrives whole. The edge leaves the
    request unread in its socket, so this also catches a close that resets the connection (a
    reset discards what the kernel still had to send)."""
    topic, values = big_topic
    got = _fetch_through_sigterm(kafka3, topic, tmp_path, drain_timeout_s=20.0, stall_s=2.0,
                                 after_sigterm=_metadata_request(topic, 8))
    assert got.read_at_sigterm < got.edge_read_at_sigterm < got.size, got
    assert len(got.answer) == got.size + 4, (  # and nothing after it: no answer to request 8
        f"cut: {len(got.answer)} of {got.size + 4} bytes arrived, then {got.ended}")
    assert _fetched_values(got.answer, 7) == values
    assert got.exit_code == 0, got.log[-3000:]
    assert " requests=2 " not in got.log  # the Metadata request was not forwarded
    assert "proxy shutting down" not in got.log  # nothing was left to abort


def test_control_a_drain_timeout_shorter_than_the_stall_cuts_the_answer(
        kafka3: KafkaCluster, big_topic: tuple[str, list[bytes]], tmp_path: Path) -> None:
    """The check above can detect a cut: aborted after drain_timeout_s, the answer is short."""
    topic, _ = big_topic
    got = _fetch_through_sigterm(kafka3, topic, tmp_path, drain_timeout_s=1.0, stall_s=3.0)
    assert got.read_at_sigterm < got.edge_read_at_sigterm < got.size, got
    assert len(got.answer) < got.size + 4, "not cut: the control cannot detect a cut"
    assert not got.alive_after_stall
    assert got.exit_code == 0, got.log[-3000:]
    assert got.exit_after < 1.0 + 2.0


# --------------------------------------------------------------------------------------------
# 2. a non-idempotent producer through SIGTERM and restarts

PRODUCER_COUNT = 30_000
PRODUCER_RATE = 3_000  # records per second: the run (10 s) spans both restarts
RESTART_AT = (0.25, 0.6)  # fractions of the records sent when the edge gets SIGTERM

@dataclass
class ProducerRun:
    result: dict[str, Any]  # the producer's summary
    exits: list[tuple[int | None, float]]  # per SIGTERM: exit code, seconds to exit
    logs: dict[str, str]  # edge name -> log
    last_edge: str


def _produce_through_restarts(config: dict[str, Any], spec: dict[str, Any], workdir: Path,
                              producer_process: list[subprocess.Popen[str]]) -> ProducerRun:
    """Run PRODUCER through the edge; at each RESTART_AT fraction sent, SIGTERM the edge, wait
    for it to exit and start a new one with the same config (same ports). By records sent, not
    acknowledged: how long a restart takes does not move the next one past the end of the run."""
    edges = [EdgeProcess(config, workdir, name="edge-0").start()]
    stderr_path = workdir / "producer.stderr"
    try:
        with stderr_path.open("w") as stderr:
            producer = subprocess.Popen([sys.executable, "-c", PRODUCER, json.dumps(spec)],
                                        stdout=subprocess.PIPE, stderr=stderr, text=True)
        producer_process.append(producer)
        assert producer.stdout is not None
        result: dict[str, Any] | None = None
        exits: list[tuple[int | None, float]] = []
        pending = list(RESTART_AT)
        for line in producer.stdout:
            word, _, rest = line.partition(" ")
            if word == "result":
                result = json.loads(rest)
            if word != "progress" or not pending:
                continue
            sent, acked = map(int, rest.split())
            if sent < pending[0] * spec["count"]:
                continue
            # still running = records still unacknowledged: the restart lands mid-run
            assert producer.poll() is None and acked < spec["count"], \
                "the producer got ahead of the restarts: slow it down"
            pending.pop(0)
            old = edges[-1]
            assert old.proc is not None
            old.signal(signal.SIGTERM)
            sigterm_at = time.monotonic()
            try:
                code: int | None = old.proc.wait(15)
            except subprocess.TimeoutExpired:
                code = None
            exits.append((code, time.monotonic() - sigterm_at))
            edges.append(EdgeProcess(config, workdir, name=f"edge-{len(edges)}").start())
        assert producer.wait(30) == 0, stderr_path.read_text()[-3000:]
        assert result is not None, stderr_path.read_text()[-3000:]
        assert not pending, f"restarts not done: {pending}"
        return ProducerRun(result, exits, {e.name: e.log() for e in edges}, edges[-1].name)
    finally:
        for e in edges:
            e.stop()


def test_non_idempotent_producer_through_sigterm_and_restarts_acks_every_record_once(
        kafka3: KafkaCluster, tmp_path: Path,
        producer_process: list[subprocess.Popen[str]]) -> None:
    topic = f"drain-produce-{uuid.uuid4().hex[:6]}"
    partitions = 3
    kafka3.create_topic(topic, partitions=partitions, replication_factor=3)
    base = free_port_block(10, EDGE_HOST)
    drain_timeout_s = 10.0
    spec = {"bootstrap": f"{EDGE_HOST}:{base}", "topic": topic, "count": PRODUCER_COUNT,
            "rate": PRODUCER_RATE, "config": PRODUCER_CONFIG, "timeout": 60}
    run = _produce_through_restarts(_edge_config(kafka3, base, drain_timeout_s), spec, tmp_path,
                                    producer_process)
    # the producer: every record acknowledged, none twice, no failed delivery
    result = run.result
    assert result["errors"] == [], result
    assert result["never"] == [] and result["more"] == [], result
    assert result["once"] == result["acked"] == PRODUCER_COUNT, result
    # the edges drained (nothing aborted) and exited 0 within their drain time-out
    for code, after in run.exits:
        assert code == 0 and after < drain_timeout_s, (run.exits, run.logs)
    for name, text in run.logs.items():
        assert "Traceback" not in text, (name, text[-3000:])
        if name != run.last_edge:
            assert "proxy shutting down" not in text, (name, text[-3000:])
    # the topic, read straight from the cluster: every number exactly once
    stored = all_values(kafka3.bootstrap("PLAINTEXT"), topic, partitions)
    numbers = sorted(int(v[:8]) for v in stored)
    duplicates = sorted(n for n, c in Counter(numbers).items() if c > 1)
    assert not duplicates, f"{len(numbers) - len(set(numbers))} duplicates: {duplicates[:20]}"
    missing = sorted(set(range(PRODUCER_COUNT)) - set(numbers))
    assert numbers == list(range(PRODUCER_COUNT)), (
        f"{len(numbers)} stored, {len(missing)} missing: {missing[:20]}")
