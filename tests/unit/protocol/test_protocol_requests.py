"""Request-side peeks: request_header, produce_acks, and the SaslHandshake v0 check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_kafka_python import ProduceRequest

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.peeks import (
    produce_acks,
    produce_acks_fast,
    request_header,
    sasl_handshake_v0_succeeded,
)
from kafka_edge.protocol.primitives import INT16, INT32, write_tagged_section

# -- request_header ---------------------------------------------------------------------------


def test_request_header() -> None:
    assert request_header(bytes.fromhex("0003000c7fffffff")) == (3, 12, 2**31 - 1)
    assert request_header(memoryview(bytes.fromhex("00120003fffffffe0000"))) == (18, 3, -2)
    with pytest.raises(ProtocolError, match="shorter than a request header"):
        request_header(b"\x00\x03\x00\x0c\x00\x00\x00")


# -- produce_acks ---------------------------------------------------------------------------


def kafka_python_produce(version: int, transactional_id: str | None, acks: int,
                         client_id: str | None) -> bytes:
    request = ProduceRequest(version=version, transactional_id=transactional_id, acks=acks,
                             timeout_ms=30000, topic_data=[])
    request.with_header(correlation_id=11, client_id=client_id)
    data: bytes = request.encode(header=True)
    return data


@settings(max_examples=150, deadline=None)
@given(version=st.integers(0, 13), acks=st.sampled_from([-1, 0, 1]),
       transactional_id=st.none() | st.text(max_size=300),
       client_id=st.none() | st.text(max_size=40))
def test_produce_acks_on_every_prefix(version: int, acks: int, transactional_id: str | None,
                                      client_id: str | None) -> None:
    frame = kafka_python_produce(version, transactional_id if version >= 3 else None, acks,
                                 client_id)
    assert produce_acks(frame, version) == acks
    answers = [produce_acks(memoryview(frame)[:n], version) for n in range(len(frame))]
    known = [a for a in answers if a is not None]
    first = answers.index(acks) if known else len(frame)
    assert all(a is None for a in answers[:first])
    assert all(a == acks for a in answers[first:])
    assert first <= len(frame) - 4  # acks is followed by timeout_ms at least


@settings(max_examples=150, deadline=None)
@given(version=st.integers(0, 13), acks=st.sampled_from([-1, 0, 1]),
       transactional_id=st.none() | st.text(max_size=200),
       client_id=st.none() | st.text(max_size=40), offset=st.integers(0, 5))
def test_produce_acks_fast_agrees_with_the_general_peek(version: int, acks: int,
                                                        transactional_id: str | None,
                                                        client_id: str | None,
                                                        offset: int) -> None:
    payload = kafka_python_produce(version, transactional_id if version >= 3 else None, acks,
                                   client_id)
    frame = b"\xee" * offset + INT32.pack(len(payload)) + payload
    whole = produce_acks_fast(frame, offset, len(frame), version)
    common = (version >= 9 and client_id is not None
              and len((transactional_id or "").encode()) < 127)
    assert whole == (acks if common else None)
    for n in range(offset, len(frame)):  # any prefix: the right answer or "ask the general peek"
        assert produce_acks_fast(frame, offset, n, version) in (None, acks)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100), st.integers(0, 13))
def test_produce_acks_fast_never_raises_on_random_bytes(data: bytes, version: int) -> None:
    got = produce_acks_fast(data, 0, len(data), version)
    assert got is None or -32768 <= got < 32768


def test_produce_acks_with_header_tags() -> None:
    header = bytearray(INT16.pack(0) + INT16.pack(11) + INT32.pack(1) + INT16.pack(3) + b"cli")
    write_tagged_section(header, [(0, b"x" * 200), (7, b"")])
    frame = bytes(header) + b"\x00" + INT16.pack(1) + INT32.pack(1000) + b"\x01\x00"
    assert produce_acks(frame, 11) == 1
    assert produce_acks(frame[:len(header) - 1], 11) is None
    assert produce_acks(frame[:len(header) + 2], 11) is None


@pytest.mark.parametrize(("frame", "version", "message"), [
    (bytes.fromhex("00000003 00000001 fffe"), 3, "invalid client_id length -2"),
    (bytes.fromhex("00000003 00000001 ffff fff0 0001"), 3, "invalid transactional_id length"),
    (bytes.fromhex("00000009 00000001 ffff 80808080 80"), 9, "longer than 5 bytes"),
])
def test_produce_acks_malformed(frame: bytes, version: int, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        produce_acks(frame, version)


# -- SaslHandshake v0 ---------------------------------------------------------------------------


def test_sasl_handshake_v0_succeeded() -> None:
    mechanisms = INT32.pack(1) + INT16.pack(5) + b"PLAIN"
    assert sasl_handshake_v0_succeeded(INT32.pack(2) + INT16.pack(0) + mechanisms)
    assert not sasl_handshake_v0_succeeded(INT32.pack(2) + INT16.pack(33) + mechanisms)
    assert sasl_handshake_v0_succeeded(memoryview(INT32.pack(2) + INT16.pack(0)))
    with pytest.raises(ProtocolError, match="too short"):
        sasl_handshake_v0_succeeded(b"\x00\x00\x00\x02\x00")
