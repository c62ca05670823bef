"""Broker -> client: the ``ResponseStream`` of a proxied connection (protocol/stream.py describes
both directions and what they share)."""

from __future__ import annotations

import struct
from collections.abc import Callable

from kafka_edge.protocol.addresses import (
    FIRST_ADDRESS_VERSION,
    REWRITTEN_APIS,
    AddressMapper,
    produce_has_no_endpoints,
    rewrite_response,
)
from kafka_edge.protocol.api_versions import rewrite_api_versions
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.fetch_stream import FIRST_STREAMED_VERSION, FetchWalk
from kafka_edge.protocol.peeks import sasl_handshake_v0_succeeded
from kafka_edge.protocol.sasl_v0 import FAILED, handshake_refusal
from kafka_edge.protocol.stream import (
    API_API_VERSIONS,
    API_FETCH,
    API_PRODUCE,
    API_SASL_HANDSHAKE,
    Chunk,
    ConnectionState,
    Sink,
    api_name,
    describe_bad_size,
    raw_frame_end,
)

# learn(addresses, source): the (node id, host, port) entries one whole answer named
Learn = Callable[[list[tuple[int, str, int]], str], object]

# Responses that must be seen whole: address-bearing ones, plus ApiVersions (intersection) and
# SaslHandshake (to detect the v0 raw-token phase).
INSPECTED_RESPONSES = frozenset(REWRITTEN_APIS | {API_SASL_HANDSHAKE, API_API_VERSIONS})
# api key -> first version inspected (older Produce and Fetch versions carry no address)
_INSPECT_FROM = {key: FIRST_ADDRESS_VERSION.get(key, 0) for key in INSPECTED_RESPONSES}

_I32 = struct.Struct(">i")
_SIZE_CORR = struct.Struct(">ii")


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
                end = raw_frame_end(data, pos, self._max_frame, "broker")
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
