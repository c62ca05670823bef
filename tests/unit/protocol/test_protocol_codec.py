"""The schema-driven codec: round trips for every decoded response at every valid version."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_strategies import all_cases, case_id, message_values

from kafka_edge.protocol import codec
from kafka_edge.protocol.codec import UNKNOWN_TAGS
from kafka_edge.protocol.errors import EncodeError, ProtocolError
from kafka_edge.protocol.messages import (
    API_VERSIONS_RESPONSE,
    DESCRIBE_QUORUM_RESPONSE,
    FETCH_RESPONSE,
    METADATA_RESPONSE,
    RESPONSES,
)

CASES = all_cases(RESPONSES)
ROUND_TRIP = settings(max_examples=30, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_every_decoded_response_and_version_is_covered() -> None:
    assert sorted(RESPONSES) == [0, 1, 3, 10, 18, 55, 60, 78, 79]
    assert len(CASES) == sum(len(m.versions()) for m in RESPONSES.values()) == 63


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
@ROUND_TRIP
@given(data=st.data())
def test_round_trip(message: Any, version: int, data: st.DataObject) -> None:
    value = data.draw(message_values(message, version), label="value")
    encoded = codec.encode(message, version, value)

    decoded, end = codec.decode(message, version, encoded)
    assert end == len(encoded)
    assert decoded == value
    # decode -> encode reproduces the bytes, whatever buffer type they arrive in
    assert codec.encode(message, version, decoded) == encoded
    for buf in (bytearray(encoded), memoryview(encoded)):
        assert codec.decode_all(message, version, buf) == value
    # decoding from an offset inside a larger buffer
    assert codec.decode(message, version, b"\xaa" * 3 + encoded + b"\xbb", 3) == (value, end + 3)

    # skip and spans agree with decode
    assert codec.skip(message, version, encoded) == len(encoded)
    spans = codec.spans(message, version, encoded)
    assert spans.end == len(encoded)
    pos = 0
    for name, (start, stop) in spans.fields.items():
        assert start == pos
        field_value, field_end = codec.decode_field(message, version, name, encoded, start)
        assert field_end == stop
        assert field_value == value[name]
        assert codec.encode_field(message, version, name, field_value) == encoded[start:stop]
        pos = stop
    assert spans.tagged_start == pos
    if message.is_flexible(version):
        for tag, (start, stop) in spans.tags.items():
            if value.get(UNKNOWN_TAGS, {}).get(tag) is not None:
                assert encoded[start:stop] == value[UNKNOWN_TAGS][tag]

    # every strict prefix is a truncated message
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(ProtocolError):
        codec.decode(message, version, encoded[:cut])
    with pytest.raises(ProtocolError):
        codec.skip(message, version, encoded[:cut])


def test_known_encoding_metadata_v0() -> None:
    value = {"Brokers": [{"NodeId": 1, "Host": "b1", "Port": 9092}],
             "Topics": [{"ErrorCode": 0, "Name": "t", "Partitions": [
                 {"ErrorCode": 0, "PartitionIndex": 0, "LeaderId": 1, "ReplicaNodes": [1, 2],
                  "IsrNodes": [1]}]}]}
    expected = bytes.fromhex(
        "00000001" "00000001" "0002" "6231" "00002384"  # brokers
        "00000001" "0000" "0001" "74"  # topic
        "00000001" "0000" "00000000" "00000001" "00000002" "00000001" "00000002"
        "00000001" "00000001")
    assert codec.encode(METADATA_RESPONSE, 0, value) == expected
    assert codec.decode_all(METADATA_RESPONSE, 0, expected) == value


def test_known_encoding_flexible_with_tags() -> None:
    # ApiVersions v3: compact array, per-entry tagged sections, top-level tags 1 (known) and
    # 9 (unknown) written in tag order.
    value = {"ErrorCode": 0,
             "ApiKeys": [{"ApiKey": 18, "MinVersion": 0, "MaxVersion": 4}],
             "ThrottleTimeMs": 0,
             "FinalizedFeaturesEpoch": 5,
             UNKNOWN_TAGS: {9: b"\x01\x02"}}
    expected = bytes.fromhex("0000" "02" "0012" "0000" "0004" "00" "00000000"
                             "02" "01" "08" "0000000000000005" "09" "02" "0102")
    assert codec.encode(API_VERSIONS_RESPONSE, 3, value) == expected
    assert codec.decode_all(API_VERSIONS_RESPONSE, 3, expected) == value


def test_out_of_order_tags_are_accepted_and_rewritten_in_order() -> None:
    ordered = bytes.fromhex("0000" "01" "00000000" "02" "01" "08" "0000000000000005" "09" "01" "aa")
    swapped = bytes.fromhex("0000" "01" "00000000" "02" "09" "01" "aa" "01" "08" "0000000000000005")
    value = codec.decode_all(API_VERSIONS_RESPONSE, 3, swapped)
    assert codec.encode(API_VERSIONS_RESPONSE, 3, value) == ordered


def test_field_versions_are_respected() -> None:
    # ClusterAuthorizedOperations exists in Metadata v8-10 only
    base: dict[str, Any] = {"ThrottleTimeMs": 0, "Brokers": [], "ClusterId": None,
                            "ControllerId": 1, "Topics": []}
    v8 = codec.encode(METADATA_RESPONSE, 8, {**base, "ClusterAuthorizedOperations": 7})
    v11 = codec.encode(METADATA_RESPONSE, 11, {**base, "ClusterAuthorizedOperations": 7})
    assert len(v8) == 4 + 4 + 2 + 4 + 4 + 4
    assert v8.endswith(b"\x00\x00\x00\x07")
    assert codec.decode_all(METADATA_RESPONSE, 11, v11) == base
    assert "ClusterAuthorizedOperations" not in codec.decode_all(METADATA_RESPONSE, 11, v11)


@pytest.mark.parametrize(("data", "message"), [
    (bytes.fromhex("0000 00000001 00000000"), "truncated string length"),  # v0 broker host
    (bytes.fromhex("0000 ffffffff"), "null array in a non-nullable field"),
    (bytes.fromhex("0000 7fffffff"), "array claims 2147483647 elements"),
])
def test_protocol_errors_name_the_problem(data: bytes, message: str) -> None:
    # Metadata v3: ThrottleTimeMs int32 then Brokers; the first 2 bytes pad the throttle time.
    with pytest.raises(ProtocolError) as info:
        codec.decode(METADATA_RESPONSE, 3, b"\x00\x00" + data)
    assert message in str(info.value)
    assert "at offset" in str(info.value)


def test_protocol_error_carries_field_path_and_offset() -> None:
    value = {"ThrottleTimeMs": 0, "Brokers": [
        {"NodeId": 1, "Host": "a", "Port": 1, "Rack": None},
        {"NodeId": 2, "Host": "bb", "Port": 2, "Rack": None}],
        "ClusterId": None, "ControllerId": 1, "Topics": []}
    data = bytearray(codec.encode(METADATA_RESPONSE, 3, value))
    host_at = data.index(b"bb")
    data[host_at] = 0xFF  # invalid UTF-8
    with pytest.raises(ProtocolError) as info:
        codec.decode(METADATA_RESPONSE, 3, data)
    assert info.value.where == "MetadataResponse.Brokers[1].Host"
    assert info.value.offset == host_at
    assert str(info.value).startswith("MetadataResponse.Brokers[1].Host: string is not valid "
                                      "UTF-8")


def test_non_nullable_null_and_negative_lengths() -> None:
    # DescribeQuorum v0 (flexible): TopicName is a non-nullable compact string
    data = bytes.fromhex("0000" "02" "00")  # ErrorCode, 1 topic, TopicName null
    with pytest.raises(ProtocolError, match="null string in a non-nullable field"):
        codec.decode(DESCRIBE_QUORUM_RESPONSE, 0, data)
    # Fetch v4 records length -2
    fetch = bytes.fromhex("00000000" "00000001" "0001" "74" "00000001" + "00" * 22
                          + "ffffffff" "fffffffe")
    with pytest.raises(ProtocolError, match="invalid records length -2"):
        codec.decode(FETCH_RESPONSE, 4, fetch)


def test_tagged_field_size_must_match_its_value() -> None:
    # ApiVersions v3, known tag 1 (int64) announced as 9 bytes
    data = bytes.fromhex("0000" "01" "00000000" "01" "01" "09" "000000000000000500")
    with pytest.raises(ProtocolError, match="FinalizedFeaturesEpoch"):
        codec.decode(API_VERSIONS_RESPONSE, 3, data)
    duplicate = bytes.fromhex("0000" "01" "00000000" "02" "07" "00" "07" "00")
    with pytest.raises(ProtocolError, match="tagged field 7 appears twice"):
        codec.decode(API_VERSIONS_RESPONSE, 3, duplicate)


def test_decode_all_rejects_trailing_bytes() -> None:
    data = codec.encode(API_VERSIONS_RESPONSE, 0, {"ErrorCode": 0, "ApiKeys": []})
    with pytest.raises(ProtocolError, match="1 unexpected bytes"):
        codec.decode_all(API_VERSIONS_RESPONSE, 0, data + b"\x00")


@pytest.mark.parametrize("value", [
    {"ErrorCode": 0},  # missing ApiKeys
    {"ErrorCode": 1 << 15, "ApiKeys": []},  # int16 overflow
    {"ErrorCode": 0, "ApiKeys": None},  # not nullable
    {"ErrorCode": 0, "ApiKeys": [{"ApiKey": 1, "MinVersion": 0, "MaxVersion": "x"}]},
])
def test_encode_errors(value: dict[str, Any]) -> None:
    with pytest.raises(EncodeError):
        codec.encode(API_VERSIONS_RESPONSE, 0, value)


def test_encode_rejects_unknown_tag_that_is_known() -> None:
    value = {"ErrorCode": 0, "ApiKeys": [], "ThrottleTimeMs": 0, UNKNOWN_TAGS: {1: b"\x00"}}
    with pytest.raises(EncodeError, match="known tag"):
        codec.encode(API_VERSIONS_RESPONSE, 3, value)


def test_uuid_and_string_type_checks() -> None:
    value: dict[str, Any] = {
        "ThrottleTimeMs": 0, "Brokers": [], "ClusterId": None, "ControllerId": 1,
        "Topics": [{"ErrorCode": 0, "Name": "t", "TopicId": "not-a-uuid", "IsInternal": False,
                    "Partitions": [], "TopicAuthorizedOperations": 0}]}
    with pytest.raises(EncodeError, match=r"uuid\.UUID"):
        codec.encode(METADATA_RESPONSE, 10, value)
    value["Topics"][0]["TopicId"] = uuid.UUID(int=1)
    value["Topics"][0]["Name"] = "x" * 40000
    with pytest.raises(EncodeError, match="longer than 32767"):
        codec.encode(METADATA_RESPONSE, 10, value)


def test_version_outside_valid_range_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="no version 3"):
        codec.decode(FETCH_RESPONSE, 3, b"")
