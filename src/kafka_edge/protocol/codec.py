"""Schema-driven decoder/encoder for the messages described in ``messages.py``.

One ``Message`` description covers every version; the first use of a (message, version) pair
compiles it into small closures (read, write, skip) that are cached, so a decode is a walk over
pre-built functions rather than a re-interpretation of the schema.

Values:

* a struct is a ``dict`` (field name -> value) holding the fields that exist in that version;
  a tagged field is present as a key only if it was on the wire (decode) / is to be written
  (encode), so decode -> encode reproduces the bytes exactly. Tagged fields this schema does not
  know are kept, as raw bytes by tag, under the key ``UNKNOWN_TAGS`` and written back in tag
  order among the known ones;
* arrays are lists (None when null); strings are ``str``; bytes and records are ``bytes``;
  uuids are ``uuid.UUID``; integers ``int``; bool ``bool``; float64 ``float``.

``spans``, ``decode_field``, ``encode_field`` and ``splice`` let a caller decode only the
top-level fields it needs and splice the rest through untouched (see ``addresses.py`` and
``api_versions.py``).

Decoding raises ``ProtocolError`` (with the field path and offset); encoding a value that does
not fit raises ``EncodeError``.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka_edge.protocol.errors import EncodeError, ProtocolError
from kafka_edge.protocol.primitives import (
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    UINT16,
    UINT32,
    Buffer,
    read_tagged_section,
    read_uvarint,
    skip_tagged_section,
    truncated,
    write_tagged_section,
    write_uvarint,
)
from kafka_edge.protocol.schema import Array, Field, FieldType, Message, Struct

__all__ = [
    "UNKNOWN_TAGS",
    "Spans",
    "as_view",
    "check_end",
    "decode",
    "decode_all",
    "decode_field",
    "encode",
    "encode_field",
    "skip",
    "spans",
    "splice",
]

UNKNOWN_TAGS = "_unknown_tags"

_Reader = Callable[[memoryview, int], tuple[Any, int]]
_Writer = Callable[[bytearray, Any], None]
_Skipper = Callable[[memoryview, int], int]

# Kafka's generated readers reject strings longer than this even in compact form.
_MAX_STRING_BYTES = 0x7FFF


@dataclass(frozen=True, slots=True)
class _Codec:
    read: _Reader
    write: _Writer
    skip: _Skipper
    size: int | None = None  # fixed encoded size, if any


def as_view(buf: Buffer) -> memoryview:
    """A flat byte view of ``buf`` (no copy)."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


# -- primitives ---------------------------------------------------------------------------------


def _skip_fixed(size: int, what: str) -> _Skipper:
    def skip(buf: memoryview, off: int) -> int:
        end = off + size
        if end > len(buf):
            raise truncated(what, off, size, len(buf) - off)
        return end

    return skip


def _number(kind: str, st: struct.Struct) -> _Codec:
    size = st.size
    unpack_from = st.unpack_from
    pack = st.pack

    def read(buf: memoryview, off: int) -> tuple[Any, int]:
        try:
            return unpack_from(buf, off)[0], off + size
        except struct.error:
            raise truncated(kind, off, size, len(buf) - off) from None

    def write(out: bytearray, value: Any) -> None:
        try:
            out += pack(value)
        except struct.error:
            raise EncodeError(f"{kind} cannot hold {value!r}") from None

    return _Codec(read, write, _skip_fixed(size, kind), size)


def _bool() -> _Codec:
    def read(buf: memoryview, off: int) -> tuple[Any, int]:
        try:
            return buf[off] != 0, off + 1
        except IndexError:
            raise truncated("bool", off, 1, 0) from None

    def write(out: bytearray, value: Any) -> None:
        out.append(1 if value else 0)

    return _Codec(read, write, _skip_fixed(1, "bool"), 1)


def _uuid() -> _Codec:
    def read(buf: memoryview, off: int) -> tuple[Any, int]:
        end = off + 16
        if end > len(buf):
            raise truncated("uuid", off, 16, len(buf) - off)
        return uuid.UUID(bytes=bytes(buf[off:end])), end

    def write(out: bytearray, value: Any) -> None:
        if not isinstance(value, uuid.UUID):
            raise EncodeError(f"uuid field needs a uuid.UUID, got {type(value).__name__}")
        out += value.bytes

    return _Codec(read, write, _skip_fixed(16, "uuid"), 16)


def _length_reader(compact: bool, wide: bool, what: str) -> Callable[[memoryview, int],
                                                                     tuple[int, int]]:
    """Reads the length prefix of a string (int16), bytes/array (int32) or compact one."""
    if compact:
        def read_compact(buf: memoryview, off: int) -> tuple[int, int]:
            try:
                first = buf[off]
            except IndexError:
                raise truncated(f"{what} length", off, 1, 0) from None
            if first < 0x80:  # lengths below 127: one byte, no call
                return first - 1, off + 1
            raw, pos = read_uvarint(buf, off)
            return raw - 1, pos

        return read_compact
    st = INT32 if wide else INT16
    size = st.size
    unpack_from = st.unpack_from

    def read_fixed(buf: memoryview, off: int) -> tuple[int, int]:
        try:
            return unpack_from(buf, off)[0], off + size
        except struct.error:
            raise truncated(f"{what} length", off, size, len(buf) - off) from None

    return read_fixed


def _length_writer(compact: bool, wide: bool) -> Callable[[bytearray, int], None]:
    if compact:
        def write_compact(out: bytearray, n: int) -> None:
            write_uvarint(out, n + 1)

        return write_compact
    pack = (INT32 if wide else INT16).pack

    def write_fixed(out: bytearray, n: int) -> None:
        out += pack(n)

    return write_fixed


def _null_or_bad_length(n: int, nullable: bool, what: str, off: int) -> ProtocolError | None:
    """None if ``n`` (< 0) is an acceptable null; otherwise the error to raise."""
    if n == -1:
        if nullable:
            return None
        return ProtocolError(f"null {what} in a non-nullable field", off)
    return ProtocolError(f"invalid {what} length {n}", off)


def _sized(kind: str, compact: bool, nullable: bool) -> _Codec:
    """string, bytes and records."""
    is_string = kind == "string"
    read_len = _length_reader(compact, not is_string, kind)
    write_len = _length_writer(compact, not is_string)

    def read(buf: memoryview, off: int) -> tuple[Any, int]:
        n, pos = read_len(buf, off)
        if n < 0:
            err = _null_or_bad_length(n, nullable, kind, off)
            if err is not None:
                raise err
            return None, pos
        end = pos + n
        if end > len(buf):
            raise truncated(kind, pos, n, len(buf) - pos)
        if is_string:
            try:
                return str(buf[pos:end], "utf-8"), end
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"string is not valid UTF-8 ({exc.reason})",
                                    pos + exc.start) from None
        return bytes(buf[pos:end]), end

    def skip(buf: memoryview, off: int) -> int:
        n, pos = read_len(buf, off)
        if n < 0:
            err = _null_or_bad_length(n, nullable, kind, off)
            if err is not None:
                raise err
            return pos
        end = pos + n
        if end > len(buf):
            raise truncated(kind, pos, n, len(buf) - pos)
        return end

    def write(out: bytearray, value: Any) -> None:
        if value is None:
            if not nullable:
                raise EncodeError(f"null {kind} in a non-nullable field")
            write_len(out, -1)
            return
        if is_string:
            if not isinstance(value, str):
                raise EncodeError(f"string field needs a str, got {type(value).__name__}")
            try:
                data: Buffer = value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise EncodeError(f"string {value!r} cannot be encoded as UTF-8") from exc
            if len(data) > _MAX_STRING_BYTES:
                raise EncodeError(f"string of {len(data)} bytes is longer than "
                                  f"{_MAX_STRING_BYTES}")
        else:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise EncodeError(f"{kind} field needs bytes, got {type(value).__name__}")
            data = value
        write_len(out, len(data))
        out += data

    return _Codec(read, write, skip)


_INT_FORMATS = {"int8": "b", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
                "int64": "q", "float64": "d"}


def _primitive(kind: str, compact: bool, nullable: bool) -> _Codec:
    if kind in ("string", "bytes", "records"):
        return _sized(kind, compact, nullable)
    if nullable:
        raise TypeError(f"nullable {kind} is not a Kafka type")
    if kind == "bool":
        return _bool()
    if kind == "uuid":
        return _uuid()
    structs = {"int8": INT8, "int16": INT16, "uint16": UINT16, "int32": INT32,
               "uint32": UINT32, "int64": INT64, "float64": FLOAT64}
    if kind not in structs:
        raise TypeError(f"unknown primitive type {kind!r}")
    return _number(kind, structs[kind])


# -- arrays -------------------------------------------------------------------------------------


def _array_count_reader(compact: bool, nullable: bool) -> Callable[[memoryview, int],
                                                                  tuple[int, int]]:
    """Read an array's element count: -1 for null, ProtocolError when it cannot be right."""
    read_len = _length_reader(compact, True, "array")

    def read_count(buf: memoryview, off: int) -> tuple[int, int]:
        n, pos = read_len(buf, off)
        if n < 0:
            err = _null_or_bad_length(n, nullable, "array", off)
            if err is not None:
                raise err
        elif n > len(buf) - pos:
            # Kafka's own check: every element takes at least one byte.
            raise ProtocolError(f"array claims {n} elements but only {len(buf) - pos} bytes "
                                "are left", off)
        return n, pos

    return read_count


def _array_reader(read_count: Callable[[memoryview, int], tuple[int, int]], item: _Codec,
                  item_format: str | None) -> _Reader:
    """Read a whole array: fixed-size integers with one ``struct`` call, others item by item."""
    if item_format is not None:
        assert item.size is not None
        fixed_size = item.size

        def read_fixed(buf: memoryview, off: int) -> tuple[Any, int]:
            n, pos = read_count(buf, off)
            if n < 0:
                return None, pos
            end = pos + n * fixed_size
            if end > len(buf):
                raise truncated("array", pos, n * fixed_size, len(buf) - pos)
            return list(struct.unpack_from(f">{n}{item_format}", buf, pos)), end

        return read_fixed

    read_item = item.read

    def read(buf: memoryview, off: int) -> tuple[Any, int]:
        n, pos = read_count(buf, off)
        if n < 0:
            return None, pos
        items: list[Any] = []
        append = items.append
        i = 0
        try:
            for i in range(n):  # noqa: B007 (i is used in the except clause)
                value, pos = read_item(buf, pos)
                append(value)
        except ProtocolError as exc:
            exc.add_context(f"[{i}]")
            raise
        return items, pos

    return read


def _array(item: _Codec, item_format: str | None, compact: bool, nullable: bool) -> _Codec:
    read_count = _array_count_reader(compact, nullable)
    write_len = _length_writer(compact, True)
    write_item = item.write
    skip_item = item.skip
    item_size = item.size
    read = _array_reader(read_count, item, item_format)

    def skip(buf: memoryview, off: int) -> int:
        n, pos = read_count(buf, off)
        if n <= 0:
            return pos
        if item_size is not None:
            end = pos + n * item_size
            if end > len(buf):
                raise truncated("array", pos, n * item_size, len(buf) - pos)
            return end
        for _ in range(n):
            pos = skip_item(buf, pos)
        return pos

    def write(out: bytearray, value: Any) -> None:
        if value is None:
            if not nullable:
                raise EncodeError("null array in a non-nullable field")
            write_len(out, -1)
            return
        write_len(out, len(value))
        for element in value:
            write_item(out, element)

    return _Codec(read, write, skip)


# -- structs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StructPlan:
    """One struct at one version: its regular fields, its tagged fields, and closures."""

    struct: Struct
    version: int
    flexible: bool
    regular: tuple[tuple[Field, _Codec], ...]
    tagged: dict[int, tuple[Field, _Codec]]
    codec: _Codec

    def field(self, name: str) -> tuple[Field, _Codec]:
        for f, c in self.regular:
            if f.name == name:
                return f, c
        for f, c in self.tagged.values():
            if f.name == name:
                return f, c
        raise KeyError(f"{self.struct.name} has no field {name!r} in version {self.version}")


_STRUCT_PLANS: dict[tuple[int, int, bool], _StructPlan] = {}


def _field_codec(f: Field, version: int, flexible: bool) -> _Codec:
    return _type_codec(f.type, version, flexible, f.is_nullable(version), f.name)


def _type_codec(ftype: FieldType, version: int, flexible: bool, nullable: bool,
                name: str) -> _Codec:
    if isinstance(ftype, Struct):
        if nullable:
            raise TypeError(f"{name}: nullable structs are not supported")
        return _struct_plan(ftype, version, flexible).codec
    if isinstance(ftype, Array):
        item_type = ftype.item
        item = _type_codec(item_type, version, flexible, False, name)
        fmt = _INT_FORMATS.get(item_type) if isinstance(item_type, str) else None
        return _array(item, fmt, flexible, nullable)
    return _primitive(ftype, flexible, nullable)


def _struct_plan(struct: Struct, version: int, flexible: bool) -> _StructPlan:
    key = (id(struct), version, flexible)
    plan = _STRUCT_PLANS.get(key)
    if plan is not None and plan.struct is struct:
        return plan
    regular: list[tuple[Field, _Codec]] = []
    tagged: dict[int, tuple[Field, _Codec]] = {}
    for f in struct.fields:
        if not f.present(version):
            continue
        if f.is_tagged(version):
            if not flexible:
                raise TypeError(f"{struct.name}.{f.name}: tagged in non-flexible version "
                                f"{version}")
            assert f.tag is not None
            tagged[f.tag] = (f, _field_codec(f, version, flexible))
        else:
            regular.append((f, _field_codec(f, version, flexible)))
    plan = _StructPlan(struct, version, flexible, tuple(regular), dict(sorted(tagged.items())),
                       _struct_codec(struct, tuple(regular), tagged, flexible))
    _STRUCT_PLANS[key] = plan
    return plan


def _struct_codec(struct: Struct, regular: tuple[tuple[Field, _Codec], ...],
                  tagged: dict[int, tuple[Field, _Codec]], flexible: bool) -> _Codec:
    read = _struct_reader(regular, tagged, flexible)
    write = _struct_writer(struct, regular, tagged, flexible)
    skip = _struct_skipper(regular, flexible)
    size = None
    if not flexible and all(c.size is not None for _, c in regular):
        size = sum(c.size or 0 for _, c in regular)
    return _Codec(read, write, skip, size)


def _struct_reader(regular: tuple[tuple[Field, _Codec], ...],
                   tagged: dict[int, tuple[Field, _Codec]], flexible: bool) -> _Reader:
    readers = tuple((f.name, c.read) for f, c in regular)
    tag_readers = {tag: (f.name, c.read) for tag, (f, c) in tagged.items()}

    def read_tags(buf: memoryview, off: int, value: dict[str, Any]) -> int:
        try:
            if buf[off] == 0:
                return off + 1
        except IndexError:
            raise truncated("tagged-field section", off, 1, 0) from None
        entries, end = read_tagged_section(buf, off)
        unknown: dict[int, bytes] | None = None
        for tag, start, stop in entries:
            known = tag_readers.get(tag)
            if known is None:
                if unknown is None:
                    unknown = {}
                unknown[tag] = bytes(buf[start:stop])
                continue
            name, read_value = known
            try:
                field_value, pos = read_value(buf[:stop], start)
            except ProtocolError as exc:
                exc.add_context(name)
                raise
            if pos != stop:
                raise ProtocolError(f"tagged field {name} (tag {tag}) holds {stop - start} "
                                    f"bytes but its value used {pos - start}", start)
            value[name] = field_value
        if unknown is not None:
            value[UNKNOWN_TAGS] = unknown
        return end

    def read(buf: memoryview, off: int) -> tuple[Any, int]:
        value: dict[str, Any] = {}
        name = ""
        try:
            for name, read_field in readers:
                value[name], off = read_field(buf, off)
        except ProtocolError as exc:
            exc.add_context(name)
            raise
        if flexible:
            off = read_tags(buf, off, value)
        return value, off

    return read


def _struct_writer(struct: Struct, regular: tuple[tuple[Field, _Codec], ...],
                   tagged: dict[int, tuple[Field, _Codec]], flexible: bool) -> _Writer:
    writers = tuple((f.name, c.write) for f, c in regular)
    tag_names = {tag: f.name for tag, (f, _c) in tagged.items()}
    tag_writers = tuple((tag, f.name, c.write) for tag, (f, c) in sorted(tagged.items()))
    struct_name = struct.name

    def write_tags(out: bytearray, value: dict[str, Any]) -> None:
        items: list[tuple[int, Buffer]] = []
        for tag, name, write_value in tag_writers:
            if name in value:
                data = bytearray()
                write_value(data, value[name])
                items.append((tag, data))
        unknown = value.get(UNKNOWN_TAGS)
        if unknown:
            for tag, data in unknown.items():
                if tag in tag_names:
                    raise EncodeError(f"{struct_name}: unknown tagged field {tag} is a known "
                                      f"tag ({tag_names[tag]})")
                items.append((tag, data))
        if not items:
            out.append(0)
        else:
            write_tagged_section(out, items)

    def write(out: bytearray, value: Any) -> None:
        if not isinstance(value, dict):
            raise EncodeError(f"{struct_name} needs a dict, got {type(value).__name__}")
        for name, write_field in writers:
            try:
                field_value = value[name]
            except KeyError:
                raise EncodeError(f"{struct_name}: missing field {name}") from None
            write_field(out, field_value)
        if flexible:
            write_tags(out, value)

    return write


def _struct_skipper(regular: tuple[tuple[Field, _Codec], ...], flexible: bool) -> _Skipper:
    """Skip a struct: runs of fixed-size fields are skipped with one bounds check."""
    steps: list[_Skipper] = []
    run = 0
    for _f, c in regular:
        if c.size is not None:
            run += c.size
            continue
        if run:
            steps.append(_skip_fixed(run, "fields"))
            run = 0
        steps.append(c.skip)
    if run:
        steps.append(_skip_fixed(run, "fields"))
    step_tuple = tuple(steps)

    if flexible:
        def skip_flexible(buf: memoryview, off: int) -> int:
            for step in step_tuple:
                off = step(buf, off)
            return skip_tagged_section(buf, off)

        return skip_flexible

    def skip_plain(buf: memoryview, off: int) -> int:
        for step in step_tuple:
            off = step(buf, off)
        return off

    return skip_plain


def _plan(message: Message, version: int) -> _StructPlan:
    first, last = message.valid
    if not first <= version <= last:
        raise ValueError(f"{message.name} has no version {version} (valid {first}-{last})")
    return _struct_plan(message.body, version, message.is_flexible(version))


# -- public API ---------------------------------------------------------------------------------


def decode(message: Message, version: int, buf: Buffer, offset: int = 0) -> tuple[Any, int]:
    """Decode ``message`` at ``version`` from ``buf[offset:]``: ``(value, end_offset)``."""
    plan = _plan(message, version)
    try:
        return plan.codec.read(as_view(buf), offset)
    except ProtocolError as exc:
        exc.add_context(message.name)
        raise


def decode_all(message: Message, version: int, buf: Buffer, offset: int = 0) -> Any:
    """Like ``decode`` but the message must end exactly at the end of ``buf``."""
    value, end = decode(message, version, buf, offset)
    check_end(buf, end, message, version)
    return value


def check_end(buf: Buffer, end: int, message: Message, version: int) -> None:
    """ProtocolError unless ``message`` at ``version``, which ends at ``end``, ends ``buf``."""
    if end != len(buf):
        raise ProtocolError(f"{len(buf) - end} unexpected bytes after {message.name} "
                            f"v{version}", end)


def encode(message: Message, version: int, value: Any) -> bytes:
    """Encode a ``message`` value (a dict as ``decode`` returns) at ``version``."""
    out = bytearray()
    _plan(message, version).codec.write(out, value)
    return bytes(out)


def skip(message: Message, version: int, buf: Buffer, offset: int = 0) -> int:
    """The offset just past ``message`` starting at ``offset``, without building values."""
    plan = _plan(message, version)
    try:
        return plan.codec.skip(as_view(buf), offset)
    except ProtocolError as exc:
        exc.add_context(message.name)
        raise


@dataclass(frozen=True, slots=True)
class Spans:
    """Where each top-level field of a message lies in a buffer.

    ``fields``: regular field name -> (start, end); ``tags``: top-level tagged field tag ->
    (value start, value end), tags this schema does not know included; ``tagged_start``: the
    start of the top-level tagged-field section (== ``end`` in non-flexible versions).
    """

    fields: dict[str, tuple[int, int]]
    tagged_start: int
    tags: dict[int, tuple[int, int]]
    end: int


def spans(message: Message, version: int, buf: Buffer, offset: int = 0) -> Spans:
    """Walk the top level of ``message`` (skipping, not decoding, each field)."""
    plan = _plan(message, version)
    view = as_view(buf)
    fields: dict[str, tuple[int, int]] = {}
    pos = offset
    name = ""
    try:
        for f, c in plan.regular:
            name = f.name
            start = pos
            pos = c.skip(view, pos)
            fields[name] = (start, pos)
        tagged_start = pos
        tags: dict[int, tuple[int, int]] = {}
        if plan.flexible:
            name = ""
            entries, pos = read_tagged_section(view, pos)
            tags = {tag: (start, stop) for tag, start, stop in entries}
    except ProtocolError as exc:
        if name:
            exc.add_context(name)
        exc.add_context(message.name)
        raise
    return Spans(fields, tagged_start, tags, pos)


def decode_field(message: Message, version: int, name: str, buf: Buffer,
                 offset: int, *, end: int | None = None) -> tuple[Any, int]:
    """Decode the top-level field ``name`` whose encoding starts at ``offset``.

    For a tagged field pass the value span from ``spans`` (``offset``, ``end``): the value must
    fill it exactly.
    """
    f, c = _plan(message, version).field(name)
    view = as_view(buf)
    if end is not None:
        view = view[:end]
    try:
        value, pos = c.read(view, offset)
        if end is not None and pos != end:
            raise ProtocolError(f"field holds {end - offset} bytes but its value used "
                                f"{pos - offset}", offset)
    except ProtocolError as exc:
        exc.add_context(f.name)
        exc.add_context(message.name)
        raise
    return value, pos


def encode_field(message: Message, version: int, name: str, value: Any) -> bytes:
    """Encode one top-level field's value (for a tagged field: the value, without tag/size)."""
    _f, c = _plan(message, version).field(name)
    out = bytearray()
    c.write(out, value)
    return bytes(out)


def splice(buf: memoryview, replacements: list[tuple[int, int, bytes]]) -> bytes:
    """``buf`` with each (start, end, data) span replaced by its data; the spans (as ``spans``
    gives them) must not overlap. Every byte outside them is copied as it is."""
    pieces: list[Buffer] = []
    pos = 0
    for start, end, data in sorted(replacements, key=lambda r: r[0]):
        pieces.append(buf[pos:start])
        pieces.append(data)
        pos = end
    pieces.append(buf[pos:])
    return b"".join(pieces)
