"""An attacker's end-to-end tests: request/answer desynchronisation, upstream address poisoning,
hostile SNI names and half-open connections, against the real SASL_SSL ``kafka3`` cluster behind
kafka-edge with TLS on both sides, in port-per-broker mode and in SNI mode (wildcard certificate
for a custom domain, reached on loopback with the right server name).

The attack (closed by "Security: follow the SaslHandshake v0 exchange exactly ..."): after a
SaslHandshake v0 login the edge used to take client frames for raw SASL tokens until one looked
like a request, and a request whose client id is not UTF-8 never did, although Kafka answers it.
An authenticated client then sends, in one write,

A. ``Produce v9`` (acks=1, client id ``ff fe``, correlation id X) for one partition of a topic
   that does not exist, whose *name* the attacker chose. The broker answers
   ``X | 00 | 02 | len+1 | name | 02 00000000 0003 ff*24 01 00 00 00 00000000 00``: the name,
   echoed byte for byte, then a fixed 40-byte tail;
B. a request whose answer carries broker addresses (Metadata v12, FindCoordinator v3 or v6,
   DescribeCluster v1), with the same correlation id X.

The edge tracked only B, so it parsed A's answer as B's. The name is chosen so that, at B's
version, the first 4 bytes (``02 | len+1 | "ke"``) are the throttle time, then come brokers of
the attacker's choice (node 1, a node of the cluster, and node 6, a new one, both at the sentinel
address 127.0.0.77:P), and a top-level tagged field (tag 0x70, 40 bytes) swallows the tail: the
misparse is exact. Every byte of the name is below 0x80 (valid UTF-8, so the broker echoes it
unchanged; the sentinel port is picked accordingly). The addresses entered the cluster's shared
broker directory and the next connection to node 1 or 6 was dialled to the sentinel.

Every attack test ends with: the sentinel (a TCP listener on 127.0.0.77 that counts accepted
connections) counted nothing after connections to nodes 1 and 6 through the edge, no upstream
broker address (``127.0.0.1``) reached the attacker, and a normal client still gets correct
answers through the bootstrap and every broker (real clients too, after the main attack). The
attacker's connection must be closed, or its answers correctly paired.

Against the code before the fix (``KAFKA_EDGE_SRC``, below), every attack after a v0 login made
the edge dial the sentinel, in both modes, with Metadata v12, FindCoordinator v3 / v6 and
DescribeCluster v1 as the second frame, also with the echo request cut across two writes and
behind silent acks=0 produce requests; and a Metadata request with a non-UTF-8 client id got the
brokers' real addresses back. Sent in separate writes, behind an answered request, during the
raw-token phase itself or after a v1 login, the pairs did not desynchronise the old code either
(they are kept: the fixed code must close the connection or pair the answers correctly). The
5,000-digit and non-ASCII SNI names got no alert (the first left a traceback).

Set ``KAFKA_EDGE_SRC`` to run the edge from another source tree (e.g. an export of the code
before the fix, to see the attacks work); tests that need the new config keys then fail to
start their edge.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from testbed.clients import ClientSecurity, consume, produce
from testbed.cluster import KafkaCluster

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import rewrite_response
from kafka_edge.protocol.messages import RESPONSES
from kafka_edge.protocol.scram import ScramClient

from .edge import REPO, EdgeProcess, free_port, free_port_block

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.52"  # port-per-broker mode
SNI_HOST = "127.0.0.53"  # the SNI listener
SENTINEL_HOST = "127.0.0.77"
DOMAIN = "sec.example.com"
BOOT_NAME = f"boot.{DOMAIN}"
UPSTREAM_HOST = b"127.0.0.1"  # kafka3's brokers (every listener); no edge address contains it
NEW_NODE = 6  # a node id the cluster does not have (inside the port-mode range 0..7)
BAD_CLIENT_ID = b"\xff\xfe"
PASSWORD_ENV = "DISCOVERY_PASSWORD"
LOGINS = ["v0-PLAIN", "v0-SCRAM-SHA-512", "v1-PLAIN"]

# Kafka 4.4 / 3.9.1 answer a Produce v9-v12 (acks=1) for one partition (index 0, null records)
# of an unknown topic with the topic name, then exactly these 40 bytes: partitions [1], index 0,
# UNKNOWN_TOPIC_OR_PARTITION, base offset / log append time / log start offset -1,
# record errors [], error message null, tags, topic tags, throttle time 0, tags.
PRODUCE_TAIL = (b"\x02" + b"\x00" * 4 + b"\x00\x03" + b"\xff" * 24 + b"\x01\x00\x00\x00"
                + b"\x00" * 4 + b"\x00")
SWALLOW_TAG = 0x70


# -- wire encoding ---------------------------------------------------------------------------------

def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint(n: int) -> bytes:
    return _uvarint((n << 1) ^ (n >> 63))


def _compact(data: bytes | None) -> bytes:
    return b"\x00" if data is None else _uvarint(len(data) + 1) + data


def _string(data: bytes) -> bytes:
    return struct.pack(">h", len(data)) + data


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _request(api_key: int, version: int, corr: int, body: bytes, *,
             client_id: bytes = b"attacker", flexible: bool = False) -> bytes:
    header = struct.pack(">hhi", api_key, version, corr) + _string(client_id)
    return _frame(header + (b"\x00" if flexible else b"") + body)


def _produce_v9(corr: int, topic: bytes, *, acks: int = 1, records: bytes | None = None,
                client_id: bytes = BAD_CLIENT_ID) -> bytes:
    """Produce v9 (flexible, topic names): one topic, partition 0."""
    body = (b"\x00" + struct.pack(">hi", acks, 5000) + _uvarint(2) + _compact(topic)
            + _uvarint(2) + struct.pack(">i", 0) + _compact(records) + b"\x00\x00\x00")
    return _request(0, 9, corr, body, client_id=client_id, flexible=True)


def _metadata_request(corr: int, *, client_id: bytes = b"attacker") -> bytes:
    """Metadata v12, no topics (just the brokers)."""
    return _request(3, 12, corr, _uvarint(1) + b"\x00\x00\x00", client_id=client_id,
                    flexible=True)


@dataclass(frozen=True)
class AddressApi:
    """An address-bearing request the attacker sends as the second frame."""

    label: str
    api_key: int
    version: int
    body: bytes

    def request(self, corr: int) -> bytes:
        return _request(self.api_key, self.version, corr, self.body, flexible=True)

    def fake_answer(self, brokers: Sequence[tuple[int, str, int]]) -> dict[str, Any]:
        """An answer of this API naming ``brokers`` (what the chosen name must parse as)."""
        entries = [{"NodeId": n, "BrokerId": n, "Host": h, "Port": p, "Rack": None,
                    "IsFenced": False, "Key": "g", "ErrorCode": 0, "ErrorMessage": None}
                   for n, h, p in brokers]
        first = entries[0]
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "EndpointType": 1,
                "ClusterId": None if self.api_key == 3 else "x", "ControllerId": first["NodeId"],
                "Topics": [], "ClusterAuthorizedOperations": 0, "Brokers": entries,
                "Coordinators": entries, "NodeId": first["NodeId"], "Host": first["Host"],
                "Port": first["Port"]}


METADATA = AddressApi("Metadata v12", 3, 12, _uvarint(1) + b"\x00\x00\x00")
FIND_COORDINATOR_V3 = AddressApi("FindCoordinator v3", 10, 3, _compact(b"g") + b"\x00\x00")
FIND_COORDINATOR_V6 = AddressApi("FindCoordinator v6", 10, 6,
                                 b"\x00" + _uvarint(2) + _compact(b"g") + b"\x00")
DESCRIBE_CLUSTER = AddressApi("DescribeCluster v1", 60, 1, b"\x00\x01\x00")


def chosen_topic_name(api: AddressApi, brokers: Sequence[tuple[int, str, int]]) -> bytes:
    """The topic name whose Produce v9 answer parses exactly as ``api``'s answer naming
    ``brokers``: "ke" completes the throttle time, the answer's body follows, and a top-level
    tagged field swallows the tail of the Produce answer."""
    message = RESPONSES[api.api_key]
    body = codec.encode(message, api.version, api.fake_answer(brokers))
    assert body[-1] == 0  # no top-level tagged fields
    name = b"ke" + body[4:-1] + bytes([1, SWALLOW_TAG, len(PRODUCE_TAIL)])
    assert all(b < 0x80 for b in name), "every byte must be valid UTF-8 on its own"
    assert len(name) < 127  # one-byte compact length
    return name


def produce_echo_answer(corr: int, name: bytes) -> bytes:
    """The broker's exact answer (without size prefix) to ``_produce_v9(corr, name)``."""
    return struct.pack(">i", corr) + b"\x00\x02" + _compact(name) + PRODUCE_TAIL


def addresses_in(api_key: int, version: int, payload: bytes) -> list[tuple[int, str, int]]:
    """Every (node id, host, port) an answer names, parsed exactly as the edge parses it."""
    seen: list[tuple[int, str, int]] = []

    def record(node: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
        seen.append((node, host, port))
        return host, port

    rewrite_response(api_key, version, payload, record)
    return seen


# -- record batch (for acks=0 produce requests the broker accepts silently) -----------------------

def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def record_batch(key: bytes, value: bytes) -> bytes:
    """A RecordBatch v2 holding one record."""
    record = (b"\x00" + _varint(0) + _varint(0) + _varint(len(key)) + key + _varint(len(value))
              + value + _varint(0))
    now = int(time.time() * 1000)
    after_crc = (struct.pack(">hiqqqhii", 0, 0, now, now, -1, -1, -1, 1)
                 + _varint(len(record)) + record)
    head = struct.pack(">iB", -1, 2)  # partition leader epoch, magic
    batch_length = len(head) + 4 + len(after_crc)
    return (struct.pack(">qi", 0, batch_length) + head + struct.pack(">I", _crc32c(after_crc))
            + after_crc)


# -- the sentinel ----------------------------------------------------------------------------------

class Sentinel:
    """A TCP listener on SENTINEL_HOST counting accepted connections. Its port's two bytes are
    both below 0x80, so the port can sit in a topic name the broker echoes unchanged."""

    def __init__(self) -> None:
        rng = random.Random(os.getpid() ^ time.monotonic_ns())
        self.sock = socket.socket()
        for _ in range(500):
            port = (rng.randrange(0x10, 0x80) << 8) | rng.randrange(1, 0x80)
            try:
                self.sock.bind((SENTINEL_HOST, port))
                break
            except OSError:
                continue
        else:
            self.sock.close()
            raise RuntimeError("no free sentinel port")
        self.port = port
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


# -- the edge, in both modes -----------------------------------------------------------------------

@dataclass
class Mode:
    """How clients reach one cluster of the shared edge."""

    name: str
    edge: EdgeProcess
    ca: Path
    port: int  # port mode: the bootstrap port; SNI mode: the listener port

    def target(self, node: int | None) -> tuple[str, int, str]:
        """(address to connect to, port, TLS server name) for the bootstrap or a broker."""
        if self.name == "port":
            return EDGE_HOST, self.port if node is None else self.port + 1 + node, EDGE_HOST
        name = BOOT_NAME if node is None else f"b-{node}.{DOMAIN}"
        return SNI_HOST, self.port, name

    def advertised(self, node: int) -> tuple[str, int]:
        """The address answers must give clients for broker ``node``."""
        if self.name == "port":
            return EDGE_HOST, self.port + 1 + node
        return f"b-{node}.{DOMAIN}", self.port

    @property
    def cluster(self) -> str:
        """The edge's name for this cluster (metrics label)."""
        return "portmode" if self.name == "port" else "snimode"

    @property
    def bootstrap(self) -> str:
        host = EDGE_HOST if self.name == "port" else BOOT_NAME
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class World:
    kafka: KafkaCluster
    edge: EdgeProcess
    ca: Path
    modes: dict[str, Mode]
    sentinel: Sentinel
    topic: str  # 3 partitions, replication factor 3: leaders on every broker


def _edge_env() -> dict[str, str]:
    src = os.environ.get("KAFKA_EDGE_SRC")
    return {"PYTHONPATH": src} if src else {}


def _upstream(kafka3: KafkaCluster) -> dict[str, Any]:
    return {"bootstrap_servers": kafka3.bootstrap("SASL_SSL").split(","),
            "tls": {"ca_file": kafka3.ca_file},
            "discovery": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "admin",
                                   "password_env": PASSWORD_ENV}}}


def _port_cluster(kafka3: KafkaCluster, cert: Path, key: Path, base: int) -> dict[str, Any]:
    return {"name": "portmode", "upstream": _upstream(kafka3), "port_routing": {
        "bind_host": EDGE_HOST, "bootstrap_port": base, "broker_port_base": base + 1,
        "node_id_min": 0, "node_id_max": 7, "advertised_host": EDGE_HOST,
        "tls": {"certificates": [{"cert_file": str(cert), "key_file": str(key)}]}}}


def _world_scope(fixture_name: str, config: pytest.Config) -> Literal["function", "module"]:
    """One shared edge per module; one per test when the edge runs from another source tree
    (a directory poisoned by one attack would otherwise show up in the next tests)."""
    return "function" if os.environ.get("KAFKA_EDGE_SRC") else "module"


@pytest.fixture(scope=_world_scope)
def world(kafka3: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One edge process serving kafka3 twice: cluster "portmode" (port per broker, TLS) and
    cluster "snimode" (an SNI listener, wildcard certificate); and the sentinel."""
    work = tmp_path_factory.mktemp("desync")
    ca = trustme.CA()
    cert = ca.issue_cert(EDGE_HOST, f"*.{DOMAIN}")
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    cert.private_key_pem.write_to_path(str(work / "edge.key"))
    (work / "edge.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    base = free_port_block(10, EDGE_HOST)
    sni_port = free_port(SNI_HOST)
    config: dict[str, Any] = {
        "listeners": [{"name": "sec", "bind": f"{SNI_HOST}:{sni_port}", "tls": {"certificates": [
            {"cert_file": str(work / "edge.pem"), "key_file": str(work / "edge.key")}]}}],
        "clusters": [
            _port_cluster(kafka3, work / "edge.pem", work / "edge.key", base),
            {"name": "snimode", "upstream": _upstream(kafka3), "sni_routing": {
                "listener": "sec", "bootstrap_host": BOOT_NAME,
                "broker_host_pattern": f"b-{{node}}.{DOMAIN}", "advertised_port": sni_port}},
        ],
    }
    topic = f"desync-{uuid.uuid4().hex[:8]}"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    sentinel = Sentinel()
    edge = EdgeProcess(config, work, env={PASSWORD_ENV: kafka3.users["admin"], **_edge_env()})
    try:
        edge.start()
        modes = {"port": Mode("port", edge, work / "ca.pem", base),
                 "sni": Mode("sni", edge, work / "ca.pem", sni_port)}
        yield World(kafka3, edge, work / "ca.pem", modes, sentinel, topic)
    finally:
        edge.stop()
        sentinel.close()


@pytest.fixture
def clean(world: World) -> Iterator[World]:
    """The world, with the sentinel's count reset; at the end: nothing reached the sentinel and
    the edge logged no traceback."""
    world.sentinel.count = 0
    yield world
    assert world.sentinel.count == 0, (
        f"kafka-edge dialled the attacker's address ({world.sentinel.count} connections)")
    assert "Traceback" not in world.edge.log()


# -- a client socket that records everything it receives -------------------------------------------

class Wire:
    def __init__(self, mode: Mode, node: int | None = None, timeout: float = 10.0) -> None:
        host, port, name = mode.target(node)
        ctx = ssl.create_default_context(cafile=str(mode.ca))
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=name)
        except BaseException:
            raw.close()
            raise
        self.received = bytearray()
        self._buf = bytearray()
        self.closed = False

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, need: int, deadline: float) -> bool:
        """Read until ``need`` bytes are buffered; False if closed or the deadline passed."""
        while len(self._buf) < need and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                break
            self.received += data
            self._buf += data
        return len(self._buf) >= need

    def frame(self, timeout: float = 10.0) -> bytes:
        frames = self.frames(1, timeout)
        if not frames:
            raise ConnectionError("closed by the edge" if self.closed else "no answer in time")
        return frames[0]

    def frames(self, count: int, timeout: float = 4.0) -> list[bytes]:
        """Up to ``count`` frames, fewer if the peer closes or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        out: list[bytes] = []
        while len(out) < count and self._fill(4, deadline):
            (size,) = struct.unpack_from(">i", self._buf)
            if not self._fill(4 + size, deadline):
                break
            out.append(bytes(self._buf[4:4 + size]))
            del self._buf[:4 + size]
        return out

    def wait_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._fill(len(self._buf) + 1, deadline)
        return self.closed


def _password(world: World) -> str:
    return world.kafka.users["alice"]


def sasl_v0_handshake(w: Wire, mechanism: str) -> None:
    w.send(_request(17, 0, 1, _string(mechanism.encode())))
    assert struct.unpack_from(">ih", w.frame()) == (1, 0)


def login(w: Wire, how: str, password: str) -> None:
    """``v0-PLAIN``, ``v0-SCRAM-SHA-512`` (raw tokens) or ``v1-PLAIN`` / ``v1-SCRAM-SHA-512``."""
    version, mechanism = how.split("-", 1)
    if version == "v0":
        sasl_v0_handshake(w, mechanism)
        if mechanism == "PLAIN":
            w.send(_frame(b"\0alice\0" + password.encode()))
            assert w.frame() == b""
        else:
            scram = ScramClient(mechanism, "alice", password)
            w.send(_frame(scram.first_message()))
            w.send(_frame(scram.final_message(w.frame())))
            scram.verify_server_final(w.frame())
        return
    w.send(_request(17, 1, 1, _string(mechanism.encode())))
    assert struct.unpack_from(">ih", w.frame()) == (1, 0)

    def authenticate(token: bytes, corr: int) -> bytes:
        w.send(_request(36, 1, corr, struct.pack(">i", len(token)) + token))
        answer = w.frame()
        assert struct.unpack_from(">ih", answer) == (corr, 0), answer
        (msg_len,) = struct.unpack_from(">h", answer, 6)
        pos = 8 + max(msg_len, 0)
        (size,) = struct.unpack_from(">i", answer, pos)
        return answer[pos + 4:pos + 4 + size]

    if mechanism == "PLAIN":
        authenticate(b"\0alice\0" + password.encode(), 2)
    else:
        scram = ScramClient(mechanism, "alice", password)
        scram.verify_server_final(authenticate(scram.final_message(
            authenticate(scram.first_message(), 2)), 3))


# -- what must hold after every attack -------------------------------------------------------------

def assert_no_upstream_address(data: bytes | bytearray, what: str) -> None:
    assert UPSTREAM_HOST not in data, f"an upstream broker address reached {what}"


def poke(mode: Mode, node: int) -> None:
    """Open a connection to broker ``node`` through the edge (which dials at once) and ask for
    ApiVersions; whatever happens is fine, the sentinel tells."""
    try:
        with Wire(mode, node, timeout=5) as w:
            w.send(_request(18, 0, 1, b""))
            w.frames(1, timeout=3)
    except (OSError, ssl.SSLError):
        pass


def assert_edge_serves_normally(world: World, mode: Mode, how: str = "v1-PLAIN") -> None:
    """A well-behaved client logs in on the bootstrap and on every broker and gets a Metadata
    answer that names exactly the cluster's brokers at their edge addresses."""
    expected = {n: mode.advertised(n) for n in world.kafka.node_ids}
    for node in [None, *world.kafka.node_ids]:
        with Wire(mode, node) as w:
            login(w, how, _password(world))
            w.send(_metadata_request(77))
            answer = w.frame()
            assert struct.unpack_from(">i", answer)[0] == 77
            named = {n: (h, p) for n, h, p in addresses_in(3, 12, answer)}
            assert named == expected, (node, named)
            assert_no_upstream_address(w.received, "a normal client")


def assert_after_attack(world: World, mode: Mode, attacker: Wire,
                        expected: Sequence[Callable[[bytes], bool]], *,
                        poisoned: Sequence[int] = ()) -> None:
    """The attacker's answers are a correctly paired prefix of ``expected`` and, if fewer, its
    connection was closed; nothing upstream reached it; the nodes the attack named are dialled
    (to give a poisoned directory the chance to show) and the sentinel counted nothing; the edge
    still serves a normal client on every broker."""
    got = attacker.frames(len(expected), timeout=4)
    closed = attacker.wait_closed(4 if len(got) < len(expected) else 0.2)
    for node in poisoned:
        poke(mode, node)
    assert world.sentinel.count == 0, (
        f"kafka-edge dialled the attacker's address {SENTINEL_HOST}:{world.sentinel.port} "
        f"({world.sentinel.count} connections); the attacker got {got!r}")
    assert_no_upstream_address(attacker.received, "the attacker")
    for i, answer in enumerate(got):
        assert expected[i](answer), f"answer {i} is not the answer to request {i}: {answer!r}"
    assert closed or len(got) == len(expected), (
        f"{len(got)} of {len(expected)} answers and the connection is still open")
    assert_edge_serves_normally(world, mode)


def is_exactly(expected: bytes) -> Callable[[bytes], bool]:
    return lambda answer: answer == expected


def names_edge_addresses(world: World, mode: Mode, api: AddressApi,
                         corr: int) -> Callable[[bytes], bool]:
    """An answer to ``api`` (correlation id ``corr``) that parses whole and names only cluster
    brokers at their edge addresses."""
    def check(answer: bytes) -> bool:
        if struct.unpack_from(">i", answer)[0] != corr:
            return False
        try:
            named = addresses_in(api.api_key, api.version, answer)
        except Exception:
            return False
        return all(n in world.kafka.node_ids and (h, p) == mode.advertised(n)
                   for n, h, p in named)
    return check


def sentinel_brokers(world: World, api: AddressApi) -> list[tuple[int, str, int]]:
    """Node 1 (a node of the cluster) and NEW_NODE, both at the sentinel (v3 FindCoordinator
    names one coordinator only: node 1)."""
    node = world.kafka.node_ids[0]
    brokers = [(node, SENTINEL_HOST, world.sentinel.port),
               (NEW_NODE, SENTINEL_HOST, world.sentinel.port)]
    return brokers[:1] if api is FIND_COORDINATOR_V3 else brokers


@dataclass
class Attack:
    """A (produce echo, address request) pair with one correlation id, checked offline first:
    the Produce answer, parsed as the address request's answer, names exactly the sentinel."""

    world: World
    mode: Mode
    api: AddressApi = METADATA
    corr: int = 4242
    brokers: list[tuple[int, str, int]] = field(default_factory=list)
    name: bytes = b""

    def __post_init__(self) -> None:
        self.brokers = sentinel_brokers(self.world, self.api)
        self.name = chosen_topic_name(self.api, self.brokers)
        echo = produce_echo_answer(self.corr, self.name)
        assert addresses_in(self.api.api_key, self.api.version, echo) == self.brokers

    @property
    def echo_request(self) -> bytes:
        return _produce_v9(self.corr, self.name)

    @property
    def address_request(self) -> bytes:
        return self.api.request(self.corr)

    @property
    def poisoned(self) -> list[int]:
        return [n for n, _, _ in self.brokers]

    def expected(self) -> list[Callable[[bytes], bool]]:
        return [is_exactly(produce_echo_answer(self.corr, self.name)),
                names_edge_addresses(self.world, self.mode, self.api, self.corr)]


def assert_real_clients_work(world: World, mode: Mode, records: int = 60) -> None:
    """Real clients produce and consume through every broker: a new topic whose 3 partitions
    have their leaders on the 3 brokers. Port mode: kafka-python produces, confluent-kafka
    consumes; SNI mode: kafka-python (``scripts/demo_client.py``) with the custom names mapped
    to the listener's loopback address inside the client process (TLS still checks them)."""
    topic = f"desync-{mode.name}-{uuid.uuid4().hex[:8]}"
    world.kafka.create_topic(topic, partitions=3, replication_factor=3)
    leaders = set(world.kafka.partition_leaders(topic).values())
    assert leaders == set(world.kafka.node_ids), f"leaders {leaders}: not every broker"
    if mode.name == "port":
        security = ClientSecurity(protocol="SASL_SSL", ca_file=str(world.ca),
                                  mechanism="SCRAM-SHA-512", username="alice",
                                  password=_password(world))
        sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(records)]
        produce("kafka-python", mode.bootstrap, topic, sent, security)
        got = consume("confluent", mode.bootstrap, topic, len(sent), security,
                      group=f"g-{topic}")
        assert sorted(got) == sorted(sent)
        return
    names = [BOOT_NAME, *(f"b-{n}.{DOMAIN}" for n in world.kafka.node_ids)]
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_client.py"), "--bootstrap", mode.bootstrap,
         "--ca", str(world.ca), "--user", "alice", "--password", _password(world),
         "--topic", topic, "--records", str(records),
         *(f"--map={n}={SNI_HOST}" for n in names)],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'"sent": {records}, "received": {records}' in out.stdout, out.stdout
    for node in world.kafka.node_ids:
        assert f"{node}: b-{node}.{DOMAIN}:{mode.port}" in out.stdout, out.stdout


# -- 1. the class: an echoing answer paired with an address-bearing request ------------------------

@pytest.mark.parametrize("how", LOGINS)
@pytest.mark.parametrize("mode_name", ["port", "sni"])
def test_echoed_bytes_cannot_become_a_broker_address(mode_name: str, how: str,
                                                     clean: World) -> None:
    """After the login, in one write: Produce v9 (client id ff fe) for a topic whose name is a
    Metadata v12 answer naming the sentinel, and Metadata v12 with the same correlation id."""
    mode = clean.modes[mode_name]
    attack = Attack(clean, mode)
    errors = ("kafka_edge_connection_errors_total", {"cluster": mode.cluster,
                                                     "kind": "client_protocol"})
    before = clean.edge.metric(errors[0], **errors[1])
    with Wire(mode) as w:
        login(w, how, _password(clean))
        w.send(attack.echo_request + attack.address_request)
        assert_after_attack(clean, mode, w, attack.expected(), poisoned=attack.poisoned)
        if w.closed:  # closed by the edge: counted as the client's protocol error
            assert clean.edge.metric(errors[0], **errors[1]) > before
    assert_real_clients_work(clean, mode)


# -- 2. variants -----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", LOGINS)
@pytest.mark.parametrize("api", [FIND_COORDINATOR_V3, FIND_COORDINATOR_V6, DESCRIBE_CLUSTER],
                         ids=lambda a: a.label.replace(" ", "-"))
def test_other_address_bearing_second_frames(api: AddressApi, how: str, clean: World) -> None:
    mode = clean.modes["port"]
    attack = Attack(clean, mode, api)
    with Wire(mode) as w:
        login(w, how, _password(clean))
        w.send(attack.echo_request + attack.address_request)
        assert_after_attack(clean, mode, w, attack.expected(), poisoned=attack.poisoned)


@pytest.mark.parametrize("how", LOGINS)
@pytest.mark.parametrize("split", ["inside-the-echo-request", "between-the-requests"])
def test_frames_split_across_writes(split: str, how: str, clean: World) -> None:
    """The two frames in separate writes, with small sleeps: the echo request cut in two (its
    rest goes with the address request), or each request in its own write."""
    mode = clean.modes["port"]
    attack = Attack(clean, mode)
    first = attack.echo_request
    with Wire(mode) as w:
        login(w, how, _password(clean))
        if split == "inside-the-echo-request":
            w.send(first[:20])
            time.sleep(0.3)
            w.send(first[20:] + attack.address_request)
        else:
            w.send(first)
            time.sleep(0.3)
            w.send(attack.address_request)
        assert_after_attack(clean, mode, w, attack.expected(), poisoned=attack.poisoned)


@pytest.mark.parametrize("how", LOGINS)
@pytest.mark.parametrize("behind", ["silent", "silent-and-answered"])
def test_pipelined_behind_other_requests(behind: str, how: str, clean: World) -> None:
    """All in one write, behind two requests that get no answer: Produce acks=0 of a valid
    batch, client id ff fe, sent on the partition leader's connection (a broker closes the
    connection on an acks=0 error such as NOT_LEADER_OR_FOLLOWER); in the second case also
    behind one answered request (ApiVersions v0, client id ff fe)."""
    mode = clean.modes["port"]
    attack = Attack(clean, mode)
    before = b"".join(_produce_v9(100 + i, clean.topic.encode(), acks=0,
                                  records=record_batch(b"k", f"silent-{i}".encode()))
                      for i in range(2))
    expected = attack.expected()
    if behind == "silent-and-answered":
        before += _request(18, 0, 200, b"", client_id=BAD_CLIENT_ID)  # ApiVersions v0
        expected.insert(0, lambda answer: struct.unpack_from(">ih", answer) == (200, 0))
    leader = clean.kafka.partition_leaders(clean.topic)[0]
    with Wire(mode, leader) as w:
        login(w, how, _password(clean))
        w.send(before + attack.echo_request + attack.address_request)
        assert_after_attack(clean, mode, w, expected, poisoned=attack.poisoned)


@pytest.mark.parametrize("case", ["scram-request-for-client-final", "plain-requests-before-token",
                                  "scram-requests-before-server-first",
                                  "scram-two-tokens-at-once"])
def test_attack_during_the_raw_token_phase(case: str, clean: World) -> None:
    """Frames where a raw SASL token is expected, or sent while the broker's token is awaited."""
    mode = clean.modes["port"]
    attack = Attack(clean, mode)
    pair = attack.echo_request + attack.address_request
    password = _password(clean)
    with Wire(mode) as w:
        mechanism = "PLAIN" if case.startswith("plain") else "SCRAM-SHA-512"
        sasl_v0_handshake(w, mechanism)
        scram = ScramClient("SCRAM-SHA-512", "alice", password)
        if case == "scram-request-for-client-final":
            w.send(_frame(scram.first_message()))
            w.frame()  # server-first
            w.send(pair)  # in place of client-final
            expected: list[Callable[[bytes], bool]] = []
        elif case == "plain-requests-before-token":
            w.send(_frame(b"\0alice\0" + password.encode()) + pair)
            expected = [is_exactly(b""), *attack.expected()]
        elif case == "scram-requests-before-server-first":
            w.send(_frame(scram.first_message()) + pair)
            expected = []
        else:
            w.send(_frame(scram.first_message()) + _frame(b"c=biws,r=guess,p=Z3Vlc3M="))
            expected = []
        assert_after_attack(clean, mode, w, expected, poisoned=attack.poisoned)


# -- 3. an address-bearing answer to a request with a client id that is not UTF-8 ------------------

@pytest.mark.parametrize("how", LOGINS)
@pytest.mark.parametrize("mode_name", ["port", "sni"])
def test_metadata_with_non_utf8_client_id_is_rewritten(mode_name: str, how: str,
                                                       clean: World) -> None:
    """Right after the login, Metadata v12 with client id ff fe: its answer reaches the client
    rewritten (the old code took it for a raw SASL token and relayed the answer as it came)."""
    mode = clean.modes[mode_name]
    with Wire(mode) as w:
        login(w, how, _password(clean))
        w.send(_metadata_request(9, client_id=BAD_CLIENT_ID))
        answer = w.frame()
        assert_no_upstream_address(w.received, "the attacker")
        named = {n: (h, p) for n, h, p in addresses_in(3, 12, answer)}
        assert named == {n: mode.advertised(n) for n in clean.kafka.node_ids}


# -- 4. hostile SNI names --------------------------------------------------------------------------

def client_hello(server_name: bytes) -> bytes:
    """A TLS 1.2/1.3 ClientHello naming ``server_name``, cut into records of at most 16 KB."""
    sni = struct.pack(">HBH", len(server_name) + 3, 0, len(server_name)) + server_name
    extensions = (struct.pack(">HH", 0, len(sni)) + sni
                  + bytes.fromhex("002b0005040304 0303".replace(" ", ""))  # supported_versions
                  + bytes.fromhex("000a00040002001d")  # supported_groups: x25519
                  + bytes.fromhex("000d0006000404030804"))  # signature_algorithms
    ciphers = bytes.fromhex("13011302c02fc030")
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack(">H", len(ciphers)) + ciphers
            + b"\x01\x00" + struct.pack(">H", len(extensions)) + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"".join(b"\x16\x03\x01" + struct.pack(">H", len(handshake[i:i + 16384]))
                    + handshake[i:i + 16384] for i in range(0, len(handshake), 16384))


ALERT_TAIL = bytes([0, 2, 2, 112])  # after 21 3 x: length 2, fatal, unrecognized_name
HOSTILE_NAMES = {
    "5000-digit-node": b"b-" + b"7" * 5000 + b"." + DOMAIN.encode(),
    "non-ascii": "b-1.sé.".encode() + DOMAIN.encode(),
    "16kb": b"x" * (16 * 1024 - len(DOMAIN) - 1) + b"." + DOMAIN.encode(),
    "suffix-evil": f"b-1.{DOMAIN}.evil".encode(),
    "prefix-evil": f"evil.b-1.{DOMAIN}".encode(),
}


def test_hostile_sni_names_get_unrecognized_name(clean: World) -> None:
    mode = clean.modes["sni"]
    host, port, _ = mode.target(None)
    refused = ("kafka_edge_refused_connections_total", {"listener": "sec",
                                                        "reason": "unknown_sni"})
    before = clean.edge.metric(refused[0], **refused[1])
    alerts: dict[str, bytes] = {}
    for label, name in HOSTILE_NAMES.items():
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(client_hello(name))
            data = b""
            try:
                while len(data) < 7:
                    chunk = s.recv(7 - len(data))
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            alerts[label] = data
    wrong = {label: data for label, data in alerts.items()
             if not (len(data) == 7 and data[:2] == b"\x15\x03" and data[3:] == ALERT_TAIL)}
    assert not wrong, f"no unrecognized_name alert (15 03 xx 00 02 02 70) for: {wrong}"
    assert clean.edge.metric(refused[0], **refused[1]) == before + len(HOSTILE_NAMES)
    assert_edge_serves_normally(clean, mode)


# -- 5. half-sent frames and silent clients --------------------------------------------------------

def test_half_sent_frame_and_silent_client_are_closed(kafka3: KafkaCluster, world: World,
                                                      tmp_path: Path) -> None:
    """limits.incomplete_frame_timeout_s and limits.first_request_timeout_s, both 2 s: a client
    that sends 13 bytes of a frame (its first, or a later one) and goes quiet, and one that
    sends nothing after the TLS handshake, are closed within about 5 s of their last byte; a
    client that is quiet between whole requests is not."""
    base = free_port_block(10, EDGE_HOST)
    config = {"clusters": [_port_cluster(kafka3, world.ca.parent / "edge.pem",
                                         world.ca.parent / "edge.key", base)],
              "limits": {"incomplete_frame_timeout_s": 2, "first_request_timeout_s": 2}}
    mode = Mode("port", world.edge, world.ca, base)
    with EdgeProcess(config, tmp_path, env={PASSWORD_ENV: kafka3.users["admin"],
                                            **_edge_env()}) as edge:
        partial = struct.pack(">ihhih", 30, 3, 12, 2, 8) + b"a"  # 13 bytes of a 34-byte frame
        silent, half_first, half_later, idle = (Wire(mode) for _ in range(4))
        wires = {"silent": silent, "13 bytes of the first frame": half_first,
                 "13 bytes of a later frame": half_later}
        try:
            last_byte = {"silent": time.monotonic()}
            half_first.send(partial)
            last_byte["13 bytes of the first frame"] = time.monotonic()
            half_later.send(_request(18, 0, 1, b""))
            assert struct.unpack_from(">i", half_later.frame())[0] == 1
            half_later.send(partial)
            last_byte["13 bytes of a later frame"] = time.monotonic()
            login(idle, "v1-PLAIN", kafka3.users["alice"])
            closed_after: dict[str, float] = {}
            deadline = time.monotonic() + 7
            while len(closed_after) < len(wires) and time.monotonic() < deadline:
                for label, w in wires.items():
                    if label not in closed_after and w.wait_closed(0.05):
                        closed_after[label] = time.monotonic() - last_byte[label]
            assert set(closed_after) == set(wires), f"not closed: {set(wires) - set(closed_after)}"
            for label, seconds in closed_after.items():
                assert 1.5 <= seconds <= 5.0, f"{label}: closed {seconds:.1f} s after its last byte"
            idle.send(_metadata_request(2))  # whole frames, then quiet: it stayed open
            assert struct.unpack_from(">i", idle.frame())[0] == 2
        finally:
            for w in (silent, half_first, half_later, idle):
                w.sock.close()
        log = edge.log()
        assert "(limits.incomplete_frame_timeout_s)" in log
        assert "(limits.first_request_timeout_s)" in log
        assert edge.metric("kafka_edge_connection_errors_total", kind="timeout") >= 3


# -- real clients after all of the above -----------------------------------------------------------

@pytest.mark.parametrize("mode_name", ["port", "sni"])
def test_real_clients_after_all_the_attacks(mode_name: str, clean: World) -> None:
    """Real clients still work on the shared edge after every attack above; no attack got an
    address into the directory or a dial attempted outside the upstream address policy (the
    pairing alone stopped them: the policy, the second line, had nothing to refuse)."""
    mode = clean.modes[mode_name]
    assert_real_clients_work(clean, mode)
    text = clean.edge.metrics()
    for name in ("kafka_edge_upstream_addresses_refused_total",
                 "kafka_edge_upstream_dials_refused_total"):
        assert f"# TYPE {name} counter" in text, name
        assert clean.edge.metric(name, cluster=mode.cluster) == 0, name
