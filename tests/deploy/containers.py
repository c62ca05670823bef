"""Containers of the deployment tests: started under a name of this test run, always removed;
and what their tests share (the kafka-edge configuration, a connection held through a stop).

Names are ``ke-test-<pid>-<n>``: :func:`sweep_stale` removes those of earlier runs that are gone
(a run killed before its ``finally``), like the test bed's network namespaces.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.cluster import KafkaCluster
from testbed.image import podman
from testbed.netns import Topology

PREFIX = "ke-test-"
DRAIN_S = 20  # limits.drain_timeout_s of :func:`edge_config`
HOLD_PROBE = Path(__file__).with_name("hold_probe.py")
_counter = itertools.count(1)
_STALE = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployNet:
    """Client / edge / cluster namespaces and a cluster in the cluster namespace."""

    topo: Topology
    cluster: KafkaCluster

    @property
    def edge_network(self) -> str:
        """``podman run --network`` value that puts a container in the edge namespace."""
        return f"ns:/run/netns/{self.topo.edge}"


def edge_config(net: DeployNet, *, tls: bool) -> dict[str, object]:
    """kafka-edge in front of ``net``'s cluster by port routing on the image's ports (clients
    9098, brokers from 9099, HTTP 9180), advertising the edge's client address; with ``tls``,
    the certificate ``certs/edge.pem`` and key ``certs/edge.key`` (beside the configuration)."""
    port_routing: dict[str, object] = {
        "bind_host": "0.0.0.0", "advertised_host": net.topo.edge_client_ip,
        "bootstrap_port": 9098, "broker_port_base": 9099, "node_id_min": 1, "node_id_max": 4}
    if tls:
        port_routing["tls"] = {"certificates": [{"cert_file": "certs/edge.pem",
                                                 "key_file": "certs/edge.key"}]}
    return {
        "clusters": [{"name": "testbed",
                      "upstream": {"bootstrap_servers": [net.cluster.bootstrap()]},
                      "port_routing": port_routing}],
        "limits": {"drain_timeout_s": DRAIN_S},
        "observability": {"http_bind": "0.0.0.0:9180"},
    }


def hold_through_stop(net: DeployNet, stop: Callable[[], object], ca_file: Path | None = None
                      ) -> tuple[str, str, float]:
    """A client connection (tests/deploy/hold_probe.py in the client namespace, to the edge's
    port 9098; TLS verified with ``ca_file`` if given) answered, then ``stop()`` called while it
    is open: the probe's last line (``eof`` after an orderly close), its standard error, and how
    many seconds ``stop()`` took."""
    argv = [sys.executable, str(HOLD_PROBE), net.topo.edge_client_ip, "9098"]
    if ca_file is not None:
        argv += ["--ca", str(ca_file)]
    holder = net.topo.popen("client", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().decode().strip() == "answered"
        started = time.monotonic()
        stop()
        stopped_after = time.monotonic() - started
        rest, err = holder.communicate(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    return rest.decode().strip(), err.decode(), stopped_after


def sweep_stale() -> list[str]:
    """Remove ``ke-test-<pid>-*`` containers whose test run (pid) is gone."""
    names = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    removed = []
    for name in names:
        match = _STALE.match(name)
        if match and int(match.group(1)) != os.getpid() and not Path(
                f"/proc/{match.group(1)}").exists():
            podman("rm", "-f", "-t", "0", name, check=False)
            removed.append(name)
    return removed


@contextlib.contextmanager
def container(image: str, run_args: Sequence[str] = (), command: Sequence[str] = ()
              ) -> Iterator[str]:
    """``podman run -d`` of ``image``; yields the container's name; removed (``rm -f``) after."""
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    podman("run", "-d", "--name", name, *run_args, image, *command, timeout=120)
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=120)


def logs(name: str) -> str:
    proc = podman("logs", name, check=False)
    return proc.stdout + proc.stderr


def state(name: str, field: str) -> str:
    """A field of ``podman inspect``'s State (``ExitCode``, ``Status``, ...)."""
    return podman("inspect", "--format", f"{{{{.State.{field}}}}}", name).stdout.strip()


def wait_for_log(name: str, text: str, timeout: float = 30.0) -> str:
    """The container's log once it contains ``text``; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        out = logs(name)
        if text in out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the log of {name} after {timeout} s:\n{out}")
        time.sleep(0.2)


def wait_booted(name: str) -> None:
    """Return once systemd, PID 1 of the container, has booted (running or degraded)."""
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        status = exec_in(name, "systemctl", "is-system-running", check=False).strip()
        if status in ("running", "degraded"):
            return
        time.sleep(0.3)
    raise AssertionError(f"systemd did not boot: {status}\n{logs(name)}")


def exec_in(name: str, *argv: str, check: bool = True, timeout: float = 60.0) -> str:
    """Run ``argv`` in the running container; its standard output."""
    return podman("exec", name, *argv, check=check, timeout=timeout).stdout
