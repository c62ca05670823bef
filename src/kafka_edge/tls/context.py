"""SSLContext construction: the edge's server side (certificates chosen by SNI), upstream side."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def certificate_names(cert_file: str | Path) -> list[str]:
    """DNS names a PEM certificate (the first in the chain) is valid for, lowercased."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [str(n).lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value).lower()
                 for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def certificate_not_after(cert_file: str | Path) -> float:
    """When a PEM chain file stops being valid, as a POSIX timestamp: the earliest end of
    validity in it (an intermediate can expire before the leaf; `kafka-edge doctor` reads the
    same)."""
    chain = x509.load_pem_x509_certificates(Path(cert_file).read_bytes())
    return min(cert.not_valid_after_utc for cert in chain).timestamp()


def name_matches(pattern: str, server_name: str) -> bool:
    """RFC 6125 matching: exact, or a left-most ``*`` label standing for exactly one label."""
    pattern, server_name = pattern.lower().rstrip("."), server_name.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == server_name
    head, _, rest = server_name.partition(".")
    return bool(head) and rest == pattern[2:]


@dataclass(frozen=True, slots=True)
class Certificate:
    names: tuple[str, ...]
    context: ssl.SSLContext

    def covers(self, server_name: str) -> bool:
        return any(name_matches(n, server_name) for n in self.names)


def server_context(
    cert_file: str | Path,
    key_file: str | Path,
    *,
    min_version: str = "TLSv1.2",
    ciphers: str | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[min_version]
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def load_certificates(
    pairs: Sequence[tuple[str | Path, str | Path]],
    *,
    min_version: str = "TLSv1.2",
    ciphers: str | None = None,
) -> list[Certificate]:
    return [
        Certificate(tuple(certificate_names(cert)),
                    server_context(cert, key, min_version=min_version, ciphers=ciphers))
        for cert, key in pairs
    ]


def upstream_context(
    *,
    ca_file: str | Path | None,
    verify_hostname: bool = True,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.check_hostname = verify_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return ctx
