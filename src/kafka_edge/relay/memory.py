"""Giving memory freed by closed connections back to the system.

Each TLS connection makes OpenSSL allocate many small blocks with the C allocator, and the
relay's objects for it partly sit in reference cycles. When the connection closes, the cycles
wait for a full garbage collection, and what is freed stays inside glibc's heap: malloc returns
free memory to the kernel only from the top of its heap, so after connection churn the freed
blocks stay resident, scattered among live ones, and the resident set climbs with every burst.

So, after churn, a full collection frees what the closed connections left in cycles, then
``malloc_trim(0)`` hands every free page inside the heap back to the kernel (madvise). Both
walk what they manage (milliseconds per hundred MiB, during which the event loop waits): they
run at most every ``TRIM_INTERVAL_S``, and only if connections came or went since the last look
(accepted, closed or refused: the moments memory is freed). A process whose connections stay
open never does this; one under churn does it every few seconds, and once more after the churn
stops. (The resident set itself is no signal: freeing does not lower it.) The figures, and the
other options measured against this one, are in docs/performance.md ("Memory under TLS
connection churn").

Off glibc (musl, macOS) there is no ``malloc_trim`` and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable

from kafka_edge.observability.metrics import Metrics

log = logging.getLogger("kafka_edge.server")

#: Seconds between two looks at the connection counts (and at most one trim).
TRIM_INTERVAL_S = 5.0


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the running process's own C library
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def connection_activity(metrics: Metrics) -> tuple[float, ...]:
    """Numbers of which one moves whenever a connection is accepted, closed or refused: the
    accepted and refused counters, the failed handshakes, and the open connections (which fall
    as they close). Kept apart: a sum could come back to the same value."""
    return tuple(
        sum(sample.value for metric in family.collect() for sample in metric.samples
            if not sample.name.endswith("_created"))
        for family in (metrics.connections, metrics.active, metrics.refused,
                       metrics.tls_failures))


async def trim_after_churn(activity: Callable[[], object],
                           interval_s: float = TRIM_INTERVAL_S) -> None:
    """Every ``interval_s``, if ``activity()`` moved since the last look, collect the garbage
    and trim the C heap."""
    trim = malloc_trim()
    if trim is None:
        log.debug("no malloc_trim in this C library: freed memory is left to the allocator")
        return
    seen = activity()
    while True:
        await asyncio.sleep(interval_s)
        now = activity()
        if now == seen:
            continue
        seen = now
        started = time.monotonic()
        gc.collect()
        collected = time.monotonic()
        trim(0)
        log.debug("returned freed memory to the system", extra={
            "gc_ms": round((collected - started) * 1000, 1),
            "trim_ms": round((time.monotonic() - collected) * 1000, 1)})
