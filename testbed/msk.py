"""Emulated Amazon MSK for the test bed: real Apache Kafka brokers that look and authenticate
like MSK's IAM listener, and AWS's own client libraries to talk to them.

What is emulated (see docs/deployment.md, "Amazon MSK", for what only a real MSK can confirm):

- Names and addresses: every broker has an address of its own in the cluster network and one
  name, MSK Serverless style ``b<N>-<id>.c1.kafka-serverless.<region>.amazonaws.com`` with
  ``N`` deliberately unlike the node id (node 1 -> b97, 2 -> b12, 3 -> b305), behind the
  bootstrap name ``boot-<id>.c1.kafka-serverless.<region>.amazonaws.com``; or MSK provisioned
  style ``b-<node>.<name>.<id>.c2.kafka.<region>.amazonaws.com``. The names resolve only where
  the test puts them in a hosts file (cluster and edge networks: :func:`host_entries`).
- TLS from a private CA standing in for Amazon's (a certificate for ``*.c1.kafka-serverless...``
  or ``*.<name>.<id>.c2.kafka...`` and the names).
- IAM on port 9098 (listener ``SASL_SSL``), by small test-only Java classes on the brokers'
  class path (``testbed/java/msk``, compiled here against Kafka's jars): ``AWS_MSK_IAM`` (a SASL
  server registered like Kafka's PLAIN server, verifying aws-msk-iam-auth's signed JSON payload)
  and IAM over ``OAUTHBEARER`` (a validator callback handler verifying the presigned-URL token
  AWS's signer libraries make). Both check SigV4 signatures against :data:`CREDENTIALS`
  (static test credentials), the cluster's region and the expiry; the principal is the access
  key id. No IAM policy is evaluated (every authenticated principal may do anything).
- The internal PLAINTEXT listener stays (inter-broker traffic and the test bed's own admin
  calls, inside the cluster network), as MSK has listeners clients never see.

Clients: :func:`java_iam_props` (aws-msk-iam-auth 2.3.6 from ``.cache/msk-iam``, fetched by
``make setup``), :func:`python_client` (confluent-kafka with aws-msk-iam-sasl-signer-python,
``testbed/msk_python_client.py``) and :func:`go_client` (franz-go's AWS_MSK_IAM,
``testbed/go/franz_msk_iam``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from testbed import CACHE_DIR, REPO_ROOT
from testbed.cluster import KafkaCluster, netns_prefix
from testbed.jvm import DEFAULT_VERSION, JavacError, compile_java
from testbed.layout import NodeLayout

IAM_PORT = 9098
LISTENER = "SASL_SSL"
MSK_IAM_VERSION = "2.3.6"
IAM_JARS = CACHE_DIR / "msk-iam" / MSK_IAM_VERSION / "libs"
JAVA_SOURCES = REPO_ROOT / "testbed" / "java" / "msk"
PYTHON_CLIENT = REPO_ROOT / "testbed" / "msk_python_client.py"
ACCESS_KEY_ID = "AKIAEMULATEDMSK00001"
CREDENTIALS: Mapping[str, str] = {ACCESS_KEY_ID: "emulated/msk+Secret0Key1For2Tests3Only4"}
"""The emulated account: access key id -> secret access key (what the brokers accept)."""

Kind = Literal["serverless", "provisioned"]


class MskUnavailable(RuntimeError):
    """Something the emulated MSK or its clients need is missing (says what and how to fix)."""


# -- the brokers' IAM classes --------------------------------------------------------------------


def iam_classes(version: str) -> Path:
    """Compile ``testbed/java/msk/*.java`` against Kafka ``version``'s jars (once per source
    and version); the class directory, for the brokers' class path."""
    try:
        return compile_java("java-msk", sorted(JAVA_SOURCES.glob("*.java")), version,
                            javac_options=["-Xlint:all", "-Werror"], timeout=300)
    except JavacError as exc:
        raise MskUnavailable(f"javac testbed/java/msk failed:\n{exc}") from exc


def _jaas_options(region: str) -> str:
    secrets = ",".join(f"{key}:{secret}" for key, secret in CREDENTIALS.items())
    return f'mskRegion="{region}" mskCredentials="{secrets}"'


def broker_iam_config(region: str) -> dict[str, str]:
    """Broker properties: AWS_MSK_IAM and OAUTHBEARER on the SASL_SSL listener, both verified
    by ``msk.IamCallbackHandler`` for ``region``."""
    prefix = f"listener.name.{LISTENER.lower()}."
    handler = "msk.IamCallbackHandler"
    return {
        prefix + "sasl.enabled.mechanisms": "AWS_MSK_IAM,OAUTHBEARER",
        prefix + "aws_msk_iam.sasl.jaas.config":
            f"msk.IamLoginModule required {_jaas_options(region)};",
        prefix + "aws_msk_iam.sasl.server.callback.handler.class": handler,
        # the broker's own login for OAUTHBEARER (Kafka's unsecured one, never sent anywhere)
        prefix + "oauthbearer.sasl.jaas.config":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            f'unsecuredLoginStringClaim_sub="broker" {_jaas_options(region)};',
        prefix + "oauthbearer.sasl.server.callback.handler.class": handler,
    }


# -- the cluster ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MskCluster:
    kind: Kind
    name: str  # provisioned: the cluster name in its broker names
    cluster_id: str
    region: str
    kafka: KafkaCluster
    names: Mapping[int, str]  # node id -> broker name
    ips: Mapping[int, str]  # node id -> address in the cluster network
    bootstrap_host: str  # serverless: boot-<id>...; provisioned: broker 1's name

    @property
    def bootstrap_servers(self) -> list[str]:
        """What the MSK console shows as the bootstrap string (port 9098, IAM)."""
        if self.kind == "serverless":
            return [f"{self.bootstrap_host}:{IAM_PORT}"]
        return [f"{self.names[n]}:{IAM_PORT}" for n in sorted(self.names)]

    @property
    def domain(self) -> str:
        """The DNS suffix every broker name of this cluster shares."""
        return self.bootstrap_host.split(".", 1)[1]

    def ca_file(self) -> str:
        ca = self.kafka.ca_file
        assert ca is not None
        return ca


def serverless_names(cluster_id: str, region: str, numbers: Mapping[int, int]) -> dict[int, str]:
    return {node: f"b{n}-{cluster_id}.c1.kafka-serverless.{region}.amazonaws.com"
            for node, n in numbers.items()}


def provisioned_names(name: str, cluster_id: str, region: str, nodes: Sequence[int]
                      ) -> dict[int, str]:
    return {n: f"b-{n}.{name}.{cluster_id}.c2.kafka.{region}.amazonaws.com" for n in nodes}


def start_msk(directory: Path, *, kind: Kind, name: str, cluster_id: str, region: str,
              ips: Mapping[int, str], netns: str,
              add_hosts: Callable[[Mapping[str, str]], None],
              numbers: Mapping[int, int] | None = None) -> MskCluster:
    """Start an emulated MSK cluster of ``len(ips)`` brokers (node ids from 1) in ``netns``,
    node N on address ``ips[N]``; ``numbers`` (serverless): node id -> the number in its name.
    ``add_hosts`` is first given the cluster's names and addresses (:meth:`MskCluster.
    host_entries`) for the hosts files of the cluster network (the brokers find each other by
    name) and of the networks that may reach the brokers."""
    nodes = sorted(ips)
    if kind == "serverless":
        assert numbers is not None and sorted(numbers) == nodes
        names = serverless_names(cluster_id, region, numbers)
        bootstrap = f"boot-{cluster_id}.c1.kafka-serverless.{region}.amazonaws.com"
    else:
        names = provisioned_names(name, cluster_id, region, nodes)
        bootstrap = names[nodes[0]]
    domain = bootstrap.split(".", 1)[1]
    entries = {names[n]: ips[n] for n in nodes} | {bootstrap: ips[nodes[0]]}
    add_hosts(entries)
    kafka = KafkaCluster.start(
        directory, brokers=len(nodes), security=("PLAINTEXT", LISTENER),
        mechanisms=("OAUTHBEARER",), host=ips[nodes[0]], advertised_host=names[nodes[0]],
        netns=netns, config=broker_iam_config(region),
        layout=NodeLayout(hosts=ips, names=names, fixed_ports={LISTENER: IAM_PORT},
                          tls_names=(f"*.{domain}", bootstrap)),
        extra_classpath=[str(iam_classes(DEFAULT_VERSION))])
    return MskCluster(kind=kind, name=name, cluster_id=cluster_id, region=region, kafka=kafka,
                      names=names, ips=dict(ips), bootstrap_host=bootstrap)


# -- clients -------------------------------------------------------------------------------------


def iam_client_jars() -> list[str]:
    """aws-msk-iam-auth and its dependencies, for a Java client's class path."""
    jars = sorted(str(p) for p in IAM_JARS.glob("*.jar"))
    if not any("aws-msk-iam-auth" in j for j in jars):
        raise MskUnavailable(f"aws-msk-iam-auth {MSK_IAM_VERSION} jars missing in {IAM_JARS}: "
                             "run `make setup`")
    return jars


def aws_env(*, region: str | None, secret: str | None = None) -> dict[str, str]:
    """The AWS environment of a client process: the emulated account's credentials (or another
    ``secret``), ``AWS_REGION`` when given, and nothing read from files or instance metadata."""
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": secret or CREDENTIALS[ACCESS_KEY_ID],
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if region is not None:
        env["AWS_REGION"] = region
    return env


def java_iam_props(mechanism: Literal["AWS_MSK_IAM", "OAUTHBEARER"], *,
                   region_txt: str | None = None) -> dict[str, str]:
    """Java client properties for MSK IAM with aws-msk-iam-auth, exactly as docs/deployment.md
    gives them: ``AWS_MSK_IAM`` with ``IAMLoginModule``, or ``OAUTHBEARER`` with
    ``IAMOAuthBearerLoginCallbackHandler``. ``region_txt``: the region from that DNS TXT record
    (``Route53RegionProvider?host=...``); otherwise the default chain (``AWS_REGION``)."""
    provider = ""
    if region_txt is not None:
        provider = (' awsMskRegionProvider="software.amazon.msk.auth.iam.internals.region.'
                    f'Route53RegionProvider?host={region_txt};refresh.seconds=300"')
    props = {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism}
    if mechanism == "AWS_MSK_IAM":
        props["sasl.jaas.config"] = (
            f"software.amazon.msk.auth.iam.IAMLoginModule required{provider};")
        props["sasl.client.callback.handler.class"] = (
            "software.amazon.msk.auth.iam.IAMClientCallbackHandler")
    else:
        props["sasl.jaas.config"] = (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
            f"required{provider};")
        props["sasl.login.callback.handler.class"] = (
            "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler")
        props["sasl.client.callback.handler.class"] = (
            "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler")
    return props


@dataclass(frozen=True, slots=True)
class ClientRun:
    code: int
    result: dict[str, Any]  # the client's JSON line
    records: list[tuple[str, str]]
    stderr: str


def python_client(action: Literal["produce", "consume", "metadata"], *, bootstrap: str, ca: str,
                  topic: str, region: str, netns: str, env: Mapping[str, str],
                  records: Sequence[tuple[str, str]] = (), count: int = 0,
                  group: str = "msk-python", token_file: Path | None = None,
                  timeout: float = 60.0) -> ClientRun:
    """Run ``testbed/msk_python_client.py`` in ``netns`` (see its docstring)."""
    argv = [*netns_prefix(netns), sys.executable, str(PYTHON_CLIENT), action,
            "--bootstrap", bootstrap, "--ca", ca, "--topic", topic, "--region", region,
            "--group", group, "--count", str(count), "--timeout", str(timeout)]
    if token_file is not None:
        argv += ["--token-file", str(token_file)]
    data = "".join(f"{k}\t{v}\n" for k, v in records).encode()
    proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout + 30,
                          env={**os.environ, **env}, check=False)
    lines = proc.stdout.decode(errors="replace").splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {"unparsed": lines[-1]}
    got = [tuple(line.split("\t", 1)) for line in lines[:-1] if "\t" in line]
    return ClientRun(proc.returncode, result, [(k, v) for k, v in got],
                     proc.stderr.decode(errors="replace")[-4000:])


def go_client(binary: Path, *, bootstrap: str, ca: str, topic: str, count: int, group: str,
              netns: str, env: Mapping[str, str], timeout: float = 90.0) -> ClientRun:
    """Run the franz-go AWS_MSK_IAM client (``testbed/go/franz_msk_iam``) in ``netns``."""
    argv = [*netns_prefix(netns), str(binary), "--bootstrap", bootstrap, "--topic", topic,
            "--count", str(count), "--group", group, "--ca-file", ca,
            "--timeout", f"{int(timeout)}s"]
    proc = subprocess.run(argv, capture_output=True, timeout=timeout + 30,
                          env={**os.environ, **env}, check=False)
    lines = proc.stdout.decode(errors="replace").splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return ClientRun(proc.returncode, result, [], proc.stderr.decode(errors="replace")[-4000:])
