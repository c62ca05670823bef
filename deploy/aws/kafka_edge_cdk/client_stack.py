"""The client stack, one per consumer VPC (in any account the endpoint service allows): an
interface VPC endpoint to the edge's endpoint service, its security group, and a private hosted
zone per custom domain with the wildcard alias record (and, for MSK IAM clients, the TXT record
with the region) so that every name under the domain resolves to the endpoint.

The endpoint's connection must then be accepted by the edge's account (the endpoint service
requires acceptance); until then the endpoint is ``pendingAcceptance`` and names resolve but
connections fail.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnCondition, CfnOutput, Fn, IStackSynthesizer, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_route53 as route53
from constructs import Construct

from .params import Params
from .settings import DOMAIN_SLOTS, Deployment, Zone

DOMAIN = r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$"
REGION_RECORD = "_kafka-region"


class ClientStack(Stack):
    """``deployment`` None: the shipped template (up to DOMAIN_SLOTS domains, one optional
    region, as parameters)."""

    def __init__(self, scope: Construct, stack_id: str, deployment: Deployment | None, *,
                 synthesizer: IStackSynthesizer | None = None) -> None:
        super().__init__(scope, stack_id, synthesizer=synthesizer)
        self.template_options.description = (
            "kafka-edge client side: an interface endpoint to the edge's endpoint service and "
            "private hosted zones for its domains (deploy/aws, docs/deployment.md)")
        p = Params(self)
        vpc = p.text("VpcId", "The clients' VPC", kind="AWS::EC2::VPC::Id")
        subnets = p.list("SubnetIds", "Subnets for the endpoint's interfaces (one per "
                         "availability zone the clients use)",
                         kind="List<AWS::EC2::Subnet::Id>")
        service = p.text("EndpointServiceName", "The edge stack's EndpointServiceName output",
                         pattern=r"^com\.amazonaws\.vpce\.[a-z0-9-]+\.vpce-svc-[0-9a-f]+$")
        client_cidr = p.cidr("ClientCidr", "Who may connect to the endpoint")
        if deployment is None:
            ports = [p.port("EdgePort", 9098, "The edge's listener port")]
            slots = self._domain_slots(p)
        else:
            ports = [r.port for r in deployment.routes]
            slots = [(zone, None) for zone in deployment.zones]

        group = ec2.CfnSecurityGroup(
            self, "EndpointSecurityGroup", vpc_id=vpc,
            group_description="kafka-edge endpoint: Kafka clients in",
            security_group_ingress=[ec2.CfnSecurityGroup.IngressProperty(
                ip_protocol="tcp", cidr_ip=client_cidr, from_port=port, to_port=port,
                description="Kafka clients") for port in ports],
            # an interface endpoint answers; it opens nothing itself (a rule that matches no
            # traffic replaces the default allow-all)
            security_group_egress=[ec2.CfnSecurityGroup.EgressProperty(
                ip_protocol="icmp", cidr_ip="255.255.255.255/32", from_port=252, to_port=86,
                description="no outbound traffic")])
        endpoint = ec2.CfnVPCEndpoint(
            self, "Endpoint", vpc_endpoint_type="Interface", service_name=service,
            vpc_id=vpc, subnet_ids=subnets, security_group_ids=[group.attr_group_id],
            private_dns_enabled=False)
        # DnsEntries[0] is "<hosted zone id>:<regional DNS name>"
        entry = Fn.split(":", Fn.select(0, endpoint.attr_dns_entries))
        alias = route53.CfnRecordSet.AliasTargetProperty(
            hosted_zone_id=Fn.select(0, entry), dns_name=Fn.select(1, entry))
        for i, (zone, condition) in enumerate(slots, start=1):
            self._zone(i, zone, condition, vpc, alias)
        CfnOutput(self, "EndpointId", value=endpoint.ref,
                  description="Accept its connection in the edge's account")
        CfnOutput(self, "EndpointDnsName", value=Fn.select(1, entry))

    def _domain_slots(self, p: Params) -> list[tuple[Zone, CfnCondition | None]]:
        region = p.text("Region", "The clusters' AWS region, published as TXT "
                        "_kafka-region.<domain> for MSK IAM clients; empty: this stack's",
                        default="", pattern=r"^([a-z]{2}(-[a-z]+)+-\d)?$")
        given = CfnCondition(self, "HasRegion", expression=Fn.condition_not(
            Fn.condition_equals(region, "")))
        region = Token.as_string(Fn.condition_if(given.logical_id, region, Aws.REGION))
        slots: list[tuple[Zone, CfnCondition | None]] = []
        for i in range(1, DOMAIN_SLOTS + 1):
            name = p.text(f"DomainName{i}", "A custom domain (boot.<domain> and "
                          "b-N.<domain> resolve to the endpoint)"
                          + ("" if i == 1 else "; empty: none"),
                          default=None if i == 1 else "",
                          pattern=DOMAIN if i == 1 else f"^$|{DOMAIN[1:]}")
            condition = None if i == 1 else CfnCondition(
                self, f"HasDomain{i}", expression=Fn.condition_not(Fn.condition_equals(name,
                                                                                      "")))
            slots.append((Zone(name=name, wildcard=True, region=region), condition))
        return slots

    def _zone(self, i: int, zone: Zone, condition: CfnCondition | None, vpc: str,
              alias: route53.CfnRecordSet.AliasTargetProperty) -> None:
        hosted = route53.CfnHostedZone(
            self, f"Zone{i}", name=zone.name,
            hosted_zone_config=route53.CfnHostedZone.HostedZoneConfigProperty(
                comment="kafka-edge: a custom domain, private to the client VPC"),
            vpcs=[route53.CfnHostedZone.VPCProperty(vpc_id=vpc, vpc_region=self.region)])
        record = route53.CfnRecordSet(
            self, f"Wildcard{i}", hosted_zone_id=hosted.ref, type="A", alias_target=alias,
            name=Fn.join("", ["*." if zone.wildcard else "", zone.name, "."]))
        for resource in (hosted, record):
            if condition is not None:
                resource.cfn_options.condition = condition
        CfnOutput(self, f"ZoneId{i}", value=hosted.ref, condition=condition,
                  description=f"The private hosted zone of DomainName{i}"
                  if Token.is_unresolved(zone.name) else f"The private hosted zone {zone.name}")
        if zone.region is None:
            return
        txt = route53.CfnRecordSet(
            self, f"Region{i}", hosted_zone_id=hosted.ref, type="TXT", ttl="300",
            name=Fn.join("", [REGION_RECORD, ".", zone.name, "."]),
            resource_records=[Fn.sub('"${Region}"', {"Region": zone.region})])
        if condition is not None:
            txt.cfn_options.condition = condition
