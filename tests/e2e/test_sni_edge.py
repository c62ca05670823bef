"""The custom-domain TLS edge across networks: clients in their own network namespace reach a
private cluster only through kafka-edge, by SNI, under a custom domain.

Topology (testbed.netns, addresses from 198.18.0.0/15 only inside the namespaces)::

    client ns ──┐                     ┌── cluster ns: "orders" (3 brokers, SASL_SSL) and
    client2 ns ─┴─ edge ns: HAProxy :9098 -> kafka-edge A, B ──┘   "payments" (1 broker, SSL)

The clusters advertise private names (*.orders.internal) that only the edge namespace resolves.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed import netns
from testbed.clients import ClientError, ClientSecurity, consume, produce
from testbed.cluster import KafkaCluster, java_classpath

from .edge import EdgeProcess, wait_until
from .sni_front import (
    A_HTTP,
    A_PORT,
    B_HTTP,
    B_PORT,
    LB_PORT,
    edge_certificates,
    edge_config,
    front,
    sni_routing,
)

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

CLIENT2_NET = "198.18.3"
PROBE = str(Path(__file__).with_name("tls_probe.py"))

ORDERS = {"boot": "boot.orders.example.com", "pattern": "b-{node}.orders.example.com"}
PAYMENTS = {"boot": "boot.payments.example.com", "pattern": "b-{node}.payments.example.com"}


@dataclass
class World:
    topo: netns.Topology
    client2: str
    orders: KafkaCluster
    payments: KafkaCluster
    ca: Path
    work: Path
    edges: dict[str, EdgeProcess]

    def security(self, mechanism: str = "SCRAM-SHA-512") -> ClientSecurity:
        return ClientSecurity(protocol="SASL_SSL", ca_file=str(self.ca), mechanism=mechanism,
                              username="alice", password=self.orders.users["alice"])


def _names(cfg: dict[str, str], nodes: list[int], ip: str) -> dict[str, str]:
    return {cfg["boot"]: ip, **{cfg["pattern"].format(node=n): ip for n in nodes}}


def _edge_config(work: Path, orders: KafkaCluster, payments: KafkaCluster, port: int,
                 http: int) -> dict[str, Any]:
    return edge_config(work, port, http, [
        {"name": "orders",
         "upstream": {"bootstrap_servers": orders.bootstrap("SASL_SSL").split(","),
                      "tls": {"ca_file": orders.ca_file},
                      "discovery": {"sasl": {"mechanism": "SCRAM-SHA-512",
                                             "username": "admin",
                                             "password_env": "ORDERS_DISCOVERY_PASSWORD"}}},
         "aws_region": "eu-west-1",
         "sni_routing": sni_routing(ORDERS)},
        {"name": "payments",
         "upstream": {"bootstrap_servers": payments.bootstrap("SSL").split(","),
                      "tls": {"ca_file": payments.ca_file}},
         "sni_routing": sni_routing(PAYMENTS)},
    ])


# both instances serve everything, while HAProxy finds them ready
HAPROXY_RULES = f"""    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /readyz
    server a 127.0.0.1:{A_PORT} check port {A_HTTP} inter 500 fall 2 rise 1
    server b 127.0.0.1:{B_PORT} check port {B_HTTP} inter 500 fall 2 rise 1
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("sni")
    topo = netns.create_topology("sni")
    clusters: list[KafkaCluster] = []
    try:
        client2 = topo.add_client_network("client2", CLIENT2_NET)
        private = {"kafka.orders.internal": topo.cluster_ip,
                   "kafka.payments.internal": topo.cluster_ip}
        topo.add_hosts("cluster", private)
        topo.add_hosts("edge", private)
        orders = KafkaCluster.start(work / "orders", brokers=3, host=topo.cluster_ip,
                                    advertised_host="kafka.orders.internal", netns=topo.cluster,
                                    security=("PLAINTEXT", "SASL_SSL"))
        clusters.append(orders)
        payments = KafkaCluster.start(work / "payments", brokers=1, host=topo.cluster_ip,
                                      advertised_host="kafka.payments.internal",
                                      netns=topo.cluster, security=("PLAINTEXT", "SSL"))
        clusters.append(payments)
        ca = edge_certificates(work)
        env = {"ORDERS_DISCOVERY_PASSWORD": orders.users["admin"]}
        with front(topo, work, lambda port, http: _edge_config(work, orders, payments, port, http),
                   HAPROXY_RULES, env=env) as edges:
            edge_names = {**_names(ORDERS, orders.node_ids, topo.edge_client_ip),
                          **_names(PAYMENTS, payments.node_ids, topo.edge_client_ip)}
            topo.add_hosts("client", edge_names)
            topo.add_hosts(client2, {k: f"{CLIENT2_NET}.1" for k in edge_names})
            topo.add_hosts("edge", {k: "127.0.0.1" for k in edge_names})
            _wait_haproxy(topo)
            yield World(topo, client2, orders, payments, ca, work, edges)
    finally:
        for cluster in clusters:
            cluster.stop()
        topo.destroy()


def _wait_haproxy(topo: netns.Topology, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = _probe(topo.client, topo.edge_client_ip, sni=ORDERS["boot"], ca=None)
        if out.get("handshake") in ("ok", "error") and "Connection refused" not in str(out):
            return
        time.sleep(0.5)
    raise AssertionError("HAProxy did not come up in the edge namespace")


def _probe(ns: str, host: str, *, sni: str | None = None, ca: Path | None = None,
           plaintext: bool = False, port: int = LB_PORT) -> dict[str, Any]:
    argv = [sys.executable, PROBE, host, str(port)]
    argv += ["--sni", sni] if sni else ["--no-sni"]
    if ca:
        argv += ["--ca", str(ca)]
    if plaintext:
        argv.append("--plaintext")
    out = netns.run_in(ns, argv, timeout=60, check=False)
    try:
        return json.loads(out.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]
    except (ValueError, IndexError):
        return {"crashed": out.stderr.decode()[-2000:]}


def _records(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    return [(f"k-{tag}-{i}".encode(), f"v-{tag}-{i}".encode()) for i in range(n)]


def test_client_network_has_no_route_to_the_cluster(world: World) -> None:
    broker = world.orders.address(world.orders.node_ids[0], "SASL_SSL").split(":")
    out = netns.run_in(world.topo.client, [
        sys.executable, "-c",
        "import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), "
        "timeout=3)\n print('connected')\nexcept OSError as e:\n print('failed', e)",
        world.topo.cluster_ip, broker[1]], timeout=30, check=False)
    assert out.stdout.decode().startswith("failed"), out.stdout


@pytest.mark.parametrize("client", ["java", "confluent", "kafka-python"])
def test_clients_across_networks_by_custom_domain(client: str, world: World) -> None:
    topic = f"sni-{client}-{uuid.uuid4().hex[:6]}"
    world.orders.create_topic(topic, partitions=3, replication_factor=3)
    sent = _records(300, client)
    bootstrap = f"{ORDERS['boot']}:{LB_PORT}"
    produce(client, bootstrap, topic, sent, world.security(), netns=world.topo.client)
    got = consume(client, bootstrap, topic, len(sent), world.security(), group=f"g-{topic}",
                  netns=world.topo.client)
    assert sorted(got) == sorted(sent)


@pytest.mark.parametrize("client", ["java", "confluent"])
def test_oauthbearer_across_networks(client: str, world: World) -> None:
    topic = f"sni-oauth-{client}-{uuid.uuid4().hex[:6]}"
    world.orders.create_topic(topic, partitions=1, replication_factor=3)
    sent = _records(100, "oauth")
    bootstrap = f"{ORDERS['boot']}:{LB_PORT}"
    security = world.security("OAUTHBEARER")
    produce(client, bootstrap, topic, sent, security, netns=world.topo.client)
    assert sorted(consume(client, bootstrap, topic, 100, security,
                          netns=world.topo.client)) == sorted(sent)


def test_second_client_network_uses_the_same_names(world: World) -> None:
    topic = f"sni-vpn-{uuid.uuid4().hex[:6]}"
    world.orders.create_topic(topic, partitions=2, replication_factor=3)
    sent = _records(200, "vpn")
    bootstrap = f"{ORDERS['boot']}:{LB_PORT}"
    produce("kafka-python", bootstrap, topic, sent, world.security(), netns=world.client2)
    got = consume("java", bootstrap, topic, len(sent), world.security(), netns=world.client2)
    assert sorted(got) == sorted(sent)


def _kcat_metadata(world: World, bootstrap: str, security: list[str]) -> str:
    out = netns.run_in(world.topo.client, ["kcat", "-b", bootstrap, "-L", "-m", "20", *security],
                       timeout=60, check=False)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return out.stdout.decode()


def test_two_clusters_on_one_listener_each_see_only_their_own(world: World) -> None:
    orders_topic = f"only-orders-{uuid.uuid4().hex[:6]}"
    payments_topic = f"only-payments-{uuid.uuid4().hex[:6]}"
    world.orders.create_topic(orders_topic, partitions=1, replication_factor=1)
    world.payments.create_topic(payments_topic, partitions=1, replication_factor=1)
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={world.ca}"]
    sasl = ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={world.ca}",
            "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=alice",
            "-X", f"sasl.password={world.orders.users['alice']}"]
    payments = _kcat_metadata(world, f"{PAYMENTS['boot']}:{LB_PORT}", tls)
    orders = _kcat_metadata(world, f"{ORDERS['boot']}:{LB_PORT}", sasl)
    assert payments_topic in payments and orders_topic not in payments
    assert orders_topic in orders and payments_topic not in orders
    for node in world.payments.node_ids:
        assert f"b-{node}.payments.example.com:{LB_PORT}" in payments
    for node in world.orders.node_ids:
        assert f"b-{node}.orders.example.com:{LB_PORT}" in orders
    for text in (payments, orders):
        assert ".internal" not in text and world.topo.cluster_ip not in text


def test_refusals_fail_cleanly_and_the_proxy_keeps_serving(world: World) -> None:
    client, ip = world.topo.client, world.topo.edge_client_ip
    unknown = _probe(client, ip, sni="boot.unknown.example.com", ca=world.ca)
    assert unknown["handshake"] == "error" and "UNRECOGNIZED_NAME" in unknown["error"].upper()
    no_sni = _probe(client, ip, sni=None, ca=world.ca)
    assert no_sni["handshake"] == "error" and "HANDSHAKE_FAILURE" in no_sni["error"].upper()
    plaintext = _probe(client, ip, plaintext=True)
    assert plaintext.get("answer") is False
    untrusted = _probe(client, ip, sni=ORDERS["boot"], ca=None)
    assert untrusted["handshake"] == "error" and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]
    ok = _probe(client, ip, sni=ORDERS["boot"], ca=world.ca)
    assert ok == {"handshake": "ok", "peer_serial": ok["peer_serial"], "answer": True}
    # the untrusted client's alert reaches the edge (through HAProxy) after that probe ended
    failed = "TLS handshake failed on listener edge (server name 'boot.orders.example.com')"
    assert wait_until(lambda: any(failed in e.log() for e in world.edges.values()), 10)
    logs = "".join(e.log() for e in world.edges.values())
    assert "refused TLS server name 'boot.unknown.example.com'" in logs
    assert "sent no server name (SNI)" in logs
    assert "a plaintext Kafka request arrived on a TLS port" in logs
    # ... and a real client still works afterwards
    test_second_client_network_uses_the_same_names(world)


def test_dns_command_prints_wildcard_and_region_records(world: World) -> None:
    config = world.work / "edge-a.yaml"
    out = subprocess.run([sys.executable, "-m", "kafka_edge.cli", "dns", "--config", str(config),
                          "--target", "edge-nlb.example.net"], capture_output=True, text=True,
                         env={"ORDERS_DISCOVERY_PASSWORD": "x", "PATH": "/usr/bin:/bin"},
                         check=False, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "*.orders.example.com. 300 IN CNAME edge-nlb.example.net." in out.stdout
    assert "*.payments.example.com. 300 IN CNAME edge-nlb.example.net." in out.stdout
    assert '_kafka-region.orders.example.com. 300 IN TXT "eu-west-1"' in out.stdout


def test_fresh_instance_serves_a_broker_name_it_has_never_seen(world: World) -> None:
    """Restart instance A, then make its first connection a broker name (no bootstrap)."""
    a = world.edges["a"]
    a.stop()
    a.start()
    node = world.orders.node_ids[-1]
    topic = f"fresh-{uuid.uuid4().hex[:6]}"
    world.orders.create_topic(topic, partitions=1, replication_factor=3)
    produce("kafka-python", f"{ORDERS['pattern'].format(node=node)}:{A_PORT}", topic,
            _records(20, "fresh"), world.security(), netns=world.topo.edge)
    assert a.metric("kafka_edge_discovery_requests_total", outcome="ok") >= 1


def test_instance_killed_mid_run_clients_finish_through_the_other(world: World) -> None:
    topic = f"failover-{uuid.uuid4().hex[:6]}"
    world.orders.create_topic(topic, partitions=3, replication_factor=3)
    props = world.work / "client.properties"
    props.write_text("\n".join([
        "security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="alice" password="{world.orders.users["alice"]}";',
        "ssl.truststore.type=PEM", f"ssl.truststore.location={world.ca}"]) + "\n")
    cp = java_classpath(world.orders.kafka_version)
    n = 20000
    perf = world.topo.popen("client", [
        "java", "-cp", cp, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
        "--num-records", str(n), "--record-size", "200", "--throughput", "2000",
        "--producer.config", str(props),
        "--producer-props", f"bootstrap.servers={ORDERS['boot']}:{LB_PORT}", "acks=all"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(4)
        world.edges["a"].signal(signal.SIGKILL)
        out, err = perf.communicate(timeout=180)
        assert perf.returncode == 0, err.decode()[-3000:]
        assert f"{n} records sent" in out.decode()
        got = consume("java", f"{ORDERS['boot']}:{LB_PORT}", topic, n, world.security(),
                      netns=world.topo.client, timeout=120)
        assert len(got) == n
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.communicate()
        # the module's other tests expect both instances behind HAProxy
        world.edges["a"].stop()
        world.edges["a"].start()


def test_client_error_type_is_exported() -> None:
    assert issubclass(ClientError, RuntimeError)
