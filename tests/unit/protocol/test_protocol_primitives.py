"""Wire primitives: varints, compact lengths, tagged-field sections, error messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafka_edge.protocol.errors import EncodeError, ProtocolError
from kafka_edge.protocol.primitives import (
    read_compact_length,
    read_tagged_section,
    read_uvarint,
    read_uvarlong,
    read_varint,
    read_varlong,
    skip_tagged_section,
    uvarint_bytes,
    write_compact_length,
    write_tagged_section,
    write_uvarint,
    write_uvarlong,
    write_varint,
    write_varlong,
)


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"),
    (16384, "808001"), (2**31 - 1, "ffffffff07"), (2**32 - 1, "ffffffff0f"),
])
def test_uvarint_vectors(value: int, encoded: str) -> None:
    assert uvarint_bytes(value).hex() == encoded
    assert read_uvarint(bytes.fromhex(encoded), 0) == (value, len(encoded) // 2)


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "00"), (-1, "01"), (1, "02"), (-2, "03"), (63, "7e"), (-64, "7f"), (64, "8001"),
    (2**31 - 1, "feffffff0f"), (-(2**31), "ffffffff0f"),
])
def test_zigzag_varint_vectors(value: int, encoded: str) -> None:
    out = bytearray()
    write_varint(out, value)
    assert out.hex() == encoded
    assert read_varint(bytes.fromhex(encoded), 0) == (value, len(encoded) // 2)


@given(st.integers(0, 2**32 - 1), st.binary(max_size=3))
def test_uvarint_round_trip(value: int, tail: bytes) -> None:
    out = bytearray(b"\xaa")
    write_uvarint(out, value)
    assert read_uvarint(bytes(out) + tail, 1) == (value, len(out))


@given(st.integers(-(2**31), 2**31 - 1))
def test_varint_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(out, value)
    assert read_varint(out, 0) == (value, len(out))


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_round_trip(value: int) -> None:
    out = bytearray()
    write_varlong(out, value)
    assert len(out) <= 10
    assert read_varlong(out, 0) == (value, len(out))


@given(st.integers(0, 2**64 - 1))
def test_uvarlong_round_trip(value: int) -> None:
    out = bytearray()
    write_uvarlong(out, value)
    assert read_uvarlong(out, 0) == (value, len(out))


@pytest.mark.parametrize(("data", "message"), [
    ("", "truncated unsigned varint: need 1 bytes, 0 left at offset 0"),
    ("80", "truncated unsigned varint at offset 0"),
    ("8080808080", "unsigned varint is longer than 5 bytes at offset 0"),
    ("ffffffff10", "unsigned varint does not fit in 32 bits at offset 0"),
])
def test_uvarint_errors(data: str, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        read_uvarint(bytes.fromhex(data), 0)
    assert str(info.value) == message


def test_uvarlong_errors() -> None:
    with pytest.raises(ProtocolError, match="longer than 10 bytes"):
        read_uvarlong(b"\x80" * 11, 0)
    with pytest.raises(ProtocolError, match="truncated"):
        read_uvarlong(b"\x80", 0)


@pytest.mark.parametrize(("write", "value"), [
    (write_uvarint, -1), (write_uvarint, 2**32), (write_varint, 2**31), (write_varlong, 2**63),
    (write_uvarlong, -1),
])
def test_write_range_errors(write: object, value: int) -> None:
    with pytest.raises(EncodeError):
        write(bytearray(), value)  # type: ignore[operator]


def test_compact_length() -> None:
    out = bytearray()
    write_compact_length(out, -1)
    write_compact_length(out, 0)
    write_compact_length(out, 200)
    assert out.hex() == "00" "01" "c901"
    assert read_compact_length(out, 0) == (-1, 1)
    assert read_compact_length(out, 1) == (0, 2)
    assert read_compact_length(out, 2) == (200, 4)


def test_tagged_section_round_trip_sorts_tags() -> None:
    out = bytearray()
    write_tagged_section(out, [(300, b"abc"), (0, b""), (5, memoryview(b"\x01"))])
    assert out.hex() == "03" "0000" "050101" "ac0203616263"
    entries, end = read_tagged_section(out, 0)
    assert end == len(out)
    assert [(tag, bytes(out[s:e])) for tag, s, e in entries] == [
        (0, b""), (5, b"\x01"), (300, b"abc")]
    assert skip_tagged_section(out, 0) == len(out)
    assert skip_tagged_section(b"\x00", 0) == 1
    with pytest.raises(EncodeError, match="given twice"):
        write_tagged_section(bytearray(), [(1, b""), (1, b"")])


@pytest.mark.parametrize(("data", "message"), [
    ("", "truncated"),
    ("01", "claims 1 fields but only 0 bytes"),
    ("010105aa", "truncated tagged field 1: need 5 bytes, 1 left at offset 3"),
    ("0201000100", "tagged field 1 appears twice at offset 3"),
])
def test_tagged_section_errors(data: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        read_tagged_section(bytes.fromhex(data), 0)


def test_skip_tagged_section_errors() -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        skip_tagged_section(b"", 0)
    with pytest.raises(ProtocolError, match="truncated"):
        skip_tagged_section(bytes.fromhex("010105aa"), 0)


def test_protocol_error_rendering() -> None:
    err = ProtocolError("bad thing", 12)
    assert str(err) == "bad thing at offset 12"
    err.add_context("Host")
    err.add_context("[3]")
    err.add_context("Brokers")
    err.add_context("MetadataResponse")
    assert err.where == "MetadataResponse.Brokers[3].Host"
    assert str(err) == "MetadataResponse.Brokers[3].Host: bad thing at offset 12"
    assert isinstance(err, ValueError)
    assert str(ProtocolError("no offset")) == "no offset"
