"""The PROXY protocol (v1 and v2) with real HAProxy in TCP mode in front of kafka-edge, and real
Kafka clients: the client's address, not the load balancer's, is the one kafka-edge logs and
refuses with; headers from untrusted peers, missing where required, or malformed are refused
(logged, counted) while other connections carry on.

Everything runs in one network namespace of its own (loopback only, 127.0.0.0/8), so that its
hosts file gives the custom names to the clients, and so that the fixed ports below are free::

    client 127.0.0.1 --> HAProxy 127.0.0.4 (send-proxy-v2), 127.0.0.5 (send-proxy),
                                 127.0.0.7 (send-proxy-v2 from an untrusted source)
                     --from 127.0.0.3 (127.0.0.6 untrusted)--> kafka-edge 127.0.0.2 --> Kafka

kafka-edge trusts 127.0.0.3 only. Its log is JSON at debug level: every connection's lines
carry ``peer``; HAProxy logs each session's client and its own source address.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from testbed import netns
from testbed.clients import ClientSecurity, consume, produce
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

EDGE, LB_V2, LB_V1, LB_UNTRUSTED = "127.0.0.2", "127.0.0.4", "127.0.0.5", "127.0.0.7"
TRUSTED_SOURCE, UNTRUSTED_SOURCE = "127.0.0.3", "127.0.0.6"
CLIENT = "127.0.0.1"  # the source address the namespace gives connections to 127.0.0.x
SNI_PORT, LB_SNI_PORT = 19098, 9098
PORT_BASES = {"port-v2": 19092, "port-v1": 19192, "direct": 19292}  # bootstrap; brokers after
LB_PORT_BASE = 29092  # HAProxy's bootstrap port for port-v2 (on LB_V2) and port-v1 (on LB_V1)
DOMAINS = {"sni-v2": "v2.pp.example.com", "sni-v1": "v1.pp.example.com"}
PROBE = str(Path(__file__).with_name("proxy_probe.py"))
REFUSED = "kafka_edge_refused_connections_total"


@dataclass
class World:
    ns: str
    kafka: KafkaCluster
    edge: EdgeProcess
    haproxy_log: Path
    ca: Path

    def security(self) -> ClientSecurity:
        return ClientSecurity(protocol="SSL", ca_file=str(self.ca))

    def edge_lines(self, since: int = 0) -> list[dict[str, Any]]:
        """kafka-edge's JSON log lines written after byte ``since``."""
        data = self.edge.log_path.read_bytes()[since:].decode(errors="replace")
        return [json.loads(line) for line in data.splitlines() if line.startswith("{")]

    def haproxy_sessions(self, backend: str, since: int = 0) -> list[tuple[str, str]]:
        """(client "ip:port", HAProxy's own source "ip:port") of each ended session."""
        data = self.haproxy_log.read_bytes()[since:].decode(errors="replace")
        out = []
        for line in data.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == backend:
                out.append((fields[0], fields[2]))
        return out

    def offsets(self) -> tuple[int, int]:
        return self.edge.log_path.stat().st_size, self.haproxy_log.stat().st_size

    def refused(self, listener: str) -> float:
        return self.edge.metric(REFUSED, listener=listener, reason="proxy_header")

    def probe(self, *argv: str) -> dict[str, Any]:
        out = netns.run_in(self.ns, [sys.executable, PROBE, *argv], timeout=60, check=False)
        lines = out.stdout.decode().strip().splitlines()
        assert out.returncode == 0 and lines, out.stderr.decode()[-2000:]
        return json.loads(lines[-1])  # type: ignore[no-any-return]


def _cluster(name: str, kafka: KafkaCluster, routing: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "upstream": {"bootstrap_servers": kafka.bootstrap().split(",")},
            **routing}


def _port_routing(name: str, node_ids: list[int], advertised: tuple[str, int] | None,
                  proxy: dict[str, Any] | None) -> dict[str, Any]:
    base = PORT_BASES[name]
    routing: dict[str, Any] = {
        "bind_host": EDGE, "bootstrap_port": base, "broker_port_base": base + 1,
        "node_id_min": min(node_ids), "node_id_max": max(node_ids)}
    if advertised is not None:
        routing |= {"advertised_host": advertised[0], "advertised_port_base": advertised[1]}
    if proxy is not None:
        routing["proxy_protocol"] = proxy
    return {"port_routing": routing}


def _edge_config(kafka: KafkaCluster, work: Path) -> dict[str, Any]:
    trusted = [f"{TRUSTED_SOURCE}/32"]
    node_ids = list(kafka.node_ids)
    return {
        "listeners": [{
            "name": "sni", "bind": f"{EDGE}:{SNI_PORT}",
            "tls": {"certificates": [{"cert_file": str(work / "edge.pem"),
                                      "key_file": str(work / "edge.key")}]},
            "proxy_protocol": {"mode": "required", "trusted_sources": trusted,
                               "header_timeout_s": 3}}],
        "clusters": [
            *(_cluster(name, kafka, {"sni_routing": {
                "listener": "sni", "bootstrap_host": f"boot.{domain}",
                "broker_host_pattern": f"b-{{node}}.{domain}", "advertised_port": LB_SNI_PORT}})
              for name, domain in DOMAINS.items()),
            _cluster("port-v2", kafka, _port_routing(
                "port-v2", node_ids, (LB_V2, LB_PORT_BASE + 1),
                {"mode": "optional", "trusted_sources": trusted})),
            _cluster("port-v1", kafka, _port_routing(
                "port-v1", node_ids, (LB_V1, LB_PORT_BASE + 1),
                {"mode": "required", "trusted_sources": trusted})),
            _cluster("direct", kafka, _port_routing(
                "direct", node_ids, None, {"mode": "optional", "trusted_sources": trusted})),
        ],
        "observability": {"log_level": "debug", "log_format": "json"},
    }


def _haproxy_config(path: Path, node_ids: list[int]) -> Path:
    routes: list[tuple[str, str, str]] = [  # (name, bind, server line)
        ("sni-v2", f"{LB_V2}:{LB_SNI_PORT}",
         f"{EDGE}:{SNI_PORT} send-proxy-v2 proxy-v2-options crc32c source {TRUSTED_SOURCE}"),
        ("sni-v1", f"{LB_V1}:{LB_SNI_PORT}", f"{EDGE}:{SNI_PORT} send-proxy source "
                                             f"{TRUSTED_SOURCE}"),
        ("untrusted-sni", f"{LB_UNTRUSTED}:{LB_SNI_PORT}",
         f"{EDGE}:{SNI_PORT} send-proxy-v2 source {UNTRUSTED_SOURCE}"),
        ("untrusted-port", f"{LB_UNTRUSTED}:{LB_PORT_BASE}",
         f"{EDGE}:{PORT_BASES['port-v2']} send-proxy-v2 source {UNTRUSTED_SOURCE}"),
    ]
    for cluster, lb, option in (("port-v2", LB_V2, "send-proxy-v2"),
                                ("port-v1", LB_V1, "send-proxy")):
        base = PORT_BASES[cluster]
        routes.append((f"{cluster}-boot", f"{lb}:{LB_PORT_BASE}",
                       f"{EDGE}:{base} {option} source {TRUSTED_SOURCE}"))
        for offset, _node in enumerate(sorted(node_ids), start=1):
            routes.append((f"{cluster}-b{offset}", f"{lb}:{LB_PORT_BASE + offset}",
                           f"{EDGE}:{base + offset} {option} source {TRUSTED_SOURCE}"))
    text = ["global", "    maxconn 500", "    log stdout format raw local0 info",
            "defaults", "    mode tcp", "    log global", '    log-format "%ci:%cp %b %bi:%bp"',
            "    timeout connect 3s", "    timeout client 2m", "    timeout server 2m"]
    for name, bind, server in routes:
        text += [f"frontend fe-{name}", f"    bind {bind}", f"    default_backend {name}",
                 f"backend {name}", f"    server edge {server}"]
    path.write_text("\n".join(text) + "\n")
    return path


def _create_namespace() -> str:
    name = f"{netns.PREFIX}{os.getpid()}-proxyproto"
    subprocess.run(["ip", "netns", "add", name], check=True)
    netns.run_in(name, ["ip", "link", "set", "lo", "up"])
    netns.run_in(name, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
    (netns.NETNS_ETC / name).mkdir(parents=True, exist_ok=True)
    (netns.NETNS_ETC / name / "resolv.conf").write_text("# no DNS in test namespaces\n")
    return name


def _wait_listening(ns: str, addresses: list[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        out = netns.run_in(ns, ["ss", "-ltnH"]).stdout.decode()
        missing = [a for a in addresses if f" {a} " not in out]
        if not missing:
            return
        assert time.monotonic() < deadline, f"not listening: {missing}\n{out}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("proxyproto")
    ns = _create_namespace()
    kafka: KafkaCluster | None = None
    edge: EdgeProcess | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        kafka = KafkaCluster.start(work / "kafka", brokers=1, host=CLIENT, netns=ns)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(work / "ca.pem"))
        cert = ca.issue_cert(*(f"*.{domain}" for domain in DOMAINS.values()))
        cert.private_key_pem.write_to_path(str(work / "edge.key"))
        (work / "edge.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        names = {}
        for cluster, domain in DOMAINS.items():
            lb = LB_V2 if cluster == "sni-v2" else LB_V1
            names[f"boot.{domain}"] = lb
            names.update({f"b-{n}.{domain}": lb for n in kafka.node_ids})
        # the machine's own name too, as in any hosts file (the JVM looks it up)
        netns.write_hosts(ns, {**names, socket.gethostname(): CLIENT})
        edge = EdgeProcess(_edge_config(kafka, work), work, name="edge", netns=ns).start()
        haproxy_log = work / "haproxy.log"
        with haproxy_log.open("wb") as log:
            haproxy = netns.popen_in(ns, ["haproxy", "-db", "-f", str(_haproxy_config(
                work / "haproxy.cfg", list(kafka.node_ids)))], stdout=log,
                stderr=subprocess.STDOUT)
        _wait_listening(ns, [f"{LB_V2}:{LB_SNI_PORT}", f"{LB_UNTRUSTED}:{LB_PORT_BASE}"])
        yield World(ns, kafka, edge, haproxy_log, work / "ca.pem")
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        if edge is not None:
            edge.stop()
        if kafka is not None:
            kafka.stop()
        netns.delete_namespace(ns)


def _records(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    return [(f"k-{tag}-{i}".encode(), f"v-{tag}-{i}".encode()) for i in range(n)]


def _produce_and_consume(world: World, client: str, bootstrap: str, tls: bool) -> None:
    topic = f"pp-{client}-{uuid.uuid4().hex[:6]}"
    world.kafka.create_topic(topic, partitions=2)
    sent = _records(50, topic)
    security = world.security() if tls else ClientSecurity()
    produce(client, bootstrap, topic, sent, security, netns=world.ns)
    got = consume(client, bootstrap, topic, len(sent), security, netns=world.ns)
    assert sorted(got) == sorted(sent)


def _eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, what
            return value
        time.sleep(0.2)


def _wait_line(world: World, since: int, text: str) -> dict[str, Any]:
    """The first of kafka-edge's log lines after byte ``since`` whose message holds ``text``,
    waited for."""
    found: dict[str, Any] = _eventually(
        lambda: next((x for x in world.edge_lines(since) if text in str(x.get("msg"))), None),
        f"a kafka-edge log line with {text!r}")
    return found


def _closed_peers(lines: list[dict[str, Any]], cluster: str) -> set[str]:
    return {str(line["peer"]) for line in lines
            if str(line.get("msg", "")).startswith("connection closed")
            and line.get("cluster") == cluster}


def _assert_clients_logged(world: World, cluster: str, backends: list[str],
                           since: tuple[int, int], version: int) -> None:
    """Every session HAProxy relayed to ``cluster`` through ``backends`` appears in
    kafka-edge's log under the client's own address, never HAProxy's."""

    def sessions() -> list[tuple[str, str]]:
        return [s for b in backends for s in world.haproxy_sessions(b, since[1])]

    def both() -> tuple[set[str], set[str]] | None:
        clients = {client for client, _ in sessions()}
        logged = _closed_peers(world.edge_lines(since[0]), cluster)
        return (clients, logged) if clients and clients <= logged else None

    clients, logged = _eventually(both, f"HAProxy's clients in kafka-edge's log ({cluster})")
    assert all(via.startswith(f"{TRUSTED_SOURCE}:") for _, via in sessions())
    assert all(peer.startswith(f"{CLIENT}:") for peer in logged), logged
    headers = [line for line in world.edge_lines(since[0])
               if str(line.get("msg", "")).startswith(f"PROXY v{version} TCP4 header")]
    assert {str(h["peer"]) for h in headers} >= clients
    assert all(str(h["proxy"]).startswith(f"{TRUSTED_SOURCE}:") for h in headers)


# -- HAProxy with send-proxy-v2 and send-proxy in front -----------------------------------------


@pytest.mark.parametrize(("cluster", "client", "version"), [
    ("sni-v2", "java", 2), ("sni-v2", "confluent", 2), ("sni-v1", "confluent", 1)])
def test_sni_listener_behind_haproxy(world: World, cluster: str, client: str,
                                     version: int) -> None:
    since = world.offsets()
    _produce_and_consume(world, client, f"boot.{DOMAINS[cluster]}:{LB_SNI_PORT}", tls=True)
    _assert_clients_logged(world, cluster, [cluster], since, version)


@pytest.mark.parametrize(("cluster", "lb", "version"), [("port-v2", LB_V2, 2),
                                                       ("port-v1", LB_V1, 1)])
def test_port_listener_behind_haproxy(world: World, cluster: str, lb: str, version: int) -> None:
    since = world.offsets()
    _produce_and_consume(world, "confluent", f"{lb}:{LB_PORT_BASE}", tls=False)
    backends = [f"{cluster}-boot", *(f"{cluster}-b{i}" for i in
                                     range(1, len(world.kafka.node_ids) + 1))]
    _assert_clients_logged(world, cluster, backends, since, version)


def test_a_refusal_after_the_header_names_the_client_and_its_load_balancer(world: World) -> None:
    since = world.offsets()
    before = world.edge.metric(REFUSED, listener="sni", reason="unknown_sni")
    out = world.probe("once", LB_V2, str(LB_SNI_PORT), "--sni", f"nowhere.{DOMAINS['sni-v2']}",
                      "--ca", str(world.ca))
    assert out["answer"] is False and "UNRECOGNIZED_NAME" in out["error"].upper()
    line = _wait_line(world, since[0], "refused TLS server name")
    assert line["peer"] == out["local"]  # the client's own address and port
    assert f"(through {TRUSTED_SOURCE}:" in line["msg"]
    assert world.edge.metric(REFUSED, listener="sni", reason="unknown_sni") == before + 1


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("listener", "port", "message"), [
    ("sni", LB_SNI_PORT, "not in proxy_protocol.trusted_sources (mode required)"),
    ("port-v2.port_routing", LB_PORT_BASE,
     "it sent a PROXY header but is not in proxy_protocol.trusted_sources"),
])
def test_a_header_from_an_untrusted_source_is_refused(world: World, listener: str, port: int,
                                                      message: str) -> None:
    since = world.offsets()
    before = world.refused(listener)
    argv = ["once", LB_UNTRUSTED, str(port)]
    if listener == "sni":
        argv += ["--sni", f"boot.{DOMAINS['sni-v2']}", "--ca", str(world.ca)]
    assert world.probe(*argv)["answer"] is False
    line = _wait_line(world, since[0], message)
    assert line["level"] == "warning" and str(line["peer"]).startswith(f"{UNTRUSTED_SOURCE}:")
    assert world.refused(listener) == before + 1


@pytest.mark.parametrize(("listener", "port", "sni", "message"), [
    ("sni", SNI_PORT, f"boot.{DOMAINS['sni-v2']}", "the bytes start 16 03 01"),
    ("port-v1.port_routing", PORT_BASES["port-v1"], None, "the bytes start 00 00 00"),
])
def test_required_refuses_a_connection_without_a_header(world: World, listener: str, port: int,
                                                        sni: str | None, message: str) -> None:
    since = world.offsets()
    before = world.refused(listener)
    argv = ["once", EDGE, str(port), "--bind", TRUSTED_SOURCE]  # trusted, but no header
    if sni:
        argv += ["--sni", sni, "--ca", str(world.ca)]
    out = world.probe(*argv)
    assert out["answer"] is False
    line = _wait_line(world, since[0], message)
    assert "malformed PROXY header: not a PROXY protocol header" in line["msg"]
    assert line["peer"] == out["local"]
    assert world.refused(listener) == before + 1


def test_optional_without_a_header_works(world: World) -> None:
    since = world.offsets()
    _produce_and_consume(world, "confluent", f"{EDGE}:{PORT_BASES['direct']}", tls=False)
    peers = _eventually(lambda: _closed_peers(world.edge_lines(since[0]), "direct"),
                        "the direct connections' lines")
    assert all(peer.startswith(f"{CLIENT}:") for peer in peers), peers


def test_a_malformed_header_closes_only_its_connection(world: World) -> None:
    since = world.offsets()
    before = world.refused("port-v1.port_routing")
    good = b"PROXY TCP4 198.51.100.23 10.0.0.1 4242 29092\r\n"
    bad = b"PROXY TCP4 198.51.100.24 10.0.0.1 04242 29092\r\n"  # a leading zero
    out = world.probe("survivor", EDGE, str(PORT_BASES["port-v1"]), "--bind", TRUSTED_SOURCE,
                      "--header-hex", good.hex(), "--bad-hex", bad.hex())
    assert out == {"first": True, "bad_answered": False, "bad_closed": True, "after": True}
    line = _wait_line(world, since[0], "malformed PROXY header")
    assert 'v1 source port "04242"' in line["msg"]
    assert world.refused("port-v1.port_routing") == before + 1
    # the connection that stayed is logged under the client its header named
    assert _eventually(lambda: "198.51.100.23:4242" in _closed_peers(
        world.edge_lines(since[0]), "port-v1"), "the surviving connection's line")
    # and a real client through HAProxy still works
    _produce_and_consume(world, "confluent", f"{LB_V1}:{LB_PORT_BASE}", tls=False)


def test_the_vpc_endpoint_id_is_logged(world: World) -> None:
    since = world.offsets()
    tlv = bytes([0xEA, 0, 23, 0x01]) + b"vpce-0a1b2c3d4e5f67890"
    block = (bytes([198, 51, 100, 77, 10, 0, 0, 1]) + (4343).to_bytes(2, "big")
             + (29092).to_bytes(2, "big") + tlv)
    header = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + len(block).to_bytes(2, "big") + block
    out = world.probe("once", EDGE, str(PORT_BASES["port-v1"]), "--bind", TRUSTED_SOURCE,
                      "--header-hex", header.hex())
    assert out["answer"] is True
    line = _eventually(lambda: next((x for x in world.edge_lines(since[0])
                                     if str(x.get("msg", "")).startswith("connection closed")
                                     and x.get("peer") == "198.51.100.77:4343"), None),
                       "the connection's closing line")
    assert line["vpc_endpoint"] == "vpce-0a1b2c3d4e5f67890"
