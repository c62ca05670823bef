"""The SaslHandshake v0 exchange tracker: each mechanism's rounds, lock-step, refusal."""

from __future__ import annotations

import struct

import pytest

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.sasl_v0 import (
    CLIENT,
    DONE,
    FAILED,
    SaslV0Exchange,
    handshake_mechanism,
    handshake_refusal,
    v0_mechanism_followable,
)


def started(mechanism: str) -> SaslV0Exchange:
    x = SaslV0Exchange(mechanism)
    x.handshake_answered(True)
    return x


@pytest.mark.parametrize(("mechanism", "broker_tokens"), [
    ("PLAIN", [0]),
    ("SCRAM-SHA-256", [90, 40]),
    ("SCRAM-SHA-512", [120, 90]),
    ("OAUTHBEARER", [0]),
])
def test_successful_exchanges_end_after_the_mechanisms_rounds(mechanism: str,
                                                               broker_tokens: list[int]) -> None:
    x = started(mechanism)
    for i, size in enumerate(broker_tokens):
        assert x.raw and x.phase == CLIENT
        x.client_token(30)
        with pytest.raises(ProtocolError, match="lock-step"):
            SaslV0Exchange.client_token(_copy(x), 30)  # a second token before the broker's
        x.broker_token(size)
        assert x.done == (i == len(broker_tokens) - 1)
    assert not x.raw


def _copy(x: SaslV0Exchange) -> SaslV0Exchange:
    y = SaslV0Exchange(x.mechanism)
    y.phase = x.phase
    return y


def test_oauthbearer_failure_takes_the_clients_acknowledgement_then_nothing() -> None:
    x = started("OAUTHBEARER")
    x.client_token(500)
    x.broker_token(60)  # {"status":"invalid_token"}: not empty
    assert x.phase == CLIENT
    x.client_token(1)  # the client's 0x01
    assert x.phase == FAILED and x.raw
    with pytest.raises(ProtocolError):
        x.broker_token(0)
    with pytest.raises(ProtocolError):
        x.client_token(12)


def test_broker_token_nobody_asked_for_is_refused() -> None:
    x = started("SCRAM-SHA-512")
    with pytest.raises(ProtocolError, match="broker: a frame of 4 bytes"):
        x.broker_token(4)


def test_no_frame_before_the_handshake_answer() -> None:
    x = SaslV0Exchange("PLAIN")
    assert not x.raw
    with pytest.raises(ProtocolError):
        x.client_token(10)
    x.handshake_answered(True)
    with pytest.raises(ProtocolError, match="second SaslHandshake"):
        x.handshake_answered(True)


def test_refused_handshake_ends_the_exchange() -> None:
    x = SaslV0Exchange("PLAIN")
    x.handshake_answered(False)
    assert x.phase == DONE


@pytest.mark.parametrize("mechanism", ["GSSAPI", "AWS_MSK_IAM", "plain", "SCRAM-SHA-1", ""])
def test_unfollowable_mechanisms_fail_after_a_successful_handshake(mechanism: str) -> None:
    assert not v0_mechanism_followable(mechanism)
    x = started(mechanism)
    assert x.phase == FAILED
    with pytest.raises(ProtocolError):
        x.client_token(10)
    with pytest.raises(ProtocolError):
        x.broker_token(10)


def _handshake_request(mechanism: bytes, client_id: bytes | None = b"c") -> bytes:
    cid = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + \
        client_id
    return struct.pack(">hhi", 17, 0, 9) + cid + struct.pack(">h", len(mechanism)) + mechanism


def test_handshake_mechanism() -> None:
    assert handshake_mechanism(_handshake_request(b"SCRAM-SHA-512")) == "SCRAM-SHA-512"
    assert handshake_mechanism(_handshake_request(b"PLAIN", None)) == "PLAIN"
    assert handshake_mechanism(_handshake_request(b"PLAIN", b"\xff\xfe")) == "PLAIN"
    assert handshake_mechanism(_handshake_request(b"PL\xc3\x84IN")) == "PL\\xc3\\x84IN"
    with pytest.raises(ProtocolError, match="unexpected bytes"):
        handshake_mechanism(_handshake_request(b"PLAIN") + b"x")
    with pytest.raises(ProtocolError):
        handshake_mechanism(_handshake_request(b"PLAIN")[:-1])
    with pytest.raises(ProtocolError):
        handshake_mechanism(struct.pack(">hhi", 17, 0, 9))


def test_handshake_refusal_keeps_the_followable_mechanisms() -> None:
    names = [b"GSSAPI", b"PLAIN", b"SCRAM-SHA-512"]
    body = struct.pack(">ihi", 9, 0, len(names)) + b"".join(
        struct.pack(">h", len(n)) + n for n in names)
    frame = handshake_refusal(body)
    assert struct.unpack_from(">iihi", frame) == (len(frame) - 4, 9, 33, 2)
    assert frame[14:] == b"\x00\x05PLAIN\x00\x0dSCRAM-SHA-512"
    with pytest.raises(ProtocolError):
        handshake_refusal(body[:12])
