"""The Helm chart (deploy/helm/kafka-edge): ``helm lint``, ``helm template`` with the defaults and
the three values files in ci/, every rendered Kubernetes object validated against the Kubernetes
schemas (kubernetes-validate's strict schemas, for the chart's oldest Kubernetes and the newest
shipped), what each object must say, what the chart refuses, and the rendered configuration
checked and started by kafka-edge itself in the image, mounted as the Deployment mounts it.

The two objects of other projects' kinds (cert-manager's Certificate, the Prometheus operator's
ServiceMonitor) have no schema here; their fields are checked against the objects they refer to.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from testbed.image import podman

import kafka_edge
from kafka_edge.cli import build_parser

from . import containers
from .chart import (
    CASES,
    CHART,
    Obj,
    edge_config,
    helm_run,
    one,
    pod_podman_args,
    template,
    values_args,
)
from .chart import render as render_args

pytestmark = pytest.mark.slow

SCHEMA_VERSIONS = ("1.27.0", "1.37.0")  # Chart.yaml's kubeVersion floor, the newest schemas
CRD_KINDS = {"Certificate": "cert-manager.io/v1", "ServiceMonitor": "monitoring.coreos.com/v1"}
AWS = "service.beta.kubernetes.io/aws-load-balancer-"


def render(helm: Path, case: str, tmp_path: Path, *extra: str) -> list[Obj]:
    return render_args(helm, [*values_args(case, tmp_path), *extra])


def test_chart_deploys_this_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == kafka_edge.__version__


@pytest.mark.parametrize("case", CASES)
def test_helm_lint(helm: Path, case: str, tmp_path: Path) -> None:
    proc = helm_run(helm, "lint", "--strict", str(CHART), *values_args(case, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid_kubernetes(helm: Path, case: str, tmp_path: Path) -> None:
    objs = render(helm, case, tmp_path)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    for obj in objs:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] == CRD_KINDS[obj["kind"]]
            continue
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} (Kubernetes {version}): "
                            f"{where}: {exc.message}")


def _ports(config: dict[str, Any]) -> set[int]:
    ports = {int(lst["bind"].rsplit(":", 1)[1]) for lst in config.get("listeners", [])}
    for cluster in config["clusters"]:
        if pr := cluster.get("port_routing"):
            ports.add(pr["bootstrap_port"])
            count = pr.get("node_id_max", 63) - pr.get("node_id_min", 0) + 1
            ports |= set(range(pr["broker_port_base"], pr["broker_port_base"] + count))
    return ports


@pytest.mark.parametrize("case", CASES)
def test_objects_say_what_a_deployment_needs(helm: Path, case: str, tmp_path: Path) -> None:
    objs = render(helm, case, tmp_path)
    config = edge_config(objs)
    deployment = one(objs, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()

    # shutdown: preStop, then the drain, inside the grace period
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = config["limits"]["drain_timeout_s"]
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain

    # probes on the port kafka-edge serves them on; the admin port named in the container
    admin = int(config["observability"]["http_bind"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == admin
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert set(ports.values()) - {admin} == _ports(config)
    build_parser().parse_args(container["args"])  # kafka-edge accepts the arguments

    # non-root, read-only, nothing more
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False
    zones = [c for c in spec["topologySpreadConstraints"]
             if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zones and zones[0]["labelSelector"]["matchLabels"] == selector
    assert "checksum/config" in pod["metadata"]["annotations"]

    # the load balancer: every client port, the NLB annotations, PROXY protocol both ends
    service = one(objs, "Service", deployment["metadata"]["name"])
    assert service["spec"]["selector"] == selector
    assert {p["port"] for p in service["spec"]["ports"]} == _ports(config)
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    annotations = service["metadata"].get("annotations", {})
    blocks = [lst.get("proxy_protocol") for lst in config.get("listeners", [])] + [
        c["port_routing"].get("proxy_protocol") for c in config["clusters"]
        if "port_routing" in c]
    if case in ("proxy-protocol", "port-routing"):
        assert all(b and b["mode"] in ("required", "optional") and b["trusted_sources"]
                   for b in blocks), blocks
    else:
        assert blocks and not any(blocks)
    if case == "port-routing":  # not AWS
        assert not any(k.startswith(AWS) for k in annotations)
    else:
        assert annotations[AWS + "type"] == "external"
        assert annotations[AWS + "nlb-target-type"] == "ip"
        assert annotations[AWS + "scheme"] == "internal"
        assert annotations[AWS + "healthcheck-path"] == "/readyz"
        assert annotations[AWS + "healthcheck-port"] == str(admin)
        assert (annotations.get(AWS + "proxy-protocol") == "*") == any(blocks)

    _check_optional_objects(objs, case, selector)


def _check_optional_objects(objs: list[Obj], case: str, selector: dict[str, str]) -> None:
    kinds = {o["kind"] for o in objs}
    deployment = one(objs, "Deployment")
    if case == "port-routing":
        assert "PodDisruptionBudget" not in kinds
    else:
        assert one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    if case == "proxy-protocol":
        hpa = one(objs, "HorizontalPodAutoscaler")["spec"]
        assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"]  # the autoscaler owns it
        monitor = one(objs, "ServiceMonitor")["spec"]
        metrics = one(objs, "Service", deployment["metadata"]["name"] + "-metrics")
        assert monitor["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
        assert monitor["endpoints"][0]["port"] in {p["name"] for p in metrics["spec"]["ports"]}
    else:
        assert "HorizontalPodAutoscaler" not in kinds and "ServiceMonitor" not in kinds
        assert deployment["spec"]["replicas"] >= 2
    secret_volumes = {v["secret"]["secretName"] for v in
                      deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    for cert in (o for o in objs if o["kind"] == "Certificate"):
        assert cert["spec"]["secretName"] in secret_volumes
    made = {o["metadata"]["name"] for o in objs if o["kind"] in ("Secret", "Certificate")}
    expected = {"defaults": 0, "proxy-protocol": 1, "port-routing": 1, "cert-manager": 1}
    assert len(made) == expected[case] and made <= secret_volumes


def test_a_configuration_change_rolls_the_pods(helm: Path, tmp_path: Path) -> None:
    def checksum(*extra: str) -> str:
        pod = one(render(helm, "defaults", tmp_path, *extra), "Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum() == checksum()
    assert checksum("--set", "config.limits.max_connections=500") != checksum()
    assert checksum("--set", "drainTimeoutSeconds=40") != checksum()


@pytest.mark.parametrize(("values", "message"), [
    ({"config": {"observability": {"http_bind": "0.0.0.0:1"}}}, "config.observability.http_bind"),
    ({"config": {"limits": {"drain_timeout_s": 5}}}, "config.limits.drain_timeout_s"),
    ({"terminationGracePeriodSeconds": 50}, "terminationGracePeriodSeconds (50) must be longer"),
    ({"service": {"proxyProtocol": {"enabled": True}}}, "service.proxyProtocol.trustedSources"),
    ({"certificates": [{"name": "edge", "existingSecret": "a", "tlsCrt": "PEM", "tlsKey": "PEM"}]},
     "give exactly one of existingSecret"),
    ({"replicas": 3}, "additional properties 'replicas' not allowed"),
])
def test_the_chart_refuses(helm: Path, tmp_path: Path, values: dict[str, Any],
                           message: str) -> None:
    file = tmp_path / "values.yaml"
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in values.items():  # one level deep merge, as helm does for these keys
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    file.write_text(yaml.safe_dump(base))
    proc = template(helm, "-f", str(file))
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_proxy_protocol_listener_key_is_refused(helm: Path, tmp_path: Path) -> None:
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    base["config"]["listeners"][0]["proxy_protocol"] = {"mode": "off"}
    base["config"]["clusters"][0]["sni_routing"]["advertised_port"] = 9098
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(base))
    proc = template(helm, "-f", str(file))
    assert "config.listeners[0].proxy_protocol: set by the chart" in proc.stderr
    base["config"]["listeners"][0].pop("proxy_protocol")
    base["config"]["clusters"][0]["sni_routing"]["advertised_port"] = 443
    file.write_text(yaml.safe_dump(base))
    proc = template(helm, "-f", str(file))
    assert "config.clusters[0].sni_routing.advertised_port (443) differs" in proc.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES)
def test_rendered_configuration_checks_and_starts_in_the_image(
        helm: Path, image: str, case: str, tmp_path: Path) -> None:
    objs = render(helm, case, tmp_path)
    pod = pod_podman_args(objs, tmp_path)
    config_path = pod.args[pod.args.index("--config") + 1]
    check = [*pod.run_args, "--network", "none", "--rm"]
    proc = podman("run", *check, image, "check", "--config", config_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "configuration OK" in proc.stdout

    admin = edge_config(objs)["observability"]["http_bind"].rsplit(":", 1)[1]
    url = urllib.parse.urlunsplit(("http", f"127.0.0.1:{admin}", "/healthz", "", ""))
    probe = ("import sys, time, urllib.request\n"
             "for _ in range(150):\n"
             "    try:\n"
             "        print(urllib.request.urlopen(sys.argv[1], timeout=5).status); break\n"
             "    except OSError:\n"
             "        time.sleep(0.2)\n")
    with containers.container(image, [*pod.run_args, "--network", "none"], pod.args) as name:
        # the liveness probe's answer (whatever the log level says)
        assert containers.exec_in(name, "python3", "-c", probe, url).strip() == "200", \
            containers.logs(name)
        podman("stop", "--time", "60", name, timeout=90)
        assert containers.state(name, "ExitCode") == "0", containers.logs(name)
