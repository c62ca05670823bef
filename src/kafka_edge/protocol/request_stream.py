"""Client -> broker: the ``RequestStream`` of a proxied connection (protocol/stream.py describes
both directions and what they share)."""

from __future__ import annotations

import struct

from kafka_edge.protocol.api_versions import api_versions_unsupported_response
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS
from kafka_edge.protocol.peeks import produce_acks, produce_acks_fast
from kafka_edge.protocol.sasl_v0 import HANDSHAKE, SaslV0Exchange, handshake_mechanism
from kafka_edge.protocol.stream import (
    API_API_VERSIONS,
    API_PRODUCE,
    API_SASL_HANDSHAKE,
    Chunk,
    ConnectionState,
    Sink,
    describe_bad_size,
    raw_frame_end,
)

MAX_API_VERSIONS_VERSION = API_KEYS[API_API_VERSIONS].max_version

# A Produce request prefix long enough to hold header + transactional id + acks. Client ids and
# transactional ids are short in practice; a prefix this long that still cannot be parsed is bad.
_MAX_PEEK = 65_536 + 64

_I32 = struct.Struct(">i")
_HDR = struct.Struct(">ihhi")  # size, api_key, api_version, correlation_id


class RequestStream:
    """Client -> broker: peek request headers, track them, forward the bytes."""

    __slots__ = ("_forward", "_max_frame", "_pending", "_remaining", "_reply", "_state",
                 "client_id", "frames")

    def __init__(self, state: ConnectionState, forward: Sink, reply: Sink, max_frame: int) -> None:
        self._state = state
        self._forward = forward
        self._reply = reply
        self._max_frame = max_frame
        self._remaining = 0  # bytes of the current frame still to pass through
        self._pending = b""  # start of a frame whose header is not complete yet (not forwarded)
        self.frames = 0  # requests and raw SASL tokens seen (their headers)
        self.client_id: bytes | None = None  # of the first request (for log lines)

    def mid_frame(self) -> bool:
        """True when the client has sent part of a frame and not the rest."""
        return bool(self._remaining or self._pending)

    def feed_to_boundary(self, data: Chunk) -> bool:
        """While draining: forward only the rest of a request already partly forwarded; True
        once the stream is between frames (then nothing more is forwarded). A frame whose
        header has not been forwarded yet is dropped: the broker never sees it, so the client
        retries it on its next connection."""
        remaining = self._remaining
        if remaining:
            take = remaining if remaining < len(data) else len(data)
            self._remaining = remaining - take
            if take:
                self._forward(data if take == len(data) else memoryview(data)[:take])
            if self._remaining:
                return False
        self._pending = b""
        return True

    def first_frame_done(self) -> bool:
        """True once the client has sent one whole frame."""
        return self.frames > 1 or (self.frames == 1 and not self._remaining)

    def feed(self, data: Chunk) -> None:  # noqa: PLR0912, PLR0915 - the hot loop, kept whole
        n = len(data)
        pos = 0
        remaining = self._remaining
        if remaining:
            if remaining >= n:
                self._remaining = remaining - n
                self._forward(data)
                return
            pos = remaining
            self._remaining = 0
        elif self._pending:
            data = self._pending + data
            self._pending = b""
            n = len(data)
        out_start = 0
        state = self._state
        in_flight = state.in_flight
        while pos < n:
            sasl = state.sasl_v0
            if sasl is not None:
                # a raw SASL token (lock-step with the broker's), or nothing at all
                if n - pos < 4:
                    break
                end = raw_frame_end(data, pos, self._max_frame, "client")
                if sasl.phase == HANDSHAKE:
                    raise ProtocolError("client: a frame sent before the answer to its "
                                        "SaslHandshake v0 request")
                sasl.client_token(end - pos - 4)
                self.frames += 1
                if end > n:
                    self._remaining = end - n
                    pos = n
                    break
                pos = end
                continue
            if n - pos < 12:
                if n - pos >= 4:
                    self._check_size(data, pos)
                break
            size, api_key, api_version, correlation_id = _HDR.unpack_from(data, pos)
            if size < 8 or size > self._max_frame:
                raise ProtocolError("client: " + describe_bad_size(data[pos:pos + 4]))
            end = pos + 4 + size
            if self.client_id is None:
                self._note_client_id(data, pos, end if end < n else n)
            if api_key == API_API_VERSIONS and api_version > MAX_API_VERSIONS_VERSION:
                if end > n:
                    break
                if in_flight or not state.responses_idle():
                    # answered here, it would overtake the broker's answers to the requests
                    # before it (clients send ApiVersions first, alone; none pipelines it)
                    raise ProtocolError(
                        f"client: ApiVersions v{api_version} (newer than the proxy knows, so "
                        "answered by the proxy) sent behind other requests still unanswered")
                if pos > out_start:
                    self._forward(memoryview(data)[out_start:pos])
                answer = api_versions_unsupported_response(correlation_id)
                self._reply(_I32.pack(len(answer)) + answer)
                self.frames += 1
                pos = out_start = end
                continue
            if api_key == API_PRODUCE:
                limit = end if end < n else n
                acks = produce_acks_fast(data, pos, limit, api_version)
                if acks is None:
                    acks = produce_acks(memoryview(data)[pos + 4:limit], api_version)
                    if acks is None:
                        if end <= n or n - pos > _MAX_PEEK:
                            raise ProtocolError("client: cannot parse Produce request header")
                        break
                if acks != 0:
                    state.expect(correlation_id, api_key, api_version)
                else:
                    state.count(api_key, api_version)
            elif api_key == API_SASL_HANDSHAKE and api_version == 0:
                if end > n:
                    break  # small: wait for all of it (the mechanism decides what follows)
                mechanism = handshake_mechanism(memoryview(data)[pos + 4:end])
                state.expect(correlation_id, api_key, api_version)
                state.sasl_v0 = SaslV0Exchange(mechanism)
            else:
                state.expect(correlation_id, api_key, api_version)
            self.frames += 1
            if end > n:
                self._remaining = end - n
                pos = n
                break
            pos = end
        if pos < n:
            self._pending = bytes(data[pos:])
            if len(self._pending) > _MAX_PEEK:
                raise ProtocolError("client: request header does not fit the peek buffer")
        if pos > out_start:
            if out_start == 0 and pos == n:
                self._forward(data)
            else:
                self._forward(memoryview(data)[out_start:pos])

    def _note_client_id(self, data: Chunk, pos: int, limit: int) -> None:
        """Keep the first request's client id (whatever its bytes) for log lines."""
        if pos + 14 > limit:
            return
        length = int.from_bytes(data[pos + 12:pos + 14], "big", signed=True)
        if length < 0:
            self.client_id = b""
        elif pos + 14 + length <= limit:
            self.client_id = bytes(data[pos + 14:pos + 14 + min(length, 256)])

    def _check_size(self, data: Chunk, pos: int) -> None:
        size = _I32.unpack_from(data, pos)[0]
        if size < 8 or size > self._max_frame:
            raise ProtocolError("client: " + describe_bad_size(data[pos:pos + 4]))
