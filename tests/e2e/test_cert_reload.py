"""Certificates reload without a restart (SIGHUP and file change); open connections carry on."""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
import trustme
from testbed.cluster import KafkaCluster

from .edge import EdgeProcess, free_port

pytestmark = pytest.mark.e2e

HOST = "127.0.0.2"
NAME = "boot.reload.example.com"


def _issue(ca: trustme.CA, d: Path) -> None:
    cert = ca.issue_cert("*.reload.example.com")
    tmp_pem, tmp_key = d / "new.pem", d / "new.key"
    tmp_pem.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tmp_key))
    tmp_key.replace(d / "edge.key")  # key first: a reload between the two keeps the old pair
    tmp_pem.replace(d / "edge.pem")


def _connect(port: int, ca: Path) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection((HOST, port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=NAME)


def _api_versions(s: ssl.SSLSocket, corr: int) -> int:
    payload = struct.pack(">hhih", 18, 0, corr, 2) + b"rl"
    s.sendall(struct.pack(">i", len(payload)) + payload)
    head = b""
    while len(head) < 8:
        head += s.recv(8 - len(head))
    size, got = struct.unpack(">ii", head)
    remaining = size - 4
    while remaining:
        remaining -= len(s.recv(remaining))
    return int(got)


def _serial(s: ssl.SSLSocket) -> str:
    cert = s.getpeercert()
    assert cert is not None
    return str(cert["serialNumber"])


def test_sighup_and_file_change_reload_certificates(kafka3: KafkaCluster, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    _issue(ca, tmp_path)
    port = free_port(HOST)
    config = {
        "listeners": [{"name": "edge", "bind": f"{HOST}:{port}", "tls": {"certificates": [
            {"cert_file": str(tmp_path / "edge.pem"), "key_file": str(tmp_path / "edge.key")}]}}],
        "clusters": [{"name": "reload",
                      "upstream": {"bootstrap_servers": kafka3.bootstrap().split(",")},
                      "sni_routing": {"listener": "edge", "bootstrap_host": NAME,
                                      "broker_host_pattern": "b-{node}.reload.example.com"}}],
    }
    with EdgeProcess(config, tmp_path) as proc:
        old = _connect(port, tmp_path / "ca.pem")
        first = _serial(old)
        assert _api_versions(old, 1) == 1

        _issue(ca, tmp_path)
        proc.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "certificates reloaded" not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        with _connect(port, tmp_path / "ca.pem") as new:
            second = _serial(new)
            assert _api_versions(new, 2) == 2
        assert second != first
        assert _api_versions(old, 3) == 3  # the connection opened before the reload carries on

        reloads = proc.metric("kafka_edge_certificate_reloads_total", outcome="ok")
        _issue(ca, tmp_path)  # no signal: the file watch picks it up
        deadline = time.monotonic() + 15
        while (proc.metric("kafka_edge_certificate_reloads_total", outcome="ok") <= reloads
               and time.monotonic() < deadline):
            time.sleep(0.2)
        with _connect(port, tmp_path / "ca.pem") as third:
            assert _serial(third) not in (first, second)
        assert _api_versions(old, 4) == 4
        old.close()
