"""The paths a client can take to the cluster: direct, and through each proxy.

Every path is started per round and variant (``plain``: plaintext on both sides; ``tls``: TLS
from the client to the proxy with the benchmark's test CA, and TLS from the proxy to the
brokers' SSL listener, hostname checked). :meth:`Path.start` returns the running proxy (None for
``direct``) and the endpoint the clients use.

Ports: each proxy and variant gets its own block of consecutive loopback ports, chosen free at
start-up (bootstrap on the first port, broker node N on the first port + N).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path as FsPath

import yaml
from brokers import HAPROXY_PLAIN, HAPROXY_TLS, Cluster, ProxyTls
from measure import ProcTree
from peers import Peer

PATH_NAMES = ("direct", "kafka-edge", "haproxy", "kroxylicious", "kafka-proxy")
VARIANTS = ("plain", "tls")
HOST = "127.0.0.1"
BLOCK = 8  # ports per proxy and variant: bootstrap, nodes 1..N, management/health


class PathUnavailable(RuntimeError):
    """This path cannot run here (the message is the reason given in the results)."""


# --------------------------------------------------------------------------------------------
# ports


class PortBlocks:
    """Blocks of consecutive free loopback ports below the ephemeral range (checked by bind)."""

    def __init__(self, low: int = 20000, high: int = 32000) -> None:
        self.low, self.high = low, high
        self.taken: set[int] = set()

    def block(self, size: int = BLOCK) -> int:
        for _ in range(500):
            base = random.randrange(self.low, self.high - size)
            ports = range(base, base + size)
            if self.taken.intersection(ports) or not all(_bindable(p) for p in ports):
                continue
            self.taken.update(ports)
            return base
        raise RuntimeError("no free block of loopback ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------
# processes


def _die_with_parent() -> None:
    """preexec_fn: the proxy gets SIGKILL if the benchmark dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


class ProxyProcess:
    """A proxy started by the benchmark, in its own process group (stopped as a group)."""

    def __init__(self, name: str, argv: list[str], log: FsPath,
                 env: dict[str, str] | None = None, cwd: FsPath | None = None) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            self.started = time.monotonic()
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        self.tree = ProcTree(self.popen.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 3) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(ln.strip()[:200] for ln in text[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        pgid = self.popen.pid  # start_new_session: the group is ours alone
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


# --------------------------------------------------------------------------------------------
# paths


@dataclass(frozen=True)
class Endpoint:
    """Where the clients connect, and the CA they trust (None: plaintext)."""

    bootstrap: str
    ca_file: str | None

    @property
    def first(self) -> tuple[str, int]:
        host, _, port = self.bootstrap.split(",")[0].rpartition(":")
        return host, int(port)

    def client_properties(self) -> dict[str, str]:
        if self.ca_file is None:
            return {}
        return {"security.protocol": "SSL", "ssl.truststore.type": "PEM",
                "ssl.truststore.location": self.ca_file}


@dataclass
class Context:
    cluster: Cluster
    proxy_tls: ProxyTls
    peers: dict[str, Peer]
    work: FsPath  # this run's work directory (configs, logs)
    ports: dict[tuple[str, str], int]  # (path, variant) -> first port of its block
    edge_workers: int = 1
    fd_limit: int = 20000  # RLIMIT_NOFILE the proxies inherit

    @property
    def max_connections(self) -> int:
        """Client connections a proxy can hold: each also has one upstream connection, and
        the proxy needs some descriptors of its own (a JVM keeps its jars open)."""
        return (self.fd_limit - 1000) // 2

    def upstream(self, variant: str) -> tuple[str, str | None]:
        """Bootstrap servers of the brokers' listener for ``variant``, and the cluster CA."""
        if variant == "tls":
            return self.cluster.bootstrap("SSL"), self.cluster.ca_file
        return self.cluster.bootstrap("PLAINTEXT"), None

    def edge_endpoint(self, base: int, variant: str) -> Endpoint:
        return Endpoint(f"{HOST}:{base}",
                        str(self.proxy_tls.ca_file) if variant == "tls" else None)


class ClientPath(ABC):
    name: str

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def unavailable(self) -> str | None:
        """Why this path cannot run here, or None."""
        peer = self.ctx.peers.get(self.name)
        return peer.error if peer else None

    @abstractmethod
    def start(self, variant: str, log: FsPath) -> tuple[ProxyProcess | None, Endpoint]:
        ...

    def config_file(self, variant: str, suffix: str, text: str) -> FsPath:
        path = self.ctx.work / f"{self.name}-{variant}.{suffix}"
        path.write_text(text)
        return path


class Direct(ClientPath):
    name = "direct"

    def start(self, variant: str, log: FsPath) -> tuple[ProxyProcess | None, Endpoint]:
        bootstrap, ca = self.ctx.upstream(variant)
        return None, Endpoint(bootstrap, ca)


class KafkaEdge(ClientPath):
    name = "kafka-edge"

    def start(self, variant: str, log: FsPath) -> tuple[ProxyProcess | None, Endpoint]:
        peer = self.ctx.peers[self.name]
        base = self.ctx.ports[self.name, variant]
        bootstrap, ca = self.ctx.upstream(variant)
        nodes = self.ctx.cluster.node_ids
        upstream: dict[str, object] = {"bootstrap_servers": bootstrap.split(",")}
        routing: dict[str, object] = {
            "bind_host": HOST, "bootstrap_port": base, "broker_port_base": base + min(nodes),
            "node_id_min": min(nodes), "node_id_max": max(nodes), "advertised_host": HOST,
        }
        if variant == "tls":
            upstream["tls"] = {"ca_file": ca, "verify_hostname": True}
            tls = self.ctx.proxy_tls
            routing["tls"] = {"certificates": [{"cert_file": str(tls.cert_file),
                                                "key_file": str(tls.key_file)}]}
        config = {
            "clusters": [{"name": "bench", "upstream": upstream, "port_routing": routing}],
            "observability": {"http_bind": f"{HOST}:{base + BLOCK - 1}", "log_level": "warning"},
        }
        path = self.config_file(variant, "yaml", yaml.safe_dump(config, sort_keys=False))
        argv = [str(peer.executable), "run", "--config", str(path)]
        if self.ctx.edge_workers > 1:
            argv += ["--workers", str(self.ctx.edge_workers)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return ProxyProcess(self.name, argv, log, env=env), self.ctx.edge_endpoint(base, variant)


class HaProxy(ClientPath):
    """HAProxy in TCP mode: one frontend per broker, forwarding to the broker listener that
    advertises that frontend (the floor of a proxy that rewrites nothing)."""

    name = "haproxy"

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason:
            return reason
        cluster = self.ctx.cluster
        if not (cluster.has_listener(HAPROXY_PLAIN) and cluster.has_listener(HAPROXY_TLS)):
            return ("the cluster has no listeners advertised at HAProxy's frontends: "
                    "scripts/kafka-local needs `--advertise-listener NAME=PROTOCOL://HOST:BASE`")
        return None

    def start(self, variant: str, log: FsPath) -> tuple[ProxyProcess | None, Endpoint]:
        peer = self.ctx.peers[self.name]
        base = self.ctx.ports[self.name, variant]
        listener = HAPROXY_TLS if variant == "tls" else HAPROXY_PLAIN
        bound = self.ctx.cluster.bound(listener)
        bind_opts = server_opts = ""
        if variant == "tls":
            bind_opts = f" ssl crt {self.ctx.proxy_tls.combined}"
            server_opts = (f" ssl verify required ca-file {self.ctx.cluster.ca_file}"
                           " verifyhost localhost")
        lines = [
            "global",
            f"    maxconn {self.ctx.max_connections}",
            "defaults",
            "    mode tcp",
            f"    maxconn {self.ctx.max_connections}",
            "    timeout connect 5s",
            "    timeout client 30m",
            "    timeout server 30m",
            "listen bootstrap",
            f"    bind {HOST}:{base}{bind_opts}",
            "    balance roundrobin",
            *(f"    server node{n} {addr}{server_opts}" for n, addr in sorted(bound.items())),
        ]
        for n, addr in sorted(bound.items()):
            lines += [f"listen node{n}", f"    bind {HOST}:{base + n}{bind_opts}",
                      f"    server node{n} {addr}{server_opts}"]
        path = self.config_file(variant, "cfg", "\n".join(lines) + "\n")
        argv = [str(peer.executable), "-db", "-f", str(path)]
        return ProxyProcess(self.name, argv, log), self.ctx.edge_endpoint(base, variant)


class Kroxylicious(ClientPath):
    name = "kroxylicious"

    def start(self, variant: str, log: FsPath) -> tuple[ProxyProcess | None, Endpoint]:
        peer = self.ctx.peers[self.name]
        assert peer.home is not None
        base = self.ctx.ports[self.name, variant]
        bootstrap, ca = self.ctx.upstream(variant)
        nodes = self.ctx.cluster.node_ids
        target: dict[str, object] = {"bootstrapServers": bootstrap}
        gateway: dict[str, object] = {
            "name": "default",
            "portIdentifiesNode": {
                "bootstrapAddress": f"{HOST}:{base}",
                "nodeStartPort": base + min(nodes),
                "nodeIdRanges": [{"name": "brokers", "start": min(nodes), "end": max(nodes)}],
            },
        }
        if variant == "tls":
            target["tls"] = {"trust": {"storeFile": ca, "storeType": "PEM"}}
            gateway["tls"] = {"key": {"privateKeyFile": str(self.ctx.proxy_tls.key_file),
                                      "certificateFile": str(self.ctx.proxy_tls.cert_file)}}
        config = {
            "management": {"bindAddress": HOST, "port": base + BLOCK - 1},
            "virtualClusters": [{"name": "bench", "targetCluster": target,
                                 "gateways": [gateway]}],
        }
        path = self.config_file(variant, "yaml", yaml.safe_dump(config, sort_keys=False))
        log4j = self.config_file(variant, "log4j2.properties", "\n".join([
            "appender.console.type = Console", "appender.console.name = STDOUT",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = %d %p %c{1} %m%n",
            "rootLogger.level = WARN", "rootLogger.appenderRef.stdout.ref = STDOUT", ""]))
        classpath = f"{peer.home / 'libs'}/*:{peer.home / 'classes'}"
        argv = ["java", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
                "BenchKroxylicious", str(path)]
        return ProxyProcess(self.name, argv, log), self.ctx.edge_endpoint(base, variant)


class GrepplabsKafkaProxy(ClientPath):
    """grepplabs kafka-proxy: one --bootstrap-server-mapping (node 1); the other brokers get
    dynamic listeners on sequential ports after it."""

    name = "kafka-proxy"

    def start(self, variant: str, log: FsPath) -> tuple[ProxyProcess | None, Endpoint]:
        peer = self.ctx.peers[self.name]
        base = self.ctx.ports[self.name, variant]
        bootstrap, ca = self.ctx.upstream(variant)
        first = bootstrap.split(",")[0]
        argv = [
            str(peer.executable), "server",
            "--bootstrap-server-mapping", f"{first},{HOST}:{base}",
            "--default-listener-ip", HOST,
            "--dynamic-sequential-min-port", str(base + 1),
            "--dynamic-sequential-max-ports", str(BLOCK - 2),
            "--http-listen-address", f"{HOST}:{base + BLOCK - 1}",
            "--log-level", "warning",
        ]
        if variant == "tls":
            tls = self.ctx.proxy_tls
            argv += ["--tls-enable", "--tls-ca-chain-cert-file", str(ca),
                     "--proxy-listener-tls-enable",
                     "--proxy-listener-cert-file", str(tls.cert_file),
                     "--proxy-listener-key-file", str(tls.key_file)]
        return ProxyProcess(self.name, argv, log), self.ctx.edge_endpoint(base, variant)


PATH_CLASSES: dict[str, type[ClientPath]] = {
    "direct": Direct,
    "kafka-edge": KafkaEdge,
    "haproxy": HaProxy,
    "kroxylicious": Kroxylicious,
    "kafka-proxy": GrepplabsKafkaProxy,
}
