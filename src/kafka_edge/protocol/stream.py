"""Sans-I/O frame streams for one proxied connection, one object per direction.

A Kafka connection carries int32 size-prefixed frames. The proxy must look at every frame
header but should touch as few bytes as possible:

* ``RequestStream`` (client -> broker) peeks each request header, remembers
  (correlation id -> api key, version) for the answer, and forwards the bytes it was given
  unchanged, in one piece per ``feed`` call where it can. The only frames it does not forward are
  ApiVersions requests at a version the proxy does not know: it answers those itself.
* ``ResponseStream`` (broker -> client) peeks each response's correlation id. Responses of APIs
  that can carry a broker address (and ApiVersions, and SaslHandshake) are handed to the codecs
  and replaced when they change: whole when they arrive in one read, and otherwise collected
  first, except Fetch v16+ (the consumer's bulk), which streams through a ``FetchWalk`` that
  holds back only its final tagged fields. Every other response streams through unbuffered.

After a successful SaslHandshake v0 the client and broker exchange raw, header-less SASL tokens.
Both streams pass such frames through verbatim until the client sends a frame that parses as a
request header again (see ``rewrite.is_plausible_request_header``).

Neither class does I/O: bytes come in through ``feed`` and go out through the callables given at
construction, so a test can drive a stream like a wire transcript.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.fetch_stream import FIRST_STREAMED_VERSION, FetchWalk
from kafka_edge.protocol.messages import API_KEYS
from kafka_edge.protocol.rewrite import (
    FIRST_ADDRESS_VERSION,
    REWRITTEN_APIS,
    AddressMapper,
    api_versions_unsupported_response,
    is_plausible_request_header,
    produce_acks,
    produce_acks_fast,
    produce_has_no_endpoints,
    rewrite_api_versions,
    rewrite_response,
    sasl_handshake_v0_succeeded,
)

Sink = Callable[[bytes | bytearray | memoryview], None]
Chunk = bytes | memoryview  # what a stream is fed: a read (a view of the read buffer)

API_PRODUCE = 0
API_FETCH = 1
API_SASL_HANDSHAKE = 17
API_API_VERSIONS = 18
MAX_API_VERSIONS_VERSION = API_KEYS[API_API_VERSIONS].max_version

# Responses that must be seen whole: address-bearing ones, plus ApiVersions (intersection) and
# SaslHandshake (to detect the v0 raw-token phase).
INSPECTED_RESPONSES = frozenset(REWRITTEN_APIS | {API_SASL_HANDSHAKE, API_API_VERSIONS})
# api key -> first version inspected (older Produce and Fetch versions carry no address)
_INSPECT_FROM = {key: FIRST_ADDRESS_VERSION.get(key, 0) for key in INSPECTED_RESPONSES}

# A Produce request prefix long enough to hold header + transactional id + acks. Client ids and
# transactional ids are short in practice; a prefix this long that still cannot be parsed is bad.
_MAX_PEEK = 65_536 + 64

_I32 = struct.Struct(">i")
_HDR = struct.Struct(">ihhi")  # size, api_key, api_version, correlation_id
_SIZE_CORR = struct.Struct(">ii")


def describe_bad_size(size_bytes: Chunk) -> str:
    """Explain an impossible frame size; a TLS ClientHello on a plaintext port is the usual one."""
    size_bytes = bytes(size_bytes[:4])
    if size_bytes[:2] == b"\x16\x03":
        return "a TLS handshake arrived on a plaintext Kafka port"
    if size_bytes in (b"GET ", b"POST", b"HEAD", b"PUT ", b"PRI "):
        return "an HTTP request arrived on a Kafka port"
    size = int.from_bytes(size_bytes, "big", signed=True)
    return f"frame size {size} is out of range"


def _raw_frame_end(data: Chunk, pos: int, max_frame: int, side: str) -> int:
    """End offset of the raw (header-less, possibly empty) SASL v0 frame starting at ``pos``."""
    size = _I32.unpack_from(data, pos)[0]
    if size < 0 or size > max_frame:
        raise ProtocolError(f"{side}: " + describe_bad_size(data[pos:pos + 4]))
    return int(pos + 4 + size)


class ConnectionState:
    """What both directions of one connection share: requests awaiting an answer, SASL phase."""

    __slots__ = ("in_flight", "responses_idle", "sasl_raw")

    def __init__(self) -> None:
        # Kafka answers requests on one connection in order, so a FIFO is enough:
        # (correlation id, api key, api version), appended by RequestStream as requests pass.
        self.in_flight: deque[tuple[int, int, int]] = deque()
        self.sasl_raw = False
        # whether the response stream is between frames (set by ResponseStream); asked only
        # before the proxy writes an answer of its own to the client
        self.responses_idle: Callable[[], bool] = lambda: True

    def answer(self, correlation_id: int) -> tuple[int, int]:
        """(api key, api version) of the request a response answers; ProtocolError if it
        answers none."""
        in_flight = self.in_flight
        if in_flight and in_flight[0][0] == correlation_id:
            _, api_key, api_version = in_flight.popleft()
            return api_key, api_version
        if not in_flight:
            raise ProtocolError(f"broker sent a response (correlation id {correlation_id}) "
                                "to no outstanding request")
        raise ProtocolError(f"broker answered correlation id {correlation_id}, "
                            f"expected {in_flight[0][0]}")


class RequestStream:
    """Client -> broker: peek request headers, track them, forward the bytes."""

    __slots__ = ("_forward", "_max_frame", "_pending", "_remaining", "_reply", "_state",
                 "frames")

    def __init__(self, state: ConnectionState, forward: Sink, reply: Sink, max_frame: int) -> None:
        self._state = state
        self._forward = forward
        self._reply = reply
        self._max_frame = max_frame
        self._remaining = 0  # bytes of the current frame still to pass through
        self._pending = b""  # start of a frame whose header is not complete yet (not forwarded)
        self.frames = 0

    def feed(self, data: Chunk) -> None:
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
            if state.sasl_raw:
                # A raw SASL token, or the first request after the raw phase: look at it whole.
                if n - pos < 4:
                    break
                end = _raw_frame_end(data, pos, self._max_frame, "client")
                if end > n:
                    break
                if not is_plausible_request_header(memoryview(data)[pos + 4:end]):
                    pos = end
                    continue
                state.sasl_raw = False
            if n - pos < 12:
                if n - pos >= 4:
                    self._check_size(data, pos)
                break
            size, api_key, api_version, correlation_id = _HDR.unpack_from(data, pos)
            if size < 8 or size > self._max_frame:
                raise ProtocolError("client: " + describe_bad_size(data[pos:pos + 4]))
            end = pos + 4 + size
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
                    in_flight.append((correlation_id, api_key, api_version))
            else:
                in_flight.append((correlation_id, api_key, api_version))
            self.frames += 1
            if end > n:
                self._remaining = end - n
                pos = n
                break
            pos = end
        if pos < n:
            self._pending = bytes(data[pos:])
            if len(self._pending) > _MAX_PEEK and not state.sasl_raw:
                raise ProtocolError("client: request header does not fit the peek buffer")
        if pos > out_start:
            if out_start == 0 and pos == n:
                self._forward(data)
            else:
                self._forward(memoryview(data)[out_start:pos])

    def _check_size(self, data: Chunk, pos: int) -> None:
        size = _I32.unpack_from(data, pos)[0]
        if size < 8 or size > self._max_frame:
            raise ProtocolError("client: " + describe_bad_size(data[pos:pos + 4]))


class ResponseStream:
    """Broker -> client: rewrite address-bearing responses, stream everything else through."""

    __slots__ = ("_collect", "_collect_key", "_forward", "_mapper", "_max_frame", "_pending",
                 "_remaining", "_state", "_walk", "endpoints_dropped", "rewritten",
                 "sasl_handshakes", "sasl_v0_sessions")

    def __init__(self, state: ConnectionState, forward: Sink, mapper: AddressMapper,
                 max_frame: int) -> None:
        self._state = state
        self._forward = forward
        self._mapper = mapper
        self._max_frame = max_frame
        self._remaining = 0          # bytes of a pass-through frame still to stream
        self._pending = b""          # a partial size + correlation id
        self._collect: bytearray | None = None  # an inspected frame being gathered whole
        self._collect_key = (0, 0)
        self._walk: FetchWalk | None = None  # a Fetch v16+ answer streaming through
        self.rewritten: dict[int, int] = {}  # api key -> responses rewritten (not yet reported)
        self.sasl_v0_sessions = 0  # raw-token SASL phases seen (not yet reported)
        self.sasl_handshakes = 0  # SaslHandshake answers relayed (not yet reported)
        self.endpoints_dropped = 0  # NodeEndpoints left out: no room (not yet reported)
        state.responses_idle = self.between_frames

    def between_frames(self) -> bool:
        """True when no response is partly forwarded, held or walked."""
        return not (self._remaining or self._pending or self._collect is not None
                    or self._walk is not None)

    def feed(self, data: Chunk) -> None:
        n = len(data)
        pos = 0
        walk = self._walk
        if walk is not None:
            pos = n if n <= walk.left else walk.left
            self._walk_feed(walk, memoryview(data)[:pos], 0, 0)
            if pos == n:
                return
            data = memoryview(data)[pos:]  # the answers after the streamed one
            n -= pos
            pos = 0
        collect = self._collect
        if collect is not None:
            need = self._remaining
            if need > n:
                collect += data
                self._remaining = need - n
                return
            collect += memoryview(data)[:need]
            self._collect = None
            self._remaining = 0
            self._emit_inspected(collect)
            if need == n:
                return
            pos = out_start = need
        elif self._remaining:
            remaining = self._remaining
            if remaining >= n:
                self._remaining = remaining - n
                self._forward(data)
                return
            pos = remaining  # data[:pos] ends a pass-through frame: forwarded with what follows
            out_start = 0
            self._remaining = 0
        else:
            out_start = 0
            if self._pending:
                data = self._pending + data
                self._pending = b""
                n = len(data)
        state = self._state
        while pos < n:
            if state.sasl_raw:
                # Raw SASL tokens from the broker: no header, possibly empty; pass them through.
                if n - pos < 4:
                    break
                end = _raw_frame_end(data, pos, self._max_frame, "broker")
                if end > n:
                    self._remaining = end - n
                    pos = n
                    break
                pos = end
                continue
            if n - pos < 8:
                break
            size, correlation_id = _SIZE_CORR.unpack_from(data, pos)
            if size < 4 or size > self._max_frame:
                raise ProtocolError("broker: " + describe_bad_size(data[pos:pos + 4]))
            end = pos + 4 + size
            key, version = state.answer(correlation_id)
            inspect_from = _INSPECT_FROM.get(key)
            if inspect_from is not None and version >= inspect_from:
                if end <= n:
                    if (key == API_PRODUCE and size > 5 and data[pos + 8] == 0
                            and produce_has_no_endpoints(memoryview(data)[pos + 4:end], 5,
                                                         version)):
                        pos = end  # the usual Produce answer: no NodeEndpoints, unchanged
                        continue
                    new = self._inspect(key, version, memoryview(data)[pos + 4:end])
                    if new is not None:  # replaced: send what precedes it, then the new frame
                        if pos > out_start:
                            self._forward(memoryview(data)[out_start:pos])
                        self._forward(new)
                        out_start = end
                    pos = end  # unchanged: stays in the region forwarded in one write
                    continue
                if key == API_FETCH and version >= FIRST_STREAMED_VERSION:
                    walk = FetchWalk(size, version, self._mapper)
                    self._walk = walk
                    self._walk_feed(walk, memoryview(data), out_start, pos + 4)
                    return
                if pos > out_start:
                    self._forward(memoryview(data)[out_start:pos])
                self._collect = bytearray(memoryview(data)[pos:])
                self._collect_key = (key, version)
                self._remaining = end - n
                return
            if end > n:
                self._remaining = end - n
                pos = n
                break
            pos = end
        if pos < n:
            self._pending = bytes(data[pos:])
        if pos > out_start:
            if out_start == 0 and pos == n:
                self._forward(data)
            else:
                self._forward(memoryview(data)[out_start:pos])

    def _walk_feed(self, walk: FetchWalk, data: memoryview, start: int, at: int) -> None:
        """Feed ``data[at:]`` (bytes of a streamed Fetch answer) to ``walk``; forward
        ``data[start:at]`` (what precedes them) and whatever the walk lets through, in order,
        in one write when they are contiguous."""
        held, safe, tail = walk.feed(data[at:])
        if held is not None:
            if at > start:
                self._forward(data[start:at])
            self._forward(held)
            start = at
        if at + safe > start:
            self._forward(data[start:at + safe])
        if tail is not None:
            self._forward(tail)
        if walk.done:
            self._walk = None
            if walk.rewritten:
                self.rewritten[API_FETCH] = self.rewritten.get(API_FETCH, 0) + 1
            if walk.dropped:
                self.endpoints_dropped += 1

    def _emit_inspected(self, frame: bytearray) -> None:
        """``frame`` is one whole collected response including its size prefix."""
        key, version = self._collect_key
        new = self._inspect(key, version, memoryview(frame)[4:])
        self._forward(frame if new is None else new)

    def _inspect(self, key: int, version: int, payload: memoryview) -> bytes | None:
        """The replacement frame (with size prefix) for a response, or None to keep it."""
        if key == API_API_VERSIONS:
            new: bytes | None = rewrite_api_versions(version, payload)
        elif key == API_SASL_HANDSHAKE:
            self.sasl_handshakes += 1
            if version == 0 and sasl_handshake_v0_succeeded(payload):
                self._state.sasl_raw = True
                self.sasl_v0_sessions += 1
            return None
        else:
            new = rewrite_response(key, version, payload, self._mapper)
        if new is None:
            return None
        self.rewritten[key] = self.rewritten.get(key, 0) + 1
        return _I32.pack(len(new)) + new
