"""ApiVersions: the intersection never advertises what the proxy cannot relay."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_kafka_python import ApiVersionsResponse, old_api_versions
from protocol_strategies import TAG_NUMBERS, message_values

from kafka_edge.protocol import codec
from kafka_edge.protocol.api_versions import (
    ADVERTISED_MIN_VERSION,
    api_versions_unsupported_response,
    rewrite_api_versions,
)
from kafka_edge.protocol.codec import UNKNOWN_TAGS
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS, API_VERSIONS_RESPONSE
from kafka_edge.protocol.primitives import INT32

M = API_VERSIONS_RESPONSE

api_keys = st.one_of(st.sampled_from(sorted(API_KEYS)), st.integers(-3, 120),
                     st.integers(-(2**15), 2**15 - 1))
versions = st.one_of(st.integers(-1, 25), st.integers(-(2**15), 2**15 - 1))


def entries(version: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    optional = {UNKNOWN_TAGS: st.dictionaries(TAG_NUMBERS, st.binary(max_size=4), min_size=1,
                                              max_size=2)} if version >= 3 else {}
    return st.lists(st.fixed_dictionaries(
        {"ApiKey": api_keys, "MinVersion": versions, "MaxVersion": versions},
        optional=optional), max_size=12)


def our_range(key: int) -> tuple[int, int]:
    spec = API_KEYS[key]
    return ADVERTISED_MIN_VERSION.get(key, spec.min_version), spec.max_version


def expected_entries(original: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in original:
        if entry["ApiKey"] not in API_KEYS:
            continue
        low, high = our_range(entry["ApiKey"])
        low, high = max(low, entry["MinVersion"]), min(high, entry["MaxVersion"])
        if low <= high:
            out.append({**entry, "MinVersion": low, "MaxVersion": high})
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_intersection_never_advertises_what_the_proxy_cannot_handle(data: st.DataObject) -> None:
    version = data.draw(st.integers(0, 5), label="version")
    value = data.draw(message_values(M, version, overrides={"ApiKeys": entries(version)}),
                      label="value")
    payload = data.draw(st.binary(min_size=4, max_size=4), label="header") + codec.encode(
        M, version, value)

    out = rewrite_api_versions(version, payload)

    decoded = codec.decode_all(M, version, out, 4)
    for entry in decoded["ApiKeys"]:
        low, high = our_range(entry["ApiKey"])
        assert low <= entry["MinVersion"] <= entry["MaxVersion"] <= high
    assert decoded["ApiKeys"] == expected_entries(value["ApiKeys"])
    # Everything but the list is kept, byte for byte.
    assert {k: v for k, v in decoded.items() if k != "ApiKeys"} == {
        k: v for k, v in value.items() if k != "ApiKeys"}
    before = codec.spans(M, version, payload, 4)
    after = codec.spans(M, version, out, 4)
    assert out[:after.fields["ApiKeys"][0]] == payload[:before.fields["ApiKeys"][0]]
    assert out[after.fields["ApiKeys"][1]:] == payload[before.fields["ApiKeys"][1]:]


def kafka_44_broker_answer() -> list[dict[str, Any]]:
    answer = [{"ApiKey": spec.key, "MinVersion": spec.min_version, "MaxVersion": spec.max_version}
              for spec in API_KEYS.values()]
    answer[0]["MinVersion"] = 0  # Produce: brokers advertise v0 (KAFKA-18659)
    return answer


def test_a_kafka_44_broker_answer_passes_through_unchanged() -> None:
    value = {"ErrorCode": 0, "ApiKeys": kafka_44_broker_answer(), "ThrottleTimeMs": 0,
             "SupportedFeatures": [{"Name": "metadata.version", "MinVersion": 1,
                                    "MaxVersion": 27}],
             "FinalizedFeaturesEpoch": 42,
             "FinalizedFeatures": [{"Name": "metadata.version", "MaxVersionLevel": 27,
                                    "MinVersionLevel": 27}],
             "ZkMigrationReady": False, "_unknown_tags": {9: b"future"}}
    payload = INT32.pack(1) + codec.encode(M, 4, value)
    assert rewrite_api_versions(4, payload) == payload


def test_newer_broker_is_capped_and_unknown_keys_dropped() -> None:
    answer = kafka_44_broker_answer()
    answer[1]["MaxVersion"] = 19  # Fetch v19 from a newer broker
    answer.append({"ApiKey": 95, "MinVersion": 0, "MaxVersion": 0})  # an API from the future
    answer.append({"ApiKey": 67, "MinVersion": 0, "MaxVersion": 0})  # controller-only
    answer.append({"ApiKey": 1000, "MinVersion": 0, "MaxVersion": 3})  # vendor extension
    value = {"ErrorCode": 0, "ApiKeys": answer, "ThrottleTimeMs": 100}
    payload = INT32.pack(7) + codec.encode(M, 2, value)
    out = rewrite_api_versions(2, payload)
    decoded = codec.decode_all(M, 2, out, 4)
    assert out[:4] == payload[:4]
    assert decoded["ThrottleTimeMs"] == 100
    assert decoded["ApiKeys"] == kafka_44_broker_answer()


def test_older_broker_ranges_are_kept_and_disjoint_ranges_removed() -> None:
    answer = [
        {"ApiKey": 0, "MinVersion": 0, "MaxVersion": 9},  # Kafka 2.x Produce
        {"ApiKey": 1, "MinVersion": 0, "MaxVersion": 3},  # Fetch v0-3 only: none of ours
        {"ApiKey": 3, "MinVersion": 0, "MaxVersion": 12},
        {"ApiKey": 27, "MinVersion": 0, "MaxVersion": 1},  # WriteTxnMarkers: ours is 1-2
    ]
    payload = INT32.pack(7) + codec.encode(M, 3, {"ErrorCode": 0, "ApiKeys": answer,
                                                  "ThrottleTimeMs": 0})
    decoded = codec.decode_all(M, 3, rewrite_api_versions(3, payload), 4)
    assert decoded["ApiKeys"] == [
        {"ApiKey": 0, "MinVersion": 0, "MaxVersion": 9},
        {"ApiKey": 3, "MinVersion": 0, "MaxVersion": 12},
        {"ApiKey": 27, "MinVersion": 1, "MaxVersion": 1},
    ]


@pytest.mark.parametrize("asked", [1, 2, 3, 4, 5, 6, 100])
def test_unsupported_version_answer_in_v0_is_still_intersected(asked: int) -> None:
    """A broker that does not know the requested version answers v0 with UNSUPPORTED_VERSION;
    like Kafka's clients, parse it as v0 when it does not parse at the requested version."""
    value = {"ErrorCode": 35, "ApiKeys": [{"ApiKey": 18, "MinVersion": 0, "MaxVersion": 9},
                                          {"ApiKey": 2000, "MinVersion": 0, "MaxVersion": 1}]}
    payload = INT32.pack(3) + codec.encode(M, 0, value)
    out = rewrite_api_versions(asked, payload)
    assert codec.decode_all(M, 0, out, 4) == {
        "ErrorCode": 35, "ApiKeys": [{"ApiKey": 18, "MinVersion": 0, "MaxVersion": 5}]}


def test_unparseable_answer_raises() -> None:
    with pytest.raises(ProtocolError):
        rewrite_api_versions(3, INT32.pack(3) + b"\x00\x00\x05")
    with pytest.raises(ProtocolError, match="no header"):
        rewrite_api_versions(3, b"\x00")


def test_unsupported_version_response_is_what_a_broker_sends() -> None:
    payload = api_versions_unsupported_response(1234)
    assert payload == bytes.fromhex("000004d2" "0023" "00000001" "0012" "0000" "0005")
    # independent decoders agree
    theirs = ApiVersionsResponse.decode(payload[4:], version=0)
    assert theirs.error_code == 35
    assert [(k.api_key, k.min_version, k.max_version) for k in theirs.api_keys] == [(18, 0, 5)]
    old = old_api_versions.ApiVersionsResponse_v0.decode(payload[4:])
    assert old.error_code == 35
    assert [tuple(k) for k in old.api_keys] == [(18, 0, 5)]


def test_input_is_not_modified() -> None:
    value = {"ErrorCode": 0, "ApiKeys": [{"ApiKey": 1000, "MinVersion": 0, "MaxVersion": 1}],
             "ThrottleTimeMs": 0}
    payload = bytearray(INT32.pack(3) + codec.encode(M, 3, value))
    snapshot = copy.copy(payload)
    rewrite_api_versions(3, memoryview(payload))
    assert payload == snapshot
