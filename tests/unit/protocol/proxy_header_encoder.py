"""A PROXY protocol header encoder for tests, written from haproxy's doc/proxy-protocol.txt
independently of the parser, and hypothesis strategies of valid headers with the
:class:`~kafka_edge.protocol.proxy_header.ProxyHeader` each must parse to."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import strategies as st

from kafka_edge.protocol.proxy_header import Command, Family, ProxyHeader

V2_SIGNATURE = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
V2_FAMILY_BYTES = {Family.TCP4: 0x11, Family.UDP4: 0x12, Family.TCP6: 0x21, Family.UDP6: 0x22,
                   Family.UNIX_STREAM: 0x31, Family.UNIX_DGRAM: 0x32}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def v1(family: str, src: str = "", dst: str = "", sport: int | str = "",
       dport: int | str = "") -> bytes:
    """``PROXY <family> <src> <dst> <sport> <dport>\\r\\n`` (fields left empty are left out)."""
    fields = [str(f) for f in (src, dst, sport, dport) if f != ""]
    return " ".join(["PROXY", family, *fields]).encode("ascii") + b"\r\n"


def v2(*, command: int = 1, family: int = 0x11, block: bytes = b"", version: int = 2,
       length: int | None = None) -> bytes:
    """A v2 header around an already encoded address block (and TLVs)."""
    size = len(block) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack(">H", size) + block


def v2_ip_block(src: IpAddress, dst: IpAddress, sport: int, dport: int) -> bytes:
    return src.packed + dst.packed + struct.pack(">HH", sport, dport)


def unix_block(src: str, dst: str) -> bytes:
    return src.encode().ljust(108, b"\x00") + dst.encode().ljust(108, b"\x00")


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def _header(version: int, family: Family, length: int, *, command: Command = Command.PROXY,
            src: str | None = None, dst: str | None = None, sport: int | None = None,
            dport: int | None = None, tlvs: tuple[tuple[int, bytes], ...] = ()) -> ProxyHeader:
    return ProxyHeader(version=version, command=command, family=family, source_address=src,
                       source_port=sport, destination_address=dst, destination_port=dport,
                       tlvs=tlvs, length=length)


ports = st.integers(0, 65535)
tlv_lists = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=5)


def _addresses(draw: st.DrawFn, version: int) -> tuple[IpAddress, IpAddress]:
    strategy = st.ip_addresses(v=4) if version == 4 else st.ip_addresses(v=6)
    return draw(strategy), draw(strategy)


@st.composite
def v1_headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    kind = draw(st.sampled_from(["TCP4", "TCP6", "UNKNOWN"]))
    if kind == "UNKNOWN":
        # the rest of an UNKNOWN line is anything printable (the receiver ignores it)
        rest = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90))
        data = b"PROXY UNKNOWN" + (b" " + rest.encode() if rest or draw(st.booleans()) else b"")
        data += b"\r\n"
        return data, _header(1, Family.UNKNOWN, len(data))
    src, dst = _addresses(draw, 4 if kind == "TCP4" else 6)
    sport, dport = draw(ports), draw(ports)
    exploded = kind == "TCP6" and draw(st.booleans())  # both forms are canonical enough
    data = v1(kind, src.exploded if exploded else str(src),
              dst.exploded if exploded else str(dst), sport, dport)
    return data, _header(1, Family(kind), len(data), src=str(src), dst=str(dst), sport=sport,
                         dport=dport)


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    shape = draw(st.sampled_from(["ip", "unix", "local", "unspec"]))
    if shape in ("local", "unspec"):  # the address block is skipped unread
        block = draw(st.binary(max_size=300))
        if shape == "local":
            data = v2(command=0, family=draw(st.sampled_from([0x00, *V2_FAMILY_BYTES.values()])),
                      block=block)
            return data, _header(2, Family.UNSPEC, len(data), command=Command.LOCAL)
        data = v2(family=draw(st.sampled_from([0x00, 0x01, 0x02, 0x10, 0x20, 0x30])),
                  block=block)
        return data, _header(2, Family.UNSPEC, len(data))
    tlvs = tuple(draw(tlv_lists))
    encoded_tlvs = b"".join(tlv(kind, value) for kind, value in tlvs)
    if shape == "unix":
        family = draw(st.sampled_from([Family.UNIX_STREAM, Family.UNIX_DGRAM]))
        paths = st.text(st.characters(min_codepoint=1, max_codepoint=0x10FFFF,
                                      exclude_categories=["Cs"]), max_size=27)  # <= 108 bytes
        src_path, dst_path = draw(paths), draw(paths)
        data = v2(family=V2_FAMILY_BYTES[family],
                  block=unix_block(src_path, dst_path) + encoded_tlvs)
        return data, _header(2, family, len(data), src=src_path, dst=dst_path, tlvs=tlvs)
    family = draw(st.sampled_from([Family.TCP4, Family.UDP4, Family.TCP6, Family.UDP6]))
    src, dst = _addresses(draw, 4 if family in (Family.TCP4, Family.UDP4) else 6)
    sport, dport = draw(ports), draw(ports)
    data = v2(family=V2_FAMILY_BYTES[family],
              block=v2_ip_block(src, dst, sport, dport) + encoded_tlvs)
    return data, _header(2, family, len(data), src=str(src), dst=str(dst), sport=sport,
                         dport=dport, tlvs=tlvs)


headers = st.one_of(v1_headers(), v2_headers())
