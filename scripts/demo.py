"""`make demo`: kafka-edge's main job, end to end, on this machine.

1. a local 3-broker Apache Kafka with SASL_SSL (SCRAM-SHA-512), in its own "private network"
   (a network namespace whose brokers advertise names only that network resolves);
2. a private CA and a wildcard certificate for the custom domain orders.example.com;
3. kafka-edge in an "edge network" that reaches both sides;
4. a client in a third network that resolves only the custom domain, producing and consuming
   10,000 records through boot.orders.example.com:9098.

Without root or iproute2 the same runs on loopback, the client mapping the custom names itself.
Everything started is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

import trustme  # noqa: E402
import yaml  # noqa: E402
from testbed import netns  # noqa: E402
from testbed.cluster import KafkaCluster  # noqa: E402

DOMAIN = "orders.example.com"
BOOT = f"boot.{DOMAIN}"
PATTERN = "b-{node}." + DOMAIN
PORT = 9098
RECORDS = 10_000


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="kafka-edge-demo-"))
    reason = netns.unavailable_reason()
    if os.environ.get("KAFKA_EDGE_DEMO_LOOPBACK"):
        reason = "KAFKA_EDGE_DEMO_LOOPBACK is set"
    stack = contextlib.ExitStack()
    try:
        with stack:
            if reason is None:
                topo = stack.enter_context(netns.topology("demo"))
                say(f"networks: client {topo.client_ip}, edge {topo.edge_client_ip}/"
                    f"{topo.edge_cluster_ip}, cluster {topo.cluster_ip} (network namespaces; "
                    "the client has no route to the cluster)")
                cluster_host, edge_bind, edge_ip = topo.cluster_ip, topo.edge_client_ip, None
                topo.add_hosts("edge", {"kafka.orders.internal": topo.cluster_ip})
                topo.add_hosts("cluster", {"kafka.orders.internal": topo.cluster_ip})
            else:
                topo = None
                say(f"no network namespaces here ({reason}): running on loopback, the client "
                    "maps the custom names itself")
                cluster_host, edge_bind, edge_ip = "127.0.0.1", "127.0.0.2", "127.0.0.2"
            cluster = _start_cluster(stack, work, topo, cluster_host)
            topic = "demo-orders"
            cluster.create_topic(topic, partitions=6, replication_factor=3)
            _start_edge(stack, work, topo, cluster, edge_bind)
            return _run_client(work, topo, cluster, topic, edge_ip)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        say("stopped everything it started")


def _start_cluster(stack: contextlib.ExitStack, work: Path, topo: netns.Topology | None,
                   host: str) -> KafkaCluster:
    """Step 1: the private cluster (stopped when ``stack`` closes)."""
    say("starting Apache Kafka: 3 brokers, SASL_SSL with SCRAM-SHA-512 ...")
    t0 = time.monotonic()
    cluster = KafkaCluster.start(
        work / "kafka", brokers=3, security=("PLAINTEXT", "SASL_SSL"),
        host=host, netns=topo.cluster if topo else None,
        advertised_host="kafka.orders.internal" if topo else None)
    stack.callback(cluster.stop)
    say(f"cluster up in {time.monotonic() - t0:.1f} s; it advertises "
        f"{cluster.bootstrap('SASL_SSL')}")
    return cluster


def _start_edge(stack: contextlib.ExitStack, work: Path, topo: netns.Topology | None,
                cluster: KafkaCluster, edge_bind: str) -> None:
    """Steps 2 and 3: the CA and wildcard certificate, then kafka-edge, serving once this
    returns (stopped when ``stack`` closes)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    cert = ca.issue_cert(f"*.{DOMAIN}")
    cert.private_key_pem.write_to_path(str(work / "edge.key"))
    (work / "edge.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    say(f"private CA and wildcard certificate *.{DOMAIN} in {work}")

    config = {
        "listeners": [{"name": "edge", "bind": f"{edge_bind}:{PORT}", "tls": {
            "certificates": [{"cert_file": str(work / "edge.pem"),
                              "key_file": str(work / "edge.key")}]}}],
        "clusters": [{
            "name": "orders",
            "upstream": {"bootstrap_servers": cluster.bootstrap("SASL_SSL").split(","),
                         "tls": {"ca_file": cluster.ca_file}},
            "sni_routing": {"listener": "edge", "bootstrap_host": BOOT,
                            "broker_host_pattern": PATTERN}}],
        "observability": {"http_bind": None},
    }
    (work / "kafka-edge.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [sys.executable, "-m", "kafka_edge.cli", "run", "--config",
            str(work / "kafka-edge.yaml")]
    log = (work / "kafka-edge.log").open("wb")
    stack.callback(log.close)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    edge = (topo.popen("edge", argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            if topo else subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                          env=env))
    stack.callback(_stop, edge)
    _wait_ready(work / "kafka-edge.log", edge)
    say(f"kafka-edge serving {BOOT}:{PORT} and {PATTERN}:{PORT}")


def _run_client(work: Path, topo: netns.Topology | None, cluster: KafkaCluster, topic: str,
                edge_ip: str | None) -> int:
    """Step 4: the client, through the custom domain only; its summary, and the exit status."""
    names = [BOOT, *(PATTERN.format(node=n) for n in cluster.node_ids)]
    client = [sys.executable, str(REPO / "scripts" / "demo_client.py"),
              "--bootstrap", f"{BOOT}:{PORT}", "--ca", str(work / "ca.pem"),
              "--user", "alice", "--password", cluster.users["alice"],
              "--topic", topic, "--records", str(RECORDS)]
    if topo:
        topo.add_hosts("client", dict.fromkeys(names, topo.edge_client_ip))
        out = topo.run("client", client, check=False, timeout=300)
    else:
        client += [f"--map={n}={edge_ip}" for n in names]
        out = subprocess.run(client, capture_output=True, timeout=300, check=False)
    if out.returncode != 0:
        say("client failed:\n" + out.stderr.decode()[-3000:])
        say("kafka-edge log:\n" + (work / "kafka-edge.log").read_text()[-3000:])
        return 1
    summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
    print()
    print("  brokers as the client sees them:")
    for line in summary["brokers"]:
        print(f"    {line}")
    print(f"  records sent and acknowledged: {summary['sent']}")
    print(f"  records received:              {summary['received']}")
    print(f"  throughput: produce {summary['produce_mb_s']} MB/s, "
          f"consume {summary['consume_mb_s']} MB/s (1 KB records, kafka-python)")
    print()
    leaked = [a for a in cluster.broker_addresses() if a in out.stdout.decode()]
    if leaked or "internal" in out.stdout.decode():
        say(f"FAIL: the client saw a cluster address: {leaked}")
        return 1
    ok = summary["sent"] == summary["received"] == RECORDS
    say("OK: every record went through the custom domain; the client never saw a "
        "cluster address" if ok else "FAIL: records missing")
    return 0 if ok else 1


def _wait_ready(log: Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "kafka-edge ready" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("kafka-edge did not start:\n" + log.read_text(errors="replace")[-3000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
