"""Load-time checks of TLS material with the standard ``ssl`` module: do the PEM files parse, do a
certificate and its key match, does a cipher string select anything.

Each function returns None when all is well, or a message naming the file(s) involved. The
contexts built here are thrown away; kafka_edge.tls builds the real ones at startup.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

_SSL_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)")


class _KeyIsEncrypted(Exception):
    pass


def _refuse_password() -> str:
    # Without a password callback, OpenSSL would prompt on the terminal for an encrypted key.
    raise _KeyIsEncrypted


def _reason(exc: ssl.SSLError) -> str:
    return _SSL_LOCATION.sub("", str(exc.args[1] if len(exc.args) > 1 else exc))


def _read(path: Path) -> tuple[str | None, str | None]:
    try:
        return path.read_bytes().decode("latin-1"), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror}"


def certificate_problem(path: Path) -> str | None:
    """``path`` holds one or more PEM certificates, all of which parse."""
    text, problem = _read(path)
    if text is None:
        return problem
    if "-----BEGIN CERTIFICATE-----" not in text:
        return f"expected a PEM certificate (-----BEGIN CERTIFICATE-----), found none in {path}"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        return f"cannot parse the certificates in {path}: {_reason(exc)}"
    return None


def key_problem(path: Path) -> str | None:
    """``path`` holds an unencrypted PEM private key."""
    text, problem = _read(path)
    if text is None:
        return problem
    if not re.search(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", text):
        return f"expected a PEM private key (-----BEGIN PRIVATE KEY-----), found none in {path}"
    if "ENCRYPTED" in text:
        return _encrypted(path)
    return None


def _encrypted(path: Path) -> str:
    return (
        f"the private key in {path} is encrypted; kafka-edge takes no key passwords, "
        "so give it an unencrypted key (e.g. openssl pkey -in KEY -out KEY.plain)"
    )


def pair_problem(cert_file: Path, key_file: Path) -> str | None:
    """The key is the private key of the first certificate of the chain. Call after the files
    passed :func:`certificate_problem` and :func:`key_problem`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=_refuse_password)
    except _KeyIsEncrypted:
        return _encrypted(key_file)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            return (
                f"the private key in {key_file} does not belong to the certificate in {cert_file}"
            )
        return f"cannot load the certificate {cert_file} with the key {key_file}: {_reason(exc)}"
    return None


def ca_problem(path: Path) -> str | None:
    """``path`` holds PEM CA certificates usable as a trust store."""
    return certificate_problem(path)


def ciphers_select_something(ciphers: str) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(ciphers)
    except ssl.SSLError:
        return False
    return True
