"""Memory per idle connection: N connections opened through kafka-edge to a real broker, each
past its ApiVersions exchange, then held open; the growth of the edge's resident set (its
supervisor and two workers, summed) divided by N. Plaintext on both sides, and TLS on both sides
(as in front of MSK). N is 1,000 in ``make test`` and 10,000 in ``make chaos``.

Two workers, as ``--workers auto`` runs on a 2-core machine: each connection holds two
descriptors in the edge, and the hard RLIMIT_NOFILE here (20,000, which the test bed cannot
raise) is below the 20,000-odd one process would need for 10,000."""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from bench.measure import hold_idle_connections
from testbed.cluster import KafkaCluster

from tests.chaos.scenarios import long_suite, record_memory, rss_mib

from .edge import EdgeProcess, free_port_block, port_routing_config

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
CONNECTIONS = 10_000 if long_suite() else 1_000
# KiB of resident set per idle connection, client and broker side together. Measured here
# (docs/reliability.md): about 5-8 plaintext, 65-70 TLS (OpenSSL's state for two sessions).
BOUND_KIB = {"plaintext": 12.0, "tls": 80.0}


WORKERS = 2


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """``make test``: the shared kafka1. ``make chaos``: a broker of its own with a 2 GiB heap,
    since a broker holds about 70 KiB of heap per TLS connection (512 MiB runs out near 7,000)."""
    if not long_suite():
        yield request.getfixturevalue("kafka1")
        return
    big = KafkaCluster.start(tmp_path_factory.mktemp("kafka-idle"), brokers=1,
                             security=["PLAINTEXT", "SSL"], heap="2g")
    try:
        yield big
    finally:
        big.stop(timeout=20.0)


def _descriptors_for(connections: int) -> None:
    """Each connection holds a descriptor in this process and two in the worker that took it
    (workers inherit the limit; SO_REUSEPORT spreads connections about evenly): the soft limit
    raised to the hard one, which must leave room."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = int(2 * connections / WORKERS * 1.2) + 1000
    assert hard >= want, f"RLIMIT_NOFILE hard limit {hard} < {want} needed per worker"
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _edge_rss_mib(supervisor: int) -> float:
    """The resident sets of the supervisor and its workers, summed."""
    out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True,
                         check=False)
    workers = [int(x) for x in out.stdout.split()]
    assert len(workers) == WORKERS, workers
    return sum(rss_mib(pid) for pid in [supervisor, *workers])


@pytest.mark.parametrize("mode", ["plaintext", "tls"])
def test_memory_per_idle_connection(cluster: KafkaCluster, tmp_path: Path, mode: str) -> None:
    _descriptors_for(CONNECTIONS)
    base = free_port_block(4, EDGE_HOST)
    node = cluster.node_ids[0]
    ca_file = None
    if mode == "tls":
        ca = trustme.CA()
        leaf = ca.issue_cert(EDGE_HOST)
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
        (tmp_path / "edge.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
        ca_file = str(tmp_path / "ca.pem")
        config = port_routing_config(
            upstream=cluster.bootstrap("SSL").split(","), bind_host=EDGE_HOST, base=base,
            node_ids=(node, node + 1), upstream_tls={"ca_file": cluster.ca_file})
        config["clusters"][0]["port_routing"]["tls"] = {"certificates": [
            {"cert_file": str(tmp_path / "edge.pem"), "key_file": str(tmp_path / "edge.key")}]}
    else:
        config = port_routing_config(upstream=cluster.bootstrap().split(","), bind_host=EDGE_HOST,
                                     base=base, node_ids=(node, node + 1))
    config["limits"] = {"max_connections": CONNECTIONS + 1000}
    with EdgeProcess(config, tmp_path, args=["--workers", str(WORKERS)]) as edge:
        assert edge.proc is not None
        pid = edge.proc.pid
        # warm up (first connections load code paths and caches), then let a trim run
        hold_idle_connections(EDGE_HOST, base, ca_file=ca_file, count=200, measure=lambda: 0,
                              settle=0.0)
        time.sleep(6)
        before = _edge_rss_mib(pid)
        opened, after_kib = hold_idle_connections(
            EDGE_HOST, base, ca_file=ca_file, count=CONNECTIONS,
            measure=lambda: int(_edge_rss_mib(pid) * 1024), settle=3.0)
        assert edge.proc.poll() is None, edge.log()[-2000:]
    per_conn = (after_kib - before * 1024) / opened
    record_memory(f"idle_connections_{mode}", {
        "connections": opened, "rss_before_mib": round(before, 1),
        "rss_open_mib": round(after_kib / 1024, 1), "kib_per_connection": round(per_conn, 1),
        "bound_kib": BOUND_KIB[mode],
        "summary": f"{opened:,} idle connections, {mode} on both sides, 2 workers: RSS "
                   f"{before:.1f} -> "
                   f"{after_kib / 1024:.1f} MiB, {per_conn:.1f} KiB per connection (bound "
                   f"{BOUND_KIB[mode]:g})"})
    assert opened == CONNECTIONS
    assert per_conn <= BOUND_KIB[mode], f"{per_conn:.1f} KiB per idle connection"
