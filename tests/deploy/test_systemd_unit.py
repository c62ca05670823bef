"""The systemd unit (deploy/systemd/kafka-edge.service), run for real by systemd.

systemd is not PID 1 on the test machine, so it boots as PID 1 of a podman container
(``--systemd=always``; CAP_SYS_ADMIN so that it can set up the unit's mount namespace, as on a
VM) made from the kafka-edge image plus Debian's systemd (tests/deploy/systemd.Containerfile),
with the unit and its sysusers.d file installed as docs/deployment.md says. The container sits
in the edge network namespace in front of a real broker; clients in the client namespace.
``systemctl enable --now`` starts it, ``systemctl reload`` reloads certificates by SIGHUP,
``systemctl stop`` drains by SIGTERM and the service ends with status 0.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import trustme
import yaml
from testbed import image as images
from testbed.clients import ClientSecurity, consume, produce

from kafka_edge.config import load_config

from . import containers
from .containers import DeployNet

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "deploy" / "systemd"
UNIT = UNIT_DIR / "kafka-edge.service"
SYSTEMD_IMAGE = f"{images.IMAGE_TAG}-systemd-test"
TLS_PROBE = REPO / "tests" / "e2e" / "tls_probe.py"
RECORDS = 1_000
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 (locked down) .. 10 (exposed); the unit has 1.4


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_reloads_by_sighup_and_stops_longer_than_the_drain(tmp_path: Path) -> None:
    unit = _unit_settings()
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["KillSignal"] == ["SIGTERM"]
    assert unit["KillMode"] == ["mixed"]  # the workers' parent forwards the signal
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("clusters: [{name: a, upstream: {bootstrap_servers: ['h:1']},"
                       " port_routing: {bootstrap_port: 9092, broker_port_base: 9093,"
                       " advertised_host: h}}]\n")
    default_drain = load_config(minimal).limits.drain_timeout_s
    (stop,) = unit["TimeoutStopSec"]
    assert float(stop) > default_drain
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "User": "kafka-edge"}.items():
        assert unit[key] == [value], key


@pytest.fixture(scope="module")
def systemd_image(image: str) -> str:
    images.build_derived(Path(__file__).with_name("systemd.Containerfile"), UNIT_DIR,
                         SYSTEMD_IMAGE, {"IMAGE": image})
    return SYSTEMD_IMAGE


def _write_cert(ca: trustme.CA, etc: Path, ip: str) -> None:
    cert = ca.issue_cert(ip)
    pem, key = etc / "certs" / "new.pem", etc / "certs" / "new.key"
    pem.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    key.replace(etc / "certs" / "edge.key")  # key first: a reload in between keeps the old pair
    pem.replace(etc / "certs" / "edge.pem")


def _own(etc: Path, gid: int) -> None:
    """Owner root, group kafka-edge: the key readable by the group only, as the docs say."""
    for path in (etc, etc / "certs", *etc.rglob("*")):
        subprocess.run(["chown", f"0:{gid}", str(path)], check=True)
        path.chmod(0o750 if path.is_dir() else 0o640)


def _journal(name: str) -> str:
    return containers.exec_in(name, "journalctl", "-u", "kafka-edge", "--no-pager", "-o", "cat")


def _wait_journal(name: str, text: str, count: int = 1, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while (journal := _journal(name)).count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} x{count} not in the journal:\n{journal}")
        time.sleep(0.2)
    return journal


def _serial(net: DeployNet, ca: Path) -> str:
    out = net.topo.run("client", [sys.executable, str(TLS_PROBE), net.topo.edge_client_ip,
                                  "9098", "--sni", net.topo.edge_client_ip, "--ca", str(ca)])
    result = json.loads(out.stdout)
    assert result["handshake"] == "ok" and result["answer"], result
    return str(result["peer_serial"])


def _service(name: str, *props: str) -> dict[str, str]:
    out = containers.exec_in(name, "systemctl", "show", "kafka-edge",
                             *(f"--property={p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _check_hardening(name: str) -> None:
    pid = _service(name, "MainPID")["MainPID"]
    status = containers.exec_in(name, "cat", f"/proc/{pid}/status")
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", status, re.M))
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", status
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, status
    uid = containers.exec_in(name, "id", "-u", "kafka-edge").strip()
    assert fields["Uid"].split()[0] == uid != "0"
    mounts = containers.exec_in(name, "cat", f"/proc/{pid}/mountinfo").splitlines()
    root = [m.split()[5] for m in mounts if m.split()[4] == "/"][-1]
    assert root.split(",")[0] == "ro", mounts  # ProtectSystem=strict took effect
    security = containers.exec_in(name, "systemd-analyze", "security", "--no-pager",
                                  "kafka-edge.service")
    exposure = float(re.findall(r"Overall exposure level for kafka-edge.service: ([\d.]+)",
                                security)[0])
    assert exposure <= MAX_EXPOSURE, security


def test_systemd_runs_reloads_and_stops_the_unit(
        systemd_image: str, deploy_net: DeployNet, tmp_path: Path) -> None:
    net = deploy_net
    etc = tmp_path / "etc-kafka-edge"
    (etc / "certs").mkdir(parents=True)
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    _write_cert(ca, etc, net.topo.edge_client_ip)
    (etc / "kafka-edge.yaml").write_text(yaml.safe_dump(containers.edge_config(net, tls=True)))
    run_args = ["--systemd=always", "--cap-add", "SYS_ADMIN", "--network", net.edge_network,
                "-v", f"{etc}:/etc/kafka-edge:ro"]
    with containers.container(systemd_image, run_args) as name:
        containers.wait_booted(name)
        gid = int(containers.exec_in(name, "getent", "group", "kafka-edge").split(":")[2])
        _own(etc, gid)
        verify = podman_exec(name, "systemd-analyze", "verify",
                             "/etc/systemd/system/kafka-edge.service")
        assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr

        assert podman_exec(name, "systemctl", "enable", "--now", "kafka-edge").returncode == 0
        _wait_journal(name, "kafka-edge ready")
        _check_hardening(name)

        tls = ClientSecurity(protocol="SSL", ca_file=str(ca_file))
        bootstrap = f"{net.topo.edge_client_ip}:9098"
        topic = f"systemd-{uuid.uuid4().hex[:8]}"
        records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(RECORDS)]
        produce("confluent", bootstrap, topic, records, tls, netns=net.topo.client)
        got = consume("confluent", bootstrap, topic, RECORDS, tls, netns=net.topo.client)
        assert Counter(got) == Counter(records)

        _reload(name, net, ca, etc, gid, ca_file)
        _stop_drains(name, net, ca_file)
        images.podman("stop", "--time", "30", name, timeout=60)


def _reload(name: str, net: DeployNet, ca: trustme.CA, etc: Path, gid: int, ca_file: Path
            ) -> None:
    """reload = SIGHUP: the certificate files are read again (nothing changed: no file watch
    involved), then a new certificate is served."""
    first = _serial(net, ca_file)
    assert podman_exec(name, "systemctl", "reload", "kafka-edge").returncode == 0
    _wait_journal(name, "certificates reloaded")
    _write_cert(ca, etc, net.topo.edge_client_ip)
    _own(etc, gid)
    assert podman_exec(name, "systemctl", "reload", "kafka-edge").returncode == 0
    _wait_journal(name, "certificates reloaded", count=2)
    assert _serial(net, ca_file) != first


def _stop_drains(name: str, net: DeployNet, ca_file: Path) -> None:
    """stop = SIGTERM: a connection open through it is drained, the service ends with 0."""
    def stop() -> None:
        assert podman_exec(name, "systemctl", "stop", "kafka-edge").returncode == 0

    rest, err, stopped_after = containers.hold_through_stop(net, stop, ca_file)
    assert rest == "eof", err
    assert stopped_after < 20, stopped_after
    result = _service(name, "Result", "ExecMainCode", "ExecMainStatus", "ActiveState")
    assert result == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0",
                      "ActiveState": "inactive"}, result
    journal = _wait_journal(name, "kafka_edge.cli: stopped")  # journald may lag a little
    assert "shutting down: draining connections" in journal
    assert "proxy draining: every answer written" in journal


def podman_exec(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return images.podman("exec", name, *argv, check=False, timeout=60)
