"""The PROXY protocol header parser: the spec's examples and limits, every malformation it names,
and properties over random valid headers (an independent test-side encoder) and random bytes."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_header_encoder import V2_SIGNATURE, headers, tlv, unix_block, v1, v2, v2_ip_block

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.proxy_header import (
    MAX_HEADER,
    NEED_DATA,
    Command,
    Family,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
    sniff,
)

PROPERTIES = settings(max_examples=300, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TLS_HELLO_START = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])
KAFKA_FRAME = struct.pack(">ihhih", 16, 18, 3, 7, 5) + b"probe"
IP4 = ipaddress.IPv4Address
IP6 = ipaddress.IPv6Address


def parsed(data: bytes) -> ProxyHeader:
    result = parse_proxy_header(data)
    assert isinstance(result, ProxyHeader), result
    return result


# -- version 1 -------------------------------------------------------------------------------------


def test_v1_the_specs_example() -> None:
    data = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n"
    header = parsed(data)
    assert (header.version, header.command, header.family) == (1, Command.PROXY, Family.TCP4)
    assert (header.source_address, header.source_port) == ("192.168.0.1", 56324)
    assert (header.destination_address, header.destination_port) == ("192.168.0.11", 443)
    assert header.length == len(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
    assert data[header.length:] == b"GET / HTTP/1.1\r\n"
    assert header.client == ("192.168.0.1", 56324)
    assert header.tlvs == () and header.aws_vpc_endpoint_id is None


def test_v1_ipv6_is_normalised() -> None:
    header = parsed(v1("TCP6", "2001:DB8:0:0:0:0:0:1", "::1", 1, 65535))
    assert (header.family, header.source_address, header.destination_address) == (
        Family.TCP6, "2001:db8::1", "::1")
    assert (header.source_port, header.destination_port) == (1, 65535)


def test_v1_unknown_ignores_the_rest_of_the_line_and_names_no_client() -> None:
    for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff:f...f:ffff whatever 1 2\r\n"):
        header = parsed(line + b"\x16\x03")
        assert (header.family, header.length, header.client) == (Family.UNKNOWN, len(line), None)


def test_v1_the_longest_line_is_107_bytes() -> None:
    six = "ffff:" * 7 + "ffff"
    worst = f"PROXY UNKNOWN {six} {six} 65535 65535\r\n".encode()
    assert len(worst) == 107
    assert parsed(worst).length == 107
    longest_tcp6 = v1("TCP6", six, six, 65535, 65535)
    assert len(longest_tcp6) == 104 and parsed(longest_tcp6).source_address == "ffff:" * 7 + "ffff"
    with pytest.raises(ProxyHeaderError, match="no CRLF within its first 107 bytes"):
        parse_proxy_header(worst[:-2] + b" \r\n")  # 108 bytes
    with pytest.raises(ProxyHeaderError, match="no CRLF within its first 107 bytes"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 200)


@pytest.mark.parametrize(("line", "message"), [
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n", "a CR or LF not part of a CRLF"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rX", "a CR or LF not part of a CRLF"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 \xc3\xa9\r\n", "byte 0xc3, not printable ASCII"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80\t443\r\n", "byte 0x09, not printable ASCII"),
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 80 443\r\n", 'protocol "TCP5" is none of'),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 80 443\r\n", 'protocol "tcp4" is none of'),
    (b"PROXY  TCP4 1.2.3.4 5.6.7.8 80 443\r\n", 'protocol "" is none of'),
    (b"PROXY \r\n", 'protocol "" is none of'),
    (b"PROXY UNKNOWNX\r\n", 'protocol "UNKNOWNX"'),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n", "has 4 space-separated fields"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n", "has 6 space-separated fields"),
    (b"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n", "has 6 space-separated fields"),
    (b"PROXY TCP4 1.2.3.04 5.6.7.8 80 443\r\n", 'source address "1.2.3.04" is not an IPv4'),
    (b"PROXY TCP4 1.2.3.4 256.6.7.8 80 443\r\n", "destination address"),
    (b"PROXY TCP4 ::1 5.6.7.8 80 443\r\n", 'source address "::1" is not an IPv4'),
    (b"PROXY TCP6 1.2.3.4 ::1 80 443\r\n", 'source address "1.2.3.4" is not an IPv6'),
    (b"PROXY TCP6 fe80::1%eth0 ::1 80 443\r\n", "is not an IPv6"),
    (b"PROXY TCP4 localhost 5.6.7.8 80 443\r\n", "is not an IPv4"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n", 'source port "080" is not a decimal'),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n", 'source port "\\+80"'),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n", 'destination port "65536"'),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 1_0\r\n", 'destination port "1_0"'),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 -1\r\n", 'destination port "-1"'),
])
def test_v1_malformed(line: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        parse_proxy_header(line)


def test_v1_prefixes_need_more_until_the_crlf() -> None:
    line = v1("TCP4", "10.0.0.1", "10.0.0.2", 40000, 9098)
    for cut in range(len(line)):
        assert parse_proxy_header(line[:cut]) is NEED_DATA, line[:cut]
    assert parsed(line).length == len(line)


# -- version 2 -------------------------------------------------------------------------------------


def test_v2_tcp4_with_tlvs() -> None:
    block = v2_ip_block(IP4("203.0.113.7"), IP4("10.0.0.5"), 51234, 9098)
    block += tlv(0x04, b"") + tlv(0xEA, b"\x01vpce-0123456789abcdef0") + tlv(0x05, b"id")
    data = v2(block=block)
    header = parsed(data + b"\x16\x03\x01")
    assert (header.version, header.command, header.family) == (2, Command.PROXY, Family.TCP4)
    assert header.client == ("203.0.113.7", 51234)
    assert (header.destination_address, header.destination_port) == ("10.0.0.5", 9098)
    assert header.tlvs == ((0x04, b""), (0xEA, b"\x01vpce-0123456789abcdef0"), (0x05, b"id"))
    assert header.aws_vpc_endpoint_id == "vpce-0123456789abcdef0"
    assert header.length == len(data)


def test_v2_tcp6() -> None:
    data = v2(family=0x21, block=v2_ip_block(IP6("2001:db8::7"), IP6("::1"), 1, 2))
    header = parsed(data)
    assert (header.family, header.client, header.destination_address) == (
        Family.TCP6, ("2001:db8::7", 1), "::1")


def test_v2_local_keeps_the_real_peer_and_skips_its_block() -> None:
    # a health check: whatever follows is not read (here: bytes that are no valid TLV at all)
    header = parsed(v2(command=0, family=0x11, block=b"\xff" * 13))
    assert (header.command, header.family, header.client, header.tlvs) == (
        Command.LOCAL, Family.UNSPEC, None, ())
    assert parsed(v2(command=0, family=0x00)).length == 16


@pytest.mark.parametrize("family", [0x00, 0x01, 0x10, 0x20, 0x30])
def test_v2_unspec_names_no_client(family: int) -> None:
    header = parsed(v2(family=family, block=b"anything"))
    assert (header.command, header.family, header.client) == (Command.PROXY, Family.UNSPEC, None)


def test_v2_udp_and_unix_name_no_tcp_client() -> None:
    udp = parsed(v2(family=0x12, block=v2_ip_block(IP4("1.2.3.4"), IP4("5.6.7.8"), 1, 2)))
    assert (udp.family, udp.source_address, udp.client) == (Family.UDP4, "1.2.3.4", None)
    unix = parsed(v2(family=0x31, block=unix_block("/run/client.sock", "/run/edge.sock")))
    assert (unix.family, unix.source_address, unix.destination_address, unix.source_port) == (
        Family.UNIX_STREAM, "/run/client.sock", "/run/edge.sock", None)
    assert unix.client is None


def test_v2_vpc_endpoint_id_needs_its_subtype_and_is_escaped() -> None:
    block = v2_ip_block(IP4("1.2.3.4"), IP4("5.6.7.8"), 1, 2)
    assert parsed(v2(block=block + tlv(0xEA, b"\x02vpce-x"))).aws_vpc_endpoint_id is None
    assert parsed(v2(block=block + tlv(0xEA, b""))).aws_vpc_endpoint_id is None
    hostile = parsed(v2(block=block + tlv(0xEA, b"\x01vpce\nfake=1\\\xff")))
    assert hostile.aws_vpc_endpoint_id == "vpce\\x0afake=1\\x5c\\xff"


@pytest.mark.parametrize(("data", "message"), [
    (V2_SIGNATURE + b"\x11\x11\x00\x00", "version 1, expected 2"),
    (V2_SIGNATURE + b"\x31\x11\x00\x00", "version 3, expected 2"),
    (V2_SIGNATURE + b"\x22\x11\x00\x00", "command 0x2 is neither LOCAL"),
    (V2_SIGNATURE + b"\x2f\x11\x00\x00", "command 0xf"),
    (V2_SIGNATURE + b"\x21\x41\x00\x00", "family/transport byte 0x41 is not defined"),
    (V2_SIGNATURE + b"\x21\x13\x00\x00", "family/transport byte 0x13"),
    (v2(family=0x11, block=b"\x00" * 11), "length 11 is shorter than the 12 address bytes of TCP4"),
    (v2(family=0x21, block=b"\x00" * 12), "shorter than the 36 address bytes of TCP6"),
    (v2(family=0x31, block=b"\x00" * 215), "shorter than the 216 address bytes of UNIX_STREAM"),
    (v2(block=b"\x00" * 12 + b"\x05\x00"), "TLV header cut short: 2 byte"),
    (v2(block=b"\x00" * 12 + b"\x05\x00\x03ab"), "TLV 0x05 of 3 bytes overruns the header"),
    (v2(block=b"\x00" * 12 + tlv(1, b"h2") + b"\xea\xff\xff"), "TLV 0xea of 65535 bytes"),
])
def test_v2_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        parse_proxy_header(data + b"\x00" * 40)  # trailing bytes change nothing


def test_v2_prefixes_need_more_until_the_announced_length() -> None:
    data = v2(block=v2_ip_block(IP4("1.2.3.4"), IP4("5.6.7.8"), 1, 2) + tlv(0xEA, b"\x01v"))
    for cut in range(len(data)):
        assert parse_proxy_header(data[:cut]) is NEED_DATA
    biggest = v2(command=0, length=0xFFFF)
    assert len(biggest) + 0xFFFF == MAX_HEADER
    assert parse_proxy_header(biggest + b"\x00" * (0xFFFF - 1)) is NEED_DATA
    assert parsed(biggest + b"\x00" * 0xFFFF).length == MAX_HEADER


# -- neither ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "message"), [
    (TLS_HELLO_START, "16 03 01 02 00 01 00 01 \\(a TLS record"),
    (KAFKA_FRAME, "00 00 00 10 00 12 00 03 \\(a Kafka frame"),
    (b"GET / HTTP/1.1\r\n", "47 45 54 20"),
    (b"PROXX", "50 52 4f 58 58"),
    (b"\r\n\r\n\x00\r\nQUIX", "0d 0a 0d 0a 00 0d 0a 51"),
])
def test_not_a_header(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=f"not a PROXY protocol header: the bytes start "
                       f"{message}") as caught:
        parse_proxy_header(data)
    assert isinstance(caught.value, ProtocolError)  # the peer's fault, as every other


def test_sniff() -> None:
    assert sniff(b"") is NEED_DATA
    for signature in (b"PROXY ", V2_SIGNATURE):
        for cut in range(1, len(signature)):
            assert sniff(signature[:cut]) is NEED_DATA
        assert sniff(signature) is True
        assert sniff(signature + b"anything") is True
    for other in (TLS_HELLO_START, KAFKA_FRAME, b"\x00", b"PROXX", b"GET /", b"\r\n\r\nX"):
        assert sniff(other) is False


# -- properties ------------------------------------------------------------------------------------


@PROPERTIES
@given(case=headers, trailing=st.binary(max_size=40))
def test_encoded_headers_round_trip(case: tuple[bytes, ProxyHeader], trailing: bytes) -> None:
    data, expected = case
    assert parsed(data + trailing) == expected
    assert expected.length == len(data)


@PROPERTIES
@given(case=headers, data=st.data())
def test_any_split_needs_data_then_gives_the_same_header(case: tuple[bytes, ProxyHeader],
                                                         data: st.DataObject) -> None:
    encoded, expected = case
    cut = data.draw(st.integers(0, len(encoded) - 1))
    assert parse_proxy_header(encoded[:cut]) is NEED_DATA
    assert sniff(encoded[:cut]) in (NEED_DATA, True)
    assert sniff(encoded) is True
    assert parsed(encoded[:cut] + encoded[cut:]) == expected


# Mostly bytes that lead somewhere: signature prefixes, spaces, digits, CRLF, small numbers.
_pieces = st.one_of(st.sampled_from([b"PROXY ", V2_SIGNATURE, b"\r\n", b" ", b"TCP4", b"TCP6",
                                     b"UNKNOWN", b"\x21\x11", b"\x20\x00", b"\x00\x0c", b"0", b"1",
                                     b"255.", b"::", b"\xea\x00\x02\x01"]),
                    st.binary(max_size=8))
fuzz_bytes = st.lists(_pieces, max_size=30).map(b"".join)


@PROPERTIES
@given(data=st.one_of(fuzz_bytes, st.binary(max_size=300)))
def test_random_bytes_raise_only_proxy_header_error(data: bytes) -> None:
    try:
        result = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    assert result is NEED_DATA or (isinstance(result, ProxyHeader) and result.length <= len(data))


@PROPERTIES
@given(case=headers, index=st.integers(0, 10_000), value=st.integers(0, 255))
def test_corrupted_headers_raise_only_proxy_header_error(case: tuple[bytes, ProxyHeader],
                                                         index: int, value: int) -> None:
    corrupted = bytearray(case[0])
    corrupted[index % len(corrupted)] = value
    try:
        result = parse_proxy_header(bytes(corrupted))
    except ProxyHeaderError:
        return
    assert result is NEED_DATA or isinstance(result, ProxyHeader)
