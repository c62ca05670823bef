"""The upstream address policy and the broker directory that consults it."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafka_edge.config.names import parse_allowed_host
from kafka_edge.routing.directory import BrokerDirectory, shorten
from kafka_edge.routing.policy import UpstreamPolicy

MSK = "b-1.orders.abc123.c2.kafka.eu-west-1.amazonaws.com"


def test_default_policy_is_the_bootstrap_hosts_and_their_parent_domain() -> None:
    p = UpstreamPolicy(bootstrap_hosts=[MSK])
    assert p.allows(MSK)
    assert p.allows("B-3.orders.abc123.c2.kafka.eu-west-1.amazonaws.com.")
    assert not p.allows("orders.abc123.c2.kafka.eu-west-1.amazonaws.com.evil.com")
    assert not p.allows("b-1.other.abc123.c2.kafka.eu-west-1.amazonaws.com")
    assert not p.allows("xorders.abc123.c2.kafka.eu-west-1.amazonaws.com")
    assert not p.allows("127.0.0.77")
    assert not p.allows("")


def test_ip_bootstrap_allows_only_itself_by_default() -> None:
    p = UpstreamPolicy(bootstrap_hosts=["127.0.0.1", "::1"])
    assert p.allows("127.0.0.1") and p.allows("::1")
    assert not p.allows("127.0.0.2")
    assert not p.allows("localhost")


def test_allowed_hosts_names_suffixes_and_networks() -> None:
    p = UpstreamPolicy(bootstrap_hosts=["10.0.1.15"],
                       allowed_hosts=["10.0.0.0/16", "*.Kafka.Internal", "broker.example"])
    assert p.allows("10.0.200.3") and p.allows("10.0.1.15")
    assert not p.allows("10.1.0.1")
    assert p.allows("b-7.kafka.internal") and p.allows("a.b.kafka.internal")
    assert not p.allows("kafka.internal") and not p.allows("evilkafka.internal")
    assert p.allows("broker.example") and not p.allows("x.broker.example")


def test_allowed_hosts_replace_the_default_domain() -> None:
    p = UpstreamPolicy(bootstrap_hosts=[MSK], allowed_hosts=["10.0.0.0/8"])
    assert p.allows(MSK)  # the bootstrap itself always
    assert not p.allows("b-2.orders.abc123.c2.kafka.eu-west-1.amazonaws.com")


def test_broker_address_pattern_names_are_allowed() -> None:
    p = UpstreamPolicy(bootstrap_hosts=["boot.kafka"], allowed_hosts=["192.0.2.1"],
                       broker_address_pattern="b-{node}.brokers.example:9098")
    assert p.allows("b-0.brokers.example") and p.allows("b-2147483647.brokers.example")
    assert not p.allows("b-.brokers.example")
    assert not p.allows("b-1x.brokers.example")
    assert not p.allows("b-" + "9" * 5000 + ".brokers.example")


@pytest.mark.parametrize("entry", ["", "*", "*.", "a.*.b", "10.0.0.1/33", "10.0.0.1/8",
                                   "bad..name", "ex\u00e4mple.com"])
def test_bad_allowed_hosts_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_allowed_host(entry)


@given(st.text(max_size=300))
def test_policy_never_raises(host: str) -> None:
    p = UpstreamPolicy(bootstrap_hosts=[MSK, "10.0.0.1"], allowed_hosts=["10.0.0.0/24", "*.x"],
                       broker_address_pattern="b{node}-x.c1.example:9098")
    assert isinstance(p.allows(host), bool)


def _directory() -> BrokerDirectory:
    return BrokerDirectory(bootstrap=[("10.0.0.1", 9092)], edge_address=lambda n: ("edge", n),
                           policy=UpstreamPolicy(bootstrap_hosts=["10.0.0.1"],
                                                 allowed_hosts=["10.0.0.0/24"]), name="c")


def test_an_answer_with_any_refused_address_teaches_nothing(caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    d = _directory()
    learned = [(1, "10.0.0.11", 9092), (2, "10.0.0.12", 9092)]
    assert d.learn_answer(learned, "a Metadata answer") == 0
    with caplog.at_level(logging.WARNING):
        refused = d.learn_answer([(1, "10.0.0.99", 9092), (3, "127.0.0.77", 4444)], "x")
        refused += d.learn_answer([(3, "127.0.0.77", 4444)], "x")
    assert d.known_nodes() == {1: ("10.0.0.11", 9092), 2: ("10.0.0.12", 9092)}
    assert refused == 2  # 10.0.0.99 is allowed, but came in an answer that was not
    assert caplog.text.count("127.0.0.77") == 1  # logged once per address


def test_is_allowed_is_the_dial_check() -> None:
    d = _directory()
    assert d.is_allowed(("10.0.0.1", 9092)) and d.is_allowed(("10.0.0.200", 1))
    assert not d.is_allowed(("127.0.0.77", 9092))


def test_shorten_escapes_and_cuts() -> None:
    assert shorten("b-1.example") == "b-1.example"
    assert shorten("\x1b[31mred\u00e4") == "\\x1b[31mred\\xe4"
    long = shorten("9" * 16_000)
    assert len(long) < 120 and long.endswith("(16000 chars)")
