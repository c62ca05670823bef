"""Differential checks against an independent implementation: kafka-python 3.x.

Two of its implementations are used:

* the JSON-schema-driven classes (``kafka.protocol.metadata`` etc.; their own codec over their
  own copy of Kafka's definitions): ApiVersions v0-4, Metadata v0-13, FindCoordinator v0-6,
  DescribeCluster v0-2, Produce v3-13, Fetch v4-18, DescribeQuorum v0-2 (no ShareFetch or
  ShareAcknowledge);
* the older hand-written structs (``kafka.protocol.old``): ApiVersions v0-4, Metadata v0-8,
  FindCoordinator v0-2, Produce v3-8, Fetch v4-11.

For each version both sides cover, a random value is encoded by one side and decoded by the
other, in both directions, and the bytes must be identical.

kafka-python does not keep unknown tagged fields and does not write tagged fields that hold
their default value, so the values used here have no unknown tags and no default-valued tags.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_kafka_python import (
    ApiVersionsResponse,
    BitField,
    DescribeClusterResponse,
    DescribeQuorumResponse,
    FetchResponse,
    FindCoordinatorResponse,
    MetadataResponse,
    OldBitField,
    ProduceResponse,
    old_api_versions,
    old_fetch,
    old_find_coordinator,
    old_metadata,
    old_produce,
)
from protocol_strategies import case_id, message_values

from kafka_edge.protocol import codec
from kafka_edge.protocol.messages import RESPONSES
from kafka_edge.protocol.schema import Array, FieldType, Message, Struct

NEW_CLASSES: dict[int, Any] = {
    18: ApiVersionsResponse, 3: MetadataResponse, 10: FindCoordinatorResponse,
    60: DescribeClusterResponse, 0: ProduceResponse, 1: FetchResponse,
    55: DescribeQuorumResponse,
}
NEW_CASES = [(RESPONSES[key], v, cls) for key, cls in sorted(NEW_CLASSES.items())
             for v in RESPONSES[key].versions() if v <= cls.max_version]

OLD_MODULES: dict[int, tuple[Any, str]] = {
    18: (old_api_versions, "ApiVersionsResponse"), 3: (old_metadata, "MetadataResponse"),
    10: (old_find_coordinator, "FindCoordinatorResponse"), 0: (old_produce, "ProduceResponse"),
    1: (old_fetch, "FetchResponse"),
}
OLD_CASES = [(RESPONSES[key], v, getattr(module, f"{name}_v{v}"))
             for key, (module, name) in sorted(OLD_MODULES.items())
             for v in RESPONSES[key].versions() if hasattr(module, f"{name}_v{v}")]

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# kafka-python decodes an ApiVersions body with a non-zero error code as v0, whatever the
# version (the UNSUPPORTED_VERSION fallback), so keep the error code 0 there.
OVERRIDES: dict[int, dict[str, st.SearchStrategy[Any]]] = {18: {"ErrorCode": st.just(0)}}


def test_coverage_of_the_differential_checks() -> None:
    covered = {m.name.removesuffix("Response"): sorted(v for mm, v, _ in NEW_CASES if mm is m)
               for m, _, _ in NEW_CASES}
    assert {k: (v[0], v[-1]) for k, v in covered.items()} == {
        "ApiVersions": (0, 4), "Metadata": (0, 13), "FindCoordinator": (0, 6),
        "DescribeCluster": (0, 2), "Produce": (3, 13), "Fetch": (4, 18),
        "DescribeQuorum": (0, 2)}
    old = {m.name.removesuffix("Response"): sorted(v for mm, v, _ in OLD_CASES if mm is m)
           for m, _, _ in OLD_CASES}
    assert {k: (v[0], v[-1]) for k, v in old.items()} == {
        "ApiVersions": (0, 4), "Metadata": (0, 8), "FindCoordinator": (0, 2),
        "Produce": (3, 8), "Fetch": (4, 11)}


# -- the JSON-schema-driven classes --------------------------------------------------------------


def _bitfield_to_theirs(value: int) -> set[int] | None:
    bits: set[int] = BitField.from_32_bit_field(value & 0xFFFF_FFFF)
    return None if bits == {31} else bits


def _bitfield_to_mine(bits: set[int] | None) -> int:
    raw = BitField.to_32_bit_field({31} if bits is None else bits)
    return int(raw) - (1 << 32) if raw >= 1 << 31 else int(raw)


def _pairs(struct: Struct, their: Any) -> list[tuple[Any, Any]]:
    theirs = list(their._fields)
    assert len(theirs) == len(struct.fields), struct.name
    for mine, tf in zip(struct.fields, theirs, strict=True):
        assert tf._name == mine.name or tf.type_str == "bitfield", (mine.name, tf._name)
    return list(zip(struct.fields, theirs, strict=True))


def to_theirs(struct: Struct, their: Any, version: int, value: dict[str, Any],
              cls: Any = None) -> Any:
    kwargs = {}
    for mf, tf in _pairs(struct, their):
        if mf.name in value:
            kwargs[tf.name] = _value_to_theirs(mf.type, tf, version, value[mf.name])
    return (cls or their.data_class)(version=version, **kwargs)


def _value_to_theirs(ftype: FieldType, tf: Any, version: int, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(ftype, Struct):
        return to_theirs(ftype, tf, version, value)
    if isinstance(ftype, Array):
        if isinstance(ftype.item, Struct):
            return [to_theirs(ftype.item, tf.array_of, version, v) for v in value]
        return list(value)
    if tf.type_str == "bitfield":
        return _bitfield_to_theirs(value)
    return value


def to_mine(struct: Struct, their: Any, version: int, obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mf, tf in _pairs(struct, their):
        if not mf.present(version):
            continue
        if mf.is_tagged(version) and tf.name not in (obj.tags or ()):
            continue
        out[mf.name] = _value_to_mine(mf.type, tf, version, getattr(obj, tf.name))
    return out


def _value_to_mine(ftype: FieldType, tf: Any, version: int, value: Any) -> Any:
    if isinstance(ftype, Struct):
        return None if value is None else to_mine(ftype, tf, version, value)
    if isinstance(ftype, Array):
        if value is None:
            return None
        if isinstance(ftype.item, Struct):
            return [to_mine(ftype.item, tf.array_of, version, v) for v in value]
        return list(value)
    if tf.type_str == "bitfield":
        return _bitfield_to_mine(value)
    if ftype == "uuid" and value is None:
        return uuid.UUID(int=0)
    if ftype in ("bytes", "records") and value is not None:
        return bytes(value)
    return value


def drop_default_tags(struct: Struct, their: Any, version: int, value: dict[str, Any]) -> None:
    """kafka-python leaves out tagged fields equal to their default: so must the value."""
    for mf, tf in _pairs(struct, their):
        if mf.name not in value or value[mf.name] is None:
            continue
        if mf.is_tagged(version) and _value_to_theirs(mf.type, tf, version,
                                                      value[mf.name]) == tf.default:
            del value[mf.name]
            continue
        if isinstance(mf.type, Struct):
            drop_default_tags(mf.type, tf, version, value[mf.name])
        elif isinstance(mf.type, Array) and isinstance(mf.type.item, Struct):
            for item in value[mf.name]:
                drop_default_tags(mf.type.item, tf.array_of, version, item)


@pytest.mark.parametrize(("message", "version", "cls"), NEW_CASES, ids=case_id)
@SETTINGS
@given(data=st.data())
def test_against_kafka_python(message: Message, version: int, cls: Any,
                              data: st.DataObject) -> None:
    value = data.draw(message_values(message, version, unknown_tags=False,
                                     overrides=OVERRIDES.get(message.api_key)), label="value")
    drop_default_tags(message.body, cls._struct, version, value)
    ours = codec.encode(message, version, value)

    # ours -> theirs
    decoded = cls.decode(ours, version=version)
    assert to_mine(message.body, cls._struct, version, decoded) == value
    assert decoded.encode() == ours

    # theirs -> ours
    theirs = to_theirs(message.body, cls._struct, version, value, cls).encode(version=version)
    assert theirs == ours
    assert codec.decode_all(message, version, theirs) == value


# -- the hand-written structs ---------------------------------------------------------------------


def to_old(struct: Struct, schema: Any, version: int, flexible: bool,
           value: dict[str, Any]) -> tuple[Any, ...]:
    fields = [f for f in struct.fields
              if f.present(version) and not (flexible and f.is_tagged(version))]
    names = list(schema.names)
    if flexible:
        assert names[-1] == "tags"
    assert len(names) == len(fields) + flexible, (struct.name, names)
    items = [_value_to_old(f.type, t, version, flexible, value[f.name])
             for f, t in zip(fields, schema.fields, strict=False)]
    if flexible:
        items.append({})
    return tuple(items)


def _value_to_old(ftype: FieldType, old_type: Any, version: int, flexible: bool,
                  value: Any) -> Any:
    if value is None:
        return None
    if isinstance(ftype, Array):
        if isinstance(ftype.item, Struct):
            return [to_old(ftype.item, old_type.array_of, version, flexible, v) for v in value]
        return list(value)
    if old_type is OldBitField:
        return _bitfield_to_theirs(value)
    return value


def strip_tags(struct: Struct, version: int, value: dict[str, Any]) -> None:
    for f in struct.fields:
        if f.name not in value:
            continue
        if f.is_tagged(version):
            del value[f.name]
        elif isinstance(f.type, Array) and isinstance(f.type.item, Struct) and value[f.name]:
            for item in value[f.name]:
                strip_tags(f.type.item, version, item)


@pytest.mark.parametrize(("message", "version", "cls"), OLD_CASES, ids=case_id)
@SETTINGS
@given(data=st.data())
def test_against_kafka_python_hand_written_structs(message: Message, version: int, cls: Any,
                                                   data: st.DataObject) -> None:
    value = data.draw(message_values(message, version, unknown_tags=False,
                                     overrides=OVERRIDES.get(message.api_key)), label="value")
    strip_tags(message.body, version, value)
    ours = codec.encode(message, version, value)
    flexible = message.is_flexible(version)

    theirs = cls(*to_old(message.body, cls.SCHEMA, version, flexible, value)).encode()
    assert theirs == ours
    assert codec.decode_all(message, version, theirs) == value
    assert cls.decode(ours).encode() == ours
