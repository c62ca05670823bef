"""A good configuration: what it parses to, defaults, round trip, and the routing helpers."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kafka_edge.config import (
    DEFAULT_HTTP_BIND,
    ClusterConfig,
    Discovery,
    HostPort,
    PortRouting,
    ProxyProtocol,
    SniRouting,
    Upstream,
)
from kafka_edge.config.names import node_for_name

# -- the full configuration ---------------------------------------------------------------------


def test_the_full_configuration_parses_to_the_model(harness, data) -> None:
    config = harness.parse(data)
    base = harness.base_dir

    (edge,) = config.listeners
    assert edge.name == "edge"
    assert edge.bind == "0.0.0.0:9098"
    assert edge.bind_address == HostPort("0.0.0.0", 9098) == ("0.0.0.0", 9098)
    assert [(c.cert_file, c.key_file) for c in edge.tls.certificates] == [
        (base / "certs/orders.pem", base / "certs/orders.key"),
        (base / "certs/payments.pem", base / "certs/payments.key"),
    ]
    assert edge.tls.min_version == "TLSv1.2"
    assert edge.tls.ciphers == "ECDHE+AESGCM"
    assert edge.tls.handshake_timeout_s == 5.0
    assert edge.default_cluster == "orders"
    assert edge.proxy_protocol == ProxyProtocol(
        mode="required", trusted_sources=("10.0.0.0/16", "192.0.2.7/32"), header_timeout_s=3.0)
    assert [str(n) for n in edge.proxy_protocol.trusted_networks()] == [
        "10.0.0.0/16", "192.0.2.7/32"]

    orders, payments, local = config.clusters
    assert orders.upstream.bootstrap_addresses == (
        ("b-1.orders.internal", 9096), ("b-2.orders.internal", 9096))
    assert orders.upstream.tls is not None
    assert orders.upstream.tls.ca_file == base / "certs/ca.pem"
    assert orders.upstream.tls.cert_file == base / "certs/client.pem"
    assert orders.upstream.connect_timeout_s == 3.5
    sasl = orders.upstream.discovery.sasl
    assert sasl is not None
    assert (sasl.mechanism, sasl.username, sasl.password_env) == (
        "SCRAM-SHA-512", "edge", "ORDERS_PASSWORD")
    assert sasl.password.reveal() == harness.env["ORDERS_PASSWORD"]
    assert orders.upstream.discovery.refresh_interval_s == 30.0
    assert orders.aws_region == "us-east-1"
    assert orders.sni_routing == SniRouting(
        listener="edge",
        bootstrap_host="boot.orders.example.com",  # lowercased
        broker_host_pattern="b-{node}.orders.example.com",
        advertised_port=9098,  # the listener's port
    )
    assert orders.port_routing is None
    assert orders.routing is orders.sni_routing

    assert payments.upstream.bootstrap_addresses == (("fd00::5", 9098),)
    assert payments.upstream.tls is not None  # "tls: {}": TLS with the defaults
    assert payments.upstream.tls.ca_file is None
    assert payments.upstream.tls.verify_hostname is True
    assert payments.upstream.discovery == Discovery(sasl=None, refresh_interval_s=60.0)
    assert payments.sni_routing is not None
    assert payments.sni_routing.advertised_port == 443

    assert local.port_routing is not None
    assert local.port_routing.tls is not None
    assert local.port_routing.tls.min_version == "TLSv1.3"
    assert local.port_routing.proxy_protocol == ProxyProtocol(
        mode="optional", trusted_sources=("2001:db8::/32",), header_timeout_s=10.0)
    local_sasl = local.upstream.discovery.sasl
    assert local_sasl is not None
    assert local_sasl.password_file == base / "secrets/local.txt"
    assert local_sasl.password.reveal() == "file-pa55word"  # without the trailing newline

    assert config.limits.max_frame_bytes == 10_000_000
    assert config.limits.idle_timeout_s == 600.0
    assert config.observability.http_address == ("127.0.0.1", 9100)
    assert config.observability.log_format == "json"


def test_the_model_is_frozen_and_slotted(harness, data) -> None:
    config = harness.parse(data)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.limits.max_connections = 1
    assert not hasattr(config.clusters[0], "__dict__")
    assert isinstance(config.clusters, tuple)
    assert isinstance(config.clusters[0].upstream.bootstrap_servers, tuple)
    hash(config)  # frozen all the way down


def test_a_good_configuration_round_trips(harness, data) -> None:
    config = harness.parse(data)
    dumped = config.redacted_dict()
    assert harness.parse(dumped) == config
    # ... through YAML and JSON text too: the dump is plain data
    assert harness.parse(yaml.safe_load(yaml.safe_dump(dumped))) == config
    assert harness.parse(json.loads(json.dumps(dumped))) == config


def test_redacted_dict_shows_the_effective_values(harness, data) -> None:
    dumped = harness.parse(data).redacted_dict()
    local = dumped["clusters"][2]
    assert "sni_routing" not in local
    assert local["port_routing"]["advertised_port_base"] == 29093
    assert dumped["clusters"][0]["sni_routing"]["advertised_port"] == 9098
    assert dumped["clusters"][0]["upstream"]["discovery"]["sasl"] == {
        "mechanism": "SCRAM-SHA-512", "username": "edge", "password_env": "ORDERS_PASSWORD"}
    assert local["upstream"]["discovery"]["sasl"]["password_file"] == str(
        harness.base_dir / "secrets/local.txt")


def test_the_model_pickles_for_worker_processes(harness, data) -> None:
    config = harness.parse(data)
    assert pickle.loads(pickle.dumps(config)) == config


def test_defaults(harness) -> None:
    config = harness.parse({
        "clusters": [{
            "name": "c",
            "upstream": {"bootstrap_servers": ["kafka:9092"]},
            "port_routing": {"bind_host": "10.0.0.7", "bootstrap_port": 9092,
                             "broker_port_base": 9093},
        }],
    })
    assert config.listeners == ()
    (cluster,) = config.clusters
    assert cluster.aws_region is None
    assert cluster.upstream == Upstream(
        bootstrap_servers=("kafka:9092",),
        tls=None,
        connect_timeout_s=10.0,
        broker_address_pattern=None,
        discovery=Discovery(sasl=None, refresh_interval_s=60.0),
    )
    assert cluster.port_routing == PortRouting(
        bind_host="10.0.0.7",
        bootstrap_port=9092,
        broker_port_base=9093,
        node_id_min=0,
        node_id_max=63,
        advertised_host="10.0.0.7",  # a specific bind host is what clients are told
        advertised_port_base=9093,
        tls=None,
    )
    assert (config.limits.max_frame_bytes, config.limits.max_connections) == (104_857_600, 10_000)
    assert (config.limits.idle_timeout_s, config.limits.drain_timeout_s) == (0.0, 30.0)
    assert (config.limits.incomplete_frame_timeout_s,
            config.limits.first_request_timeout_s) == (30.0, 30.0)
    assert config.observability.http_bind == DEFAULT_HTTP_BIND
    assert (config.observability.log_level, config.observability.log_format) == ("info", "text")


def test_default_server_tls_settings(harness) -> None:
    config = harness.parse({
        "listeners": [{"name": "l", "bind": "[::]:9098", "tls": {"certificates": [
            {"cert_file": "certs/orders.pem", "key_file": "certs/orders.key"}]}}],
        "clusters": [{"name": "c", "upstream": {"bootstrap_servers": ["kafka:9092"]},
                      "sni_routing": {"listener": "l", "bootstrap_host": "boot.example.com",
                                      "broker_host_pattern": "b{node}.example.com"}}],
    })
    (listener,) = config.listeners
    assert listener.bind_address == ("::", 9098)
    assert (listener.tls.min_version, listener.tls.ciphers) == ("TLSv1.2", None)
    assert listener.tls.handshake_timeout_s == 10.0
    assert (listener.default_cluster, listener.proxy_protocol) == (None, None)


def test_null_sections_mean_defaults(harness) -> None:
    config = harness.parse({
        "listeners": None,
        "clusters": [{"name": "c", "upstream": {"bootstrap_servers": ["k:1"], "discovery": None},
                      "port_routing": {"bind_host": "127.0.0.1", "bootstrap_port": 9092,
                                       "broker_port_base": 9093}}],
        "limits": None,
        "observability": None,
    })
    assert config.limits.max_connections == 10_000
    assert config.clusters[0].upstream.discovery.refresh_interval_s == 60.0


def test_relative_paths_resolve_against_base_dir_and_absolute_ones_stay(harness, data) -> None:
    absolute = harness.base_dir / "certs" / "ca.pem"
    data["clusters"][0]["upstream"]["tls"]["ca_file"] = str(absolute)
    config = harness.parse(data)
    assert config.clusters[0].upstream.tls is not None
    assert config.clusters[0].upstream.tls.ca_file == absolute
    assert config.listeners[0].tls.certificates[0].cert_file.is_absolute()


def test_lookups_by_name(harness, data) -> None:
    config = harness.parse(data)
    assert config.cluster("payments").name == "payments"
    assert config.listener("edge").bind == "0.0.0.0:9098"
    with pytest.raises(KeyError):
        config.cluster("nope")
    with pytest.raises(KeyError):
        config.listener("nope")


def test_advertised_addresses_through_the_cluster(harness, data) -> None:
    config = harness.parse(data)
    assert config.cluster("orders").advertised_address_for_node(4) == (
        "b-4.orders.example.com", 9098)
    assert config.cluster("payments").advertised_address_for_node(0) == (
        "broker0.payments.example.com", 443)
    assert config.cluster("local").advertised_address_for_node(2) == ("edge.example.com", 29094)
    with pytest.raises(ValueError, match=r"outside node_id_min\.\.node_id_max"):
        config.cluster("local").advertised_address_for_node(4)


def test_a_cluster_has_exactly_one_routing_mode() -> None:
    upstream = Upstream(bootstrap_servers=("k:1",), tls=None, connect_timeout_s=1.0,
                        broker_address_pattern=None,
                        discovery=Discovery(sasl=None, refresh_interval_s=0.0))
    with pytest.raises(ValueError, match="exactly one"):
        ClusterConfig(name="c", upstream=upstream, aws_region=None)


# -- routing helpers ------------------------------------------------------------------------------


def port_routing(
    low: int, count: int, base: int, advertised_base: int | None = None
) -> PortRouting:
    return PortRouting(
        bind_host="0.0.0.0", bootstrap_port=1, broker_port_base=base, node_id_min=low,
        node_id_max=low + count - 1, advertised_host="edge.example.com",
        advertised_port_base=base if advertised_base is None else advertised_base, tls=None,
    )


def test_port_routing_by_example() -> None:
    pr = port_routing(low=1, count=3, base=9093, advertised_base=19093)
    assert [pr.port_for_node(n) for n in (1, 2, 3)] == [9093, 9094, 9095]
    assert pr.advertised_port_for_node(2) == 19094
    assert pr.advertised_address_for_node(3) == ("edge.example.com", 19095)
    assert pr.broker_ports == range(9093, 9096)
    for bad in (0, 4, -1):
        assert not pr.has_node(bad)
        with pytest.raises(ValueError, match=r"outside node_id_min..node_id_max \(1..3\)"):
            pr.port_for_node(bad)
        with pytest.raises(ValueError):
            pr.advertised_port_for_node(bad)


@given(
    low=st.integers(0, 2**31 - 1000),
    count=st.integers(1, 500),
    base=st.integers(1, 65035),
    data=st.data(),
)
def test_port_for_node_walks_the_broker_ports(low: int, count: int, base: int,
                                              data: st.DataObject) -> None:
    pr = port_routing(low, count, base)
    node = data.draw(st.integers(low, low + count - 1))
    assert pr.broker_ports.index(pr.port_for_node(node)) == node - low
    assert pr.advertised_port_for_node(node) == pr.port_for_node(node)  # no load balancer


def sni(pattern: str = "b-{node}.orders.example.com") -> SniRouting:
    return SniRouting(listener="edge", bootstrap_host="boot.orders.example.com",
                      broker_host_pattern=pattern, advertised_port=9098)


def test_sni_routing_by_example() -> None:
    routing = sni()
    assert routing.host_for_node(0) == "b-0.orders.example.com"
    assert routing.host_for_node(12) == "b-12.orders.example.com"
    pattern = routing.broker_host_pattern
    assert node_for_name(pattern, "b-12.orders.example.com") == 12
    assert node_for_name(pattern, "B-12.Orders.Example.COM") == 12  # case-insensitive
    assert node_for_name(pattern, "b-12.orders.example.com.") == 12  # a fully qualified name
    for other in ("boot.orders.example.com", "b-.orders.example.com", "b-x.orders.example.com",
                  "b-01.orders.example.com", "b-1.payments.example.com", "b-1.orders.example",
                  "xb-1.orders.example.com", "b-1-2.orders.example.com", "b-².orders.example.com",
                  "b-2147483648.orders.example.com", ""):
        assert node_for_name(pattern, other) is None, other
    assert routing.advertised_address_for_node(3) == ("b-3.orders.example.com", 9098)
    with pytest.raises(ValueError):
        routing.host_for_node(-1)


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@st.composite
def host_patterns(draw: st.DrawFn) -> str:
    before = draw(st.lists(_LABEL, max_size=2))
    after = draw(st.lists(_LABEL, min_size=1, max_size=3))
    head = draw(st.from_regex(r"[a-z]{0,4}-?", fullmatch=True))
    tail = draw(st.from_regex(r"(-[a-z]{1,4})?", fullmatch=True))
    return ".".join([*before, f"{head}{{node}}{tail}", *after])


@given(pattern=host_patterns(), node=st.integers(0, 2**31 - 1))
def test_the_name_match_inverts_host_for_node(pattern: str, node: int) -> None:
    routing = sni(pattern)
    host = routing.host_for_node(node)
    assert node_for_name(routing.broker_host_pattern, host) == node
    assert node_for_name(routing.broker_host_pattern, host.upper()) == node


@given(pattern=host_patterns(), host=st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True))
def test_names_outside_the_pattern_give_none(pattern: str, host: str) -> None:
    routing = sni(pattern)
    node = node_for_name(routing.broker_host_pattern, host)
    # Either the host is exactly the name of that node, or it is no node's name.
    assert node is None or routing.host_for_node(node) == host


def test_pattern_address() -> None:
    upstream = Upstream(
        bootstrap_servers=("b-1.orders.abc123.c2.kafka.us-east-1.amazonaws.com:9098",),
        tls=None, connect_timeout_s=10.0,
        broker_address_pattern="b-{node}.orders.abc123.c2.kafka.us-east-1.amazonaws.com:9098",
        discovery=Discovery(sasl=None, refresh_interval_s=60.0),
    )
    assert upstream.pattern_address(3) == (
        "b-3.orders.abc123.c2.kafka.us-east-1.amazonaws.com", 9098)
    assert dataclasses.replace(upstream, broker_address_pattern=None).pattern_address(3) is None


def test_host_port_formats_ipv6_in_brackets() -> None:
    assert str(HostPort("::1", 9092)) == "[::1]:9092"
    assert str(HostPort("kafka", 9092)) == "kafka:9092"
    host, port = HostPort("kafka", 9092)
    assert (host, port) == ("kafka", 9092)


def test_paths_are_paths(harness, data) -> None:
    config = harness.parse(data)
    assert isinstance(config.listeners[0].tls.certificates[0].key_file, Path)
