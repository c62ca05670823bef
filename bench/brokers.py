"""The Kafka cluster under test (started with scripts/kafka-local), its topics, and TLS material.

The cluster has three brokers with a PLAINTEXT and an SSL listener (what ``direct`` and the
Kafka-aware proxies use) and, for HAProxy, two more listeners whose *advertised* addresses are
HAProxy's frontends (``--advertise-listener NAME=PROTOCOL://HOST:BASE``: node N advertises
HOST:BASE+N). HAProxy forwards each frontend to the real port of that listener, so a proxy that
rewrites nothing still keeps every client connection on the proxy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HAPROXY_PLAIN = "HAPLAIN"
HAPROXY_TLS = "HATLS"


class ClusterError(RuntimeError):
    pass


@dataclass
class Cluster:
    """What ``kafka-local up`` printed, plus how to stop it."""

    launcher: Path
    directory: Path
    info: dict[str, Any]

    @property
    def kafka_version(self) -> str:
        return str(self.info["kafka_version"])

    @property
    def ca_file(self) -> str:
        return str(self.info["ca_file"])

    @property
    def node_ids(self) -> list[int]:
        return [int(b["node_id"]) for b in self.info["brokers"]]

    def bootstrap(self, listener: str) -> str:
        return str(self.info["bootstrap"][listener])

    def has_listener(self, listener: str) -> bool:
        return listener in self.info["bootstrap"]

    def bound(self, listener: str) -> dict[int, str]:
        """{node id: host:port the broker listens on} for ``listener``."""
        return {int(b["node_id"]): str(b["listeners"][listener]) for b in self.info["brokers"]}

    def down(self) -> None:
        subprocess.run([sys.executable, str(self.launcher), "down", "--dir", str(self.directory)],
                       capture_output=True, check=False, timeout=120)


def launcher_options(launcher: Path) -> str:
    """The launcher's ``up --help`` text (to see which options it has)."""
    proc = subprocess.run([sys.executable, str(launcher), "up", "--help"],
                          capture_output=True, text=True, check=False, timeout=60)
    return proc.stdout


def start_cluster(launcher: Path, directory: Path, *, brokers: int, heap: str,
                  advertise: dict[str, str], log: Path) -> Cluster:
    """``kafka-local up``; ``advertise`` maps extra listener names to PROTOCOL://HOST:BASE."""
    argv = [sys.executable, str(launcher), "up", "--brokers", str(brokers),
            "--security", "plaintext,ssl", "--heap", heap, "--dir", str(directory)]
    for name, spec in advertise.items():
        argv += ["--advertise-listener", f"{name}={spec}"]
    cluster = Cluster(launcher, directory, {})
    try:
        with log.open("wb") as err:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, check=False,
                                  timeout=300)
    except subprocess.TimeoutExpired:
        cluster.down()  # brokers it may have started outlive the launcher
        raise ClusterError("kafka-local up: no answer after 300 s") from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise ClusterError(f"kafka-local up exited {proc.returncode}: " + " | ".join(tail))
    cluster.info = json.loads(proc.stdout)
    return cluster


# --------------------------------------------------------------------------------------------
# topics (through the internal PLAINTEXT listener, with kafka-python's admin client)


class Topics:
    def __init__(self, bootstrap: str) -> None:
        from kafka.admin import KafkaAdminClient

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","),
                                      client_id="kafka-edge-bench-admin",
                                      request_timeout_ms=30000)

    def create(self, name: str, partitions: int, replication: int) -> None:
        self.admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": replication}},
            timeout_ms=30000, wait_for_metadata=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (topic,) = self.admin.describe_topics([name])
            parts = topic.get("partitions") or []
            if len(parts) == partitions and all(p["leader_id"] >= 0 for p in parts):
                return
            time.sleep(0.2)
        raise ClusterError(f"topic {name}: partitions without a leader after 30 s")

    def delete(self, *names: str) -> None:
        try:
            self.admin.delete_topics(list(names), timeout_ms=30000, raise_errors=False)
        except Exception as exc:
            print(f"[bench] warning: deleting {names}: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.admin.close()


# --------------------------------------------------------------------------------------------
# TLS for the proxies' client side: a test CA and one certificate for 127.0.0.1 / localhost


@dataclass(frozen=True)
class ProxyTls:
    ca_file: Path  # what the benchmark clients trust
    cert_file: Path  # chain
    key_file: Path  # PKCS#8
    combined: Path  # certificate chain + key (HAProxy's crt)


def make_proxy_tls(directory: Path) -> ProxyTls:
    import trustme
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="kafka-edge bench")
    leaf = ca.issue_cert("127.0.0.1", "localhost", common_name="127.0.0.1")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    tls = ProxyTls(directory / "ca.pem", directory / "proxy-cert.pem",
                   directory / "proxy-key.pem", directory / "proxy-combined.pem")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    tls.cert_file.write_bytes(chain)
    tls.key_file.write_bytes(key_pem)
    tls.combined.write_bytes(chain + key_pem)
    for path in (tls.key_file, tls.combined):
        path.chmod(0o600)
    return tls
