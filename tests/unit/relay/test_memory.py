"""relay/memory.py: what counts as connection activity, and that the trim runs after activity
only (the memory it bounds is measured in tests/e2e/test_tls_churn_memory.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.memory import connection_activity, malloc_trim, trim_after_churn


def test_activity_moves_on_accept_close_refusal_and_failed_handshake() -> None:
    m = Metrics()
    seen = [connection_activity(m)]
    m.connections.labels("l", "c", "broker").inc()
    m.active.labels("l", "c").inc()
    seen.append(connection_activity(m))
    m.active.labels("l", "c").dec()  # closed
    seen.append(connection_activity(m))
    m.refuse("l", "not_tls", "198.18.0.1:1", "not a TLS handshake")
    seen.append(connection_activity(m))
    m.tls_failures.labels("l", "timeout").inc()
    seen.append(connection_activity(m))
    assert len(set(seen)) == len(seen), seen
    m.requests.labels("c", "Produce", "9").inc()  # traffic on open connections is no churn
    assert connection_activity(m) == seen[-1]


def test_malloc_trim_is_found_on_glibc() -> None:
    trim = malloc_trim()
    assert trim is not None, "this test bed runs on glibc (Debian)"
    assert trim(0) in (0, 1)


def test_trims_only_after_activity(caplog: pytest.LogCaptureFixture) -> None:
    activity = [0.0]

    async def run() -> None:
        task = asyncio.get_running_loop().create_task(
            trim_after_churn(lambda: activity[0], interval_s=0.05))
        await asyncio.sleep(0.3)  # nothing moved: no trim
        quiet = _trims(caplog)
        activity[0] = 1.0
        await asyncio.sleep(0.3)  # one move: one trim
        task.cancel()
        assert quiet == 0
        assert _trims(caplog) == 1

    with caplog.at_level(logging.DEBUG, logger="kafka_edge.server"):
        asyncio.run(run())


def _trims(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == "returned freed memory to the system")
