"""The launch template's user data, run for real on a machine booted by systemd.

The user data is taken from the shipped deploy/aws/edge.template.json and evaluated for this
test's parameter values as CloudFormation would (:mod:`.cfn_eval`), then run by bash as root
(as cloud-init runs user data; cloud-init itself is not in the container) in a podman container
whose PID 1 is systemd: a fresh Debian 12
(tests/deploy/userdata.Containerfile) in the edge network namespace, in front of a real broker.
Everything it does runs: pip installs kafka-edge from a wheel built from this tree, the user
and the configuration are written, certificates and keys are fetched and written with their
modes, the systemd unit of deploy/systemd is installed with its drop-in and started, and the
script waits for /readyz. Clients in the client namespace then produce and consume through it
over TLS with the fetched certificate, and ``systemctl stop`` ends it with status 0.

What stands in for AWS, and only that:

- Secrets Manager: there is no AWS here. ``aws`` on the container's PATH is
  tests/deploy/fake_aws.py, which answers exactly the call the script makes
  (``secretsmanager get-secret-value --region --secret-id --query SecretString --output text``)
  from a file, and refuses any other; the test checks the call it got.
- The package index: the container has no route out, so pip's own environment variables
  (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``) point it at a folder of the dependencies' wheels,
  downloaded from the index on the host (and kept in .cache/wheels/user-data).
- The distribution's packages (python3, python3-venv) are in the image; the script's check
  finds them installed and installs nothing. The AWS CLI package is not installed because
  ``aws`` exists. The CloudWatch branch (CloudWatchLogs=true) is not run.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from testbed import CACHE_DIR
from testbed import image as images
from testbed.clients import ClientSecurity, consume, produce

from . import containers
from .cfn_eval import Stack
from .containers import DRAIN_S, DeployNet

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "aws" / "edge.template.json"
UNIT = REPO / "deploy" / "systemd" / "kafka-edge.service"
HERE = Path(__file__).resolve().parent
TEST_IMAGE = f"{images.IMAGE_TAG}-userdata-test"
DEPS = CACHE_DIR / "wheels" / "user-data"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:kafka-edge-test-AbCdEf"
RECORDS = 1_000


@pytest.fixture(scope="module")
def userdata_image(image: str) -> str:
    """A Debian 12 machine with systemd and Python, on the base ``make image`` made."""
    images.build_derived(HERE / "userdata.Containerfile", HERE, TEST_IMAGE,
                         {"BASE_IMAGE": images.BASE_TAG})
    return TEST_IMAGE


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``kafka/``: the wheel of this tree (its dependencies' wheels: in :data:`DEPS`)."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out / "kafka"), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (out / "kafka").glob("kafka_edge-*.whl")
    with zipfile.ZipFile(wheel) as z:
        metadata = next(z.read(n).decode() for n in z.namelist()
                        if n.endswith(".dist-info/METADATA"))
    requirements = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line]
    DEPS.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
           "--dest", str(DEPS)]
    offline = subprocess.run([*pip, "--no-index", "--find-links", str(DEPS), *requirements],
                             capture_output=True, check=False, timeout=300)
    if offline.returncode != 0:  # not all there yet: from the package index
        subprocess.run([*pip, *requirements], check=True, capture_output=True, timeout=600)
    return out


def user_data(wheel: str, config: dict[str, Any], **overrides: str) -> str:
    """The launch template's user data of the shipped template for these parameters."""
    template = json.loads(TEMPLATE.read_text())
    parameters = {
        "VpcId": "vpc-0123456789abcdef0", "SubnetIds": "subnet-0aaa,subnet-0bbb",
        "ClientCidr": "10.0.0.0/8", "ClusterCidr": "198.18.0.0/15",
        "EdgeConfiguration": yaml.safe_dump(config), "CertificateSecretArns": SECRET_ARN,
        "KafkaEdgePackage": f"/srv/wheels/kafka/{wheel}", "Workers": "2", **overrides}
    stack = Stack(template, parameters, {"LogGroup": "unused"})
    data = template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    return base64.b64decode(stack.evaluate(data["UserData"])).decode()


def _secret(ca: trustme.CA, ip: str) -> str:
    cert = ca.issue_cert(ip)
    return json.dumps({
        "edge.pem": b"".join(p.bytes() for p in cert.cert_chain_pems).decode(),
        "edge.key": cert.private_key_pem.bytes().decode()})


def _run_user_data(name: str, path: str) -> subprocess.CompletedProcess[str]:
    """By bash, as root; pip pointed at the wheel folder (no route out)."""
    return images.podman("exec", "--env", "PIP_NO_INDEX=1", "--env",
                         "PIP_FIND_LINKS=/srv/wheels/deps", name, "/bin/bash", path,
                         check=False, timeout=300)


def _stat(name: str, *paths: str) -> list[str]:
    return containers.exec_in(name, "stat", "-c", "%a %U %G", *paths).split("\n")[:len(paths)]


def test_the_user_data_installs_configures_and_starts_kafka_edge(
        userdata_image: str, wheels: Path, deploy_net: DeployNet, tmp_path: Path) -> None:
    net = deploy_net
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = containers.edge_config(net, tls=True)
    (wheel,) = (w.name for w in (wheels / "kafka").glob("*.whl"))
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "secrets.json").write_text(json.dumps({SECRET_ARN: _secret(ca,
                                                                      net.topo.edge_client_ip)}))
    fake = tmp_path / "bin-aws"
    fake.write_bytes((HERE / "fake_aws.py").read_bytes())
    fake.chmod(0o755)
    script = tmp_path / "user-data.txt"
    script.write_text(user_data(wheel, config))
    bad = tmp_path / "user-data-bad-port.txt"
    bad.write_text(user_data(wheel, config, AdminPort="9181"))
    run_args = ["--systemd=always", "--cap-add", "SYS_ADMIN", "--network", net.edge_network,
                "-v", f"{wheels / 'kafka'}:/srv/wheels/kafka:ro",
                "-v", f"{DEPS}:/srv/wheels/deps:ro", "-v", f"{aws}:/srv/aws",
                "-v", f"{fake}:/usr/local/bin/aws:ro",
                "-v", f"{tmp_path}:/var/lib/cloud/instance:ro"]
    with containers.container(userdata_image, run_args) as name:
        containers.wait_booted(name)
        assert containers.exec_in(name, "getent", "passwd", "kafka-edge", check=False) == ""
        ran = _run_user_data(name, "/var/lib/cloud/instance/user-data.txt")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "kafka-edge user data: ready: /readyz answers 200 on port 9180" in ran.stdout
        assert "BEGIN" not in ran.stdout + ran.stderr  # names logged, never the PEM text

        calls = [json.loads(line) for line in (aws / "calls.log").read_text().splitlines()]
        assert calls == [["secretsmanager", "get-secret-value", "--region", "eu-west-1",
                          "--secret-id", SECRET_ARN, "--query", "SecretString",
                          "--output", "text"]]
        _check_files(name, config)
        _check_traffic(net, ca_file)
        _check_bad_admin_port(name)
        _check_stop(name)


def _check_files(name: str, config: dict[str, Any]) -> None:
    etc = "/etc/kafka-edge"
    assert yaml.safe_load(containers.exec_in(name, "cat", f"{etc}/kafka-edge.yaml")) == config
    assert _stat(name, etc, f"{etc}/certs", f"{etc}/kafka-edge.yaml", f"{etc}/certs/edge.pem",
                 f"{etc}/certs/edge.key") == [
        "750 root kafka-edge", "750 root kafka-edge", "640 root kafka-edge",
        "640 root kafka-edge", "640 root kafka-edge"]
    unit = containers.exec_in(name, "cat", "/etc/systemd/system/kafka-edge.service")
    shipped = [line for line in UNIT.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert unit.splitlines() == shipped
    shown = containers.exec_in(name, "systemctl", "show", "kafka-edge", "--property=ExecStart",
                               "--property=TimeoutStopUSec", "--property=UnitFileState",
                               "--property=ActiveState", "--property=User")
    props = dict(line.split("=", 1) for line in shown.splitlines())
    assert "kafka-edge run --config /etc/kafka-edge/kafka-edge.yaml --workers 2" in props[
        "ExecStart"]
    assert props["TimeoutStopUSec"] == f"{DRAIN_S + 30}s"
    assert (props["UnitFileState"], props["ActiveState"], props["User"]) == (
        "enabled", "active", "kafka-edge")
    workers = containers.exec_in(name, "pgrep", "-u", "kafka-edge", "-f",
                                 "kafka-edge run|kafka_edge.cli run")
    assert len(workers.split()) == 3  # the supervisor and its two workers


def _check_traffic(net: DeployNet, ca_file: Path) -> None:
    """What the target group's health check asks, and clients, from another namespace."""
    code = ("import sys, urllib.request\n"
            "print(urllib.request.urlopen(sys.argv[1], timeout=5).status)")
    ready = net.topo.run("client", [sys.executable, "-c", code,
                                    f"http://{net.topo.edge_client_ip}:9180/readyz"])
    assert ready.stdout.strip() == b"200"
    tls = ClientSecurity(protocol="SSL", ca_file=str(ca_file))
    bootstrap = f"{net.topo.edge_client_ip}:9098"
    topic = f"userdata-{uuid.uuid4().hex[:8]}"
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(RECORDS)]
    produce("confluent", bootstrap, topic, records, tls, netns=net.topo.client)
    got = consume("confluent", bootstrap, topic, RECORDS, tls, netns=net.topo.client)
    assert Counter(got) == Counter(records)


def _check_bad_admin_port(name: str) -> None:
    """A configuration whose admin port is not the stack's AdminPort is refused."""
    ran = _run_user_data(name, "/var/lib/cloud/instance/user-data-bad-port.txt")
    assert ran.returncode != 0
    assert 'observability.http_bind must be "0.0.0.0:9181"' in ran.stderr, ran.stderr
    # it stopped before the unit: the running service was left alone
    assert containers.exec_in(name, "systemctl", "is-active", "kafka-edge").strip() == "active"


def _check_stop(name: str) -> None:
    stop = images.podman("exec", name, "systemctl", "stop", "kafka-edge", check=False,
                         timeout=120)
    assert stop.returncode == 0, stop.stderr
    shown = containers.exec_in(name, "systemctl", "show", "kafka-edge", "--property=Result",
                               "--property=ExecMainStatus", "--property=ActiveState")
    assert dict(line.split("=", 1) for line in shown.splitlines()) == {
        "Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}
