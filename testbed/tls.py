"""TLS material for test clusters: a throw-away CA and PEM key stores that Kafka reads directly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path  # CA certificate (PEM): the trust store of clients and brokers
    keystore: Path  # PKCS#8 private key + certificate chain (PEM): ``ssl.keystore.type=PEM``
    cert_file: Path  # certificate chain alone (PEM)
    key_file: Path  # private key alone (PKCS#8 PEM, unencrypted)


def make_tls(directory: Path, names: Iterable[str]) -> TlsFiles:
    """Create a CA and one server certificate valid for every name / IP in ``names``."""
    directory.mkdir(parents=True, exist_ok=True)
    identities = list(dict.fromkeys(names))
    ca = trustme.CA(organization_name="kafka-edge test bed")
    leaf = ca.issue_cert(*identities, common_name=identities[0])
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        keystore=directory / "broker-keystore.pem",
        cert_file=directory / "broker-cert.pem",
        key_file=directory / "broker-key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    files.cert_file.write_bytes(chain)
    files.key_file.write_bytes(key_pem)
    files.key_file.chmod(0o600)
    files.keystore.write_bytes(key_pem + chain)
    files.keystore.chmod(0o600)
    return files
