"""Request-side peeks: request_header, produce_acks, is_plausible_request_header and the
SaslHandshake v0 check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_kafka_python import MetadataRequest, ProduceRequest

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS
from kafka_edge.protocol.primitives import INT16, INT32, write_tagged_section
from kafka_edge.protocol.rewrite import (
    ADVERTISED_MIN_VERSION,
    is_plausible_request_header,
    produce_acks,
    produce_acks_fast,
    request_header,
    sasl_handshake_v0_succeeded,
)

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


# -- is_plausible_request_header ----------------------------------------------------------------


def request_prefix(api_key: int, version: int, correlation_id: int, client_id: bytes | None,
                   tags: dict[int, bytes]) -> bytes:
    out = bytearray(INT16.pack(api_key) + INT16.pack(version) + INT32.pack(correlation_id))
    out += INT16.pack(-1) if client_id is None else INT16.pack(len(client_id)) + client_id
    spec = API_KEYS[api_key]
    if spec.request_flexible_from is not None and version >= spec.request_flexible_from:
        write_tagged_section(out, tags.items())
    return bytes(out)


@st.composite
def real_request_headers(draw: st.DrawFn) -> bytes:
    spec = draw(st.sampled_from(list(API_KEYS.values())))
    low = ADVERTISED_MIN_VERSION.get(spec.key, spec.min_version)
    version = draw(st.integers(low, spec.max_version))
    client_id = draw(st.none() | st.text(max_size=30).map(str.encode))
    tags = draw(st.dictionaries(st.integers(0, 10), st.binary(max_size=5), max_size=2))
    body = draw(st.binary(max_size=30))
    return request_prefix(spec.key, version, draw(st.integers(-(2**31), 2**31 - 1)),
                          client_id, tags) + body


@settings(max_examples=200, deadline=None)
@given(real_request_headers())
def test_real_request_headers_are_plausible(frame: bytes) -> None:
    assert is_plausible_request_header(frame)


def test_kafka_python_requests_are_plausible() -> None:
    metadata = MetadataRequest(version=12, topics=None, allow_auto_topic_creation=True,
                               include_topic_authorized_operations=False)
    metadata.with_header(correlation_id=5, client_id="consumer-group-1")
    assert is_plausible_request_header(metadata.encode(header=True))
    for version in (3, 9, 13):
        assert is_plausible_request_header(kafka_python_produce(version, None, 1, "rdkafka"))


SASL_TOKENS = [
    b"",
    b"\x00",
    b"\x00Alice\x00secret",  # PLAIN, user names starting with a capital letter...
    b"\x00A\x00password",
    b"\x00Bob\x00hunter2hunter2",
    b"\x00Zed\x00Pa55word!",
    b"\x00DescribeTransactions\x00x",  # 'D' = 0x44 = ConsumerGroupHeartbeat (68)
    b"admin\x00Alice\x00secret",  # PLAIN with an authorization id
    b"\x00alice\x00secret",
    b"n,,n=Alice,r=fyko+d2lbbFgONRv9qkxdawL",  # SCRAM client-first
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    b"n,a=Alice,n=Alice,r=abcdef",
    b"n,,\x01auth=Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln\x01\x01",  # OAUTHBEARER
    b"\x01auth=Bearer eyJ\x01\x01",
    bytes.fromhex("6082024a06092a864886f71201020201006e82023930820235a003020105a10302010ea2"),
    bytes.fromhex("050401ff000c000000000000000000011234567890abcdef"),  # GSSAPI wrap (RFC 4121)
    bytes.fromhex("0404050400000000000000000000000000000000"),  # GSSAPI MIC
    bytes.fromhex("020100000000ffffffff0000000000000000"),  # GSSAPI wrap (RFC 1964)
    b'{"version":"2020_10_22","host":"b-1.example.com","user-agent":"aws-msk-iam-sasl-signer"}',
]


@pytest.mark.parametrize("token", SASL_TOKENS)
def test_raw_sasl_tokens_are_not_request_headers(token: bytes) -> None:
    assert not is_plausible_request_header(token)


printable = st.characters(min_codepoint=0x20, exclude_characters="\x7f", codec="utf-8")


@settings(max_examples=200, deadline=None)
@given(user=st.text(printable, min_size=1, max_size=20),
       password=st.text(printable, min_size=1, max_size=30),
       authzid=st.sampled_from(["", "admin"]))
def test_plain_tokens_are_never_request_headers(user: str, password: str, authzid: str) -> None:
    token = f"{authzid}\0{user}\0{password}".encode()
    assert not is_plausible_request_header(token)


@settings(max_examples=100, deadline=None)
@given(user=st.text(printable, min_size=1, max_size=20), nonce=st.text(printable, max_size=40))
def test_scram_tokens_are_never_request_headers(user: str, nonce: str) -> None:
    assert not is_plausible_request_header(f"n,,n={user},r={nonce}".encode())


def test_implausible_headers() -> None:
    ok = request_prefix(3, 12, 1, b"client", {})
    assert is_plausible_request_header(ok)
    assert not is_plausible_request_header(ok[:9])  # no room for client_id length
    assert not is_plausible_request_header(ok[:-2])  # client_id cut short / no tagged section
    assert not is_plausible_request_header(request_prefix(3, 14, 1, b"c", {}))  # version > max
    assert not is_plausible_request_header(request_prefix(0, 14, 1, b"c", {}))
    assert is_plausible_request_header(request_prefix(0, 0, 1, b"c", {}))  # advertised v0
    assert not is_plausible_request_header(request_prefix(1, 3, 1, b"c", {}))  # Fetch < 4
    assert not is_plausible_request_header(bytes.fromhex("0043 0000 00000001 0000"))  # 67 ctrl
    assert not is_plausible_request_header(bytes.fromhex("0003 0001 00000001 fffe"))
    assert not is_plausible_request_header(bytes.fromhex("0003 0001 00000001 0002 ff41"))
    assert not is_plausible_request_header(bytes.fromhex("0003 000c 00000001 0000 8080808080"))
    assert not is_plausible_request_header(bytes.fromhex("ffff 0000 00000001 0000"))


# -- SaslHandshake v0 ---------------------------------------------------------------------------


def test_sasl_handshake_v0_succeeded() -> None:
    mechanisms = INT32.pack(1) + INT16.pack(5) + b"PLAIN"
    assert sasl_handshake_v0_succeeded(INT32.pack(2) + INT16.pack(0) + mechanisms)
    assert not sasl_handshake_v0_succeeded(INT32.pack(2) + INT16.pack(33) + mechanisms)
    assert sasl_handshake_v0_succeeded(memoryview(INT32.pack(2) + INT16.pack(0)))
    with pytest.raises(ProtocolError, match="too short"):
        sasl_handshake_v0_succeeded(b"\x00\x00\x00\x02\x00")
