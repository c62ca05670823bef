"""The SaslHandshake v0 raw-token phase, followed exactly (pure, no I/O).

After a successful SaslHandshake **v0** the client and the broker exchange SASL tokens as bare
size-prefixed frames, with no request or response header, so the proxy cannot tell a token from
a request by looking at it. Guessing is not safe: a frame that the proxy took for a token but the
broker took for a request (or the reverse) would pair later answers with the wrong requests, and
an answer parsed as another API's can put bytes a client chose where a broker address belongs.

So the proxy follows the exchange the way the broker does (Kafka's ``SaslServerAuthenticator``
with ``enableKafkaSaslAuthenticateHeaders(false)``): for every client token the broker's SASL
server is evaluated once and its answer, if any, is sent back as one frame; an authentication
failure closes the connection without a word. The number of rounds is a property of the
mechanism, and the proxy knows the mechanism from the SaslHandshake request:

* ``PLAIN`` (RFC 4616): one client token; the broker answers with an empty token.
* ``SCRAM-SHA-256`` / ``SCRAM-SHA-512`` (RFC 5802, RFC 7677): client-first, server-first,
  client-final, server-final: two rounds. Kafka's SCRAM server reports a failure by closing.
* ``OAUTHBEARER`` (RFC 7628): one client token; the broker answers with an empty token on
  success. On failure it answers with a JSON error token instead, the client sends a single
  0x01 byte to acknowledge it, and the broker closes the connection.

Every other mechanism is refused for v0 (:func:`v0_mechanism_followable`): with GSSAPI the
number of rounds depends on the contents of the Kerberos tokens, and the broker sends no answer
to the last client token, so its end cannot be found without parsing GSS-API tokens; for
mechanisms the proxy does not know, nothing can be assumed. SaslHandshake v1 with
SaslAuthenticate requests (every current client) carries each token in a normal request and
answer, so every mechanism stays supported there.

The exchange is strictly lock-step: one client token, then one broker token. Anything else (a
second client frame before the broker's token, a broker frame nobody asked for, any frame after
an OAUTHBEARER failure) raises :class:`ProtocolError` and the relay closes that connection. When
the last broker token has arrived, the phase is over and the next client frame is a request,
whatever it looks like.
"""

from __future__ import annotations

import struct

from kafka_edge.protocol.errors import ProtocolError

__all__ = [
    "FOLLOWED_MECHANISMS",
    "SaslV0Exchange",
    "handshake_mechanism",
    "handshake_refusal",
    "v0_mechanism_followable",
]

# mechanism -> rounds of (client token, broker token) on success
_ROUNDS = {
    "PLAIN": 1,
    "SCRAM-SHA-256": 2,
    "SCRAM-SHA-512": 2,
    "OAUTHBEARER": 1,
}
FOLLOWED_MECHANISMS: frozenset[str] = frozenset(_ROUNDS)

# phases
HANDSHAKE = 0  # the SaslHandshake v0 request was sent; its answer is awaited
CLIENT = 1  # a client token is awaited
BROKER = 2  # the broker's answer to the client's token is awaited
FAILED = 3  # refused by the proxy, or an OAUTHBEARER failure acknowledged: nothing more
DONE = 4  # the exchange is over; frames are requests and responses again

_PHASE_NAMES = ("awaiting the SaslHandshake answer", "awaiting a client token",
                "awaiting the broker's token",
                "failed or refused (the connection closes)", "done")


def v0_mechanism_followable(mechanism: str) -> bool:
    """Can the proxy follow ``mechanism``'s raw-token exchange exactly? (Names are
    case-sensitive, as the broker compares them.)"""
    return mechanism in _ROUNDS


class SaslV0Exchange:
    """One connection's SaslHandshake v0 exchange, from the handshake request to the end of the
    raw-token phase. Fed frame sizes only: token contents are never read (nor logged)."""

    __slots__ = ("_oauth_failed", "_rounds_left", "mechanism", "phase")

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.phase = HANDSHAKE
        self._rounds_left = _ROUNDS.get(mechanism, 0)
        self._oauth_failed = False

    @property
    def raw(self) -> bool:
        """True while frames are raw tokens (between the handshake answer and the end)."""
        return self.phase in (CLIENT, BROKER, FAILED)

    @property
    def done(self) -> bool:
        return self.phase == DONE

    def describe(self) -> str:
        return f"SASL {self.mechanism} v0 exchange, {_PHASE_NAMES[self.phase]}"

    def handshake_answered(self, succeeded: bool) -> None:
        """The broker answered the SaslHandshake v0 request (``succeeded``: error code 0).

        A refused handshake ends the exchange (the broker closes the connection after its
        answer). A successful one for a mechanism the proxy cannot follow leaves the exchange
        failed: the caller refuses it to the client, and nothing more may pass."""
        if self.phase != HANDSHAKE:
            raise ProtocolError(f"broker: a second SaslHandshake answer during the "
                                f"{self.describe()}")
        if not succeeded:
            self.phase = DONE
        elif self._rounds_left == 0:
            self.phase = FAILED
        else:
            self.phase = CLIENT

    def client_token(self, size: int) -> None:
        """The client sent a raw token of ``size`` bytes."""
        if self.phase != CLIENT:
            raise ProtocolError(f"client: a frame of {size} bytes during the "
                                f"{self.describe()} (the exchange is lock-step)")
        # after an OAUTHBEARER error token, this is the client's 0x01: the broker closes next
        self.phase = FAILED if self._oauth_failed else BROKER

    def broker_token(self, size: int) -> None:
        """The broker sent a raw token of ``size`` bytes."""
        if self.phase != BROKER:
            raise ProtocolError(f"broker: a frame of {size} bytes during the "
                                f"{self.describe()} (the exchange is lock-step)")
        if self.mechanism == "OAUTHBEARER" and size != 0:
            self._oauth_failed = True  # an error token: the client acknowledges it
            self.phase = CLIENT
            return
        self._rounds_left -= 1
        self.phase = CLIENT if self._rounds_left > 0 else DONE


# -- the SaslHandshake request and answer ---------------------------------------------------------

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_HEADER = 8  # api key, api version, correlation id
_UNSUPPORTED_SASL_MECHANISM = 33


def _string(buf: memoryview, pos: int, what: str) -> tuple[bytes, int]:
    if pos + 2 > len(buf):
        raise ProtocolError(f"SaslHandshake: {what} cut short", pos)
    length = _I16.unpack_from(buf, pos)[0]
    if length < 0 or pos + 2 + length > len(buf):
        raise ProtocolError(f"SaslHandshake: invalid {what} length {length}", pos)
    return bytes(buf[pos + 2:pos + 2 + length]), pos + 2 + length


def handshake_mechanism(payload: bytes | memoryview) -> str:
    """The mechanism a SaslHandshake request (v0 or v1: request header v1, not flexible) names.
    ``payload``: the whole frame without its size prefix. Bytes that are not ASCII are kept as
    escapes (no mechanism name has them, so such a name is simply not followable)."""
    buf = memoryview(payload)
    if len(buf) < _HEADER + 2:
        raise ProtocolError("SaslHandshake request shorter than its header")
    client_id_len = _I16.unpack_from(buf, _HEADER)[0]
    if client_id_len < -1:
        raise ProtocolError(f"SaslHandshake: invalid client id length {client_id_len}")
    pos = _HEADER + 2 + max(client_id_len, 0)
    raw, end = _string(buf, pos, "mechanism")
    if end != len(buf):
        raise ProtocolError(f"SaslHandshake: {len(buf) - end} unexpected bytes after the "
                            "mechanism", end)
    return raw.decode("ascii", "backslashreplace")


def handshake_refusal(payload: bytes | memoryview) -> bytes:
    """A successful SaslHandshake v0 answer (``payload``: without size prefix) turned into the
    refusal a broker gives for a mechanism it does not offer: UNSUPPORTED_SASL_MECHANISM, with
    the broker's mechanisms that the proxy can follow over v0 (the client may pick one of those,
    or use SaslHandshake v1). Returns the new frame with its size prefix."""
    buf = memoryview(payload)
    if len(buf) < 10:
        raise ProtocolError("SaslHandshake answer too short for its mechanisms")
    count = _I32.unpack_from(buf, 6)[0]
    pos = 10
    offered: list[bytes] = []
    for _ in range(max(count, 0)):
        name, pos = _string(buf, pos, "mechanism")
        offered.append(name)
    kept = [m for m in offered if m.decode("ascii", "replace") in FOLLOWED_MECHANISMS]
    body = bytearray(buf[:4])  # correlation id
    body += _I16.pack(_UNSUPPORTED_SASL_MECHANISM) + _I32.pack(len(kept))
    for name in kept:
        body += _I16.pack(len(name)) + name
    return _I32.pack(len(body)) + bytes(body)
