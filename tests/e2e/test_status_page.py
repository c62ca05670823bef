"""The status page of a real kafka-edge in front of a real Kafka cluster, read by headless
Chromium (Debian's ``chromium``, driven by Playwright).

kafka-edge serves two clusters (both the test bed's 3-broker cluster): ``orders`` by SNI on the
listener ``edge``, ``payments`` port per broker with TLS. A real client (librdkafka, through
confluent-kafka) produces through ``payments`` and stays connected; a TLS connection to
``orders``' bootstrap name stays open; a client sending the server name
``<script>alert(1)</script>`` is refused. The page must show all of it, the hostile name as
text. A screenshot is kept under the test's tmp path and in tests/artifacts/status-page.png.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import struct
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from testbed.cluster import KafkaCluster

from kafka_edge.observability.status import StatusSnapshot
from kafka_edge.relay.status_snapshot import port_listener_name

from .edge import REPO, EdgeProcess, free_port, free_port_block

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download is not used: Debian's Chromium, with a fresh profile
# (Playwright gives each launch a new temporary user-data-dir) and nothing reaching out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACT = REPO / "tests" / "artifacts" / "status-page.png"
HOST = "127.0.0.1"
HOSTILE = "<script>alert(1)</script>"
ORDERS_BOOT = "boot.orders.example.com"


def _pem_pair(ca: trustme.CA, name: str, days: int, folder: Path) -> dict[str, str]:
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    cert = ca.issue_cert(name, not_after=not_after)
    stem = name.replace("*", "wildcard")
    cert.private_key_pem.write_to_path(str(folder / f"{stem}.key"))
    cert.cert_chain_pems[0].write_to_path(str(folder / f"{stem}.pem"))
    return {"cert_file": str(folder / f"{stem}.pem"), "key_file": str(folder / f"{stem}.key")}


def _config(kafka: KafkaCluster, ca: trustme.CA, work: Path, sni_port: int,
            base: int) -> dict[str, Any]:
    upstream = {"bootstrap_servers": kafka.bootstrap().split(",")}
    return {
        "listeners": [{"name": "edge", "bind": f"{HOST}:{sni_port}", "tls": {"certificates": [
            _pem_pair(ca, "*.orders.example.com", 30, work)]}}],
        "clusters": [
            {"name": "orders", "upstream": upstream,
             "sni_routing": {"listener": "edge", "bootstrap_host": ORDERS_BOOT,
                             "broker_host_pattern": "b-{node}.orders.example.com"}},
            {"name": "payments", "upstream": upstream,
             "port_routing": {"bind_host": HOST, "bootstrap_port": base,
                              "broker_port_base": base + 1,
                              "node_id_min": min(kafka.node_ids),
                              "node_id_max": max(kafka.node_ids),
                              "advertised_host": "localhost",
                              "tls": {"certificates": [_pem_pair(ca, "localhost", 10, work)]}}},
        ],
    }


def _api_versions(sock: ssl.SSLSocket) -> None:
    payload = struct.pack(">hhih", 18, 0, 7, 6) + b"status"
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    head = sock.recv(8)
    assert len(head) == 8 and struct.unpack(">ii", head)[1] == 7


@contextmanager
def _producing_client(bootstrap: str, ca: Path) -> Iterator[None]:
    """A librdkafka producer that has delivered records through the edge and stays connected."""
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "security.protocol": "SSL",
                         "ssl.ca.location": str(ca), "broker.address.family": "v4",
                         "acks": "all", "message.timeout.ms": 60_000})
    topic = f"status-{uuid.uuid4().hex[:8]}"
    for i in range(20):
        producer.produce(topic, key=b"%d" % i, value=b"v%d" % i,
                         on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
    assert producer.flush(60) == 0 and errors == []
    try:
        yield
    finally:
        del producer


def _refused_hostile_name(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((HOST, port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError) as refused:
        ctx.wrap_socket(raw, server_hostname=HOSTILE)
    return str(refused.value)


def test_status_page_in_headless_chromium(kafka3: KafkaCluster, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian package chromium; scripts/setup.sh installs "
                    "it)")
    from playwright.sync_api import sync_playwright

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    sni_port, base = free_port(HOST), free_port_block(1 + len(kafka3.node_ids), HOST)
    config = _config(kafka3, ca, tmp_path, sni_port, base)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with EdgeProcess(config, tmp_path) as proc, \
            _producing_client(f"localhost:{base}", tmp_path / "ca.pem"), \
            socket.create_connection((HOST, sni_port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=ORDERS_BOOT) as orders_conn:
        _api_versions(orders_conn)  # relayed: the connection is open and routed
        assert "unrecognized name" in _refused_hostile_name(sni_port).lower()

        with urllib.request.urlopen(proc.http + "/status.json", timeout=10) as resp:
            snapshot = StatusSnapshot.from_json(resp.read())
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert any(HOSTILE in r.detail for r in snapshot.refusals)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                response = page.goto(proc.http + "/")
                assert response is not None and response.status == 200
                headers = response.headers
                assert headers["content-type"] == "text/html; charset=utf-8"
                assert headers["content-security-policy"].startswith("default-src 'none';")
                assert headers["x-content-type-options"] == "nosniff"
                dom = _read_dom(page)
                page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
            finally:
                browser.close()
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "status-page.png", ARTIFACT)
    _check_dom(dom, kafka3, base, sni_port, console)


# What the page shows, read in the browser: each table's rows as {cell class: text}.
READ_DOM = """() => {
  const rows = (sel) => [...document.querySelectorAll(sel)].map(tr => {
    const out = {_class: tr.className};
    for (const [k, v] of Object.entries(tr.dataset)) out['data-' + k] = v;
    for (const td of tr.querySelectorAll('td'))
      out[td.className.split(' ').filter(c => c !== 'num').join(' ')] = td.textContent;
    return out;
  });
  return {
    scripts: document.querySelectorAll('script').length,
    images: document.querySelectorAll('img, iframe, object, embed, link').length,
    clusters: rows('table#clusters tr.cluster'),
    brokers: rows('table#brokers tr.broker'),
    listeners: rows('table#listeners tr.listener'),
    certificates: rows('table#certificates tr.certificate'),
    refusals: rows('table#refusals tr.refusal'),
    state: document.querySelector('#instance td.state').textContent,
    borderCollapse: getComputedStyle(document.querySelector('table#clusters')).borderCollapse,
  };
}"""


def _read_dom(page: Any) -> dict[str, Any]:
    dom = page.evaluate(READ_DOM)
    assert isinstance(dom, dict)
    return dom


def _check_dom(dom: dict[str, Any], kafka: KafkaCluster, base: int, sni_port: int,
               console: list[str]) -> None:
    assert dom["scripts"] == 0 and dom["images"] == 0, "the page gained markup it should not"
    assert dom["borderCollapse"] == "collapse", "the style sheet was blocked (CSP hash)"
    assert not [m for m in console if "Content Security Policy" in m], console
    assert dom["state"] == "ready"

    clusters = {c["data-cluster"]: c for c in dom["clusters"]}
    assert set(clusters) == {"orders", "payments"}
    assert clusters["orders"]["routing"] == "sni"
    assert clusters["orders"]["bootstrap"] == f"{ORDERS_BOOT}:{sni_port}"
    assert int(clusters["orders"]["bootstrap-connections"]) >= 1  # the held TLS connection
    assert clusters["payments"]["routing"] == "port"
    assert clusters["payments"]["bootstrap"] == f"localhost:{base}"
    assert clusters["payments"]["upstream"] == ", ".join(kafka.bootstrap().split(","))

    brokers = {int(b["node"]): b for b in dom["brokers"] if b["data-cluster"] == "payments"}
    assert sorted(brokers) == kafka.node_ids  # learned from the metadata the client asked
    first = min(kafka.node_ids)
    for node, row in brokers.items():
        assert row["edge"] == f"localhost:{base + 1 + node - first}"
        assert row["upstream"] == kafka.address(node)
    assert sum(int(b["connections"]) for b in brokers.values()) >= 1  # the producer's

    listeners = {x["data-listener"]: x for x in dom["listeners"]}
    assert set(listeners) == {"edge", port_listener_name("payments")}
    assert int(listeners["edge"]["connections"]) >= 1
    assert int(listeners[port_listener_name("payments")]["connections"]) >= 1

    certs = {c["listener"]: c for c in dom["certificates"]}
    assert certs["edge"]["names"] == "*.orders.example.com"
    assert 29 < float(certs["edge"]["days-left"]) <= 30
    assert certs["edge"]["not-after"].endswith("UTC") and "valid" in certs["edge"]["_class"]
    payments = certs[port_listener_name("payments")]
    assert payments["names"] == "localhost" and 9 < float(payments["days-left"]) <= 10
    assert "expiring" in payments["_class"] and payments["state"] == "expires within 14 days"

    hostile = [r for r in dom["refusals"] if HOSTILE in r["detail"]]
    assert hostile, dom["refusals"]
    assert hostile[0]["reason"] == "unknown_sni" and hostile[0]["listener"] == "edge"
    assert hostile[0]["peer"].startswith(f"{HOST}:")
