"""Fixtures for the configuration tests: real PEM files (trustme), a complete valid configuration
that uses every feature, and a harness that parses against a temporary folder."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from kafka_edge.config import Config, ConfigError, parse_config

PASSWORD = "s3cr3t-Pa55word"  # the discovery password of the full configuration (via env)
FILE_PASSWORD = "file-pa55word"  # ... and of the port-routed cluster (via password_file)


@dataclass(frozen=True)
class Pem:
    """PEM bytes of one test PKI, made once per session."""

    ca: bytes
    leaves: dict[str, tuple[bytes, bytes]]  # name -> (cert chain, key)
    encrypted_key: bytes  # the key of leaves["orders"], password-protected


@pytest.fixture(scope="session")
def pem() -> Pem:
    ca = trustme.CA()
    leaves = {}
    for name, identities in {
        "orders": ("*.orders.example.com", "boot.orders.example.com"),
        "payments": ("*.payments.example.com",),
        "local": ("edge.example.com",),
        "client": ("kafka-edge",),
    }.items():
        cert = ca.issue_cert(*identities)
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        leaves[name] = (chain, cert.private_key_pem.bytes())
    key = serialization.load_pem_private_key(leaves["orders"][1], password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    return Pem(ca=ca.cert_pem.bytes(), leaves=leaves, encrypted_key=encrypted)


def write_pki(pem: Pem, folder: Path) -> None:
    """certs/ca.pem, certs/NAME.pem + certs/NAME.key for every leaf, and a few broken files."""
    certs = folder / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "ca.pem").write_bytes(pem.ca)
    for name, (chain, key) in pem.leaves.items():
        (certs / f"{name}.pem").write_bytes(chain)
        (certs / f"{name}.key").write_bytes(key)
    (certs / "encrypted.key").write_bytes(pem.encrypted_key)
    (certs / "junk.pem").write_text("not a certificate\n")
    (certs / "truncated.pem").write_bytes(pem.leaves["orders"][0][:200] + b"\n")
    secrets = folder / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "local.txt").write_text(FILE_PASSWORD + "\n")
    (secrets / "empty.txt").write_text("")


def full_data() -> dict[str, Any]:
    """A valid configuration using every feature; file paths relative to the harness folder."""
    return {
        "listeners": [
            {
                "name": "edge",
                "bind": "0.0.0.0:9098",
                "tls": {
                    "certificates": [
                        {"cert_file": "certs/orders.pem", "key_file": "certs/orders.key"},
                        {"cert_file": "certs/payments.pem", "key_file": "certs/payments.key"},
                    ],
                    "min_version": "TLSv1.2",
                    "ciphers": "ECDHE+AESGCM",
                    "handshake_timeout_s": 5,
                },
                "default_cluster": "orders",
                "proxy_protocol": {
                    "mode": "required",
                    "trusted_sources": ["10.0.0.0/16", " 192.0.2.7 "],
                    "header_timeout_s": 3,
                },
            },
        ],
        "clusters": [
            {
                "name": "orders",
                "upstream": {
                    "bootstrap_servers": ["b-1.orders.internal:9096", "b-2.orders.internal:9096"],
                    "tls": {
                        "ca_file": "certs/ca.pem",
                        "verify_hostname": True,
                        "cert_file": "certs/client.pem",
                        "key_file": "certs/client.key",
                    },
                    "connect_timeout_s": 3.5,
                    "discovery": {
                        "sasl": {
                            "mechanism": "SCRAM-SHA-512",
                            "username": "edge",
                            "password_env": "ORDERS_PASSWORD",
                        },
                        "refresh_interval_s": 30,
                    },
                },
                "aws_region": "us-east-1",
                "sni_routing": {
                    "listener": "edge",
                    "bootstrap_host": "Boot.Orders.Example.com",
                    "broker_host_pattern": "b-{node}.orders.example.com",
                },
            },
            {
                "name": "payments",
                "upstream": {
                    "bootstrap_servers": ["[fd00::5]:9098"],
                    "tls": {},
                    "broker_address_pattern": "b-{node}.payments.abc123.c2.kafka.us-east-1"
                    ".amazonaws.com:9098",
                },
                "sni_routing": {
                    "listener": "edge",
                    "bootstrap_host": "boot.payments.example.com",
                    "broker_host_pattern": "broker{node}.payments.example.com",
                    "advertised_port": 443,
                },
            },
            {
                "name": "local",
                "upstream": {
                    "bootstrap_servers": ["127.0.0.1:9092"],
                    "discovery": {
                        "sasl": {
                            "mechanism": "PLAIN",
                            "username": "local",
                            "password_file": "secrets/local.txt",
                        },
                    },
                },
                "port_routing": {
                    "bind_host": "0.0.0.0",
                    "bootstrap_port": 19092,
                    "broker_port_base": 19093,
                    "node_id_min": 1,
                    "node_id_max": 3,
                    "advertised_host": "edge.example.com",
                    "advertised_port_base": 29093,
                    "tls": {
                        "certificates": [
                            {"cert_file": "certs/local.pem", "key_file": "certs/local.key"},
                        ],
                        "min_version": "TLSv1.3",
                    },
                    "proxy_protocol": {"mode": "optional", "trusted_sources": ["2001:db8::/32"]},
                },
            },
        ],
        "limits": {
            "max_frame_bytes": 10_000_000,
            "max_connections": 500,
            "idle_timeout_s": 600,
            "drain_timeout_s": 5,
        },
        "observability": {
            "http_bind": "127.0.0.1:9100", "log_level": "debug", "log_format": "json",
        },
    }


@dataclass
class Harness:
    """Parses configurations against a folder holding the test PKI, with a fixed environment."""

    base_dir: Path
    env: dict[str, str] = field(default_factory=lambda: {"ORDERS_PASSWORD": PASSWORD})

    def parse(self, data: object) -> Config:
        return parse_config(data, base_dir=self.base_dir, env=self.env)

    def errors(self, data: object) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            self.parse(data)
        assert caught.value.errors, "ConfigError without errors"
        assert str(caught.value) == "\n".join(caught.value.errors)
        return caught.value.errors

    def only_error(self, data: object) -> str:
        """The single error ``data`` has (asserting there is exactly one)."""
        errors = self.errors(data)
        assert len(errors) == 1, "\n".join(errors)
        return errors[0]


@pytest.fixture
def harness(tmp_path: Path, pem: Pem) -> Harness:
    write_pki(pem, tmp_path)
    return Harness(tmp_path)


@pytest.fixture
def data() -> dict[str, Any]:
    return copy.deepcopy(full_data())


Mutation = Callable[[dict[str, Any]], None]
