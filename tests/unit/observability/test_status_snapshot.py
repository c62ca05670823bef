"""A snapshot of a real proxy started in this process on loopback (the upstream "broker" is a
TCP server that accepts and holds: no Kafka needed to count connections): connections by
listener and target, learned brokers with their edge and upstream addresses, refusals newest
first, certificate expiry, and a certificate file that became unreadable."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
import trustme
from tests.e2e.edge import free_port, free_port_block

from kafka_edge.config import parse_config
from kafka_edge.observability.status import StatusSnapshot
from kafka_edge.relay.phases import Phase
from kafka_edge.relay.server import Proxy
from kafka_edge.relay.status_snapshot import build_snapshot, port_listener_name

HOST = "127.0.0.1"


def _config(tmp_path: Path, upstream_port: int, base: int, sni_port: int) -> dict[str, object]:
    ca = trustme.CA()
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    cert = ca.issue_cert("*.orders.example.com", not_after=not_after)
    cert.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "edge.pem"))
    return {
        "listeners": [{"name": "edge", "bind": f"{HOST}:{sni_port}", "tls": {"certificates": [
            {"cert_file": "edge.pem", "key_file": "edge.key"}]}}],
        "clusters": [
            {"name": "orders", "upstream": {"bootstrap_servers": [f"{HOST}:1"]},
             "sni_routing": {"listener": "edge", "bootstrap_host": "boot.orders.example.com",
                             "broker_host_pattern": "b-{node}.orders.example.com"}},
            {"name": "local",
             "upstream": {"bootstrap_servers": [f"{HOST}:{upstream_port}"],
                          "allowed_hosts": ["127.0.0.0/8"]},
             "port_routing": {"bind_host": HOST, "bootstrap_port": base,
                              "broker_port_base": base + 1, "node_id_min": 1,
                              "node_id_max": 3, "advertised_host": "edge.example.com"}},
        ],
        "observability": {"http_bind": None},
    }


async def _scenario(tmp_path: Path, sni_port: int) -> tuple[StatusSnapshot, StatusSnapshot]:
    held: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.put_nowait(writer)

    upstream = await asyncio.start_server(hold, HOST, 0)
    upstream_port = int(upstream.sockets[0].getsockname()[1])
    base = free_port_block(4, HOST)
    config = parse_config(_config(tmp_path, upstream_port, base, sni_port),
                          base_dir=tmp_path, env={})
    proxy = Proxy(config)
    await proxy.start()
    clients: list[asyncio.StreamWriter] = []
    try:
        local = proxy.clusters["local"]
        assert local.learn([(1, HOST, upstream_port), (2, HOST, upstream_port)], "a test")
        clients += [(await asyncio.open_connection(HOST, port))[1]
                    for port in (base, base, base + 1)]  # the bootstrap twice, node 1 once
        for _ in range(100):  # until all three are connected upstream
            if sum(c.phase is Phase.RELAYING for c in proxy.connections) == 3:
                break
            await asyncio.sleep(0.05)
        assert sum(c.phase is Phase.RELAYING for c in proxy.connections) == 3
        proxy.metrics.refuse("edge", "no_sni", "198.18.0.2:1", "first")
        proxy.metrics.refuse("edge", "unknown_sni", "198.18.0.3:2", "second")
        first = build_snapshot(proxy)
        (tmp_path / "edge.pem").write_text("not a certificate\n")
        for _ in range(100):  # the file watch tries (and fails) to reload it
            if _reload_errors(proxy):
                break
            await asyncio.sleep(0.05)
        assert _reload_errors(proxy)
        second = build_snapshot(proxy)
    finally:
        for writer in clients:
            writer.close()
        await proxy.stop(0)
        upstream.close()
        while not held.empty():  # the proxied connections, and the readiness probe's
            held.get_nowait().close()
        await upstream.wait_closed()
    return first, second


def _reload_errors(proxy: Proxy) -> float:
    value = proxy.metrics.registry.get_sample_value("kafka_edge_certificate_reloads_total",
                                                    {"outcome": "error"})
    return value or 0.0


def test_snapshot_of_a_running_proxy(tmp_path: Path) -> None:
    sni_port = free_port(HOST)
    first, second = asyncio.run(_scenario(tmp_path, sni_port))
    assert StatusSnapshot.from_json(first.to_json()) == first

    orders, local = first.clusters
    assert (orders.routing, orders.listener, orders.bootstrap_edge) == (
        "sni", "edge", f"boot.orders.example.com:{sni_port}")
    assert orders.brokers == () and orders.connections == 0
    assert (local.routing, local.listener) == ("port", port_listener_name("local"))
    (upstream,) = local.upstream_bootstrap
    assert upstream.startswith(f"{HOST}:") and local.bootstrap_connections == 2
    edge_port = int(local.bootstrap_edge.rsplit(":", 1)[1])
    assert local.bootstrap_edge == f"edge.example.com:{edge_port}"
    assert [(b.node_id, b.edge_address, b.upstream_address, b.connections)
            for b in local.brokers] == [
        (1, f"edge.example.com:{edge_port + 1}", upstream, 1),
        (2, f"edge.example.com:{edge_port + 2}", upstream, 0)]

    listeners = {x.name: (x.routing, x.connections) for x in first.listeners}
    assert listeners == {"edge": ("sni", 0), "local.port_routing": ("port", 3)}

    assert [r.detail for r in first.refusals] == ["second", "first"]  # newest first
    (cert,) = first.certificates
    assert cert.listener == "edge" and cert.names == ("*.orders.example.com",)
    assert cert.days_left is not None and 29.9 < cert.days_left <= 30.0 and not cert.error
    # orders' upstream (port 1) answers nothing: ready or not depends on whether the readiness
    # probe has run yet; not ready always comes with its reason
    assert first.instance.ready or first.instance.ready_reason
    assert not first.instance.draining
    assert first.configuration.generation == 1 and first.configuration.last_reload is None

    (broken,) = second.certificates
    assert broken.not_after is None and broken.days_left is None and broken.names == ()
    assert broken.error.startswith("cannot read")


@pytest.mark.parametrize("name", ["edge", "a-b-1"])
def test_port_listener_names_cannot_be_configured_names(name: str) -> None:
    assert "." in port_listener_name(name) and port_listener_name(name).startswith(name)
