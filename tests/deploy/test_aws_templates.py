"""The CDK app (deploy/aws) and the CloudFormation templates shipped from it.

The app is synthesized here with ``App().synth()`` (aws-cdk-lib runs its jsii runtime in Node.js;
no AWS account): the shipped edge.template.json and client.template.json must be what it makes
now, both templates (and those of a settings file with two clusters) must be clean under
cfn-lint, and the resources must be the architecture docs/deployment.md describes. The user
data in them runs for real in tests/deploy/test_aws_user_data.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_edge.config import load_config

REPO = Path(__file__).resolve().parents[2]
AWS = REPO / "deploy" / "aws"  # on sys.path ([tool.pytest.ini_options] pythonpath)

pytestmark = pytest.mark.slow

Template = dict[str, Any]


def _require_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (aws-cdk-lib synthesizes through it)")
    try:
        import aws_cdk  # noqa: F401
    except ImportError:
        pytest.skip("aws-cdk-lib is not installed (pip install -e '.[aws]'; make setup does)")


@pytest.fixture(scope="module")
def synthesized() -> dict[str, Template]:
    _require_node()
    from kafka_edge_cdk.synth import synthesize

    return synthesize()


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    """The stacks of a settings file: two SNI clusters on one listener, one of them with an
    AWS region, and a bootstrap name outside every broker domain."""
    _require_node()
    from kafka_edge_cdk.synth import synthesize

    folder = tmp_path_factory.mktemp("settings")
    listener = {"name": "edge", "bind": "0.0.0.0:9098", "tls": {"certificates": [
        {"cert_file": "certs/orders.pem", "key_file": "certs/orders.key"}]}}
    clusters = [
        {"name": "orders", "aws_region": "eu-west-1",
         "upstream": {"bootstrap_servers": ["b-1.orders.abc.c2.kafka.eu-west-1.amazonaws.com:9098"],
                      "tls": {}},
         "sni_routing": {"listener": "edge", "bootstrap_host": "boot.orders.example.com",
                         "broker_host_pattern": "b-{node}.orders.example.com"}},
        {"name": "payments",
         "upstream": {"bootstrap_servers": ["kafka-0.payments.internal:9094"],
                      "broker_address_pattern": "kafka-{node}.payments.internal:9095"},
         "sni_routing": {"listener": "edge", "bootstrap_host": "payments.example.net",
                         "broker_host_pattern": "b-{node}.payments.example.com"}}]
    (folder / "kafka-edge.yaml").write_text(yaml.safe_dump({
        "listeners": [listener], "clusters": clusters,
        "observability": {"http_bind": "0.0.0.0:9180"}}))
    (folder / "settings.yaml").write_text(yaml.safe_dump({
        "kafka_edge_config": "kafka-edge.yaml",
        "upstream_cidrs": {"orders": "10.20.0.0/16", "payments": "10.30.0.0/16"}}))
    return synthesize(folder / "settings.yaml")


def _resources(template: Template, kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _one(template: Template, kind: str) -> dict[str, Any]:
    (resource,) = _resources(template, kind).values()
    return dict(resource["Properties"])


def test_the_shipped_templates_are_what_the_app_makes(synthesized: dict[str, Template]) -> None:
    from kafka_edge_cdk.synth import TEMPLATES, render

    for stack, path in TEMPLATES.items():
        assert path.read_text() == render(synthesized[stack]), (
            f"{path.name} is stale: run `make deploy-files`")


def test_the_templates_are_clean_under_cfn_lint(
        two_clusters: dict[str, Template], tmp_path: Path) -> None:
    files = [AWS / "edge.template.json", AWS / "client.template.json"]
    for stack, template in two_clusters.items():
        files.append(tmp_path / f"{stack}.json")
        files[-1].write_text(json.dumps(template))
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), *map(str, files)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_edge_stack(synthesized: dict[str, Template]) -> None:
    edge = synthesized["KafkaEdge"]
    params = edge["Parameters"]
    balancer = _one(edge, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert (balancer["Type"], balancer["Scheme"]) == ("network", "internal")
    assert balancer["Subnets"] == {"Ref": "SubnetIds"}
    listener = _one(edge, "AWS::ElasticLoadBalancingV2::Listener")
    assert (listener["Protocol"], listener["Port"]) == ("TCP", {"Ref": "EdgePort"})
    targets = _one(edge, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert (targets["Protocol"], targets["HealthCheckProtocol"], targets["HealthCheckPath"],
            targets["HealthCheckPort"]) == ("TCP", "HTTP", "/readyz", {"Ref": "AdminPort"})
    attributes = {a["Key"]: a["Value"] for a in targets["TargetGroupAttributes"]}
    assert attributes["target_health_state.unhealthy.connection_termination.enabled"] == "false"
    # a leaving instance keeps its connections longer than the default drain
    default_drain = load_config(REPO / "examples" / "port-per-broker.yaml",
                                names_only=True).limits.drain_timeout_s
    assert attributes["deregistration_delay.timeout_seconds"] == {"Ref": "DeregistrationDelay"}
    assert int(params["DeregistrationDelay"]["Default"]) > default_drain

    group = _one(edge, "AWS::AutoScaling::AutoScalingGroup")
    assert group["VPCZoneIdentifier"] == {"Ref": "SubnetIds"}
    assert params["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert "two availability zones" in params["SubnetIds"]["Description"]
    assert int(params["MinSize"]["Default"]) >= 2 and group["HealthCheckType"] == "ELB"
    data = _one(edge, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert "Fn::Base64" in data["UserData"]

    service = _one(edge, "AWS::EC2::VPCEndpointService")
    assert service["AcceptanceRequired"] is True
    assert "EndpointServiceName" in edge["Outputs"]
    (log_group,) = _resources(edge, "AWS::Logs::LogGroup").values()
    assert log_group["Condition"] == "HasLogGroup"


def test_the_instance_role_reads_the_certificate_secrets_and_nothing_else(
        synthesized: dict[str, Template]) -> None:
    role = _one(synthesized["KafkaEdge"], "AWS::IAM::Role")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    (policy,) = role["Policies"]
    always, kms, logs = policy["PolicyDocument"]["Statement"]
    assert always == {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                      "Resource": {"Ref": "CertificateSecretArns"}}
    # the others exist only with a customer managed key / a log group
    assert kms["Fn::If"][0] == "HasKmsKey" and kms["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert kms["Fn::If"][1]["Action"] == "kms:Decrypt"
    assert logs["Fn::If"][0] == "HasLogGroup" and logs["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert all(a.startswith("logs:") and a != "logs:*" for a in logs["Fn::If"][1]["Action"])


def test_security_groups_open_only_the_edge_admin_and_cluster_ports(
        synthesized: dict[str, Template]) -> None:
    edge = synthesized["KafkaEdge"]
    groups = _resources(edge, "AWS::EC2::SecurityGroup")
    instances = groups["InstanceSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in instances  # only from the balancer, below
    egress = instances["SecurityGroupEgress"]
    assert {"CidrIp": {"Ref": "ClusterCidr"}, "FromPort": {"Ref": "ClusterPortFrom"},
            "ToPort": {"Ref": "ClusterPortTo"}}.items() <= egress[0].items()
    assert sorted(e["FromPort"] for e in egress[1:]) == [80, 443]
    ingress = _resources(edge, "AWS::EC2::SecurityGroupIngress").values()
    assert sorted(json.dumps(i["Properties"]["FromPort"]) for i in ingress) == [
        '{"Ref": "AdminPort"}', '{"Ref": "EdgePort"}']
    assert all(i["Properties"]["SourceSecurityGroupId"] == {
        "Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]} for i in ingress)
    balancer = groups["LoadBalancerSecurityGroup"]["Properties"]
    assert [r["FromPort"] for r in balancer["SecurityGroupIngress"]] == [{"Ref": "EdgePort"}]
    assert [r["FromPort"] for r in balancer["SecurityGroupEgress"]] == [
        {"Ref": "EdgePort"}, {"Ref": "AdminPort"}]


def test_the_client_stack(synthesized: dict[str, Template]) -> None:
    client = synthesized["KafkaEdgeClient"]
    endpoint = _one(client, "AWS::EC2::VPCEndpoint")
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["ServiceName"] == {"Ref": "EndpointServiceName"}
    assert endpoint["PrivateDnsEnabled"] is False
    zones = _resources(client, "AWS::Route53::HostedZone")
    assert [z["Properties"]["Name"] for z in zones.values()] == [
        {"Ref": f"DomainName{i}"} for i in (1, 2, 3)]
    assert [z.get("Condition") for z in zones.values()] == [None, "HasDomain2", "HasDomain3"]
    assert all(z["Properties"]["VPCs"][0]["VPCId"] == {"Ref": "VpcId"} for z in zones.values())
    records = _resources(client, "AWS::Route53::RecordSet")
    wildcard = records["Wildcard1"]["Properties"]
    assert wildcard["Name"] == {"Fn::Join": ["", ["*.", {"Ref": "DomainName1"}, "."]]}
    assert wildcard["AliasTarget"]["DNSName"]["Fn::Select"][0] == 1
    region = records["Region1"]["Properties"]
    assert region["Type"] == "TXT"
    assert region["Name"] == {"Fn::Join": ["", ["_kafka-region.", {"Ref": "DomainName1"}, "."]]}


def test_several_clusters_and_domains_from_one_configuration(
        two_clusters: dict[str, Template]) -> None:
    edge, client = two_clusters["KafkaEdge"], two_clusters["KafkaEdgeClient"]
    assert "EdgeConfiguration" not in edge["Parameters"]  # the file is built in
    listener = _one(edge, "AWS::ElasticLoadBalancingV2::Listener")
    assert listener["Port"] == 9098
    rules = edge["Resources"]["InstanceSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert [(r["CidrIp"], r["FromPort"]) for r in rules[:-2]] == [
        ("10.20.0.0/16", 9098), ("10.30.0.0/16", 9094), ("10.30.0.0/16", 9095)]
    names = {k: v["Properties"]["Name"] for k, v in
             _resources(client, "AWS::Route53::RecordSet").items()}
    assert names == {"Wildcard1": "*.orders.example.com.",
                     "Region1": "_kafka-region.orders.example.com.",
                     "Wildcard2": "*.payments.example.com.",
                     "Wildcard3": "payments.example.net."}
    txt = client["Resources"]["Region1"]["Properties"]["ResourceRecords"]
    assert txt == [{"Fn::Sub": ['"${Region}"', {"Region": "eu-west-1"}]}]


def test_what_the_stacks_cannot_deploy_is_refused(tmp_path: Path) -> None:
    from kafka_edge_cdk.settings import SettingsError, load_settings

    config = tmp_path / "kafka-edge.yaml"
    config.write_text((REPO / "examples" / "port-per-broker.yaml").read_text())
    settings = tmp_path / "settings.yaml"
    settings.write_text("kafka_edge_config: kafka-edge.yaml\n"
                        "upstream_cidrs: {elsewhere: 10.0.0.0/8}\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(settings)
    message = str(refused.value)
    assert "cluster local: port_routing" in message
    assert "upstream_cidrs.local" in message
    assert "upstream_cidrs names no cluster of the configuration: ['elsewhere']" in message


def test_the_example_settings_describe_two_clusters() -> None:
    from kafka_edge_cdk.settings import load_settings

    deployment = load_settings(AWS / "settings.example.yaml")
    assert [(r.port, r.target_port) for r in deployment.routes] == [(9098, 9098)]
    assert [(n.name, n.cidr) for n in deployment.networks] == [
        ("orders", "10.20.0.0/16"), ("payments", "10.30.0.0/16")]
    assert [z.name for z in deployment.zones] == ["orders.example.com", "payments.example.com"]
