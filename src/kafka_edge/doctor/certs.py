"""The certificates the edge serves: which names they cover, how long they have left.

A name is covered as the edge chooses a certificate for it: the first certificate of the
listener (or of ``port_routing.tls``) whose names match it (``tls.context.certificate_names``
and ``name_matches``, RFC 6125: exact, or a left-most ``*`` standing for one label). A client
given an IP address checks the certificate's IP address entries instead, so an IP literal is
matched against those. Validity is read from every certificate of the file's chain: an
intermediate that expires first ends the chain's usefulness as surely as the leaf.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from kafka_edge.config.names import is_ip
from kafka_edge.doctor.report import Finding, Status
from kafka_edge.tls.context import certificate_names, name_matches

WARN_DAYS = 30  # a served certificate with fewer days left than this is a warning


@dataclass(frozen=True, slots=True, kw_only=True)
class CertInfo:
    path: str
    dns_names: tuple[str, ...]  # what the edge matches SNI names against
    ip_addresses: tuple[str, ...]  # the leaf's IP address entries (normalised)
    not_before: dt.datetime  # the latest notBefore of the chain (UTC)
    not_after: dt.datetime  # the earliest notAfter of the chain (UTC)
    ends_first: str  # the subject of the certificate whose notAfter that is

    def covers(self, host: str) -> bool:
        if is_ip(host):
            return str(ipaddress.ip_address(host)) in self.ip_addresses
        return any(name_matches(n, host) for n in self.dns_names)


def read_certificate(path: str | Path) -> CertInfo:
    """Names and validity of a PEM chain file (leaf first). Raises OSError / ValueError."""
    chain = x509.load_pem_x509_certificates(Path(path).read_bytes())
    leaf = chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        ips = ()
    first = min(chain, key=lambda c: c.not_valid_after_utc)
    return CertInfo(path=str(path), dns_names=tuple(certificate_names(path)), ip_addresses=ips,
                    not_before=max(c.not_valid_before_utc for c in chain),
                    not_after=first.not_valid_after_utc,
                    ends_first="the leaf" if first is leaf else first.subject.rfc4514_string())


def covering(certs: Sequence[CertInfo], host: str) -> CertInfo | None:
    """The certificate the edge would present for ``host``, or None: none covers it."""
    for cert in certs:
        if cert.covers(host):
            return cert
    return None


def coverage_finding(scope: str, host: str, certs: Sequence[CertInfo], *, role: str) -> Finding:
    """Is edge name ``host`` (``role``: "bootstrap", "broker 3") covered by a certificate?"""
    cert = covering(certs, host)
    if cert is None:
        offered = "; ".join(f"{Path(c.path).name}: {', '.join(c.dns_names + c.ip_addresses)}"
                            for c in certs)
        return Finding(check="edge-cert", scope=scope, subject=host, status=Status.FAIL,
                       detail=f"{role}: no served certificate covers this name, so clients "
                              f"refuse the edge's TLS handshake (certificates: {offered})")
    return Finding(check="edge-cert", scope=scope, subject=host, status=Status.PASS,
                   detail=f"{role}: covered by {Path(cert.path).name}")


def expiry_finding(scope: str, cert: CertInfo, now: dt.datetime) -> Finding:
    """Days left of a served certificate: FAIL expired or not yet valid, WARN under
    :data:`WARN_DAYS` days."""
    left = cert.not_after - now
    days = left.total_seconds() / 86400
    until = f"valid until {cert.not_after:%Y-%m-%d %H:%M} UTC"
    if cert.ends_first != "the leaf":
        until += f" (the chain's first to expire: {cert.ends_first})"
    if left.total_seconds() <= 0:
        status, detail = Status.FAIL, f"expired {-days:.1f} days ago: {until}"
    elif now < cert.not_before:
        status = Status.FAIL
        detail = f"not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC (this host's clock)"
    elif days < WARN_DAYS:
        status, detail = Status.WARN, f"{days:.1f} days left (under {WARN_DAYS}): {until}"
    else:
        status, detail = Status.PASS, f"{days:.0f} days left: {until}"
    return Finding(check="cert-expiry", scope=scope, subject=cert.path, status=status,
                   detail=detail)
