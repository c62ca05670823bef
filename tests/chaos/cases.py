"""The fault scenarios, each a function of the world it runs in (a cluster, or network
namespaces), a work folder and a record count; :data:`SCENARIOS` lists them for
tests/e2e/test_faults.py (10,000 records in ``make test``, 100,000 in ``make chaos``). Every one
asserts nothing lost, nothing twice, order kept."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trustme
import yaml
from testbed import netns
from testbed.cluster import KafkaCluster

from tests.chaos.scenarios import (
    IDEMPOTENT,
    Outcome,
    check,
    count,
    produce_with_fault,
    read_back,
)
from tests.e2e.edge import EdgeProcess, free_port_block, port_routing_config
from tests.e2e.producing import PRODUCER_CONFIG

EDGE_HOST = "127.0.0.2"
PARTITIONS = 3


def _rate(records: int) -> int:
    """Records per second: the run lasts long enough for the fault to land in it (5 s for
    ``make test``'s 10,000 records, 20 s for the chaos suite's 100,000)."""
    return max(2000, records // 20)


def _topic(kafka: KafkaCluster, name: str) -> str:
    topic = f"chaos-{name}-{uuid.uuid4().hex[:6]}"
    replication = min(3, len(kafka.node_ids))
    kafka.create_topic(topic, partitions=PARTITIONS, replication_factor=replication)
    return topic


def _edge_config(kafka: KafkaCluster, base: int) -> dict[str, Any]:
    return port_routing_config(upstream=kafka.bootstrap("PLAINTEXT").split(","),
                               bind_host=EDGE_HOST, base=base)


def _run(name: str, kafka: KafkaCluster, bootstrap: str, records: int,
         fault: Callable[[str], None],
         producer_config: dict[str, Any] | None = None,
         client_config: dict[str, Any] | None = None, ordered: bool = True,
         prefix: Sequence[str] = ()) -> Outcome:
    topic = _topic(kafka, name)
    result, recovery, took = produce_with_fault(bootstrap, topic, records, _rate(records),
                                                lambda: fault(topic),
                                                producer_config=producer_config,
                                                client_config=client_config, prefix=prefix)
    per_partition = read_back(bootstrap, topic, PARTITIONS, client_config=client_config,
                              prefix=prefix)
    outcome = count(name, records, result, per_partition, recovery, took)
    check(outcome, ordered=ordered)
    return outcome


def broker_killed(kafka3: KafkaCluster, work: Path, records: int) -> Outcome:
    """(a) A broker killed with SIGKILL, restarted 5 s later."""
    base = free_port_block(10, EDGE_HOST)
    victim = kafka3.node_ids[-1]

    def fault(topic: str) -> None:
        kafka3.stop_broker(victim, kill=True)
        time.sleep(5)
        kafka3.start_broker(victim)

    with EdgeProcess(_edge_config(kafka3, base), work):
        try:
            return _run("broker-sigkill", kafka3, f"{EDGE_HOST}:{base}", records, fault)
        finally:
            if victim not in kafka3.running_nodes():
                kafka3.start_broker(victim)


def leaders_moved(kafka3: KafkaCluster, work: Path, records: int) -> Outcome:
    """(b) Every partition's replica list rotated by reassignment, then preferred leaders
    elected: each partition's leader moves to another broker."""
    with warnings.catch_warnings():  # kafka-python reads its data with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient, TopicPartition

    base = free_port_block(10, EDGE_HOST)

    def fault(topic: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            admin = KafkaAdminClient(bootstrap_servers=kafka3.bootstrap())
        try:
            nodes = kafka3.node_ids
            moves = {}
            for p, leader in kafka3.partition_leaders(topic).items():
                new_leader = nodes[(nodes.index(leader) + 1) % len(nodes)]
                moves[TopicPartition(topic, p)] = [new_leader] + [
                    n for n in nodes if n != new_leader]
            admin.alter_partition_reassignments(moves)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(1)
                # asked again until it takes: a new preferred leader may not be in sync yet
                admin.elect_leaders(0, {topic: list(range(PARTITIONS))}, raise_errors=False)
                leaders = kafka3.partition_leaders(topic)
                if all(leaders[tp.partition] == r[0] for tp, r in moves.items()):
                    return
            raise AssertionError(f"leaders did not move: {kafka3.partition_leaders(topic)}")
        finally:
            admin.close()

    with EdgeProcess(_edge_config(kafka3, base), work):
        return _run("leaders-reassigned", kafka3, f"{EDGE_HOST}:{base}", records, fault)


def drained_restart(kafka: KafkaCluster, work: Path, records: int, *,
                    idempotent: bool = True) -> Outcome:
    """(d) kafka-edge stopped with SIGTERM (drains) and started again on the same ports."""
    base = free_port_block(10, EDGE_HOST)
    config = _edge_config(kafka, base)
    config["limits"] = {"drain_timeout_s": 10}
    edges = [EdgeProcess(config, work, name="edge-0").start()]

    def fault(topic: str) -> None:
        old = edges[-1]
        assert old.proc is not None
        old.signal(signal.SIGTERM)
        assert old.proc.wait(20) == 0
        edges.append(EdgeProcess(config, work, name=f"edge-{len(edges)}").start())

    name = "drain-restart" if idempotent else "drain-restart-non-idempotent"
    try:
        return _run(name, kafka, f"{EDGE_HOST}:{base}", records, fault,
                    producer_config=IDEMPOTENT if idempotent else PRODUCER_CONFIG,
                    ordered=idempotent)
    finally:
        for e in edges:
            e.stop()


def config_reloaded(kafka: KafkaCluster, work: Path, records: int) -> Outcome:
    """(e) The configuration file changed (a limit) and SIGHUP: reloaded in place."""
    base = free_port_block(10, EDGE_HOST)
    config = _edge_config(kafka, base)
    with EdgeProcess(config, work) as edge:

        def fault(topic: str) -> None:
            changed = {**edge.config, "limits": {"idle_timeout_s": 600}}
            edge.config_path.write_text(yaml.safe_dump(changed, sort_keys=False))
            edge.signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while "configuration reloaded" not in edge.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "configuration reloaded" in edge.log(), edge.log()[-2000:]

        return _run("config-reload", kafka, f"{EDGE_HOST}:{base}", records, fault)


def certificates_rotated(kafka: KafkaCluster, work: Path, records: int) -> Outcome:
    """(f) The edge's certificate and key files replaced by new ones (same CA) while TLS
    clients produce: picked up by the file watch, no connection dropped for it."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))

    def issue() -> None:
        leaf = ca.issue_cert(EDGE_HOST)
        leaf.private_key_pem.write_to_path(str(work / "edge.key.new"))
        (work / "edge.pem.new").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
        os.replace(work / "edge.key.new", work / "edge.key")
        os.replace(work / "edge.pem.new", work / "edge.pem")

    issue()
    base = free_port_block(10, EDGE_HOST)
    config = _edge_config(kafka, base)
    config["clusters"][0]["port_routing"]["tls"] = {"certificates": [
        {"cert_file": str(work / "edge.pem"), "key_file": str(work / "edge.key")}]}
    tls = {"security.protocol": "SSL", "ssl.ca.location": str(work / "ca.pem")}
    with EdgeProcess(config, work) as edge:

        def fault(topic: str) -> None:
            issue()
            deadline = time.monotonic() + 20
            while "certificates reloaded" not in edge.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "certificates reloaded" in edge.log(), edge.log()[-2000:]

        return _run("cert-rotation", kafka, f"{EDGE_HOST}:{base}", records, fault,
                    client_config=tls)


def worker_killed(kafka: KafkaCluster, work: Path, records: int) -> Outcome:
    """(h) One of two workers under the supervisor killed with SIGKILL (it is restarted)."""
    base = free_port_block(10, EDGE_HOST)
    with EdgeProcess(_edge_config(kafka, base), work, args=["--workers", "2"]) as edge:
        assert edge.proc is not None
        supervisor = edge.proc.pid

        def fault(topic: str) -> None:
            out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True,
                                 text=True, check=False)
            workers = sorted(int(x) for x in out.stdout.split())
            assert len(workers) == 2, workers
            os.kill(workers[0], signal.SIGKILL)

        return _run("worker-sigkill", kafka, f"{EDGE_HOST}:{base}", records, fault)


CUT_S = 10.0
CLUSTER_NET = "198.18.2.0/24"  # the cluster namespace's network (testbed/netns.py)
# how the network is cut, from inside the edge namespace, and restored
CUTS = {
    # the link down: no route to the cluster, sends fail at once, connects are refused locally
    "link-down": ([["ip", "link", "set", "veth-cluster", "down"]],
                  [["ip", "link", "set", "veth-cluster", "up"]]),
    # a black hole (a firewall or security group change): packets silently dropped both ways,
    # connects hang until the edge's connect timeout, open connections retransmit into nothing
    "black-hole": ([["iptables", "-I", "OUTPUT", "-d", CLUSTER_NET, "-j", "DROP"],
                    ["iptables", "-I", "INPUT", "-s", CLUSTER_NET, "-j", "DROP"]],
                   [["iptables", "-D", "OUTPUT", "-d", CLUSTER_NET, "-j", "DROP"],
                    ["iptables", "-D", "INPUT", "-s", CLUSTER_NET, "-j", "DROP"]]),
}


def network_cut(topo: netns.Topology, work: Path, records: int, *, how: str) -> Outcome:
    """(g) The network between edge and cluster cut for 10 s (``how``: a key of :data:`CUTS`),
    then restored. The cluster (one broker) runs in the cluster namespace, kafka-edge in the
    edge namespace, the producer and the reader in the client namespace."""
    cut, restore = CUTS[how]
    cluster = KafkaCluster.start(work / "kafka", brokers=1, security=["PLAINTEXT"],
                                 host=topo.cluster_ip, netns=topo.cluster)
    try:
        base = 19092  # the edge namespace is new: nothing else listens there
        node = cluster.node_ids[0]
        config = port_routing_config(upstream=cluster.bootstrap().split(","),
                                     bind_host=topo.edge_client_ip, base=base,
                                     node_ids=(node, node))

        def fault(topic: str) -> None:
            for argv in cut:
                topo.run("edge", argv)
            try:
                time.sleep(CUT_S)
            finally:
                for argv in restore:
                    topo.run("edge", argv)

        with EdgeProcess(config, work, netns=topo.edge) as edge:
            outcome = _run(f"network-cut-10s-{how}", cluster, f"{topo.edge_client_ip}:{base}",
                           records, fault, prefix=netns.netns_exec(topo.client, []))
        # what failed is said in words (a connect timeout has none of its own)
        wordless = [line for line in edge.log().splitlines() if line.rstrip().endswith(":")]
        assert wordless == [], wordless
        return outcome
    finally:
        cluster.stop(timeout=20.0)


def _haproxy_config(work: Path, lb: str, ports: list[int],
                    edges: list[tuple[str, str]]) -> Path:
    """HAProxy in TCP mode: every port of ``lb`` to the same port on each edge host (name,
    host, admin address for the /readyz check)."""
    lines = ["global", "    maxconn 4000", "defaults", "    mode tcp", "    timeout connect 3s",
             "    timeout client 1h", "    timeout server 1h", "    retries 3",
             "    option redispatch"]
    for port in ports:
        lines += [f"listen p{port}", f"    bind {lb}:{port}", "    balance roundrobin",
                  "    option httpchk GET /readyz"]
        for host, admin in edges:
            admin_host, admin_port = admin.rsplit(":", 1)
            lines.append(f"    server {host} {host}:{port} check addr {admin_host} "
                         f"port {admin_port} inter 500 fall 2 rise 1")
    path = work / "haproxy.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def edge_killed_behind_haproxy(kafka: KafkaCluster, work: Path, records: int) -> Outcome:
    """(c) Two kafka-edge instances behind HAProxy (TCP, /readyz checks); one is killed with
    SIGKILL mid-run: its clients reconnect through HAProxy to the other."""
    lb, hosts = "127.0.0.4", ("127.0.0.2", "127.0.0.3")
    nodes = (min(kafka.node_ids), max(kafka.node_ids))
    count_ports = 2 + nodes[1] - nodes[0]
    base = _block_free_on(count_ports, (lb, *hosts))
    edges = []
    for i, host in enumerate(hosts):
        config = port_routing_config(upstream=kafka.bootstrap("PLAINTEXT").split(","),
                                     bind_host=host, base=base, node_ids=nodes,
                                     advertised_host=lb, advertised_port_base=base + 1)
        edges.append(EdgeProcess(config, work, name=f"edge-{i}"))
    cfg = _haproxy_config(work, lb, list(range(base, base + count_ports)),
                          [(host, e.config["observability"]["http_bind"])
                           for host, e in zip(hosts, edges, strict=True)])
    haproxy = None
    try:
        for e in edges:
            e.start()
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)  # the first health checks

        def fault(topic: str) -> None:
            edges[0].kill()

        return _run("edge-sigkill-behind-haproxy", kafka, f"{lb}:{base}", records, fault)
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for e in edges:
            e.stop()


def _block_free_on(count: int, hosts: tuple[str, ...]) -> int:
    """A block of ``count`` ports free on every one of ``hosts``."""
    import socket

    for _ in range(50):
        base = free_port_block(count, hosts[0])
        try:
            for host in hosts[1:]:
                for port in range(base, base + count):
                    with socket.socket() as s:
                        s.bind((host, port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no block of {count} ports free on {hosts}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    world: str  # the pytest fixture it runs in: kafka1, kafka3 or netns_topology
    run: Callable[[Any, Path, int], Outcome]


SCENARIOS = [
    Scenario(name="broker_killed", world="kafka3", run=broker_killed),
    Scenario(name="leaders_moved", world="kafka3", run=leaders_moved),
    Scenario(name="edge_killed_behind_haproxy", world="kafka1", run=edge_killed_behind_haproxy),
    Scenario(name="drained_restart", world="kafka3", run=drained_restart),
    Scenario(name="drained_restart_non_idempotent", world="kafka3",
             run=partial(drained_restart, idempotent=False)),
    Scenario(name="config_reloaded", world="kafka1", run=config_reloaded),
    Scenario(name="certificates_rotated", world="kafka1", run=certificates_rotated),
    Scenario(name="network_cut_link_down", world="netns_topology",
             run=partial(network_cut, how="link-down")),
    Scenario(name="network_cut_black_hole", world="netns_topology",
             run=partial(network_cut, how="black-hole")),
    Scenario(name="worker_killed", world="kafka1", run=worker_killed),
]
