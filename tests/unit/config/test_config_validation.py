"""Every validation rule: the error names the exact key path and says what was expected.

Most rules are one row of CASES: set a key of the full, valid configuration (conftest.full_data)
to a bad value and expect exactly one error, at that key (or at the key named in ``at``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

DELETE = object()  # as a value in a Case: remove the key


def _tokens(path: str) -> list[str | int]:
    tokens = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    return [int(t[1:-1]) if t.startswith("[") else t for t in tokens]


def set_at(data: dict[str, Any], path: str, value: object) -> None:
    *parents, last = _tokens(path)
    node: Any = data
    for token in parents:
        node = node[token]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


@dataclass(frozen=True)
class Case:
    path: str  # the key to change
    value: object
    message: str  # a fragment of the expected message
    at: str | None = None  # where the error is reported, if not at ``path``

    def __str__(self) -> str:
        value = "DELETE" if self.value is DELETE else repr(self.value)
        return f"{self.path}={value}"[:80]


SASL = "clusters[0].upstream.discovery.sasl"
CERT0 = "listeners[0].tls.certificates[0]"
UP_TLS = "clusters[0].upstream.tls"
LOCAL = "clusters[2].port_routing"
PAYMENTS_SNI = "clusters[1].sni_routing"

CASES = [
    # host:port strings
    Case("clusters[0].upstream.bootstrap_servers[1]", "kafka1",
         'expected "host:port", got "kafka1"'),
    Case("clusters[0].upstream.bootstrap_servers[0]", "::1:9092", 'IPv6 addresses go in brackets'),
    Case("clusters[0].upstream.bootstrap_servers[0]", "kafka:99999", "a port from 1 to 65535"),
    Case("clusters[0].upstream.bootstrap_servers[0]", "kafka:0", "a port from 1 to 65535"),
    Case("clusters[0].upstream.bootstrap_servers[0]", "[kafka]:9092", '"[ipv6-address]:port"'),
    Case("clusters[0].upstream.bootstrap_servers[0]", "bad host:9092", "valid host name"),
    Case("clusters[0].upstream.bootstrap_servers[0]", "300.1.1.1:9092", "valid host name"),
    Case("clusters[0].upstream.bootstrap_servers[0]", 9092, 'expected "host:port", got 9092'),
    Case("clusters[0].upstream.bootstrap_servers", [], "got an empty list"),
    Case("clusters[0].upstream.bootstrap_servers", "a:1",
         'expected a non-empty list of "host:port", got "a:1"'),
    Case("clusters[0].upstream.bootstrap_servers", DELETE, "required key is missing"),
    Case("listeners[0].bind", "0.0.0.0", 'expected "host:port", got "0.0.0.0"'),
    Case("observability.http_bind", "localhost", 'expected "host:port"'),
    # names
    Case("clusters[2].name", "Local_1", "lowercase letters, digits and hyphens"),
    Case("clusters[2].name", DELETE, "required key is missing"),
    Case("listeners[0].name", "Edge", "lowercase letters, digits and hyphens"),
    # durations and numbers
    Case("clusters[0].upstream.connect_timeout_s", 0, "expected a number of seconds > 0, got 0"),
    Case("clusters[0].upstream.connect_timeout_s", "10s", 'got "10s"'),
    Case("clusters[0].upstream.connect_timeout_s", True, "got true"),
    Case("clusters[0].upstream.connect_timeout_s", float("nan"), "seconds > 0, got nan"),
    Case("clusters[0].upstream.discovery.refresh_interval_s", -1, ">= 0, got -1"),
    Case("listeners[0].tls.handshake_timeout_s", -5, "seconds > 0, got -5"),
    Case("limits.max_frame_bytes", 0, "an integer from 1 to 2147483647, got 0"),
    Case("limits.max_frame_bytes", 1.5, "an integer from 1 to 2147483647, got 1.5"),
    Case("limits.max_connections", True, "a positive integer, got true"),
    Case("limits.idle_timeout_s", -1, ">= 0, got -1"),
    Case("limits.drain_timeout_s", "30s", '>= 0, got "30s"'),
    # choices
    Case("observability.log_level", "verbose",
         'expected one of "debug", "info", "warning", "error"'),
    Case("observability.log_level", "INFO", 'did you mean "info"?'),
    Case("observability.log_format", "yaml", 'expected "text" or "json", got "yaml"'),
    Case("listeners[0].tls.min_version", "TLSv1.1", 'expected "TLSv1.2" or "TLSv1.3"'),
    Case(f"{SASL}.mechanism", "SCRAM-SHA-1", 'expected one of "SCRAM-SHA-512", "SCRAM-SHA-256"'),
    Case(f"{SASL}.mechanism", "scram-sha-512", 'did you mean "SCRAM-SHA-512"?'),
    # PROXY protocol
    Case("listeners[0].proxy_protocol", "no", "expected a mapping with keys mode, "
         "trusted_sources, header_timeout_s, got \"no\""),
    Case("listeners[0].proxy_protocol", True,
         "expected a mapping with mode and trusted_sources, got true"),
    Case("listeners[0].proxy_protocol.mode", "on",
         'expected one of "off", "optional", "required", got "on"'),
    Case("listeners[0].proxy_protocol.mode", "Required", 'did you mean "required"?'),
    Case("listeners[0].proxy_protocol.mode", True, 'expected one of "off", "optional", '
         '"required", got true'),
    Case("listeners[0].proxy_protocol.mode", DELETE, "required key is missing (expected one of "
         '"off"'),
    Case("listeners[0].proxy_protocol.trusted_sources", DELETE,
         "required key is missing (expected a non-empty list of an IP address or a CIDR"),
    Case("listeners[0].proxy_protocol.trusted_sources", [], "got an empty list"),
    Case("listeners[0].proxy_protocol.trusted_sources", "10.0.0.0/8", "got \"10.0.0.0/8\""),
    Case("listeners[0].proxy_protocol.trusted_sources[1]", "10.0.0.1/8",
         "expected an IP address or a CIDR network such as 10.0.0.0/16 (10.0.0.1/8 has host bits "
         'set), got "10.0.0.1/8"'),
    Case("listeners[0].proxy_protocol.trusted_sources[0]", "nlb.example.com",
         'a CIDR network such as 10.0.0.0/16'),
    Case("listeners[0].proxy_protocol.trusted_sources[0]", 10, "got 10"),
    Case("listeners[0].proxy_protocol.header_timeout_s", 0, "seconds > 0, got 0"),
    Case("listeners[0].proxy_protocol.trusted", ["10.0.0.0/8"],
         'unknown key; did you mean "trusted_sources"?'),
    Case(f"{LOCAL}.proxy_protocol.mode", "sometimes", 'expected one of "off"'),
    Case(f"{LOCAL}.proxy_protocol.trusted_sources[0]", "2001:db8::/129",
         "a CIDR network such as 10.0.0.0/16"),
    Case(f"{UP_TLS}.verify_hostname", "yes please", "expected true or false"),
    Case("clusters[0].aws_region", "US-EAST-1", 'an AWS region such as "us-east-1"'),
    # unknown keys
    Case("cluster", [], 'unknown key; did you mean "clusters"?'),
    Case("clusters[0].upstream.bootstrap_server", ["a:1"],
         'unknown key; did you mean "bootstrap_servers"?'),
    Case("clusters[0].flavour", "x",
         "unknown key (expected one of: name, upstream, aws_region, port_routing, sni_routing)"),
    Case("limits.max_frame_size", 1, 'did you mean "max_frame_bytes"?'),
    Case(f"{CERT0}.chain_file", "x", "unknown key"),
    Case(f"{SASL}.pasword", "x", 'unknown key; did you mean "password"?'),
    Case("observability.metrics", {}, "unknown key"),
    # shapes
    Case("clusters[0].upstream", "b-1:9096", "expected a mapping with keys bootstrap_servers"),
    Case("clusters[0].upstream", DELETE, "required key is missing"),
    Case("clusters", DELETE, "required key is missing (expected a non-empty list of"),
    Case("clusters", [], "got an empty list"),
    Case("clusters", {"name": "x"}, "expected a non-empty list of"),
    Case("clusters[2]", "local", "expected a mapping with keys name, upstream"),
    Case("limits", [], "expected a mapping with keys max_frame_bytes"),
    # port routing
    Case(f"{LOCAL}.bootstrap_port", "19092", 'an integer from 1 to 65535, got "19092"'),
    Case(f"{LOCAL}.bootstrap_port", 19094,
         "expected a port outside the broker ports 19093-19095 (broker_port_base for node ids "
         "1..3), got 19094"),
    Case(f"{LOCAL}.broker_port_base", DELETE, "required key is missing"),
    Case(f"{LOCAL}.node_id_max", 0, "expected an integer >= node_id_min (1), got 0"),
    Case(f"{LOCAL}.node_id_min", -1, "an integer from 0 to 2147483647, got -1"),
    Case(f"{LOCAL}.broker_port_base", 65534, "the last broker port would be 65536 > 65535"),
    Case(f"{LOCAL}.advertised_port_base", 65534, "the last advertised port would be 65536"),
    Case(f"{LOCAL}.advertised_host", DELETE, 'required when bind_host is the wildcard "0.0.0.0"'),
    Case(f"{LOCAL}.advertised_host", "::", "clients can connect to (not a wildcard address)"),
    Case(f"{LOCAL}.advertised_host", "edge example", "clients can connect to"),
    Case(f"{LOCAL}.bind_host", "not a host", "expected a host name or IP address to bind"),
    Case(f"{LOCAL}.tls.certificates", [], "got an empty list"),
    Case(f"{LOCAL}.tls.ciphers", "ECDHE+AESGCM",
         'expected null with min_version "TLSv1.3"'),
    # SNI routing
    Case(f"{PAYMENTS_SNI}.listener", "egde",
         'expected the name of a listener (defined: "edge"), got "egde"; did you mean "edge"?'),
    Case(f"{PAYMENTS_SNI}.listener", DELETE, "required key is missing"),
    Case(f"{PAYMENTS_SNI}.bootstrap_host", "boot_payments.example.com", "expected a DNS name"),
    Case(f"{PAYMENTS_SNI}.bootstrap_host", "boot.payments.example.com.", "expected a DNS name"),
    Case(f"{PAYMENTS_SNI}.bootstrap_host", "10.0.0.1", "never send an IP address"),
    Case(f"{PAYMENTS_SNI}.broker_host_pattern", "broker.payments.example.com",
         "containing {node} exactly once"),
    Case(f"{PAYMENTS_SNI}.broker_host_pattern", "b{node}-{node}.payments.example.com",
         "containing {node} exactly once"),
    Case(f"{PAYMENTS_SNI}.broker_host_pattern", "b-{id}-{node}.payments.example.com",
         "{node} as the only placeholder"),
    Case(f"{PAYMENTS_SNI}.broker_host_pattern", "-{node}.payments.example.com",
         "a DNS name with {node} in it"),
    Case(f"{PAYMENTS_SNI}.bootstrap_host", "broker0.payments.example.com",
         'expected a pattern that cannot produce bootstrap_host "broker0.payments.example.com", '
         'got "broker{node}.payments.example.com"', at=f"{PAYMENTS_SNI}.broker_host_pattern"),
    Case(f"{PAYMENTS_SNI}.advertised_port", 0, "an integer from 1 to 65535, got 0"),
    # broker address pattern
    Case("clusters[1].upstream.broker_address_pattern", "b-1.payments.internal:9098",
         "with {node} in the host"),
    Case("clusters[1].upstream.broker_address_pattern", "b.internal:{node}",
         "with {node} in the host"),
    Case("clusters[1].upstream.broker_address_pattern", "b-{node}-{id}.internal:9098",
         "{node} as the only placeholder"),
    Case("clusters[1].upstream.broker_address_pattern", "b-{node}.internal:http",
         "a port from 1 to 65535"),
    # server TLS files
    Case("listeners[0].tls", DELETE, "required key is missing (expected a mapping with "
         "certificates"),
    Case("listeners[0].tls.certificates", [], "got an empty list"),
    Case(f"{CERT0}.cert_file", "certs/missing.pem", "file not found: "),
    Case(f"{CERT0}.cert_file", "certs", "expected a file, got a directory"),
    Case(f"{CERT0}.cert_file", "certs/junk.pem", "expected a PEM certificate"),
    Case(f"{CERT0}.cert_file", "certs/truncated.pem", "cannot parse the certificates in"),
    Case(f"{CERT0}.key_file", "certs/payments.key", "does not belong to the certificate in"),
    Case(f"{CERT0}.key_file", "certs/encrypted.key", "is encrypted"),
    Case(f"{CERT0}.key_file", "certs/ca.pem", "expected a PEM private key"),
    Case(f"{CERT0}.key_file", DELETE, "required key is missing"),
    Case("listeners[0].tls.ciphers", "NOT-A-CIPHER",
         'expected an OpenSSL cipher string that selects at least one cipher, got "NOT-A-CIPHER"'),
    # upstream TLS
    Case(UP_TLS, True, 'got true (write "tls: {}" for TLS with the defaults)'),
    Case(UP_TLS, "tls", "expected a mapping with keys ca_file"),
    Case(f"{UP_TLS}.ca_file", "certs/nope.pem", "file not found"),
    Case(f"{UP_TLS}.ca_file", "certs/junk.pem", "expected a PEM certificate"),
    Case(f"{UP_TLS}.key_file", DELETE, "required when cert_file is set"),
    Case(f"{UP_TLS}.cert_file", None, "required when key_file is set"),
    Case(f"{UP_TLS}.key_file", "certs/orders.key", "does not belong to the certificate in"),
    Case(f"{UP_TLS}.cert_file", "certs/junk.pem", "expected a PEM certificate"),
    # SASL and its password
    Case(f"{SASL}.username", DELETE, "required key is missing"),
    Case(f"{SASL}.username", "", 'expected a non-empty string, got ""'),
    Case(f"{SASL}.password_env", "NOT_SET_ANYWHERE",
         "expected a set environment variable, but NOT_SET_ANYWHERE is not set"),
    Case(f"{SASL}.password_env", "1BAD", "expected an environment variable name"),
    Case(f"{SASL}.password_env", DELETE, "missing password: expected one of password_env",
         at=SASL),
    Case(f"{SASL}.password", "literal",
         "expected only one of password_env, password_file, password, got password_env and "
         "password", at=SASL),
    Case("clusters[2].upstream.discovery.sasl.password_file", "secrets/none.txt",
         "file not found"),
    Case("clusters[2].upstream.discovery.sasl.password_file", "secrets/empty.txt",
         "got an empty file"),
    Case("clusters[0].upstream.discovery.sasl", "edge:secret", "expected a mapping with keys"),
    # references between sections
    Case("listeners[0].default_cluster", "local",
         'expected the name of a cluster routed by SNI on listener "edge", got "local" '
         "(it uses port_routing)"),
    Case("listeners[0].default_cluster", "odrers", 'got "odrers" (no such cluster); did you mean '
         '"orders"?'),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_value_gives_one_error_at_its_key_path(harness, data, case: Case) -> None:
    set_at(data, case.path, case.value)
    error = harness.only_error(data)
    assert error.startswith(f"{case.at or case.path}: "), error
    assert case.message in error


def test_the_message_format_of_the_brief(harness, data) -> None:
    data["clusters"][0]["upstream"]["bootstrap_servers"][1] = "kafka1"
    assert harness.only_error(data) == (
        'clusters[0].upstream.bootstrap_servers[1]: expected "host:port", got "kafka1"'
    )


def test_file_errors_name_the_resolved_path(harness, data) -> None:
    data["listeners"][0]["tls"]["certificates"][0]["cert_file"] = "certs/missing.pem"
    error = harness.only_error(data)
    assert str(harness.base_dir / "certs" / "missing.pem") in error


def test_every_error_is_reported_at_once(harness, data) -> None:
    data["listeners"][0]["bind"] = "nowhere"
    data["clusters"][0]["upstream"]["bootstrap_servers"] = ["ok:1", "kafka1", "also bad"]
    data["clusters"][1]["sni_routing"]["bootstrap_host"] = "x_y"
    data["clusters"][2]["port_routing"]["node_id_max"] = 0
    data["limits"]["max_connections"] = 0
    data["observability"]["log_format"] = "xml"
    data["observability"]["colour"] = True
    errors = harness.errors(data)
    assert [e.split(": ")[0] for e in errors] == [
        "listeners[0].bind",
        "clusters[0].upstream.bootstrap_servers[1]",
        "clusters[0].upstream.bootstrap_servers[2]",
        "clusters[1].sni_routing.bootstrap_host",
        "clusters[2].port_routing.node_id_max",
        "limits.max_connections",
        "observability.colour",
        "observability.log_format",
    ]


def test_the_top_level_must_be_a_mapping(harness) -> None:
    assert harness.only_error(["clusters"]).startswith("top level: expected a mapping")
    assert harness.only_error(None).startswith("top level: expected a mapping")


def test_keys_must_be_strings(harness, data) -> None:
    data["limits"][7] = "seven"
    assert harness.only_error(data).startswith("limits: unknown key 7 (expected one of:")


def test_a_key_with_odd_characters_is_quoted_in_the_path(harness, data) -> None:
    data["limits"]["max frame"] = 1
    assert harness.only_error(data).startswith('limits["max frame"]: unknown key')


# -- routing: exactly one mode ------------------------------------------------------------------


def test_a_cluster_needs_a_routing_mode(harness, data) -> None:
    del data["clusters"][2]["port_routing"]
    assert harness.only_error(data) == (
        "clusters[2]: expected exactly one of port_routing, sni_routing, got neither"
    )


def test_a_cluster_cannot_have_both_routing_modes(harness, data) -> None:
    data["clusters"][0]["port_routing"] = {
        "bind_host": "127.0.0.1", "bootstrap_port": 29092, "broker_port_base": 29093,
    }
    assert harness.only_error(data) == (
        "clusters[0]: expected exactly one of port_routing, sni_routing, got both"
    )


def test_a_null_routing_counts_as_absent(harness, data) -> None:
    data["clusters"][2]["sni_routing"] = None
    harness.parse(data)


# -- unique names -------------------------------------------------------------------------------


def test_cluster_names_are_unique(harness, data) -> None:
    data["clusters"][2]["name"] = "orders"
    assert harness.only_error(data) == (
        'clusters[2].name: expected a unique name, got "orders" (already the name of clusters[0])'
    )


def test_listener_names_are_unique(harness, data) -> None:
    second = dict(data["listeners"][0], bind="0.0.0.0:9099", default_cluster=None)
    data["listeners"].append(second)
    assert harness.only_error(data) == (
        'listeners[1].name: expected a unique name, got "edge" (already the name of listeners[0])'
    )


# -- references ---------------------------------------------------------------------------------


def test_default_cluster_must_be_on_that_listener(harness, data) -> None:
    second = dict(data["listeners"][0], name="other", bind="0.0.0.0:9099", default_cluster=None)
    data["listeners"].append(second)
    data["clusters"][1]["sni_routing"]["listener"] = "other"
    data["listeners"][0]["default_cluster"] = "payments"
    assert harness.only_error(data) == (
        'listeners[0].default_cluster: expected the name of a cluster routed by SNI on listener '
        '"edge", got "payments" (it is routed on listener "other")'
    )


def test_a_broken_listener_does_not_also_report_its_clusters(harness, data) -> None:
    data["listeners"][0]["name"] = "Edge"  # invalid: the SNI clusters' "edge" is not reported
    errors = harness.errors(data)
    assert [e.split(":")[0] for e in errors] == ["listeners[0].name"]


def test_a_broken_default_cluster_is_reported_once(harness, data) -> None:
    data["clusters"][0]["upstream"]["bootstrap_servers"] = []
    errors = harness.errors(data)
    assert [e.split(":")[0] for e in errors] == ["clusters[0].upstream.bootstrap_servers"]


def test_an_sni_cluster_needs_a_listener(harness, data) -> None:
    del data["listeners"]
    errors = harness.errors(data)
    assert errors == [
        'clusters[0].sni_routing.listener: expected the name of a listener (defined: none), '
        'got "edge"',
        'clusters[1].sni_routing.listener: expected the name of a listener (defined: none), '
        'got "edge"',
    ]


# -- SNI names on one listener ------------------------------------------------------------------


def test_two_clusters_on_a_listener_cannot_share_a_bootstrap_host(harness, data) -> None:
    data["clusters"][1]["sni_routing"]["bootstrap_host"] = "boot.orders.example.com"
    assert harness.only_error(data) == (
        'clusters[1].sni_routing.bootstrap_host: expected names no other cluster on listener '
        '"edge" uses, got "boot.orders.example.com", which overlaps bootstrap_host '
        '"boot.orders.example.com" of clusters[0] ("orders")'
    )


def test_two_clusters_on_a_listener_cannot_have_overlapping_patterns(harness, data) -> None:
    # b-{node}.orders... and b-1{node}.orders... both match b-12.orders.example.com
    data["clusters"][1]["sni_routing"]["broker_host_pattern"] = "b-1{node}.orders.example.com"
    error = harness.only_error(data)
    assert error.startswith("clusters[1].sni_routing.broker_host_pattern: ")
    assert 'overlaps broker_host_pattern "b-{node}.orders.example.com" of clusters[0]' in error


def test_a_pattern_cannot_match_another_clusters_bootstrap_host(harness, data) -> None:
    data["clusters"][1]["sni_routing"]["bootstrap_host"] = "b-7.orders.example.com"
    error = harness.only_error(data)
    assert error.startswith("clusters[1].sni_routing.bootstrap_host: ")
    assert 'overlaps broker_host_pattern "b-{node}.orders.example.com"' in error


def test_the_same_names_on_different_listeners_are_fine(harness, data) -> None:
    second = dict(data["listeners"][0], name="other", bind="0.0.0.0:9099", default_cluster=None)
    data["listeners"].append(second)
    data["clusters"][1]["sni_routing"] = dict(data["clusters"][0]["sni_routing"], listener="other")
    config = harness.parse(data)
    assert config.clusters[1].sni_routing is not None
    assert config.clusters[1].sni_routing.advertised_port == 9099


# -- ports ----------------------------------------------------------------------------------------


def _port_cluster(name: str, bind_host: str, bootstrap: int, base: int) -> dict[str, Any]:
    return {
        "name": name,
        "upstream": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "port_routing": {"bind_host": bind_host, "bootstrap_port": bootstrap,
                         "broker_port_base": base, "node_id_min": 0, "node_id_max": 9},
    }


def test_broker_ranges_of_two_clusters_cannot_overlap(harness, data) -> None:
    data["clusters"].append(_port_cluster("more", "10.1.1.1", 29092, 19083))
    assert harness.only_error(data) == (
        "clusters[3].port_routing.broker_port_base: expected ports no other listener, cluster or "
        "http_bind uses, got ports 19083-19092 on 10.1.1.1, which collides with "
        "clusters[2].port_routing.bootstrap_port (port 19092 on 0.0.0.0)"
    )


def test_a_bootstrap_port_cannot_be_a_listener_port(harness, data) -> None:
    data["clusters"].append(_port_cluster("more", "127.0.0.1", 9098, 29000))
    error = harness.only_error(data)
    assert error.startswith("clusters[3].port_routing.bootstrap_port: ")
    assert "collides with listeners[0].bind (port 9098 on 0.0.0.0)" in error


def test_the_http_port_cannot_be_a_broker_port(harness, data) -> None:
    data["observability"]["http_bind"] = "127.0.0.1:19094"
    error = harness.only_error(data)
    assert error.startswith("observability.http_bind: ")
    assert "clusters[2].port_routing.broker_port_base (ports 19093-19095 on 0.0.0.0)" in error


def test_two_listeners_cannot_share_a_port(harness, data) -> None:
    data["listeners"].append(dict(data["listeners"][0], name="other", bind="[::]:9098",
                                  default_cluster=None))
    error = harness.only_error(data)
    assert error.startswith("listeners[1].bind: ")
    assert "collides with listeners[0].bind" in error


def test_one_port_on_two_different_addresses_is_fine(harness, data) -> None:
    data["clusters"].append(_port_cluster("one", "10.1.1.1", 29092, 29093))
    data["clusters"].append(_port_cluster("two", "10.1.1.2", 29092, 29093))
    harness.parse(data)


def test_a_host_name_bind_is_assumed_to_overlap(harness, data) -> None:
    data["clusters"].append(_port_cluster("one", "10.1.1.1", 29092, 29093))
    data["clusters"].append(_port_cluster("two", "edge.internal", 29092, 39093))
    error = harness.only_error(data)
    assert error.startswith("clusters[4].port_routing.bootstrap_port: ")


def test_http_can_be_disabled(harness, data) -> None:
    data["observability"]["http_bind"] = None
    config = harness.parse(data)
    assert config.observability.http_bind is None
    assert config.observability.http_address is None


# -- secrets in messages ------------------------------------------------------------------------


def test_a_password_of_the_wrong_type_is_not_echoed(harness, data) -> None:
    sasl = data["clusters"][0]["upstream"]["discovery"]["sasl"]
    del sasl["password_env"]
    sasl["password"] = 918273645
    error = harness.only_error(data)
    assert error == f"{SASL}.password: expected a non-empty string, got a number"
    assert "918273645" not in error


def test_an_empty_password_variable_is_an_error_without_its_value(harness, data) -> None:
    harness.env["ORDERS_PASSWORD"] = ""
    assert harness.only_error(data) == (
        f"{SASL}.password_env: expected a password in environment variable ORDERS_PASSWORD, "
        "but it is empty"
    )


# -- PROXY protocol: the ways to say "off" ------------------------------------------------------


@pytest.mark.parametrize("off", [DELETE, None, False, {"mode": "off"}, {"mode": False}],
                         ids=["absent", "null", "false", "mode off", "mode false"])
def test_proxy_protocol_off(harness, data, off: object) -> None:
    set_at(data, "listeners[0].proxy_protocol", off)
    set_at(data, f"{LOCAL}.proxy_protocol", off)
    config = harness.parse(data)
    assert config.listeners[0].proxy_protocol is None
    assert config.clusters[2].port_routing is not None
    assert config.clusters[2].port_routing.proxy_protocol is None


def test_an_unquoted_yaml_off_is_off(harness, data) -> None:
    data["listeners"][0]["proxy_protocol"] = yaml.safe_load("mode: off")
    assert data["listeners"][0]["proxy_protocol"] == {"mode": False}  # YAML 1.1 reads a boolean
    assert harness.parse(data).listeners[0].proxy_protocol is None


def test_proxy_protocol_off_takes_no_other_key(harness, data) -> None:
    data["listeners"][0]["proxy_protocol"]["mode"] = "off"
    assert harness.errors(data) == [
        'listeners[0].proxy_protocol.trusted_sources: expected no value with mode "off" (no '
        "header is read)",
        'listeners[0].proxy_protocol.header_timeout_s: expected no value with mode "off" (no '
        "header is read)",
    ]


def test_proxy_protocol_errors_are_all_reported(harness, data) -> None:
    data["listeners"][0]["proxy_protocol"] = {"mode": "maybe", "trusted_sources": ["x", "10.0.0.0"]}
    assert [e.split(": ")[0] for e in harness.errors(data)] == [
        "listeners[0].proxy_protocol.mode",
        "listeners[0].proxy_protocol.trusted_sources[0]",
    ]
