"""The namespace topology: the client network reaches the edge but not the cluster network."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from testbed import netns
from testbed.clients import ClientError, consume, produce
from testbed.cluster import KafkaCluster

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

RECORDS = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(20)]

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError as exc:
    print(exc.errno, exc.strerror or exc)
    sys.exit(1)
print("connected")
"""

LISTEN = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


def _connects(ns: str, host: str, port: int) -> tuple[bool, str]:
    proc = netns.run_in(ns, [sys.executable, "-c", PROBE, host, str(port)], check=False, timeout=30)
    return proc.returncode == 0, proc.stdout.decode().strip()


@pytest.fixture
def _needs_netns() -> None:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.usefixtures("_needs_netns")
def test_client_reaches_edge_but_not_cluster(tmp_path: Path) -> None:
    with netns.topology("sanity") as topo:
        names = topo.namespaces
        assert set(names) <= set(netns.list_namespaces())
        cluster = KafkaCluster.start(
            tmp_path / "kafka",
            brokers=1,
            security=["PLAINTEXT"],
            host=topo.cluster_ip,
            netns=topo.cluster,
        )
        listener = None
        try:
            port = cluster.port(1, "PLAINTEXT")
            assert cluster.bootstrap() == f"{topo.cluster_ip}:{port}"

            # edge -> cluster: TCP and a real Kafka client
            ok, out = _connects(topo.edge, topo.cluster_ip, port)
            assert ok, out
            produce("kafka-python", cluster.bootstrap(), "netns-sanity", RECORDS, netns=topo.edge)
            got = consume("confluent", cluster.bootstrap(), "netns-sanity", 20, netns=topo.edge)
            assert Counter(got) == Counter(RECORDS)

            # edge -> client network: a TCP listener in the client namespace
            listener = topo.popen(
                "client",
                [sys.executable, "-c", LISTEN, topo.client_ip, "9000"],
                stdout=subprocess.PIPE,
            )
            assert listener.stdout is not None
            assert listener.stdout.readline().strip() == b"listening"
            ok, out = _connects(topo.edge, topo.client_ip, 9000)
            assert ok, out
            ok, out = _connects(topo.client, topo.edge_client_ip, 22)  # routed, nothing listens
            assert not ok
            assert out.split()[0] == "111", out  # ECONNREFUSED: the edge answered

            # client -> cluster: no route at all, and no Kafka client gets through
            ok, out = _connects(topo.client, topo.cluster_ip, port)
            assert not ok
            assert out.split()[0] == "101", out  # ENETUNREACH
            routes = topo.run("client", ["ip", "-4", "route"]).stdout.decode()
            assert "default" not in routes
            assert "198.18.2." not in routes
            with pytest.raises(ClientError):
                produce("kcat", cluster.bootstrap(), "netns-sanity", RECORDS[:1],
                        netns=topo.client, timeout=15)  # fmt: skip

            # hosts files are per namespace
            hosts = topo.run("client", ["cat", "/etc/hosts"]).stdout.decode()
            assert "edge.test" in hosts
            assert "cluster.test" not in hosts
        finally:
            if listener is not None:
                listener.kill()
                listener.wait()
                if listener.stdout is not None:
                    listener.stdout.close()
            cluster.stop()

    # nothing left: namespaces, their /etc/netns dirs, addresses in the host namespace
    left = netns.list_namespaces()
    assert not set(names) & set(left)
    assert not any((netns.NETNS_ETC / n).exists() for n in names)
    host_addrs = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, check=True)
    assert "198.18." not in host_addrs.stdout


@pytest.mark.usefixtures("_needs_netns")
def test_sweep_removes_namespaces_of_dead_runs() -> None:
    # a namespace named like one from a run whose pid no longer exists
    pid = 4_194_304  # PID_MAX_LIMIT: pids are always below it
    name = f"{netns.PREFIX}{pid}-1-client"
    subprocess.run(["ip", "netns", "add", name], check=True)
    (netns.NETNS_ETC / name).mkdir(parents=True, exist_ok=True)
    try:
        assert name in netns.sweep_stale()
        assert name not in netns.list_namespaces()
        assert not (netns.NETNS_ETC / name).exists()
    finally:
        netns.delete_namespace(name)
