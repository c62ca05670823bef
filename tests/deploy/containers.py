"""Containers of the deployment tests: started under a name of this test run, always removed.

Names are ``ke-test-<pid>-<n>``: :func:`sweep_stale` removes those of earlier runs that are gone
(a run killed before its ``finally``), like the test bed's network namespaces.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.cluster import KafkaCluster
from testbed.image import podman
from testbed.netns import Topology

PREFIX = "ke-test-"
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


def exec_in(name: str, *argv: str, check: bool = True, timeout: float = 60.0) -> str:
    """Run ``argv`` in the running container; its standard output."""
    return podman("exec", name, *argv, check=check, timeout=timeout).stdout
