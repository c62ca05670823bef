"""Sum the workers' metrics into one exposition: what one scrape of a supervised instance shows.

Each worker keeps its own registry (its hot path counts in plain integers and hands them over
once a second; prometheus-client's multiprocess mode would put a locked write to a shared file
on every update instead, and cannot take the latency histogram's pre-bucketed counts). The
supervisor reads every worker's /metrics over a local socket and adds them up here: counters and
histograms are summed, ``*_created`` takes the earliest, and gauges follow ``GAUGE_MERGE`` (sum
unless named there: a value every worker reports alike is not multiplied by the worker count).

``Retired`` keeps what workers that have exited had counted, so a total does not fall back when
a worker is replaced (counted up to its last scrape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["Metric", "Retired", "merge", "parse", "render"]

SampleKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels
Combine = Callable[[float, float], float]

# Gauges every worker reports alike (configuration, certificates, cluster reachability seen by
# each worker's own probe): the instance's value is not the sum.
GAUGE_MERGE: dict[str, Combine] = {
    "kafka_edge_known_brokers": max,
    "kafka_edge_certificate_expiry_seconds": min,
    "kafka_edge_config_generation": max,
    "kafka_edge_config_last_reload_success": min,
    "kafka_edge_cluster_reachable": min,
    "kafka_edge_build_info": max,
    "kafka_edge_ready": min,
}
# Counters every worker increments for the same event (each worker reloads the same file).
COUNTER_MERGE: dict[str, Combine] = {
    "kafka_edge_config_reloads": max,
    "kafka_edge_certificate_reloads": max,
}


def parse(exposition: str) -> list[Metric]:
    return list(text_string_to_metric_families(exposition))


def _key(name: str, labels: dict[str, str]) -> SampleKey:
    return name, tuple(sorted(labels.items()))


def _combine_for(family: Metric, sample_name: str) -> Combine:
    if sample_name.endswith("_created"):
        return min
    if family.type == "gauge":
        return GAUGE_MERGE.get(family.name, _add)
    if family.type == "counter":
        return COUNTER_MERGE.get(family.name, _add)
    return _add


def _add(a: float, b: float) -> float:
    return a + b


def merge(workers: Iterable[list[Metric]]) -> list[Metric]:
    """One family list from several workers' (the same family in several is combined)."""
    heads: dict[str, Metric] = {}
    values: dict[str, dict[SampleKey, float]] = {}
    for families in workers:
        for family in families:
            heads.setdefault(family.name, family)
            samples = values.setdefault(family.name, {})
            for s in family.samples:
                key = _key(s.name, s.labels)
                if key in samples:
                    samples[key] = _combine_for(family, s.name)(samples[key], s.value)
                else:
                    samples[key] = s.value
    out = []
    for name, head in heads.items():
        family = Metric(name, head.documentation, head.type, head.unit)
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
        out.append(family)
    return out


class Retired:
    """The monotonic part (counters, histograms) of what exited workers had counted."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def add(self, families: list[Metric]) -> None:
        kept = [f for f in families if f.type in ("counter", "histogram", "summary")]
        self.families = merge([self.families, kept])


class _Static(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(families))
    return generate_latest(registry)
