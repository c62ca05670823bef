"""Malformed input: random and mutated bytes never raise anything but ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_strategies import all_cases, message_values

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import MAX_PARSED_VERSION, REWRITTEN_APIS, rewrite_response
from kafka_edge.protocol.api_versions import rewrite_api_versions
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import RESPONSES
from kafka_edge.protocol.peeks import produce_acks, request_header, sasl_handshake_v0_succeeded

CASES = all_cases(RESPONSES)
REWRITE_CASES = [(key, v) for key in sorted(REWRITTEN_APIS)
                 for v in range(MAX_PARSED_VERSION[key] + 1)]
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mapper(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
    return f"edge-{node_id}.example", 9092


# Mostly small numbers and 0x00/0xff: lengths, counts and null markers that go somewhere.
fuzz_bytes = st.lists(st.one_of(st.integers(0, 4), st.sampled_from([0x7F, 0x80, 0xFF]),
                                st.integers(0, 255)), max_size=120).map(bytes)


@FUZZ
@given(case=st.sampled_from(REWRITE_CASES), payload=st.one_of(fuzz_bytes, st.binary()))
def test_rewrite_response_random_bytes(case: tuple[int, int], payload: bytes) -> None:
    api_key, version = case
    try:
        out = rewrite_response(api_key, version, payload, mapper)
    except ProtocolError:
        return
    assert out is None or isinstance(out, bytes)


@FUZZ
@given(version=st.integers(-1, 7), payload=st.one_of(fuzz_bytes, st.binary()))
def test_rewrite_api_versions_random_bytes(version: int, payload: bytes) -> None:
    try:
        out = rewrite_api_versions(version, payload)
    except ProtocolError:
        return
    assert isinstance(out, bytes)


@FUZZ
@given(case=st.sampled_from(CASES), payload=st.one_of(fuzz_bytes, st.binary()))
def test_decode_random_bytes(case: tuple[object, int], payload: bytes) -> None:
    message, version = case
    for action in (codec.decode, codec.skip, codec.spans):
        with contextlib.suppress(ProtocolError):
            action(message, version, payload)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_responses(data: st.DataObject) -> None:
    """Flip, drop or insert bytes in a valid response, then decode and rewrite it."""
    message, version = data.draw(st.sampled_from(CASES), label="case")
    value = data.draw(message_values(message, version, max_list=2), label="value")
    body = bytearray(codec.encode(message, version, value))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        at = data.draw(st.integers(0, len(body)), label="at")
        kind = data.draw(st.sampled_from(["flip", "drop", "insert"]), label="kind")
        if kind == "flip" and at < len(body):
            body[at] ^= data.draw(st.integers(1, 255), label="bits")
        elif kind == "drop" and at < len(body):
            del body[at]
        else:
            body.insert(at, data.draw(st.integers(0, 255), label="byte"))
    with contextlib.suppress(ProtocolError):
        codec.decode(message, version, body)
    header = b"\x00\x00\x00\x01" + (b"\x00" if message.is_flexible(version) else b"")
    try:
        if message.api_key == 18:
            rewrite_api_versions(version, b"\x00\x00\x00\x01" + body)
        elif message.api_key in REWRITTEN_APIS:
            rewrite_response(message.api_key, version, header + body, mapper)
    except ProtocolError:
        pass


@FUZZ
@given(payload=st.one_of(fuzz_bytes, st.binary(max_size=64)), version=st.integers(-1, 14))
def test_request_peeks_random_bytes(payload: bytes, version: int) -> None:
    try:
        acks = produce_acks(payload, version)
    except ProtocolError:
        pass
    else:
        assert acks is None or -(2**15) <= acks < 2**15
    if len(payload) >= 8:
        assert len(request_header(payload)) == 3
    else:
        with pytest.raises(ProtocolError):
            request_header(payload)
    try:
        assert isinstance(sasl_handshake_v0_succeeded(payload), bool)
    except ProtocolError:
        assert len(payload) < 6
