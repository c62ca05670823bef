"""Reading ``limits`` and ``observability`` (with its ``readiness``): the settings of the edge
process as a whole rather than of one listener or cluster. Every key has a default, and an absent
or ``null`` section means all the defaults.
"""

from __future__ import annotations

from kafka_edge.config._reader import (
    BOOLEAN,
    At,
    Conv,
    Section,
    choice,
    integer,
    nullable,
    seconds,
)
from kafka_edge.config._scalars import HOST_PORT
from kafka_edge.config.model import Limits, LogFormat, LogLevel, Observability, Readiness

DEFAULT_HTTP_BIND = "127.0.0.1:9180"
"""Outside 9092..9156, the ports of the common "bootstrap 9092, brokers 0..63 after it" layout."""

_LOG_LEVELS: dict[str, LogLevel] = {
    "debug": "debug", "info": "info", "warning": "warning", "error": "error",
}
_LOG_FORMATS: dict[str, LogFormat] = {"text": "text", "json": "json"}


def _limits(value: object, at: At) -> Limits:
    keys = ("max_frame_bytes", "max_connections", "idle_timeout_s", "drain_timeout_s",
            "incomplete_frame_timeout_s", "first_request_timeout_s", "max_in_flight_requests")
    s = Section(value, at, keys, null_is_empty=True)
    max_frame_bytes = s.get("max_frame_bytes", integer(1, 2**31 - 1), 104_857_600)
    max_connections = s.get("max_connections", integer(1), 10_000)
    idle_timeout_s = s.get("idle_timeout_s", seconds(allow_zero=True), 0.0)
    drain_timeout_s = s.get("drain_timeout_s", seconds(allow_zero=True), 30.0)
    incomplete = s.get("incomplete_frame_timeout_s", seconds(allow_zero=True), 30.0)
    first_request = s.get("first_request_timeout_s", seconds(allow_zero=True), 30.0)
    max_in_flight = s.get("max_in_flight_requests", integer(1, 1 << 20), 1000)
    s.finish()
    return Limits(
        max_frame_bytes=max_frame_bytes,
        max_connections=max_connections,
        idle_timeout_s=idle_timeout_s,
        drain_timeout_s=drain_timeout_s,
        incomplete_frame_timeout_s=incomplete,
        first_request_timeout_s=first_request,
        max_in_flight_requests=max_in_flight,
    )


def _observability(value: object, at: At) -> Observability:
    s = Section(value, at, ("http_bind", "log_level", "log_format", "readiness"),
                null_is_empty=True)
    http_bind = s.get("http_bind", nullable(HOST_PORT), DEFAULT_HTTP_BIND)
    log_level = s.get("log_level", choice(_LOG_LEVELS), "info")
    log_format = s.get("log_format", choice(_LOG_FORMATS), "text")
    readiness = s.section("readiness", READINESS)
    s.finish()
    return Observability(http_bind=http_bind, log_level=log_level, log_format=log_format,
                         readiness=readiness)


def _readiness(value: object, at: At) -> Readiness:
    s = Section(value, at, ("probe_interval_s", "window_s", "require_clusters"),
                null_is_empty=True)
    interval = s.get("probe_interval_s", seconds(allow_zero=False), 5.0)
    window = s.get("window_s", seconds(allow_zero=False), 30.0)
    require = s.get("require_clusters", BOOLEAN, True)
    if window < interval:
        s.fail("window_s", f"expected at least probe_interval_s ({interval:g}), got {window:g}: "
                           "a cluster would be unreachable between two successful probes")
    s.finish()
    return Readiness(probe_interval_s=interval, window_s=window, require_clusters=require)


READINESS = Conv("a mapping with probe_interval_s, window_s and require_clusters", _readiness)


LIMITS = Conv("a mapping of limits", _limits)
OBSERVABILITY = Conv("a mapping with http_bind, log_level and log_format", _observability)
