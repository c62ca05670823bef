"""Rendering the Helm chart (deploy/helm/kafka-edge) and standing in for the kubelet.

:func:`render` runs ``helm template`` for one of :data:`CASES` (the defaults and the values files
in the chart's ci/ folder). :func:`pod_podman_args` turns the rendered Deployment into the
``podman run`` arguments of its one container, as a kubelet would run it: the ConfigMap and
Secret volumes at their mount paths (a Secret the chart does not make, such as an existing one or
cert-manager's, gets certificates from a test CA for the names the configuration serves),
emptyDir volumes as tmpfs, the pod's user and groups, the read-only root file system, no
capabilities, no privilege escalation, and the environment (values from Secrets replaced by test
values).
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "kafka-edge"
RELEASE = "edge"
NAMESPACE = "kafka"
KUBE_VERSION = "1.37.0"  # helm's own default (built with go install) predates the chart's minimum
CASES = ("defaults", "proxy-protocol", "port-routing", "cert-manager")
SECRET_TEST_VALUE = "secret-from-a-kubernetes-secret"

Obj = dict[str, Any]


def values_args(case: str, workdir: Path) -> list[str]:
    """helm arguments for a case: its ci/ values file, and for port-routing the certificate
    and key the chart puts into the Secret it makes (made here with trustme)."""
    if case == "defaults":
        return []
    args = ["-f", str(CHART / "ci" / f"{case}-values.yaml")]
    if case == "port-routing":
        ca = trustme.CA()
        cert = ca.issue_cert("kafka-events.example.com")
        crt, key = workdir / "inline.crt", workdir / "inline.key"
        crt.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        args += ["--set-file", f"certificates[0].tlsCrt={crt}",
                 "--set-file", f"certificates[0].tlsKey={key}"]
    return args


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False,
                          timeout=120)


def template(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart as release :data:`RELEASE` in :data:`NAMESPACE` for
    Kubernetes :data:`KUBE_VERSION`, with ``args``."""
    return helm_run(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    "--kube-version", KUBE_VERSION, *args)


def render(helm: Path, args: Sequence[str]) -> list[Obj]:
    """``helm template`` with ``args``: the rendered objects (AssertionError if it fails)."""
    proc = template(helm, *args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def one(objs: Sequence[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def edge_config(objs: Sequence[Obj]) -> dict[str, Any]:
    """The kafka-edge configuration in the rendered ConfigMap."""
    data: dict[str, Any] = yaml.safe_load(one(objs, "ConfigMap")["data"]["kafka-edge.yaml"])
    return data


def served_names(config: dict[str, Any]) -> list[str]:
    """Every name the configuration serves (for test certificates that cover them)."""
    names: set[str] = set()
    for cluster in config["clusters"]:
        if sni := cluster.get("sni_routing"):
            names.add(sni["bootstrap_host"])
            names.add("*." + sni["broker_host_pattern"].split(".", 1)[1])
        if port := cluster.get("port_routing"):
            names.add(port.get("advertised_host") or "localhost")
    return sorted(names)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    container: Obj
    run_args: list[str]  # podman run options that mount, confine and configure the container

    @property
    def args(self) -> list[str]:
        return list(self.container.get("args", []))


def _secret_files(objs: Sequence[Obj], secret: str, ca: trustme.CA, names: list[str]
                  ) -> dict[str, bytes]:
    made = [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == secret]
    if made:
        return {k: base64.b64decode(v) for k, v in made[0]["data"].items()}
    # an existing Secret or cert-manager's: tls.crt, tls.key and ca.crt, as cert-manager writes
    leaf = ca.issue_cert(*names)
    return {"tls.crt": b"".join(p.bytes() for p in leaf.cert_chain_pems),
            "tls.key": leaf.private_key_pem.bytes(), "ca.crt": ca.cert_pem.bytes()}


def _write(path: Path, data: bytes, mode: int, gid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chown(path, 0, gid)
    path.chmod(mode)


def pod_podman_args(objs: Sequence[Obj], workdir: Path) -> Pod:
    """The rendered Deployment's container as ``podman run`` options (see the module doc)."""
    spec = one(objs, "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    pod_sec, sec = spec["securityContext"], container["securityContext"]
    fs_group = int(pod_sec["fsGroup"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    ca = trustme.CA()
    names = served_names(edge_config(objs))
    # Kubernetes runs its own probes, never the image's HEALTHCHECK
    run_args = ["--user", f"{pod_sec['runAsUser']}:{pod_sec['runAsGroup']}",
                "--group-add", str(fs_group), "--health-cmd", "none"]
    for n, mount in enumerate(container["volumeMounts"]):
        volume = volumes[mount["name"]]
        here = workdir / f"volume-{n}"
        if "emptyDir" in volume:
            run_args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777,size=16m"]
            continue
        if "configMap" in volume:
            cm = one(objs, "ConfigMap", volume["configMap"]["name"])
            files = {k: v.encode() for k, v in cm["data"].items()}
            mode = 0o644  # a configMap volume's default mode
        else:
            secret = volume["secret"]
            files = _secret_files(objs, secret["secretName"], ca, names)
            mode = int(secret["defaultMode"])
        for key, data in files.items():
            _write(here / key, data, mode, fs_group)
        source = here / mount["subPath"] if "subPath" in mount else here
        suffix = ":ro" if mount.get("readOnly") else ""
        run_args += ["-v", f"{source}:{mount['mountPath']}{suffix}"]
    if sec.get("readOnlyRootFilesystem"):
        run_args += ["--read-only", "--read-only-tmpfs=false"]
    if sec.get("capabilities", {}).get("drop") == ["ALL"]:
        run_args += ["--cap-drop", "ALL"]
    if sec.get("allowPrivilegeEscalation") is False:
        run_args += ["--security-opt", "no-new-privileges"]
    for env in container.get("env", []):
        value = env.get("value")
        if "valueFrom" in env:
            assert "secretKeyRef" in env["valueFrom"], env
            value = SECRET_TEST_VALUE
        run_args += ["-e", f"{env['name']}={value}"]
    return Pod(container=container, run_args=run_args)
