"""Seed inputs for each fuzz target: valid inputs (encoded by the codecs and the test encoders,
real ClientHellos made by this Python's OpenSSL, the example configurations) from which the
fuzzer mutates. Without them, random bytes would rarely get past the first length check."""

from __future__ import annotations

import contextlib
import ssl
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _request(key: int, version: int, corr: int, body: bytes, client_id: bytes = b"c") -> bytes:
    return _frame(struct.pack(">hhih", key, version, corr, len(client_id)) + client_id + body)


def _produce(corr: int, version: int, acks: int) -> bytes:
    if version >= 9:  # flexible: header tags, compact nullable transactional id
        return _request(0, version, corr, b"\x00\x00" + struct.pack(">hi", acks, 1000) + b"\x01")
    return _request(0, version, corr, struct.pack(">hhi", -1, acks, 1000) + b"\x00" * 4)


def _sasl(corr: int, mechanism: bytes) -> bytes:
    return _request(17, 0, corr, struct.pack(">h", len(mechanism)) + mechanism)


def request_stream() -> list[bytes]:
    streams = [
        _request(18, 3, 1, b"\x00\x00\x00") + _request(3, 12, 2, b"\x00\x01\x00\x00"),
        _produce(1, 9, 1) + _produce(2, 9, 0) + _produce(3, 3, -1) + _request(1, 4, 4, b""),
        _sasl(1, b"PLAIN") + _frame(b"\x00alice\x00secret"),
        _sasl(1, b"SCRAM-SHA-512") + _frame(b"n,,n=a,r=b") + _request(3, 1, 9, b"\x00" * 4),
        _request(18, 99, 5, b"") + _request(-1, 0, 6, b"") + _request(3, 1, 6, b""),
        struct.pack(">i", -1) + b"\x00" * 8,
    ]
    return [bytes([size]) + s for s in streams for size in (0, 1, 5)]


def _examples(message: Any, version: int, count: int) -> list[bytes]:
    """Encoded random values of ``message`` at ``version``, hosts looking like upstream ones."""
    sys.path.insert(0, str(REPO / "tests" / "unit" / "protocol"))
    from hypothesis.errors import NonInteractiveExampleWarning
    from protocol_strategies import UPSTREAM_HOSTS, message_values

    from kafka_edge.protocol import codec

    strategy = message_values(message, version, max_list=2, overrides={"Host": UPSTREAM_HOSTS})
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        for _ in range(count):
            header = b"\x00\x00\x00\x07" + (b"\x00" if message.is_flexible(version) else b"")
            out.append(header + codec.encode(message, version, strategy.example()))
    return out


def rewrite() -> list[bytes]:
    from fuzz.targets_protocol import REWRITE_CASES
    from kafka_edge.protocol.messages import RESPONSES

    seeds = []
    for i, (key, version) in enumerate(REWRITE_CASES):
        if version < RESPONSES[key].valid[0]:
            continue
        seeds += [bytes([i]) + payload for payload in _examples(RESPONSES[key], version, 2)]
    return seeds


def response_stream() -> list[bytes]:
    # the stream target frames the payload itself and supplies the correlation id
    return [seed[:1] + bytes([size]) + seed[5:] for seed in rewrite() for size in (0, 7)]


def api_versions() -> list[bytes]:
    from kafka_edge.protocol.messages import API_VERSIONS_RESPONSE

    return [bytes([version + 1]) + payload for version in range(5)
            for payload in _examples(API_VERSIONS_RESPONSE, version, 3)]


def request_peek() -> list[bytes]:
    return [bytes([version]) + _produce(1, version, acks)[4:]
            for version in (0, 3, 8, 9, 12) for acks in (0, 1, -1)]


def sasl_v0() -> list[bytes]:
    answer = struct.pack(">ihi", 1, 0, 2) + b"\x00\x05PLAIN\x00\x06GSSAPI"
    return [bytes([m, 0, 0, 2, 10, 3, 0, 2, 10, 3, 5, 2, 1]) + answer for m in range(6)]


def pairing() -> list[bytes]:
    # opcode (low 3 bits: kind; high bits: where the frame is cut), two parameters; an odd
    # last parameter lets the broker answer
    plain = bytes([0, 1, 1, 1, 2, 3, 0x21, 3, 5])
    login = bytes([2, 1, 0, 3, 0, 1, 3, 0, 4, 3, 0, 3, 0, 4, 1])
    return [plain, login, login + plain, bytes([2, 1, 1, 3, 2, 3, 3, 0, 3]) + plain]


def client_hello() -> list[bytes]:
    out = []
    for name in ("b-1.kafka.example.com", "bootstrap.kafka.example.com", None, "x." * 60 + "com"):
        ctx = ssl.create_default_context()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
        if name is None:
            ctx.check_hostname = False
            tls = ctx.wrap_bio(incoming, outgoing)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        out += [hello, hello[:5] + hello[5:200], hello + b"\x16\x03\x03\x00\x01\x00"]
    return out


def proxy_header() -> list[bytes]:
    sys.path.insert(0, str(REPO / "tests" / "unit" / "protocol"))
    import ipaddress

    from proxy_header_encoder import tlv, unix_block, v1, v2, v2_ip_block

    v4 = ipaddress.IPv4Address
    v6 = ipaddress.IPv6Address
    return [
        v1("TCP4", "198.18.0.1", "198.18.0.2", 40000, 9092) + b"kafka",
        v1("TCP6", "2001:db8::1", "2001:db8::2", 1, 65535),
        v1("UNKNOWN"),
        v2(block=v2_ip_block(v4("198.18.0.1"), v4("198.18.0.2"), 1234, 9092)),
        v2(family=0x21, block=v2_ip_block(v6("2001:db8::1"), v6("::1"), 1, 2) +
           tlv(0xEA, b"\x01vpce-0123456789abcdef")),
        v2(command=0, family=0x00),
        v2(family=0x31, block=unix_block("/run/a", "/run/b")),
    ]


def config() -> list[bytes]:
    return [p.read_bytes() for p in sorted((REPO / "examples").glob("*.yaml"))] + [
        b"clusters: []\n", b"clusters:\n  - name: a\n    upstream: {bootstrap_servers: [x:1]}\n"]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "request_stream": request_stream, "response_stream": response_stream, "pairing": pairing,
    "rewrite": rewrite,
    "api_versions": api_versions, "request_peek": request_peek, "sasl_v0": sasl_v0,
    "client_hello": client_hello, "proxy_header": proxy_header, "config": config,
}
