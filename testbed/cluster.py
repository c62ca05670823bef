"""Real Apache Kafka KRaft clusters for tests: N combined broker+controller nodes, one JVM each.

Every node always has an internal ``PLAINTEXT`` listener (inter-broker traffic and the test bed's
own admin calls) and a ``CONTROLLER`` listener, plus one listener per requested security protocol
(``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``), each on its own port. Listener names equal the
security protocol names, so ``cluster.bootstrap("SASL_SSL")`` is the SASL_SSL bootstrap.

SASL listeners enable the requested mechanisms (default SCRAM-SHA-512, PLAIN and OAUTHBEARER):
SCRAM users are created at storage-format time, PLAIN users live in the listener's JAAS config and
OAUTHBEARER uses Kafka's *unsecured* JWS validator (test only: any ``alg: none`` token with a
``sub`` claim is accepted). No authorizer is enabled.

Usage::

    cluster = KafkaCluster.start(tmp / "k3", brokers=3, security=("SSL", "SASL_SSL"))
    cluster.create_topic("orders", partitions=6, replication_factor=3)
    cluster.bootstrap("SASL_SSL")      # "127.0.0.1:41234,127.0.0.1:41240,..."
    cluster.stop()

Extra *advertised* listeners (``advertise_listeners={"EXT": "SSL://proxy.example:9200"}``,
``kafka-local up --advertise-listener EXT=SSL://proxy.example:9200``) put a listener ``EXT`` on
every node, bound on ``host`` at a free port but advertised as ``proxy.example:9200+N`` (N: node
id): the addresses of a TCP forwarder in front of the brokers. ``cluster.bootstrap("EXT")``
lists the advertised addresses, ``cluster.port(n, "EXT")`` the real (bound) ports.

Related modules: :mod:`testbed.jvm` (jars, class path, JVM options and logging set-up, the
``java`` command line) and :mod:`testbed.cli` (``scripts/kafka-local``, the command-line face of
this module).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import procs
from testbed.jvm import (
    DEFAULT_VERSION,
    ClusterError,
    broker_jvm_options,
    broker_log_config,
    java_classpath,
    java_command,
    kafka_libs,
    logging_works,
    major,
    tool_jvm_options,
    tool_log_config,
    write_properties,
)
from testbed.layout import NodeLayout

if TYPE_CHECKING:
    from testbed.clients import ClientSecurity

__all__ = [
    "ADVERTISE_PROTOCOLS",
    "CONTROLLER",
    "DEFAULT_MECHANISMS",
    "DEFAULT_USERS",
    "DEFAULT_VERSION",  # from testbed.jvm: the default of KafkaCluster.start
    "MECHANISMS",
    "RUNNER",
    "SECURITY_PROTOCOLS",
    "STATE_FILE",
    "ClusterError",  # from testbed.jvm (the jar look-up raises it too)
    "KafkaCluster",
    "active_clusters",
    "forget_all",
    "free_ports",
    "free_ports_in",
    "java_classpath",  # from testbed.jvm; tests import it from here
    "netns_prefix",
    "new_cluster_id",
    "parse_advertise_listeners",
    "parse_mechanisms",
    "parse_security",
    "stop_all",
    "tail",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
DEFAULT_MECHANISMS = ("SCRAM-SHA-512", "PLAIN", "OAUTHBEARER")
DEFAULT_USERS: Mapping[str, str] = {"alice": "alice-secret", "admin": "admin-secret"}
CONTROLLER = "CONTROLLER"
ADVERTISE_PROTOCOLS = ("PLAINTEXT", "SSL")  # security protocols of extra advertised listeners
_LISTENER_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
STATE_FILE = "cluster.json"
RUNNER = Path(__file__).resolve().parent / "_runner.py"

_ACTIVE: dict[str, KafkaCluster] = {}
_ACTIVE_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# helpers


def parse_security(values: Iterable[str]) -> tuple[str, ...]:
    """``["ssl,sasl_ssl", "plaintext"]`` -> ``("PLAINTEXT", "SSL", "SASL_SSL")``.

    PLAINTEXT (the internal listener) is always there and always first.
    """
    wanted = {"PLAINTEXT"}
    for value in values:
        for item in value.split(","):
            name = item.strip().upper().replace("-", "_")
            if not name:
                continue
            if name not in SECURITY_PROTOCOLS:
                raise ValueError(f"unknown security protocol {item!r}: one of {SECURITY_PROTOCOLS}")
            wanted.add(name)
    return tuple(p for p in SECURITY_PROTOCOLS if p in wanted)


def parse_mechanisms(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip().upper()
            if not name:
                continue
            if name not in MECHANISMS:
                raise ValueError(f"unknown SASL mechanism {item!r}: one of {MECHANISMS}")
            if name not in out:
                out.append(name)
    return tuple(out)


def parse_advertise_listeners(
    specs: Mapping[str, str] | None, brokers: int = 1
) -> dict[str, dict[str, Any]]:
    """``{"HAPLAIN": "PLAINTEXT://127.0.0.1:20000"}`` ->
    ``{"HAPLAIN": {"protocol": "PLAINTEXT", "host": "127.0.0.1", "base": 20000}}``.

    Node N advertises ``HOST:BASE+N`` on listener NAME. Names are upper-cased and may not be
    those of the built-in listeners (security protocol names, CONTROLLER).
    """
    out: dict[str, dict[str, Any]] = {}
    for raw_name, spec in (specs or {}).items():
        name = raw_name.strip().upper()
        where = f"advertised listener {raw_name}={spec}"
        if not _LISTENER_NAME.fullmatch(name):
            raise ValueError(f"{where}: NAME must be letters, digits and _, letter first")
        if name in SECURITY_PROTOCOLS or name == CONTROLLER:
            raise ValueError(f"{where}: {name} is a built-in listener name")
        if name in out:
            raise ValueError(f"{where}: listener {name} given twice")
        proto, sep, hostport = spec.strip().partition("://")
        proto = proto.strip().upper().replace("-", "_")
        if not sep or proto not in ADVERTISE_PROTOCOLS:
            raise ValueError(
                f"{where}: expected PROTOCOL://HOST:BASE with PROTOCOL one of {ADVERTISE_PROTOCOLS}"
            )
        host, sep, base_text = hostport.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            base = int(base_text)
        except ValueError:
            base = -1
        if not sep or not host or base < 0:
            raise ValueError(f"{where}: expected PROTOCOL://HOST:BASE (BASE a port number)")
        if base + brokers > 65535:
            raise ValueError(f"{where}: BASE+{brokers} is above 65535")
        out[name] = {"protocol": proto, "host": host, "base": base}
    return out


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def new_cluster_id() -> str:
    """A random cluster id: base64url of 16 random bytes, like ``kafka-storage random-uuid``."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_ports_in(netns: str | None, host: str, count: int) -> list[int]:
    """:func:`free_ports`, asked inside network namespace ``netns`` when one is given."""
    if not netns:
        return free_ports(host, count)
    code = (
        "import socket, sys\n"
        "socks = [socket.socket() for _ in range(int(sys.argv[2]))]\n"
        "for s in socks: s.bind((sys.argv[1], 0))\n"
        "print(' '.join(str(s.getsockname()[1]) for s in socks))"
    )
    out = subprocess.run(
        [*netns_prefix(netns), sys.executable, "-c", code, host, str(count)],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return [int(p) for p in out.stdout.split()]


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------
# the cluster


class KafkaCluster:
    """A running (or stopped) local Kafka cluster; state lives in ``DIR/cluster.json``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    # ---- construction -----------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        directory: str | os.PathLike[str],
        *,
        brokers: int = 1,
        security: Iterable[str] = ("PLAINTEXT",),
        mechanisms: Iterable[str] = DEFAULT_MECHANISMS,
        kafka_version: str = DEFAULT_VERSION,
        config: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        advertised_host: str | None = None,
        netns: str | None = None,
        advertise_listeners: Mapping[str, str] | None = None,
        users: Mapping[str, str] = DEFAULT_USERS,
        owned: bool = True,
        heap: str = "512m",
        log_level: str | None = None,
        timeout: float = 120.0,
        layout: NodeLayout | None = None,
        extra_classpath: Iterable[str] = (),
    ) -> KafkaCluster:
        """Format and start a cluster, and wait until its metadata lists every broker.

        ``owned``: the brokers belong to this Python process: they are stopped at exit (atexit),
        die with it (PR_SET_PDEATHSIG) and are swept by :func:`procs.sweep_stale` if it crashes.
        ``kafka-local up`` passes ``owned=False``: those brokers live until ``kafka-local down``.
        ``netns``: run every broker under ``ip netns exec NETNS``; ``host`` must then be an
        address of that namespace. ``advertised_host``: name or address brokers advertise
        (default ``host``); it is added to the broker certificate. ``advertise_listeners``:
        ``{NAME: "PROTOCOL://HOST:BASE"}`` (PROTOCOL: PLAINTEXT or SSL): listener NAME of node N
        is bound on ``host`` at a free port and advertised as ``HOST:BASE+N``; HOST is added to
        the broker certificate. Inter-broker traffic stays on the internal PLAINTEXT listener.
        ``layout``: brokers with an address and a name of their own (:mod:`testbed.layout`).
        ``extra_classpath``: entries after Kafka's jars on the brokers' class path (test-only
        broker plugins, such as the emulated MSK IAM of :mod:`testbed.msk`).
        """
        t0 = time.monotonic()
        directory = Path(directory).resolve()
        if brokers < 1:
            raise ValueError("brokers must be >= 1")
        listeners = parse_security(security)
        extra = parse_advertise_listeners(advertise_listeners, brokers)
        mechs = parse_mechanisms(mechanisms)
        if any(p.startswith("SASL") for p in listeners) and not mechs:
            raise ValueError("SASL listeners need at least one mechanism")
        if (directory / STATE_FILE).exists():
            previous: KafkaCluster | None = None
            with contextlib.suppress(Exception):
                previous = cls.load(directory)
            if previous is not None and previous.running_nodes():
                raise ClusterError(f"a cluster is already running in {directory}")
        directory.mkdir(parents=True, exist_ok=True)
        kafka_libs(kafka_version)

        node_ids = list(range(1, brokers + 1))
        names = [*listeners, CONTROLLER, *extra]
        if layout is not None:
            layout.check(node_ids)
        hosts = {n: layout.hosts[n] if layout else host for n in node_ids}
        advertised = {n: layout.names[n] if layout else advertised_host or host for n in node_ids}
        fixed = dict(layout.fixed_ports) if layout else {}
        # free ports where the brokers will bind (inside the namespace, if any): several
        # clusters may share one namespace
        ports: dict[int, dict[str, int]] = {}
        for bind in dict.fromkeys(hosts.values()):
            on_host = [n for n in node_ids if hosts[n] == bind]
            free = iter(free_ports_in(netns, bind, len(on_host) * len(names)))
            for n in on_host:
                ports[n] = {name: fixed.get(name) or next(free) for name in names}

        state: dict[str, Any] = {
            "dir": str(directory),
            "kafka_version": kafka_version,
            "cluster_id": new_cluster_id(),
            "host": host,
            "advertised_host": advertised_host or host,
            "netns": netns,
            "listeners": list(listeners),
            "advertise_listeners": extra,
            "mechanisms": list(mechs) if any(p.startswith("SASL") for p in listeners) else [],
            "users": dict(users),
            "config": dict(config or {}),
            "owner": procs.owner_token() if owned else None,
            "heap": heap,
            "ca_file": None,
            "nodes": {
                str(n): {
                    "node_id": n,
                    "host": hosts[n],
                    "advertised_host": advertised[n],
                    "ports": ports[n],
                    "dir": str(directory / f"node-{n}"),
                    "pid": None,
                }
                for n in node_ids
            },
            "startup_seconds": None,
            "logging": logging_works(kafka_version),
            "classpath": list(extra_classpath),
            "tls_names": list(layout.tls_names) if layout else [],
        }
        cluster = cls(state)
        cluster._write_files(log_level)
        cluster._save()
        with _ACTIVE_LOCK:
            _ACTIVE[str(directory)] = cluster
        try:
            t_format = time.monotonic()
            cluster._format_all()
            t_launch = time.monotonic()
            for n in node_ids:
                cluster._launch(n)
            cluster._save()
            cluster.wait_for_brokers(timeout=timeout)
        except BaseException:
            cluster.stop(timeout=5.0)
            raise
        t_ready = time.monotonic()
        state["startup_seconds"] = round(t_ready - t0, 2)
        state["startup_phases"] = {
            "prepare": round(t_format - t0, 2),
            "format": round(t_launch - t_format, 2),
            "brokers": round(t_ready - t_launch, 2),
        }
        cluster._save()
        return cluster

    def _write_files(self, log_level: str | None) -> None:
        """What the brokers read at start: TLS material when a listener needs it (its CA and
        keystore noted in the state), the log configuration and each node's server.properties."""
        state = self.state
        directory = Path(state["dir"])
        extra: dict[str, dict[str, Any]] = state["advertise_listeners"]
        if any("SSL" in p for p in [*state["listeners"], *(x["protocol"] for x in extra.values())]):
            from testbed.tls import make_tls

            san = ["localhost", state["host"], state["advertised_host"], "127.0.0.1"]
            san += [x["host"] for x in extra.values()]
            san += [*state.get("tls_names", ()), *(n[k] for n in state["nodes"].values()
                                                   for k in ("host", "advertised_host"))]
            tls = make_tls(directory / "tls", san)
            state["ca_file"] = str(tls.ca_file)
            state["keystore"] = str(tls.keystore)
        level = log_level or os.environ.get("KAFKA_TESTBED_LOG_LEVEL", "INFO")
        log_name, log_text = broker_log_config(state["kafka_version"], level)
        (directory / log_name).write_text(log_text)
        state["log_config"] = str(directory / log_name)
        for node in state["nodes"].values():
            node_dir = Path(node["dir"])
            node_dir.mkdir(parents=True, exist_ok=True)
            write_properties(node_dir / "server.properties",
                             self._server_properties(node["node_id"]))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> KafkaCluster:
        """A cluster started earlier (maybe by another process) from its state file."""
        path = Path(directory).resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterError(f"no cluster in {path.parent} ({STATE_FILE} missing)") from None
        return cls(state)

    # ---- configuration ------------------------------------------------------------------------

    def _server_properties(self, node_id: int) -> dict[str, str]:
        st = self.state
        node = st["nodes"][str(node_id)]
        n_brokers = len(st["nodes"])
        host, adv = self._bind_host(node), self._advertised(node)
        voters = ",".join(
            f"{n['node_id']}@{self._bind_host(n)}:{n['ports'][CONTROLLER]}"
            for n in self._node_states()
        )
        listeners = st["listeners"]
        extra = self.advertise_listeners
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": CONTROLLER,
            "listeners": ",".join(
                f"{name}://{host}:{node['ports'][name]}"
                for name in [*listeners, CONTROLLER, *extra]
            ),
            "advertised.listeners": ",".join(
                [f"{name}://{adv}:{node['ports'][name]}" for name in listeners]
                + [
                    f"{name}://{_hostport(x['host'], x['base'] + node_id)}"
                    for name, x in extra.items()
                ]
            ),
            "listener.security.protocol.map": ",".join(
                [f"{p}:{p}" for p in listeners]
                + [f"{CONTROLLER}:PLAINTEXT"]
                + [f"{name}:{x['protocol']}" for name, x in extra.items()]
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(Path(node["dir"]) / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": str(min(3, n_brokers)),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(min(3, n_brokers)),
            "transaction.state.log.min.isr": str(min(2, n_brokers)),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(min(3, n_brokers)),
            "share.coordinator.state.topic.min.isr": str(min(2, n_brokers)),
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "4",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "controller.quorum.election.timeout.ms": "1000",
            "controller.quorum.fetch.timeout.ms": "2000",
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "6000",
        }
        if major(st["kafka_version"]) < 4:
            # unknown in 3.x; harmless but logged as unused
            for key in (
                "share.coordinator.state.topic.replication.factor",
                "share.coordinator.state.topic.min.isr",
            ):
                props.pop(key)
        if st.get("ca_file"):
            props |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": st["keystore"],
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": st["ca_file"],
                "ssl.client.auth": "none",
                "ssl.endpoint.identification.algorithm": "",
            }
        users = st["users"]
        for proto in listeners:
            if not proto.startswith("SASL"):
                continue
            prefix = f"listener.name.{proto.lower()}."
            props[prefix + "sasl.enabled.mechanisms"] = ",".join(st["mechanisms"])
            for mech in st["mechanisms"]:
                mp = prefix + mech.lower() + ".sasl.jaas.config"
                if mech.startswith("SCRAM"):
                    props[mp] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                elif mech == "PLAIN":
                    creds = " ".join(f"user_{u}={_jaas_quote(p)}" for u, p in users.items())
                    props[mp] = (
                        f"org.apache.kafka.common.security.plain.PlainLoginModule required {creds};"
                    )
                elif mech == "OAUTHBEARER":
                    props[mp] = (
                        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
                        'required unsecuredLoginStringClaim_sub="admin";'
                    )
        props |= st["config"]
        return props

    def _bind_host(self, node: dict[str, Any]) -> str:
        return str(node.get("host") or self.state["host"])

    def _advertised(self, node: dict[str, Any]) -> str:
        return str(node.get("advertised_host") or self.state["advertised_host"])

    def _node_states(self) -> list[dict[str, Any]]:
        return [self.state["nodes"][k] for k in sorted(self.state["nodes"], key=int)]

    def _node(self, node_id: int) -> dict[str, Any]:
        try:
            return self.state["nodes"][str(node_id)]  # type: ignore[no-any-return]
        except KeyError:
            raise ValueError(f"no broker {node_id} in {self.dir}") from None

    def _save(self) -> None:
        path = self.dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(path)

    # ---- processes --------------------------------------------------------------------------

    def _format_all(self) -> None:
        st = self.state
        scram = [
            arg
            for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256")
            for user, password in st["users"].items()
            for arg in ("--add-scram", f"{mech}=[name={user},password={password}]")
        ]
        running = []
        for node in self._node_states():
            node_dir = Path(node["dir"])
            argv = [
                *java_command(
                    st["kafka_version"], tool_jvm_options(), tool_log_config(st["kafka_version"])
                ),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                st["cluster_id"],
                "--config",
                str(node_dir / "server.properties"),
                "--ignore-formatted",
                *scram,
            ]
            out = (node_dir / "format.log").open("wb")
            running.append((node, out, subprocess.Popen(argv, stdout=out, stderr=out)))
        failed = []
        for node, out, proc in running:
            rc = proc.wait(timeout=120)
            out.close()
            if rc != 0:
                failed.append(
                    f"node {node['node_id']}: exit {rc}\n{tail(Path(node['dir']) / 'format.log')}"
                )
        if failed:
            raise ClusterError("storage format failed:\n" + "\n".join(failed))

    def _launch(self, node_id: int) -> None:
        st = self.state
        node = self._node(node_id)
        node_dir = Path(node["dir"])
        markers = [f"{procs.MARKER_DIR}{self.dir}", f"-Dkafka.testbed.node={node_id}"]
        if st["owner"]:
            markers.append(f"{procs.MARKER_OWNER}{st['owner']}")
        options = [
            *broker_jvm_options(heap_max=st["heap"]),
            *markers,
            f"-Dkafka.logs.dir={node_dir}",
        ]
        argv = [
            *netns_prefix(st["netns"]),
            *java_command(st["kafka_version"], options, Path(st["log_config"]),
                          st.get("classpath", ())),
            "kafka.Kafka",
            str(node_dir / "server.properties"),
        ]
        with (node_dir / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=procs.die_with_parent if self._die_with_parent() else None,  # noqa: PLW1509
                cwd=node_dir,
            )
        self._popens[node_id] = proc
        node["pid"] = proc.pid

    def _die_with_parent(self) -> bool:
        # PR_SET_PDEATHSIG fires when the *thread* that started the child ends: only safe (and
        # only done) for owned brokers started from the main thread.
        return bool(self.state["owner"]) and threading.current_thread() is threading.main_thread()

    def _run_admin(self, action: str, spec: dict[str, Any], timeout: float) -> str:
        spec = {"bootstrap": self.bootstrap("PLAINTEXT"), **spec}
        argv = [
            *netns_prefix(self.state["netns"]),
            sys.executable,
            str(RUNNER),
            "admin",
            action,
            json.dumps(spec),
        ]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                dead = self._dead_owned_nodes()
                if dead:
                    raise ClusterError(
                        f"broker(s) {dead} exited while waiting for {action}\n" + self.log_tails()
                    )
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"{action} timed out after {timeout:.0f} s\n" + self.log_tails()
                    )
                time.sleep(0.1)
            out, err = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        if proc.returncode != 0:
            raise ClusterError(f"{action} failed: {err.decode(errors='replace')[-2000:]}")
        return out.decode()

    def _dead_owned_nodes(self) -> list[int]:
        return [n for n, p in self._popens.items() if p.poll() is not None]

    # ---- public API ---------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return Path(self.state["dir"])

    @property
    def kafka_version(self) -> str:
        return str(self.state["kafka_version"])

    @property
    def node_ids(self) -> list[int]:
        return [n["node_id"] for n in self._node_states()]

    @property
    def listeners(self) -> tuple[str, ...]:
        return tuple(self.state["listeners"])

    @property
    def advertise_listeners(self) -> dict[str, dict[str, Any]]:
        """Extra advertised listeners: ``{NAME: {"protocol", "host", "base"}}``."""
        return {k: dict(v) for k, v in self.state.get("advertise_listeners", {}).items()}

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return tuple(self.state["mechanisms"])

    @property
    def users(self) -> dict[str, str]:
        return dict(self.state["users"])

    @property
    def ca_file(self) -> str | None:
        return self.state["ca_file"]  # type: ignore[no-any-return]

    @property
    def host(self) -> str:
        return str(self.state["host"])

    @property
    def netns(self) -> str | None:
        return self.state["netns"]  # type: ignore[no-any-return]

    @property
    def startup_seconds(self) -> float | None:
        return self.state["startup_seconds"]  # type: ignore[no-any-return]

    def port(self, node_id: int, listener: str = "PLAINTEXT") -> int:
        """The port broker ``node_id`` listens on (for an advertised listener: the bound one)."""
        return int(self._node(node_id)["ports"][listener.upper()])

    def address(self, node_id: int, listener: str = "PLAINTEXT") -> str:
        """The ``host:port`` broker ``node_id`` advertises on ``listener``."""
        extra = self.advertise_listeners.get(listener.upper())
        if extra is not None:
            self._node(node_id)
            return _hostport(extra["host"], extra["base"] + node_id)
        return f"{self._advertised(self._node(node_id))}:{self.port(node_id, listener)}"

    def bootstrap(self, listener: str = "PLAINTEXT") -> str:
        """``host:port,...`` of every broker on ``listener`` (PLAINTEXT, SSL, SASL_SSL, ...).

        For an extra advertised listener: the advertised addresses (``HOST:BASE+N``).
        """
        listener = listener.upper()
        if listener not in self.listeners and listener not in self.advertise_listeners:
            have = (*self.listeners, *self.advertise_listeners)
            raise ValueError(f"cluster has no {listener} listener (has {have})")
        return ",".join(self.address(n, listener) for n in self.node_ids)

    def broker_addresses(self, listener: str | None = None) -> list[str]:
        """Every real ``host:port`` of the brokers: of one listener, or of all (with CONTROLLER).

        Includes both the bound and the advertised host when they differ, so tests can check
        that none of them leaks to a client. For extra advertised listeners these are the real
        (bound) ports, not the advertised ``HOST:BASE+N``.
        """
        names = (
            [listener.upper()]
            if listener
            else [*self.listeners, CONTROLLER, *self.advertise_listeners]
        )
        def hosts(n: int) -> list[str]:
            node = self._node(n)
            return list(dict.fromkeys([self.state["host"], self.state["advertised_host"],
                                       self._bind_host(node), self._advertised(node)]))

        return [f"{h}:{self.port(n, name)}" for name in names for n in self.node_ids
                for h in hosts(n)]

    def client_security(
        self, listener: str = "PLAINTEXT", mechanism: str | None = None, user: str = "alice"
    ) -> ClientSecurity:
        """A :class:`testbed.clients.ClientSecurity` for a listener of this cluster."""
        from testbed.clients import ClientSecurity

        listener = listener.upper()
        extra = self.advertise_listeners.get(listener)
        protocol = extra["protocol"] if extra else listener
        sasl = protocol.startswith("SASL")
        if sasl and mechanism is None:
            mechanism = self.mechanisms[0]
        return ClientSecurity(
            protocol=protocol,
            ca_file=self.ca_file if "SSL" in protocol else None,
            mechanism=mechanism if sasl else None,
            username=user if sasl else None,
            password=self.users.get(user) if sasl else None,
        )

    def log_files(self) -> dict[int, Path]:
        """The main log file (server.log) of every broker."""
        return {n: Path(self._node(n)["dir"]) / "server.log" for n in self.node_ids}

    def log_tails(self, lines: int = 30) -> str:
        parts = []
        for n in self.node_ids:
            node_dir = Path(self._node(n)["dir"])
            for name in ("server.log", "stdout.log"):
                text = tail(node_dir / name, lines)
                if text.strip():
                    parts.append(f"--- broker {n} {name} ---\n{text}")
        return "\n".join(parts)

    def pids(self) -> dict[int, int | None]:
        return {n["node_id"]: n["pid"] for n in self._node_states()}

    def running_nodes(self) -> list[int]:
        out = []
        for n in self._node_states():
            popen = self._popens.get(n["node_id"])
            if popen is not None:
                if popen.poll() is None:
                    out.append(n["node_id"])
            elif n["pid"] and procs.process_matches(n["pid"], self.dir):
                out.append(n["node_id"])
        return out

    def wait_for_brokers(self, count: int | None = None, timeout: float = 90.0) -> list[int]:
        """Wait until the cluster's metadata lists ``count`` (default: all) brokers."""
        count = len(self.node_ids) if count is None else count
        out = self._run_admin("wait-brokers", {"count": count, "timeout": timeout}, timeout + 10)
        return list(json.loads(out)["brokers"])

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create a topic (through the PLAINTEXT listener) and wait until it has leaders."""
        spec = {
            "name": name,
            "partitions": partitions,
            "replication_factor": replication_factor,
            "configs": dict(config or {}),
        }
        self._run_admin("create-topic", spec, 60.0)

    def describe_topic(self, name: str) -> dict[str, Any]:
        return json.loads(self._run_admin("describe-topic", {"name": name}, 60.0))  # type: ignore[no-any-return]

    def partition_leaders(self, name: str) -> dict[int, int]:
        """``{partition: leader node id}`` of a topic (-1: no leader)."""
        topic = self.describe_topic(name)
        return {p["partition_index"]: p["leader_id"] for p in topic["partitions"]}

    def stop_broker(self, node_id: int, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop one broker: SIGTERM (controlled shut-down) or, with ``kill``, SIGKILL."""
        node = self._node(node_id)
        proc: int | subprocess.Popen[bytes] | None = self._popens.get(node_id)
        if proc is None and node["pid"] and procs.process_matches(node["pid"], self.dir):
            proc = node["pid"]
        if proc is None:
            return
        if kill:
            procs.kill([proc])
        else:
            procs.terminate([proc], timeout=timeout)
        self._popens.pop(node_id, None)
        node["pid"] = None
        self._save()

    def start_broker(self, node_id: int, *, wait: bool = True, timeout: float = 90.0) -> None:
        """Start a stopped broker again (same ports, same data) and wait until it is listed."""
        if node_id in self.running_nodes():
            return
        self._launch(node_id)
        self._save()
        with _ACTIVE_LOCK:
            _ACTIVE[str(self.dir)] = self
        if wait:
            self.wait_for_brokers(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> dict[int, str]:
        """Stop every broker (SIGTERM, SIGKILL after ``timeout``). Data and logs stay."""
        with self._lock:
            targets: list[int | subprocess.Popen[bytes]] = []
            ids = []
            for n in self._node_states():
                popen = self._popens.get(n["node_id"])
                if popen is not None:
                    targets.append(popen)
                elif n["pid"] and procs.process_matches(n["pid"], self.dir):
                    targets.append(n["pid"])
                else:
                    continue
                ids.append(n["node_id"])
            result = procs.terminate(targets, timeout=timeout) if targets else {}
            for n in self._node_states():
                n["pid"] = None
            self._popens.clear()
            if self.dir.exists():
                self._save()
            with _ACTIVE_LOCK:
                _ACTIVE.pop(str(self.dir), None)
            return {
                node_id: result.get(_pid(t), "gone")
                for node_id, t in zip(ids, targets, strict=True)
            }

    def describe(self) -> dict[str, Any]:
        """What ``kafka-local up`` and ``status`` print."""
        st = self.state
        running = set(self.running_nodes())
        extra = self.advertise_listeners
        desc: dict[str, Any] = {
            "dir": st["dir"],
            "kafka_version": st["kafka_version"],
            "cluster_id": st["cluster_id"],
            "host": st["host"],
            "advertised_host": st["advertised_host"],
            "netns": st["netns"],
            "bootstrap": {name: self.bootstrap(name) for name in [*self.listeners, *extra]},
            "mechanisms": list(self.mechanisms),
            "ca_file": st["ca_file"],
            "users": st["users"],
            "brokers": [
                {
                    "node_id": n["node_id"],
                    "pid": n["pid"],
                    "running": n["node_id"] in running,
                    "listeners": {
                        # extra advertised listeners: the bound address (what a forwarder targets)
                        name: f"{self._bind_host(n) if name in extra else self._advertised(n)}"
                        f":{port}"
                        for name, port in n["ports"].items()
                    },
                    "log": str(Path(n["dir"]) / "server.log"),
                }
                for n in self._node_states()
            ],
            "log_dir": st["dir"],
            "startup_seconds": st["startup_seconds"],
            "startup_phases": st.get("startup_phases"),
            "logging": st.get("logging", True),
        }
        if extra:
            desc["advertise_listeners"] = {
                name: {**x, "advertised": self.bootstrap(name)} for name, x in extra.items()
            }
        return desc

    def __repr__(self) -> str:
        return f"KafkaCluster({self.dir}, brokers={len(self.node_ids)}, listeners={self.listeners})"


def _pid(proc: int | subprocess.Popen[bytes]) -> int:
    return proc if isinstance(proc, int) else proc.pid


def active_clusters() -> list[KafkaCluster]:
    """Clusters started (and not yet stopped) by this process."""
    with _ACTIVE_LOCK:
        return list(_ACTIVE.values())


def stop_all(timeout: float = 15.0) -> None:
    """Stop every cluster this process started and still owns (atexit, signal handlers)."""
    for cluster in active_clusters():
        if cluster.state.get("owner"):
            with contextlib.suppress(Exception):
                cluster.stop(timeout=timeout)


def forget_all() -> None:
    """Forget every cluster of this process without stopping it (``kafka-local up``: the brokers
    outlive the command)."""
    with _ACTIVE_LOCK:
        _ACTIVE.clear()


atexit.register(stop_all)
