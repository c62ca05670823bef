"""The front shared by the SNI worlds of tests/e2e/test_sni_edge.py and tests/e2e/msk_world.py:
in the edge namespace, kafka-edge instances A and B behind HAProxy on :data:`LB_PORT`, with
certificates from one test CA for ``*.orders.example.com`` and ``*.payments.example.com``.
Each world gives the instances' clusters and HAProxy's rules (which instance serves what).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import trustme
from testbed import netns
from testbed.procs import terminate

from .edge import EdgeProcess

LB_PORT = 9098
A_PORT, B_PORT = 19098, 29098
A_HTTP, B_HTTP = 19180, 29180
DOMAINS = ("orders", "payments")  # a certificate for *.<domain>.example.com each


def edge_certificates(work: Path) -> Path:
    """A test CA (``work/edge-ca.pem``, returned) and its certificate and key for each of
    :data:`DOMAINS` (``work/<domain>.pem`` with the chain, ``work/<domain>.key``)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "edge-ca.pem"))
    for name in DOMAINS:
        cert = ca.issue_cert(f"*.{name}.example.com")
        cert.private_key_pem.write_to_path(str(work / f"{name}.key"))
        (work / f"{name}.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    return work / "edge-ca.pem"


def sni_routing(names: Mapping[str, str]) -> dict[str, Any]:
    """A cluster's ``sni_routing`` on the listener "edge": bootstrap name ``names["boot"]``,
    broker names ``names["pattern"]``, advertised on :data:`LB_PORT` (HAProxy's)."""
    return {"listener": "edge", "bootstrap_host": names["boot"],
            "broker_host_pattern": names["pattern"], "advertised_port": LB_PORT}


def edge_config(work: Path, port: int, http: int,
                clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """One instance's configuration: the TLS listener "edge" on ``port`` with the certificates
    of :func:`edge_certificates`, ``clusters``, the HTTP endpoint on ``http``."""
    return {
        "listeners": [{
            "name": "edge", "bind": f"0.0.0.0:{port}",
            "tls": {"certificates": [
                {"cert_file": str(work / f"{n}.pem"), "key_file": str(work / f"{n}.key")}
                for n in DOMAINS]},
        }],
        "clusters": clusters,
        "observability": {"http_bind": f"127.0.0.1:{http}"},
    }


def _haproxy_config(work: Path, rules: str) -> Path:
    """TCP mode, the frontend on :data:`LB_PORT`; ``rules`` end the frontend (its
    ``use_backend``/``default_backend`` lines) and define the backends."""
    path = work / "haproxy.cfg"
    path.write_text(f"""global
    maxconn 2000
defaults
    mode tcp
    timeout connect 3s
    timeout client 1h
    timeout server 1h
frontend kafka_edge
    bind 0.0.0.0:{LB_PORT}
{rules}""")
    return path


@contextlib.contextmanager
def front(topo: netns.Topology, work: Path, config: Callable[[int, int], Mapping[str, Any]],
          haproxy_rules: str, *, env: Mapping[str, str] | None = None,
          ) -> Iterator[dict[str, EdgeProcess]]:
    """Instances "a" (:data:`A_PORT`, HTTP :data:`A_HTTP`) and "b" (:data:`B_PORT`,
    :data:`B_HTTP`) in the edge namespace, each from ``config(port, http)`` (written to
    ``work/edge-<label>.yaml``) and with ``env``, then HAProxy with ``haproxy_rules`` (see
    :func:`_haproxy_config`); yields the instances by label, stops HAProxy and them on exit."""
    edges: dict[str, EdgeProcess] = {}
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        for label, port, http in (("a", A_PORT, A_HTTP), ("b", B_PORT, B_HTTP)):
            edges[label] = EdgeProcess(config(port, http), work, name=f"edge-{label}",
                                       netns=topo.edge, env=env).start()
        haproxy = topo.popen("edge", ["haproxy", "-db", "-f",
                                      str(_haproxy_config(work, haproxy_rules))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield edges
    finally:
        if haproxy is not None:
            terminate([haproxy], timeout=10)
        for proc in edges.values():
            proc.stop()
