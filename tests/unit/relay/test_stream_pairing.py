"""Answers pair with the requests they answer, or the connection closes: transcripts of the
SaslHandshake v0 desynchronisation class and its variants, and a property test that drives the
request and response streams against a model of a Kafka broker's framing."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.request_stream import RequestStream
from kafka_edge.protocol.response_stream import ResponseStream
from kafka_edge.protocol.stream import ConnectionState

MAX = 1 << 20
SENTINEL = ("127.0.0.77", 4444)
UPSTREAM = "10.0.0.5"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request(api_key: int, version: int, corr: int, body: bytes = b"",
            client_id: bytes | None = b"t") -> bytes:
    cid = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + \
        client_id
    return frame(struct.pack(">hhi", api_key, version, corr) + cid + body)


def string(value: bytes) -> bytes:
    return struct.pack(">h", len(value)) + value


def handshake(corr: int, mechanism: bytes, version: int = 0) -> bytes:
    return request(17, version, corr, string(mechanism))


def handshake_ok(corr: int, mechanisms: tuple[bytes, ...] = (b"PLAIN", b"SCRAM-SHA-512",
                                                              b"OAUTHBEARER", b"GSSAPI")) -> bytes:
    return frame(struct.pack(">ihi", corr, 0, len(mechanisms)) +
                 b"".join(string(m) for m in mechanisms))


def metadata_v1_answer(corr: int, brokers: list[tuple[int, str, int]]) -> bytes:
    body = struct.pack(">i", len(brokers))
    for node, host, port in brokers:
        body += struct.pack(">i", node) + string(host.encode()) + struct.pack(">ih", port, -1)
    return frame(struct.pack(">i", corr) + body + struct.pack(">ii", 1, 0))


class Wire:
    """Both streams of one connection, with everything they send recorded."""

    def __init__(self) -> None:
        self.state = ConnectionState()
        self.to_broker = bytearray()
        self.to_client = bytearray()
        self.learned: list[tuple[int, str, int]] = []
        self.requests = RequestStream(self.state, self.to_broker.extend, self.to_client.extend,
                                      MAX)
        self.responses = ResponseStream(self.state, self.to_client.extend, self._edge, MAX,
                                        learn=self._learn)

    @staticmethod
    def _edge(node: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
        return f"b-{node}.edge.example", 9098

    def _learn(self, entries: list[tuple[int, str, int]], source: str) -> None:
        self.learned += entries

    def login_plain(self) -> None:
        self.requests.feed(handshake(1, b"PLAIN"))
        self.responses.feed(handshake_ok(1))
        self.requests.feed(frame(b"\0alice\0secret"))
        self.responses.feed(frame(b""))
        assert self.state.sasl_v0 is None

    def login_scram(self) -> None:
        self.requests.feed(handshake(1, b"SCRAM-SHA-512"))
        self.responses.feed(handshake_ok(1))
        self.requests.feed(frame(b"n,,n=alice,r=abc"))
        self.responses.feed(frame(b"r=abcdef,s=c2FsdA==,i=4096"))
        self.requests.feed(frame(b"c=biws,r=abcdef,p=cHJvb2Y="))
        self.responses.feed(frame(b"v=c2lnbmF0dXJl"))
        assert self.state.sasl_v0 is None


# The attack: an answer carrying client-chosen bytes (here a SyncGroup v0 answer: error code and
# the assignment the group leader wrote) followed by an address-bearing request with the same
# correlation id. If the proxy took the second request's answer key for the first answer, the
# chosen bytes would be parsed as a Metadata v1 answer naming the sentinel.
CHOSEN = metadata_v1_answer(7, [(1, *SENTINEL), (99, *SENTINEL)])[8:]


def syncgroup_request(corr: int, client_id: bytes) -> bytes:
    body = string(b"g") + struct.pack(">i", 1) + string(b"m") + struct.pack(">i", 1) + \
        string(b"m") + struct.pack(">i", len(CHOSEN)) + CHOSEN
    return request(14, 0, corr, body, client_id)


def syncgroup_answer(corr: int) -> bytes:
    return frame(struct.pack(">ih", corr, 0) + struct.pack(">i", len(CHOSEN)) + CHOSEN)


LOGINS = ["login_plain", "login_scram"]
BAD_CLIENT_IDS = [b"\xff\xfe", b"\x80", b"ok", None]


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("client_id", BAD_CLIENT_IDS)
@pytest.mark.parametrize("second", [
    request(3, 1, 7, struct.pack(">i", 0)),  # Metadata v1
    request(10, 0, 7, string(b"g")),  # FindCoordinator v0
    request(60, 0, 7, b"\x00\x00"),  # DescribeCluster v0 (flexible; body irrelevant here)
])
@pytest.mark.parametrize("split", [False, True])
def test_reused_correlation_id_closes_the_connection(login: str, client_id: bytes | None,
                                                     second: bytes, split: bool) -> None:
    w = Wire()
    getattr(w, login)()
    first = syncgroup_request(7, client_id) if client_id is not None else \
        syncgroup_request(7, b"x")
    with pytest.raises(ProtocolError, match="correlation id 7 reused"):
        if split:
            w.requests.feed(first)
            w.requests.feed(second)
        else:
            w.requests.feed(first + second)
    assert [c for c, *_ in w.state.in_flight] == [7]  # only the first was tracked


@pytest.mark.parametrize("login", LOGINS)
def test_unrecognisable_client_id_is_still_a_tracked_request(login: str) -> None:
    w = Wire()
    getattr(w, login)()
    w.requests.feed(syncgroup_request(7, b"\xff\xfe\x00\x01"))
    w.requests.feed(request(3, 1, 8, struct.pack(">i", 0), client_id=b"\xc3"))
    assert [(c, k) for c, k, *_ in w.state.in_flight] == [(7, 14), (8, 3)]
    w.responses.feed(syncgroup_answer(7))  # passes through as the SyncGroup answer it is
    w.responses.feed(metadata_v1_answer(8, [(1, UPSTREAM, 9096)]))
    out = bytes(w.to_client)
    assert out.endswith(metadata_v1_answer(8, [(1, "b-1.edge.example", 9098)]))
    assert UPSTREAM.encode() not in out
    assert w.learned == [(1, UPSTREAM, 9096)]  # from the real Metadata answer only


def test_answer_with_the_wrong_correlation_id_closes() -> None:
    w = Wire()
    w.requests.feed(request(14, 0, 7) + request(3, 1, 8, struct.pack(">i", 0)))
    with pytest.raises(ProtocolError, match="expected 7"):
        w.responses.feed(metadata_v1_answer(8, [(1, *SENTINEL)]))
    assert w.learned == []


def test_pipelined_behind_other_requests() -> None:
    w = Wire()
    w.login_plain()
    w.requests.feed(request(18, 3, 2, b"\x00\x00\x00") + request(14, 0, 3))
    with pytest.raises(ProtocolError, match="reused"):
        w.requests.feed(syncgroup_request(9, b"\xff") + request(12, 0, 4) +
                        request(3, 1, 9, struct.pack(">i", 0)))


def test_request_frame_where_a_scram_token_is_expected_is_a_token() -> None:
    # a Metadata request sent as the client-final: the broker treats it as a token, so does
    # the proxy (nothing tracked); the broker then fails the login and closes
    w = Wire()
    w.requests.feed(handshake(1, b"SCRAM-SHA-512"))
    w.responses.feed(handshake_ok(1))
    w.requests.feed(frame(b"n,,n=alice,r=abc"))
    w.responses.feed(frame(b"r=abcdef,s=c2FsdA==,i=4096"))
    w.requests.feed(request(3, 1, 7, struct.pack(">i", 0)))
    assert not w.state.in_flight
    # the broker's token (if it answered at all) is a token, never an answer to "request 7"
    w.responses.feed(metadata_v1_answer(7, [(1, *SENTINEL)]))
    assert w.learned == [] and w.state.sasl_v0 is None


@pytest.mark.parametrize("extra", [
    frame(b"c=biws,r=abcdef,p=cHJvb2Y="),  # a token before the broker's
    request(3, 1, 7, struct.pack(">i", 0)),  # a request before the broker's token
])
def test_client_frames_while_the_brokers_token_is_awaited_close(extra: bytes) -> None:
    w = Wire()
    w.requests.feed(handshake(1, b"SCRAM-SHA-512"))
    w.responses.feed(handshake_ok(1))
    with pytest.raises(ProtocolError, match="lock-step"):
        w.requests.feed(frame(b"n,,n=alice,r=abc") + extra)


def test_frames_pipelined_behind_the_handshake_request_close() -> None:
    w = Wire()
    with pytest.raises(ProtocolError, match="before the answer to its SaslHandshake v0"):
        w.requests.feed(handshake(1, b"PLAIN") + frame(b"\0alice\0secret"))


def test_unsolicited_broker_frame_in_the_raw_phase_closes() -> None:
    w = Wire()
    w.requests.feed(handshake(1, b"PLAIN"))
    w.responses.feed(handshake_ok(1))
    with pytest.raises(ProtocolError, match="broker: a frame"):
        w.responses.feed(frame(b""))


def test_gssapi_over_v0_is_refused_with_the_protocols_error() -> None:
    w = Wire()
    w.requests.feed(handshake(1, b"GSSAPI"))
    w.responses.feed(handshake_ok(1))
    out = bytes(w.to_client)
    assert struct.unpack_from(">iihi", out)[1:] == (1, 33, 3)  # corr, error, 3 mechanisms
    assert b"GSSAPI" not in out and b"PLAIN" in out
    assert w.state.close_reason is not None and "GSSAPI" in w.state.close_reason
    with pytest.raises(ProtocolError):
        w.requests.feed(frame(b"\x60\x82gssapi-token"))
    assert w.responses.sasl_v0_refused == 1


def test_oauthbearer_failure_then_nothing() -> None:
    w = Wire()
    w.requests.feed(handshake(1, b"OAUTHBEARER"))
    w.responses.feed(handshake_ok(1))
    w.requests.feed(frame(b"n,,\x01auth=Bearer x\x01\x01"))
    w.responses.feed(frame(b'{"status":"invalid_token"}'))
    w.requests.feed(frame(b"\x01"))
    with pytest.raises(ProtocolError):
        w.requests.feed(request(3, 1, 2, struct.pack(">i", 0)))


def test_refused_handshake_returns_to_requests() -> None:
    w = Wire()
    w.requests.feed(handshake(1, b"PLAIN"))
    w.responses.feed(frame(struct.pack(">ihi", 1, 33, 0)))
    assert w.state.sasl_v0 is None
    w.requests.feed(request(3, 1, 2, struct.pack(">i", 0)))
    assert [c for c, *_ in w.state.in_flight] == [2]


def test_first_client_id_is_kept_whatever_its_bytes() -> None:
    w = Wire()
    w.requests.feed(request(18, 3, 1, b"\x00\x00\x00", client_id=b"\xff\xfeclient"))
    assert w.requests.client_id == b"\xff\xfeclient"


# -- property: a model broker, random traffic ---------------------------------------------------

MECHS = (b"PLAIN", b"SCRAM-SHA-512", b"OAUTHBEARER", b"GSSAPI", b"NOPE")


class ModelBroker:
    """Kafka's framing on the broker side, written from the broker's point of view: size-
    prefixed frames; a SaslHandshake v0 for an enabled mechanism is followed by raw tokens that
    its SASL server answers (PLAIN: one empty token; SCRAM: two; OAUTHBEARER: empty, or an
    error then close after the client's reply; GSSAPI: two answered tokens and a third that gets
    no answer); acks=0 Produce gets no answer; every other request gets one, in order. Records
    the truth: (correlation id, api key, version) of every answer it sends."""

    def __init__(self) -> None:
        self.buf = b""
        self.out = bytearray()
        self.truth: list[tuple[int, int, int]] = []
        self.raw: bytes | None = None
        self.tokens = 0
        self.closed = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        while not self.closed and len(self.buf) >= 4:
            size = struct.unpack_from(">i", self.buf)[0]
            if size < 0:
                self.closed = True
                return
            if len(self.buf) < 4 + size:
                return
            payload, self.buf = self.buf[4:4 + size], self.buf[4 + size:]
            if self.raw is not None:
                self._token(payload)
            else:
                self._request(payload)

    def _token(self, token: bytes) -> None:
        mech = self.raw
        self.tokens += 1
        if mech == b"PLAIN":
            self.out += frame(b"")
            self.raw = None
        elif mech == b"SCRAM-SHA-512":
            self.out += frame(b"scram-%d" % self.tokens)
            if self.tokens == 2:
                self.raw = None
        elif mech == b"OAUTHBEARER":
            if self.tokens == 1 and token != b"bad":
                self.out += frame(b"")
                self.raw = None
            elif self.tokens == 1:
                self.out += frame(b'{"status":"invalid_token"}')
            else:
                self.closed = True
        elif mech == b"GSSAPI":
            if self.tokens <= 2:
                self.out += frame(b"gss-%d" % self.tokens)
            else:
                self.raw = None  # no answer to the last token

    def _request(self, payload: bytes) -> None:
        if len(payload) < 10:
            self.closed = True
            return
        key, version, corr, cid_len = struct.unpack_from(">hhih", payload)
        pos = 10 + max(cid_len, 0)
        if key == 17:
            mlen = struct.unpack_from(">h", payload, pos)[0]
            mech = payload[pos + 2:pos + 2 + mlen]
            ok = mech in MECHS[:4]
            body = struct.pack(">hi", 0 if ok else 33, 0)
            self.out += frame(struct.pack(">i", corr) + body)
            self.truth.append((corr, key, version))
            if not ok:
                self.closed = True
            elif version == 0:
                self.raw, self.tokens = mech, 0
            return
        if key == 0 and struct.unpack_from(">h", payload, pos + 2)[0] == 0:
            return  # acks=0
        self.out += frame(struct.pack(">i", corr) + b"answer")
        self.truth.append((corr, key, version))


class Recording(ConnectionState):
    def __init__(self) -> None:
        super().__init__()
        self.paired: list[tuple[int, int, int]] = []

    def answer(self, correlation_id: int) -> tuple[int, int]:
        key, version = super().answer(correlation_id)
        self.paired.append((correlation_id, key, version))
        return key, version


corr_ids = st.integers(1, 6)  # few: collisions are frequent
client_ids = st.sampled_from([b"c", b"\xff\xfe", b"", b"\x00\x01\x02"]) | st.none()
# requests whose answers the proxy passes through (not parsed): the pairing is what is checked
plain_requests = st.builds(
    lambda k, c, cid: request(k, 0, c, b"xyz", cid),
    st.sampled_from([2, 8, 9, 12, 14]), corr_ids, client_ids)
produce = st.builds(
    lambda c, acks, cid: request(0, 3, c, struct.pack(">hhii", -1, acks, 1000, 0), cid),
    corr_ids, st.sampled_from([0, 1, -1]), client_ids)
handshakes = st.builds(handshake, corr_ids, st.sampled_from(MECHS),
                       st.sampled_from([0, 0, 1]))
tokens = st.builds(frame, st.sampled_from([b"", b"bad", b"\x01", b"n,,n=a,r=b", b"\0a\0b"]))
junk = st.binary(min_size=1, max_size=12)
# a login as real clients do it (each step answered before the next), or none
LOGIN_STEPS = {
    "none": [],
    "plain": [handshake(1, b"PLAIN"), frame(b"\0a\0b")],
    "scram": [handshake(1, b"SCRAM-SHA-512"), frame(b"n,,n=a,r=b"), frame(b"c=biws,r=b,p=x")],
    "oauth": [handshake(1, b"OAUTHBEARER"), frame(b"n,,\x01auth=Bearer t\x01\x01")],
    "oauth-failed": [handshake(1, b"OAUTHBEARER"), frame(b"bad"), frame(b"\x01")],
    "gssapi": [handshake(1, b"GSSAPI")],
    "v1": [handshake(1, b"PLAIN", 1)],
}
logins = st.sampled_from(sorted(LOGIN_STEPS)).map(lambda k: [(d, True) for d in LOGIN_STEPS[k]])
traffic = st.lists(st.tuples(st.one_of(plain_requests, plain_requests, produce, handshakes,
                                       tokens, junk), st.booleans()), max_size=20)
actions = st.builds(lambda a, b: a + b, logins, traffic)


@settings(max_examples=600, deadline=None)
@given(actions, st.lists(st.integers(1, 40), max_size=8))
def test_every_answer_pairs_with_its_request_or_the_connection_closes(
        steps: list[tuple[bytes, bool]], cuts: list[int]) -> None:
    state = Recording()
    to_broker = bytearray()
    to_client = bytearray()
    requests = RequestStream(state, to_broker.extend, to_client.extend, MAX)
    responses = ResponseStream(state, to_client.extend, Wire._edge, MAX)
    broker = ModelBroker()
    fed = 0
    sent = 0

    def run(step: Callable[[], None]) -> bool:
        try:
            step()
        except ProtocolError:
            return False
        return True

    def deliver() -> bool:
        nonlocal fed, sent
        broker.feed(bytes(to_broker[fed:]))
        fed = len(to_broker)
        answers = bytes(broker.out[sent:])
        sent = len(broker.out)
        for i in range(0, len(answers), 7):  # answers in small pieces
            if not run(lambda a=answers[i:i + 7]: responses.feed(a)):  # type: ignore[misc]
                return False
        return True

    cut_iter = iter(cuts)
    for data, wait in steps:
        cut = next(cut_iter, len(data))
        for piece in (data[:cut], data[cut:]):
            if piece and not run(lambda p=piece: requests.feed(p)):  # type: ignore[misc]
                return  # closed: fine
        if wait and not deliver():
            return
        if broker.closed:
            return
    if not deliver():
        return
    # not closed: every answer was paired with exactly the request the broker answered
    assert state.paired == broker.truth[:len(state.paired)]
