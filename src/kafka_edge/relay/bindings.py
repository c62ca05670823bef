"""What each listener has bound, and what a reload compares; draining a set of connections.

Shared by the proxy (relay/server.py) and the reload (relay/reload.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafka_edge.relay.connection import ProxyConnection
from kafka_edge.relay.phases import Phase
from kafka_edge.relay.status_snapshot import port_listener_name

if TYPE_CHECKING:
    from kafka_edge.config import Config
    from kafka_edge.relay.accept import SniAcceptor
    from kafka_edge.tls.endpoint import TlsEndpoint


@dataclass(eq=False)
class Binding:
    """What one listener (an SNI listener, or a port-routed cluster's ports) has bound."""

    name: str
    spec: object  # what a reload compares: the same spec keeps the sockets
    servers: list[asyncio.Server] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    acceptor: SniAcceptor | None = None
    task: asyncio.Task[None] | None = None
    tls: TlsEndpoint | None = None

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for sock in self.sockets:
            sock.close()
        if self.task is not None:
            self.task.cancel()


def binding_spec(config: Config, name: str) -> object:
    """The part of a listener's configuration its sockets depend on."""
    for listener in config.listeners:
        if listener.name == name:
            return ("sni", listener.bind)
    for cluster in config.clusters:
        pr = cluster.port_routing
        if pr is not None and port_listener_name(cluster.name) == name:
            return ("port", pr.bind_host, pr.bootstrap_port, pr.broker_port_base,
                    pr.node_id_min, pr.node_id_max, pr.tls, pr.proxy_protocol)
    raise KeyError(name)


def binding_names(config: Config) -> list[str]:
    return [x.name for x in config.listeners] + [
        port_listener_name(c.name) for c in config.clusters if c.port_routing is not None]


async def drain(connections: list[ProxyConnection], timeout: float) -> None:
    """Drain ``connections``: each takes no new request after the frame it is in, and finishes
    once every answer to what reached the broker has left the proxy (clients reconnect, to
    another instance, and resend the rest); what is left after ``timeout`` is aborted."""
    deadline = time.monotonic() + timeout
    for conn in connections:
        conn.on_drain()
    while any(c.phase is not Phase.CLOSED for c in connections) and time.monotonic() < deadline:
        for conn in connections:
            conn.check_drained()  # the client's buffer may have emptied since
        await asyncio.sleep(0.05)
    for conn in connections:
        if conn.phase is not Phase.CLOSED:
            conn.abort()


def file_stamp(path: str | None) -> tuple[int, int, int] | None:
    """What tells that a file changed: inode (an editor's or a ConfigMap's rename), size, and
    modification time."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
