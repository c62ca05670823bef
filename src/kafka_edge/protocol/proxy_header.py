"""The PROXY protocol header (versions 1 and 2), parsed from the first bytes of a connection.

A load balancer in TCP mode (HAProxy with ``send-proxy`` / ``send-proxy-v2``, an AWS Network Load
Balancer with ``proxy_protocol_v2.enabled``) puts this header before anything its client sends,
so the receiver learns the client's address. The format is haproxy's doc/proxy-protocol.txt:

- version 1: one US-ASCII line ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or
  ``PROXY UNKNOWN ...\\r\\n``, at most 107 bytes with its CRLF; addresses in canonical form, ports
  decimal without leading zeros;
- version 2: the 12-byte signature, a version/command byte (version 2; LOCAL or PROXY), a
  family/transport byte, a 16-bit length, then that many bytes: the addresses (12 for IPv4, 36
  for IPv6, 216 for UNIX) followed by type-length-value vectors (TLVs). AWS puts the VPC endpoint
  id of a PrivateLink connection in TLV 0xEA, its value starting with subtype 0x01.

Sans-I/O, the h11 way: :func:`parse_proxy_header` takes the bytes seen so far and returns the
header, or :data:`NEED_DATA` when they are a valid beginning of one; it raises
:class:`ProxyHeaderError` (a :class:`~kafka_edge.protocol.errors.ProtocolError`: the peer's fault)
for anything else, and nothing else for any input, which makes it the fuzzing entry point.
:func:`sniff` tells whether a connection's first bytes start with a PROXY header at all (for a
listener where the header is optional: otherwise they are TLS or a Kafka frame).

What the receiver does with a header (spec section 2): a v2 LOCAL command (a load balancer's own
health check) and the families it cannot use (v1 UNKNOWN, v2 UNSPEC, UDP, UNIX) keep the real
connection's addresses: :attr:`ProxyHeader.client` is then None. The address block of LOCAL and
UNSPEC headers is skipped unread, as the spec asks; a CRC32C TLV is kept, not verified.

Written here rather than taken from PyPI's ``proxy-protocol`` (0.11.3): that package signals
"need more bytes" with an exception, imports ``socket`` (this package does no I/O), and its v1
reader takes ports with ``int()`` (so ``+80`` and ``0080`` pass) and lets ``ValueError`` escape
on a malformed address.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import struct
from dataclasses import dataclass

from kafka_edge.protocol.errors import ProtocolError

__all__ = [
    "NEED_DATA",
    "Command",
    "Family",
    "NeedData",
    "ProxyHeader",
    "ProxyHeaderError",
    "parse_proxy_header",
    "sniff",
]

V1_SIGNATURE = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_LINE = 107  # the longest valid line, CRLF included ("PROXY UNKNOWN" with IPv6 fields)
V2_FIXED = 16  # signature, version/command, family/transport, length
MAX_HEADER = V2_FIXED + 0xFFFF  # the longest v2 header; a v1 line is shorter
TLV_AWS = 0xEA
AWS_SUBTYPE_VPCE_ID = 0x01


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA` (an enum member, so ``is`` comparisons narrow types)."""

    NEED_DATA = "need data"


NEED_DATA = NeedData.NEED_DATA
"""Returned when the bytes are a valid beginning of a PROXY header: read more, then ask again."""


class ProxyHeaderError(ProtocolError):
    """The bytes are not a valid PROXY protocol header (the sender's fault)."""


class Command(enum.Enum):
    LOCAL = "LOCAL"  # v2: the load balancer's own connection (health check): use the real peer
    PROXY = "PROXY"  # relayed on behalf of a client (every v1 header)


class Family(enum.Enum):
    TCP4 = "TCP4"
    TCP6 = "TCP6"
    UDP4 = "UDP4"  # v2 only, as are the next three
    UDP6 = "UDP6"
    UNIX_STREAM = "UNIX_STREAM"
    UNIX_DGRAM = "UNIX_DGRAM"
    UNSPEC = "UNSPEC"  # v2: family or transport unspecified; also every LOCAL header
    UNKNOWN = "UNKNOWN"  # v1 "PROXY UNKNOWN"


# v2 family/transport byte -> (family, address block size)
_V2_FAMILIES: dict[int, tuple[Family, int]] = {
    0x11: (Family.TCP4, 12), 0x12: (Family.UDP4, 12),
    0x21: (Family.TCP6, 36), 0x22: (Family.UDP6, 36),
    0x31: (Family.UNIX_STREAM, 216), 0x32: (Family.UNIX_DGRAM, 216),
}
_IP_FAMILIES = {Family.TCP4: 4, Family.TCP6: 6, Family.UDP4: 4, Family.UDP6: 6}
_V1_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyHeader:
    version: int  # 1 or 2
    command: Command
    family: Family
    source_address: str | None  # IP address text (normalised) or UNIX path; None when not given
    source_port: int | None  # None for UNIX and when no address is given
    destination_address: str | None
    destination_port: int | None
    tlvs: tuple[tuple[int, bytes], ...]  # v2 (type, value) in order; () for v1, LOCAL, UNSPEC
    length: int  # bytes the header occupies at the start of the stream

    @property
    def client(self) -> tuple[str, int] | None:
        """The TCP client the header speaks for, or None: the real peer stands (LOCAL, and
        families other than TCP over IPv4 or IPv6)."""
        if (self.command is Command.PROXY and self.family in (Family.TCP4, Family.TCP6)
                and self.source_address is not None and self.source_port is not None):
            return self.source_address, self.source_port
        return None

    @property
    def aws_vpc_endpoint_id(self) -> str | None:
        """The VPC endpoint id AWS sends for PrivateLink connections (TLV 0xEA, subtype 0x01),
        as text: bytes outside printable ASCII are escaped (``\\xNN``). None without one."""
        for kind, value in self.tlvs:
            if kind == TLV_AWS and value[:1] == bytes([AWS_SUBTYPE_VPCE_ID]):
                return _printable(value[1:])
        return None


def sniff(data: bytes) -> bool | NeedData:
    """Whether ``data``, the first bytes of a connection, start with a PROXY header: True (a v1
    or v2 signature is there), False (they cannot: e.g. a TLS record or a Kafka frame), or
    :data:`NEED_DATA` (too few bytes to tell: they are a prefix of a signature)."""
    for signature in (V2_SIGNATURE, V1_SIGNATURE):
        if data[:len(signature)] == signature[:len(data)]:
            return True if len(data) >= len(signature) else NEED_DATA
    return False


def parse_proxy_header(data: bytes) -> ProxyHeader | NeedData:
    """The PROXY header at the start of ``data`` (bytes after it are left alone; its ``length``
    says where they begin), or :data:`NEED_DATA`. Raises :class:`ProxyHeaderError` when the bytes
    cannot be (the beginning of) a valid header."""
    data = bytes(data)
    if data[:len(V2_SIGNATURE)] == V2_SIGNATURE[:len(data)]:
        return _parse_v2(data)
    if data[:len(V1_SIGNATURE)] == V1_SIGNATURE[:len(data)]:
        return _parse_v1(data)
    raise ProxyHeaderError(f"not a PROXY protocol header: the bytes start {_describe(data)}", 0)


# -- version 1 -------------------------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | NeedData:
    end = data.find(b"\r\n", 0, V1_MAX_LINE)
    if end < 0:
        _check_partial_line(data)
        return NEED_DATA
    line = data[len(V1_SIGNATURE):end]
    bad = _first_unprintable(line)
    if bad is not None:
        raise ProxyHeaderError(f"v1 line holds byte 0x{line[bad]:02x}, not printable ASCII",
                               len(V1_SIGNATURE) + bad)
    length = end + 2
    fields = line.split(b" ")
    if fields[0] == b"UNKNOWN":  # the rest of the line, if any, is to be ignored
        return ProxyHeader(version=1, command=Command.PROXY, family=Family.UNKNOWN,
                           source_address=None, source_port=None, destination_address=None,
                           destination_port=None, tlvs=(), length=length)
    if fields[0] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"v1 protocol {_quote(fields[0])} is none of TCP4, TCP6, "
                               "UNKNOWN", len(V1_SIGNATURE))
    if len(fields) != 5:
        raise ProxyHeaderError(f"v1 line has {len(fields)} space-separated fields after PROXY, "
                               "expected 5 (protocol, two addresses, two ports; one space "
                               "between each)", len(V1_SIGNATURE))
    family = Family.TCP4 if fields[0] == b"TCP4" else Family.TCP6
    return ProxyHeader(
        version=1, command=Command.PROXY, family=family,
        source_address=_v1_address(fields[1], family, "source"),
        destination_address=_v1_address(fields[2], family, "destination"),
        source_port=_v1_port(fields[3], "source"),
        destination_port=_v1_port(fields[4], "destination"),
        tlvs=(), length=length)


def _check_partial_line(data: bytes) -> None:
    """A v1 line without its CRLF yet: fail now if it can never become valid."""
    if len(data) >= V1_MAX_LINE:
        raise ProxyHeaderError(f"v1 line has no CRLF within its first {V1_MAX_LINE} bytes", 0)
    body = data[:-1] if data.endswith(b"\r") else data  # a CR may be followed by its LF
    bad = _first_unprintable(body)
    if bad is not None:
        what = "a CR or LF not part of a CRLF" if body[bad] in b"\r\n" else (
            f"byte 0x{body[bad]:02x}, not printable ASCII")
        raise ProxyHeaderError(f"v1 line holds {what}", bad)


def _first_unprintable(text: bytes) -> int | None:
    for i, byte in enumerate(text):
        if not 0x20 <= byte <= 0x7E:
            return i
    return None


def _v1_address(text: bytes, family: Family, which: str) -> str:
    version = _IP_FAMILIES[family]
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        address = None
    if address is None or address.version != version or "%" in text.decode("ascii"):
        raise ProxyHeaderError(f"v1 {which} address {_quote(text)} is not an IPv{version} "
                               f"address in canonical form ({family.value})")
    return str(address)


def _v1_port(text: bytes, which: str) -> int:
    if not _V1_PORT.fullmatch(text) or int(text) > 65535:
        raise ProxyHeaderError(f"v1 {which} port {_quote(text)} is not a decimal 0-65535 "
                               "without leading zeros")
    return int(text)


# -- version 2 -------------------------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | NeedData:
    if len(data) < V2_FIXED:
        return NEED_DATA
    version, command_bits = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"v2 signature with version {version}, expected 2", 12)
    if command_bits not in (0, 1):
        raise ProxyHeaderError(f"v2 command 0x{command_bits:x} is neither LOCAL (0) nor "
                               "PROXY (1)", 12)
    family_bits, transport_bits = data[13] >> 4, data[13] & 0x0F
    if family_bits > 3 or transport_bits > 2:
        raise ProxyHeaderError(f"v2 family/transport byte 0x{data[13]:02x} is not defined "
                               "(family 0-3, transport 0-2)", 13)
    (block_length,) = struct.unpack_from(">H", data, 14)
    length = V2_FIXED + block_length
    if len(data) < length:
        return NEED_DATA
    block = data[V2_FIXED:length]
    known = _V2_FAMILIES.get(data[13])
    if command_bits == 0 or known is None:  # LOCAL, or UNSPEC family or transport: skipped
        return ProxyHeader(version=2, command=Command.LOCAL if command_bits == 0 else
                           Command.PROXY, family=Family.UNSPEC, source_address=None,
                           source_port=None, destination_address=None, destination_port=None,
                           tlvs=(), length=length)
    family, size = known
    if block_length < size:
        raise ProxyHeaderError(f"v2 length {block_length} is shorter than the {size} address "
                               f"bytes of {family.value}", 14)
    source, destination, source_port, destination_port = _v2_addresses(block[:size], family)
    return ProxyHeader(version=2, command=Command.PROXY, family=family,
                       source_address=source, source_port=source_port,
                       destination_address=destination, destination_port=destination_port,
                       tlvs=_tlvs(block, size), length=length)


def _v2_addresses(block: bytes, family: Family) -> tuple[str, str, int | None, int | None]:
    if family in (Family.UNIX_STREAM, Family.UNIX_DGRAM):
        return _unix_path(block[:108]), _unix_path(block[108:]), None, None
    width = 4 if _IP_FAMILIES[family] == 4 else 16
    source = str(ipaddress.ip_address(block[:width]))
    destination = str(ipaddress.ip_address(block[width:2 * width]))
    source_port, destination_port = struct.unpack_from(">HH", block, 2 * width)
    return source, destination, source_port, destination_port


def _unix_path(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "backslashreplace")


def _tlvs(block: bytes, start: int) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    pos = start
    while pos < len(block):
        if len(block) - pos < 3:
            raise ProxyHeaderError(f"v2 TLV header cut short: {len(block) - pos} byte(s) left "
                                   "of the 3 a type and length take", V2_FIXED + pos)
        kind, size = block[pos], int.from_bytes(block[pos + 1:pos + 3])
        if pos + 3 + size > len(block):
            raise ProxyHeaderError(f"v2 TLV 0x{kind:02x} of {size} bytes overruns the header "
                                   f"({len(block) - pos - 3} left)", V2_FIXED + pos)
        out.append((kind, block[pos + 3:pos + 3 + size]))
        pos += 3 + size
    return tuple(out)


# -- text for messages -----------------------------------------------------------------------------


def _printable(raw: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}" for b in raw)


def _quote(raw: bytes, limit: int = 48) -> str:
    return '"' + _printable(raw[:limit]) + ('..."' if len(raw) > limit else '"')


def _describe(data: bytes) -> str:
    head = " ".join(f"{b:02x}" for b in data[:8])
    if data[:1] == b"\x16" and data[1:2] == b"\x03":
        return f"{head} (a TLS record: no PROXY header was sent)"
    if data[:2] == b"\x00\x00":
        return f"{head} (a Kafka frame, it seems: no PROXY header was sent)"
    return head
