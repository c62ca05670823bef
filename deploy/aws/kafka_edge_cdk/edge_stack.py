"""The edge stack: kafka-edge instances behind an internal network load balancer, published as a
VPC endpoint service (PrivateLink).

    NLB (internal, cross-zone; TCP listener per edge port) -> target group (instances; health
    check HTTP /readyz on the admin port) -> auto-scaling group (launch template: user data
    installs kafka-edge, writes its configuration, fetches certificates from Secrets Manager,
    starts the systemd unit) -> the clusters (egress rules). Endpoint service: acceptance
    required. Optional CloudWatch log group.

Built from CloudFormation-level (L1) resources: the VPC and subnets are parameters, so the
template deploys in any account and region without a lookup at synth time.
"""

from __future__ import annotations

from aws_cdk import (
    Aws,
    CfnAutoScalingRollingUpdate,
    CfnCondition,
    CfnOutput,
    CfnTag,
    CfnUpdatePolicy,
    Fn,
    IStackSynthesizer,
    Stack,
    Token,
)
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

import kafka_edge

from .params import Params
from .settings import ClusterNetwork, Deployment, Route
from .user_data import user_data

AMAZON_LINUX_2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
RETENTION_DAYS = ["1", "3", "5", "7", "14", "30", "60", "90", "180", "365"]
NO_QUOTES = r"^[^'\s]+$"  # values that go into the user data between single quotes


class EdgeStack(Stack):
    """``deployment`` None: the shipped template (the configuration, its port and the cluster
    network are parameters)."""

    def __init__(self, scope: Construct, stack_id: str, deployment: Deployment | None, *,
                 synthesizer: IStackSynthesizer | None = None) -> None:
        super().__init__(scope, stack_id, synthesizer=synthesizer)
        self.template_options.description = (
            "kafka-edge: instances behind an internal NLB, published as a VPC endpoint service"
            " (deploy/aws, docs/deployment.md)")
        p = Params(self)
        vpc = p.text("VpcId", "The VPC of the edge instances and the load balancer",
                     kind="AWS::EC2::VPC::Id")
        subnets = p.list("SubnetIds", "Private subnets in at least two availability zones, "
                         "routed to the clusters (and to Secrets Manager and the package "
                         "index)", kind="List<AWS::EC2::Subnet::Id>")
        client_cidr = p.cidr("ClientCidr", "Who may connect to the load balancer from inside "
                             "the VPC or over VPN (PrivateLink traffic is not filtered by it)")
        admin_port = p.port("AdminPort", 9180, "observability.http_bind's port: /readyz for the "
                            "health check (the configuration must bind 0.0.0.0 on it)")
        routes: tuple[Route, ...]
        networks: tuple[ClusterNetwork, ...]
        if deployment is None:
            edge_port = p.port("EdgePort", 9098, "The SNI listener's port (bind and advertised)"
                               " in EdgeConfiguration")
            routes = (Route(port=edge_port, target_port=edge_port),)
            networks = (ClusterNetwork(
                name="clusters", cidr=p.cidr("ClusterCidr", "The network of the clusters' "
                                             "brokers (egress from the instances)"),
                ports=((p.port("ClusterPortFrom", 9092, "Lowest broker port to allow"),
                        p.port("ClusterPortTo", 9098, "Highest broker port to allow")),)),)
            config_b64 = Fn.base64(p.text(
                "EdgeConfiguration", "The kafka-edge configuration (YAML, at most 4096 "
                "characters): certificate files under certs/ as the secrets name them, "
                "observability.http_bind 0.0.0.0:AdminPort", max_length=4096))
        else:
            routes, networks = deployment.routes, deployment.networks
            config_b64 = Fn.base64(deployment.config_text)
        package = p.text("KafkaEdgePackage", "What pip installs: a requirement, or the URL or "
                         "path of a wheel", default=f"kafka-edge=={kafka_edge.__version__}",
                         pattern=NO_QUOTES)
        workers = p.text("Workers", "kafka-edge run --workers: a number, or auto (one per "
                         "core)", default="auto", pattern=r"^(auto|[1-9][0-9]*)$")
        secrets = p.list("CertificateSecretArns", "Secrets Manager secrets, each a JSON object "
                         "of file names to PEM text, written to /etc/kafka-edge/certs/")
        kms_key = p.text("CertificateKmsKeyArn", "The ARN of the customer managed KMS key the "
                         "secrets are encrypted with, if any (empty: the AWS managed key)",
                         default="")
        self.instance_type = p.text("InstanceType", "EC2 instance type (the AMI's "
                                    "architecture)", default="c7i.large")
        image = p.text("ImageId", "AMI: an SSM parameter name (Amazon Linux 2023 or Debian 12)",
                       default=AMAZON_LINUX_2023,
                       kind="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>")
        sizes = [p.number(name, default, f"Auto-scaling group {what}", low=0 if name != "MinSize"
                          else 1)
                 for name, default, what in (("MinSize", 2, "minimum"), ("MaxSize", 4, "maximum"),
                                             ("DesiredCapacity", 2, "desired size"))]
        delay = p.number("DeregistrationDelay", 45, "Seconds a leaving instance keeps its "
                         "connections before it stops; longer than limits.drain_timeout_s",
                         low=0, high=3600)
        proxy = p.text("ProxyProtocol", "PROXY protocol v2 to the instances (then set "
                       "proxy_protocol in the configuration)", default="false",
                       allowed=["true", "false"])
        principals = p.list("AllowedPrincipals", "Principals that may create endpoints to the "
                            "service (e.g. arn:aws:iam::111122223333:root); empty: none yet",
                            default="")
        cloudwatch = p.text("CloudWatchLogs", "kafka-edge's output to a CloudWatch log group "
                            "(through the CloudWatch agent); false: the journal only",
                            default="false", allowed=["true", "false"])
        retention = p.text("LogRetentionDays", "The log group's retention", default="30",
                           allowed=RETENTION_DAYS)
        self.has_logs = CfnCondition(self, "HasLogGroup", expression=Fn.condition_equals(
            cloudwatch, "true"))
        has_kms = CfnCondition(self, "HasKmsKey", expression=Fn.condition_not(
            Fn.condition_equals(kms_key, "")))
        has_principals = CfnCondition(self, "HasPrincipals", expression=Fn.condition_not(
            Fn.condition_equals(Fn.join("", principals), "")))

        log_group = logs.CfnLogGroup(self, "LogGroup", retention_in_days=Token.as_number(
            retention))
        log_group.cfn_options.condition = self.has_logs

        edge_sg, lb_sg = self._security_groups(vpc, client_cidr, admin_port, routes, networks)
        role = self._role(secrets, kms_key, has_kms, log_group)
        profile = iam.CfnInstanceProfile(self, "InstanceProfile", roles=[role.ref])
        template = ec2.CfnLaunchTemplate(
            self, "LaunchTemplate",
            launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
                image_id=image, instance_type=self.instance_type,
                iam_instance_profile=ec2.CfnLaunchTemplate.IamInstanceProfileProperty(
                    arn=profile.attr_arn),
                security_group_ids=[edge_sg.attr_group_id],
                metadata_options=ec2.CfnLaunchTemplate.MetadataOptionsProperty(
                    http_tokens="required", http_put_response_hop_limit=1),
                user_data=user_data({
                    "Package": package, "AdminPort": Token.as_string(admin_port),
                    "Workers": workers, "CertificateSecrets": Fn.join(",", secrets),
                    "LogGroup": Token.as_string(Fn.condition_if(
                        self.has_logs.logical_id, log_group.ref, "")),
                    "ConfigBase64": config_b64,
                })))
        balancer = elb.CfnLoadBalancer(
            self, "LoadBalancer", type="network", scheme="internal", subnets=subnets,
            security_groups=[lb_sg.attr_group_id],
            enforce_security_group_inbound_rules_on_private_link_traffic="off",
            load_balancer_attributes=[elb.CfnLoadBalancer.LoadBalancerAttributeProperty(
                key="load_balancing.cross_zone.enabled", value="true")])
        groups = [self._listener(balancer, route, vpc, admin_port, delay, proxy)
                  for route in routes]
        group = autoscaling.CfnAutoScalingGroup(
            self, "Instances", min_size=Token.as_string(sizes[0]),
            max_size=Token.as_string(sizes[1]), desired_capacity=Token.as_string(sizes[2]),
            vpc_zone_identifier=subnets, target_group_arns=[g.ref for g in groups],
            health_check_type="ELB", health_check_grace_period=300,
            launch_template=autoscaling.CfnAutoScalingGroup.LaunchTemplateSpecificationProperty(
                launch_template_id=template.ref, version=template.attr_latest_version_number),
            tags=[autoscaling.CfnAutoScalingGroup.TagPropertyProperty(
                key="Name", value=Fn.sub("${AWS::StackName}-kafka-edge"),
                propagate_at_launch=True)])
        # a new launch template version (a parameter changed) replaces the instances one by one
        group.cfn_options.update_policy = CfnUpdatePolicy(
            auto_scaling_rolling_update=CfnAutoScalingRollingUpdate(
                max_batch_size=1, min_instances_in_service=1, pause_time="PT5M"))
        service = ec2.CfnVPCEndpointService(
            self, "EndpointService", acceptance_required=True,
            network_load_balancer_arns=[balancer.ref])
        permissions = ec2.CfnVPCEndpointServicePermissions(
            self, "EndpointServicePermissions", service_id=service.ref,
            allowed_principals=principals)
        permissions.cfn_options.condition = has_principals

        CfnOutput(self, "EndpointServiceName", description="What consumers' client stacks take",
                  value=Fn.sub("com.amazonaws.vpce.${AWS::Region}.${EndpointService}"))
        CfnOutput(self, "EndpointServiceId", value=service.ref,
                  description="Accept endpoint connections of this service")
        CfnOutput(self, "LoadBalancerDnsName", value=balancer.attr_dns_name,
                  description="The NLB, for clients inside this VPC")
        CfnOutput(self, "InstanceSecurityGroupId", value=edge_sg.attr_group_id,
                  description="Allow it on the clusters' security groups")

    def _security_groups(self, vpc: str, client_cidr: str, admin_port: float,
                         routes: tuple[Route, ...], networks: tuple[ClusterNetwork, ...]
                         ) -> tuple[ec2.CfnSecurityGroup, ec2.CfnSecurityGroup]:
        """The instances' group (egress listed whole: the clusters, and HTTPS/HTTP for Secrets
        Manager, packages and logs) and the balancer's (in: clients; out: the instances'
        edge and admin ports). Ingress to the instances is from the balancer's group only."""
        egress = [ec2.CfnSecurityGroup.EgressProperty(
            ip_protocol="tcp", cidr_ip=n.cidr, from_port=low, to_port=high,
            description=f"Kafka brokers ({n.name})") for n in networks for low, high in n.ports]
        egress += [ec2.CfnSecurityGroup.EgressProperty(
            ip_protocol="tcp", cidr_ip="0.0.0.0/0", from_port=port, to_port=port,
            description=what) for port, what in (
            (443, "Secrets Manager, the package index, CloudWatch Logs"),
            (80, "distribution package mirrors"))]
        edge_sg = ec2.CfnSecurityGroup(
            self, "InstanceSecurityGroup", vpc_id=vpc, security_group_egress=egress,
            group_description="kafka-edge instances: from the load balancer, to the clusters",
            tags=[CfnTag(key="Name", value=Fn.sub("${AWS::StackName}-instances"))])
        lb_sg = ec2.CfnSecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc_id=vpc,
            group_description="kafka-edge load balancer: clients in, instances out",
            security_group_ingress=[ec2.CfnSecurityGroup.IngressProperty(
                ip_protocol="tcp", cidr_ip=client_cidr, from_port=r.port, to_port=r.port,
                description="Kafka clients") for r in routes],
            security_group_egress=[ec2.CfnSecurityGroup.EgressProperty(
                ip_protocol="tcp", destination_security_group_id=edge_sg.attr_group_id,
                from_port=port, to_port=port, description=what)
                for port, what in _instance_ports(routes, admin_port)])
        for i, (port, what) in enumerate(_instance_ports(routes, admin_port)):
            ec2.CfnSecurityGroupIngress(
                self, f"InstanceIngress{i}", group_id=edge_sg.attr_group_id, ip_protocol="tcp",
                source_security_group_id=lb_sg.attr_group_id, from_port=port, to_port=port,
                description=f"{what} from the load balancer")
        return edge_sg, lb_sg

    def _role(self, secrets: list[str], kms_key: str, has_kms: CfnCondition,
              log_group: logs.CfnLogGroup) -> iam.CfnRole:
        """Reading the certificate secrets, and writing to the log group if there is one."""
        statements: list[object] = [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secrets},
            Fn.condition_if(has_kms.logical_id, {
                "Effect": "Allow", "Action": "kms:Decrypt", "Resource": kms_key,
                "Condition": {"StringEquals": {
                    "kms:ViaService": Fn.sub("secretsmanager.${AWS::Region}.amazonaws.com")}},
            }, Aws.NO_VALUE),
            Fn.condition_if(self.has_logs.logical_id, {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents",
                           "logs:DescribeLogStreams"],
                # the group's Arn attribute ends in ":*" (its streams)
                "Resource": [log_group.attr_arn, Fn.sub(
                    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                    "${LogGroup}")],
            }, Aws.NO_VALUE),
        ]
        return iam.CfnRole(
            self, "InstanceRole", description="kafka-edge instances: certificates, logs",
            assume_role_policy_document={"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            policies=[iam.CfnRole.PolicyProperty(policy_name="kafka-edge", policy_document={
                "Version": "2012-10-17", "Statement": statements})])

    def _listener(self, balancer: elb.CfnLoadBalancer, route: Route, vpc: str,
                  admin_port: float, delay: float, proxy: str) -> elb.CfnTargetGroup:
        port = route.port
        suffix = "" if Token.is_unresolved(port) else str(port)
        group = elb.CfnTargetGroup(
            self, f"Targets{suffix}", protocol="TCP", target_type="instance", vpc_id=vpc,
            port=route.target_port,
            health_check_protocol="HTTP", health_check_path="/readyz",
            health_check_port=Token.as_string(admin_port),
            health_check_interval_seconds=10, healthy_threshold_count=2,
            unhealthy_threshold_count=2, matcher=elb.CfnTargetGroup.MatcherProperty(
                http_code="200"),
            target_group_attributes=[
                elb.CfnTargetGroup.TargetGroupAttributeProperty(key=k, value=v) for k, v in (
                    ("deregistration_delay.timeout_seconds", Token.as_string(delay)),
                    ("proxy_protocol_v2.enabled", proxy),
                    # the source is the balancer (its security group is what the instances
                    # allow); PROXY protocol carries the client's address if wanted
                    ("preserve_client_ip.enabled", "false"),
                    # /readyz answers 503 while an instance drains: its open connections
                    # must not be cut for that
                    ("target_health_state.unhealthy.connection_termination.enabled", "false"),
                )])
        elb.CfnListener(
            self, f"Listener{suffix}", load_balancer_arn=balancer.ref, protocol="TCP", port=port,
            default_actions=[elb.CfnListener.ActionProperty(
                type="forward", target_group_arn=group.ref)])
        return group


def _instance_ports(routes: tuple[Route, ...], admin_port: float) -> list[tuple[float, str]]:
    ports: list[tuple[float, str]] = [(r.target_port, "Kafka clients") for r in routes]
    return [*ports, (admin_port, "health checks (/readyz)")]

