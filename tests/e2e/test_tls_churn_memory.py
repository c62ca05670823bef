"""Memory stays bounded under TLS connection churn: rounds of TLS connections (TLS towards the
client and towards a real broker), each used for one request and closed. glibc keeps the freed
OpenSSL blocks resident unless handed back (relay/memory.py); without that the resident set
climbs by about 12 KiB per closed connection (docs/performance.md, "Memory under TLS
connection churn")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import struct
import time
from pathlib import Path

import pytest
import trustme
from testbed.cluster import KafkaCluster

from kafka_edge.relay.memory import TRIM_INTERVAL_S
from tests.chaos.scenarios import long_suite, record_memory, rss_mib

from .edge import EdgeProcess, free_port_block, port_routing_config

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
# make test: 6 rounds of 500; make chaos: 20 rounds of 1,000
ROUNDS, PER_ROUND = (20, 1000) if long_suite() else (6, 500)
PARALLEL = 50
# Without the trim, rounds 3-6 of 500 add about 4 x 500 x 12 KiB = 23 MiB (rounds 3-20 of 1,000
# about 200 MiB); with it, the resident set read after a round (once a trim had the time to
# run) stays within a few MiB of round 2's.
BOUND_MIB = 10.0


async def churn(port: int, ctx: ssl.SSLContext) -> int:
    """Open PER_ROUND TLS connections (PARALLEL at a time), one ApiVersions each, close them;
    how many got their answer."""
    gate = asyncio.Semaphore(PARALLEL)
    answered = 0

    async def one(k: int) -> None:
        nonlocal answered
        async with gate:
            reader, writer = await asyncio.open_connection(EDGE_HOST, port, ssl=ctx)
            try:
                writer.write(struct.pack(">ihhih", 12, 18, 0, k, 2) + b"ch")
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                answer = await reader.readexactly(size)
                answered += struct.unpack_from(">i", answer)[0] == k
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()

    await asyncio.gather(*(one(k) for k in range(PER_ROUND)))
    return answered


def test_rss_bounded_under_tls_connection_churn(kafka1: KafkaCluster, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(EDGE_HOST)
    leaf.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
    (tmp_path / "edge.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    base = free_port_block(4, EDGE_HOST)
    node = kafka1.node_ids[0]
    config = port_routing_config(
        upstream=kafka1.bootstrap("SSL").split(","), bind_host=EDGE_HOST, base=base,
        node_ids=(node, node + 1), upstream_tls={"ca_file": kafka1.ca_file})
    config["clusters"][0]["port_routing"]["tls"] = {"certificates": [
        {"cert_file": str(tmp_path / "edge.pem"), "key_file": str(tmp_path / "edge.key")}]}
    # KAFKA_EDGE_SRC: run another build (e.g. the tree before relay/memory.py, to see it fail)
    src = os.environ.get("KAFKA_EDGE_SRC")
    with EdgeProcess(config, tmp_path, env={"PYTHONPATH": src} if src else None) as proc:
        assert proc.proc is not None
        readings = []
        for r in range(ROUNDS):
            assert asyncio.run(churn(base, client)) == PER_ROUND, f"round {r + 1}"
            time.sleep(TRIM_INTERVAL_S + 1.5)  # a trim, if one is due, has run
            readings.append(rss_mib(proc.proc.pid))
    growth = readings[-1] - readings[1]
    rounded = [round(x, 1) for x in readings]
    record_memory("tls_churn", {
        "rounds": ROUNDS, "connections_per_round": PER_ROUND, "rss_mib": rounded,
        "growth_round2_to_last_mib": round(growth, 1), "bound_mib": BOUND_MIB,
        "summary": f"{ROUNDS} rounds of {PER_ROUND} TLS connections (one request each, TLS to a "
                   f"real broker): RSS {rounded[1]} MiB after round 2, {rounded[-1]} after round "
                   f"{ROUNDS} ({growth:+.1f}, bound {BOUND_MIB})"})
    assert growth <= BOUND_MIB, f"RSS per round (MiB): {rounded}"
