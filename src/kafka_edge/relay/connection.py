"""One proxied connection, from accept to close: the events that move it through its phases
(relay/phases.py), and the relay.

Events are the ``on_*`` methods (and the transports' callbacks, which call them); phases change
only through ``_to``, and an event that has no transition in the current phase is a bug:
``_illegal`` logs it and closes the connection. The hot path (``buffer_updated`` on both
sockets) moves no phase and keeps its zero-copy reads (relay/read_buffer.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.request_stream import RequestStream
from kafka_edge.protocol.response_stream import ResponseStream
from kafka_edge.protocol.stream import ConnectionState
from kafka_edge.relay.phases import TRANSITIONS, Phase
from kafka_edge.relay.read_buffer import READ_BUFFER, SharedBufferReader
from kafka_edge.routing.directory import shorten

if TYPE_CHECKING:
    from kafka_edge.observability.metrics import Metrics
    from kafka_edge.relay.cluster import ClusterRuntime

log = logging.getLogger("kafka_edge.relay")
_ids = itertools.count(1)


def next_conn_id() -> str:
    """A connection id unique in this host's processes (pid, then a sequence number)."""
    return f"{os.getpid()}-{next(_ids)}"


_D, _R, _DR, _C = Phase.DIALLING, Phase.RELAYING, Phase.DRAINING, Phase.CLOSED
_F = Phase.FINISHING

# Route resolution: given a just-accepted client transport, which cluster and which target
# (None = bootstrap, int = broker node id). Returning None refuses the connection.
Route = tuple["ClusterRuntime", int | None]

# why a connection holds its client's reads back (ProxyConnection._holds, bits)
_HOLD_DIAL = 1  # the broker connection is not up yet
_HOLD_FLOW = 2  # the broker side's write buffer is full
_HOLD_IN_FLIGHT = 4  # limits.max_in_flight_requests requests await answers
_HOLD_ALL = _HOLD_DIAL | _HOLD_FLOW | _HOLD_IN_FLIGHT

WRITE_HIGH = 1 << 20
WRITE_LOW = 256 << 10


class _Side(SharedBufferReader):
    """One socket of a proxied connection; hands everything to the owning ``ProxyConnection``."""

    __slots__ = ("conn", "transport")

    def __init__(self, conn: ProxyConnection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None


class UpstreamSide(_Side):
    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)

    def buffer_updated(self, nbytes: int) -> None:
        read = READ_BUFFER
        conn = self.conn
        conn.bytes_down += nbytes
        try:
            conn.responses.feed(read.view[:nbytes])
        except ProtocolError as exc:
            read.renew()  # close() below flushes what was queued, maybe views of the buffer
            conn.fail(f"bad frame from broker: {exc}", kind="broker_protocol")
            return
        client = conn.client
        if client is not None and client.get_write_buffer_size():
            read.renew()
        if conn._holds & _HOLD_IN_FLIGHT and len(conn.state.in_flight) <= conn._max_in_flight // 2:
            conn.resume_client_reading(_HOLD_IN_FLIGHT)
        if conn.state.close_reason is not None:  # e.g. a refused SASL mechanism, answer sent
            conn.fail(conn.state.close_reason, kind="refused")
        elif conn.phase is _DR:
            conn.check_drained()

    def eof_received(self) -> bool | None:
        if self.conn.phase is not _F:  # finishing: the proxy closed this side itself
            self.conn.close("broker closed the connection")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn.phase is not _F:
            self.conn.close("broker connection lost" + (f": {exc}" if exc else ""))

    def pause_writing(self) -> None:
        self.conn.pause_client_reading()

    def resume_writing(self) -> None:
        self.conn.resume_client_reading(_HOLD_FLOW)


class ProxyConnection(SharedBufferReader):
    """The client-facing protocol; owns the upstream side, both frame streams and the phase."""

    def __init__(
        self,
        route: Callable[[asyncio.Transport], Route | None],
        registry: set[ProxyConnection],
        max_frame: int,
        max_connections: int = 1 << 30,
        *,
        listener: str = "",
        metrics: Metrics | None = None,
        conn_id: str | None = None,
        max_in_flight: int = 0,
        listener_set: set[ProxyConnection] | None = None,
        client_address: str | None = None,
        vpc_endpoint_id: str | None = None,
    ) -> None:
        # from a PROXY protocol header (relay/proxy_protocol.py): the client behind a load
        # balancer, instead of the socket's peer; the AWS PrivateLink endpoint it came through
        self._client_address = client_address
        self.vpc_endpoint_id = vpc_endpoint_id
        self.listener = listener  # where it was accepted (the status page counts by it)
        self.id = conn_id or next_conn_id()  # on every log line of the connection
        self._metrics = metrics
        # the connections open on the same listener (limits.max_connections counts them)
        self._listener_set = registry if listener_set is None else listener_set
        self._max_in_flight = max_in_flight or (1 << 30)  # limits.max_in_flight_requests
        self._route = route
        self._registry = registry
        self._max_frame = max_frame
        self._max_connections = max_connections
        self.phase = Phase.ACCEPTED
        self.idle_since = (-1, 0.0)  # (bytes moved, when first seen at that count): housekeeping
        self.up_since = (-1, 0.0)  # (bytes from the client, when first seen at that count)
        self.accepted_at = time.monotonic()
        self.client: asyncio.Transport | None = None
        self.upstream = UpstreamSide(self)
        self.cluster: ClusterRuntime | None = None
        self.node_id: int | None = None
        self.peer = "?"
        self.upstream_address: str | None = None  # the broker's, once connected
        self.state = ConnectionState()
        self.requests: RequestStream | None = None  # set when relaying starts
        self.responses: ResponseStream  # set when relaying starts
        self.bytes_up = 0
        self.bytes_down = 0
        self._reported_up = 0  # what flush_counts has already handed to the cluster's metrics
        self._reported_down = 0
        self._task: asyncio.Task[None] | None = None
        self._holds = 0  # why the client's reads are held back: _HOLD_* bits (0 = reading)
        self._upstream_paused = False
        self._early: list[bytes] = []  # client bytes that arrived while dialling
        self._requests_stopped = False  # draining: no request after the frame in progress

    # -- phases ----------------------------------------------------------------------------

    def _to(self, event: str) -> bool:
        """Take the transition ``event`` from the current phase; False (and the connection
        closed) if it has none."""
        target = TRANSITIONS.get((self.phase, event))
        if target is None:
            self._illegal(event)
            return False
        self.phase = target
        return True

    def _illegal(self, event: str) -> None:
        log.error("event %r in phase %s has no transition (a bug); closing",
                  event, self.phase.value, extra=self.log_fields())
        if self.phase is not _C:
            self.close(f"illegal event {event!r} in phase {self.phase.value}",
                       level=logging.ERROR)

    # -- client socket events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.client = transport
        peer = transport.get_extra_info("peername")
        self.peer = self._client_address or (
            f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer))
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        if len(self._listener_set) >= self._max_connections:
            self.phase = _C  # never registered, nothing to report
            message = (f"refused a connection: limits.max_connections "
                       f"({self._max_connections}) reached")
            log.warning("%s", message, extra=self.log_fields())
            if self._metrics is not None:
                self._metrics.refuse(self.listener, "max_connections", self.peer, message)
                self._metrics.limit_hits.labels("max_connections").inc()
            transport.abort()
            return
        self._registry.add(self)
        self._listener_set.add(self)
        try:
            route = self._route(transport)
        except Exception as exc:  # a routing bug must not take the listener down
            log.exception("routing failed", extra=self.log_fields())
            self.close(f"routing error: {exc}")
            return
        if route is None:
            self.close("no route")
            return
        self.on_routed(*route)

    def on_routed(self, cluster: ClusterRuntime, node_id: int | None) -> None:
        """The connection's target is known: dial it, holding the client's bytes meanwhile."""
        if not self._to("routed"):
            return
        self.cluster, self.node_id = cluster, node_id
        cluster.on_accept(self.listener, is_broker=node_id is not None)
        assert self.client is not None
        self.client.pause_reading()
        self._holds = _HOLD_DIAL
        self._task = asyncio.get_running_loop().create_task(self._dial(cluster, node_id))

    async def _dial(self, cluster: ClusterRuntime, node_id: int | None) -> None:
        try:
            transport = await cluster.dial(node_id, self.upstream)
        except asyncio.CancelledError:
            self.close("cancelled while dialling")
            raise
        except (OSError, ssl.SSLError, TimeoutError, LookupError, ValueError) as exc:
            # ValueError: UnicodeError from a host name IDNA cannot encode
            reason = f"cannot reach upstream: {exc}"
            # a broker the cluster does not have, or an address outside the policy: refused
            refusal = ("unknown_node" if isinstance(exc, LookupError) else
                       "not_allowed" if isinstance(exc, PermissionError) else None)
            if refusal is not None and self._metrics is not None:
                self._metrics.refuse(self.listener, refusal, self.peer, reason)
            self.close(reason, level=logging.WARNING)
        except Exception as exc:  # a bug must not leave the client connected to nothing
            log.exception("dialling upstream failed", extra=self.log_fields())
            self.close(f"cannot reach upstream: {exc!r}", level=logging.ERROR)
        else:
            self.on_upstream_connected(transport)

    def on_upstream_connected(self, transport: asyncio.Transport) -> None:
        """The broker connection is up: start relaying (or drop it if the client left)."""
        if not self._to("upstream_connected"):
            transport.close()
            return
        if self.phase is _C:  # the client left (or the proxy drained) while dialling
            transport.close()
            return
        assert self.client is not None and self.cluster is not None
        upstream = transport.get_extra_info("peername")
        self.upstream_address = (f"{upstream[0]}:{upstream[1]}" if isinstance(upstream, tuple)
                                 else None)
        self.requests = RequestStream(self.state, transport.write, self.client.write,
                                      self._max_frame)
        self.responses = ResponseStream(self.state, self.client.write, self.cluster.map_address,
                                        self._max_frame, learn=self.cluster.learn)
        if self._early:  # uvloop may deliver data before a pause in connection_made takes hold
            early, self._early = self._early, []
            for chunk in early:
                self._feed(self.requests, chunk)
                if self.phase is _C:  # a bad frame: nothing after it may reach the broker
                    return
        self.resume_client_reading(_HOLD_DIAL)

    def buffer_updated(self, nbytes: int) -> None:
        read = READ_BUFFER
        requests = self.requests
        if requests is None:  # dialling (the streams exist from relaying on): keep a copy
            self._early.append(bytes(read.view[:nbytes]))
            return
        self._feed(requests, read.view[:nbytes])

    def _feed(self, requests: RequestStream, data: bytes | memoryview) -> None:
        self.bytes_up += len(data)
        if self.phase is not _R:  # draining or finishing
            if not self._requests_stopped and requests.feed_to_boundary(data):
                self._requests_stopped = True  # what follows is dropped, never forwarded
            return
        try:
            requests.feed(data)
        except ProtocolError as exc:
            READ_BUFFER.renew()  # close() flushes what was queued, maybe views of the buffer
            self.fail(f"bad frame from client: {exc}", kind="client_protocol")
            return
        if len(self.state.in_flight) >= self._max_in_flight:
            self._over_in_flight_limit()
        up = self.upstream.transport
        if up is not None and up.get_write_buffer_size():  # a view of the buffer is queued
            READ_BUFFER.renew()

    def eof_received(self) -> bool | None:
        if self.phase is _F:
            self.close("proxy draining: every answer written, the client closed")
        else:
            self.close("client closed the connection", level=logging.DEBUG)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.phase is _F:
            self.close("proxy draining: every answer written, the client went away")
        else:
            self.close("client connection lost" + (f": {exc}" if exc else ""),
                       level=logging.DEBUG)

    # -- flow control ----------------------------------------------------------------------

    @property
    def client_paused(self) -> bool:
        """Whether the proxy holds the client's reads back (dialling, flow control, or the
        limit on requests in flight)."""
        return self._holds != 0

    def pause_writing(self) -> None:  # the client reads slower than the broker sends
        up = self.upstream.transport
        if up is not None and not self._upstream_paused:
            self._upstream_paused = True
            up.pause_reading()

    def resume_writing(self) -> None:
        up = self.upstream.transport
        if up is not None and self._upstream_paused:
            self._upstream_paused = False
            up.resume_reading()

    def pause_client_reading(self, why: int = _HOLD_FLOW) -> None:
        """Hold the client's reads back for ``why`` (the broker's write buffer is full, by
        default); reading resumes once every reason is released."""
        if self.client is not None:
            if not self._holds:
                self.client.pause_reading()
            self._holds |= why

    def resume_client_reading(self, why: int = _HOLD_ALL) -> None:
        if not self._holds & why:
            return
        self._holds &= ~why
        if self._holds or self.phase not in (_R, _DR, _F):
            return  # another reason holds on, or dialling or closed
        if self.client is not None:
            self.client.resume_reading()

    def _over_in_flight_limit(self) -> None:
        """Too many requests await answers: read no more until half of them are answered
        (backpressure, as a broker does by reading one request at a time; no error)."""
        self.pause_client_reading(_HOLD_IN_FLIGHT)
        if self._metrics is not None:
            self._metrics.limit_hits.labels("max_in_flight_requests").inc()
        log.debug("client reads held: %d requests in flight (limits.max_in_flight_requests)",
                  len(self.state.in_flight), extra=self.log_fields())

    # -- draining ------------------------------------------------------------------------------

    def on_drain(self) -> None:
        """The proxy is shutting down: take no request after the frame in progress; finish
        once every answer to what reached the broker has left the proxy."""
        if self.phase is _D:
            self.close("proxy draining (nothing had reached the broker)")
            return
        if self.phase is not _R:
            return  # already draining or closed
        self._to("drain")
        requests = self.requests
        assert requests is not None
        if requests.feed_to_boundary(b""):  # between frames (a partial header is dropped)
            self._requests_stopped = True
        self.resume_client_reading()  # read on: unread input would make the close a reset
        self.check_drained()

    def drained(self) -> bool:
        """Draining and nothing in flight: no request partly sent or awaiting its answer, no
        answer partly written or still in the client transport's buffer."""
        client = self.client
        return (self.phase is _DR and self._requests_stopped and not self.state.in_flight
                and self.responses.between_frames()
                and (client is None or not client.get_write_buffer_size()))

    def check_drained(self) -> None:
        """Finish the connection if it is drained (asked after each broker read while
        draining, and by the proxy's drain loop as the client's buffer empties)."""
        if not self.drained() or not self._to("drained"):
            return
        client = self.client
        upstream = self.upstream.transport
        if upstream is not None:
            self.upstream.transport = None  # nothing more goes there
            upstream.close()
        if client is None or not client.can_write_eof():
            self.close("proxy draining: every answer written")  # TLS: close_notify, then close
            return
        client.write_eof()  # FIN after the last answer; read on until the client closes

    # -- teardown ----------------------------------------------------------------------------

    def fail(self, reason: str, *, kind: str) -> None:
        """Close on an error of ``kind`` (client_protocol, broker_protocol, timeout, refused):
        logged as a warning and counted."""
        if self.phase is _C:
            return
        if self.cluster is not None:
            self.cluster.on_error(kind)
        self.close(reason, level=logging.WARNING)

    def close(self, reason: str, *, level: int = logging.INFO) -> None:
        if self.phase is _C or not self._to("close"):
            return
        self._registry.discard(self)
        self._listener_set.discard(self)
        cluster = self.cluster
        log.log(level, "connection closed: %s", reason,
                extra={**self.log_fields(),
                       "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                       "requests": self.requests.frames if self.requests else 0,
                       "client_id": self._client_id()})
        if cluster is not None:
            self.flush_counts()
            cluster.on_close(self.listener)
        task = self._task
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()
        # close() flushes what is buffered, then closes: nothing already accepted is dropped.
        if self.client is not None:
            self.client.close()
        if self.upstream.transport is not None:
            self.upstream.transport.close()

    def abort(self) -> None:
        """Hard close (the drain deadline)."""
        if self.phase is _DR:
            self.close("proxy shutting down: the drain deadline cut requests or answers in "
                       "flight (limits.drain_timeout_s)", level=logging.WARNING)
        else:
            self.close("proxy shutting down")
        if self.client is not None:
            self.client.abort()
        if self.upstream.transport is not None:
            self.upstream.transport.abort()

    # -- reporting -----------------------------------------------------------------------------

    def flush_counts(self) -> None:
        """Hand the counters gathered on the hot path (plain ints) to the cluster's metrics."""
        cluster = self.cluster
        if cluster is None:
            return
        up, down = self.bytes_up - self._reported_up, self.bytes_down - self._reported_down
        self._reported_up, self._reported_down = self.bytes_up, self.bytes_down
        cluster.record_bytes(up, down)
        if self.requests is None:
            return
        r = self.responses
        cluster.record_answers(rewritten=r.rewritten, endpoints_dropped=r.endpoints_dropped,
                               sasl_handshakes=r.sasl_handshakes,
                               sasl_v0_sessions=r.sasl_v0_sessions,
                               sasl_v0_refused=r.sasl_v0_refused)
        r.rewritten = {}
        r.endpoints_dropped = r.sasl_handshakes = r.sasl_v0_sessions = r.sasl_v0_refused = 0
        state = self.state
        if state.counts or state.latency:
            cluster.record_requests(state.counts, state.latency)
            state.counts, state.latency = {}, {}

    def log_fields(self) -> dict[str, object]:
        """What every log line about this connection carries."""
        cluster = self.cluster
        return {"conn": self.id, "peer": self.peer, "listener": self.listener or None,
                "cluster": cluster.name if cluster else None, "node": self.node_id,
                "upstream": self.upstream_address, "vpc_endpoint": self.vpc_endpoint_id}

    def _client_id(self) -> str | None:
        """The first request's client id for log lines: escaped (it is any bytes), shortened."""
        raw = self.requests.client_id if self.requests is not None else None
        if raw is None:
            return None
        return shorten(raw.decode("utf-8", "backslashreplace"), 64)


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
