"""ClientHello parsing against real ClientHellos produced by OpenSSL (Python's ssl module)."""

from __future__ import annotations

import contextlib
import ssl
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_edge.tls.clienthello import NotTls, alert, parse_client_hello
from kafka_edge.tls.context import name_matches


def client_hello(server_name: str | None, *, tls13_only: bool = False) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls13_only:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("name", ["boot.orders.example.com", "B-12.Orders.Example.COM",
                                  "x" * 60 + ".example.com"])
def test_server_name_is_read_and_lowercased(name: str) -> None:
    hello = parse_client_hello(client_hello(name))
    assert hello is not None and hello.server_name == name.lower()


def test_no_sni_gives_none() -> None:
    hello = parse_client_hello(client_hello(None))
    assert hello is not None and hello.server_name is None


def test_every_prefix_asks_for_more_bytes() -> None:
    data = client_hello("b-1.orders.example.com", tls13_only=True)
    for cut in range(len(data)):
        assert parse_client_hello(data[:cut]) is None
    assert parse_client_hello(data + b"trailing bytes of the next record") is not None


def test_plaintext_kafka_on_a_tls_port_is_named() -> None:
    payload = struct.pack(">hhih", 18, 3, 1, 5) + b"probe"
    with pytest.raises(NotTls, match="plaintext Kafka request"):
        parse_client_hello(struct.pack(">i", len(payload)) + payload)
    with pytest.raises(NotTls, match="HTTP"):
        parse_client_hello(b"GET / HTTP/1.1\r\n\r\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_not_tls(data: bytes) -> None:
    with contextlib.suppress(NotTls):
        parse_client_hello(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=255))
def test_corrupted_hello_raise_only_not_tls(index: int, value: int) -> None:
    data = bytearray(client_hello("boot.orders.example.com"))
    data[index % len(data)] = value
    with contextlib.suppress(NotTls):
        parse_client_hello(bytes(data))


def test_alert_record() -> None:
    assert alert(112) == bytes([21, 3, 3, 0, 2, 2, 112])


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("*.orders.example.com", "b-1.orders.example.com", True),
    ("*.orders.example.com", "boot.orders.example.com", True),
    ("*.orders.example.com", "orders.example.com", False),
    ("*.orders.example.com", "a.b.orders.example.com", False),
    ("boot.orders.example.com", "BOOT.orders.example.com.", True),
])
def test_certificate_name_matching(pattern: str, name: str, expected: bool) -> None:
    assert name_matches(pattern, name) is expected
