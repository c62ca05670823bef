"""The rows of the bad-input matrix (test_bad_input_matrix.py): what each sends on a raw socket
and what it observes. Outcomes are words the table states per row:

- ``closed``: the edge closed the connection without answering (EOF or reset);
- ``alert``: the TLS handshake was refused (an alert, or the connection closed during it);
- ``error <code>``: the protocol's own error answer, with its error code;
- ``answered``: a normal answer (the bad part was the broker's to judge);
- ``all closed``: many connections, every one closed by the edge in time.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    mode: str  # plain (port mode, plaintext), tls-port (port mode, TLS), sni
    host: str
    port: int
    server_name: str | None  # TLS server name; None: plaintext
    ca: Path
    domain: str
    node: int


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request(key: int, version: int, corr: int, body: bytes = b"") -> bytes:
    return frame(struct.pack(">hhih", key, version, corr, 3) + b"bad" + body)


def connect(t: Target, server_name: str | None = None, timeout: float = 10.0) -> socket.socket:
    """A connection to ``t``, through TLS if ``t`` is a TLS target (``server_name`` overrides
    the name sent)."""
    raw = socket.create_connection((t.host, t.port), timeout=timeout)
    if t.server_name is None:
        return raw
    ctx = ssl.create_default_context(cafile=str(t.ca))
    ctx.check_hostname = False
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name or t.server_name)
    except BaseException:
        raw.close()
        raise


def outcome(sock: socket.socket, timeout: float = 10.0) -> str:
    """What the edge does next: answer (one frame), or close."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return "closed"
    except TimeoutError:
        return "open"
    finally:
        sock.close()
    payload = data[4:4 + struct.unpack_from(">i", data)[0]]
    return "answered" if len(payload) < 6 else _error_word(payload)


def _error_word(payload: bytes) -> str:
    error = struct.unpack_from(">h", payload, 4)[0]
    return f"error {error}" if error else "answered"


def send_and_see(t: Target, data: bytes, timeout: float = 10.0) -> str:
    sock = connect(t)
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        sock.close()
        return "closed"
    return outcome(sock, timeout)


def tls_hello_to(t: Target, server_name: str | None) -> str:
    """A TLS handshake (with ``server_name``) where ``t`` may expect plaintext."""
    raw = socket.create_connection((t.host, t.port), timeout=10)
    ctx = ssl.create_default_context(cafile=str(t.ca))
    ctx.check_hostname = False
    try:
        sock = ctx.wrap_socket(raw, server_hostname=server_name)
    except (ssl.SSLError, ConnectionResetError, OSError):
        raw.close()
        return "alert"
    sock.sendall(request(18, 0, 1))
    return outcome(sock)


def plaintext_to(t: Target) -> str:
    raw = socket.create_connection((t.host, t.port), timeout=10)
    raw.sendall(request(18, 0, 1))
    return outcome(raw)


def half_open_handshakes(t: Target, count: int = 2000) -> str:
    """``count`` connections that send a partial ClientHello, then nothing: each must be closed
    by the edge (handshake or ClientHello time-out), not left to pile up."""
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection((t.host, t.port), timeout=10)
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
            socks.append(s)
        deadline = time.monotonic() + 60
        open_ = list(socks)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.settimeout(0.01)
                try:
                    if s.recv(4096) != b"":
                        still.append(s)
                except TimeoutError:
                    still.append(s)
                except OSError:
                    pass
            open_ = still
            time.sleep(0.5)
        return "all closed" if not open_ else f"{len(open_)} still open"
    finally:
        for s in socks:
            s.close()


def truncated_then_silence(t: Target) -> str:
    sock = connect(t)
    sock.sendall(request(18, 0, 1)[:9])  # size and half a header, then nothing
    return outcome(sock, timeout=30)


def truncated_after_a_request(t: Target) -> str:
    """One whole ApiVersions request, answered; then half of a second one, then nothing."""
    sock = connect(t)
    sock.sendall(request(18, 0, 1))
    sock.settimeout(10)
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            sock.close()
            return "closed before the first answer"
        data += chunk
    first = _error_word(data[4:])
    if first != "answered" or len(data) != 4 + struct.unpack_from(">i", data)[0]:
        sock.close()
        return f"first request: {first}"
    sock.sendall(request(18, 0, 2)[:9])
    return outcome(sock, timeout=30)


def reused_correlation_id(t: Target) -> str:
    # a Metadata v1 request for a topic that does not exist, then a second with the same id:
    # the first is still awaiting its answer
    body = struct.pack(">i", 1) + struct.pack(">h", 4) + b"zzzz"
    return send_and_see(t, request(3, 1, 7, body) + request(3, 1, 7, body))


def oversized_array(t: Target) -> str:
    """A Metadata v1 request claiming 2^31-1 topics: the proxy does not parse request bodies;
    the broker refuses it (closes)."""
    return send_and_see(t, request(3, 1, 9, struct.pack(">i", 2**31 - 1)))


def huge_tag_count(t: Target) -> str:
    """An ApiVersions v3 request whose header tagged-field section claims 2^31 fields."""
    header = struct.pack(">hhih", 18, 3, 11, 3) + b"bad" + b"\x80\x80\x80\x80\x08"
    return send_and_see(t, frame(header))


def client_hello(name: bytes) -> bytes:
    """A real ClientHello (this Python's OpenSSL) carrying ``name`` as its SNI, whatever its
    bytes (the ssl module would refuse to send some of the names tried here)."""
    placeholder = b"placeholder.invalid"
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=placeholder.decode())
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    record = outgoing.read()
    at = record.index(placeholder)
    grow = len(name) - len(placeholder)
    out = bytearray(record[:at] + name + record[at + len(placeholder):])

    def bump(pos: int, width: int) -> None:
        value = int.from_bytes(out[pos:pos + width], "big") + grow
        out[pos:pos + width] = value.to_bytes(width, "big")

    bump(at - 2, 2)  # the name's length
    bump(at - 5, 2)  # the server name list's length
    bump(at - 7, 2)  # the extension's length
    # the extensions block's length: after session id, cipher suites and compression methods
    pos = 5 + 4 + 2 + 32
    pos += 1 + out[pos]
    pos += 2 + int.from_bytes(out[pos:pos + 2], "big")
    pos += 1 + out[pos]
    bump(pos, 2)
    bump(5 + 1, 3)  # the handshake message's length
    bump(3, 2)  # the record's length
    return bytes(out)


def sni_name(make: Callable[[Target], bytes]) -> Callable[[Target], str]:
    def run(t: Target) -> str:
        raw = socket.create_connection((t.host, t.port), timeout=10)
        hello = client_hello(make(t))
        if len(hello) - 5 > 16384:
            return "too long to send"
        raw.sendall(hello)
        raw.settimeout(10)
        try:
            data = raw.recv(7)
        except (ConnectionResetError, TimeoutError):
            data = b""
        finally:
            raw.close()
        if data[:1] == b"\x15":
            return "alert"
        return "server hello" if data[:1] == b"\x16" else "closed"
    return run


@dataclass(frozen=True)
class Row:
    mode: str
    name: str
    run: Callable[[Target], str]
    expected: str
    log_line: str | None  # a phrase the edge logs for this row (None: the answer says it all)
    log_within_s: float = 10.0
    # which edge: "main" (limits.incomplete_frame_timeout_s set, no idle timeout) or "idle"
    # (limits.idle_timeout_s set; the half-sent frame and first-request timeouts off)
    edge: str = "main"


RNG = random.Random(15)
RANDOM = bytes(RNG.randrange(256) for _ in range(64))
MAX_FRAME = 1 << 20
INCOMPLETE_TIMEOUT_S = 3  # the main edge's limits.incomplete_frame_timeout_s
IDLE_TIMEOUT_S = 2  # the idle edge's limits.idle_timeout_s
HALF_SENT = (f"a frame left half-sent for {INCOMPLETE_TIMEOUT_S} s "
             "(limits.incomplete_frame_timeout_s)")
IDLE = f"connection closed: idle for {IDLE_TIMEOUT_S} s (limits.idle_timeout_s)"


def _bytes(data: bytes) -> Callable[[Target], str]:
    return lambda t: send_and_see(t, data)


def _rows() -> list[Row]:
    rows: list[Row] = []
    for mode in ("plain", "tls-port", "sni"):
        rows += [
            Row(mode, "negative length", _bytes(struct.pack(">i", -1) + b"x" * 8), "closed",
                "frame size -1 is out of range"),
            Row(mode, "zero length", _bytes(struct.pack(">i", 0)), "closed",
                "frame size 0 is out of range"),
            Row(mode, "huge length", _bytes(struct.pack(">i", 2**31 - 1) + b"x" * 8), "closed",
                f"frame size {2**31 - 1} is out of range"),
            Row(mode, "just over the limit", _bytes(struct.pack(">i", MAX_FRAME + 1) +
                                                     b"x" * 8), "closed",
                f"frame size {MAX_FRAME + 1} is out of range"),
            Row(mode, "truncated frame then silence, no idle timeout", truncated_then_silence,
                "closed", HALF_SENT, 15.0),
            Row(mode, "truncated frame then silence, idle timeout", truncated_then_silence,
                "closed", IDLE, 15.0, edge="idle"),
            Row(mode, "ApiVersions v999", _bytes(request(18, 999, 3)), "error 35", None),
            Row(mode, "unknown API key", _bytes(request(9999, 0, 4)), "closed",
                "broker closed the connection"),
            Row(mode, "correlation id reused in flight", reused_correlation_id, "closed",
                "correlation id 7 reused"),
            Row(mode, "array claiming 2^31-1 entries", oversized_array, "closed",
                "broker closed the connection"),
            Row(mode, "tagged-field count 2^31", huge_tag_count, "closed",
                "broker closed the connection"),
        ]
    rows += [  # in two modes only (each takes the time-out's seconds): plaintext, and TLS
        Row(mode, "truncated frame after an answered request then silence, no idle timeout",
            truncated_after_a_request, "closed", HALF_SENT, 15.0) for mode in ("plain", "sni")]
    rows += [
        Row("plain", "random bytes", _bytes(RANDOM), "closed", "is out of range"),
        Row("tls-port", "random bytes", lambda t: _raw(t, RANDOM), "closed",
            "TLS handshake failed"),
        Row("sni", "random bytes", lambda t: _raw(t, RANDOM), "closed", "not a TLS handshake"),
        Row("plain", "TLS to the plaintext port", lambda t: tls_hello_to(t, "x"), "alert",
            "a TLS handshake arrived on a plaintext Kafka port"),
        Row("tls-port", "plaintext to the TLS port", plaintext_to, "closed",
            "TLS handshake failed"),
        Row("sni", "plaintext to the TLS listener", plaintext_to, "closed",
            "a plaintext Kafka request arrived on a TLS port"),
        Row("sni", "2000 half-open TLS handshakes", half_open_handshakes, "all closed",
            "no TLS ClientHello before the handshake timeout", 70.0),
    ]
    names: list[tuple[str, Callable[[Target], bytes], str]] = [
        ("unknown name", lambda t: b"unknown.example.org", "alert"),
        ("b-N.evil.com", lambda t: b"b-%d.evil.com" % t.node, "alert"),
        ("b-N.<domain>.evil", lambda t: b"b-%d.%s.evil" % (t.node, t.domain.encode()), "alert"),
        ("evil.b-N.<domain>", lambda t: b"evil.b-%d.%s" % (t.node, t.domain.encode()), "alert"),
        ("node number of 3000 digits", lambda t: b"b-" + b"9" * 3000 + b"." + t.domain.encode(),
         "alert"),
        ("leading zeros", lambda t: b"b-000%d.%s" % (t.node, t.domain.encode()), "alert"),
        ("upper case", lambda t: b"B-%d.%s" % (t.node, t.domain.upper().encode()),
         "server hello"),
        ("trailing dot", lambda t: b"b-%d.%s." % (t.node, t.domain.encode()), "server hello"),
        ("non-ASCII", lambda t: f"b-\u00e9{t.node}.{t.domain}".encode(), "alert"),
        ("punycode", lambda t: b"xn--b-9-9oa.%s" % t.domain.encode(), "alert"),
        ("very long", lambda t: b"b-%d." % t.node + b"a" * 250 + b"." + t.domain.encode(),
         "alert"),
    ]
    for label, make, expected in names:
        rows.append(Row("sni", f"SNI {label}", sni_name(make), expected,
                        None if expected == "server hello" else "refused TLS server name"))
    return rows


def _raw(t: Target, data: bytes) -> str:
    raw = socket.create_connection((t.host, t.port), timeout=10)
    raw.sendall(data)
    return outcome(raw)


ROWS = _rows()
