"""quick_config: the no-file mode of ``kafka-edge run --upstream --listen [--advertise]``."""

from __future__ import annotations

import pytest

from kafka_edge.config import DEFAULT_HTTP_BIND, ConfigError, quick_config


def quick_errors(**kwargs: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        quick_config(**kwargs)
    return caught.value.errors


def test_one_plaintext_cluster_in_port_per_broker_mode() -> None:
    config = quick_config(upstream="127.0.0.1:9092", listen="127.0.0.1:19092")
    assert config.listeners == ()
    (cluster,) = config.clusters
    assert cluster.name == "default"
    assert cluster.upstream.bootstrap_addresses == (("127.0.0.1", 9092),)
    assert cluster.upstream.tls is None
    assert cluster.upstream.discovery.sasl is None
    assert cluster.sni_routing is None
    pr = cluster.port_routing
    assert pr is not None
    assert (pr.bind_host, pr.bootstrap_port) == ("127.0.0.1", 19092)
    assert (pr.node_id_min, pr.node_id_max) == (0, 63)
    assert pr.port_for_node(0) == 19093
    assert pr.port_for_node(63) == 19092 + 1 + 63
    assert pr.advertised_address_for_node(5) == ("127.0.0.1", 19098)
    assert pr.tls is None
    assert config.observability.http_bind == DEFAULT_HTTP_BIND


def test_advertise_names_the_host_clients_are_given() -> None:
    config = quick_config(upstream="kafka:9092", listen="0.0.0.0:9092", advertise="edge.local")
    pr = config.clusters[0].port_routing
    assert pr is not None
    assert pr.bind_host == "0.0.0.0"
    assert pr.advertised_address_for_node(1) == ("edge.local", 9094)


def test_ipv6() -> None:
    config = quick_config(upstream="[fd00::1]:9092", listen="[::1]:9092", advertise="[::1]")
    pr = config.clusters[0].port_routing
    assert pr is not None
    assert (pr.bind_host, pr.advertised_host) == ("::1", "::1")
    assert config.clusters[0].upstream.bootstrap_addresses == (("fd00::1", 9092),)


def test_several_bootstrap_servers() -> None:
    config = quick_config(upstream="k1:9092, k2:9092", listen="127.0.0.1:9092")
    assert config.clusters[0].upstream.bootstrap_servers == ("k1:9092", "k2:9092")


@pytest.mark.parametrize("listen", ["0.0.0.0:9092", "[::]:9092"])
def test_a_wildcard_listen_needs_advertise(listen: str) -> None:
    (error,) = quick_errors(upstream="kafka:9092", listen=listen)
    assert error.startswith(f'--listen: "{listen}" accepts connections on every address')
    assert "add --advertise HOST" in error


def test_advertise_cannot_be_a_wildcard() -> None:
    (error,) = quick_errors(upstream="kafka:9092", listen="0.0.0.0:9092", advertise="0.0.0.0")
    assert error.startswith("--advertise: expected the host name or IP address clients use")


def test_advertise_takes_no_port() -> None:
    assert quick_errors(upstream="kafka:9092", listen="0.0.0.0:9092", advertise="edge:9092") == [
        '--advertise: expected a host name or IP address (no port), got "edge:9092"']


def test_bad_flags_are_named_and_all_reported() -> None:
    assert quick_errors(upstream="kafka1", listen="9092") == [
        '--upstream: expected "host:port", got "kafka1"',
        '--listen: expected "host:port", got "9092"',
    ]


def test_the_broker_ports_must_fit() -> None:
    assert quick_errors(upstream="kafka:9092", listen="127.0.0.1:65500") == [
        "--listen: expected a port of at most 65471, got 65500 (brokers 0..63 are served on the "
        "64 ports after it)"]
    quick_config(upstream="kafka:9092", listen="127.0.0.1:65471")


def test_http_bind_can_be_moved_or_disabled() -> None:
    assert quick_config(upstream="k:1", listen="127.0.0.1:9092",
                        http_bind=None).observability.http_bind is None
    # The default health port inside the broker range is a collision, reported as such.
    errors = quick_errors(upstream="k:1", listen="127.0.0.1:9150")
    assert len(errors) == 1
    assert errors[0].startswith("observability.http_bind: ")
