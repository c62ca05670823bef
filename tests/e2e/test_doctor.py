"""`kafka-edge doctor` against real brokers: a healthy configuration passes, and one broken item
per check is reported (FAIL, or WARN where that is the verdict) with the exit status to match.
Also the relay's log line when a fresh instance cannot discover a SASL cluster's brokers.

Edge names resolve through the doctor's own /etc/hosts: each run is a real `kafka-edge doctor`
process in a private mount namespace (`unshare --mount`) where a hosts file written by the test
is bind-mounted over /etc/hosts (and an empty resolv.conf over /etc/resolv.conf, so a name the
file leaves out fails at once instead of going to a DNS server), the mechanism `ip netns exec`
uses for /etc/netns/NAME/hosts. getaddrinfo reads that file as any client library would; the
host's own /etc/hosts is untouched. The network is the host's, so the brokers on loopback are
reached directly. The clock check is made to fail by running doctor under libfaketime 10
minutes ahead (the brokers' clocks cannot be moved).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from testbed.cluster import KafkaCluster

from kafka_edge.config.advice import DISCOVERY_FIX

from .edge import KAFKA_EDGE, REPO, EdgeProcess, free_port, free_port_block

pytestmark = pytest.mark.e2e

EDGE_HOST = "127.0.0.2"
DOMAIN = "doctor.test"  # RFC 2606: never a real name
BOOT = f"boot.{DOMAIN}"
PATTERN = f"b-{{node}}.{DOMAIN}"
Rows = list[dict[str, str]]


def _broker(node: int) -> str:
    return PATTERN.format(node=node)


def _all_names(cluster: KafkaCluster) -> list[str]:
    return [BOOT, *(_broker(n) for n in cluster.node_ids)]


def _edge_cert(work: Path, *names: str, ca: trustme.CA | None = None,
               not_before: dt.datetime | None = None,
               not_after: dt.datetime | None = None) -> dict[str, str]:
    leaf = (ca or trustme.CA()).issue_cert(*names, not_before=not_before, not_after=not_after)
    leaf.private_key_pem.write_to_path(str(work / "edge.key"))
    (work / "edge.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    return {"cert_file": str(work / "edge.pem"), "key_file": str(work / "edge.key")}


def _sni_config(cluster: KafkaCluster, cert: Mapping[str, str], *, listener: str = "SASL_SSL",
                bootstrap: Sequence[str] | None = None, ca_file: str | None = None,
                credentials: bool = True, **upstream: Any) -> dict[str, Any]:
    up: dict[str, Any] = {
        "bootstrap_servers": list(bootstrap or cluster.bootstrap(listener).split(",")),
        "tls": {"ca_file": ca_file or cluster.ca_file}, **upstream}
    if credentials:
        up["discovery"] = {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "admin",
                                    "password": cluster.users["admin"]}}
    return {
        "listeners": [{"name": "edge", "bind": f"{EDGE_HOST}:{free_port(EDGE_HOST)}",
                       "tls": {"certificates": [dict(cert)]}}],
        "clusters": [{"name": "orders", "upstream": up,
                      "sni_routing": {"listener": "edge", "bootstrap_host": BOOT,
                                      "broker_host_pattern": PATTERN}}],
    }


def _isolated(work: Path, names: Sequence[str]) -> list[str]:
    """The command prefix: a private mount namespace whose /etc/hosts maps ``names`` to the
    edge address, and whose resolver has no DNS server."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    hosts, resolv = work / "hosts", work / "resolv.conf"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{EDGE_HOST} {n}\n" for n in names))
    resolv.write_text("# no DNS server: names come from the hosts file alone\n")
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 '
              '&& exec "$@"')
    return ["unshare", "--mount", *user, "--", "sh", "-c", script, "sh", str(hosts), str(resolv)]


def _run(config: Mapping[str, Any], work: Path, names: Sequence[str], *, output: str,
         clock_ahead: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `kafka-edge doctor` with ``names`` resolving to the edge address."""
    path = work / "kafka-edge.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    prefix = _isolated(work, names)
    if clock_ahead is not None:
        if shutil.which("faketime") is None:
            pytest.skip("faketime (Debian package faketime) is not installed: make setup")
        # the multi-threaded library (look-ups run on threads); monotonic time left alone
        prefix += ["faketime", "-m", "--exclude-monotonic", "-f", clock_ahead]
    argv = [*prefix, *KAFKA_EDGE, "doctor", "--config", str(path), "--format", output,
            "--timeout", "5"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def _doctor(config: Mapping[str, Any], work: Path, names: Sequence[str], *,
            clock_ahead: str | None = None) -> tuple[int, Rows, str]:
    """(exit status, the findings of the JSON output, stderr)."""
    done = _run(config, work, names, output="json", clock_ahead=clock_ahead)
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"doctor printed no JSON (exit {done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}") from None
    assert data["exit_code"] == done.returncode
    return done.returncode, data["findings"], done.stderr


def _only(rows: Rows, status: str) -> Rows:
    return [r for r in rows if r["status"] == status]


def _row(rows: Rows, check: str, subject: str) -> dict[str, str]:
    found = [r for r in rows if r["check"] == check and r["subject"] == subject]
    assert len(found) == 1, (check, subject, rows)
    return found[0]


# -- a healthy configuration ---------------------------------------------------------------------


def test_a_healthy_configuration_passes_every_check(kafka3: KafkaCluster, tmp_path: Path) -> None:
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"))
    code, rows, err = _doctor(config, tmp_path, _all_names(kafka3))
    assert code == 0, (rows, err)
    assert _only(rows, "FAIL") == [] and _only(rows, "WARN") == [] and _only(rows, "SKIP") == []
    for address in kafka3.bootstrap("SASL_SSL").split(","):
        assert "certificate verified for 127.0.0.1" in _row(rows, "upstream",
                                                            f"{address} (bootstrap)")["detail"]
    meta = _row(rows, "metadata", "cluster")["detail"]
    assert "3 broker(s)" in meta and "authenticated as admin, SCRAM-SHA-512" in meta
    clock = _row(rows, "clock", kafka3.bootstrap("SASL_SSL").split(",")[0])["detail"]
    assert "the active controller's (node" in clock
    for name in _all_names(kafka3):
        assert _row(rows, "edge-dns", name)["detail"].endswith(f"resolves to {EDGE_HOST}")
        assert "covered by edge.pem" in _row(rows, "edge-cert", name)["detail"]
    assert "days left" in _row(rows, "cert-expiry", str(tmp_path / "edge.pem"))["detail"]
    assert "discovery" not in {r["check"] for r in rows}  # credentials are configured


# -- one broken item per check -------------------------------------------------------------------


def test_a_certificate_that_misses_a_broker_name(kafka3: KafkaCluster, tmp_path: Path) -> None:
    missing = _broker(kafka3.node_ids[-1])
    names = [n for n in _all_names(kafka3) if n != missing]
    config = _sni_config(kafka3, _edge_cert(tmp_path, *names))
    done = _run(config, tmp_path, _all_names(kafka3), output="table")
    code, table = done.returncode, done.stdout
    assert code == 1
    failed = [line for line in table.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, table
    assert failed[0].split()[1:4] == ["edge-cert", "orders", missing]
    assert "no served certificate covers this name" in failed[0]
    assert table.splitlines()[-1].endswith("1 FAIL, 0 SKIP")


def test_an_edge_name_that_does_not_resolve(kafka3: KafkaCluster, tmp_path: Path) -> None:
    missing = _broker(kafka3.node_ids[0])
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"))
    code, rows, _ = _doctor(config, tmp_path, [n for n in _all_names(kafka3) if n != missing])
    assert code == 1
    [failed] = _only(rows, "FAIL")
    assert (failed["check"], failed["subject"]) == ("edge-dns", missing)
    assert "does not resolve" in failed["detail"]
    assert _row(rows, "edge-cert", missing)["status"] == "PASS"


def test_an_unreachable_upstream(kafka3: KafkaCluster, tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"),
                         bootstrap=[closed, *kafka3.bootstrap("SASL_SSL").split(",")])
    code, rows, _ = _doctor(config, tmp_path, _all_names(kafka3))
    assert code == 1
    [failed] = _only(rows, "FAIL")
    assert (failed["check"], failed["subject"]) == ("upstream", f"{closed} (bootstrap)")
    assert "Connection refused" in failed["detail"]
    assert _row(rows, "metadata", "cluster")["status"] == "PASS"  # the next server answered


def test_an_upstream_whose_certificate_is_not_trusted(kafka3: KafkaCluster,
                                                      tmp_path: Path) -> None:
    other = trustme.CA()
    other.cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"),
                         ca_file=str(tmp_path / "other-ca.pem"))
    code, rows, _ = _doctor(config, tmp_path, _all_names(kafka3))
    assert code == 1
    failed = _only(rows, "FAIL")
    assert {r["check"] for r in failed} == {"upstream"} and len(failed) == 3
    assert all("certificate is not accepted" in r["detail"] for r in failed)
    assert _row(rows, "metadata", "cluster")["status"] == "SKIP"


def test_metadata_naming_brokers_outside_the_address_policy(kafka3: KafkaCluster,
                                                             tmp_path: Path) -> None:
    """The cluster is reached by a name (localhost) and advertises addresses (127.0.0.1) that
    the configured policy does not allow: the proxy would learn nothing from its metadata."""
    ports = [a.rsplit(":", 1)[1] for a in kafka3.bootstrap("SSL").split(",")]
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"), listener="SSL",
                         credentials=False, bootstrap=[f"localhost:{p}" for p in ports],
                         allowed_hosts=["10.0.0.0/8"])
    code, rows, _ = _doctor(config, tmp_path, [BOOT])
    assert code == 1
    [failed] = _only(rows, "FAIL")
    assert (failed["check"], failed["subject"]) == ("metadata", "cluster")
    assert "outside the upstream address policy" in failed["detail"]
    assert f"127.0.0.1:{ports[0]} (node {kafka3.node_ids[0]})" in failed["detail"]
    assert "upstream.allowed_hosts" in failed["detail"]
    assert all(_row(rows, "upstream", f"localhost:{p} (bootstrap)")["status"] == "PASS"
               for p in ports)


@pytest.mark.parametrize(("days", "status", "code"), [(10, "WARN", 0), (-1, "FAIL", 1)])
def test_a_served_certificate_near_or_past_its_end(kafka3: KafkaCluster, tmp_path: Path,
                                                   days: int, status: str, code: int) -> None:
    now = dt.datetime.now(dt.UTC)
    cert = _edge_cert(tmp_path, f"*.{DOMAIN}", not_before=now - dt.timedelta(days=60),
                      not_after=now + dt.timedelta(days=days))
    got, rows, _ = _doctor(_sni_config(kafka3, cert), tmp_path, _all_names(kafka3))
    assert got == code
    [flagged] = [r for r in rows if r["status"] != "PASS"]
    assert (flagged["check"], flagged["status"]) == ("cert-expiry", status)
    assert ("days left (under 30)" if days > 0 else "expired") in flagged["detail"]


def test_a_clock_ten_minutes_off(kafka3: KafkaCluster, tmp_path: Path) -> None:
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"))
    code, rows, _ = _doctor(config, tmp_path, _all_names(kafka3), clock_ahead="+600")
    assert code == 1
    [failed] = _only(rows, "FAIL")
    assert failed["check"] == "clock"
    assert "ahead of the active controller's" in failed["detail"]
    assert "MSK IAM" in failed["detail"]
    offset = float(failed["detail"].split("clock is ")[1].split(" s ")[0])
    assert 595 < offset < 605


# -- discovery: does a fresh instance find the brokers? ----------------------------------------


def test_a_sasl_cluster_without_credentials_or_pattern_is_a_warning(kafka3: KafkaCluster,
                                                                    tmp_path: Path) -> None:
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"), credentials=False)
    code, rows, _ = _doctor(config, tmp_path, [BOOT])
    assert code == 0
    [warned] = _only(rows, "WARN")
    assert warned["check"] == "discovery" and DISCOVERY_FIX in warned["detail"]
    assert "its listener requires SASL" in warned["detail"]
    assert _row(rows, "metadata", "cluster")["status"] == "SKIP"
    assert _row(rows, "edge-dns", PATTERN)["status"] == "SKIP"  # no metadata, no broker names

    with_pattern = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"), credentials=False,
                               broker_address_pattern=f"k-{{node}}.{DOMAIN}:9096")
    code, rows, _ = _doctor(with_pattern, tmp_path, [BOOT])
    assert code == 0
    assert _row(rows, "discovery", "unauthenticated Metadata")["status"] == "PASS"
    assert "broker_address_pattern gives each broker's address" in _row(
        rows, "discovery", "unauthenticated Metadata")["detail"]


def test_an_address_pattern_that_disagrees_with_the_metadata(kafka3: KafkaCluster,
                                                              tmp_path: Path) -> None:
    pattern = f"k-{{node}}.{DOMAIN}:9096"
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}"),
                         broker_address_pattern=pattern)
    code, rows, _ = _doctor(config, tmp_path, _all_names(kafka3))
    assert code == 0
    [warned] = _only(rows, "WARN")
    assert (warned["check"], warned["subject"]) == ("address-pattern", pattern)
    first = kafka3.node_ids[0]
    assert (f"node {first}: pattern k-{first}.{DOMAIN}:9096, metadata "
            f"{kafka3.address(first, 'SASL_SSL')}") in warned["detail"]


def test_port_routing_over_a_listener_without_sasl(kafka3: KafkaCluster, tmp_path: Path) -> None:
    """No credentials are needed where the cluster answers Metadata unauthenticated; a node id
    outside the configured range has no edge address; an IP edge host needs an IP entry."""
    cert = _edge_cert(tmp_path, EDGE_HOST)
    first, base = kafka3.node_ids[0], free_port_block(2, EDGE_HOST)
    config = {"clusters": [{
        "name": "ports",
        "upstream": {"bootstrap_servers": kafka3.bootstrap("SSL").split(","),
                     "tls": {"ca_file": kafka3.ca_file}},
        "port_routing": {"bind_host": EDGE_HOST, "bootstrap_port": base,
                         "broker_port_base": base + 1, "node_id_min": first,
                         "node_id_max": first, "tls": {"certificates": [cert]}}}]}
    code, rows, err = _doctor(config, tmp_path, [])
    assert code == 1
    assert _row(rows, "discovery", "unauthenticated Metadata")["status"] == "PASS"
    assert _row(rows, "metadata", "cluster")["status"] == "PASS"
    unrouted = {r["subject"] for r in _only(rows, "FAIL")}
    assert unrouted == {f"broker {n}" for n in kafka3.node_ids[1:]}
    assert all(r["check"] == "edge-route" for r in _only(rows, "FAIL"))
    assert _row(rows, "edge-dns", EDGE_HOST)["detail"] == \
        f"bootstrap, broker {first}: an IP address, no look-up"
    assert _row(rows, "edge-cert", EDGE_HOST)["status"] == "PASS"
    assert "no edge address" in err  # the proxy's own log line, as it would say it


# -- the relay, told the same --------------------------------------------------------------------


def test_a_fresh_instance_says_why_it_cannot_find_a_broker(kafka3: KafkaCluster,
                                                           tmp_path: Path) -> None:
    """The README's SNI example before it named a pattern: a SASL cluster, no discovery
    credentials. A fresh instance refuses a client's first connection to a broker name, and
    its log says what is missing."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = _sni_config(kafka3, _edge_cert(tmp_path, f"*.{DOMAIN}", ca=ca),
                         credentials=False)
    port = int(config["listeners"][0]["bind"].rsplit(":", 1)[1])
    node = kafka3.node_ids[-1]
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with EdgeProcess(config, tmp_path) as proc:
        with socket.create_connection((EDGE_HOST, port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=_broker(node)) as s:
            payload = struct.pack(">hhih", 18, 0, 1, 1) + b"c"  # ApiVersions v0
            s.sendall(struct.pack(">i", len(payload)) + payload)
            s.settimeout(20)
            assert s.recv(1) == b""  # refused: closed without an answer
        deadline = time.monotonic() + 10
        while f"broker node {node} is not in cluster" not in proc.log() \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        log = proc.log()
    assert "discovery via" in log and "the cluster closed the connection without answering" in log
    refusal = next(line for line in log.splitlines()
                   if f"broker node {node} is not in cluster orders's metadata" in line)
    assert "its listener probably requires SASL authentication" in refusal
    assert DISCOVERY_FIX in refusal
