"""Reading ``listeners`` and the TLS blocks: the server side (a listener's ``tls``, also used by
``port_routing.tls``) and the client side to the cluster (``upstream.tls``).

Certificate, key and CA files are opened and checked here (``_tlscheck.py``) unless the context
asks for names only.
"""

from __future__ import annotations

from pathlib import Path

from kafka_edge.config._proxy_protocol import PROXY_PROTOCOL
from kafka_edge.config._reader import (
    BOOLEAN,
    FILE,
    At,
    Conv,
    Invalid,
    Section,
    choice,
    list_of,
    nullable,
    seconds,
    text,
    valid,
)
from kafka_edge.config._scalars import HOST_PORT, NAME
from kafka_edge.config._tlscheck import (
    ca_problem,
    certificate_problem,
    ciphers_select_something,
    key_problem,
    pair_problem,
)
from kafka_edge.config.model import (
    CertificatePair,
    Listener,
    TlsServerConfig,
    TlsVersion,
    UpstreamTls,
)

# -- TLS -------------------------------------------------------------------------------------------

_TLS_VERSIONS: dict[str, TlsVersion] = {"TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}


def _ciphers(value: str) -> str:
    if not ciphers_select_something(value):
        raise ValueError("expected an OpenSSL cipher string that selects at least one cipher")
    return value


CIPHERS = text('an OpenSSL cipher string such as "ECDHE+AESGCM"', _ciphers)


def _files_problems(
    s: Section, cert: Path | None, key: Path | None, *, cert_key: str, key_key: str
) -> None:
    """Check a certificate chain file and its key: each parses, and they belong together."""
    if s.at.ctx.names_only:
        return
    ok = True
    if cert is not None and (problem := certificate_problem(cert)):
        s.fail(cert_key, problem)
        ok = False
    if key is not None and (problem := key_problem(key)):
        s.fail(key_key, problem)
        ok = False
    if ok and cert is not None and key is not None and (problem := pair_problem(cert, key)):
        s.fail(key_key, problem)


def _certificate(value: object, at: At) -> CertificatePair:
    s = Section(value, at, ("cert_file", "key_file"))
    cert_file = s.get("cert_file", FILE)
    key_file = s.get("key_file", FILE)
    if s.at.ctx.names_only:
        pass
    elif valid(cert_file, key_file):
        _files_problems(s, cert_file, key_file, cert_key="cert_file", key_key="key_file")
    elif valid(cert_file) and (problem := certificate_problem(cert_file)):
        s.fail("cert_file", problem)
    elif valid(key_file) and (problem := key_problem(key_file)):
        s.fail("key_file", problem)
    s.finish()
    return CertificatePair(cert_file=cert_file, key_file=key_file)


CERTIFICATE = Conv("a mapping with cert_file and key_file", _certificate)

_SERVER_TLS_KEYS = ("certificates", "min_version", "ciphers", "handshake_timeout_s")


def _server_tls(value: object, at: At) -> TlsServerConfig:
    s = Section(value, at, _SERVER_TLS_KEYS)
    certificates = s.get("certificates", list_of(CERTIFICATE, non_empty=True))
    min_version = s.get("min_version", choice(_TLS_VERSIONS), "TLSv1.2")
    ciphers = s.get("ciphers", nullable(CIPHERS), None)
    handshake_timeout_s = s.get("handshake_timeout_s", seconds(allow_zero=False), 10.0)
    if valid(min_version, ciphers) and ciphers is not None and min_version == "TLSv1.3":
        s.fail("ciphers", 'expected null with min_version "TLSv1.3" (the cipher string only '
               "applies to TLS 1.2)")
    s.finish()
    return TlsServerConfig(
        certificates=certificates,
        min_version=min_version,
        ciphers=ciphers,
        handshake_timeout_s=handshake_timeout_s,
    )


SERVER_TLS = Conv("a mapping with certificates (TLS settings)", _server_tls)


def _upstream_tls(value: object, at: At) -> UpstreamTls:
    if value is True:
        raise Invalid('expected a mapping or null, got true (write "tls: {}" for TLS with the '
                      "defaults)")
    s = Section(value, at, ("ca_file", "verify_hostname", "cert_file", "key_file"))
    ca_file = s.get("ca_file", nullable(FILE), None)
    verify_hostname = s.get("verify_hostname", BOOLEAN, True)
    cert_file = s.get("cert_file", nullable(FILE), None)
    key_file = s.get("key_file", nullable(FILE), None)
    if (valid(ca_file) and ca_file is not None and not s.at.ctx.names_only
            and (problem := ca_problem(ca_file))):
        s.fail("ca_file", problem)
    if valid(cert_file, key_file):
        if cert_file is not None and key_file is None:
            s.fail("key_file", "required when cert_file is set (expected the client "
                   "certificate's private key file)")
        elif key_file is not None and cert_file is None:
            s.fail("cert_file", "required when key_file is set (expected the client "
                   "certificate file)")
        else:
            _files_problems(s, cert_file, key_file, cert_key="cert_file", key_key="key_file")
    s.finish()
    return UpstreamTls(
        ca_file=ca_file, verify_hostname=verify_hostname, cert_file=cert_file, key_file=key_file
    )


UPSTREAM_TLS = Conv("a mapping (TLS settings)", _upstream_tls)

# -- listeners -------------------------------------------------------------------------------------

def _listener(value: object, at: At) -> Listener:
    s = Section(value, at, ("name", "bind", "tls", "default_cluster", "proxy_protocol"))
    name = s.get("name", NAME)
    bind = s.get("bind", HOST_PORT)
    tls = s.get("tls", SERVER_TLS)
    default_cluster = s.get("default_cluster", nullable(NAME), None)
    proxy_protocol = s.get("proxy_protocol", PROXY_PROTOCOL, None)
    s.finish()
    return Listener(
        name=name, bind=bind, tls=tls, default_cluster=default_cluster,
        proxy_protocol=proxy_protocol,
    )


LISTENER = Conv("a mapping with name, bind and tls", _listener)
