"""rewrite_response: every broker address replaced, every other byte kept."""

from __future__ import annotations

import copy
import tracemalloc
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_strategies import (
    UPSTREAM_HOSTS,
    all_cases,
    case_id,
    message_values,
    response_headers,
)

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import MAX_PARSED_VERSION, REWRITTEN_APIS, rewrite_response
from kafka_edge.protocol.codec import UNKNOWN_TAGS
from kafka_edge.protocol.errors import EncodeError, ProtocolError
from kafka_edge.protocol.messages import (
    API_KEYS,
    DESCRIBE_CLUSTER_RESPONSE,
    DESCRIBE_QUORUM_RESPONSE,
    FETCH_RESPONSE,
    FIND_COORDINATOR_RESPONSE,
    METADATA_RESPONSE,
    PRODUCE_RESPONSE,
    RESPONSES,
    SHARE_FETCH_RESPONSE,
)
from kafka_edge.protocol.primitives import INT32
from kafka_edge.protocol.schema import Message

CASES = all_cases({key: RESPONSES[key] for key in REWRITTEN_APIS})

# Bias the fields that decide whether an entry is rewritten.
OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    "Host": UPSTREAM_HOSTS,
    "ErrorCode": st.sampled_from([0, 0, 0, 15]),  # FindCoordinator skips entries in error
    "NodeId": st.sampled_from([-1, 1, 2, 3]) | st.integers(-(2**31), 2**31 - 1),
    "EndpointType": st.sampled_from([1, 2]),  # DescribeCluster: 2 = controllers
}

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def edge_address(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
    prefix = "edge" if is_broker else "ctl"
    return f"{prefix}-{node_id}.example", 9000 + node_id % 1000


def expected_addresses(api_key: int, version: int,
                       value: dict[str, Any]) -> list[tuple[int, dict[str, Any], bool]]:
    """(node id, entry holding Host/Port, is_broker) for every address the proxy must rewrite,
    written from the protocol notes independently of addresses.py."""
    if api_key == 3:
        return [(b["NodeId"], b, True) for b in value["Brokers"]]
    if api_key == 60:
        is_broker = value.get("EndpointType", 1) != 2
        return [(b["BrokerId"], b, is_broker) for b in value["Brokers"]]
    if api_key == 10:
        entries = [value] if version < 4 else value["Coordinators"]
        return [(c["NodeId"], c, True) for c in entries
                if c["ErrorCode"] == 0 and c["NodeId"] != -1]
    if api_key in (0, 1, 78, 79):
        return [(e["NodeId"], e, True) for e in value.get("NodeEndpoints") or []]
    if api_key == 55:
        return [(n["NodeId"], listener, False)
                for n in value.get("Nodes", []) for listener in n["Listeners"]]
    raise AssertionError(api_key)


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
@SETTINGS
@given(data=st.data())
def test_every_address_is_replaced_and_nothing_else(message: Message, version: int,
                                                    data: st.DataObject) -> None:
    value = data.draw(message_values(message, version, overrides=OVERRIDES), label="value")
    header = data.draw(response_headers(message, version), label="header")
    body = codec.encode(message, version, value)
    payload = header + body

    calls: list[tuple[int, str, int, bool]] = []

    def mapper(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
        calls.append((node_id, host, port, is_broker))
        return edge_address(node_id, host, port, is_broker)

    out = rewrite_response(message.api_key, version, payload, mapper)

    expected = copy.deepcopy(value)
    addresses = expected_addresses(message.api_key, version, expected)
    expected_calls = []
    for node_id, entry, is_broker in addresses:
        expected_calls.append((node_id, entry["Host"], entry["Port"], is_broker))
        entry["Host"], entry["Port"] = edge_address(node_id, entry["Host"], entry["Port"],
                                                    is_broker)
    assert calls == expected_calls
    if not addresses:
        assert out is None
        return
    assert out is not None
    # Everything but the addresses is byte for byte what it was (the input is canonical, so
    # re-encoding the expected value gives exactly those bytes), unknown tags included.
    assert out == header + codec.encode(message, version, expected)
    assert codec.decode_all(message, version, out, len(header)) == expected
    remaining = set(all_hosts(expected))  # hosts of entries left alone (e.g. in error)
    for _node_id, host, _port, _is_broker in calls:
        if host not in remaining:
            assert host.encode() not in out


def all_hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["Host"]] if isinstance(value.get("Host"), str) else []
        return found + [h for v in value.values() for h in all_hosts(v)]
    if isinstance(value, list):
        return [h for v in value for h in all_hosts(v)]
    return []


@pytest.mark.parametrize("message", [PRODUCE_RESPONSE, FETCH_RESPONSE], ids=case_id)
@SETTINGS
@given(data=st.data())
def test_produce_fetch_splice_keeps_the_body_prefix(message: Message,
                                                    data: st.DataObject) -> None:
    first = 10 if message is PRODUCE_RESPONSE else 16
    version = data.draw(st.integers(first, message.valid[1]), label="version")
    value = data.draw(message_values(message, version, overrides=OVERRIDES), label="value")
    value["NodeEndpoints"] = data.draw(st.lists(st.fixed_dictionaries({
        "NodeId": st.integers(0, 100), "Host": UPSTREAM_HOSTS, "Port": st.integers(1, 65535),
        "Rack": st.none() | st.text(max_size=5)}), min_size=1, max_size=3), label="endpoints")
    header = data.draw(response_headers(message, version), label="header")
    payload = header + codec.encode(message, version, value)
    out = rewrite_response(message.api_key, version, payload, edge_address)
    assert out is not None
    tagged_start = len(header) + codec.spans(message, version, payload[len(header):]).tagged_start
    assert out[:tagged_start] == payload[:tagged_start]
    decoded = codec.decode_all(message, version, out, len(header))
    assert [e["Host"] for e in decoded["NodeEndpoints"]] == [
        f"edge-{e['NodeId']}.example" for e in value["NodeEndpoints"]]
    assert decoded.get(UNKNOWN_TAGS) == value.get(UNKNOWN_TAGS)
    if message is FETCH_RESPONSE:
        assert [p["Records"] for t in decoded["Responses"] for p in t["Partitions"]] == [
            p["Records"] for t in value["Responses"] for p in t["Partitions"]]


def fetch_response(version: int, partitions: int, record_bytes: int,
                   endpoints: list[dict[str, Any]] | None) -> dict[str, Any]:
    records = bytes(range(256)) * (record_bytes // 256)
    topic = {"TopicId": uuid.UUID(int=7)} if version >= 13 else {"Topic": "orders"}
    value: dict[str, Any] = {
        "ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 12,
        "Responses": [{**topic, "Partitions": [
            {"PartitionIndex": i, "ErrorCode": 0, "HighWatermark": 1000, "LastStableOffset": 1000,
             "LogStartOffset": 0, "AbortedTransactions": None, "PreferredReadReplica": -1,
             "Records": records} for i in range(partitions)]}],
    }
    if endpoints is not None:
        value["NodeEndpoints"] = endpoints
    return value


def test_fetch_without_node_endpoints_is_not_copied() -> None:
    """The hot path walks a 1 MiB Fetch response without copying its records."""
    body = codec.encode(FETCH_RESPONSE, 18, fetch_response(18, 10, 100 * 1024, None))
    payload = b"\x00\x00\x00\x01\x00" + body
    assert len(payload) > 1_000_000
    assert rewrite_response(1, 18, payload, edge_address) is None  # warm the codec caches
    tracemalloc.start()
    try:
        assert rewrite_response(1, 18, payload, edge_address) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_fetch_with_node_endpoints_copies_once() -> None:
    endpoints = [{"NodeId": 2, "Host": "b-2.internal", "Port": 9092, "Rack": "r1"}]
    value = fetch_response(18, 10, 100 * 1024, endpoints)
    value[UNKNOWN_TAGS] = {5: b"later", 1: b"\x00"}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(FETCH_RESPONSE, 18, value)
    out = rewrite_response(1, 18, payload, edge_address)
    assert out is not None
    tracemalloc.start()
    try:
        rewrite_response(1, 18, payload, edge_address)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(payload)
    expected = copy.deepcopy(value)
    expected["NodeEndpoints"][0].update(Host="edge-2.example", Port=9002)
    assert out == payload[:5] + codec.encode(FETCH_RESPONSE, 18, expected)


def test_unknown_tags_survive_at_top_level_and_inside_structs() -> None:
    value = {
        "ThrottleTimeMs": 0,
        "Brokers": [{"NodeId": 1, "Host": "b-1.internal", "Port": 9092, "Rack": None,
                     UNKNOWN_TAGS: {3: b"broker-tag"}}],
        "ClusterId": "c", "ControllerId": 1,
        "Topics": [{"ErrorCode": 0, "Name": "t", "TopicId": uuid.UUID(int=1),
                    "IsInternal": False, "Partitions": [], "TopicAuthorizedOperations": 0,
                    UNKNOWN_TAGS: {0: b"topic-tag"}}],
        "ErrorCode": 0,
        UNKNOWN_TAGS: {2: b"top", 77: b"\xff" * 200},
    }
    header = b"\x00\x00\x00\x09" + b"\x01\x04\x02hi"  # header v1 with an unknown tag
    payload = header + codec.encode(METADATA_RESPONSE, 13, value)
    out = rewrite_response(3, 13, payload, edge_address)
    assert out is not None
    assert out.startswith(header)
    for raw in (b"broker-tag", b"topic-tag", b"\x02\x03top", b"\x4d\xc8\x01" + b"\xff" * 200):
        assert raw in out
    decoded = codec.decode_all(METADATA_RESPONSE, 13, out, len(header))
    assert decoded["Brokers"][0][UNKNOWN_TAGS] == {3: b"broker-tag"}
    assert decoded[UNKNOWN_TAGS] == value[UNKNOWN_TAGS]
    assert decoded["Brokers"][0]["Host"] == "edge-1.example"


def test_produce_and_fetch_without_endpoints_return_none() -> None:
    produce = {"Responses": [], "ThrottleTimeMs": 0}
    for version in range(3, 14):
        payload = b"\x00\x00\x00\x01" + (b"\x00" if version >= 9 else b"")
        payload += codec.encode(PRODUCE_RESPONSE, version, produce)
        assert rewrite_response(0, version, payload, edge_address) is None
    # Produce v0-2 are advertised (KAFKA-18659) but never carry addresses
    assert rewrite_response(0, 2, b"garbage", edge_address) is None
    for version in range(4, 19):
        payload = b"\x00\x00\x00\x01" + (b"\x00" if version >= 12 else b"")
        payload += codec.encode(FETCH_RESPONSE, version, fetch_response(version, 2, 256, None))
        assert rewrite_response(1, version, payload, edge_address) is None


def test_old_describe_quorum_has_no_addresses() -> None:
    value = {"ErrorCode": 0, "Topics": []}
    for version in (0, 1):
        payload = b"\x00\x00\x00\x01\x00" + codec.encode(DESCRIBE_QUORUM_RESPONSE, version, value)
        assert rewrite_response(55, version, payload, edge_address) is None


def test_describe_quorum_v2_listeners_are_controllers() -> None:
    value = {"ErrorCode": 0, "ErrorMessage": None, "Topics": [], "Nodes": [
        {"NodeId": 3000, "Listeners": [
            {"Name": "CONTROLLER", "Host": "c-1.internal", "Port": 9093},
            {"Name": "CONTROLLER_TLS", "Host": "c-1.internal", "Port": 9094}]}]}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(DESCRIBE_QUORUM_RESPONSE, 2, value)
    seen: list[bool] = []

    def mapper(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
        seen.append(is_broker)
        return "ctl.example", port + 1

    out = rewrite_response(55, 2, payload, mapper)
    assert out is not None
    assert seen == [False, False]
    decoded = codec.decode_all(DESCRIBE_QUORUM_RESPONSE, 2, out, 5)
    assert [(li["Host"], li["Port"]) for li in decoded["Nodes"][0]["Listeners"]] == [
        ("ctl.example", 9094), ("ctl.example", 9095)]
    with pytest.raises(EncodeError, match="uint16"):
        rewrite_response(55, 2, payload, lambda *_: ("x", 70000))


def test_find_coordinator_errors_are_left_alone() -> None:
    v3 = {"ThrottleTimeMs": 0, "ErrorCode": 15, "ErrorMessage": "not available", "NodeId": -1,
          "Host": "", "Port": -1}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(FIND_COORDINATOR_RESPONSE, 3, v3)
    assert rewrite_response(10, 3, payload, edge_address) is None

    v6: dict[str, Any] = {"ThrottleTimeMs": 0, "Coordinators": [
        {"Key": "g1", "NodeId": -1, "Host": "", "Port": -1, "ErrorCode": 15,
         "ErrorMessage": None},
        {"Key": "g2", "NodeId": 2, "Host": "b-2.internal", "Port": 9092, "ErrorCode": 0,
         "ErrorMessage": None}]}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(FIND_COORDINATOR_RESPONSE, 6, v6)
    out = rewrite_response(10, 6, payload, edge_address)
    assert out is not None
    coordinators = codec.decode_all(FIND_COORDINATOR_RESPONSE, 6, out, 5)["Coordinators"]
    assert coordinators[0] == v6["Coordinators"][0]
    assert (coordinators[1]["Host"], coordinators[1]["Port"]) == ("edge-2.example", 9002)


def test_find_coordinator_v0_splices_host_and_port_only() -> None:
    v0 = {"ErrorCode": 0, "NodeId": 1, "Host": "b-1.internal", "Port": 9092}
    payload = b"\x00\x00\x00\x05" + codec.encode(FIND_COORDINATOR_RESPONSE, 0, v0)
    out = rewrite_response(10, 0, payload, edge_address)
    assert out == b"\x00\x00\x00\x05" + bytes.fromhex("0000 00000001 000e") + \
        b"edge-1.example" + INT32.pack(9001)


def test_identity_mapper_means_nothing_to_rewrite() -> None:
    value = {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "EndpointType": 1,
             "ClusterId": "c", "ControllerId": 1,
             "Brokers": [{"BrokerId": 1, "Host": "h", "Port": 1, "Rack": None,
                          "IsFenced": False}],
             "ClusterAuthorizedOperations": 0}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(DESCRIBE_CLUSTER_RESPONSE, 2, value)
    assert rewrite_response(60, 2, payload, lambda n, h, p, b: (h, p)) is None


def test_share_fetch_records_are_kept() -> None:
    value = {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None,
             "AcquisitionLockTimeoutMs": 30000,
             "Responses": [{"TopicId": uuid.UUID(int=3), "Partitions": [
                 {"PartitionIndex": 0, "ErrorCode": 0, "ErrorMessage": None,
                  "AcknowledgeErrorCode": 0, "AcknowledgeErrorMessage": None,
                  "CurrentLeader": {"LeaderId": 1, "LeaderEpoch": 4},
                  "Records": b"\x01" * 5000,
                  "AcquiredRecords": [{"FirstOffset": 0, "LastOffset": 9, "DeliveryCount": 1}]}]}],
             "NodeEndpoints": [{"NodeId": 1, "Host": "b-1.internal", "Port": 9092, "Rack": None}]}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(SHARE_FETCH_RESPONSE, 2, value)
    out = rewrite_response(78, 2, payload, edge_address)
    assert out is not None
    records_at = payload.index(b"\x01" * 5000)
    assert out[:records_at + 5000] == payload[:records_at + 5000]


def test_malformed_responses() -> None:
    value = {"ThrottleTimeMs": 0, "Brokers": [], "ClusterId": None, "ControllerId": 1,
             "Topics": []}
    payload = b"\x00\x00\x00\x01" + codec.encode(METADATA_RESPONSE, 5, value)
    assert rewrite_response(3, 5, payload, edge_address) is None
    with pytest.raises(ProtocolError, match="1 unexpected bytes after MetadataResponse v5"):
        rewrite_response(3, 5, payload + b"\x00", edge_address)
    with pytest.raises(ProtocolError, match="no header"):
        rewrite_response(3, 5, b"\x00\x00", edge_address)
    with pytest.raises(ProtocolError, match="ResponseHeader"):
        rewrite_response(3, 12, b"\x00\x00\x00\x01", edge_address)
    with pytest.raises(ProtocolError, match="MetadataResponse"):
        rewrite_response(3, 5, payload[:-1], edge_address)


def test_versions_and_keys_outside_the_contract() -> None:
    assert frozenset({0, 1, 3, 10, 55, 60, 78, 79}) == REWRITTEN_APIS
    assert {key: API_KEYS[key].max_version for key in REWRITTEN_APIS} == MAX_PARSED_VERSION
    assert MAX_PARSED_VERSION == {0: 13, 1: 18, 3: 13, 10: 6, 55: 2, 60: 2, 78: 2, 79: 2}
    with pytest.raises(ProtocolError, match="newer than this proxy understands"):
        rewrite_response(3, 14, b"\x00" * 16, edge_address)
    with pytest.raises(ProtocolError, match="does not exist"):
        rewrite_response(78, 0, b"\x00" * 16, edge_address)
    with pytest.raises(ValueError, match="carries no broker address"):
        rewrite_response(18, 3, b"\x00" * 16, edge_address)
