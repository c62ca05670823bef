"""Name-to-name broker mapping (``upstream.broker_name_pattern`` with ``{n}``): MSK Serverless's
``b97-<id>.c1.kafka-serverless.<region>.amazonaws.com`` <-> ``b-97.<custom domain>``, where the
number need not be the node id. The configuration rules, every routing decision (rewriting and
dialling), the address policy over the names substitution produces, and the cluster runtime's
refusal to hand out a name the pattern does not cover."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafka_edge.config import ConfigError, parse_config
from kafka_edge.config.advice import config_warnings
from kafka_edge.config.names import MAX_NODE_ID
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.routing.dns import domain_of
from kafka_edge.routing.policy import UpstreamPolicy
from kafka_edge.routing.routes import Routes, Target

SUFFIX = "-a1b2c3.c1.kafka-serverless.us-east-1.amazonaws.com"
NAME_PATTERN = f"b{{n}}{SUFFIX}:9098"
EDGE_PATTERN = "b-{n}.orders.example.com"
BASE: dict[str, Any] = {
    "listeners": [{"name": "edge", "bind": "0.0.0.0:9098",
                   "tls": {"certificates": [{"cert_file": "c.pem", "key_file": "c.key"}]}}],
    "clusters": [
        {"name": "orders",
         "upstream": {"bootstrap_servers": [f"boot{SUFFIX}:9098"], "tls": {},
                      "broker_name_pattern": NAME_PATTERN},
         "aws_region": "us-east-1",
         "sni_routing": {"listener": "edge", "bootstrap_host": "boot.orders.example.com",
                         "broker_host_pattern": EDGE_PATTERN}},
        {"name": "payments",  # node-id numbering on the same listener
         "upstream": {"bootstrap_servers": ["b-1.payments.internal:9096"],
                      "broker_address_pattern": "b-{node}.payments.internal:9096"},
         "sni_routing": {"listener": "edge", "bootstrap_host": "boot.payments.example.com",
                         "broker_host_pattern": "b-{node}.payments.example.com"}},
    ],
}


def _data() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, names_only=True)
    return caught.value.errors


@pytest.fixture(scope="module")
def routes() -> Routes:
    return Routes(parse_config(_data(), names_only=True))


# -- configuration ----------------------------------------------------------------------------


def test_the_configuration_is_read_and_needs_no_discovery() -> None:
    config = parse_config(_data(), names_only=True)
    up = config.cluster("orders").upstream
    assert up.maps_names and up.broker_name_pattern == NAME_PATTERN
    assert not config.cluster("payments").upstream.maps_names
    assert config_warnings(config) == []  # a fresh instance needs no metadata


def test_edge_pattern_must_use_n_with_a_name_pattern() -> None:
    data = _data()
    data["clusters"][0]["sni_routing"]["broker_host_pattern"] = "b-{node}.orders.example.com"
    assert _errors(data) == [
        "clusters[0].sni_routing.broker_host_pattern: expected a pattern with {n} "
        "(upstream.broker_name_pattern maps each upstream broker name to the edge name with "
        'the same number), got "b-{node}.orders.example.com"']


def test_n_without_a_name_pattern_is_refused() -> None:
    data = _data()
    data["clusters"][1]["sni_routing"]["broker_host_pattern"] = "b-{n}.payments.example.com"
    [error] = _errors(data)
    assert error.startswith("clusters[1].sni_routing.broker_host_pattern: expected a pattern "
                            "with {node}: {n} stands for the number in the brokers' upstream "
                            "names and needs upstream.broker_name_pattern")


@pytest.mark.parametrize(("value", "message"), [
    ("b{node}-x.example:9098", 'expected "host:port" with {n} in the host (once)'),
    ("b{n}-{n}.example:9098", 'expected "host:port" with {n} in the host (once)'),
    ("b{n}-x.example", 'expected "host:port" with {n} in the host (once)'),
    ("b{n}-x{y}.example:9098", "expected {n} as the only placeholder"),
    ("b{n}-x.example:99999", "with a port from 1 to 65535"),
])
def test_bad_name_patterns_name_the_key(value: str, message: str) -> None:
    data = _data()
    data["clusters"][0]["upstream"]["broker_name_pattern"] = value
    [error] = _errors(data)
    assert error.startswith("clusters[0].upstream.broker_name_pattern: ") and message in error


def test_name_and_address_patterns_exclude_each_other() -> None:
    data = _data()
    data["clusters"][0]["upstream"]["broker_address_pattern"] = "b-{node}.x.example:9098"
    assert _errors(data) == [
        "clusters[0].upstream.broker_name_pattern: expected only one of broker_address_pattern "
        "(node ids) and broker_name_pattern (numbers in the brokers' names), got both"]


def test_port_routing_cannot_map_names() -> None:
    data = _data()
    cluster = data["clusters"][0]
    del cluster["sni_routing"]
    cluster["port_routing"] = {"bootstrap_port": 19092, "broker_port_base": 19093,
                               "bind_host": "127.0.0.1"}
    [error] = _errors(data)
    assert error.startswith("clusters[0].port_routing: expected sni_routing with "
                            "upstream.broker_name_pattern")


def test_edge_names_of_two_clusters_may_not_overlap_across_placeholders() -> None:
    data = _data()
    data["clusters"][1]["sni_routing"]["broker_host_pattern"] = "b-{node}.orders.example.com"
    [error] = _errors(data)
    assert "clusters[1].sni_routing.broker_host_pattern" in error and "overlaps" in error


# -- routing ------------------------------------------------------------------------------------


def test_edge_name_routes_by_the_number_in_the_name(routes: Routes) -> None:
    assert routes.by_server_name("edge", "b-97.orders.example.com") == Target("orders", 97)
    assert routes.by_server_name("edge", "B-305.Orders.Example.com.") == Target("orders", 305)
    assert routes.by_server_name("edge", "b-1.payments.example.com") == Target("payments", 1)
    for name in ("b-097.orders.example.com", "b-.orders.example.com", "b97.orders.example.com",
                 "b-9999999999.orders.example.com", "b-" + "9" * 300 + ".orders.example.com"):
        assert routes.by_server_name("edge", name) is None, name


def test_upstream_names_map_to_edge_names_and_back(routes: Routes) -> None:
    assert routes.maps_names("orders") and not routes.maps_names("payments")
    assert routes.edge_address_for_host("orders", f"b97{SUFFIX}") == (
        "b-97.orders.example.com", 9098)
    assert routes.edge_address_for_host("orders", f"B12{SUFFIX.upper()}.") == (
        "b-12.orders.example.com", 9098)
    assert routes.upstream_by_name("orders", 97) == (f"b97{SUFFIX}", 9098)
    for host in (f"b097{SUFFIX}", f"b{SUFFIX}", f"b-97{SUFFIX}", "b97-a1b2c3.c1.example.com",
                 f"b97{SUFFIX}.evil.example", f"b{'1' * 11}{SUFFIX}", f"boot{SUFFIX}"):
        assert routes.edge_address_for_host("orders", host) is None, host
    assert routes.upstream_by_name("orders", -1) is None
    assert routes.upstream_by_name("orders", MAX_NODE_ID + 1) is None
    assert routes.upstream_by_name("payments", 1) is None  # node-id cluster: no name pattern


@given(st.integers(min_value=0, max_value=MAX_NODE_ID))
def test_every_number_round_trips(number: int) -> None:
    routes = Routes(parse_config(_data(), names_only=True))
    upstream = routes.upstream_by_name("orders", number)
    assert upstream is not None
    edge = routes.edge_address_for_host("orders", upstream[0])
    assert edge == (f"b-{number}.orders.example.com", 9098)
    assert routes.by_server_name("edge", edge[0]) == Target("orders", number)


def test_names_substitution_produces_pass_the_policy() -> None:
    policy = UpstreamPolicy(bootstrap_hosts=[f"boot{SUFFIX}"], allowed_hosts=["192.0.2.1"],
                            broker_name_pattern=NAME_PATTERN)
    assert policy.allows(f"b97{SUFFIX}") and policy.allows(f"b2147483647{SUFFIX}")
    assert not policy.allows(f"b{SUFFIX}") and not policy.allows(f"b9x{SUFFIX}")
    assert not policy.allows(f"b{'9' * 11}{SUFFIX}")
    assert not policy.allows(f"b1.other{SUFFIX}")
    assert f"b{{n}}{SUFFIX}" in policy.description


def test_dns_records_name_the_domain_of_an_n_pattern() -> None:
    assert domain_of(EDGE_PATTERN) == "orders.example.com"


# -- the cluster runtime ---------------------------------------------------------------------------


def test_runtime_rewrites_by_name_and_never_hands_out_an_unmatched_name(
        caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config(_data(), names_only=True)
    runtime = ClusterRuntime(config.cluster("orders"), Metrics(), Routes(config))
    # node id 1 is called b97: the name decides, not the node id
    assert runtime.map_address(1, f"b97{SUFFIX}", 9098, True) == ("b-97.orders.example.com",
                                                                  9098)
    with caplog.at_level(logging.ERROR, logger="kafka_edge.cluster"):
        for _ in range(3):
            assert runtime.map_address(2, "broker-2.elsewhere.example", 9098, True) == (
                "invalid.invalid", 0)
    logged = [r for r in caplog.records if "does not match upstream.broker_name_pattern" in
              r.getMessage()]
    assert len(logged) == 1  # once per name


def test_runtime_dials_the_name_the_number_gives_without_metadata() -> None:
    config = parse_config(_data(), names_only=True)
    runtime = ClusterRuntime(config.cluster("orders"), Metrics(), Routes(config))
    # the directory learned node 97 at another address: node ids play no part in the dial
    runtime.directory._nodes[97] = (f"b5{SUFFIX}", 9098)
    assert runtime._candidates(97) == [(f"b97{SUFFIX}", 9098)]
    assert runtime._candidates(305) == [(f"b305{SUFFIX}", 9098)]
    assert runtime.directory.is_allowed((f"b305{SUFFIX}", 9098))  # checked again at the dial
