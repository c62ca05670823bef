"""Host names, host:port parsing and {node} patterns (kafka_edge.config.names)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafka_edge.config.names import (
    HostPort,
    check_dns_name,
    check_host,
    is_wildcard,
    name_for_node,
    names_overlap,
    node_for_name,
    parse_host_port,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("kafka:9092", ("kafka", 9092)),
    ("b-1.orders.internal:9096", ("b-1.orders.internal", 9096)),
    ("kafka_1:9092", ("kafka_1", 9092)),
    ("10.0.0.1:1", ("10.0.0.1", 1)),
    ("[::1]:65535", ("::1", 65535)),
    ("[fd00::5]:9098", ("fd00::5", 9098)),
])
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected
    assert str(parse_host_port(text)) == text
    assert isinstance(parse_host_port(text), HostPort)


@pytest.mark.parametrize("text", [
    "kafka", "kafka:", ":9092", "kafka:0", "kafka:65536", "kafka:-1", "kafka:+1", "kafka: 1",
    "::1:9092", "[::1]9092", "[kafka]:9092", "[10.0.0.1]:9092", "ka fka:1", "-kafka:1",
    "300.1.1.1:1", "1.2.3:1", "kafka..internal:1", "k\u00e4fka:1", "kafka:\u0661",
])
def test_parse_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r'^expected "(host|\[ipv6-address\]):port"'):
        parse_host_port(text)


def test_host_checks() -> None:
    assert check_host("Kafka-1.Internal") == "Kafka-1.Internal"
    assert check_dns_name("Boot.Example.COM") == "boot.example.com"
    for bad in ("under_score.example.com", "10.0.0.1", "::1", "a..b", "x" * 64, "-a.b", ""):
        with pytest.raises(ValueError):
            check_dns_name(bad)
    assert is_wildcard("0.0.0.0") and is_wildcard("::")
    assert not is_wildcard("127.0.0.1") and not is_wildcard("edge")


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("b-{node}.x.com", "b-{node}.x.com", True),
    ("b-{node}.x.com", "b-1{node}.x.com", True),      # b-12.x.com
    ("b{node}.x.com", "b-{node}.x.com", False),
    ("b-{node}.x.com", "boot.x.com", False),
    ("b-{node}.x.com", "b-7.x.com", True),
    ("b-{node}.x.com", "b-07.x.com", True),           # not canonical, still refused: confusing
    ("{node}.x.com", "{node}1.x.com", True),
    ("{node}-a.x.com", "1-{node}-a.x.com", False),     # 1-5-a vs digits-a: "-" is no digit
    ("a{node}b.com", "a{node}c.com", False),
    ("boot.x.com", "boot.x.com", True),
    ("boot.x.com", "boot.y.com", False),
    ("b-{node}.orders.example.com", "b-{node}.payments.example.com", False),
])
def test_names_overlap(a: str, b: str, overlap: bool) -> None:
    assert names_overlap(a, b) is overlap
    assert names_overlap(b, a) is overlap


def _regex(pattern: str) -> re.Pattern[str]:
    prefix, _, suffix = pattern.partition("{node}")
    return re.compile(re.escape(prefix) + "[0-9]+" + re.escape(suffix))


_PART = st.text(alphabet="ab1.-", max_size=4)
_PATTERN = st.builds(lambda p, s: f"{p}{{node}}{s}", _PART, _PART)


@given(a=_PATTERN, b=_PATTERN, probes=st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_names_overlap_agrees_with_regular_expressions(a: str, b: str, probes: list[int]) -> None:
    """Checked against a brute-force search for a name both patterns match."""
    assert names_overlap(a, b) is _brute_force_overlap(a, b)
    if not names_overlap(a, b):
        for n in probes:
            assert not _regex(b).fullmatch(a.replace("{node}", str(n)))


def _brute_force_overlap(a: str, b: str) -> bool:
    # A common name is a's prefix + digit run + a's suffix. Where the run lines up with b's
    # literal characters it must equal them (the only literal digit is "1"), elsewhere any digit
    # does ("0"); so runs over "01" no longer than b's literal part + 1 find one if there is one.
    prefix, _, suffix = a.partition("{node}")
    rb = _regex(b)
    runs = [""]
    for _ in range(len(b) - len("{node}") + 1):
        runs = [run + digit for run in runs for digit in "01"]
        if any(rb.fullmatch(f"{prefix}{run}{suffix}") for run in runs):
            return True
    return False


@given(node=st.integers(0, 2**31 - 1))
def test_name_for_node_and_back(node: int) -> None:
    pattern = "b-{node}.orders.example.com"
    assert node_for_name(pattern, name_for_node(pattern, node)) == node
    assert names_overlap(pattern, name_for_node(pattern, node))
