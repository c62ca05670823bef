"""The supervisor's sum of its workers' metrics (observability/merge.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from kafka_edge.observability import merge


def _worker(connections: int, active: int, known: int, latencies: list[float],
            reloads: int) -> list[merge.Metric]:
    r = CollectorRegistry()
    Counter("kafka_edge_connections", "c", ["cluster"], registry=r).labels("a").inc(connections)
    Gauge("kafka_edge_active_connections", "a", ["cluster"], registry=r).labels("a").set(active)
    Gauge("kafka_edge_known_brokers", "k", ["cluster"], registry=r).labels("a").set(known)
    Counter("kafka_edge_config_reloads", "r", ["outcome"], registry=r).labels("ok").inc(reloads)
    h = Histogram("kafka_edge_request_latency_seconds", "l", ["api"], registry=r,
                  buckets=(0.01, 0.1))
    for v in latencies:
        h.labels("Produce").observe(v)
    return merge.parse(generate_latest(r).decode())


def _samples(families: list[merge.Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families for s in f.samples}


def test_counters_and_histograms_add_up_gauges_follow_their_rule() -> None:
    one = _worker(3, 2, 3, [0.005, 0.05], reloads=1)
    two = _worker(4, 1, 2, [0.5], reloads=1)
    merged = merge.parse(merge.render(merge.merge([one, two])).decode())
    got = _samples(merged)
    assert got[("kafka_edge_connections_total", (("cluster", "a"),))] == 7
    assert got[("kafka_edge_active_connections", (("cluster", "a"),))] == 3
    assert got[("kafka_edge_known_brokers", (("cluster", "a"),))] == 3  # max, not 5
    assert got[("kafka_edge_config_reloads_total", (("outcome", "ok"),))] == 1  # one reload
    buckets = {s.labels["le"]: s.value for f in merged for s in f.samples
               if s.name == "kafka_edge_request_latency_seconds_bucket"}
    assert buckets == {"0.01": 1, "0.1": 2, "+Inf": 3}
    assert got[("kafka_edge_request_latency_seconds_count", (("api", "Produce"),))] == 3
    created = [v for (n, _), v in got.items() if n == "kafka_edge_connections_created"]
    assert len(created) == 1 and created[0] == min(
        s.value for f in one + two for s in f.samples if s.name == "kafka_edge_connections_created")


def test_retired_workers_keep_their_counts_but_not_their_gauges() -> None:
    retired = merge.Retired()
    retired.add(_worker(5, 4, 3, [0.005], reloads=0))
    live = _worker(1, 1, 3, [], reloads=0)
    got = _samples(merge.merge([retired.families, live]))
    assert got[("kafka_edge_connections_total", (("cluster", "a"),))] == 6
    assert got[("kafka_edge_active_connections", (("cluster", "a"),))] == 1  # the live one's
    assert got[("kafka_edge_request_latency_seconds_count", (("api", "Produce"),))] == 1
