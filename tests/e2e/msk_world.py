"""The emulated-MSK world of tests/e2e/test_msk_iam.py: namespaces, two emulated MSK clusters,
two kafka-edge instances behind HAProxy, and a DNS server in the client network.

Topology (testbed.netns; addresses from 198.18.0.0/15 only inside the namespaces)::

    client ns: clients, dnsmasq ─┐                          ┌─ cluster ns: "orders", emulated
                                 ├─ edge ns: HAProxy :9098  │  MSK Serverless (b97/b12/b305 for
    vpn ns (second client net) ──┘   boot.* -> kafka-edge A │  nodes 1/2/3, us-east-1) and
                                     b-*    -> kafka-edge B ┘  "payments", provisioned (b-1, b-2,
                                                               eu-west-1); IAM on 9098 each

HAProxy sends every bootstrap connection to instance A and every broker connection to instance
B (by SNI), so B serves brokers from names alone: "orders" maps upstream names to edge names
(``upstream.broker_name_pattern``), "payments" maps by node id (``broker_address_pattern``).
No instance has discovery credentials (IAM clusters answer nothing before authentication).
The client network resolves the custom domains and the region TXT records (from
``kafka-edge dns``) through a real DNS server; the VPN network through its hosts file.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import dnsmasq, msk, netns

from .edge import EdgeProcess
from .sni_front import A_PORT, B_PORT, LB_PORT, edge_certificates, edge_config, front, sni_routing

VPN_NET = "198.18.3"
ORDERS_REGION, PAYMENTS_REGION = "us-east-1", "eu-west-1"
ORDERS_ID, PAYMENTS_ID = "a1b2c3d4-5", "f9e8d7c6b5"
NUMBERS = {1: 97, 2: 12, 3: 305}  # node id -> the number in its MSK Serverless name
ORDERS = {"boot": "boot.orders.example.com", "pattern": "b-{n}.orders.example.com",
          "region_txt": "_kafka-region.orders.example.com"}
PAYMENTS = {"boot": "boot.payments.example.com", "pattern": "b-{node}.payments.example.com",
            "region_txt": "_kafka-region.payments.example.com"}
ORDERS_BOOT = f"{ORDERS['boot']}:{LB_PORT}"
PAYMENTS_BOOT = f"{PAYMENTS['boot']}:{LB_PORT}"


@dataclass
class World:
    topo: netns.Topology
    vpn: str
    orders: msk.MskCluster
    payments: msk.MskCluster
    ca: str  # the edge certificates' CA
    work: Path
    edges: dict[str, EdgeProcess]
    dns: dnsmasq.Dnsmasq
    dns_records: str  # what `kafka-edge dns` printed

    def python(self, action: str, bootstrap: str = ORDERS_BOOT, *, region: str = ORDERS_REGION,
               where: str | None = None, env: dict[str, str] | None = None,
               **kwargs: Any) -> msk.ClientRun:
        return msk.python_client(action, bootstrap=bootstrap, ca=self.ca,  # type: ignore[arg-type]
                                 region=region, netns=where or self.topo.client,
                                 env=env or msk.aws_env(region=region), **kwargs)


def _edge_config(work: Path, orders: msk.MskCluster, payments: msk.MskCluster, port: int,
                 http: int) -> dict[str, Any]:
    orders_suffix = orders.names[1].split("-", 1)[1]  # "<id>.c1.kafka-serverless.<region>..."
    return edge_config(work, port, http, [
        {"name": "orders",
         "upstream": {"bootstrap_servers": orders.bootstrap_servers,
                      "tls": {"ca_file": orders.ca_file()},
                      "broker_name_pattern": f"b{{n}}-{orders_suffix}:{msk.IAM_PORT}",
                      # narrowed to the cluster's own names (the pattern's are allowed)
                      "allowed_hosts": [orders.bootstrap_host]},
         "aws_region": ORDERS_REGION,
         "sni_routing": sni_routing(ORDERS)},
        {"name": "payments",
         "upstream": {"bootstrap_servers": payments.bootstrap_servers,
                      "tls": {"ca_file": payments.ca_file()},
                      "broker_address_pattern": f"b-{{node}}.{payments.domain}:{msk.IAM_PORT}"},
         "aws_region": PAYMENTS_REGION,
         "sni_routing": sni_routing(PAYMENTS)},
    ])


# by the TLS server name: bootstrap names to A, broker names to B
HAPROXY_RULES = f"""    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req_ssl_hello_type 1 }}
    use_backend bootstrap if {{ req_ssl_sni -m beg boot. }}
    default_backend brokers
backend bootstrap
    server a 127.0.0.1:{A_PORT}
backend brokers
    server b 127.0.0.1:{B_PORT}
"""


def _dns_records(work: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "kafka_edge.cli", "dns", "--config",
                          str(work / "edge-a.yaml"), "--target", "edge-nlb.example.net"],
                         capture_output=True, text=True, check=True, timeout=30)
    return out.stdout


def txt_records(records: str) -> dict[str, str]:
    """The TXT lines of ``kafka-edge dns`` output: name -> value."""
    found = re.findall(r'^(\S+)\. \d+ IN TXT "([^"]*)"$', records, re.MULTILINE)
    return dict(found)


def unavailable_reason() -> str | None:
    """Why the world cannot be built here (None: it can)."""
    reason = netns.unavailable_reason() or (None if dnsmasq.binary() else "dnsmasq missing")
    if reason is None:
        try:
            msk.iam_client_jars()
        except msk.MskUnavailable as exc:
            reason = str(exc)
    return reason


@contextlib.contextmanager
def msk_world(work: Path) -> Iterator[World]:
    """The whole topology of the module docstring, removed (every process in it) on exit."""
    topo = netns.create_topology("msk")
    clusters: list[msk.MskCluster] = []
    dns: dnsmasq.Dnsmasq | None = None
    try:
        vpn = topo.add_client_network("vpn", VPN_NET)
        orders_ips = {n: f"198.18.2.{10 + n}" for n in NUMBERS}
        payments_ips = {1: "198.18.2.21", 2: "198.18.2.22"}
        for ip in [*orders_ips.values(), *payments_ips.values()]:
            topo.add_address("cluster", f"{ip}/24")

        def add_hosts(entries: Mapping[str, str]) -> None:
            topo.add_hosts("cluster", entries)
            topo.add_hosts("edge", entries)

        orders = msk.start_msk(work / "orders", kind="serverless", name="orders",
                               cluster_id=ORDERS_ID, region=ORDERS_REGION, ips=orders_ips,
                               numbers=NUMBERS, netns=topo.cluster,
                               add_hosts=add_hosts)
        clusters.append(orders)
        payments = msk.start_msk(work / "payments", kind="provisioned", name="payments",
                                 cluster_id=PAYMENTS_ID, region=PAYMENTS_REGION,
                                 ips=payments_ips, netns=topo.cluster,
                                 add_hosts=add_hosts)
        clusters.append(payments)
        ca = edge_certificates(work)
        with front(topo, work, lambda port, http: _edge_config(work, orders, payments, port, http),
                   HAPROXY_RULES) as edges:
            records = _dns_records(work)
            dns = dnsmasq.Dnsmasq.start(
                topo.client, topo.client_ip, work / "dnsmasq.log",
                addresses={"orders.example.com": topo.edge_client_ip,
                           "payments.example.com": topo.edge_client_ip},
                txt=txt_records(records))
            topo.set_resolver("client", topo.client_ip)
            topo.add_hosts(vpn, {name: f"{VPN_NET}.1" for name in (
                ORDERS["boot"], PAYMENTS["boot"], *(f"b-{n}.orders.example.com" for n in
                                                    NUMBERS.values()),
                *(f"b-{n}.payments.example.com" for n in payments_ips))})
            yield World(topo, vpn, orders, payments, str(ca), work, edges, dns, records)
    finally:
        if dns is not None:
            dns.stop()
        for cluster in clusters:
            cluster.kafka.stop()
        topo.destroy()


