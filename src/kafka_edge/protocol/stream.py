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

Every answer is parsed as the answer to the request it answers, or the connection is closed:
requests are tracked whatever their client id, a correlation id may not be reused while a
request with it awaits an answer, and an answer must carry the correlation id of the oldest
request awaiting one. After a successful SaslHandshake v0 the client and broker exchange raw,
header-less SASL tokens; both streams follow that exchange exactly, mechanism by mechanism and
strictly lock-step (``sasl_v0.SaslV0Exchange``), and refuse mechanisms whose exchange cannot be
followed. Broker addresses an answer names are handed to ``learn`` once the answer has parsed
whole; the broker directory checks them against the cluster's address policy.

Neither class does I/O: bytes come in through ``feed`` and go out through the callables given at
construction, so a test can drive a stream like a wire transcript.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from time import monotonic

from kafka_edge.protocol.addresses import (
    FIRST_ADDRESS_VERSION,
    REWRITTEN_APIS,
    AddressMapper,
    produce_has_no_endpoints,
    rewrite_response,
)
from kafka_edge.protocol.api_versions import (
    api_versions_unsupported_response,
    rewrite_api_versions,
)
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.fetch_stream import FIRST_STREAMED_VERSION, FetchWalk
from kafka_edge.protocol.messages import API_KEYS
from kafka_edge.protocol.peeks import (
    produce_acks,
    produce_acks_fast,
    sasl_handshake_v0_succeeded,
)
from kafka_edge.protocol.sasl_v0 import (
    FAILED,
    HANDSHAKE,
    SaslV0Exchange,
    handshake_mechanism,
    handshake_refusal,
)

Sink = Callable[[bytes | bytearray | memoryview], None]
# learn(addresses, source): the (node id, host, port) entries one whole answer named
Learn = Callable[[list[tuple[int, str, int]], str], object]
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

# request latency buckets (seconds, upper bounds): a Produce with acks=all takes a few
# milliseconds on a healthy cluster, a Fetch waits up to its fetch.max.wait.ms (500 ms by default)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

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
    """What both directions of one connection share: requests awaiting an answer, the SASL v0
    exchange, and a reason to close once the answer being written has gone."""

    __slots__ = ("close_reason", "counts", "in_flight", "in_flight_ids", "latency",
                 "responses_idle", "sasl_v0")

    def __init__(self) -> None:
        # Kafka answers requests on one connection in order, so a FIFO is enough: (correlation
        # id, api key, api version, when it passed), appended by RequestStream as requests pass.
        self.in_flight: deque[tuple[int, int, int, float]] = deque()
        # for the metrics, taken and emptied by the relay once a second (plain ints and lists:
        # nothing allocated per request): requests by (api key << 16 | version), and per api
        # key the seconds from a request passing to its answer's header, as counts per
        # LATENCY_BUCKETS bucket (the last one unbounded) followed by their sum
        self.counts: dict[int, int] = {}
        self.latency: dict[int, list[float]] = {}
        self.in_flight_ids: set[int] = set()  # their correlation ids (unique while in flight)
        self.sasl_v0: SaslV0Exchange | None = None  # from a SaslHandshake v0 request to its end
        self.close_reason: str | None = None
        # whether the response stream is between frames (set by ResponseStream); asked only
        # before the proxy writes an answer of its own to the client
        self.responses_idle: Callable[[], bool] = lambda: True

    def expect(self, correlation_id: int, api_key: int, api_version: int) -> None:
        """A request that will be answered has passed (ProtocolError if its correlation id is
        already awaiting an answer: the two answers could not be told apart)."""
        ids = self.in_flight_ids
        if correlation_id in ids:
            raise ProtocolError(f"client: correlation id {correlation_id} reused while a request "
                                "with it still awaits an answer")
        ids.add(correlation_id)
        self.in_flight.append((correlation_id, api_key, api_version, monotonic()))
        counts = self.counts
        key = api_key << 16 | api_version
        counts[key] = counts.get(key, 0) + 1

    def count(self, api_key: int, api_version: int) -> None:
        """A request that gets no answer (Produce with acks=0) has passed."""
        key = api_key << 16 | api_version
        self.counts[key] = self.counts.get(key, 0) + 1

    def answer(self, correlation_id: int) -> tuple[int, int]:
        """(api key, api version) of the request a response answers; ProtocolError if it
        answers none."""
        in_flight = self.in_flight
        if in_flight and in_flight[0][0] == correlation_id:
            _, api_key, api_version, sent = in_flight.popleft()
            self.in_flight_ids.discard(correlation_id)
            seconds = monotonic() - sent
            histogram = self.latency.get(api_key)
            if histogram is None:
                histogram = self.latency[api_key] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
            histogram[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            histogram[-1] += seconds
            return api_key, api_version
        if not in_flight:
            raise ProtocolError(f"broker sent a response (correlation id {correlation_id}) "
                                "to no outstanding request")
        raise ProtocolError(f"broker answered correlation id {correlation_id}, "
                            f"expected {in_flight[0][0]}")


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
                end = _raw_frame_end(data, pos, self._max_frame, "client")
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


class ResponseStream:
    """Broker -> client: rewrite address-bearing responses, stream everything else through."""

    __slots__ = ("_collect", "_collect_key", "_edge", "_forward", "_learn", "_learned",
                 "_max_frame", "_pending", "_remaining", "_state", "_walk", "endpoints_dropped",
                 "rewritten", "sasl_handshakes", "sasl_v0_refused", "sasl_v0_sessions")

    def __init__(self, state: ConnectionState, forward: Sink, mapper: AddressMapper,
                 max_frame: int, learn: Learn | None = None) -> None:
        self._state = state
        self._forward = forward
        self._edge = mapper
        self._learn = learn
        self._learned: list[tuple[int, str, int]] = []  # addresses of the answer being parsed
        self._max_frame = max_frame
        self._remaining = 0          # bytes of a pass-through frame still to stream
        self._pending = b""          # a partial size + correlation id
        self._collect: bytearray | None = None  # an inspected frame being gathered whole
        self._collect_key = (0, 0)
        self._walk: FetchWalk | None = None  # a Fetch v16+ answer streaming through
        self.rewritten: dict[int, int] = {}  # api key -> responses rewritten (not yet reported)
        self.sasl_v0_sessions = 0  # raw-token SASL phases seen (not yet reported)
        self.sasl_v0_refused = 0  # SaslHandshake v0 refused: mechanism not followable
        self.sasl_handshakes = 0  # SaslHandshake answers relayed (not yet reported)
        self.endpoints_dropped = 0  # NodeEndpoints left out: no room (not yet reported)
        state.responses_idle = self.between_frames

    def _map(self, node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
        """The mapper handed to the codecs: note a broker's address, return the edge's."""
        if is_broker:
            self._learned.append((node_id, host, port))
        return self._edge(node_id, host, port, is_broker)

    def _commit(self, key: int) -> None:
        """The answer parsed whole: hand the addresses it named to ``learn``."""
        learned = self._learned
        if learned:
            self._learned = []
            if self._learn is not None:
                self._learn(learned, f"a {api_name(key)} answer")

    def between_frames(self) -> bool:
        """True when no response is partly forwarded, held or walked."""
        return not (self._remaining or self._pending or self._collect is not None
                    or self._walk is not None)

    def feed(self, data: Chunk) -> None:  # noqa: PLR0912, PLR0915 - the hot loop, kept whole
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
            sasl = state.sasl_v0
            if sasl is not None and sasl.raw:
                # A raw SASL token from the broker (no header, possibly empty), in lock-step.
                if n - pos < 4:
                    break
                end = _raw_frame_end(data, pos, self._max_frame, "broker")
                sasl.broker_token(end - pos - 4)
                if sasl.done:
                    state.sasl_v0 = None
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
                    walk = FetchWalk(size, version, self._map)
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
            self._commit(API_FETCH)
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
            return self._sasl_handshake(version, payload)
        else:
            new = rewrite_response(key, version, payload, self._map)
            self._commit(key)
        if new is None:
            return None
        self.rewritten[key] = self.rewritten.get(key, 0) + 1
        return _I32.pack(len(new)) + new

    def _sasl_handshake(self, version: int, payload: memoryview) -> bytes | None:
        if version != 0:
            return None
        state = self._state
        sasl = state.sasl_v0
        if sasl is None:
            raise ProtocolError("broker: a SaslHandshake v0 answer without its request")
        sasl.handshake_answered(sasl_handshake_v0_succeeded(payload))
        if sasl.phase == FAILED:  # succeeded upstream, but its raw tokens cannot be followed
            self.sasl_v0_refused += 1
            state.close_reason = (
                f"SASL mechanism {sasl.mechanism!r} refused for SaslHandshake v0 (the proxy "
                "cannot follow its raw tokens; clients can use SaslHandshake v1)")
            return handshake_refusal(payload)
        if sasl.done:  # refused by the broker, which closes the connection
            state.sasl_v0 = None
        else:
            self.sasl_v0_sessions += 1
        return None


def api_name(api_key: int) -> str:
    """The API's name (``Metadata``), or its key as text when the proxy does not know it."""
    spec = API_KEYS.get(api_key)
    return spec.name if spec is not None else str(api_key)
