"""Pure parts of the operations work: the latency histogram fed in batches, the persisting
condition logger, the TLS handshake failure reasons, the readiness settings."""

from __future__ import annotations

import logging
import ssl
import time

import pytest
from prometheus_client import CollectorRegistry

from kafka_edge.config import ConfigError
from kafka_edge.config.parse import parse_config
from kafka_edge.observability.logs import Persisting
from kafka_edge.observability.metrics import LatencyHistograms
from kafka_edge.protocol.stream import ConnectionState
from kafka_edge.relay.cluster import with_text
from kafka_edge.tls.clienthello import handshake_failure_reason


def test_latency_histogram_from_the_streams_counts_is_cumulative() -> None:
    state = ConnectionState()
    for corr, (api_key, seconds) in enumerate([(0, 0.0005), (0, 0.0015), (0, 20.0), (1, 0.3)]):
        state.in_flight.append((corr, api_key, 9, time.monotonic() - seconds))
        state.in_flight_ids.add(corr)
        state.answer(corr)
    hist = LatencyHistograms()
    hist.add("c", {{0: "Produce", 1: "Fetch"}[k]: h for k, h in state.latency.items()})
    registry = CollectorRegistry()
    registry.register(hist)
    value = registry.get_sample_value
    produce = {"api": "Produce", "cluster": "c"}
    name = "kafka_edge_request_latency_seconds"
    assert value(f"{name}_bucket", {**produce, "le": "0.001"}) == 1
    assert value(f"{name}_bucket", {**produce, "le": "0.0025"}) == 2
    assert value(f"{name}_bucket", {**produce, "le": "10.0"}) == 2
    assert value(f"{name}_bucket", {**produce, "le": "+Inf"}) == 3
    assert value(f"{name}_count", {"api": "Fetch", "cluster": "c"}) == 1
    assert value(f"{name}_bucket", {"api": "Fetch", "cluster": "c", "le": "0.25"}) == 0
    assert 20.002 < (value(f"{name}_sum", produce) or 0) < 20.01
    hist.add("c", {"Produce": state.latency[0]})  # a second report adds up
    assert value(f"{name}_count", produce) == 6


def test_a_persisting_condition_is_logged_at_start_bounded_while_it_lasts_and_at_end(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.persisting")
    cond = Persisting(logger, every=3600)
    with caplog.at_level(logging.INFO, logger="test.persisting"):
        for _ in range(50):
            cond.persists("k", "cluster %s down", "a")
        cond.ended("k", "cluster %s up", "a")
        cond.ended("k", "cluster %s up", "a")  # nothing to end any more
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "cluster a down"
    assert len(messages) == 2 and messages[1].startswith("cluster a up (after ")


def test_a_persisting_condition_repeats_after_its_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.persisting2")
    cond = Persisting(logger, every=0)
    with caplog.at_level(logging.INFO, logger="test.persisting2"):
        cond.persists("k", "x")
        cond.persists("k", "x")
    assert "(still, for" in caplog.records[1].getMessage()
    assert "seen 2 times" in caplog.records[1].getMessage()


@pytest.mark.parametrize(("exc", "reason"), [
    (TimeoutError(), "timeout"),
    (ssl.SSLError(1, "[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol"), "protocol_version"),
    (ssl.SSLError(1, "[SSL: NO_SHARED_CIPHER] no shared cipher"), "no_shared_cipher"),
    (ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"), "certificate"),
    (ConnectionResetError(104, "reset"), "closed"),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "closed"),
    (ssl.SSLError(1, "[SSL: HTTP_REQUEST] http request"), "other"),
])
def test_handshake_failure_reasons(exc: BaseException, reason: str) -> None:
    assert handshake_failure_reason(exc) == reason


def _config(readiness: object) -> dict[str, object]:
    return {"clusters": [{"name": "a", "upstream": {"bootstrap_servers": ["k:9092"]},
                          "port_routing": {"bind_host": "127.0.0.1", "bootstrap_port": 19092,
                                           "broker_port_base": 19093,
                                           "advertised_host": "edge"}}],
            "observability": {"readiness": readiness}}


def test_readiness_settings() -> None:
    config = parse_config(_config({"probe_interval_s": 2, "window_s": 10,
                                   "require_clusters": False}), env={})
    r = config.observability.readiness
    assert (r.probe_interval_s, r.window_s, r.require_clusters) == (2, 10, False)
    with pytest.raises(ConfigError) as err:
        parse_config(_config({"probe_interval_s": 10, "window_s": 5}), env={})
    assert "observability.readiness.window_s: expected at least probe_interval_s" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config(_config({"probe_every": 5}), env={})
    assert "observability.readiness" in str(err.value) and "probe_every" in str(err.value)


def test_a_wordless_connect_failure_says_what_happened() -> None:
    """asyncio's connect timeout carries no text: the log line and the close reason would end
    in an empty string."""
    timed_out = with_text(TimeoutError(), 10.0)
    assert isinstance(timed_out, TimeoutError)
    assert str(timed_out) == "timed out after 10 s (upstream.connect_timeout_s)"
    assert str(with_text(ConnectionResetError(), 1.0)) == "ConnectionResetError"
    refused = ConnectionRefusedError(111, "Connection refused")
    assert with_text(refused, 1.0) is refused
