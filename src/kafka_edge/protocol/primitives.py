"""Kafka wire primitives: fixed-width integers, varints, (compact) lengths, tagged-field sections.

Follows "Protocol Primitive Types" of the Kafka protocol guide and Kafka's ``ByteUtils``:

* fixed-width integers are big-endian two's complement (``uint16``/``uint32`` unsigned);
* ``unsigned varint`` is LEB128, at most 5 bytes for 32 bits; ``varint``/``varlong`` are the
  zigzag-encoded signed forms (32 and 64 bits, used inside record batches);
* flexible ("compact") strings, bytes and arrays carry ``length + 1`` as an unsigned varint, 0
  meaning null; non-flexible ones carry an int16 (strings) or int32 (bytes, arrays) length,
  -1 meaning null;
* a tagged-field section is ``uvarint count`` then ``count`` times ``uvarint tag, uvarint size,
  size bytes``, tags ascending.

Readers take ``(buf, offset)`` and return ``(value, new_offset)``; they raise ``ProtocolError``
naming the offset where the bytes stop making sense. Writers append to a ``bytearray``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from kafka_edge.protocol.errors import EncodeError, ProtocolError, Truncated

__all__ = [
    "BOOL",
    "FLOAT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT16",
    "UINT32",
    "Buffer",
    "read_compact_length",
    "read_tagged_section",
    "read_uvarint",
    "read_uvarlong",
    "read_varint",
    "read_varlong",
    "skip_tagged_section",
    "truncated",
    "uvarint_bytes",
    "write_compact_length",
    "write_tagged_section",
    "write_uvarint",
    "write_uvarlong",
    "write_varint",
    "write_varlong",
]

Buffer = bytes | bytearray | memoryview

BOOL = struct.Struct(">?")
INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
UINT16 = struct.Struct(">H")
UINT32 = struct.Struct(">I")
FLOAT64 = struct.Struct(">d")

_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


def truncated(what: str, offset: int, need: int, have: int) -> Truncated:
    """The error for "``what`` needs ``need`` bytes at ``offset`` but only ``have`` are left"."""
    have = max(have, 0)
    return Truncated(f"truncated {what}: need {need} bytes, {have} left", offset)


# -- unsigned varints -------------------------------------------------------------------------


def read_uvarint(buf: Buffer, offset: int) -> tuple[int, int]:
    """An unsigned 32-bit varint (at most 5 bytes)."""
    try:
        b = buf[offset]
    except IndexError:
        raise truncated("unsigned varint", offset, 1, len(buf) - offset) from None
    if b < 0x80:
        return b, offset + 1
    value = b & 0x7F
    shift = 7
    pos = offset + 1
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise Truncated("truncated unsigned varint", offset) from None
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if value > _U32_MAX:
                raise ProtocolError("unsigned varint does not fit in 32 bits", offset)
            return value, pos
        shift += 7
        if shift > 28:
            raise ProtocolError("unsigned varint is longer than 5 bytes", offset)


def read_uvarlong(buf: Buffer, offset: int) -> tuple[int, int]:
    """An unsigned 64-bit varint (at most 10 bytes)."""
    value = 0
    shift = 0
    pos = offset
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise Truncated("truncated unsigned varlong", offset) from None
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if value > _U64_MAX:
                raise ProtocolError("unsigned varlong does not fit in 64 bits", offset)
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("unsigned varlong is longer than 10 bytes", offset)


def _write_unsigned(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def write_uvarint(out: bytearray, value: int) -> None:
    if not 0 <= value <= _U32_MAX:
        raise EncodeError(f"unsigned varint {value} out of range 0..{_U32_MAX}")
    if value < 0x80:
        out.append(value)
    else:
        _write_unsigned(out, value)


def write_uvarlong(out: bytearray, value: int) -> None:
    if not 0 <= value <= _U64_MAX:
        raise EncodeError(f"unsigned varlong {value} out of range 0..{_U64_MAX}")
    _write_unsigned(out, value)


def uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)


# -- zigzag varints (signed) -------------------------------------------------------------------


def read_varint(buf: Buffer, offset: int) -> tuple[int, int]:
    """A zigzag-encoded signed 32-bit varint."""
    raw, pos = read_uvarint(buf, offset)
    return (raw >> 1) ^ -(raw & 1), pos


def write_varint(out: bytearray, value: int) -> None:
    if not -(2**31) <= value < 2**31:
        raise EncodeError(f"varint {value} out of int32 range")
    _write_unsigned(out, ((value << 1) ^ (value >> 31)) & _U32_MAX)


def read_varlong(buf: Buffer, offset: int) -> tuple[int, int]:
    """A zigzag-encoded signed 64-bit varint."""
    raw, pos = read_uvarlong(buf, offset)
    return (raw >> 1) ^ -(raw & 1), pos


def write_varlong(out: bytearray, value: int) -> None:
    if not -(2**63) <= value < 2**63:
        raise EncodeError(f"varlong {value} out of int64 range")
    _write_unsigned(out, ((value << 1) ^ (value >> 63)) & _U64_MAX)


# -- compact lengths ----------------------------------------------------------------------------


def read_compact_length(buf: Buffer, offset: int) -> tuple[int, int]:
    """A compact string/bytes/array length: ``uvarint(n + 1)``; returns -1 for null."""
    raw, pos = read_uvarint(buf, offset)
    return raw - 1, pos


def write_compact_length(out: bytearray, length: int) -> None:
    """``length`` -1 writes null."""
    write_uvarint(out, length + 1)


# -- tagged-field sections ----------------------------------------------------------------------


def read_tagged_section(buf: Buffer, offset: int) -> tuple[list[tuple[int, int, int]], int]:
    """Parse a tagged-field section: ``([(tag, value_start, value_end), ...], end)``.

    Raises ProtocolError for a truncated section or a tag that appears twice.
    """
    count, pos = read_uvarint(buf, offset)
    if count > len(buf) - pos:
        raise ProtocolError(f"tagged-field section claims {count} fields but only "
                            f"{len(buf) - pos} bytes are left", offset)
    entries: list[tuple[int, int, int]] = []
    seen: set[int] = set()
    for _ in range(count):
        tag_at = pos
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        end = pos + size
        if end > len(buf):
            raise truncated(f"tagged field {tag}", pos, size, len(buf) - pos)
        if tag in seen:
            raise ProtocolError(f"tagged field {tag} appears twice", tag_at)
        seen.add(tag)
        entries.append((tag, pos, end))
        pos = end
    return entries, pos


def skip_tagged_section(buf: Buffer, offset: int) -> int:
    """The offset just past a tagged-field section (whose fields are not looked at)."""
    try:
        if buf[offset] == 0:  # by far the most common section: no tagged fields
            return offset + 1
    except IndexError:
        raise truncated("tagged-field section", offset, 1, len(buf) - offset) from None
    count, pos = read_uvarint(buf, offset)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise truncated("tagged field", pos - size, size, len(buf) - pos + size)
    return pos


def write_tagged_section(out: bytearray, fields: Iterable[tuple[int, Buffer]]) -> None:
    """Write ``(tag, encoded value)`` pairs as a tagged-field section, ascending by tag."""
    items = sorted(fields, key=lambda item: item[0])
    write_uvarint(out, len(items))
    previous = -1
    for tag, data in items:
        if tag == previous:
            raise EncodeError(f"tagged field {tag} given twice")
        previous = tag
        write_uvarint(out, tag)
        write_uvarint(out, len(data))
        out += data
