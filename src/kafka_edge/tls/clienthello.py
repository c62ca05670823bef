"""TLS ClientHello parsing (pure): the server name a client asks for, before any handshake.

The edge routes a TLS connection by its SNI before the handshake starts, so it can refuse an
unknown name with a proper ``unrecognized_name`` alert (RFC 6066) without dialling anything, and
choose the certificate and cluster in one step. Follows RFC 8446 section 4.1.2 / RFC 5246
section 7.4.1.2 (record and handshake framing) and RFC 6066 section 3 (server_name).
"""

from __future__ import annotations

from dataclasses import dataclass

RECORD_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
EXT_SERVER_NAME = 0
ALERT_HANDSHAKE_FAILURE = 40
ALERT_UNRECOGNIZED_NAME = 112
MAX_HELLO = 64 * 1024


class NotTls(ValueError):
    """The bytes are not a TLS ClientHello (e.g. plaintext Kafka on a TLS port)."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None  # lowercased host name, None when the client sent no SNI (a name
    # that is not ASCII is kept as Latin-1 text: it matches no configured name)


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of ``data``; None if more bytes are needed.

    Raises :class:`NotTls` when the bytes cannot be the start of a TLS handshake.
    """
    handshake = bytearray()
    pos = 0
    need: int | None = None
    while need is None or len(handshake) < need:
        if len(data) - pos < 5:
            return None
        ctype, major, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 3:pos + 5])
        if ctype != RECORD_HANDSHAKE or major != 3 or length == 0 or length > 16384 + 2048:
            raise NotTls(_describe(data))
        if len(data) - pos - 5 < length:
            return None
        handshake += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if need is None and len(handshake) >= 4:
            if handshake[0] != HANDSHAKE_CLIENT_HELLO:
                raise NotTls("the first handshake message is not a ClientHello")
            need = 4 + int.from_bytes(handshake[1:4])
            if need > MAX_HELLO:
                raise NotTls(f"ClientHello of {need} bytes is too large")
    return ClientHello(_server_name(bytes(handshake[4:need])))


def _server_name(body: bytes) -> str | None:
    try:
        pos = 2 + 32  # legacy_version, random
        pos += 1 + body[pos]  # legacy_session_id
        pos += 2 + int.from_bytes(body[pos:pos + 2])  # cipher_suites
        pos += 1 + body[pos]  # legacy_compression_methods
        if pos == len(body):
            return None  # no extensions at all
        end = pos + 2 + int.from_bytes(body[pos:pos + 2])
        pos += 2
        while pos + 4 <= end:
            ext_type = int.from_bytes(body[pos:pos + 2])
            ext_len = int.from_bytes(body[pos + 2:pos + 4])
            ext = body[pos + 4:pos + 4 + ext_len]
            pos += 4 + ext_len
            if ext_type != EXT_SERVER_NAME:
                continue
            # ServerNameList: u16 length, then (u8 type, u16 length, name)*
            p = 2
            while p + 3 <= len(ext):
                name_type, name_len = ext[p], int.from_bytes(ext[p + 1:p + 3])
                name = ext[p + 3:p + 3 + name_len]
                if len(name) != name_len:
                    break
                if name_type == 0:
                    return _host_name(name)
                p += 3 + name_len
            raise NotTls("malformed server_name extension")
    except (IndexError, UnicodeDecodeError) as exc:
        raise NotTls(f"malformed ClientHello: {exc}") from None
    return None


def _host_name(raw: bytes) -> str:
    """The SNI host name, lowercased, one trailing dot removed. A name that is not ASCII (RFC
    6066 wants A-labels) is kept, byte for byte as Latin-1, so that it is refused by routing
    with an alert like any other name that routes nowhere, rather than taken for "not TLS"."""
    name = raw.decode("ascii").lower() if raw.isascii() else raw.decode("latin-1")
    return name[:-1] if name.endswith(".") else name


def _describe(data: bytes) -> str:
    if data[:4] in (b"GET ", b"POST", b"HEAD", b"PUT "):
        return "an HTTP request arrived on a TLS port"
    if len(data) >= 6 and 0 < int.from_bytes(data[:4]) < 1 << 27 and data[4] == 0:
        return "a plaintext Kafka request arrived on a TLS port"
    return "not a TLS handshake"


def alert(description: int) -> bytes:
    """A fatal TLS alert record (sent in the clear: no keys exist before the handshake)."""
    return bytes([21, 3, 3, 0, 2, 2, description])


def handshake_failure_reason(exc: BaseException) -> str:
    """The kafka_edge_tls_handshake_failures_total reason for a failed server handshake."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = f"{getattr(exc, 'reason', '') or ''} {exc}".upper()
    if any(x in text for x in ("UNSUPPORTED_PROTOCOL", "PROTOCOL_VERSION", "WRONG_VERSION")):
        return "protocol_version"
    if "NO_SHARED_CIPHER" in text or "NO_CIPHERS" in text:
        return "no_shared_cipher"
    if "CERTIFICATE" in text or "UNKNOWN_CA" in text:
        return "certificate"
    if isinstance(exc, (ConnectionError, EOFError)) or "EOF" in text:
        return "closed"
    return "other"
