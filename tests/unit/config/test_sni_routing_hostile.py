"""SNI routing never raises on a hostile name: every name that does not route gives None (the
listener answers it with the unrecognized_name alert), and the ClientHello parser keeps names
that are not ASCII so they reach routing instead of being taken for "not TLS"."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_edge.config.names import node_for_name
from kafka_edge.relay.server import Proxy
from kafka_edge.tls.clienthello import parse_client_hello


@pytest.fixture
def proxy(harness, data) -> Proxy:
    return Proxy(harness.parse(data))


def test_good_names_route(proxy: Proxy) -> None:
    route = proxy.resolve_name("edge", "B-3.Orders.Example.com.")
    assert route is not None and route[0].name == "orders" and route[1] == 3
    route = proxy.resolve_name("edge", "boot.orders.example.com")
    assert route is not None and route[1] is None


@pytest.mark.parametrize("name", [
    "b-" + "1" * 5000 + ".orders.example.com",  # thousands of digits (int() would raise)
    "b-" + "9" * 11 + ".orders.example.com",  # beyond int32
    "b-01.orders.example.com",  # leading zero
    "b-1.orders.example.com.evil",
    "evil.b-1.orders.example.com",
    "b-1.evil.com",
    "b-1.orders.example.com..",
    "b-\u00b9.orders.example.com",  # a superscript digit: str.isdigit() says yes
    "b-\u0661.orders.example.com",  # an Arabic-Indic digit
    "b-1.orders.\u00e9xample.com",
    "x" * 16_000,
    "",
])
def test_hostile_names_do_not_route(proxy: Proxy, name: str) -> None:
    assert proxy.resolve_name("edge", name) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_name_routes_or_not_without_raising(name: str) -> None:
    node = node_for_name("b-{node}.orders.example.com", name)
    assert node is None or 0 <= node < 2**31


def _hello_with_name(raw: bytes) -> bytes:
    """A real ClientHello whose SNI bytes are replaced by ``raw`` (same length)."""
    placeholder = "q" * len(raw)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=placeholder + ".example.com")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    return hello.replace(placeholder.encode() + b".example.com", raw + b".example.com")


def test_a_name_that_is_not_ascii_is_kept_for_routing_to_refuse(proxy: Proxy) -> None:
    hello = parse_client_hello(_hello_with_name(b"b-\xe4\xff"))
    assert hello is not None and hello.server_name == "b-\u00e4\u00ff.example.com"
    assert proxy.resolve_name("edge", hello.server_name) is None


def test_one_trailing_dot_is_dropped() -> None:
    hello = parse_client_hello(_hello_with_name(b"b-1.orders"))
    assert hello is not None and hello.server_name == "b-1.orders.example.com"
