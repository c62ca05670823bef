"""Fuzz target: answers pair with the requests they answer, or the connection closes.

The fuzzer's bytes become a client's traffic (requests of several kinds, SASL v0 handshakes and
raw tokens, junk) cut at fuzzer-chosen places; the model broker of the unit tests
(tests/unit/relay/test_stream_pairing.py: Kafka's framing from the broker's side, its SASL
servers' lock-step) answers what reaches it; the proxy's two streams sit between. Unless the
proxy closed the connection, every answer it paired went with the request the broker answered.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.request_stream import RequestStream
from kafka_edge.protocol.response_stream import ResponseStream

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit" / "relay"))
from test_stream_pairing import (
    MAX,
    MECHS,
    ModelBroker,
    Recording,
    Wire,
    frame,
    handshake,
    request,
)

TOKENS = (b"", b"bad", b"\x01", b"n,,n=a,r=b", b"\0a\0b", b"c=biws,r=b,p=x")
CLIENT_IDS = (b"c", b"\xff\xfe", b"", None)


def _step(data: bytes, i: int) -> tuple[bytes, int]:
    """One client frame from ``data[i:]`` (an opcode and two parameter bytes)."""
    op, a, b = data[i] % 6, data[i + 1], data[i + 2]
    corr = a % 6 + 1
    if op == 0:
        return request((2, 8, 9, 12, 14)[b % 5], 0, corr, b"xyz", CLIENT_IDS[b % 4]), i + 3
    if op == 1:
        acks = (0, 1, -1)[b % 3]
        return request(0, 3, corr, struct.pack(">hhii", -1, acks, 1000, 0)), i + 3
    if op == 2:
        return handshake(corr, MECHS[b % len(MECHS)], (0, 0, 1)[b % 3]), i + 3
    if op == 3:
        return frame(TOKENS[b % len(TOKENS)]), i + 3
    if op == 4:
        return bytes(data[i + 3:i + 3 + a % 12]), i + 3 + a % 12  # junk
    return request(18, b % 5, corr, b"\x00\x00\x00"), i + 3


def pairing(data: bytes) -> None:
    state = Recording()
    to_broker, to_client = bytearray(), bytearray()
    requests = RequestStream(state, to_broker.extend, to_client.extend, MAX)
    responses = ResponseStream(state, to_client.extend, Wire._edge, MAX)
    broker = ModelBroker()
    fed = sent = 0
    i = 0
    try:
        while i + 3 <= len(data) and not broker.closed:
            cut = data[i] >> 3  # where this frame is split, from the opcode byte's high bits
            answer_now = data[i + 2] & 1
            chunk, i = _step(data, i)
            requests.feed(chunk[:cut])
            requests.feed(chunk[cut:])
            if answer_now:  # the broker answers now (in pieces of 7 bytes)
                broker.feed(bytes(to_broker[fed:]))
                fed = len(to_broker)
                answers = bytes(broker.out[sent:])
                sent = len(broker.out)
                for k in range(0, len(answers), 7):
                    responses.feed(answers[k:k + 7])
    except ProtocolError:
        return  # the proxy closed the connection: nothing more is paired
    assert state.paired == broker.truth[:len(state.paired)], (state.paired, broker.truth)
