"""Hypothesis strategies for random values of any message in messages.py at any version, and
small helpers shared by the protocol tests (imported by the test modules next to it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from kafka_edge.protocol.codec import UNKNOWN_TAGS
from kafka_edge.protocol.primitives import INT32, write_tagged_section
from kafka_edge.protocol.schema import Array, Field, FieldType, Message, Struct

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

# Hosts are easy to find in the output bytes; edge names never look like this.
UPSTREAM_HOSTS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=3, max_size=10).map(
    lambda label: f"b{label}.upstream.test")
TAG_NUMBERS = st.one_of(st.integers(0, 40), st.integers(0, 2**31 - 1))


@dataclass(frozen=True)
class Options:
    unknown_tags: bool = True  # add unknown tagged fields to flexible structs
    max_list: int = 2
    overrides: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)


def primitive(kind: str) -> st.SearchStrategy[Any]:
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return st.integers(low, high)
    if kind == "bool":
        return st.booleans()
    if kind == "float64":
        return st.floats(allow_nan=False)
    if kind == "string":
        return st.text(max_size=10)
    if kind in ("bytes", "records"):
        return st.binary(max_size=24)
    if kind == "uuid":
        return st.uuids()
    raise AssertionError(kind)


def _type(ftype: FieldType, version: int, flexible: bool,
          opts: Options) -> st.SearchStrategy[Any]:
    if isinstance(ftype, Struct):
        return struct_values(ftype, version, flexible, opts)
    if isinstance(ftype, Array):
        return st.lists(_type(ftype.item, version, flexible, opts), max_size=opts.max_list)
    return primitive(ftype)


def _field(f: Field, version: int, flexible: bool, opts: Options) -> st.SearchStrategy[Any]:
    strategy = opts.overrides.get(f.name)
    if strategy is None:
        strategy = _type(f.type, version, flexible, opts)
    if f.is_nullable(version):
        strategy = st.none() | strategy
    return strategy


def struct_values(struct: Struct, version: int, flexible: bool,
                  opts: Options) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    known_tags: set[int] = set()
    for f in struct.fields:
        if not f.present(version):
            continue
        strategy = _field(f, version, flexible, opts)
        if flexible and f.is_tagged(version):
            assert f.tag is not None
            known_tags.add(f.tag)
            optional[f.name] = strategy
        else:
            required[f.name] = strategy
    if flexible and opts.unknown_tags:
        optional[UNKNOWN_TAGS] = st.dictionaries(
            TAG_NUMBERS.filter(lambda t: t not in known_tags), st.binary(max_size=6),
            min_size=1, max_size=2)
    return st.fixed_dictionaries(required, optional=optional)


def message_values(message: Message, version: int, *, unknown_tags: bool = True,
                   max_list: int = 2,
                   overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
                   ) -> st.SearchStrategy[dict[str, Any]]:
    opts = Options(unknown_tags, max_list, overrides or {})
    return struct_values(message.body, version, message.is_flexible(version), opts)


def response_headers(message: Message, version: int) -> st.SearchStrategy[bytes]:
    """Response header v0 (correlation id) or, for flexible versions except ApiVersions, v1
    (+ a tagged section, sometimes holding unknown tags)."""
    correlation = st.integers(-(2**31), 2**31 - 1).map(INT32.pack)
    if message.api_key == 18 or not message.is_flexible(version):
        return correlation

    def section(tags: dict[int, bytes]) -> bytes:
        out = bytearray()
        write_tagged_section(out, tags.items())
        return bytes(out)

    tags = st.dictionaries(TAG_NUMBERS, st.binary(max_size=4), max_size=2).map(section)
    return st.tuples(correlation, tags).map(lambda pair: pair[0] + pair[1])


def all_cases(messages: Mapping[int, Message]) -> list[tuple[Message, int]]:
    return [(m, v) for _, m in sorted(messages.items()) for v in m.versions()]


def case_id(case: object) -> str:
    if isinstance(case, Message):
        return case.name.removesuffix("Response")
    return str(case)
