"""Transcript tests of the two frame streams: bytes in, bytes out, as on the wire."""

from __future__ import annotations

import itertools
import struct
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_edge.protocol import codec
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS, FETCH_RESPONSE, PRODUCE_RESPONSE
from kafka_edge.protocol.request_stream import RequestStream
from kafka_edge.protocol.response_stream import ResponseStream
from kafka_edge.protocol.stream import ConnectionState

MAX = 1 << 20


def request(api_key: int, version: int, corr: int, body: bytes = b"", client_id: bytes = b"t"
            ) -> bytes:
    payload = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id + body
    return struct.pack(">i", len(payload)) + payload


def response(corr: int, body: bytes) -> bytes:
    payload = struct.pack(">i", corr) + body
    return struct.pack(">i", len(payload)) + payload


def produce_body(acks: int) -> bytes:
    # Produce v3..v8 (non-flexible): transactional_id (null), acks, timeout, topics (empty)
    return struct.pack(">hhii", -1, acks, 1000, 0)


class Wire:
    def __init__(self) -> None:
        self.state = ConnectionState()
        self.to_broker: list[bytes] = []
        self.to_client: list[bytes] = []
        self.requests = RequestStream(self.state, self._up, self._down, MAX)
        self.responses = ResponseStream(self.state, self._down, self._mapper, MAX)

    def _up(self, data: bytes | bytearray | memoryview) -> None:
        self.to_broker.append(bytes(data))

    def _down(self, data: bytes | bytearray | memoryview) -> None:
        self.to_client.append(bytes(data))

    @staticmethod
    def _mapper(node: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
        return f"edge-{node}.example", 9000 + node


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def test_requests_pass_through_unchanged_in_one_write() -> None:
    w = Wire()
    frames = request(2, 5, 1, b"x" * 100) + request(8, 3, 2, b"y" * 10)
    w.requests.feed(frames)
    assert w.to_broker == [frames]
    assert [c for c, *_ in w.state.in_flight] == [1, 2]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_any_chunking_gives_the_same_bytes_both_ways(cuts: list[int]) -> None:
    w = Wire()
    reqs = b"".join(request(2, 5, i, bytes([i]) * (i * 37 % 300)) for i in range(1, 9))
    for part in chunks(reqs, cuts):
        w.requests.feed(part)
    assert b"".join(w.to_broker) == reqs
    resps = b"".join(response(i, bytes([i]) * (i * 53 % 500)) for i in range(1, 9))
    for part in chunks(resps, cuts):
        w.responses.feed(part)
    assert b"".join(w.to_client) == resps
    assert not w.state.in_flight


def test_produce_acks_zero_expects_no_response() -> None:
    w = Wire()
    w.requests.feed(request(0, 7, 10, produce_body(0)) + request(0, 7, 11, produce_body(-1)))
    assert [c for c, *_ in w.state.in_flight] == [11]
    w.responses.feed(response(11, b"\0" * 8))
    assert not w.state.in_flight


def test_response_to_unknown_correlation_id_is_a_protocol_error() -> None:
    w = Wire()
    w.requests.feed(request(2, 5, 1))
    with pytest.raises(ProtocolError, match="expected 1"):
        w.responses.feed(response(2, b""))


def test_tls_client_hello_on_plaintext_port_is_named() -> None:
    w = Wire()
    with pytest.raises(ProtocolError, match="TLS handshake"):
        w.requests.feed(bytes.fromhex("16030100f4010000f00303") + b"\0" * 20)


def test_oversized_frame_is_refused() -> None:
    w = Wire()
    with pytest.raises(ProtocolError, match="out of range"):
        w.requests.feed(struct.pack(">ihhi", MAX + 1, 0, 0, 0))


def test_api_versions_above_known_version_is_answered_locally() -> None:
    w = Wire()
    too_new = API_KEYS[18].max_version + 1
    # an acks=0 Produce gets no answer, so the proxy's own answer overtakes nothing
    w.requests.feed(request(0, 3, 1, produce_body(0)) + request(18, too_new, 7)
                    + request(3, 1, 8))
    assert b"".join(w.to_broker) == request(0, 3, 1, produce_body(0)) + request(3, 1, 8)
    (answer,) = w.to_client
    size, corr, error = struct.unpack_from(">iih", answer)
    assert (size, corr, error) == (len(answer) - 4, 7, 35)
    assert [c for c, *_ in w.state.in_flight] == [8]


def test_api_versions_above_known_version_behind_an_unanswered_request_is_refused() -> None:
    # answered by the proxy, it would reach the client before the broker's answer to 1
    w = Wire()
    too_new = API_KEYS[18].max_version + 1
    with pytest.raises(ProtocolError, match="behind other requests"):
        w.requests.feed(request(2, 5, 1) + request(18, too_new, 7))
    assert w.to_client == []


def test_api_versions_above_known_version_during_a_streamed_answer_is_refused() -> None:
    # the answer to 1 is half forwarded: the proxy's answer would land inside it
    w = Wire()
    too_new = API_KEYS[18].max_version + 1
    w.requests.feed(request(2, 5, 1))
    w.responses.feed(response(1, b"z" * 1000)[:300])
    assert not w.state.in_flight and not w.responses.between_frames()
    with pytest.raises(ProtocolError, match="behind other requests"):
        w.requests.feed(request(18, too_new, 7))
    assert b"".join(w.to_client) == response(1, b"z" * 1000)[:300]
    w.responses.feed(response(1, b"z" * 1000)[300:])
    assert w.responses.between_frames()


def test_sasl_handshake_v0_raw_phase_passes_tokens_verbatim() -> None:
    w = Wire()
    w.requests.feed(request(17, 0, 1, struct.pack(">h", 5) + b"PLAIN"))
    # SaslHandshake v0 response: error 0, mechanisms ["PLAIN"]
    w.responses.feed(response(1, struct.pack(">hih", 0, 1, 5) + b"PLAIN"))
    assert w.state.sasl_v0 is not None and w.state.sasl_v0.raw
    token = b"\0Alice\0secret-password"
    raw = struct.pack(">i", len(token)) + token
    w.requests.feed(raw)
    assert w.to_broker[-1] == raw
    empty = struct.pack(">i", 0)  # PLAIN's (empty) server answer
    w.responses.feed(empty)
    assert w.to_client[-1] == empty
    # the next frame is a Kafka request again and is tracked
    assert w.state.sasl_v0 is None  # PLAIN: one round
    w.requests.feed(request(3, 1, 2, struct.pack(">i", 0)))
    assert [c for c, *_ in w.state.in_flight] == [2]


def test_sasl_handshake_v1_does_not_enter_raw_phase() -> None:
    w = Wire()
    w.requests.feed(request(17, 1, 1, struct.pack(">h", 5) + b"PLAIN"))
    w.responses.feed(response(1, struct.pack(">hih", 0, 1, 5) + b"PLAIN"))
    assert w.state.sasl_v0 is None


def metadata_v1_response(corr: int, brokers: list[tuple[int, str, int]]) -> bytes:
    body = struct.pack(">i", len(brokers))
    for node, host, port in brokers:
        body += struct.pack(">ih", node, len(host)) + host.encode() + struct.pack(">ih", port, -1)
    body += struct.pack(">ii", 1, 0)  # controller id, no topics
    return response(corr, body)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5_000), max_size=10))
def test_rewritten_responses_between_pass_through_ones_under_any_chunking(cuts: list[int]
                                                                           ) -> None:
    w = Wire()
    reqs = request(2, 5, 1) + request(3, 1, 2, struct.pack(">i", 0)) + request(2, 5, 3)
    w.requests.feed(reqs)
    meta = metadata_v1_response(2, [(1, "10.0.0.1", 9092), (2, "10.0.0.2", 9092)])
    stream = response(1, b"a" * 300) + meta + response(3, b"b" * 200)
    for part in chunks(stream, cuts):
        w.responses.feed(part)
    out = b"".join(w.to_client)
    expected = metadata_v1_response(2, [(1, "edge-1.example", 9001), (2, "edge-2.example", 9002)])
    assert out == response(1, b"a" * 300) + expected + response(3, b"b" * 200)
    assert w.responses.rewritten == {3: 1}
    assert not w.state.in_flight


def test_unchanged_inspected_responses_do_not_split_the_write() -> None:
    """Several small Produce-like answers in one read go out in one write when none changes."""
    w = Wire()
    w.requests.feed(request(18, 0, 1) + request(2, 5, 2) + request(2, 5, 3))
    w.to_client.clear()
    # SaslHandshake-free: use ListOffsets (pass-through) and an ApiVersions answer, which the
    # proxy always rebuilds (intersection), to see where writes split
    w.responses.feed(response(1, struct.pack(">hi", 0, 0)) + response(2, b"x" * 10)
                     + response(3, b"y" * 10))
    assert len(w.to_client) == 2  # the rebuilt ApiVersions answer, then the rest in one piece
    assert w.to_client[1] == response(2, b"x" * 10) + response(3, b"y" * 10)


def test_fetch_below_v16_streams_through_without_being_collected() -> None:
    """Fetch v4-15 cannot carry NodeEndpoints: its chunks go out as they come (no buffering)."""
    w = Wire()
    w.requests.feed(request(1, 15, 1))
    answer = response(1, b"r" * 10_000)
    w.to_client.clear()
    for i in range(0, len(answer), 1000):
        w.responses.feed(answer[i:i + 1000])
    assert len(w.to_client) == 11  # forwarded per chunk, not held back until complete
    assert b"".join(w.to_client) == answer


# -- Produce v13 on the hot path, and streams fed from a reused read buffer ---------------------


def produce_v13_request(corr: int, acks: int, records: bytes) -> bytes:
    """A Produce v13 request as a Java client sends it (flexible header, no header tags)."""
    body = bytearray(b"\x00" + struct.pack(">hi", acks, 30000))  # transactional id null
    body += b"\x02" + uuid.UUID(int=5).bytes + b"\x02" + struct.pack(">i", 0)
    body += bytes([len(records) + 1]) + records + b"\x00\x00\x00"  # records < 127 bytes
    return request(0, 13, corr, b"\x00" + bytes(body), client_id=b"producer-1")


def produce_v13_response(corr: int, endpoints: list[tuple[int, str, int]] | None) -> bytes:
    value: dict[str, Any] = {
        "ThrottleTimeMs": 0,
        "Responses": [{"TopicId": uuid.UUID(int=5), "PartitionResponses": [
            {"Index": 0, "ErrorCode": 6 if endpoints else 0, "BaseOffset": 10,
             "LogAppendTimeMs": -1, "LogStartOffset": 0, "RecordErrors": [],
             "ErrorMessage": None,
             **({"CurrentLeader": {"LeaderId": 2, "LeaderEpoch": 3}} if endpoints else {})}]}],
    }
    if endpoints is not None:
        value["NodeEndpoints"] = [{"NodeId": n, "Host": h, "Port": p, "Rack": None}
                                  for n, h, p in endpoints]
    return response(corr, b"\x00" + codec.encode(PRODUCE_RESPONSE, 13, value))


def test_produce_v13_plain_answers_pass_and_node_endpoints_are_rewritten() -> None:
    w = Wire()
    reqs = b"".join(produce_v13_request(i, -1, b"r" * 50) for i in (1, 2, 3))
    reqs += produce_v13_request(4, 0, b"q" * 20)  # acks=0: no answer to expect
    w.requests.feed(reqs)
    assert w.to_broker == [reqs]
    assert [c for c, *_ in w.state.in_flight] == [1, 2, 3]
    plain1, plain3 = produce_v13_response(1, None), produce_v13_response(3, None)
    moved = produce_v13_response(2, [(2, "10.0.0.2", 9092)])
    w.responses.feed(plain1 + moved + plain3)
    out = b"".join(w.to_client)
    assert out.startswith(plain1) and out.endswith(plain3)
    assert b"10.0.0.2" not in out
    decoded = codec.decode_all(PRODUCE_RESPONSE, 13, out[len(plain1) + 9:-len(plain3)])
    assert decoded["NodeEndpoints"][0]["Host"] == "edge-2.example"
    assert decoded["NodeEndpoints"][0]["Port"] == 9002
    assert w.responses.rewritten == {0: 1}
    assert not w.state.in_flight


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3_000), max_size=12))
def test_streams_fed_views_of_a_reused_buffer_keep_nothing_of_it(cuts: list[int]) -> None:
    """The relay feeds views of one read buffer that the next read overwrites: whatever a
    stream keeps across reads (a split header, a response being collected) must be a copy."""
    w = Wire()
    buf = bytearray(8192)

    def feed(stream: RequestStream | ResponseStream, part: bytes) -> None:
        buf[:len(part)] = part
        stream.feed(memoryview(buf)[:len(part)])
        buf[:] = b"\xa5" * len(buf)  # the next read lands here

    reqs = (request(3, 1, 1, struct.pack(">i", 0)) + produce_v13_request(2, -1, b"p" * 90)
            + request(2, 5, 3, b"z" * 40))
    for part in chunks(reqs, cuts):
        feed(w.requests, part)
    assert b"".join(w.to_broker) == reqs
    meta = metadata_v1_response(1, [(1, "10.0.0.1", 9092)])
    resps = meta + produce_v13_response(2, [(1, "10.0.0.1", 9092)]) + response(3, b"k" * 300)
    for part in chunks(resps, cuts):
        feed(w.responses, part)
    out = b"".join(w.to_client)
    assert b"10.0.0.1" not in out and b"\xa5" not in out
    assert out.endswith(response(3, b"k" * 300))
    assert w.responses.rewritten == {3: 1, 0: 1}
    assert not w.state.in_flight


# -- Fetch v16+: streamed through, NodeEndpoints rewritten in place -----------------------------


def fetch_v17_response(corr: int, records: bytes, endpoints: list[tuple[int, str, int]] | None
                       ) -> bytes:
    value: dict[str, Any] = {
        "ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 3,
        "Responses": [{"TopicId": uuid.UUID(int=5), "Partitions": [
            {"PartitionIndex": i, "ErrorCode": 0, "HighWatermark": 9, "LastStableOffset": 9,
             "LogStartOffset": 0, "AbortedTransactions": None, "PreferredReadReplica": -1,
             "Records": records} for i in range(2)]}],
    }
    if endpoints is not None:
        value["NodeEndpoints"] = [{"NodeId": n, "Host": h, "Port": p, "Rack": None}
                                  for n, h, p in endpoints]
    return response(corr, b"\x00" + codec.encode(FETCH_RESPONSE, 17, value))


def split_frames(data: bytes) -> list[bytes]:
    frames, pos = [], 0
    while pos < len(data):
        size = struct.unpack_from(">i", data, pos)[0]
        frames.append(data[pos:pos + 4 + size])
        pos += 4 + size
    assert pos == len(data)  # every size prefix matches what follows it
    return frames


def test_fetch_v17_streams_through_as_it_arrives() -> None:
    """A Fetch answer that can carry NodeEndpoints is not held back until complete."""
    w = Wire()
    w.requests.feed(request(1, 17, 1, b"\x00"))
    answer = fetch_v17_response(1, b"r" * 10_000, None)
    w.to_client.clear()
    for i in range(0, len(answer), 1000):
        w.responses.feed(answer[i:i + 1000])
    assert len(w.to_client) >= 10  # forwarded read by read
    assert b"".join(w.to_client) == answer
    assert not w.state.in_flight


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=25_000), max_size=12))
def test_fetch_v17_node_endpoints_rewritten_in_place_under_any_chunking(cuts: list[int]
                                                                        ) -> None:
    w = Wire()
    w.requests.feed(request(1, 17, 1, b"\x00") + request(1, 17, 2, b"\x00")
                    + request(2, 5, 3))
    upstream = "b-2.kafka-cluster-a1b2c3.internal.private"  # longer than edge-2.example
    moved = fetch_v17_response(1, b"m" * 5_000, [(2, upstream, 9094)])
    too_long = fetch_v17_response(2, b"t" * 5_000, [(2, "b2", 9094)])  # edge name won't fit
    stream = moved + too_long + response(3, b"z" * 100)
    for part in chunks(stream, cuts):
        w.responses.feed(part)
    out = b"".join(w.to_client)
    assert upstream.encode() not in out and b"b2" not in out
    first, second, third = split_frames(out)  # every size prefix still true
    got = codec.decode_all(FETCH_RESPONSE, 17, first[9:])
    assert [(e["NodeId"], e["Host"], e["Port"]) for e in got["NodeEndpoints"]] == [
        (2, "edge-2.example", 9002)]
    assert [p["Records"] for p in got["Responses"][0]["Partitions"]] == [b"m" * 5_000] * 2
    # An answer that arrived whole is rewritten whole (its size prefix too); one that streamed
    # through keeps its length, so a longer name cannot go in and NodeEndpoints are left out.
    second_value = codec.decode_all(FETCH_RESPONSE, 17, second[9:])
    if "NodeEndpoints" in second_value:
        assert second_value["NodeEndpoints"][0]["Host"] == "edge-2.example"
        assert w.responses.endpoints_dropped == 0
    else:
        assert len(second) == len(too_long)
        assert w.responses.endpoints_dropped == 1
    assert third == response(3, b"z" * 100)
    assert w.responses.rewritten == {1: 2}
    assert not w.state.in_flight


def test_fetch_v17_split_answer_with_longer_edge_names_drops_node_endpoints() -> None:
    w = Wire()
    w.requests.feed(request(1, 17, 1, b"\x00"))
    answer = fetch_v17_response(1, b"t" * 5_000, [(2, "b2", 9094)])
    w.responses.feed(answer[:3000])
    w.responses.feed(answer[3000:])
    out = b"".join(w.to_client)
    assert len(out) == len(answer) and b"b2" not in out
    assert "NodeEndpoints" not in codec.decode_all(FETCH_RESPONSE, 17, out[9:])
    assert w.responses.endpoints_dropped == 1


# -- draining: requests stop at the next frame boundary ------------------------------------------

def test_draining_finishes_the_request_being_forwarded_then_stops() -> None:
    w = Wire()
    big = request(0, 3, 1, produce_body(1) + b"r" * 5000)
    w.requests.feed(big[:1000])
    assert not w.requests.feed_to_boundary(big[1000:3000])
    assert w.requests.feed_to_boundary(big[3000:] + request(3, 1, 2, struct.pack(">i", 0)))
    assert b"".join(w.to_broker) == big  # the next request never reaches the broker
    assert [c for c, *_ in w.state.in_flight] == [1]
    assert w.requests.feed_to_boundary(request(3, 1, 3))
    assert b"".join(w.to_broker) == big


def test_draining_drops_a_header_that_was_not_forwarded() -> None:
    w = Wire()
    w.requests.feed(request(3, 1, 1, struct.pack(">i", 0))[:7])
    assert w.requests.mid_frame()
    assert w.requests.feed_to_boundary(b"")
    assert w.to_broker == [] and not w.requests.mid_frame()
