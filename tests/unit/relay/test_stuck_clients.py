"""The protective timeouts: a frame left half-sent, no first request (decided in housekeeping,
off the hot path)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kafka_edge.protocol.request_stream import RequestStream
from kafka_edge.protocol.stream import ConnectionState
from kafka_edge.relay.phases import Phase
from kafka_edge.relay.server import _stuck_client


@dataclass
class Conn:
    requests: RequestStream | None = field(default_factory=lambda: RequestStream(
        ConnectionState(), lambda _d: None, lambda _d: None, 1 << 20))
    bytes_up: int = 0
    up_since: tuple[int, float] = (-1, 0.0)
    accepted_at: float = 0.0
    closed: bool = False
    client_paused: bool = False
    phase: Phase = Phase.RELAYING

    def send(self, data: bytes) -> None:
        assert self.requests is not None
        self.requests.feed(data)
        self.bytes_up += len(data)


def metadata(corr: int) -> bytes:
    return struct.pack(">ihhih", 14, 3, 1, corr, 0) + struct.pack(">i", 0)


METADATA = metadata(1)


def check(conn: Conn, now: float) -> str | None:
    """The reason to close, checked against the limit it names."""
    stuck = _stuck_client(conn, now, 30.0, 30.0)  # type: ignore[arg-type]
    if stuck is None:
        return None
    reason, limit = stuck
    assert f"(limits.{limit})" in reason
    return reason


def test_a_half_sent_frame_times_out_after_the_last_byte() -> None:
    conn = Conn()
    conn.send(METADATA)
    conn.send(metadata(2)[:13])
    assert check(conn, 1.0) is None  # the clock starts at the last byte seen
    assert check(conn, 30.0) is None
    conn.send(metadata(2)[13:14])  # progress resets it
    assert check(conn, 45.0) is None
    assert check(conn, 75.5) is not None and "half-sent" in str(check(conn, 76.0))


def test_flow_control_is_not_the_clients_fault() -> None:
    conn = Conn()
    conn.send(METADATA + metadata(2)[:5])
    check(conn, 1.0)
    conn.client_paused = True
    assert check(conn, 100.0) is None


def test_no_first_request() -> None:
    conn = Conn()
    assert check(conn, 29.0) is None
    assert "no complete request" in str(check(conn, 30.0))
    partial = Conn()
    partial.send(METADATA[:16])
    assert "no complete request" in str(_stuck_client(partial, 31.0, 0, 30.0))  # type: ignore[arg-type]
    whole = Conn()
    whole.send(METADATA)
    assert check(whole, 1000.0) is None  # an idle connection after a request is fine


def test_zero_disables_and_dialling_is_left_alone() -> None:
    conn = Conn()
    conn.send(METADATA[:13])
    assert _stuck_client(conn, 1000.0, 0, 0) is None  # type: ignore[arg-type]
    assert check(Conn(requests=None, phase=Phase.DIALLING), 1000.0) is None
    draining = Conn(phase=Phase.DRAINING)
    draining.send(METADATA[:13])
    assert check(draining, 1000.0) is None  # the drain deadline applies
