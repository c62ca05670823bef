"""The scalar converters the sections of a configuration share: names, ports, node ids, host names
and addresses, DNS names and patterns, environment variable names, AWS regions.

Each is a :class:`~kafka_edge.config._reader.Conv` (or built by ``text``/``matching``/``integer``)
that raises ``Invalid`` with what was expected; the section reading the key records it at the key
path. The name and pattern rules themselves are in ``names.py``.
"""

from __future__ import annotations

from kafka_edge.config._reader import integer, matching, text
from kafka_edge.config.names import (
    MAX_NODE_ID,
    NODE,
    NUMBER,
    check_address_pattern,
    check_dns_name,
    check_host,
    check_host_pattern,
    is_wildcard,
    parse_host_port,
)

NAME = matching(r"[a-z0-9-]+", "a name of lowercase letters, digits and hyphens")
PORT = integer(1, 65535)
NODE_ID = integer(0, MAX_NODE_ID)


def _host_port(value: str) -> str:
    parse_host_port(value)
    return value


HOST_PORT = text('"host:port"', _host_port)


def _bind_host(value: str) -> str:
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return check_host(host)
    except ValueError:
        raise ValueError("expected a host name or IP address to bind") from None


def _advertised_host(value: str) -> str:
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        check_host(host)
    except ValueError:
        raise ValueError("expected a host name or IP address clients can connect to") from None
    if is_wildcard(host):
        raise ValueError("expected a host name or IP address clients can connect to (not a "
                         "wildcard address)")
    return host


BIND_HOST = text("a host name or IP address to bind", _bind_host)
ADVERTISED_HOST = text("a host name or IP address clients can connect to", _advertised_host)
SNI_NAME = text("a DNS name", check_dns_name)
SNI_PATTERN = text(f'a DNS name pattern with {NODE} (or {NUMBER}), such as '
                   f'"b-{NODE}.orders.example.com"', check_host_pattern)


def _address_pattern(value: str) -> str:
    check_address_pattern(value)
    return value


ADDRESS_PATTERN = text(f'a "host:port" pattern with {NODE} in the host', _address_pattern)


def _name_pattern(value: str) -> str:
    check_address_pattern(value, NUMBER)
    return value


NAME_PATTERN = text(f'a "host:port" pattern with {NUMBER} in the host, such as '
                    f'"b{NUMBER}-abc123.c1.kafka-serverless.us-east-1.amazonaws.com:9098"',
                    _name_pattern)
ENV_NAME = matching(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")
AWS_REGION = matching(r"[a-z]{2}(-[a-z]+)+-[0-9]+", 'an AWS region such as "us-east-1"')
