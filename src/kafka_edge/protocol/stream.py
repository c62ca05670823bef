"""Sans-I/O frame streams for one proxied connection, one object per direction, and what the two
share: the ``ConnectionState`` of their connection and the framing pieces both use.

A Kafka connection carries int32 size-prefixed frames. The proxy must look at every frame
header but should touch as few bytes as possible:

* ``RequestStream`` (client -> broker; protocol/request_stream.py) peeks each request header,
  remembers (correlation id -> api key, version) for the answer, and forwards the bytes it was
  given unchanged, in one piece per ``feed`` call where it can. The only frames it does not
  forward are ApiVersions requests at a version the proxy does not know: it answers those itself.
* ``ResponseStream`` (broker -> client; protocol/response_stream.py) peeks each response's
  correlation id. Responses of APIs that can carry a broker address (and ApiVersions, and
  SaslHandshake) are handed to the codecs and replaced when they change: whole when they arrive
  in one read, and otherwise collected first, except Fetch v16+ (the consumer's bulk), which
  streams through a ``FetchWalk`` that holds back only its final tagged fields. Every other
  response streams through unbuffered.

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

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS
from kafka_edge.protocol.sasl_v0 import SaslV0Exchange

Sink = Callable[[bytes | bytearray | memoryview], None]
Chunk = bytes | memoryview  # what a stream is fed: a read (a view of the read buffer)

API_PRODUCE = 0
API_FETCH = 1
API_SASL_HANDSHAKE = 17
API_API_VERSIONS = 18

# request latency buckets (seconds, upper bounds): a Produce with acks=all takes a few
# milliseconds on a healthy cluster, a Fetch waits up to its fetch.max.wait.ms (500 ms by default)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_I32 = struct.Struct(">i")


def describe_bad_size(size_bytes: Chunk) -> str:
    """Explain an impossible frame size; a TLS ClientHello on a plaintext port is the usual one."""
    size_bytes = bytes(size_bytes[:4])
    if size_bytes[:2] == b"\x16\x03":
        return "a TLS handshake arrived on a plaintext Kafka port"
    if size_bytes in (b"GET ", b"POST", b"HEAD", b"PUT ", b"PRI "):
        return "an HTTP request arrived on a Kafka port"
    size = int.from_bytes(size_bytes, "big", signed=True)
    return f"frame size {size} is out of range"


def raw_frame_end(data: Chunk, pos: int, max_frame: int, side: str) -> int:
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


def api_name(api_key: int) -> str:
    """The API's name (``Metadata``), or its key as text when the proxy does not know it."""
    spec = API_KEYS.get(api_key)
    return spec.name if spec is not None else str(api_key)
