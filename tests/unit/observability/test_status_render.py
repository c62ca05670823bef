"""The status snapshot (JSON both ways, merging several workers') and its HTML page: every value
a client chose comes out as text, never as markup."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest

from kafka_edge.observability.status import (
    MAX_REFUSALS,
    BrokerStatus,
    CertificateStatus,
    ClusterStatus,
    ConfigurationStatus,
    InstanceStatus,
    ListenerStatus,
    RefusalStatus,
    ReloadResult,
    StatusSnapshot,
    merge,
)
from kafka_edge.observability.status_page import CONTENT_SECURITY_POLICY, render

HOSTILE = "<script>alert(1)</script>"
ATTRIBUTE_BREAKER = '"><img src=x onerror=alert(2)>'
NOW = 1_750_000_000.0
DAY = 86400.0


def snapshot(*, pid: int = 100, refusals: tuple[RefusalStatus, ...] = (),
             connections: int = 1, generation: int = 1,
             reload: ReloadResult | None = None, days_left: float = 40.0) -> StatusSnapshot:
    return StatusSnapshot(
        generated_at=NOW,
        instance=InstanceStatus(version="0.1.0", pids=(pid,), started_at=NOW - 3700,
                                uptime_s=3700.0, draining=False, ready=True),
        configuration=ConfigurationStatus(generation=generation, loaded_at=NOW - 3700,
                                          last_reload=reload),
        clusters=(ClusterStatus(
            name="orders", routing="sni", listener="edge",
            bootstrap_edge="boot.orders.example.com:9098",
            upstream_bootstrap=("k1.orders.internal:9092", "k2.orders.internal:9092"),
            bootstrap_connections=connections,
            brokers=(BrokerStatus(node_id=1, edge_address="b-1.orders.example.com:9098",
                                  upstream_address=f"{HOSTILE}:9092", connections=connections),
                     BrokerStatus(node_id=2, edge_address="b-2.orders.example.com:9098",
                                  upstream_address="k2.orders.internal:9092"))),),
        listeners=(ListenerStatus(name="edge", routing="sni", bind="0.0.0.0:9098",
                                  connections=2 * connections),),
        certificates=(CertificateStatus(listener="edge", file="/etc/certs/orders.pem",
                                        names=("*.orders.example.com",),
                                        not_after=NOW + days_left * DAY, days_left=days_left),),
        refusals=refusals,
    )


def refusal(at: float, name: str = HOSTILE, reason: str = "unknown_sni") -> RefusalStatus:
    return RefusalStatus(at=at, listener="edge", reason=reason, peer="198.18.0.9:40000",
                         detail=f"refused TLS server name '{name}': no cluster on listener edge")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: bytes) -> Tags:
    tags = Tags()
    tags.feed(page.decode())
    tags.close()
    return tags


def rows(tags: Tags, cls: str) -> list[dict[str, str | None]]:
    return [a for t, a in tags.tags if t == "tr" and cls in (a.get("class") or "").split()]


def test_hostile_names_are_text_not_markup() -> None:
    page = render(snapshot(refusals=(refusal(NOW - 5), refusal(NOW - 9, ATTRIBUTE_BREAKER,
                                                                 reason=ATTRIBUTE_BREAKER))))
    tags = parse(page)
    assert [t for t, _ in tags.tags if t in ("script", "img")] == []
    text = "".join(tags.text)
    assert f"refused TLS server name '{HOSTILE}'" in text  # in the refusal, shown as typed
    assert f"{HOSTILE}:9092" in text  # in a broker's upstream address
    assert ATTRIBUTE_BREAKER in text
    # the attribute kept its value whole: the quote did not end it
    assert [r.get("data-reason") for r in rows(tags, "refusal")] == ["unknown_sni",
                                                                     ATTRIBUTE_BREAKER]
    assert b"<script>" not in page and b"&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_page_structure() -> None:
    tags = parse(render(snapshot(refusals=(refusal(NOW - 5),))))
    ids = {a.get("id") for _, a in tags.tags}
    assert {"instance", "configuration", "clusters", "brokers", "listeners", "certificates",
            "refusals"} <= ids
    assert [r.get("data-cluster") for r in rows(tags, "cluster")] == ["orders"]
    assert [(r.get("data-cluster"), r.get("data-node")) for r in rows(tags, "broker")] == [
        ("orders", "1"), ("orders", "2")]
    assert len(rows(tags, "listener")) == 1 and len(rows(tags, "refusal")) == 1
    text = "".join(tags.text)
    assert "b-1.orders.example.com:9098" in text and "k2.orders.internal:9092" in text
    assert "01:01:40" in text  # uptime 3700 s
    assert "none since start" in text
    assert [t for t, _ in tags.tags if t in ("script", "link", "img", "iframe")] == []


def test_empty_tables_say_so() -> None:
    bare = dataclasses.replace(snapshot(), clusters=(), certificates=(), refusals=())
    tags = parse(render(bare))
    ids = {a.get("id") for _, a in tags.tags}
    assert {"clusters-none", "brokers-none", "certificates-none", "refusals-none"} <= ids
    assert "No connection refused." in "".join(tags.text)


@pytest.mark.parametrize(("days_left", "state", "shown"), [
    (40.0, "valid", "valid"), (3.5, "expiring", "expires within 14 days"),
    (-1.0, "expired", "expired")])
def test_certificate_expiry_is_marked(days_left: float, state: str, shown: str) -> None:
    tags = parse(render(snapshot(days_left=days_left)))
    (row,) = rows(tags, "certificate")
    assert state in (row.get("class") or "").split()
    text = "".join(tags.text)
    assert f"{days_left:.1f}" in text and shown in text


def test_unreadable_certificate() -> None:
    cert = CertificateStatus(listener="edge", file="/gone.pem", names=(), not_after=None,
                             days_left=None, error="cannot read: no such file")
    tags = parse(render(dataclasses.replace(snapshot(), certificates=(cert,))))
    (row,) = rows(tags, "certificate")
    assert (row.get("class") or "").split() == ["certificate", "unreadable"]
    assert "cannot read: no such file" in "".join(tags.text)


def test_the_style_sheet_is_the_one_the_policy_allows() -> None:
    page = render(snapshot()).decode()
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';")
    assert ' style="' not in page  # inline style attributes would be blocked by the policy


def test_not_ready_and_draining_and_reload_results() -> None:
    base = snapshot(reload=ReloadResult(ok=False, message=f"clusters[0].name: {HOSTILE}",
                                        at=NOW - 60))
    not_ready = dataclasses.replace(base, instance=dataclasses.replace(
        base.instance, ready=False, ready_reason="no broker of orders answered"))
    text = "".join(parse(render(not_ready)).text)
    assert "not ready: no broker of orders answered" in text
    assert f"clusters[0].name: {HOSTILE}" in text and "error" in text
    draining = dataclasses.replace(base, instance=dataclasses.replace(
        base.instance, ready=False, draining=True))
    assert "draining" in "".join(parse(render(draining)).text)


# -- JSON ------------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    original = snapshot(refusals=(refusal(NOW - 1),),
                        reload=ReloadResult(ok=True, message="applied", at=NOW - 2))
    text = original.to_json()
    assert StatusSnapshot.from_json(text) == original
    assert StatusSnapshot.from_json(text.encode()) == original
    assert json.loads(text)["clusters"][0]["brokers"][0]["node_id"] == 1


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["clusters"][0]["brokers"][1].update(node_id="2"),
     "clusters[0].brokers[1].node_id: expected int, got str"),
    (lambda d: d["clusters"][0].update(routing="dns"), "clusters[0].routing: 'dns' is not one"),
    (lambda d: d["instance"].update(ready=1), "instance.ready: expected bool, got int"),
    (lambda d: d["instance"].pop("version"), "instance.version: missing"),
    (lambda d: d["listeners"][0].update(extra=1), "listeners[0]: unknown key 'extra'"),
    (lambda d: d.update(refusals={}), "refusals: expected a list, got dict"),
    (lambda d: d.update(configuration=[]), "configuration: expected an object, got list"),
])
def test_json_with_a_wrong_value_is_refused_with_its_path(change: object, message: str) -> None:
    data = json.loads(snapshot().to_json())
    assert callable(change)
    change(data)
    with pytest.raises(ValueError, match=re.escape(message)):
        StatusSnapshot.from_json(json.dumps(data))


def test_json_fills_defaults_and_takes_integers_for_floats() -> None:
    data = json.loads(snapshot().to_json())
    del data["configuration"]["generation"], data["refusals"]
    data["generated_at"] = 12
    got = StatusSnapshot.from_json(json.dumps(data))
    assert got.configuration.generation == 1 and got.refusals == ()
    assert got.generated_at == 12.0 and isinstance(got.generated_at, float)


# -- merging -----------------------------------------------------------------------------------


def test_merge_sums_connections_unites_brokers_and_interleaves_refusals() -> None:
    a = snapshot(pid=100, refusals=tuple(refusal(NOW - 2 * i) for i in range(40)),
                 connections=1, generation=2,
                 reload=ReloadResult(ok=True, message="applied", at=NOW - 30))
    b = snapshot(pid=101, refusals=tuple(refusal(NOW - 2 * i - 1) for i in range(40)),
                 connections=3, generation=1, days_left=5.0,
                 reload=ReloadResult(ok=False, message="bad file", at=NOW - 10))
    b_cluster = dataclasses.replace(b.clusters[0], brokers=(
        BrokerStatus(node_id=2, edge_address="b-2.orders.example.com:9098",
                     upstream_address="", connections=4),
        BrokerStatus(node_id=3, edge_address="b-3.orders.example.com:9098",
                     upstream_address="k3.orders.internal:9092", connections=1)))
    b = dataclasses.replace(b, clusters=(b_cluster,), instance=dataclasses.replace(
        b.instance, ready=False, ready_reason="starting", started_at=NOW - 100, uptime_s=100))
    merged = merge([a, b])

    assert merged.instance.pids == (100, 101) and merged.instance.workers == 2
    assert not merged.instance.ready and merged.instance.ready_reason == "starting"
    assert merged.instance.uptime_s == 3700 and merged.instance.started_at == NOW - 3700
    assert merged.configuration.generation == 1  # the oldest a worker still runs
    assert merged.configuration.last_reload is not None
    assert merged.configuration.last_reload.message == "bad file"  # the latest
    (cluster,) = merged.clusters
    assert cluster.bootstrap_connections == 1 + 3
    assert [(x.node_id, x.upstream_address, x.connections) for x in cluster.brokers] == [
        (1, f"{HOSTILE}:9092", 1), (2, "k2.orders.internal:9092", 4),
        (3, "k3.orders.internal:9092", 1)]
    assert cluster.connections == 4 + 1 + 4 + 1
    assert [x.connections for x in merged.listeners] == [2 + 6]
    (cert,) = merged.certificates
    assert cert.days_left == 5.0  # the earliest expiry
    assert len(merged.refusals) == MAX_REFUSALS
    assert [r.at for r in merged.refusals] == [NOW - i for i in range(MAX_REFUSALS)]


def test_merge_of_one_is_itself_and_of_none_is_refused() -> None:
    one = snapshot(refusals=(refusal(NOW - 1), refusal(NOW - 3)))
    assert merge([one]) == one
    with pytest.raises(ValueError, match="nothing to merge"):
        merge([])


def test_merge_puts_an_unreadable_certificate_first() -> None:
    good = snapshot()
    gone = dataclasses.replace(good, certificates=(dataclasses.replace(
        good.certificates[0], not_after=None, days_left=None, error="cannot read"),))
    (cert,) = merge([good, gone]).certificates
    assert cert.error == "cannot read"
