"""The dialler's own check of the upstream address policy (defence in depth).

The broker directory never learns an address outside the policy (``learn_answer`` refuses the
whole answer), so against a correct cluster ``kafka_edge_upstream_dials_refused`` cannot move
(tests/e2e/test_zz_metrics_moved.py lists it as such). Here a bug is simulated instead: an
address outside the policy is put into the directory by hand, and ``ClusterRuntime.dial`` must
refuse it without connecting, and count it.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections.abc import Iterator

import pytest

from kafka_edge.config import parse_config
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.routing.routes import Routes

OUTSIDE = "127.0.0.77"  # not a bootstrap host, and an IP bootstrap allows nothing else
NODE = 1
REFUSED = "kafka_edge_upstream_dials_refused_total"


@pytest.fixture
def sentinel() -> Iterator[socket.socket]:
    """A listener on the address outside the policy: it must never see a connection."""
    with socket.create_server((OUTSIDE, 0), backlog=8) as sock:
        sock.setblocking(False)
        yield sock


def _accepted(sock: socket.socket, wait: float = 0.3) -> int:
    """Connections that reached ``sock`` (accepted and closed here)."""
    count = 0
    while select.select([sock], [], [], wait)[0]:
        conn, _ = sock.accept()
        conn.close()
        count += 1
        wait = 0.0
    return count


def _runtime(allowed_hosts: list[str] | None = None) -> tuple[ClusterRuntime, Metrics]:
    upstream: dict[str, object] = {"bootstrap_servers": ["127.0.0.1:9"],
                                   "connect_timeout_s": 2}
    if allowed_hosts is not None:
        upstream["allowed_hosts"] = allowed_hosts
    config = parse_config({"clusters": [{
        "name": "t",
        "upstream": upstream,
        "port_routing": {"bind_host": "127.0.0.2", "bootstrap_port": 30000,
                         "broker_port_base": 30001, "node_id_min": 0, "node_id_max": 3,
                         "advertised_host": "127.0.0.2"},
    }]}, env={})
    metrics = Metrics()
    return ClusterRuntime(config.clusters[0], metrics, Routes(config)), metrics


def _refused(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value(REFUSED, {"cluster": "t"}) or 0.0


def test_an_address_outside_the_policy_in_the_directory_is_not_dialled(
        sentinel: socket.socket, caplog: pytest.LogCaptureFixture) -> None:
    runtime, metrics = _runtime()
    port = sentinel.getsockname()[1]
    assert not runtime.directory.is_allowed((OUTSIDE, port))
    # what a bug would do: bypass learn_answer (which checks the policy) and write the address
    runtime.directory._nodes[NODE] = (OUTSIDE, port)
    assert runtime.directory.upstream_for(NODE) == (OUTSIDE, port)

    async def dial() -> None:
        await runtime.dial(NODE, asyncio.Protocol())

    with caplog.at_level(logging.ERROR, logger="kafka_edge.cluster"), \
            pytest.raises(PermissionError, match="outside the upstream address policy"):
        asyncio.run(dial())
    assert _accepted(sentinel) == 0
    assert _refused(metrics) == 1
    assert f"refused to dial {OUTSIDE}:{port}" in caplog.text
    assert runtime.last_upstream_ok == 0.0  # nothing connected


def test_the_same_address_inside_the_policy_is_dialled(sentinel: socket.socket) -> None:
    """The control: with the address allowed, the same dial reaches the sentinel (so the
    sentinel would have seen a connection above, had one been made)."""
    runtime, metrics = _runtime(allowed_hosts=[OUTSIDE])
    port = sentinel.getsockname()[1]
    runtime.directory._nodes[NODE] = (OUTSIDE, port)

    async def dial() -> None:
        transport = await runtime.dial(NODE, asyncio.Protocol())
        transport.close()

    asyncio.run(dial())
    assert _accepted(sentinel, wait=2.0) == 1
    assert _refused(metrics) == 0
