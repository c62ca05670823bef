"""The streaming Fetch walk agrees with the whole-response rewrite under any chunking."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import UPSTREAM_HOSTS, message_values, response_headers

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import rewrite_response
from kafka_edge.protocol.codec import UNKNOWN_TAGS
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.fetch_stream import PAD_TAG, FetchWalk, fixed_size_section
from kafka_edge.protocol.messages import FETCH_RESPONSE
from kafka_edge.protocol.primitives import read_tagged_section, uvarint_bytes

VERSIONS = range(16, FETCH_RESPONSE.valid[1] + 1)


def short_name(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
    return f"e{node_id % 10}.example", 9000 + node_id % 1000


def long_name(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
    return f"broker-{node_id}.a-rather-long-custom-domain.orders.example.com", 9098


def stream(walk: FetchWalk, payload: bytes, cuts: list[int]) -> bytes:
    points = sorted({c % (len(payload) + 1) for c in cuts} | {0, len(payload)})
    out = bytearray()
    for a, b in itertools.pairwise(points):
        if b == a:
            continue
        chunk = bytearray(payload[a:b])  # a reused read buffer: overwritten after each feed
        held, safe, tail = walk.feed(memoryview(chunk))
        out += held or b""
        out += chunk[:safe]
        out += tail or b""
        chunk[:] = b"\xa5" * len(chunk)
    return bytes(out)


def body_of(payload: bytes) -> tuple[int, dict[str, Any]]:
    _fields, start = read_tagged_section(payload, 4)  # correlation id, header tags
    return start, codec.decode_all(FETCH_RESPONSE, VERSIONS[0], payload[start:])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mapper", [short_name, long_name], ids=["shorter", "longer"])
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_streamed_answer_equals_the_whole_answer_rewrite(version: int, mapper: Any,
                                                          data: st.DataObject) -> None:
    value = data.draw(message_values(FETCH_RESPONSE, version, max_list=3), label="value")
    if data.draw(st.booleans(), label="with endpoints"):
        value["NodeEndpoints"] = data.draw(st.lists(st.fixed_dictionaries({
            "NodeId": st.integers(0, 2000), "Host": UPSTREAM_HOSTS,
            "Port": st.integers(1, 65535), "Rack": st.none() | st.text(max_size=4)}),
            max_size=3), label="endpoints")
    payload = (data.draw(response_headers(FETCH_RESPONSE, version), label="header")
               + codec.encode(FETCH_RESPONSE, version, value))
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=10), label="cuts")
    walk = FetchWalk(len(payload), version, mapper)
    out = stream(walk, payload, cuts)
    assert walk.done
    assert len(out) == len(payload)  # the size prefix went out first: it must stay true
    reference = rewrite_response(1, version, payload, mapper)
    if reference is None:
        assert out == payload
        assert not walk.rewritten
        return
    assert walk.rewritten
    start, got = body_of(out)
    _, want = body_of(reference)
    assert out[:start] == payload[:start]
    assert got["Responses"] == want["Responses"]
    for host in {e["Host"] for e in value["NodeEndpoints"]}:
        if host.endswith(".upstream.test"):  # generated hosts; random text may occur anywhere
            assert host.encode() not in out
    if walk.dropped:  # only when the rewritten endpoints (plus a padding field) cannot fit
        assert len(reference) != len(payload) and len(reference) > len(payload) - 7
        assert "NodeEndpoints" not in got
    else:
        assert len(reference) <= len(payload)
        assert got["NodeEndpoints"] == want["NodeEndpoints"]
    kept = want.get(UNKNOWN_TAGS) or {}
    added = {k: v for k, v in (got.get(UNKNOWN_TAGS) or {}).items() if k not in kept}
    assert {k: v for k, v in (got.get(UNKNOWN_TAGS) or {}).items() if k in kept} == kept
    assert all(k >= PAD_TAG - 1 and k > max(kept, default=0) and not any(v)
               for k, v in added.items())  # padding only: zeros, above every other tag


@pytest.mark.parametrize("size", range(1, 300))
def test_fixed_size_sections_have_the_size_asked_for(size: int) -> None:
    fields = [(0, b"x" * 5), (3, b"")]
    section = fixed_size_section(fields, size)
    minimum = len(uvarint_bytes(2) + b"\x00\x05xxxxx\x03\x00")
    if size < minimum or 0 < size - minimum < 6:
        # below the fields themselves, or too little room for a padding field (tag + length)
        assert section is None
        return
    assert section is not None and len(section) == size
    parsed, end = read_tagged_section(section, 0)
    assert end == size
    assert [(t, section[s:e]) for t, s, e in parsed if t < PAD_TAG - 1] == fields


def test_records_running_past_the_frame_are_refused() -> None:
    value = {"ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 0, "Responses": [
        {"TopicId": uuid.UUID(int=1), "Partitions": [
            {"PartitionIndex": 0, "ErrorCode": 0, "HighWatermark": 0, "LastStableOffset": 0,
             "LogStartOffset": 0, "AbortedTransactions": None, "PreferredReadReplica": -1,
             "Records": b"r" * 100}]}]}
    payload = b"\x00\x00\x00\x01\x00" + codec.encode(FETCH_RESPONSE, 17, value)
    cut = payload[:len(payload) - 60]  # the frame claims to end inside the records
    walk = FetchWalk(len(cut), 17, short_name)
    with pytest.raises(ProtocolError, match="past the end"):
        walk.feed(memoryview(cut))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=4))
def test_random_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    walk = FetchWalk(len(data), 17, short_name)
    with contextlib.suppress(ProtocolError):
        stream(walk, data, cuts)
