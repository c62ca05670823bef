"""Network namespaces for end-to-end tests: a client network, an edge and a cluster network.

::

    client ns                 edge ns                      cluster ns
    veth-edge  198.18.1.2 ─── veth-client  198.18.1.1
                              veth-cluster 198.18.2.1 ─── veth-edge 198.18.2.2

- Addresses come only from 198.18.0.0/15 (benchmarking range) and exist only inside these
  namespaces; nothing is added to the host's own namespace and no namespace has a default route.
- The edge namespace reaches both networks; the client network has *no route* to the cluster
  network, and the edge does not forward (``net.ipv4.ip_forward=0``): a client can only reach the
  cluster through a proxy running in the edge namespace.
- IPv6 is disabled in every namespace (no link-local addresses either).
- Each namespace has its own ``/etc/netns/NAME/hosts`` (``ip netns exec`` bind-mounts it over
  ``/etc/hosts``) and an empty ``resolv.conf`` (no DNS server reachable).

Names are ``ke-<pid>-<n>-client|edge|cluster``; :func:`topology` removes everything on exit and
:func:`sweep_stale` removes namespaces of test runs that are gone.

Usage::

    with topology() as topo:
        cluster = KafkaCluster.start(d, host=topo.cluster_ip, netns=topo.cluster)
        proxy = topo.popen("edge", ["kafka-edge", ...])
        clients.produce("java", f"{topo.edge_client_ip}:9092", ..., netns=topo.client)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "ke-"
NETNS_ETC = Path("/etc/netns")
ROLES = ("client", "edge", "cluster")

CLIENT_IP = "198.18.1.2"
EDGE_CLIENT_IP = "198.18.1.1"
EDGE_CLUSTER_IP = "198.18.2.1"
CLUSTER_IP = "198.18.2.2"

_counter = itertools.count(1)
_STALE_RE = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


class NetnsError(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns list` failed: {probe.stderr.strip()}"
    return None


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Names of the network namespaces starting with ``prefix``."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def netns_exec(ns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed to run inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]


def run_in(
    ns: str,
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 60.0,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` inside ``ns`` and wait (output captured)."""
    return subprocess.run(
        netns_exec(ns, argv), input=input, capture_output=True, timeout=timeout, check=check
    )


def popen_in(ns: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` inside ``ns``; ``kwargs`` go to ``subprocess.Popen``. The caller waits for it
    (:meth:`Topology.destroy` kills whatever is still running in the namespace)."""
    return subprocess.Popen(netns_exec(ns, argv), **kwargs)


def _pids_in(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split() if p.isdigit()]


def _kill_all_in(ns: str, timeout: float = 10.0) -> None:
    pids = _pids_in(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            pids = _pids_in(ns)
            if not pids:
                return
            time.sleep(0.1)


def delete_namespace(ns: str) -> None:
    """Kill what runs in ``ns``, delete it and its /etc/netns directory (idempotent)."""
    if ns in list_namespaces(prefix=""):
        _kill_all_in(ns)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def sweep_stale() -> list[str]:
    """Delete ``ke-<pid>-...`` namespaces (and /etc/netns dirs) whose test run is gone."""
    if unavailable_reason() is not None:
        return []
    names = set(list_namespaces())
    if NETNS_ETC.is_dir():
        names |= {p.name for p in NETNS_ETC.iterdir() if p.name.startswith(PREFIX)}
    removed = []
    for name in sorted(names):
        match = _STALE_RE.match(name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        delete_namespace(name)
        removed.append(name)
    return removed


def write_hosts(ns: str, entries: Mapping[str, str]) -> None:
    """Write ``/etc/netns/NS/hosts``: localhost plus ``{name: ip}`` (seen by later commands)."""
    lines = ["127.0.0.1\tlocalhost"]
    by_ip: dict[str, list[str]] = {}
    for name, ip in entries.items():
        by_ip.setdefault(ip, []).append(name)
    lines += [f"{ip}\t{' '.join(names)}" for ip, names in by_ip.items()]
    path = NETNS_ETC / ns / "hosts"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Topology:
    """Three namespaces: ``client``, ``edge`` and ``cluster`` (attributes hold their names)."""

    client: str
    edge: str
    cluster: str
    client_ip: str = CLIENT_IP
    edge_client_ip: str = EDGE_CLIENT_IP
    edge_cluster_ip: str = EDGE_CLUSTER_IP
    cluster_ip: str = CLUSTER_IP
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # namespaces added later (destroyed too)

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return (self.client, self.edge, self.cluster)

    def ns(self, role_or_name: str) -> str:
        """The namespace name for ``"client"``, ``"edge"`` or ``"cluster"`` (or a name)."""
        return str(getattr(self, role_or_name)) if role_or_name in ROLES else role_or_name

    def run(
        self, where: str, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        return run_in(self.ns(where), argv, **kwargs)

    def popen(self, where: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return popen_in(self.ns(where), argv, **kwargs)

    def add_hosts(self, where: str, entries: Mapping[str, str]) -> None:
        """Add ``{name: ip}`` to the hosts file of a namespace (e.g. the edge's custom domain
        names in the client namespace, broker names in the edge namespace)."""
        ns = self.ns(where)
        self.hosts.setdefault(ns, {}).update(entries)
        write_hosts(ns, self.hosts[ns])

    def add_client_network(self, name: str, net: str) -> str:
        """Another client network joined to the edge namespace only (on premises over a VPN):
        namespace ``<base>-<name>`` at ``<net>.2/24``, the edge at ``<net>.1`` (``net`` such as
        "198.18.3"). Returns the namespace's name; :meth:`destroy` removes it."""
        ns = self.client.removesuffix("-client") + f"-{name}"
        _ip("netns", "add", ns)
        self.extra.append(ns)
        (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
        (NETNS_ETC / ns / "resolv.conf").write_text("# no DNS in test namespaces\n")
        run_in(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "add", "veth-edge", "type", "veth", "peer", "name",
            f"veth-{name}"[:15], "netns", self.edge)
        _ip("-n", ns, "addr", "add", f"{net}.2/24", "dev", "veth-edge")
        _ip("-n", ns, "link", "set", "veth-edge", "up")
        _ip("-n", self.edge, "addr", "add", f"{net}.1/24", "dev", f"veth-{name}"[:15])
        _ip("-n", self.edge, "link", "set", f"veth-{name}"[:15], "up")
        return ns

    def add_address(self, where: str, address: str) -> None:
        """One more address (``ip/24``) on the namespace's link towards the edge (client or
        cluster side): a second broker host, a DNS server."""
        _ip("-n", self.ns(where), "addr", "add", address, "dev", "veth-edge")

    def set_resolver(self, where: str, nameserver: str) -> None:
        """Point the namespace's resolver (its ``resolv.conf``) at ``nameserver``."""
        (NETNS_ETC / self.ns(where) / "resolv.conf").write_text(f"nameserver {nameserver}\n")

    def create(self) -> None:
        for ns in self.namespaces:
            _ip("netns", "add", ns)
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "resolv.conf").write_text("# no DNS in test namespaces\n")
            run_in(
                ns,
                [
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                    "net.ipv4.ip_forward=0",
                ],
            )
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", self.client, "link", "add", "veth-edge", "type", "veth",
            "peer", "name", "veth-client", "netns", self.edge)  # fmt: skip
        _ip("-n", self.cluster, "link", "add", "veth-edge", "type", "veth",
            "peer", "name", "veth-cluster", "netns", self.edge)  # fmt: skip
        for ns, dev, addr in (
            (self.client, "veth-edge", f"{self.client_ip}/24"),
            (self.edge, "veth-client", f"{self.edge_client_ip}/24"),
            (self.edge, "veth-cluster", f"{self.edge_cluster_ip}/24"),
            (self.cluster, "veth-edge", f"{self.cluster_ip}/24"),
        ):
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        self.add_hosts("client", {"edge.test": self.edge_client_ip, "client.test": self.client_ip})
        self.add_hosts(
            "edge",
            {"client.test": self.client_ip, "edge.test": self.edge_client_ip,
             "cluster.test": self.cluster_ip},
        )  # fmt: skip
        self.add_hosts(
            "cluster", {"edge.test": self.edge_cluster_ip, "cluster.test": self.cluster_ip}
        )

    def destroy(self) -> None:
        """Kill every process in the namespaces, delete them and their /etc/netns dirs."""
        for ns in [*self.namespaces, *self.extra]:
            delete_namespace(ns)


def create_topology(tag: str | None = None) -> Topology:
    """Create a fresh topology (call :meth:`Topology.destroy`, or use :func:`topology`)."""
    reason = unavailable_reason()
    if reason is not None:
        raise NetnsError(reason)
    base = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    if tag:
        base += "-" + re.sub(r"[^a-zA-Z0-9]", "", tag)[:12]
    topo = Topology(client=f"{base}-client", edge=f"{base}-edge", cluster=f"{base}-cluster")
    try:
        topo.create()
    except BaseException:
        topo.destroy()
        raise
    return topo


@contextlib.contextmanager
def topology(tag: str | None = None) -> Iterator[Topology]:
    """A client/edge/cluster topology, removed (with every process inside) on exit."""
    topo = create_topology(tag)
    try:
        yield topo
    finally:
        topo.destroy()
